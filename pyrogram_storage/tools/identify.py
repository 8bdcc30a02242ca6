"""What a session file is, read without changing it: ours, a client's, Telethon's, or none.

:func:`identify` answers what the command line used to find out with probes of its own:
which clients wrote a file, its schema version, whether it is a Telethon session. It
opens nothing for writing, takes no lock and leaves no side file behind.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from .. import _files, _migrations
from ..errors import MigrationError, NotFoundError
from ..sqlite import FILE_EXTENSION
from ..sqlite import schema as sqlite_schema
from .telethon import is_telethon_file

__all__ = ["FileIdentity", "identify"]

OURS, CLIENT, TELETHON, EMPTY, NOT_SQLITE, UNKNOWN = (
    "pyrogram-storage",
    "client",
    "telethon",
    "empty",
    "not-sqlite",
    "unknown",
)

_CLIENTS = {
    "upstream_v6": ("upstream", "Kurigram, Irenogram or Pyrotgfork"),
    "upstream_v7": ("upstream", "Kurigram, Irenogram or Pyrotgfork"),
    "pyrofork": ("pyrofork", "Pyrofork or Electrogram"),
    "classic": ("classic", "Pyrogram 2.0.106 or Hydrogram"),
}


@dataclass(frozen=True)
class FileIdentity:
    """What :func:`identify` found.

    :param path: the file.
    :param kind: ``"pyrogram-storage"`` (ours, at ``schema_version``), ``"client"`` (a
        Pyrogram-family client's file we have not adopted), ``"telethon"``, ``"empty"``
        (0 bytes, or SQLite without a table), ``"not-sqlite"`` or ``"unknown"`` (SQLite,
        but no session this library knows).
    :param family: the client lineage of a client file: ``upstream``, ``pyrofork`` or
        ``classic``.
    :param clients: the clients that write such files, for people to read.
    :param schema_version: our schema version (``PRAGMA user_version``; 0 for a client
        file), None when not SQLite.
    :param client_version: the number in the file's ``version`` table, if any.
    :param latest: the schema version this release writes.
    """

    path: Path
    kind: str
    family: str | None = None
    clients: str | None = None
    schema_version: int | None = None
    client_version: int | None = None
    latest: int = 0

    @property
    def is_session(self) -> bool:
        """Whether a :class:`~pyrogram_storage.FileStorage` can open it (ours or a client's)."""
        return self.kind in (OURS, CLIENT)

    @property
    def telethon(self) -> bool:
        """Whether it is a Telethon session file (read it through ``telethon:PATH``)."""
        return self.kind == TELETHON

    @property
    def needs_migration(self) -> bool:
        """Whether opening it for writing would migrate (or adopt) it first."""
        return self.is_session and (self.schema_version or 0) < self.latest


def session_file(location: str | os.PathLike[str]) -> Path:
    """The file a location names: ``PATH``, ``PATH.session`` (the suffix may be left
    out), ``file:PATH`` or ``sqlite:PATH``.

    :raises NotFoundError: neither ``PATH`` nor ``PATH.session`` is a file.
    """
    text = os.fspath(location)
    scheme, colon, rest = text.partition(":")
    if colon and scheme.lower() in ("file", "sqlite"):
        text = rest
    path = Path(text).expanduser()
    if os.path.isfile(path):
        return path
    if path.suffix != FILE_EXTENSION:
        with_suffix = path.with_name(path.name + FILE_EXTENSION) if path.name else path
        if os.path.isfile(with_suffix):
            return with_suffix
        path = with_suffix
    shown = str(path) if len(str(path)) <= 80 else str(path)[:12] + "…"
    raise NotFoundError(f"no such session file: {shown}")


def identify(location: str | os.PathLike[str]) -> FileIdentity:
    """Tell what session file ``location`` names (see :func:`session_file`), read-only.

    :raises NotFoundError: there is no such file.
    """
    path = session_file(location)
    latest = _migrations.latest("sqlite")
    if os.path.getsize(path) == 0:
        return FileIdentity(path, EMPTY, latest=latest)
    try:
        db = _files.reading_connection(path)
    except sqlite3.Error:
        return FileIdentity(path, NOT_SQLITE, latest=latest)
    try:
        try:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            tables = {
                row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
        except sqlite3.DatabaseError:
            return FileIdentity(path, NOT_SQLITE, latest=latest)
        if not tables:
            return FileIdentity(path, EMPTY, schema_version=version, latest=latest)
        if is_telethon_file(tables):
            return FileIdentity(path, TELETHON, latest=latest)
        client_version = _client_version(db) if "version" in tables else None
        if version >= 1:
            return FileIdentity(path, OURS, None, None, version, client_version, latest)
        try:
            family, clients = _CLIENTS[sqlite_schema.client_family(db)]
        except (MigrationError, sqlite3.DatabaseError, KeyError):
            return FileIdentity(path, UNKNOWN, schema_version=version, latest=latest)
        return FileIdentity(path, CLIENT, family, clients, 0, client_version, latest)
    finally:
        db.close()


def _client_version(db: sqlite3.Connection) -> int | None:
    try:
        row = db.execute("SELECT MAX(number) FROM version").fetchone()
    except sqlite3.DatabaseError:
        return None
    return row[0] if row and type(row[0]) is int else None
