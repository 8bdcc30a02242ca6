"""Session files as files: what one is, and a consistent copy of one.

:func:`identify` says what a file is without changing it (ours, a client's, Telethon's,
or none; which clients wrote it, its schema version): it opens nothing for writing,
takes no lock and leaves no side file behind. :func:`backup` copies a live file
consistently (its write-ahead log included) into a new private file, and
:func:`write_private` writes a secret into a file only its owner reads.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .. import _files, _migrations
from ..errors import CorruptDataError, MigrationError, NotFoundError
from ..sqlite import FILE_EXTENSION
from ..sqlite import schema as sqlite_schema
from .telethon import is_telethon_file

__all__ = ["FileIdentity", "backup", "identify", "session_file", "write_private"]

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
    from ..registry import display

    raise NotFoundError(f"no such session file: {display(str(path))}")


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


def backup(path: str | os.PathLike[str], destination: str | os.PathLike[str] | None = None) -> Path:
    """Copy the SQLite file ``path`` consistently (its WAL included) into ``destination``,
    a new file created 0600; ``path`` is only read. Return the copy's path.

    :param destination: by default ``PATH.bak-<UTC time>`` (``-2``, ``-3``... when taken).
    :raises FileExistsError: ``destination`` exists.
    :raises CorruptDataError: ``path`` cannot be read as a SQLite database.
    """
    source = Path(path)
    target = _backup_name(source) if destination is None else Path(destination)
    os.close(_files.create_private(target))
    try:
        reader = _files.reading_connection(source)
        try:
            copy = sqlite3.connect(target)
            try:
                reader.backup(copy)
            finally:
                copy.close()
        finally:
            reader.close()
    except sqlite3.DatabaseError as exc:
        target.unlink(missing_ok=True)
        raise CorruptDataError(f"cannot copy {source}: {exc}") from exc
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return target


def _backup_name(path: Path) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    candidate = path.with_name(f"{path.name}.bak-{stamp}")
    counter = 1
    while candidate.exists():
        counter += 1
        candidate = path.with_name(f"{path.name}.bak-{stamp}-{counter}")
    return candidate


def write_private(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` through a 0600 temporary file, replacing it atomically
    (what the command line does with a session string)."""
    target = Path(path)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(temporary, 0o600)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
