"""The app factory, configuration, migrations and the vault."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from alembic import command
from cryptography.fernet import Fernet

from app import create_app
from app.config import ConfigError
from app.integrations.vault import Vault, VaultError, load_keys
from app.migrate import alembic_config
from tests.conftest import make_app


def test_healthz_answers_from_a_migrated_database(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    response = app.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_migrations_match_the_models(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'check.sqlite'}"
    config = alembic_config(url)
    command.upgrade(config, "head")
    command.check(config)  # raises when the models need a migration the repo lacks


@pytest.mark.postgres
def test_migrations_match_the_models_on_postgresql(postgres_url: str) -> None:
    # It found a foreign key that SQLite databases had and PostgreSQL ones lacked.
    config = alembic_config(postgres_url)
    command.upgrade(config, "head")
    command.check(config)
    command.downgrade(config, "0012")  # each later revision's downgrade runs
    command.upgrade(config, "head")
    command.check(config)


def test_environment_configures_the_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCRIPTBOX_DATABASE_URL", f"sqlite:///{tmp_path / 'env.sqlite'}")
    monkeypatch.setenv("SCRIPTBOX_PUBLIC_URL", "https://scripts.example.com")
    monkeypatch.setenv("SCRIPTBOX_RUN_MAX_CALLS", "7")
    monkeypatch.setenv("SCRIPTBOX_SECRET_KEYS", f"{Fernet.generate_key().decode()}")
    app = create_app()
    assert app.config["PUBLIC_URL"] == "https://scripts.example.com"
    assert app.config["RUN_MAX_CALLS"] == 7
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert len(app.config["SECRET_KEYS"]) == 1


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("PUBLIC_URL", "scripts.example.com", "SCRIPTBOX_PUBLIC_URL"),
        ("PUBLIC_URL", "https://x.example/", "trailing"),
        ("EXECUTOR", "threads", "SCRIPTBOX_EXECUTOR"),
        ("RUN_WALL_TIME_S", 0, "SCRIPTBOX_RUN_WALL_TIME_S"),
        ("RUN_MAX_CALLS", "many", "SCRIPTBOX_RUN_MAX_CALLS"),
    ],
)
def test_bad_settings_refuse_to_start(
    tmp_path: Path, setting: str, value: object, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        make_app(tmp_path, **{setting: value})


def test_embedded_default_generates_a_private_key_file_once(tmp_path: Path) -> None:
    keys = load_keys([], tmp_path)
    key_file = tmp_path / "vault.key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert load_keys([], tmp_path) == keys  # the same key the second time
    assert Vault(keys).decrypt(Vault(keys).encrypt("s3cret")) == "s3cret"


def test_vault_rotation_reencrypts_under_the_newest_key() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    ciphertext = Vault([old]).encrypt("token-123")
    rotated_vault = Vault([new, old])
    assert rotated_vault.decrypt(ciphertext) == "token-123"
    rotated = rotated_vault.rotate(ciphertext)
    assert Vault([new]).decrypt(rotated) == "token-123"  # the old key is no longer needed
    with pytest.raises(VaultError):
        Vault([new]).decrypt(ciphertext)
    assert "token-123" not in rotated
