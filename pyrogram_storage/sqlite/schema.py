"""Opening a SQLite session database: recognise, check, adopt, create and migrate it.

Everything here runs on a plain ``sqlite3`` connection, off the event loop. A file
written by any Pyrogram-family client is recognised by its real tables and columns
and brought to our schema by the scripts under ``migrations/sqlite/`` (see
``migrations/README`` for the forms a database of each version can take).

Nothing is written before the file has been recognised: a file that is not a session,
was written by a newer pyrogram-storage or a newer client, or claims to be ours but
is not, is refused and left byte-identical.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import logging
import re
import sqlite3
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from .. import _migrations
from ..errors import CorruptSessionError, MigrationError, SchemaTooNewError, UnknownSchemaError

__all__ = [
    "Layout",
    "client_family",
    "create_schema",
    "current_layout",
    "is_current",
    "prepare",
    "secure",
]

log = logging.getLogger("pyrogram_storage.sqlite")

_UNTOUCHED = "the file was left untouched"


class Layout(enum.Enum):
    """How the ``usernames`` table is shaped; the two client families disagree.

    ``UPSTREAM`` (the default) holds both families' rows, kept in step by triggers, so
    all seven clients read and write it. ``PYROFORK`` is Pyrofork's own table, read by
    Pyrofork, Electrogram, Pyrogram and Hydrogram, but not by Kurigram, Irenogram or
    Pyrotgfork. A file adopted from Kurigram, Irenogram or Pyrotgfork keeps the names
    that client wrote in its own rows only (``migrations/README``).
    """

    UPSTREAM = "upstream"
    PYROFORK = "pyrofork"


class _Family(enum.Enum):
    """The client lineage that wrote a file; the value names its adoption script."""

    CLASSIC = "classic"
    PYROFORK = "pyrofork"
    UPSTREAM_V6 = "upstream_v6"
    UPSTREAM_V7 = "upstream_v7"


# The newest ``version`` table number each lineage has written, and who writes it. A higher
# number means a client release newer than this code: its schema may need things we cannot
# know, so such a file is refused rather than rewritten.
_NEWEST_CLIENT_VERSION = {
    _Family.CLASSIC: (3, "Pyrogram/Hydrogram"),
    _Family.PYROFORK: (4, "Pyrofork/Electrogram"),
    _Family.UPSTREAM_V6: (7, "Kurigram/Irenogram/Pyrotgfork"),
    _Family.UPSTREAM_V7: (7, "Kurigram/Irenogram/Pyrotgfork"),
}

# The columns every version-1 database has, in either layout and however it was made.
_OUR_COLUMNS = {
    "sessions": {
        "dc_id",
        "server_address",
        "port",
        "api_id",
        "test_mode",
        "auth_key",
        "date",
        "user_id",
        "is_bot",
    },
    "peers": {"id", "access_hash", "type", "username", "phone_number", "last_update_on"},
    "usernames": {"id", "peer_id", "last_update_on"},
    "update_state": {"id", "pts", "qts", "date", "seq"},
    "version": {"number"},
}


class _SchemaObject(NamedTuple):
    type: str
    name: str
    table: str
    sql: str | None


def _damage(exc: sqlite3.DatabaseError) -> bool:
    """Whether reading the header failed because the file is not a (sound) database."""
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    if code is not None:
        return code & 0xFF in (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB
    text = str(exc).lower()
    return "not a database" in text or "malformed" in text


def secure(db: sqlite3.Connection) -> None:
    """Configure a freshly opened connection so that a planted schema cannot run code.

    With ``trusted_schema`` off, triggers, views, column defaults and index expressions
    stored in the file may only call SQL functions SQLite marks innocuous: a trigger in a
    hostile file cannot call ``load_extension``, ``fts3_tokenizer`` or an application
    function. Call it on every connection before its first statement; :func:`prepare`
    calls it too.
    """
    db.execute("PRAGMA trusted_schema = OFF")


def is_current(db: sqlite3.Connection, database: str) -> bool:
    """Whether the database is at our latest schema already (nothing to write to open it).

    Reads only. A database that claims our latest version but does not have our tables
    and columns, or has triggers or views we do not create, raises as :func:`prepare`
    does.

    :raises CorruptSessionError: not a readable SQLite database.
    :raises UnknownSchemaError: it claims our schema but is not ours (left untouched).
    """
    with _one_read(db):
        version, objects = _version_and_objects(db, database)
        if version >= 1:
            _check_ours(db, database, objects)  # says it is ours: it must look it
    return bool(version == _migrations.latest("sqlite"))


def current_layout(db: sqlite3.Connection) -> Layout:
    """The ``usernames`` layout of a database at our schema."""
    return _detect_layout(db)


def prepare(db: sqlite3.Connection, database: str, layout: Layout) -> Layout:
    """Bring the database on ``db`` to the latest schema and return its layout.

    An empty database is created in ``layout``; a client's file is adopted (triggers and
    views the client does not create are dropped, with a warning); our own older
    versions are migrated step by step, one transaction each, each step followed by its
    companion script for the database's layout, if it has one. Every check runs before
    anything is written.

    :raises CorruptSessionError: not a readable SQLite database, or a damaged one.
    :raises SchemaTooNewError: written by a newer pyrogram-storage, or by a client
        release newer than this one knows (left untouched).
    :raises UnknownSchemaError: a SQLite database that is not a session, or that claims
        to be ours but has other tables, triggers or views (left untouched).
    """
    secure(db)
    latest = _migrations.latest("sqlite")
    # Every check reads one snapshot of the file: another opener (lock="shared") may be
    # adopting or migrating it meanwhile, and a check must never mix its before and after
    # (a user_version of 0 read before its commit, a version table read after it).
    with _one_read(db):
        version, objects = _version_and_objects(db, database)
        if version > latest:
            raise SchemaTooNewError(
                f"{database} has schema version {version}, but this pyrogram-storage "
                f"only knows up to {latest}; upgrade pyrogram-storage ({_UNTOUCHED})"
            )
        if version < 0:
            raise UnknownSchemaError(
                f"{database} has schema version {version}, which no pyrogram-storage writes: "
                f"not a session file of ours; {_UNTOUCHED}"
            )
        family = None
        if version == 0 and objects:
            family = _detect_family(db, {o.name for o in objects if o.type == "table"})
            _check_client_version(db, database, family)
            _check_integrity(db, database)
        elif version > 0:
            _check_ours(db, database, objects)
    # Each write step below runs under the write lock and is skipped if another opener
    # applied it meanwhile (_run_script), so what was decided above stays right.
    if family is not None:
        planted = _planted(objects)
        if planted:
            log.warning(
                "%s: dropping %s that no Pyrogram-family client creates, before adopting it",
                database,
                ", ".join(f"{o.type} {o.name!r}" for o in planted),
            )
        drops = "".join(f"DROP {o.type.upper()} IF EXISTS {_quoted(o.name)};\n" for o in planted)
        adopt = _migrations.script("sqlite", "adopt", f"{family.value}.sql")
        with _roomy_cache(db):
            _run_script(db, drops + adopt, version=1)
        log.info("adopted %s (a %s session file)", database, family.value)
        version = 1
    elif version == 0:
        create_schema(db, layout)
        version = 1
    layout = _detect_layout(db)
    for step in _migrations.numbered("sqlite")[version:]:
        unknown = {name for name, _ in step.variants} - {known.value for known in Layout}
        if unknown:
            raise MigrationError(
                f"sqlite migration {step.version:04d}_{step.name} has variants for unknown "
                f"layouts {sorted(unknown)}; reinstall pyrogram-storage"
            )
        _run_script(db, step.text_for(layout.value), version=step.version)
        layout = _detect_layout(db)
    return layout


@contextlib.contextmanager
def _one_read(db: sqlite3.Connection) -> Iterator[None]:
    """Run the reads inside in one read transaction: one consistent snapshot of the file."""
    db.execute("BEGIN")
    try:
        yield
    finally:
        db.execute("ROLLBACK")


def _version_and_objects(db: sqlite3.Connection, database: str) -> tuple[int, list[_SchemaObject]]:
    """Our schema version (``PRAGMA user_version``) and every schema object of the file.

    :raises CorruptSessionError: not a readable SQLite database.
    """
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        return version, _schema_objects(db)
    except sqlite3.DatabaseError as exc:
        if not _damage(exc):
            raise  # a full disk, a lock, an I/O error: the engine says which
        raise CorruptSessionError(
            f"{database} is not a readable SQLite database ({exc}); {_UNTOUCHED}"
        ) from exc


def create_schema(db: sqlite3.Connection, layout: Layout) -> None:
    """Create the first schema version in an empty database, in ``layout``."""
    step = _migrations.numbered("sqlite")[0]
    extra = (
        _migrations.script("sqlite", "layouts", "pyrofork.sql") if layout is Layout.PYROFORK else ""
    )
    _run_script(db, step.text + "\n" + extra, version=1)


def _run_script(db: sqlite3.Connection, text: str, *, version: int) -> None:
    """Apply one migration script and set the schema version, all in one transaction.

    A process killed in the middle leaves the file as it was: SQLite rolls the
    transaction back on the next open, and the step runs again.
    """
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


@contextlib.contextmanager
def _roomy_cache(db: sqlite3.Connection) -> Iterator[None]:
    """Give one big transaction a page cache the size of the file (at most 256 MiB).

    Adopting a file rewrites most of its pages in one transaction. With the default
    2 MiB cache, SQLite spills dirty pages to the file mid-transaction, and in
    rollback-journal mode every spill first syncs the journal: dozens of fsyncs for a
    big file instead of one. Pages are allocated as they are used, then freed.
    """
    previous = db.execute("PRAGMA cache_size").fetchone()[0]
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    page_size = db.execute("PRAGMA page_size").fetchone()[0]
    kib = min(max(pages * page_size // 1024, 2048), _MAX_ADOPTION_CACHE_KIB)
    db.execute(f"PRAGMA cache_size = {-int(kib)}")
    try:
        yield
    finally:
        db.execute(f"PRAGMA cache_size = {int(previous)}")


_MAX_ADOPTION_CACHE_KIB = 256 * 1024


_split_statements = _migrations.statements


def _schema_objects(db: sqlite3.Connection) -> list[_SchemaObject]:
    """Every table, index, trigger and view of the main database but SQLite's own."""
    rows = db.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite\\_%' "
        "ESCAPE '\\'"
    ).fetchall()
    return [_SchemaObject(*row) for row in rows]


