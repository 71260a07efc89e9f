"""The admin password: a plain secret or a stored hash, compared in constant time.

``[admin] password`` is either the password itself (literal, ``env:`` or ``file:``, like
every secret) or a hash made by ``capi-edge admin hash-password``, in the formats of
Django's hashers (so an existing Django hash works too):

    scrypt$<salt>$<n>$<r>$<p>$<base64 of the 64-byte key>
    pbkdf2_sha256$<iterations>$<salt>$<base64 of the 32-byte key>

Only ``hashlib`` is used. Parameters are bounded so a hostile config cannot ask for
gigabytes of memory or minutes of CPU per sign-in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SCRYPT = "scrypt"
PBKDF2 = "pbkdf2_sha256"
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
SCRYPT_DKLEN = 64
SCRYPT_MAX_N = 2**20
SCRYPT_MAX_R = 32
SCRYPT_MAX_P = 16
SCRYPT_MAXMEM = 256 * 1024 * 1024
PBKDF2_ITERATIONS = 600_000  # OWASP's 2023 figure for PBKDF2-HMAC-SHA256
PBKDF2_MIN_ITERATIONS = 100_000
PBKDF2_MAX_ITERATIONS = 10_000_000
SALT_BYTES = 16


def is_password_hash(value: str) -> bool:
    return value.startswith((f"{SCRYPT}$", f"{PBKDF2}$"))


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _scrypt(password: str, salt: str, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt.encode(), n=n, r=r, p=p, maxmem=SCRYPT_MAXMEM, dklen=64
    )


def _pbkdf2(password: str, salt: str, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations)


def hash_password(password: str, scheme: str = SCRYPT) -> str:
    """A new hash of ``password`` with a random salt."""
    salt = secrets.token_urlsafe(SALT_BYTES)
    if scheme == SCRYPT:
        key = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
        return f"{SCRYPT}${salt}${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(key)}"
    if scheme == PBKDF2:
        key = _pbkdf2(password, salt, PBKDF2_ITERATIONS)
        return f"{PBKDF2}${PBKDF2_ITERATIONS}${salt}${_b64(key)}"
    raise ValueError(f"unknown scheme {scheme!r}; use {SCRYPT} or {PBKDF2}")


def _parse(stored: str) -> tuple[str, str, tuple[int, ...], bytes]:
    """(scheme, salt, parameters, key) or ValueError naming what is wrong."""
    parts = stored.split("$")
    try:
        if parts[0] == SCRYPT and len(parts) == 6:
            _, salt, n, r, p, key = parts
            params: tuple[int, ...] = (int(n), int(r), int(p))
        elif parts[0] == PBKDF2 and len(parts) == 4:
            _, iterations, salt, key = parts
            params = (int(iterations),)
        else:
            raise ValueError("is not a scrypt$… or pbkdf2_sha256$… hash")
        raw = base64.b64decode(key, validate=True)
    except (ValueError, TypeError) as err:
        if "hash" in str(err):
            raise
        raise ValueError("is a malformed hash (numbers or base64 are wrong)") from None
    if not salt or "$" in salt:
        raise ValueError("is a malformed hash (empty salt)")
    return parts[0], salt, params, raw


def hash_problem(stored: str) -> str | None:
    """Why a stored hash is unusable, or None. Never includes the hash."""
    try:
        scheme, _, params, key = _parse(stored)
    except ValueError as err:
        return str(err)
    if scheme == SCRYPT:
        n, r, p = params
        if n < 2**14 or n > SCRYPT_MAX_N or n & (n - 1) or not 1 <= r <= SCRYPT_MAX_R:
            return "has scrypt parameters out of range (n a power of two 2^14..2^20, r 1..32)"
        if not 1 <= p <= SCRYPT_MAX_P or len(key) != SCRYPT_DKLEN:
            return "has scrypt parameters out of range (p 1..16, 64-byte key)"
        if 128 * r * n > SCRYPT_MAXMEM:
            return "needs too much memory (128·r·n over 256 MiB)"
    else:
        (iterations,) = params
        if not PBKDF2_MIN_ITERATIONS <= iterations <= PBKDF2_MAX_ITERATIONS or len(key) != 32:
            return "has pbkdf2 iterations out of range (100,000..10,000,000)"
    return None


def verify_password(candidate: str, configured: str) -> bool:
    """Does ``candidate`` match the configured password or hash? Constant time either way."""
    if is_password_hash(configured):
        try:
            scheme, salt, params, key = _parse(configured)
        except ValueError:
            return False
        if scheme == SCRYPT:
            computed = _scrypt(candidate, salt, *params)
        else:
            computed = _pbkdf2(candidate, salt, params[0])
        return hmac.compare_digest(computed, key)
    # Digests first: compare_digest leaks the length of its arguments, digests have one.
    return hmac.compare_digest(
        hashlib.sha256(candidate.encode()).digest(), hashlib.sha256(configured.encode()).digest()
    )
