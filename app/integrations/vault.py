"""The vault: every secret at rest is Fernet ciphertext under a rotatable key list.

Keys come newest first from SCRIPTBOX_SECRET_KEYS; on the embedded default a key file
is generated once in the instance folder with mode 0600. Decryption tries every key;
encryption always uses the newest, and `rotate()` re-encrypts old ciphertext.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from app.instance import FILE_MODE, private_file, private_folder

_UNREADABLE = "a stored secret cannot be decrypted with the configured keys"


class VaultError(Exception):
    """Ciphertext that no configured key can open (wrong or missing key)."""

    code = "vault_error"


class Vault:
    """Encrypts and decrypts secrets with the configured keys (newest first)."""

    def __init__(self, keys: Sequence[str | bytes]) -> None:
        if not keys:
            raise ValueError("the vault needs at least one key")
        self._fernet = MultiFernet([Fernet(key) for key in keys])

    def encrypt(self, plaintext: str) -> str:
        """Ciphertext for a secret string."""
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        """The secret string; VaultError if no key opens it."""
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken:
            raise VaultError(_UNREADABLE) from None

    def encrypt_json(self, value: Any) -> str:
        """Ciphertext for a JSON-serializable value (e.g. a token set)."""
        return self.encrypt(json.dumps(value, separators=(",", ":")))

    def decrypt_json(self, ciphertext: str) -> Any:
        """The JSON value behind ciphertext."""
        return json.loads(self.decrypt(ciphertext))

    def rotate(self, ciphertext: str) -> str:
        """The same secret re-encrypted under the newest key."""
        try:
            return self._fernet.rotate(ciphertext.encode()).decode()
        except InvalidToken:
            raise VaultError(_UNREADABLE) from None


def generate_key() -> str:
    """A fresh Fernet key."""
    return Fernet.generate_key().decode()


def load_keys(configured: Sequence[str], instance_path: str | Path) -> list[str]:
    """The configured keys, or the instance key file's (created once, mode 0600)."""
    if configured:
        return list(configured)
    path = Path(instance_path) / "vault.key"
    if not path.exists():
        private_folder(path.parent)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        except FileExistsError:
            pass  # another process created it first
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(generate_key() + "\n")
    private_file(path)  # a key file from an older install may be 0644
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]
