"""The SQLite engine shared by :class:`~pyrogram_storage.FileStorage` and
:class:`~pyrogram_storage.MemoryStorage`.

A file session has two connections. The *writer* lives on a worker
:class:`~pyrogram_storage._worker.Lane` (opening, adopting and migrating the file,
storing batches of writes, checkpoints, reading peers in bulk), so the event loop
never waits on the disk or on another process's lock. The *reader* answers indexed
point lookups (a peer by id, username or phone, the update states) on the event loop
itself: in WAL mode it never waits for the writer, and a lookup of a few microseconds
costs less there than the thread hop that would avoid it. Should it ever find the
database busy, the lookup moves to the writer's lane. An in-memory session has one
connection, used on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import sqlite3
import sys
from array import array
from collections.abc import Callable, Sequence
from itertools import chain
from typing import Any, TypeVar

from .. import _files
from .._index import TYPE_CODES, Columns, IdTable
from .._pending import Changes
from .._worker import Lane
from ..base import Storage
from ..errors import InvalidTypeError, InvalidValueError, StorageClosedError, StorageError
from ..types import DEFAULT_DC_ID, SESSION_FIELDS, Peer, PeerType, SessionData, UpdateState
from . import _snapshot as snapshot
from . import schema as sqlite_schema
from .schema import Layout

__all__ = ["Layout", "SQLiteStorage"]

log = logging.getLogger("pyrogram_storage.sqlite")

T = TypeVar("T")

_CHUNK = 500  # ids per "IN (...)" query, well under SQLite's variable limit
_BOOL_FIELDS = frozenset({"test_mode", "is_bot"})


_SESSION_COLUMNS = ", ".join(SESSION_FIELDS)
_PEER_COLUMNS = "id, access_hash, type, username, phone_number, last_update_on"
# The upstream layout's usernames table also carries Pyrofork's columns: (id = peer id,
# username) rows for the upstream-dev clients, and (id = username, peer_id) rows for
# Pyrofork and Electrogram; triggers in the schema keep the two kinds in step.
# One peer and its usernames in one statement, a row per username (in the order they
# were written). In the upstream layout the (id = peer id, username) rows hold every
# username: the schema's triggers add one for each name Pyrofork's clients write.
_PEER_AND_NAMES = {
    Layout.UPSTREAM: "SELECT p.id, p.access_hash, p.type, p.username, p.phone_number, "
    "p.last_update_on, u.username FROM peers p LEFT JOIN usernames u "
    "ON u.id = p.id AND u.username IS NOT NULL WHERE p.id = ? ORDER BY u.rowid",
    Layout.PYROFORK: "SELECT p.id, p.access_hash, p.type, p.username, p.phone_number, "
    "p.last_update_on, CAST(u.id AS TEXT) FROM peers p LEFT JOIN usernames u "
    "ON u.peer_id = p.id WHERE p.id = ? ORDER BY u.rowid",
}
_ALL_NAMES = {  # every (peer id, username) row, in the order written
    Layout.UPSTREAM: "SELECT id, username, rowid FROM usernames WHERE username IS NOT NULL "
    "UNION ALL SELECT peer_id, CAST(id AS TEXT), rowid FROM usernames "
    "WHERE peer_id IS NOT NULL ORDER BY 3",
    Layout.PYROFORK: "SELECT peer_id, id, rowid FROM usernames WHERE peer_id IS NOT NULL "
    "ORDER BY rowid",
}
_NAMES_BETWEEN = {  # the usernames of the peers with ids in [?1, ?2], in the order written
    Layout.UPSTREAM: "SELECT id, username, rowid FROM usernames "
    "WHERE id >= ?1 AND id <= ?2 AND username IS NOT NULL "
    "UNION ALL SELECT peer_id, CAST(id AS TEXT), rowid FROM usernames "
    "WHERE peer_id >= ?1 AND peer_id <= ?2 ORDER BY 1, 3",
    Layout.PYROFORK: "SELECT peer_id, id, rowid FROM usernames "
    "WHERE peer_id >= ?1 AND peer_id <= ?2 ORDER BY 1, 3",
}
_NAMES_OF_MANY = {
    Layout.UPSTREAM: "SELECT id, username, rowid FROM usernames "
    "WHERE id IN ({marks}) AND username IS NOT NULL "
    "UNION ALL SELECT peer_id, CAST(id AS TEXT), rowid FROM usernames WHERE peer_id IN ({marks}) "
    "ORDER BY 3",
    Layout.PYROFORK: "SELECT peer_id, id, rowid FROM usernames WHERE peer_id IN ({marks}) "
    "ORDER BY rowid",
}
# Every peer holding a username: classic clients keep it only in peers.username, the
# others in the usernames table (the upstream layout's (peer id, username) rows hold every
# name, Pyrofork's are mirrored into them). Two index lookups; the newest is picked after.
_PEER_COLUMNS_OF_P = "p.id, p.access_hash, p.type, p.username, p.phone_number, p.last_update_on"
_HOLDERS = {
    Layout.UPSTREAM: f"SELECT {_PEER_COLUMNS_OF_P} FROM peers p WHERE p.username = ?1 "
    f"UNION ALL SELECT {_PEER_COLUMNS_OF_P} FROM usernames u JOIN peers p ON p.id = u.id "
    "WHERE u.username = ?1",
    Layout.PYROFORK: f"SELECT {_PEER_COLUMNS_OF_P} FROM peers p WHERE p.username = ?1 "
    f"UNION ALL SELECT {_PEER_COLUMNS_OF_P} FROM usernames u JOIN peers p ON p.id = u.peer_id "
    "WHERE u.id = ?1",
}
_DELETE_USERNAMES = {  # of many peers: "{marks}" becomes one "?" per peer
    Layout.UPSTREAM: (
        "DELETE FROM usernames WHERE id IN ({marks})",
        "DELETE FROM usernames WHERE peer_id IN ({marks})",
    ),
    Layout.PYROFORK: ("DELETE FROM usernames WHERE peer_id IN ({marks})",),
}
_INSERT_USERNAME = {
    Layout.UPSTREAM: "INSERT INTO usernames (id, username, last_update_on) VALUES (?, ?, ?)",
    Layout.PYROFORK: "REPLACE INTO usernames (peer_id, id, last_update_on) VALUES (?, ?, ?)",
}
_INSERT_USERNAME_IF_STORED = {  # set_usernames: a peer that is not stored is ignored
    Layout.UPSTREAM: "INSERT INTO usernames (id, username, last_update_on) "
    "SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM peers WHERE id = ?1)",
    Layout.PYROFORK: "REPLACE INTO usernames (peer_id, id, last_update_on) "
    "SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM peers WHERE id = ?1)",
}
_REPLACE_PEER = (
    "REPLACE INTO peers (id, access_hash, type, username, phone_number, last_update_on) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
_UPSERT_PEER_KEEP_USERNAME = (
    "INSERT INTO peers (id, access_hash, type, phone_number, last_update_on) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
    "access_hash = excluded.access_hash, type = excluded.type, "
    "phone_number = excluded.phone_number, last_update_on = excluded.last_update_on"
)
_MERGE_STATE = (
    "INSERT INTO update_state (id, pts, qts, date, seq) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (id) DO UPDATE SET pts = COALESCE(excluded.pts, pts), "
    "qts = COALESCE(excluded.qts, qts), date = COALESCE(excluded.date, date), "
    "seq = COALESCE(excluded.seq, seq)"
)
_REPLACE_STATE = "REPLACE INTO update_state (id, pts, qts, date, seq) VALUES (?, ?, ?, ?, ?)"


class SQLiteStorage(Storage):
    """The SQLite engine; use :class:`FileStorage` or :class:`MemoryStorage`.

    :param database: a path, or ``":memory:"``.
    :param layout: the ``usernames`` layout of a *new* database; an existing one keeps its own.
    :param busy_timeout: seconds to wait for another connection's write lock before
        raising :class:`SessionLocked`.
    """

    probes_writes = True  # point reads run on the loop: a few microseconds
    _threaded: bool = True
    """Whether the writer lives on a worker lane (files) or on the event loop (memory)."""

    def __init__(
        self,
        name: str,
        database: str,
        *,
        layout: Layout | str = Layout.UPSTREAM,
        busy_timeout: float = 5.0,
        **options: Any,
    ) -> None:
        super().__init__(name, **options)
        self.database = database
        self.layout = Layout(layout)
        if isinstance(busy_timeout, bool) or not isinstance(busy_timeout, (int, float)):
            raise InvalidTypeError(
                f"busy_timeout must be a number, not {type(busy_timeout).__name__}"
            )
        if not (math.isfinite(busy_timeout) and busy_timeout >= 0):
            raise InvalidValueError(f"busy_timeout must be 0 seconds or more, not {busy_timeout}")
        self.busy_timeout = float(busy_timeout)
        self._lane = Lane()
        self._db: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._holders_found: tuple[str, list[Any]] | None = None  # the last username asked
        self._snapshot: snapshot.Reader | None = None  # the id snapshot taken at open
        self._snapshot_kept = False  # take() left a usable snapshot in the file
        self._peers_written = False  # since open: the snapshot must be written anew
        self._version: int | None = None  # the writer's data_version when it took the lock

    # -- hooks for FileStorage and MemoryStorage (they run off the event loop for files) --

    def _start(self) -> None:
        """Prepare what must exist before SQLite opens the database (files, locks)."""

    def _stop(self) -> None:
        """Undo :meth:`_start` once the connections are closed."""

    def _connect(self) -> sqlite3.Connection:
        """Open the writer connection."""
        return sqlite3.connect(
            self.database, isolation_level=None, check_same_thread=False, timeout=self.busy_timeout
        )

    def _connect_reader(self) -> sqlite3.Connection | None:
        """Open the connection for lookups on the event loop (None: use the writer)."""
        return None

    def _holds_write_lock(self) -> bool:
        """Whether the writer keeps SQLite's write lock while the storage is open.

        Then no other program can commit to the file while this storage holds what
        is stored in memory (another client opening the same file would have it
        change under us), except in the instant between one batch and the next,
        which the writer checks (``PRAGMA data_version``) and reports.
        """
        return False

    def _prepare_schema(self, db: sqlite3.Connection) -> sqlite3.Connection:
        """Create, adopt or migrate the schema; return the connection to use from now on."""
        self.layout = sqlite_schema.prepare(db, self.database, self.layout)
        return db

    def _configure(self, db: sqlite3.Connection) -> None:
        """Set per-connection pragmas once the schema is known good."""

    def _disconnect(self, db: sqlite3.Connection) -> None:
        """Let go of the writer once everything is stored (MemoryStorage keeps it)."""
        db.close()

    def _error(self, exc: sqlite3.Error) -> StorageError:
        """Translate a SQLite error into ours; the message never quotes stored data."""
        return _files.sqlite_error(exc, self.database, self.busy_timeout)

    # -- running statements -----------------------------------------------------------------

    async def _off_loop(self, work: Callable[[], T]) -> T:
        """Run ``work`` on this storage's lane (files) or right here (memory)."""
        try:
            if self._threaded:
                return await self._lane.run(work)
            return work()
        except sqlite3.Error as exc:
            # Not chained: SQLite's message about undecodable text quotes the stored bytes.
            raise self._error(exc) from (None if _files.quotes_data(exc) else exc)

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` with the writer connection."""
        db = self._db
        if db is None:
            raise StorageClosedError(f"{self!r} is closed")
        return await self._off_loop(lambda: fn(db))

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run a point read on the event loop's connection; if busy, on the writer's lane."""
        reader = self._reader
        if reader is None:
            raise StorageClosedError(f"{self!r} is closed")
        try:
            return fn(reader)
        except sqlite3.OperationalError as exc:
            if self._threaded and _files.sqlite_failure(exc) == _files.LOCKED:
                return await self._run(fn)
            raise self._error(exc) from (None if _files.quotes_data(exc) else exc)
        except sqlite3.Error as exc:
            raise self._error(exc) from (None if _files.quotes_data(exc) else exc)

    # -- lifecycle primitives -----------------------------------------------------------------

    async def _open(self) -> SessionData:
        opened: list[sqlite3.Connection] = []
        self._snapshot = None
        self._snapshot_kept = self._peers_written = False

        def work() -> tuple[sqlite3.Connection, sqlite3.Connection | None, SessionData]:
            self._start()
            try:
                db = self._connect()
                reader = None
                try:
                    sqlite_schema.secure(db)
                    db = self._prepare_schema(db)
                    self._configure(db)
                    session = _select_session(db)
                    if session is None:
                        if not self.read_only:
                            db.execute(
                                "INSERT INTO sessions (dc_id, date) VALUES (?, 0)", (DEFAULT_DC_ID,)
                            )
                        session = SessionData()
                    reader = self._connect_reader()
                    if self._holds_write_lock():
                        db.execute("PRAGMA shrink_memory")  # the pages open read: none held now
                        self._version = _lean_hold(db, None)[1]
                        if self._threaded:
                            plan = None
                            with contextlib.suppress(sqlite3.Error):  # then left to triggers
                                plan = snapshot.take(db)
                            self._snapshot_kept = plan is not None
                            self._snapshot = None if plan is None else snapshot.Reader(plan)
                except BaseException:
                    db.close()
                    raise
            except BaseException:
                self._stop()
                raise
            opened.extend(conn for conn in (reader, db) if conn is not None)
            return db, reader, session

        def undo() -> None:
            # open() was cancelled while work() ran here: nobody will use what it opened.
            with contextlib.suppress(Exception):
                for conn in opened:
                    conn.close()
                self._stop()

        try:
            db, reader, session = await self._off_loop(work)
        except asyncio.CancelledError:
            if self._threaded:
                # After work(), whether it ran or not; waited for, so that a cancelled
                # open() (asyncio.wait_for) holds no lock once it has ended.
                with contextlib.suppress(BaseException):
                    await asyncio.shield(self._lane.run(undo))
            raise
        self._db, self._reader = db, reader or db
        log.debug("opened %s", self.database)
        return session

    def _id_snapshot(self) -> IdTable | bool | None:
        # On the loop's connection: a part (1-2 ms) per call, whatever the machine's load.
        reader, db = self._snapshot, self._reader
        if reader is None or db is None:
            return None
        got = reader.next(db)
        if got is None:
            self._snapshot_kept = False  # damaged: written anew at close
        if got is None or got is True:
            self._snapshot = None
            with contextlib.suppress(sqlite3.Error):
                db.execute("PRAGMA shrink_memory")  # the pages read once are not needed
        return got

    async def _close(self) -> None:
        db, reader = self._db, self._reader
        self._db = self._reader = None
        if db is None:
            return
        if self._threaded and self._holds_write_lock():

            def close() -> None:
                # A snapshot not written (damage, disk full) is rolled back by _release:
                # the next open reads the peers.
                with contextlib.suppress(Exception):
                    if db.in_transaction and self._snapshot_kept and not self._peers_written:
                        snapshot.rearm(db)
                    elif db.in_transaction:
                        snapshot.save(db, functools.partial(_read_columns, db))
                self._release(db, reader)

            await self._off_loop(close)
        else:
            await self._off_loop(lambda: self._release(db, reader))

    def _let_go(self) -> bool:
        db, reader = self._db, self._reader
        if db is None or not self._threaded or not self._lane.drained():
            return False
        self._db = self._reader = None
        with contextlib.suppress(sqlite3.Error):
            self._release(db, reader)
        return True

    def _release(self, db: sqlite3.Connection, reader: sqlite3.Connection | None) -> None:
        try:
            if db.in_transaction:  # the write lock held: nothing is pending in it
                db.execute("ROLLBACK")
            if reader is not None and reader is not db:
                reader.close()
            self._disconnect(db)
        finally:
            self._stop()

    async def _save(self) -> None:
        held = self._holds_write_lock()
        threaded = self._threaded

        def save(db: sqlite3.Connection) -> bool:
            if db.in_transaction:
                db.execute("COMMIT")
            _checkpoint(db)
            if threaded:
                db.execute("PRAGMA shrink_memory")
            return self._rehold(db, lean=threaded) if held else False

        if await self._run(save):
            self._invalidate(None)
        reader = self._reader
        if threaded and reader is not None and reader is not self._db:
            # A saved session is one a client is done with for now (after login, a gap
            # recovered, stop): each connection's page cache (some 100 KB, a thousand of
            # them in a host of many sessions) goes; the file's pages stay in the OS's.
            with contextlib.suppress(sqlite3.Error):
                reader.execute("PRAGMA shrink_memory")

    async def _ping(self) -> None:
        await self._read(lambda db: db.execute("SELECT 1").fetchall())

    # -- writes ---------------------------------------------------------------------------------

    async def _apply(self, changes: Changes) -> None:
        layout = self.layout
        held = self._holds_write_lock()

        def apply(db: sqlite3.Connection) -> bool:
            foreign = False
            if changes.peers or changes.deleted_peers:
                self._peers_written = True  # before: a failed write may have written some
            try:
                _write(db, layout, changes)
            finally:
                if held and not db.in_transaction:
                    foreign = self._rehold(db)
            return held and foreign

        if await self._run(apply):
            self._invalidate(None)

    def _rehold(self, db: sqlite3.Connection, lean: bool = False) -> bool:
        """Take the write lock again after a commit; whether another connection committed
        in between (what memory holds may be stale then). ``lean``: the page cache was
        just emptied (see :func:`_lean_hold`)."""
        try:
            foreign, self._version = (_lean_hold if lean else _hold)(db, self._version)
        except sqlite3.OperationalError:
            foreign = True  # another writer has it now: held again by the next batch
        if foreign:
            self._peers_written = True  # by them, maybe: the snapshot is written anew
        return foreign

    # -- reads ----------------------------------------------------------------------------------

    async def _read_session(self) -> SessionData | None:
        return await self._read(_select_session)

    async def _find_peer(self, peer_id: int, usernames: bool) -> Peer | None:
        layout = self.layout

        def find(db: sqlite3.Connection) -> Peer | None:
            return _one_peer(db, layout, peer_id, usernames)

        return await self._read(find)

    async def _find_access(self, peer_id: int) -> tuple[Any, Any] | None:
        def find(db: sqlite3.Connection) -> tuple[Any, Any] | None:
            found = db.execute(_ACCESS_SQL, (peer_id,)).fetchone()
            return None if found is None else (found[0], found[1])

        return await self._read(find)

    async def _find_by_username(self, username: str, usernames: bool) -> Peer | None:
        layout = self.layout
        sql = _HOLDERS[layout]

        def find(db: sqlite3.Connection) -> Peer | None:
            rows = db.execute(sql, (username,)).fetchall()
            self._holders_found = (username, rows)
            return _newest(db, layout, rows, usernames)

        return await self._read(find)

    async def _username_holders(self, username: str) -> set[int] | None:
        # Asked right after _find_by_username(username), whose statement listed every
        # holder already: those rows answer, rather than the same query again.
        found, self._holders_found = self._holders_found, None
        if found is not None and found[0] == username:
            return {row[0] for row in found[1]}
        sql = _HOLDERS[self.layout]

        def find(db: sqlite3.Connection) -> set[int]:
            return {row[0] for row in db.execute(sql, (username,)).fetchall()}

        return await self._read(find)

    async def _find_by_phone(self, phone: str, usernames: bool) -> Peer | None:
        layout = self.layout
        sql = f"SELECT {_PEER_COLUMNS} FROM peers WHERE phone_number = ?"

        def find(db: sqlite3.Connection) -> Peer | None:
            return _newest(db, layout, db.execute(sql, (phone,)).fetchall(), usernames)

        return await self._read(find)

    async def _recent_peers(self, limit: int) -> list[int]:
        def recent(db: sqlite3.Connection) -> list[int]:
            count = db.execute("SELECT COUNT(*) FROM peers").fetchall()[0][0]
            if count <= limit:  # all of them: no order to find
                return [row[0] for row in db.execute("SELECT id FROM peers").fetchall()]
            rows = db.execute(
                "SELECT id FROM peers ORDER BY last_update_on DESC LIMIT ?", (limit,)
            ).fetchall()
            return [row[0] for row in rows]

        return await self._run(recent)

    async def _find_peers(self, peer_ids: Sequence[int]) -> list[Peer]:
        layout = self.layout
        wanted = list(peer_ids)

        def find(db: sqlite3.Connection) -> list[Peer]:
            found: list[Peer] = []
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                marks = ", ".join("?" * len(chunk))
                rows = db.execute(
                    f"SELECT {_PEER_COLUMNS} FROM peers WHERE id IN ({marks})", chunk
                ).fetchall()
                names = _names_of_many(db, layout, [row[0] for row in rows])
                found.extend(_peer(row, names.get(row[0]) or _primary(row[3])) for row in rows)
            return found

        return await self._run(find)

    async def _peer_rows(
        self, after: int | None = None, limit: int | None = None
    ) -> list[tuple[Any, ...]]:
        layout = self.layout
        none: tuple[str, ...] = ()

        def read_all(db: sqlite3.Connection) -> list[tuple[Any, ...]]:
            names: dict[Any, dict[Any, None]] = {}
            for peer_id, name, _ in db.execute(_ALL_NAMES[layout]):
                names.setdefault(peer_id, {})[name] = None
            rows = []
            for peer_id, access_hash, kind, username, phone, stamp in db.execute(
                f"SELECT {_PEER_COLUMNS} FROM peers"
            ):
                held = names.get(peer_id)
                named = tuple(held) if held else (username,) if username else none
                rows.append((peer_id, access_hash, kind, named, phone, stamp))
            db.execute("PRAGMA shrink_memory")  # the pages read once: memory answers now
            return rows

        batch_size = limit or 0

        def read_batch(db: sqlite3.Connection) -> list[tuple[Any, ...]]:
            if after is None:
                sql = f"SELECT {_PEER_COLUMNS} FROM peers ORDER BY id LIMIT ?"
                found = db.execute(sql, (limit,)).fetchall()
            else:
                sql = f"SELECT {_PEER_COLUMNS} FROM peers WHERE id > ? ORDER BY id LIMIT ?"
                found = db.execute(sql, (after, limit)).fetchall()
            names: dict[Any, dict[Any, None]] = {}
            if found:  # one range scan of the usernames index, not a list of ids
                span = (found[0][0], found[-1][0])
                for peer_id, name, _ in db.execute(_NAMES_BETWEEN[layout], span):
                    names.setdefault(peer_id, {})[name] = None
            if len(found) < batch_size:  # the last batch: the pages read once are not needed
                db.execute("PRAGMA shrink_memory")
            return [
                (
                    row[0],
                    row[1],
                    row[2],
                    tuple(names[row[0]]) if row[0] in names else (row[3],) if row[3] else none,
                    row[4],
                    row[5],
                )
                for row in found
            ]

        return await self._run(read_all if limit is None else read_batch)

    async def _peer_columns(self, after: int | None, limit: int) -> Columns | None:
        return await self._run(lambda db: _read_columns(db, after, limit))

    async def _read_peers(self, after: int | None, limit: int) -> list[Peer]:
        layout = self.layout
        params: tuple[int, ...]
        if after is None:
            sql, params = f"SELECT {_PEER_COLUMNS} FROM peers ORDER BY id LIMIT ?", (limit,)
        else:
            sql = f"SELECT {_PEER_COLUMNS} FROM peers WHERE id > ? ORDER BY id LIMIT ?"
            params = (after, limit)

        def read(db: sqlite3.Connection) -> list[Peer]:
            rows = db.execute(sql, params).fetchall()
            names = _names_of_many(db, layout, [row[0] for row in rows])
            return [_peer(row, names.get(row[0]) or _primary(row[3])) for row in rows]

        return await self._run(read)

    async def _count_peers(self) -> dict[str, int]:
        def count(db: sqlite3.Connection) -> dict[str, int]:
            rows = db.execute("SELECT type, COUNT(*) FROM peers GROUP BY type").fetchall()
            db.execute("PRAGMA shrink_memory")  # a scan of every page: keep none of them
            return {str(kind): number for kind, number in rows}

        return await self._run(count)

    async def _read_states(self, ids: Sequence[int] | None) -> list[UpdateState]:
        base = "SELECT id, pts, qts, date, seq FROM update_state"

        def read(db: sqlite3.Connection) -> list[UpdateState]:
            if ids is None:
                return [UpdateState(*row) for row in db.execute(base).fetchall()]
            found: list[UpdateState] = []
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                marks = ", ".join("?" * len(chunk))
                found.extend(
                    UpdateState(*row)
                    for row in db.execute(f"{base} WHERE id IN ({marks})", chunk).fetchall()
                )
            return found

        return await self._read(read)


# -- reading peers in bulk, column by column ------------------------------------------------------
# One statement a batch, every column aggregated into one hex string by SQLite: no Python
# object per row, and the GIL released while SQLite works (the event loop runs meanwhile).

_ACCESS_SQL = "SELECT access_hash, type FROM peers WHERE id = ?"
_MIN_ID = -(2**63)
_BATCH = "(SELECT id, access_hash, type FROM peers WHERE id >= ?1 ORDER BY id LIMIT ?2)"
_COLUMNS_SQL = (
    "SELECT count(*), max(id), total(access_hash != access_hash + 0), "
    "group_concat(printf('%016x%016x', id, ifnull(access_hash, 0)), ''), "
    f"group_concat(type, ',') FROM {_BATCH}"
)
"""A batch of peers: how many, the last id, whether an access hash is not an integer
(damage), each id and access hash in hex, and the types."""
_ODD_SQL = (
    "SELECT id, type FROM peers WHERE id >= ?1 AND id <= ?2 AND "
    f"(typeof(type) != 'text' OR type NOT IN ({', '.join(repr(t) for t in TYPE_CODES)}))"
)


def _read_columns(db: sqlite3.Connection, after: int | None, limit: int) -> Columns | None:
    """Up to ``limit`` peers with ids above ``after``, as columns; None for damage."""
    first = _MIN_ID if after is None else after + 1
    n, last, damaged, pairs, types = db.execute(_COLUMNS_SQL, (first, limit)).fetchone()
    if damaged:
        return None  # the lookups that meet a damaged row say what is wrong
    both = _hex_array("q", pairs)
    names: list[Any] = types.split(",") if n else []
    if len(names) != n:  # a type holding a comma (not ours: damage, or odd)
        names = [kind for (kind,) in db.execute(f"SELECT type FROM {_BATCH}", (first, limit))]
    codes = TYPE_CODES.get
    kinds = array("B", [codes(name, 0) for name in names])
    columns = Columns(both[0::2], both[1::2], kinds)
    if 0 in kinds:  # a type without a code: kept by name
        for peer_id, kind in db.execute(_ODD_SQL, (first, last)):
            if type(kind) is not str or not kind:
                return None
            columns.odd_types[peer_id] = kind
    if n < limit:  # the last batch: the pages read once are not needed
        db.execute("PRAGMA shrink_memory")
    return columns


def _hex_array(code: str, text: str | None) -> array[int]:
    """The array of big-endian numbers SQLite wrote in hex (``printf('%016x')``...)."""
    values = array(code, bytes.fromhex(text) if text else b"")
    if sys.byteorder == "little" and values.itemsize > 1:
        values.byteswap()
    return values


# -- work on a connection ----------------------------------------------------------------------


def _write(db: sqlite3.Connection, layout: Layout, changes: Changes) -> None:
    """Store one batch in one transaction (see :class:`~pyrogram_storage.base.Changes`)."""

    def delete_names(peer_ids: list[int]) -> None:
        for start in range(0, len(peer_ids), _CHUNK):
            chunk = peer_ids[start : start + _CHUNK]
            marks = ", ".join("?" * len(chunk))
            for sql in _DELETE_USERNAMES[layout]:
                db.execute(sql.format(marks=marks), chunk)

    insert_name = _INSERT_USERNAME[layout]
    if not db.in_transaction:  # else the write lock is held already: nothing in it
        db.execute("BEGIN IMMEDIATE")
    try:
        if changes.deleted_peers:
            delete_names(changes.deleted_peers)
            db.executemany(
                "DELETE FROM peers WHERE id = ?", [(peer_id,) for peer_id in changes.deleted_peers]
            )
        if changes.peers:
            full: list[tuple[Any, ...]] = []
            partial: list[tuple[Any, ...]] = []
            renamed: list[int] = []
            names: list[tuple[int, str, int | None]] = []
            fresh = changes.new_peers
            # In id order: neighbouring rows of the tables' B-trees are written together.
            for peer_id, access_hash, kind, usernames, phone, stamp in sorted(changes.peers):
                if usernames is None:
                    partial.append((peer_id, access_hash, kind, phone, stamp))
                    continue
                if peer_id not in fresh:  # a new peer has no usernames rows to delete
                    renamed.append(peer_id)
                if not usernames:
                    full.append((peer_id, access_hash, kind, None, phone, stamp))
                    continue
                full.append((peer_id, access_hash, kind, usernames[0], phone, stamp))
                for name in usernames:
                    names.append((peer_id, name, stamp))
            if partial:
                _many(db, _UPSERT_PEER_KEEP_USERNAME, partial)
            if full:
                _many(db, _REPLACE_PEER, full)
                delete_names(renamed)
                if names:
                    _many(db, insert_name, names)
        if changes.usernames:
            stamp = changes.stamp
            # peers.username first: the usernames triggers mirror only the other names.
            db.executemany(
                "UPDATE peers SET username = ? WHERE id = ?",
                [(names[0] if names else None, peer_id) for peer_id, names in changes.usernames],
            )
            delete_names([peer_id for peer_id, _ in changes.usernames])
            rows = [
                (peer_id, name, stamp)
                for peer_id, usernames in changes.usernames
                for name in usernames
            ]
            if rows:
                db.executemany(_INSERT_USERNAME_IF_STORED[layout], rows)
        if changes.deleted_states:
            db.executemany(
                "DELETE FROM update_state WHERE id = ?",
                [(state_id,) for state_id in changes.deleted_states],
            )
        if changes.states:
            db.executemany(_REPLACE_STATE, [_state_row(state) for state in changes.states])
        if changes.merged_states:
            db.executemany(_MERGE_STATE, [_state_row(state) for state in changes.merged_states])
        if changes.session is not None and changes.session_fields:
            fields = sorted(changes.session_fields)
            values = [_to_column(name, getattr(changes.session, name)) for name in fields]
            assignments = ", ".join(f"{name} = ?" for name in fields)
            db.execute(f"UPDATE sessions SET {assignments}", values)
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


_ROWS_PER_STATEMENT = 64
"""Rows one INSERT carries (``VALUES (...), (...)...``): one statement to step, not one a row."""


def _many(db: sqlite3.Connection, sql: str, rows: list[tuple[Any, ...]]) -> None:
    """``db.executemany(sql, rows)`` for an ``INSERT ... VALUES (?, ...)`` statement,
    with many rows a statement: each SQLite step and Python call serves many rows."""
    size = _ROWS_PER_STATEMENT
    whole = len(rows) // size * size
    if whole:
        flat = chain.from_iterable  # each statement's parameters, flattened in C
        db.executemany(
            _multi_row(sql, size),
            [list(flat(rows[start : start + size])) for start in range(0, whole, size)],
        )
    if whole < len(rows):
        db.executemany(sql, rows[whole:])


@functools.cache
def _multi_row(sql: str, rows: int) -> str:
    """``sql`` with its one ``VALUES (...)`` tuple repeated ``rows`` times."""
    head, _, tail = sql.partition(" VALUES ")
    row, paren, rest = tail.partition(")")
    return f"{head} VALUES {', '.join([row + paren] * rows)}{rest}"


def _state_row(state: UpdateState) -> tuple[int | None, ...]:
    return (state.id, state.pts, state.qts, state.date, state.seq)


def _select_session(db: sqlite3.Connection) -> SessionData | None:
    rows = db.execute(f"SELECT {_SESSION_COLUMNS} FROM sessions LIMIT 1").fetchall()
    if not rows:
        return None
    values = dict(zip(SESSION_FIELDS, rows[0], strict=True))
    for name in _BOOL_FIELDS:
        if values[name] in (0, 1):
            values[name] = bool(values[name])
    if values["date"] is None:
        values["date"] = 0
    return SessionData(**values)


def _hold(db: sqlite3.Connection, version: int | None) -> tuple[bool, int]:
    """Begin a write transaction (the write lock, held until the next batch); return
    whether another connection committed since ``version`` and the version now."""
    db.execute("BEGIN IMMEDIATE")
    now = db.execute("PRAGMA data_version").fetchone()[0]
    return version is not None and now != version, now


def _lean_hold(db: sqlite3.Connection, version: int | None) -> tuple[bool, int]:
    """:func:`_hold` on a connection whose page cache is empty, without the 20 pages
    (some 84 KB) SQLite allocates at once for the first page an empty cache takes
    (unless the cache is tiny): the held lock keeps that page, so they would stay for
    as long as the storage is open; pages come one by one instead, as they are used.
    A host of a thousand sessions holds some 80 MB less."""
    previous = db.execute("PRAGMA cache_size").fetchone()[0]
    db.execute("PRAGMA cache_size = 2")
    try:
        return _hold(db, version)
    finally:
        db.execute(f"PRAGMA cache_size = {int(previous)}")


def _checkpoint(db: sqlite3.Connection) -> None:
    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


def _to_column(name: str, value: Any) -> Any:
    if name in _BOOL_FIELDS and value is not None:
        return int(bool(value))
    return value


def _newest(
    db: sqlite3.Connection, layout: Layout, rows: list[Any], usernames: bool
) -> Peer | None:
    """The peer of the row written last (of a tie, the higher id), with its usernames if asked."""
    if not rows:
        return None
    row = rows[0]
    for other in rows[1:]:
        if (_stamp(other), other[0]) > (_stamp(row), row[0]):
            row = other
    if usernames:
        return _one_peer(db, layout, row[0], True)
    return _peer(row, None)


def _stamp(row: Sequence[Any]) -> int:
    stamp = row[5]
    return stamp if isinstance(stamp, int) else -(2**63)  # damage shows when it is read


def _one_peer(db: sqlite3.Connection, layout: Layout, peer_id: int, usernames: bool) -> Peer | None:
    if not usernames:
        rows = db.execute(f"SELECT {_PEER_COLUMNS} FROM peers WHERE id = ?", (peer_id,))
        found = rows.fetchall()
        return _peer(found[0], None) if found else None
    found = db.execute(_PEER_AND_NAMES[layout], (peer_id,)).fetchall()
    if not found:
        return None
    names = tuple(dict.fromkeys(row[6] for row in found if row[6] is not None))
    return _peer(found[0][:6], names or _primary(found[0][3]))


def _names_of_many(
    db: sqlite3.Connection, layout: Layout, peer_ids: list[int]
) -> dict[int, tuple[str, ...]]:
    """Every username of these peers, in the order they were written."""
    found: dict[int, dict[Any, None]] = {}
    for start in range(0, len(peer_ids), _CHUNK):
        chunk = peer_ids[start : start + _CHUNK]
        marks = ", ".join("?" * len(chunk))
        sql = _NAMES_OF_MANY[layout].format(marks=marks)
        params = chunk * sql.count("IN (")  # the upstream layout asks twice
        for peer_id, name, _ in db.execute(sql, params).fetchall():
            found.setdefault(peer_id, {})[name] = None
    return {peer_id: tuple(names) for peer_id, names in found.items()}


def _primary(username: Any) -> tuple[str, ...]:
    """The names a peer has when no usernames rows do: the ``peers.username`` column's."""
    return (username,) if isinstance(username, str) and username else ()


def _peer(row: Sequence[Any], names: tuple[str, ...] | None) -> Peer:
    peer_id, access_hash, kind, _, phone, stamp = row
    return Peer(
        peer_id,
        access_hash if access_hash is not None else 0,
        PeerType.of(kind) if isinstance(kind, str) and kind else kind,
        names,
        phone,
        stamp,
    )