def _check_integrity(db: sqlite3.Connection, database: str) -> None:
    problems = [row[0] for row in db.execute("PRAGMA quick_check")]
    if problems != ["ok"]:
        raise CorruptSessionError(
            f"{database} is damaged ({'; '.join(problems[:3])}); {_UNTOUCHED}"
        )


def _columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in db.execute(f"PRAGMA table_info({_quoted(table)})")}


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def client_family(db: sqlite3.Connection) -> str:
    """Which client lineage wrote a file we have not adopted: ``classic``, ``pyrofork``,
    ``upstream_v6`` or ``upstream_v7`` (read only).

    :raises UnknownSchemaError: it is not a Pyrogram-family session file.
    """
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    return _detect_family(db, tables).value


def _detect_family(db: sqlite3.Connection, tables: set[str]) -> _Family:
    """Tell which client wrote a file from its real tables and columns, not its version."""
    if not {"sessions", "peers", "version"} <= tables:
        raise UnknownSchemaError(
            f"not a Pyrogram-family session file: it has tables {sorted(tables)}; {_UNTOUCHED}"
        )
    sessions = _columns(db, "sessions")
    peers = _columns(db, "peers")
    required = {"dc_id", "api_id", "test_mode", "auth_key", "date", "user_id", "is_bot"}
    if not required <= sessions or not {"id", "access_hash", "type", "phone_number"} <= peers:
        raise UnknownSchemaError(
            f"unrecognised session file: sessions has {sorted(sessions)}, peers has "
            f"{sorted(peers)}; {_UNTOUCHED}"
        )
    usernames = _columns(db, "usernames") if "usernames" in tables else set()
    if usernames == {"id", "username"}:
        return _Family.UPSTREAM_V7 if "server_address" in sessions else _Family.UPSTREAM_V6
    if "username" in peers and (not usernames or {"id", "peer_id"} <= usernames):
        if usernames or "update_state" in tables:
            return _Family.PYROFORK
        return _Family.CLASSIC
    raise UnknownSchemaError(
        f"unrecognised session file: usernames has {sorted(usernames)}; {_UNTOUCHED}"
    )


