"""Bot state in a SQLite file (or ``":memory:"``), shared safely by several processes.

Where the work runs, and why:

* Point operations (get, set, delete, touch, CAS, increment) are one indexed SQL
  statement each, run on the event loop on a connection with ``busy_timeout=0``. In
  WAL mode with ``synchronous=NORMAL`` a commit appends to the WAL without an fsync,
  so a write costs microseconds, less than the ~35 µs hop to a thread and back. It is
  durable against the process being killed as soon as it returns.
* Anything that could wait goes to a worker :class:`~pyrogram_storage._worker.Lane`
  with its own connection, which does wait (``busy_timeout``): a point operation that
  met another process's write lock (``SQLITE_BUSY``) is retried there; checkpoints
  (the loop's connection never checkpoints), the expiry sweep, ``clear()`` and the
  batches of ``keys()``/``items()`` run there too.
* ``":memory:"`` has one connection and no other process, so everything runs on the
  loop, in small batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from time import monotonic, sleep
from time import time as _time
from typing import Any, Literal, TypeVar

from .._worker import Lane
from ..errors import BackendError, DiskFullError, StorageError
from .base import KEEP, KVStore, Raw, Record, V, _Keep, add_to_counter, is_live
from .errors import CorruptStoreError, InvalidArgumentError, NotACounterError, StoreLockedError
from .pattern import Pattern
from .serializer import Serializer

__all__ = ["SQLiteKV"]

T = TypeVar("T")
_TABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_BATCH = 500
_MEMORY_BATCH = 100  # rows per batch read on the loop (":memory:")
_CHECKPOINT_EVERY = 1000  # loop commits between two (passive) checkpoints on the lane
_SWEEP_CHUNK = 1000


# SQLite result codes (the sqlite3 module names them from Python 3.11 on).
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_FULL, _SQLITE_NOTADB = 5, 6, 13, 26


class _Busy(Exception):
    """The loop's connection met a lock; retry the operation on the lane."""


