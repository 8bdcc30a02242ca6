"""SQLite storage shared by :class:`~pyrogram_storage.FileStorage` and
:class:`~pyrogram_storage.MemoryStorage`.

Every statement runs on aiosqlite's worker thread, one whole transaction per hop,
so the event loop never waits on the disk. Hot peer lookups by id are answered from a
bounded in-memory cache that every write through this storage keeps current.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any, TypeVar

import aiosqlite

from . import sqlite_schema
from ._values import BOOL_FIELDS, checked_peer, clean_usernames, peer_type, validated
from .base import USERNAME_TTL, Storage, normalize_phone, normalize_username
from .errors import (
    BackendError,
    CorruptSessionError,
    PeerNotFound,
    SessionLocked,
    StorageClosedError,
)
from .sqlite_schema import Layout
from .types import SESSION_FIELDS, Peer, PeerType, SessionData, UpdateState

__all__ = ["Layout", "SQLiteStorage"]

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_PEER_CACHE_SIZE = 100_000
_CHUNK = 500  # ids per "IN (...)" query, well under SQLite's variable limit


_SESSION_COLUMNS = ", ".join(SESSION_FIELDS)

_PEER_COLUMNS = "p.id, p.access_hash, p.type, p.username, p.phone_number, p.last_update_on"
# The upstream layout's usernames table also carries Pyrofork's columns: (id = peer id,
# username) rows for the upstream-dev clients, and (id = username, peer_id) rows for
# Pyrofork and Electrogram; triggers in the schema keep the two kinds in step.
_USERNAMES_OF = {
    Layout.UPSTREAM: "(SELECT json_group_array(name) FROM "
    "(SELECT username AS name, rowid AS r FROM usernames "
    "WHERE id = p.id AND username IS NOT NULL "
    "UNION ALL SELECT CAST(id AS TEXT), rowid FROM usernames WHERE peer_id = p.id "
    "ORDER BY r))",
    Layout.PYROFORK: "(SELECT json_group_array(id) FROM "
    "(SELECT id FROM usernames WHERE peer_id = p.id ORDER BY rowid))",
}
_USERNAME_OWNER = {
    Layout.UPSTREAM: "SELECT id FROM usernames WHERE username = ?1 "
    "UNION ALL SELECT peer_id FROM usernames WHERE id = ?1 AND peer_id IS NOT NULL",
    Layout.PYROFORK: "SELECT peer_id FROM usernames WHERE id = ?",
}
_DELETE_USERNAMES = {
    Layout.UPSTREAM: "DELETE FROM usernames WHERE id = ?1 OR peer_id = ?1",
    Layout.PYROFORK: "DELETE FROM usernames WHERE peer_id = ?",
}
_INSERT_USERNAME = {
    Layout.UPSTREAM: "INSERT INTO usernames (id, username, last_update_on) VALUES (?, ?, ?)",
    Layout.PYROFORK: "REPLACE INTO usernames (peer_id, id, last_update_on) VALUES (?, ?, ?)",
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


_Entry = tuple[int, str, "tuple[str, ...] | None", "str | None", "int | None"]
"""A cached peer: access hash, type name, usernames, phone number, last update."""


class _PeerCache:
    """A bounded map of peer id to peer: two generations of plain dicts.

    Written and used entries go to the young generation; when it holds ``size``
    entries it becomes the old one and the previous old one is dropped: an LRU
    approximation in O(1) that keeps at least the ``size`` most recent peers.
    Entries are tuples of ints and strings, which the garbage collector stops
    tracking; as ``Peer`` objects every full collection walked all of them (a 70 ms
    event-loop stall with 100k cached peers).
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._young: dict[int, _Entry] = {}
        self._old: dict[int, _Entry] = {}

    def get(self, peer_id: int) -> Peer | None:
        entry = self._young.get(peer_id)
        if entry is None:
            entry = self._old.pop(peer_id, None)
            if entry is None:
                return None
            self._store(peer_id, entry)
        access_hash, kind, names, phone, stamp = entry
        return Peer(
            peer_id, access_hash, _KNOWN_TYPES.get(kind) or peer_type(kind), names, phone, stamp
        )

    def entry(self, peer_id: int) -> _Entry | None:
        entry = self._young.get(peer_id)
        return self._old.get(peer_id) if entry is None else entry

    def put(self, peer_id: int, entry: _Entry) -> None:
        if self.size > 0:
            self._old.pop(peer_id, None)
            self._store(peer_id, entry)

    def _store(self, peer_id: int, entry: _Entry) -> None:
        young = self._young
        young[peer_id] = entry
        if len(young) >= self.size:
            self._old = young
            self._young = {}

    def pop(self, peer_id: int) -> None:
        self._young.pop(peer_id, None)
        self._old.pop(peer_id, None)

    def clear(self) -> None:
        self._young = {}
        self._old = {}


