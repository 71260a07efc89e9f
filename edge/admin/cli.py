"""The dashboard's commands: ``capi-edge admin hash-password``, ``capi-edge vault rotate``
and ``capi-edge vault new-key`` (registered by ``edge.cli``).

    capi-edge admin hash-password              # prompts; prints scrypt$... for [admin] password
    capi-edge vault new-key                    # prints a Fernet key for CAPI_EDGE_VAULT_KEY
    capi-edge vault rotate --config edge.toml  # new key, everything stored re-encrypted
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time

EXIT_USAGE = 2


def _hash_password(args: argparse.Namespace) -> int:
    from edge.admin.passwords import hash_password
    from edge.settings import MIN_ADMIN_PASSWORD_LENGTH

    if sys.stdin.isatty():
        password = getpass.getpass("Admin password: ")
        if getpass.getpass("Again: ") != password:
            print("capi-edge: the two passwords differ", file=sys.stderr)
            return EXIT_USAGE
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < MIN_ADMIN_PASSWORD_LENGTH:
        print(f"capi-edge: use at least {MIN_ADMIN_PASSWORD_LENGTH} characters", file=sys.stderr)
        return EXIT_USAGE
    print(hash_password(password, args.scheme))
    return 0


def _new_key(args: argparse.Namespace) -> int:
    from cryptography.fernet import Fernet

    print(Fernet.generate_key().decode())
    return 0


def _rotate(args: argparse.Namespace) -> int:
    import asyncio

    from edge.errors import ConfigError
    from edge.settings import load
    from edge.store.sqlite import SQLiteStore
    from edge.vault import KEY_ENV, Vault, data_dir_for, write_key_file

    settings = load(args.config)
    if settings.admin is None:
        raise ConfigError(f"{args.config} has no [admin] section: there is no vault to rotate")
    vault = Vault.load(settings.admin.vault_key_file, data_dir_for(settings.database), create=False)
    rotated = vault.rotated()

    async def reencrypt() -> int:
        store = SQLiteStore(settings.database, durability=settings.durability)
        await store.open()
        try:
            blobs = await store.config_blobs()
            fresh = {name: rotated.reencrypt(blob) for name, blob in blobs.items()}
            if rotated.key_file is not None:  # the new key is safe on disk before it is used
                write_key_file(rotated.key_file, rotated.keys)
            await store.replace_config_blobs(fresh, time.time())
            return len(fresh)
        finally:
            await store.close()

    count = asyncio.run(reencrypt())
    print(f"re-encrypted {count} stored destination(s) with a new key")
    if rotated.key_file is not None:
        print(f"{rotated.key_file}: new key first, the previous one kept to read older copies")
    else:
        print(
            f"set {KEY_ENV} to the new keys (newest first) before restarting the edge:\n"
            + ",".join(k.decode() for k in rotated.keys)
        )
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    admin = commands.add_parser("admin", help="the dashboard: make a password hash")
    admin_commands = admin.add_subparsers(dest="admin_command", required=True)
    hashed = admin_commands.add_parser(
        "hash-password", help="read a password (prompt or stdin), print a hash for [admin]"
    )
    hashed.add_argument("--scheme", choices=("scrypt", "pbkdf2_sha256"), default="scrypt")
    hashed.set_defaults(run=_hash_password)

    vault = commands.add_parser("vault", help="the credentials vault: keys and rotation")
    vault_commands = vault.add_subparsers(dest="vault_command", required=True)
    rotate = vault_commands.add_parser(
        "rotate", help="make a new key and re-encrypt every stored credential with it"
    )
    rotate.add_argument("--config", required=True)
    rotate.set_defaults(run=_rotate)
    new_key = vault_commands.add_parser("new-key", help="print a new key for CAPI_EDGE_VAULT_KEY")
    new_key.set_defaults(run=_new_key)
