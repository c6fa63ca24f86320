"""Secret settings: the vault's keys, the session key and the sandbox's hash seed."""

from __future__ import annotations

import hmac
import os
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from app.config.rules import ConfigError
from app.instance import FILE_MODE, private_file, private_folder

DEFAULTS: dict[str, Any] = {
    # Fernet keys for secrets at rest, newest first (comma-separated in the env).
    # Empty: a key file is generated once in the instance folder (mode 0600).
    "SECRET_KEYS": [],
    # Flask session signing key; generated into the instance folder when unset.
    "SECRET_KEY": None,
    # PYTHONHASHSEED of the sandbox's workers, one per installation so that set and dict
    # order is the same when a parked run resumes (DESIGN §4). None: derived from SECRET_KEY.
    "HASH_SEED": None,
}

# Values an example file or a tutorial puts in a secret's place (deploy/scaleout.env.example).
PLACEHOLDER_SECRETS = frozenset(
    {"change-me", "changeme", "change_me", "secret", "secret-key", "your-secret-key", "..."}
)


def derived_hash_seed(secret_key: str) -> int:
    """The sandbox's hash seed when HASH_SEED is unset, derived from the session key."""
    # Every process of an installation shares SECRET_KEY (sessions need it), so every
    # worker that may resume a run gets the same seed; the key itself is not revealed.
    digest = hmac.new(secret_key.encode(), b"scriptbox sandbox hash seed", "sha256").digest()
    return int.from_bytes(digest[:4], "big")


def instance_secret(path: Path) -> str:
    """The secret kept in `path` (mode 0600), made once when it does not exist yet."""
    private_folder(path.parent)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        with os.fdopen(fd, "w") as handle:
            handle.write(os.urandom(32).hex())
    private_file(path)
    return path.read_text().strip()


def validate(config: Any) -> None:
    """Refuse a placeholder session key, a vault key that is not one, a wrong hash seed."""
    if str(config["SECRET_KEY"]).strip().lower() in PLACEHOLDER_SECRETS:
        # Sessions and the sandbox's hash seed hang on it: a copied example's value is public.
        raise ConfigError(
            "SCRIPTBOX_SECRET_KEY is a placeholder; make one with: python -c \"import secrets; "
            "print(secrets.token_hex(32))\""
        )
    for number, key in enumerate(config["SECRET_KEYS"], start=1):
        try:
            Fernet(key)
        except (TypeError, ValueError):
            raise ConfigError(
                f"SCRIPTBOX_SECRET_KEYS: key {number} is not a Fernet key (32 url-safe "
                "base64-encoded bytes); make one with: python -c \"from cryptography.fernet "
                "import Fernet; print(Fernet.generate_key().decode())\""
            ) from None
    seed = config["HASH_SEED"]
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= 4294967295:
        raise ConfigError("SCRIPTBOX_HASH_SEED must be an integer from 0 to 4294967295")