def _check_client_version(db: sqlite3.Connection, database: str, family: _Family) -> None:
    """Refuse a client file stamped with a schema version newer than its lineage's newest."""
    numbers = [row[0] for row in db.execute("SELECT number FROM version")]
    if any(type(number) is not int for number in numbers):
        raise UnknownSchemaError(
            f"{database}: its version table holds {numbers!r}, not a schema number; {_UNTOUCHED}"
        )
    newest, clients = _NEWEST_CLIENT_VERSION[family]
    if numbers and max(numbers) > newest:
        raise SchemaTooNewError(
            f"{database} was written by a {clients} release newer than this pyrogram-storage "
            f"knows: its client schema version is {max(numbers)}, and the newest known is "
            f"{newest}. Upgrade pyrogram-storage, or open the file with that client ({_UNTOUCHED})"
        )


def _check_ours(db: sqlite3.Connection, database: str, objects: list[_SchemaObject]) -> None:
    """Refuse a database that says it is ours (user_version >= 1) but does not look it."""
    tables = {o.name for o in objects if o.type == "table"}
    missing = sorted(set(_OUR_COLUMNS) - tables)
    if missing:
        raise UnknownSchemaError(
            f"{database} says it is a pyrogram-storage session but has no table "
            f"{', '.join(missing)}; {_UNTOUCHED}"
        )
    for table, wanted in _OUR_COLUMNS.items():
        absent = sorted(wanted - _columns(db, table))
        if absent:
            raise UnknownSchemaError(
                f"{database} says it is a pyrogram-storage session but its {table} table "
                f"lacks {', '.join(absent)}; {_UNTOUCHED}"
            )
    planted = _planted(objects)
    if planted:
        names = ", ".join(f"{o.type} {o.name!r} (on {o.table})" for o in planted)
        raise UnknownSchemaError(
            f"{database} has {names} that neither pyrogram-storage nor a Pyrogram-family "
            "client creates. Triggers run on every write and can copy the auth key "
            "elsewhere; if you added them yourself, drop them with the sqlite3 shell. " + _UNTOUCHED
        )