def _is_busy(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
    message = str(exc)
    return "locked" in message or "busy" in message


def _upper(prefix: str) -> str | None:
    """The smallest string above every string starting with ``prefix`` (None: no bound)."""
    while prefix:
        last = ord(prefix[-1])
        if last < 0x10FFFF and not 0xD7FF <= last < 0xE000:
            return prefix[:-1] + chr(last + 1)
        prefix = prefix[:-1]
    return None


class _SQL:
    """The statements, for one table."""

    def __init__(self, table: str) -> None:
        t = f'"{table}"'
        self.create = (
            f"CREATE TABLE IF NOT EXISTS {t} (ns TEXT NOT NULL, k TEXT NOT NULL, v, e REAL, "
            "PRIMARY KEY (ns, k)) WITHOUT ROWID"
        )
        self.index = f'CREATE INDEX IF NOT EXISTS "{table}_expiry" ON {t}(e) WHERE e IS NOT NULL'
        self.columns = f"PRAGMA table_info({t})"
        self.get = f"SELECT v, e FROM {t} WHERE ns = ? AND k = ?"
        self.peek = f"SELECT e FROM {t} WHERE ns = ? AND k = ?"
        self.set = f"INSERT OR REPLACE INTO {t} (ns, k, v, e) VALUES (?, ?, ?, ?)"
        self.delete = f"DELETE FROM {t} WHERE ns = ? AND k = ? RETURNING e"
        self.touch = (
            f"UPDATE {t} SET e = ? WHERE ns = ? AND k = ? AND (e IS NULL OR e > ?)"
        )
        self.insert_if_absent = (
            f"INSERT INTO {t} (ns, k, v, e) VALUES (?, ?, ?, ?) ON CONFLICT (ns, k) "
            "DO UPDATE SET v = excluded.v, e = excluded.e WHERE e IS NOT NULL AND e <= ?"
        )
        self.replace_if = (
            f"UPDATE {t} SET v = ?, e = ? WHERE ns = ? AND k = ? AND v = ? "
            "AND (e IS NULL OR e > ?)"
        )
        self.replace_if_keep = (
            f"UPDATE {t} SET v = ? WHERE ns = ? AND k = ? AND v = ? AND (e IS NULL OR e > ?)"
        )
        # One statement, so one commit and atomic across processes. The WHERE refuses
        # a value that is not an integer, or a sum that left int64 (SQLite makes it REAL).
        self.increment = (
            f"INSERT INTO {t} (ns, k, v, e) VALUES (:ns, :k, :amount, :e) "
            "ON CONFLICT (ns, k) DO UPDATE SET "
            "v = CASE WHEN e IS NOT NULL AND e <= :now THEN :amount ELSE v + :amount END, "
            "e = CASE WHEN e IS NOT NULL AND e <= :now THEN :e WHEN :reset THEN :e ELSE e END "
            "WHERE (e IS NOT NULL AND e <= :now) "
            "OR (typeof(v) = 'integer' AND typeof(v + :amount) = 'integer') "
            "RETURNING v"
        )
        live = "(e IS NULL OR e > ?)"
        self.scan_values = f"SELECT k, v, e FROM {t} WHERE ns = ? AND k > ? AND {live}"
        self.scan_keys = f"SELECT k, NULL, e FROM {t} WHERE ns = ? AND k > ? AND {live}"
        self.count_live = f"SELECT count(*) FROM {t} WHERE ns = ? AND (e IS NULL OR e > ?)"
        self.clear = f"DELETE FROM {t} WHERE ns = ?"
        self.sweep = (
            f"DELETE FROM {t} WHERE (ns, k) IN "
            f"(SELECT ns, k FROM {t} WHERE e IS NOT NULL AND e <= ? LIMIT {_SWEEP_CHUNK})"
        )
        self.expire_one = f"DELETE FROM {t} WHERE ns = ? AND k = ? AND e IS NOT NULL AND e <= ?"


class SQLiteKV(KVStore[V]):
    """Bot state in a SQLite file: persistent, atomic across the processes sharing it.

    The file is created with mode 0600 in WAL mode; a write that returned survives the
    process being killed. Expired rows are invisible at once, and removed by the next
    write of the key, by a read that meets them, and by a background sweep.

    :param path: the database file (created with its folders if missing), or
        ``":memory:"`` for a private in-memory database.
    :param table: the table holding the keys of every namespace (created if missing).
    :param sweep_interval: seconds between two sweeps of expired rows (None: no sweep).
    :param busy_timeout: seconds an operation waits for another process's write lock
        before :class:`StoreLockedError`.
    :raises InvalidArgumentError: a bad table name or interval.
    """

    _driver_errors = (sqlite3.Error,)

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        table: str = "kv",
        sweep_interval: float | None = 60.0,
        busy_timeout: float = 5.0,
        namespace: str | None = None,
        default_ttl: float | None = None,
        serializer: Serializer | None = None,
    ) -> None:
        super().__init__(namespace=namespace, default_ttl=default_ttl, serializer=serializer)
        if not isinstance(path, (str, os.PathLike)):
            raise InvalidArgumentError(f"path is a str or path, not {type(path).__name__}")
        if type(table) is not str or not _TABLE.fullmatch(table):
            raise InvalidArgumentError(
                f"table must be a SQL identifier (letters, digits, '_'), not {table!r}"
            )
        for name, value in (("sweep_interval", sweep_interval), ("busy_timeout", busy_timeout)):
            if value is not None and (
                type(value) not in (int, float) or not 0 < value < 1e9
            ):
                raise InvalidArgumentError(f"{name} must be a positive number, not {value!r}")
        self.memory = path == ":memory:"
        self.path: Path | None = None if self.memory else Path(path)
        self.table = table
        self.sweep_interval = sweep_interval
        self.busy_timeout = float(busy_timeout)
        self._sql = _SQL(table)
        self._db: sqlite3.Connection | None = None  # the loop's connection
        self._wdb: sqlite3.Connection | None = None  # the lane's connection (files only)
        self._lane = Lane()
        self._sweeper: asyncio.Task[None] | None = None
        self._commits = 0
        self._checkpointing = False
        self._stale: set[str] = set()

    def __repr__(self) -> str:
        where = ":memory:" if self.path is None else str(self.path)
        return f"SQLiteKV({where!r}, table={self.table!r}, namespace={self.namespace!r})"

    # -- errors ---------------------------------------------------------------------

    def _translate(self, exc: BaseException) -> StorageError:
        code = getattr(exc, "sqlite_errorcode", None)
        primary = None if code is None else code & 0xFF
        message = str(exc)
        if primary == _SQLITE_FULL or "database or disk is full" in message:
            return DiskFullError(f"{self!r}: the disk is full; nothing was changed")
        if primary in (_SQLITE_BUSY, _SQLITE_LOCKED) or "is locked" in message:
            return StoreLockedError(
                f"{self!r}: another connection held the write lock for more than "
                f"{self.busy_timeout}s"
            )
        if primary == _SQLITE_NOTADB or "not a database" in message:
            return CorruptStoreError(f"{self.path} is not a SQLite database; it was left untouched")
        return BackendError(f"{self!r}: {type(exc).__name__}: {exc}")

    # -- connections ----------------------------------------------------------------

    def _connect(self, timeout: float) -> sqlite3.Connection:
        target = ":memory:" if self.path is None else str(self.path)
        return sqlite3.connect(
            target, timeout=timeout, isolation_level=None, check_same_thread=False
        )

    def _setup(self) -> tuple[sqlite3.Connection, sqlite3.Connection | None]:
        if self.path is None:
            db = self._connect(0)
            db.execute(self._sql.create)
            db.execute(self._sql.index)
            return db, None
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Created 0600 before SQLite sees it; SQLite gives -wal and -shm the same mode.
        os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        wdb = self._connect(self.busy_timeout)
        try:
            self._while_locked(lambda: self._create_table(wdb))
            db = self._connect(0)
            db.execute("PRAGMA synchronous = NORMAL")
            # Checkpoints fsync and may wait: never on the loop's connection.
            db.execute("PRAGMA wal_autocheckpoint = 0")
        except BaseException:
            wdb.close()
            raise
        return db, wdb

    def _create_table(self, db: sqlite3.Connection) -> None:
        db.execute("PRAGMA journal_mode = WAL").fetchall()
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute(self._sql.create)
        self._check_table(db)
        db.execute(self._sql.index)

    def _while_locked(self, setup: Callable[[], None]) -> None:
        # Processes opening a new file at once all switch it to WAL and create the table;
        # where two would deadlock SQLite answers BUSY without calling its busy handler,
        # so wait here instead, for as long as busy_timeout allows. Every step is
        # idempotent.
        deadline = monotonic() + self.busy_timeout
        pause = 0.001
        while True:
            try:
                setup()
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or monotonic() >= deadline:
                    raise
            sleep(pause)
            pause = min(pause * 2, 0.05)

    def _check_table(self, db: sqlite3.Connection) -> None:
        columns = [row[1] for row in db.execute(self._sql.columns)]
        if columns != ["ns", "k", "v", "e"]:
            raise CorruptStoreError(
                f"{self.path}: table {self.table!r} exists but is not a key-value table "
                f"(columns {columns}); pass another table= name"
            )

    async def _open(self) -> None:
        if self.path is None:
            self._db, self._wdb = self._setup()
        else:
            self._db, self._wdb = await self._lane.run(self._setup)
        if self.sweep_interval is not None:
            self._sweeper = asyncio.create_task(self._sweep_forever(self.sweep_interval))

    async def _close(self) -> None:
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
        db, self._db = self._db, None
        if db is not None:
            db.close()
        wdb, self._wdb = self._wdb, None
        if wdb is not None:
            await self._lane.run(lambda: _close_after_checkpoint(wdb))

    # -- running a statement --------------------------------------------------------

    def _on_loop(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        db = self._db
        if db is None:
            raise self._closed()
        try:
            return fn(db)
        except sqlite3.OperationalError as exc:
            if self._wdb is not None and _is_busy(exc):
                raise _Busy from exc
            raise

    async def _run(self, fn: Callable[[sqlite3.Connection], T], *, write: bool) -> T:
        """Run ``fn`` on the loop's connection; on a lock, again on the lane's, which waits."""
        try:
            result = self._on_loop(fn)
        except _Busy:
            wdb = self._wdb
            if wdb is None:
                raise self._closed() from None
            return await self._lane.run(lambda: fn(wdb))
        if write and self._wdb is not None:
            self._commits += 1
            if self._commits >= _CHECKPOINT_EVERY and not self._checkpointing:
                self._schedule_checkpoint()
        return result

    async def _in_lane(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._wdb is not None:
            wdb = self._wdb
            return await self._lane.run(lambda: fn(wdb))
        if self._db is None:
            raise self._closed()
        return fn(self._db)

    def _schedule_checkpoint(self) -> None:
        self._commits = 0
        self._checkpointing = True
        wdb = self._wdb
        assert wdb is not None
        future = self._lane.run(lambda: _checkpoint(wdb))

        def done(fut: asyncio.Future[None]) -> None:
            self._checkpointing = False
            if not fut.cancelled():
                fut.exception()  # a failed checkpoint is retried after the next 1000 writes

        future.add_done_callback(done)

    # -- primitives -----------------------------------------------------------------

    def _get_now(self, key: str) -> Record | Literal[_Keep.KEEP] | None:
        sql, params = self._sql.get, (self.namespace, key)
        try:
            rows = self._on_loop(lambda db: db.execute(sql, params).fetchall())
        except _Busy:
            return KEEP
        if not rows:
            return None
        raw, expires = rows[0]
        if expires is not None and expires <= _time():
            self._forget(key)
        return raw, expires

    async def _get(self, key: str) -> Record | None:
        sql, params = self._sql.get, (self.namespace, key)
        rows = await self._run(lambda db: db.execute(sql, params).fetchall(), write=False)
        return (rows[0][0], rows[0][1]) if rows else None

    async def _peek(self, key: str) -> Record | None:
        sql, params = self._sql.peek, (self.namespace, key)
        rows = await self._run(lambda db: db.execute(sql, params).fetchall(), write=False)
        return ("", rows[0][0]) if rows else None

    async def _set(self, key: str, raw: Raw, expires: float | None) -> None:
        sql, params = self._sql.set, (self.namespace, key, raw, expires)
        await self._run(lambda db: db.execute(sql, params), write=True)

    async def _delete(self, key: str) -> Record | None:
        sql, params = self._sql.delete, (self.namespace, key)
        rows = await self._run(lambda db: db.execute(sql, params).fetchall(), write=True)
        return ("", rows[0][0]) if rows else None

    async def _touch(self, key: str, expires: float | None, now: float) -> bool:
        sql, params = self._sql.touch, (expires, self.namespace, key, now)
        count = await self._run(lambda db: db.execute(sql, params).rowcount, write=True)
        return count > 0

    async def _cas(
        self,
        key: str,
        expected: Raw | None,
        raw: Raw,
        expires: float | Literal[_Keep.KEEP] | None,
        now: float,
    ) -> bool:
        ns, sql = self.namespace, self._sql
        if expected is None:
            statement = sql.insert_if_absent
            params: tuple[Any, ...] = (ns, key, raw, None if expires is KEEP else expires, now)
        elif expires is KEEP:
            statement, params = sql.replace_if_keep, (raw, ns, key, expected, now)
        else:
            statement, params = sql.replace_if, (raw, expires, ns, key, expected, now)
        count = await self._run(lambda db: db.execute(statement, params).rowcount, write=True)
        return count > 0

    async def _increment(
        self, key: str, amount: int, expires: float | None, reset: bool, now: float
    ) -> int:
        params = {
            "ns": self.namespace,
            "k": key,
            "amount": amount,
            "e": expires,
            "now": now,
            "reset": int(reset),
        }
        sql = self._sql.increment
        for _ in range(8):
            rows = await self._run(lambda db: db.execute(sql, params).fetchall(), write=True)
            if rows:
                return int(rows[0][0])
            # Refused by the WHERE: say why (add_to_counter raises), unless it changed since.
            record = await self._get(key)
            if record is None or not is_live(record[1], now):
                continue
            add_to_counter(key, record[0], amount)
        raise NotACounterError(f"increment: the value of key {key!r} kept changing type")

    async def _scan(
        self, pattern: Pattern, values: bool, now: float
    ) -> AsyncIterator[list[tuple[str, Raw | None, float | None]]]:
        base = self._sql.scan_values if values else self._sql.scan_keys
        upper = _upper(pattern.prefix) if pattern.prefix else None
        size = _BATCH if self._wdb is not None else _MEMORY_BATCH
        bound = " AND k < ?" if upper is not None else ""
        first = base.replace("k > ?", "k >= ?") + bound + f" ORDER BY k LIMIT {size}"
        later = base + bound + f" ORDER BY k LIMIT {size}"
        statement, after = first, pattern.prefix
        while True:
            params: tuple[Any, ...] = (self.namespace, after, now)
            if upper is not None:
                params += (upper,)
            rows: list[tuple[str, Raw | None, float | None]] = await self._in_lane(
                lambda db, s=statement, p=params: db.execute(s, p).fetchall()  # type: ignore[misc]
            )
            if rows:
                yield rows
            if len(rows) < size:
                return
            statement, after = later, rows[-1][0]

    async def _clear(self, now: float) -> int:
        sql, ns = self._sql, self.namespace

        def clear(db: sqlite3.Connection) -> int:
            db.execute("BEGIN IMMEDIATE")
            try:
                (live,) = db.execute(sql.count_live, (ns, now)).fetchone()
                db.execute(sql.clear, (ns,))
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            return int(live)

        return await self._in_lane(clear)

    async def _health(self) -> bool:
        rows = await self._run(lambda db: db.execute("SELECT 1").fetchall(), write=False)
        return rows == [(1,)]

    # -- expiry ---------------------------------------------------------------------

    def _forget(self, key: str) -> None:
        """Remove an expired row a read met, soon and off the loop."""
        first = not self._stale
        self._stale.add(key)
        if first:
            asyncio.get_running_loop().call_soon(self._drop_stale)

    def _drop_stale(self) -> None:
        keys, self._stale = self._stale, set()
        if self._db is None:
            return
        sql, ns, now = self._sql.expire_one, self.namespace, _time()

        def drop(db: sqlite3.Connection) -> None:
            db.executemany(sql, [(ns, key, now) for key in keys])

        if self._wdb is not None:
            wdb = self._wdb
            self._lane.run(lambda: drop(wdb)).add_done_callback(_ignore)
        else:
            with contextlib.suppress(sqlite3.Error):
                drop(self._db)

    async def sweep(self) -> int:
        """Remove the expired rows of every namespace now; return how many.

        The background sweep calls this every ``sweep_interval`` seconds.
        """
        if not self._opened:
            raise self._closed()
        sql = self._sql.sweep
        removed = 0
        try:
            while True:
                now = _time()
                count: int = await self._in_lane(
                    lambda db, now=now: db.execute(sql, (now,)).rowcount  # type: ignore[misc]
                )
                removed += count
                if count < _SWEEP_CHUNK:
                    break
            if self._wdb is not None:
                wdb = self._wdb
                await self._lane.run(lambda: _checkpoint(wdb))
        except self._driver_errors as exc:
            raise self._translate(exc) from exc
        return removed

    async def _sweep_forever(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            # A failed sweep (disk full, a lock held too long) is tried again next time.
            with contextlib.suppress(StorageError):
                await self.sweep()


def _checkpoint(db: sqlite3.Connection) -> None:
    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


def _close_after_checkpoint(db: sqlite3.Connection) -> None:
    try:
        with contextlib.suppress(sqlite3.Error):
            _checkpoint(db)
    finally:
        db.close()


def _ignore(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
