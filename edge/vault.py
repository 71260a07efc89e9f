"""The credentials vault: what the dashboard stores is encrypted at rest with Fernet.

Keys (Fernet keys: 32 random bytes, urlsafe base64), first one found wins:

1. ``CAPI_EDGE_VAULT_KEY``: one key, or several separated by commas, newest first;
2. ``[admin] vault_key_file``: a file with one key per line, newest first;
3. otherwise ``vault.key`` next to the database, created on first use (mode 0600).

The newest key encrypts; every listed key decrypts (``MultiFernet``), so a rotation keeps
working while older ciphertexts are re-encrypted. ``capi-edge vault rotate`` adds a new key,
re-encrypts everything the store holds, and keeps the previous key for one more rotation.

Without its key the vault cannot be read: the dashboard then says so and refuses to start
rather than forget the connected destinations.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from edge.errors import ConfigError

KEY_ENV = "CAPI_EDGE_VAULT_KEY"
DEFAULT_KEY_FILE = "vault.key"
KEYS_KEPT_AFTER_ROTATION = 2  # the new key and the one before it
KEY_FILE_MODE = 0o600


class VaultError(Exception):
    """A ciphertext could not be decrypted with any known key."""


def _parse_keys(text: str, source: str) -> list[bytes]:
    keys = [k.strip() for k in text.replace(",", "\n").splitlines() if k.strip()]
    if not keys:
        raise ConfigError(f"{source} holds no vault key")
    for i, key in enumerate(keys):
        try:
            Fernet(key)
        except ValueError:
            raise ConfigError(
                f"{source}: key #{i + 1} is not a Fernet key (32 bytes, urlsafe base64); "
                "make one with `capi-edge vault new-key`"
            ) from None
    return [k.encode() for k in keys]


def write_key_file(path: Path, keys: Sequence[bytes]) -> None:
    """Write keys (newest first) readable by the owner only, replacing the file atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(path.name + ".tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, KEY_FILE_MODE)
    with os.fdopen(fd, "w") as handle:
        handle.write("\n".join(k.decode() for k in keys) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(temp, KEY_FILE_MODE)
    os.replace(temp, path)


class Vault:
    """Encrypt and decrypt small blobs (destination tables) with the configured keys."""

    def __init__(self, keys: Sequence[bytes], *, source: str, key_file: Path | None = None):
        if not keys:
            raise ValueError("a vault needs at least one key")
        self.keys = list(keys)
        self.source = source  # where the keys came from, for messages (never the keys)
        self.key_file = key_file  # set when keys live in a file we may rewrite
        self._fernet = MultiFernet([Fernet(k) for k in self.keys])

    @classmethod
    def load(
        cls,
        key_file: Path | None,
        data_dir: Path | None,
        *,
        environ: Mapping[str, str] = os.environ,
        create: bool = True,
    ) -> Vault:
        """The vault as configured: environment, key file, or the data dir's own key file."""
        if environ.get(KEY_ENV):
            return cls(_parse_keys(environ[KEY_ENV], KEY_ENV), source=KEY_ENV)
        if key_file is not None:
            try:
                text = key_file.read_text()
            except OSError as err:
                raise ConfigError(
                    f"admin.vault_key_file: cannot read {key_file} ({err.strerror})"
                ) from None
            return cls(_parse_keys(text, str(key_file)), source=str(key_file), key_file=key_file)
        if data_dir is None:  # an in-memory store: an in-memory key is all that makes sense
            return cls([Fernet.generate_key()], source="memory")
        path = data_dir / DEFAULT_KEY_FILE
        if path.exists():
            return cls(_parse_keys(path.read_text(), str(path)), source=str(path), key_file=path)
        if not create:
            raise ConfigError(f"no vault key: set {KEY_ENV} or admin.vault_key_file")
        keys = [Fernet.generate_key()]
        write_key_file(path, keys)
        return cls(keys, source=str(path), key_file=path)

    def encrypt(self, plain: bytes) -> bytes:
        return self._fernet.encrypt(plain)

    def decrypt(self, token: bytes) -> bytes:
        try:
            return self._fernet.decrypt(token)
        except InvalidToken:
            raise VaultError(
                f"a stored credential cannot be decrypted with the keys from {self.source}; "
                "was the vault key replaced instead of rotated?"
            ) from None

    def rotated(self) -> Vault:
        """A vault with a new primary key, keeping the current one to read older blobs."""
        keys = [Fernet.generate_key(), *self.keys][:KEYS_KEPT_AFTER_ROTATION]
        return Vault(keys, source=self.source, key_file=self.key_file)

    def reencrypt(self, token: bytes) -> bytes:
        """``token`` encrypted again under this vault's primary key."""
        try:
            return self._fernet.rotate(token)
        except InvalidToken:
            raise VaultError(f"a stored credential cannot be decrypted ({self.source})") from None

    def session_secret(self, context: bytes) -> bytes:
        """A secret for signing derived from the primary key (never the key itself)."""
        return hmac.new(self.keys[0], b"capi-edge/" + context, hashlib.sha256).digest()


def data_dir_for(database: Path) -> Path | None:
    """The folder the store lives in, or None for an in-memory store."""
    if str(database) == ":memory:":
        return None
    return database.parent
