"""The vault (Fernet at rest, keys from the environment, a key file, or the data dir),
key rotation from the CLI, and the admin password (plain or a stored hash)."""

from __future__ import annotations

import asyncio
import io
import json

import pytest
from cryptography.fernet import Fernet

from edge.admin.passwords import hash_password, hash_problem, verify_password
from edge.cli import EXIT_CONFIG, main
from edge.errors import ConfigError
from edge.settings import parse
from edge.store.sqlite import SQLiteStore
from edge.vault import KEY_ENV, Vault, VaultError

from ..support import META_HOST, META_TOKEN, base_config, to_toml
from .conftest import ADMIN_PASSWORD

META = {
    "pixel_id": "123456789012345",
    "access_token": META_TOKEN,
    "base_url": f"https://{META_HOST}",
}


def test_keys_come_from_the_environment_first(tmp_path):
    key = Fernet.generate_key()
    vault = Vault.load(None, tmp_path, environ={KEY_ENV: key.decode()})
    assert vault.source == KEY_ENV and not (tmp_path / "vault.key").exists()
    assert vault.decrypt(vault.encrypt(b"x")) == b"x"


def test_a_key_file_is_made_private_when_none_is_configured(tmp_path):
    vault = Vault.load(None, tmp_path, environ={})
    path = tmp_path / "vault.key"
    assert vault.key_file == path and path.stat().st_mode & 0o777 == 0o600
    again = Vault.load(None, tmp_path, environ={})
    assert again.decrypt(vault.encrypt(b"secret")) == b"secret"


def test_a_bad_key_is_a_config_error_that_names_its_source(tmp_path):
    path = tmp_path / "keys"
    path.write_text("not-a-key\n")
    with pytest.raises(ConfigError, match=r"keys: key #1 is not a Fernet key"):
        Vault.load(path, tmp_path, environ={})
    with pytest.raises(ConfigError, match="cannot read"):
        Vault.load(tmp_path / "missing", tmp_path, environ={})


def test_the_wrong_key_cannot_read_and_says_so(tmp_path):
    token = Vault([Fernet.generate_key()], source="a").encrypt(b"x")
    with pytest.raises(VaultError, match="replaced instead of rotated"):
        Vault([Fernet.generate_key()], source="b").decrypt(token)


def test_rotation_keeps_the_previous_key_for_reading(tmp_path):
    old = Vault([Fernet.generate_key()], source="t")
    token = old.encrypt(b"x")
    new = old.rotated()
    assert new.keys[1] == old.keys[0] and len(new.keys) == 2
    assert new.decrypt(token) == b"x"
    fresh = new.reencrypt(token)
    assert Vault([new.keys[0]], source="only the new key").decrypt(fresh) == b"x"


def test_vault_rotate_reencrypts_what_the_store_holds(
    tmp_path, make_dashboard, admin_settings, capsys
):
    board = make_dashboard(destinations={}).sign_in()
    assert board.connect("meta", META)["ok"]
    board.client.__exit__(None, None, None)
    old_key = (tmp_path / "vault.key").read_text().split()[0]
    config = tmp_path / "edge.toml"
    config.write_text(
        to_toml(base_config(str(tmp_path / "edge.db"), admin={"password": ADMIN_PASSWORD}))
    )
    assert main(["vault", "rotate", "--config", str(config)]) == 0
    assert "re-encrypted 1 stored destination(s)" in capsys.readouterr().out
    keys = (tmp_path / "vault.key").read_text().split()
    assert keys[1] == old_key and keys[0] != old_key

    async def blobs() -> dict[str, bytes]:
        store = SQLiteStore(tmp_path / "edge.db")
        await store.open()
        try:
            return await store.config_blobs()
        finally:
            await store.close()

    stored = asyncio.run(blobs())["meta"]
    assert (
        json.loads(Vault([keys[0].encode()], source="new").decrypt(stored))["access_token"]
        == META_TOKEN
    )
    # and the edge still starts with it, Meta connected
    again = make_dashboard(settings=admin_settings(destinations={}))
    assert "meta" in again.admin.registry.active


def test_vault_rotate_needs_an_admin_section(tmp_path, capsys):
    config = tmp_path / "edge.toml"
    config.write_text(to_toml(base_config(str(tmp_path / "edge.db"))))
    assert main(["vault", "rotate", "--config", str(config)]) == EXIT_CONFIG
    assert "no [admin] section" in capsys.readouterr().err


def test_hash_password_reads_stdin_and_prints_a_usable_hash(monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("a-long-enough-password\n"))
    assert main(["admin", "hash-password", "--scheme", "pbkdf2_sha256"]) == 0
    stored = capsys.readouterr().out.strip()
    assert stored.startswith("pbkdf2_sha256$") and hash_problem(stored) is None
    assert verify_password("a-long-enough-password", stored)
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["admin", "hash-password"]) == 2


def test_both_hash_formats_verify_and_refuse():
    for scheme in ("scrypt", "pbkdf2_sha256"):
        stored = hash_password("pässword-ünicode", scheme)
        assert verify_password("pässword-ünicode", stored)
        assert not verify_password("password-unicode", stored)
    assert verify_password("plain-password!", "plain-password!")
    assert not verify_password("plain-password", "plain-password!")


def test_hash_problems_are_named():
    assert "malformed" in hash_problem("pbkdf2_sha256$abc$salt$!!!")
    assert "out of range" in hash_problem("pbkdf2_sha256$10$salt$" + "A" * 44)
    assert "not a scrypt" in hash_problem("scrypt$only$three")
    huge = "scrypt$salt$4194304$8$1$" + "A" * 88
    assert hash_problem(huge) is not None


def test_admin_settings_are_validated(tmp_path, monkeypatch):
    def config(**admin):
        return to_toml(base_config(str(tmp_path / "e.db"), admin=admin))

    with pytest.raises(ConfigError, match="admin.password: is too short"):
        parse(config(password="short"), base=tmp_path)
    with pytest.raises(ConfigError, match="admin.password: is a malformed hash"):
        parse(config(password="scrypt$salt$16384$8$1$not base64!"), base=tmp_path)
    with pytest.raises(ConfigError, match="admin.password: environment variable ADMIN_PW_X"):
        parse(config(password="env:ADMIN_PW_X"), base=tmp_path)
    with pytest.raises(ConfigError, match="admin.session_hours"):
        parse(config(password=ADMIN_PASSWORD, session_hours=0), base=tmp_path)
    monkeypatch.setenv("ADMIN_PW_X", ADMIN_PASSWORD)
    settings = parse(config(password="env:ADMIN_PW_X", vault_key_file="keys/vault"), base=tmp_path)
    assert settings.admin.password == ADMIN_PASSWORD
    assert settings.admin.vault_key_file == tmp_path / "keys" / "vault"
    assert ADMIN_PASSWORD in settings.secrets()  # redacted wherever secrets are
