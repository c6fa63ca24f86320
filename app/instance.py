"""The instance folder and what it holds: the folder 0700; database and key files 0600.

Other local users of the machine must not read the sessions' signing key, the vault's
keys or the database of encrypted tokens.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from sqlalchemy.engine import make_url

FOLDER_MODE = 0o700
FILE_MODE = 0o600
# SQLite's companion files hold pages of the database: the same mode as the file.
_SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def private_folder(path: str | Path) -> Path:
    """Create the folder (and parents) if missing; make it owner-only."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True, mode=FOLDER_MODE)
    folder.chmod(FOLDER_MODE)
    return folder


def private_file(path: str | Path) -> Path:
    """Create the file if missing, owner-only from its first byte; chmod it if it exists."""
    file = Path(path)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    file.chmod(FILE_MODE)
    return file


def private_sqlite(url: str) -> None:
    """Make a SQLite database file and its companions owner-only before anyone opens it."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return
    database = Path(str(parsed.database))
    if str(database).startswith("file:"):
        return  # a URI filename: its owner chose the options
    database.parent.mkdir(parents=True, exist_ok=True, mode=FOLDER_MODE)
    private_file(database)
    # SQLite creates -wal/-shm with the database's mode; older ones may predate this.
    for suffix in _SQLITE_COMPANIONS:
        companion = database.with_name(database.name + suffix)
        if companion.exists():
            companion.chmod(FILE_MODE)