def _planted(objects: Iterable[_SchemaObject]) -> list[_SchemaObject]:
    """The triggers and views that no migration script of ours (or client) creates."""
    known = _known_triggers()
    return [
        o
        for o in objects
        if o.type == "view" or (o.type == "trigger" and _normalized(o.sql or "") not in known)
    ]


@functools.cache
def _known_triggers() -> frozenset[str]:
    """Every trigger our scripts create, ours and the clients' that adoption keeps.

    Scripts are never edited once released, so a trigger a later step replaces still
    appears in the script that created it, and older files are still recognised.
    """
    return frozenset(
        _normalized(statement)
        for _, text in _migrations.scripts("sqlite")
        for statement in _split_statements(text)
        if _CREATE_TRIGGER.match(statement)
    )


_CREATE_TRIGGER = re.compile(r"^CREATE\s+TRIGGER\s+(IF\s+NOT\s+EXISTS\s+)?", re.IGNORECASE)


def _normalized(sql: str) -> str:
    """A trigger's text as SQLite stores it (no IF NOT EXISTS), with whitespace collapsed."""
    text = " ".join(sql.split()).rstrip(";").rstrip()
    return _CREATE_TRIGGER.sub("CREATE TRIGGER ", text, count=1)


def _detect_layout(db: sqlite3.Connection) -> Layout:
    # Ours has both peer_id and username; Pyrofork's has no username column.
    return Layout.PYROFORK if "username" not in _columns(db, "usernames") else Layout.UPSTREAM