_KNOWN_TYPES = {kind.value: kind for kind in PeerType}


class SQLiteStorage(Storage):
    """The SQLite engine; use :class:`FileStorage` or :class:`MemoryStorage`.

    :param database: a path, or ``":memory:"``.
    :param layout: the ``usernames`` layout of a *new* database; an existing one keeps its own.
    :param peer_cache_size: how many peers to keep in memory for lookups by id (0 disables).
    :param busy_timeout: seconds to wait for another connection's write lock before
        raising :class:`SessionLocked`.
    """

    def __init__(
        self,
        name: str,
        database: str,
        *,
        layout: Layout | str = Layout.UPSTREAM,
        peer_cache_size: int = DEFAULT_PEER_CACHE_SIZE,
        busy_timeout: float = 5.0,
        username_ttl: float | None = USERNAME_TTL,
        session_string: str | None = None,
    ) -> None:
        super().__init__(name, username_ttl=username_ttl, session_string=session_string)
        self.database = database
        self.layout = Layout(layout)
        self.busy_timeout = busy_timeout
        self._conn: aiosqlite.Connection | None = None
        self._session: SessionData | None = None
        self._shared = False  # another connection may write: re-read instead of caching
        self._cache = _PeerCache(peer_cache_size)

    # -- plumbing -----------------------------------------------------------------

    def _connect(self) -> aiosqlite.Connection:
        conn = aiosqlite.connect(self.database, isolation_level=None, timeout=self.busy_timeout)
        # A storage the program forgot to close must not hang interpreter exit; every
        # write has committed by the time its call returns, so nothing is lost.
        thread: Any = getattr(conn, "_thread", conn)  # aiosqlite < 0.20 was the thread itself
        thread.daemon = True
        return conn

    def _prepare(self) -> None:
        """Create whatever must exist before SQLite opens the database (files, folders)."""

    def _release(self) -> None:
        """Undo :meth:`_prepare` (drop locks) once the connection is gone."""

    def _restore(self, conn: sqlite3.Connection) -> None:
        """Load earlier content into a fresh connection before the schema is checked."""

    def _configure(self, conn: sqlite3.Connection) -> None:
        """Set per-connection pragmas once the schema is known good."""

    async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` with the sqlite3 connection on aiosqlite's worker thread."""
        conn = self._conn
        if conn is None:
            raise StorageClosedError(f"{self!r} is closed; call open() first")
        # aiosqlite's only way to run a whole transaction in one hop; a closure rather
        # than functools.partial keeps arguments (auth keys) out of its debug log.
        raw: Callable[[], sqlite3.Connection] = lambda: conn._conn  # noqa: E731
        try:
            return await conn._execute(lambda: fn(raw()))  # type: ignore[no-untyped-call,no-any-return]
        except sqlite3.OperationalError as exc:
            # Damaged text; checked first, the message quotes stored data ("...locked...").
            if str(exc).startswith("Could not decode to UTF-8"):
                raise CorruptSessionError(
                    f"{self.database} is damaged (text that is not UTF-8); restore it from a backup"
                ) from exc
            if _is_locked(exc):
                raise SessionLocked(
                    f"{self.database} is locked by another connection for more than "
                    f"{self.busy_timeout}s"
                ) from exc
            raise BackendError(f"SQLite failed on {self.database}: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            # Damage inside pages shows only when a query reaches them.
            if "malformed" in str(exc) or "not a database" in str(exc):
                raise CorruptSessionError(
                    f"{self.database} is damaged ({exc}); restore it from a backup"
                ) from exc
            raise BackendError(f"SQLite failed on {self.database}: {exc}") from exc
        except sqlite3.Error as exc:  # InterfaceError: a misuse, still never a raw sqlite3 error
            raise BackendError(f"SQLite failed on {self.database}: {exc}") from exc
        except ValueError as exc:
            if self._conn is None or "closed" in str(exc).lower():
                raise StorageClosedError(f"{self!r} was closed during the call") from exc
            raise

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` inside one write transaction."""

        def transaction(db: sqlite3.Connection) -> T:
            db.execute("BEGIN IMMEDIATE")
            try:
                result = fn(db)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            return result

        return await self._call(transaction)

    # -- lifecycle ------------------------------------------------------------------

    async def open(self) -> None:
        if self._conn is not None:
            return
        await asyncio.to_thread(self._prepare)
        conn = self._connect()
        try:
            await conn
        except sqlite3.Error as exc:
            await asyncio.to_thread(self._release)
            raise BackendError(f"cannot open {self.database}: {exc}") from exc
        self._conn = conn
        try:
            self._session = await self._call(self._open_schema)
            await self._apply_pending_session()
            self._pending_session = None
        except BaseException:
            self._conn = None
            await conn.close()
            await asyncio.to_thread(self._release)
            raise
        log.debug("opened %r", self)

    def _open_schema(self, db: sqlite3.Connection) -> SessionData:
        self._restore(db)
        self.layout = sqlite_schema.prepare(db, self.database, self.layout)
        self._configure(db)
        return _read_session(db)

    async def save(self) -> None:
        now = int(time.time())

        def save(db: sqlite3.Connection) -> None:
            db.execute("UPDATE sessions SET date = ?", (now,))

        await self._write(save)
        self._session = self._require_session().replace(date=now)
        await self._call(_checkpoint)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        self._cache.clear()
        try:
            await conn.close()
        except sqlite3.Error as exc:  # pragma: no cover - closing a healthy connection
            raise BackendError(f"closing {self.database} failed: {exc}") from exc
        finally:
            await asyncio.to_thread(self._release)
        log.debug("closed %r", self)

    async def health(self) -> bool:
        await self._call(lambda db: db.execute("SELECT 1").fetchone())
        return True

    # -- authorization ----------------------------------------------------------------

    def _require_session(self) -> SessionData:
        if self._session is None or self._conn is None:
            raise StorageClosedError(f"{self!r} is closed; call open() first")
        return self._session

    async def get_session(self) -> SessionData:
        if self._shared:
            self._require_session()
            self._session = await self._call(_read_session)
        return self._require_session()

    async def update_session(self, **changes: Any) -> None:
        current = await self.get_session()
        unknown = set(changes) - set(SESSION_FIELDS)
        if unknown:
            raise TypeError(f"not session fields: {', '.join(sorted(unknown))}")
        if not changes:
            return
        updated = validated(current, changes)
        names = list(changes)
        values = [_to_column(name, getattr(updated, name)) for name in names]
        assignments = ", ".join(f"{name} = ?" for name in names)

        def update(db: sqlite3.Connection) -> None:
            db.execute(f"UPDATE sessions SET {assignments}", values)

        await self._write(update)
        self._session = updated

    # -- peers --------------------------------------------------------------------------

    async def upsert_peers(self, peers: Iterable[Peer]) -> None:
        batch = [checked_peer(peer) for peer in peers]
        if not batch:
            return
        now = int(time.time())
        layout = self.layout
        full_rows = []
        partial_rows = []
        username_ids = []
        username_rows: list[tuple[Any, ...]] = []
        entries: list[tuple[int, _Entry]] = []
        for peer in batch:
            peer_id = peer.id
            stamp = now if peer.last_update_on is None else peer.last_update_on
            phone = None if peer.phone_number is None else normalize_phone(peer.phone_number)
            kind = peer.type.value
            names = None if peer.usernames is None else clean_usernames(peer.usernames)
            if names is None:
                partial_rows.append((peer_id, peer.access_hash, kind, phone, stamp))
            else:
                first = names[0] if names else None
                full_rows.append((peer_id, peer.access_hash, kind, first, phone, stamp))
                username_ids.append((peer_id,))
                username_rows.extend(_username_rows(layout, peer_id, names, stamp))
            entries.append((peer_id, (peer.access_hash, kind, names, phone, stamp)))

        def write(db: sqlite3.Connection) -> None:
            if partial_rows:
                db.executemany(_UPSERT_PEER_KEEP_USERNAME, partial_rows)
            if full_rows:
                db.executemany(_REPLACE_PEER, full_rows)
                db.executemany(_DELETE_USERNAMES[layout], username_ids)
                db.executemany(_INSERT_USERNAME[layout], username_rows)

        await self._write(write)
        cache = self._cache
        for peer_id, entry in entries:
            if entry[2] is None:
                # Usernames were left as stored: keep the cached ones, if known.
                cached = cache.entry(peer_id)
                if cached is not None:
                    entry = (entry[0], entry[1], cached[2], entry[3], entry[4])
            cache.put(peer_id, entry)

    async def set_usernames(self, usernames: Iterable[tuple[int, Sequence[str]]]) -> None:
        merged: dict[int, tuple[str, ...]] = {}
        for peer_id, names in usernames:
            if isinstance(names, str):
                raise TypeError("usernames must be a sequence of str, not one str")
            merged[int(peer_id)] = clean_usernames(names)
        if not merged:
            return
        now = int(time.time())
        layout = self.layout
        rows = [
            row for pid, names in merged.items() for row in _username_rows(layout, pid, names, now)
        ]
        primaries = [(names[0] if names else None, pid) for pid, names in merged.items()]

        def write(db: sqlite3.Connection) -> None:
            # peers.username first: the usernames triggers mirror only the other names.
            db.executemany("UPDATE peers SET username = ? WHERE id = ?", primaries)
            db.executemany(_DELETE_USERNAMES[layout], [(pid,) for pid in merged])
            db.executemany(_INSERT_USERNAME[layout], rows)

        await self._write(write)
        for pid, names in merged.items():
            cached = self._cache.entry(pid)
            if cached is not None:
                self._cache.put(pid, (cached[0], cached[1], names, cached[3], cached[4]))

    async def delete_peers(self, peer_ids: Iterable[int]) -> None:
        rows = [(int(peer_id),) for peer_id in peer_ids]
        if not rows:
            return
        layout = self.layout

        def delete(db: sqlite3.Connection) -> None:
            db.executemany(_DELETE_USERNAMES[layout], rows)
            db.executemany("DELETE FROM peers WHERE id = ?", rows)

        await self._write(delete)
        for (peer_id,) in rows:
            self._cache.pop(peer_id)

    async def peer_by_id(self, peer_id: int) -> Peer:
        if self._conn is None:
            raise StorageClosedError(f"{self!r} is closed; call open() first")
        cached = self._cache.get(peer_id)
        if cached is not None and cached.usernames is not None:
            return cached
        if not isinstance(peer_id, int) or isinstance(peer_id, bool):
            raise PeerNotFound(f"ID not found: {peer_id!r}", peer_id)
        layout = self.layout
        sql = f"SELECT {_PEER_COLUMNS}, {_USERNAMES_OF[layout]} FROM peers p WHERE p.id = ?"
        row = await self._call(lambda db: db.execute(sql, (peer_id,)).fetchone())
        if row is None:
            raise PeerNotFound(f"ID not found: {peer_id}", peer_id)
        peer = _peer_from_row(row)
        self._cache.put(
            peer.id,
            (
                peer.access_hash,
                peer.type.value,
                peer.usernames,
                peer.phone_number,
                peer.last_update_on,
            ),
        )
        return peer

    async def peer_by_username(self, username: str) -> Peer:
        key = normalize_username(username)
        layout = self.layout
        columns = f"{_PEER_COLUMNS}, {_USERNAMES_OF[layout]}"
        by_column = (
            f"SELECT {columns} FROM peers p WHERE p.username = ? "
            "ORDER BY p.last_update_on DESC LIMIT 1"
        )
        by_table = (
            f"SELECT {columns} FROM peers p WHERE p.id IN ({_USERNAME_OWNER[layout]}) "
            "ORDER BY p.last_update_on DESC LIMIT 1"
        )

        def find(db: sqlite3.Connection) -> Any:
            return (
                db.execute(by_column, (key,)).fetchone() or db.execute(by_table, (key,)).fetchone()
            )

        row = await self._call(find)
        if row is None:
            raise PeerNotFound(f"Username not found: {key}", username)
        peer = _peer_from_row(row)
        if not self._is_fresh(peer):
            raise PeerNotFound(f"Username expired: {key}", username)
        return peer

    async def peer_by_phone(self, phone_number: str) -> Peer:
        key = normalize_phone(phone_number)
        sql = (
            f"SELECT {_PEER_COLUMNS}, {_USERNAMES_OF[self.layout]} FROM peers p "
            "WHERE p.phone_number = ? ORDER BY p.last_update_on DESC LIMIT 1"
        )
        row = await self._call(lambda db: db.execute(sql, (key,)).fetchone())
        if row is None:
            raise PeerNotFound(f"Phone number not found: {key}", phone_number)
        return _peer_from_row(row)

    async def iter_peers(self, batch_size: int = 1000) -> AsyncIterator[list[Peer]]:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        select = f"SELECT {_PEER_COLUMNS}, {_USERNAMES_OF[self.layout]} FROM peers p "
        first = select + "ORDER BY p.id LIMIT ?"
        following = select + "WHERE p.id > ? ORDER BY p.id LIMIT ?"
        params: tuple[int, ...] = (batch_size,)
        sql = first
        while True:
            rows = await self._call(_fetch_all(sql, params))
            if not rows:
                return
            yield [_peer_from_row(row) for row in rows]
            if len(rows) < batch_size:
                return
            sql, params = following, (rows[-1][0], batch_size)

    async def count_peers(self) -> dict[PeerType, int]:
        rows = await self._call(
            lambda db: db.execute("SELECT type, COUNT(*) FROM peers GROUP BY type").fetchall()
        )
        return {peer_type(kind): count for kind, count in rows}

    # -- update state ---------------------------------------------------------------------

    async def get_update_states(self, ids: Iterable[int] | None = None) -> list[UpdateState]:
        base = "SELECT id, pts, qts, date, seq FROM update_state"
        if ids is None:

            def read_all(db: sqlite3.Connection) -> list[Any]:
                return db.execute(base + " ORDER BY date, id").fetchall()

            rows = await self._call(read_all)
        else:
            wanted = sorted({int(i) for i in ids})

            def read_some(db: sqlite3.Connection) -> list[Any]:
                found: list[Any] = []
                for start in range(0, len(wanted), _CHUNK):
                    chunk = wanted[start : start + _CHUNK]
                    marks = ", ".join("?" * len(chunk))
                    found.extend(db.execute(f"{base} WHERE id IN ({marks})", chunk))
                return found

            rows = await self._call(read_some)
            rows.sort(key=lambda row: (row[3] is not None, row[3] or 0, row[0]))
        return [UpdateState(*row) for row in rows]

    async def set_update_states(self, states: Iterable[UpdateState], *, merge: bool = True) -> None:
        rows = [(int(s.id), s.pts, s.qts, s.date, s.seq) for s in states]
        if not rows:
            return
        sql = (
            "INSERT INTO update_state (id, pts, qts, date, seq) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET pts = COALESCE(excluded.pts, pts), "
            "qts = COALESCE(excluded.qts, qts), date = COALESCE(excluded.date, date), "
            "seq = COALESCE(excluded.seq, seq)"
            if merge
            else "REPLACE INTO update_state (id, pts, qts, date, seq) VALUES (?, ?, ?, ?, ?)"
        )
        await self._write(_run_many(sql, rows))

    async def delete_update_states(self, ids: Iterable[int]) -> None:
        rows = [(int(i),) for i in ids]
        if rows:
            await self._write(_run_many("DELETE FROM update_state WHERE id = ?", rows))


# -- helpers that run on the worker thread ---------------------------------------------------


def _run_many(sql: str, rows: list[tuple[Any, ...]]) -> Callable[[sqlite3.Connection], None]:
    """Build a job running ``executemany`` that returns nothing.

    Never hand a cursor back to the event loop: freeing it there resets its statement
    from the loop's thread while the worker uses the connection (SQLITE_MISUSE).
    """

    def run(db: sqlite3.Connection) -> None:
        db.executemany(sql, rows).close()

    return run


def _fetch_all(sql: str, params: Sequence[Any]) -> Callable[[sqlite3.Connection], list[Any]]:
    return lambda db: db.execute(sql, params).fetchall()


def _is_locked(exc: sqlite3.OperationalError) -> bool:
    message = str(exc).lower()
    return "locked" in message or "busy" in message


def _read_session(db: sqlite3.Connection) -> SessionData:
    row = db.execute(f"SELECT {_SESSION_COLUMNS} FROM sessions LIMIT 1").fetchone()
    if row is None:
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO sessions (dc_id, date) VALUES (2, 0)")
        db.execute("COMMIT")
        return SessionData()
    values = dict(zip(SESSION_FIELDS, row, strict=True))
    for name in BOOL_FIELDS:
        if values[name] is not None:
            values[name] = bool(values[name])
    if values["date"] is None:
        values["date"] = 0
    return SessionData(**values)


def _checkpoint(db: sqlite3.Connection) -> None:
    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


# -- value conversion ------------------------------------------------------------------------


def _to_column(name: str, value: Any) -> Any:
    if name in BOOL_FIELDS and value is not None:
        return int(bool(value))
    return value


def _username_rows(
    layout: Layout, peer_id: int, names: tuple[str, ...], stamp: int
) -> list[tuple[Any, ...]]:
    return [(peer_id, name, stamp) for name in names]


def _peer_from_row(row: Sequence[Any]) -> Peer:
    peer_id, access_hash, kind, username, phone, stamp, names_json = row
    names = tuple(dict.fromkeys(json.loads(names_json))) if names_json else ()
    if not names and username:
        names = (username,)
    return Peer(
        peer_id,
        access_hash if access_hash is not None else 0,
        peer_type(kind),
        names,
        phone,
        stamp,
    )
