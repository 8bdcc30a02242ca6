"""Opening a SQLite session database: recognise, check, adopt, create and migrate it.

Everything here runs on a plain ``sqlite3`` connection, off the event loop. A file
written by any Pyrogram-family client is recognised by its real tables and columns
and brought to our schema by the scripts under ``migrations/sqlite/``.
"""

from __future__ import annotations

import enum
import logging
import sqlite3

from . import _migrations
from .errors import CorruptSessionError, SchemaTooNewError, UnknownSchemaError

__all__ = ["Layout", "create_schema", "current_layout", "is_current", "prepare", "secure"]

log = logging.getLogger("pyrogram_storage.sqlite")


class Layout(enum.Enum):
    """How the ``usernames`` table is shaped; the two client families disagree.

    ``UPSTREAM`` (the default) holds both families' rows, kept in step by triggers, so
    all seven clients read and write it. ``PYROFORK`` is Pyrofork's own table, read by
    Pyrofork, Electrogram, Pyrogram and Hydrogram, but not by Kurigram, Irenogram or
    Pyrotgfork.
    """

    UPSTREAM = "upstream"
    PYROFORK = "pyrofork"


class _Family(enum.Enum):
    CLASSIC = "classic"
    PYROFORK = "pyrofork"
    UPSTREAM_V6 = "upstream_v6"
    UPSTREAM_V7 = "upstream_v7"


def secure(db: sqlite3.Connection) -> None:
    """Configure a fresh connection so a planted schema object cannot run our SQL for it."""
    db.execute("PRAGMA trusted_schema = OFF")


def is_current(db: sqlite3.Connection, database: str) -> bool:
    """Whether the database is at our latest schema already (nothing to write to open it)."""
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise CorruptSessionError(
            f"{database} is not a readable SQLite database ({exc}); the file was left untouched"
        ) from exc
    return bool(version == _migrations.latest("sqlite"))


def current_layout(db: sqlite3.Connection) -> Layout:
    """The ``usernames`` layout of a database at our schema."""
    return _detect_layout(db)


def prepare(db: sqlite3.Connection, database: str, layout: Layout) -> Layout:
    """Bring the database on ``db`` to the latest schema and return its layout.

    An empty database is created in ``layout``; a client's file is adopted; our own
    older versions are migrated step by step, one transaction each.

    :raises CorruptSessionError: not a readable SQLite database.
    :raises SchemaTooNewError: written by a newer pyrogram-storage (left untouched).
    :raises UnknownSchemaError: a SQLite database that is not a session (left untouched).
    """
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = {
            row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
    except sqlite3.DatabaseError as exc:
        raise CorruptSessionError(
            f"{database} is not a readable SQLite database ({exc}); the file was left untouched"
        ) from exc
    latest = _migrations.latest("sqlite")
    if version > latest:
        raise SchemaTooNewError(
            f"{database} has schema version {version}, but this pyrogram-storage "
            f"only knows up to {latest}; upgrade pyrogram-storage (the file was left untouched)"
        )
    if version == 0 and tables:
        family = _detect_family(db, tables)
        _check_integrity(db, database)
        _run_script(db, _migrations.script("sqlite", "adopt", f"{family.value}.sql"), version=1)
        log.info("adopted %s (a %s session file)", database, family.value)
        version = 1
    elif version == 0:
        create_schema(db, layout)
        version = 1
    for step in _migrations.numbered("sqlite")[version:]:
        _run_script(db, step.text, version=step.version)
    return _detect_layout(db)


def create_schema(db: sqlite3.Connection, layout: Layout) -> None:
    """Create the first schema version in an empty database, in ``layout``."""
    step = _migrations.numbered("sqlite")[0]
    extra = (
        _migrations.script("sqlite", "layouts", "pyrofork.sql") if layout is Layout.PYROFORK else ""
    )
    _run_script(db, step.text + "\n" + extra, version=1)


def _run_script(db: sqlite3.Connection, text: str, *, version: int) -> None:
    """Apply one migration script and set the schema version, all in one transaction."""
    db.execute("BEGIN IMMEDIATE")
    # Another opener (lock="shared") may have applied this step while we waited.
    if db.execute("PRAGMA user_version").fetchone()[0] >= version:
        db.execute("ROLLBACK")
        return
    try:
        for statement in _split_statements(text):
            db.execute(statement)
        db.execute(f"PRAGMA user_version = {int(version)}")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _split_statements(text: str) -> list[str]:
    statements = []
    current = ""
    for line in text.splitlines(keepends=True):
        if line.lstrip().startswith("--"):
            continue
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip():
        statements.append(current.strip())
    return statements


def _check_integrity(db: sqlite3.Connection, database: str) -> None:
    problems = [row[0] for row in db.execute("PRAGMA quick_check")]
    if problems != ["ok"]:
        raise CorruptSessionError(
            f"{database} is damaged ({'; '.join(problems[:3])}); the file was left untouched"
        )


def _columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in db.execute(f"PRAGMA table_info({table})")}


def _detect_family(db: sqlite3.Connection, tables: set[str]) -> _Family:
    """Tell which client wrote a file from its real tables and columns, not its version."""
    if not {"sessions", "peers", "version"} <= tables:
        raise UnknownSchemaError(
            f"not a Pyrogram-family session file: it has tables {sorted(tables)}; "
            "the file was left untouched"
        )
    sessions = _columns(db, "sessions")
    peers = _columns(db, "peers")
    required = {"dc_id", "api_id", "test_mode", "auth_key", "date", "user_id", "is_bot"}
    if not required <= sessions or not {"id", "access_hash", "type", "phone_number"} <= peers:
        raise UnknownSchemaError(
            f"unrecognised session file: sessions has {sorted(sessions)}, peers has "
            f"{sorted(peers)}; the file was left untouched"
        )
    usernames = _columns(db, "usernames") if "usernames" in tables else set()
    if usernames == {"id", "username"}:
        return _Family.UPSTREAM_V7 if "server_address" in sessions else _Family.UPSTREAM_V6
    if "username" in peers and (not usernames or {"id", "peer_id"} <= usernames):
        if usernames or "update_state" in tables:
            return _Family.PYROFORK
        return _Family.CLASSIC
    raise UnknownSchemaError(
        f"unrecognised session file: usernames has {sorted(usernames)}; the file was left untouched"
    )


def _detect_layout(db: sqlite3.Connection) -> Layout:
    # Ours has both peer_id and username; Pyrofork's has no username column.
    return Layout.PYROFORK if "username" not in _columns(db, "usernames") else Layout.UPSTREAM
