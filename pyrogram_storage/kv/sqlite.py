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

The table's layout is versioned: ``migrations/kv_sqlite/`` holds the steps (``{table}``
stands for the table's name) and the table ``pyrogram_storage_kv`` records each kv
table's version, so a table written by a newer release is refused, not misread.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sqlite3
import stat
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from time import monotonic, sleep
from typing import Any, Literal, TypeVar

from .. import _files, _migrations
from .._worker import Lane
from ..errors import (
    CorruptDataError,
    NotFoundError,
    SchemaTooNewError,
    StorageError,
)
from .base import (
    KEEP,
    SOLE_WRITER_KEYS,
    KVStore,
    Merging,
    Raw,
    Record,
    V,
    _Keep,
    add_to_counter,
    is_live,
    path_of,
    split_location,
)
from .errors import CorruptValueError, InvalidArgumentError, NotACounterError
from .pattern import Pattern
from .serializer import Serializer

__all__ = ["SQLiteKV"]

T = TypeVar("T")
_TABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_BATCH = 500
_MEMORY_BATCH = 100  # rows per batch read on the loop (":memory:")
_CHECKPOINT_EVERY = 1000  # loop commits between two (passive) checkpoints on the lane
_SWEEP_CHUNK = 1000
_SIDE_FILES = ("-wal", "-shm", "-journal")
_VERSIONS = "pyrogram_storage_kv"
"""The table recording the schema version of each kv table in the file."""
_MIGRATIONS = "kv_sqlite"


class _Busy(Exception):
    """The loop's connection met a lock; retry the operation on the lane."""


def _is_busy(exc: sqlite3.Error) -> bool:
    return _files.sqlite_failure(exc) == _files.LOCKED


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
        self.get = f"SELECT v, e FROM {t} WHERE ns = ? AND k = ?"
        self.peek = f"SELECT e FROM {t} WHERE ns = ? AND k = ?"
        self.set = f"INSERT OR REPLACE INTO {t} (ns, k, v, e) VALUES (?, ?, ?, ?)"
        self.delete = f"DELETE FROM {t} WHERE ns = ? AND k = ? RETURNING e"
        self.touch = f"UPDATE {t} SET e = ? WHERE ns = ? AND k = ? AND (e IS NULL OR e > ?)"
        self.insert_if_absent = (
            f"INSERT INTO {t} (ns, k, v, e) VALUES (?, ?, ?, ?) ON CONFLICT (ns, k) "
            "DO UPDATE SET v = excluded.v, e = excluded.e WHERE e IS NOT NULL AND e <= ?"
        )
        self.replace_if = (
            f"UPDATE {t} SET v = ?, e = ? WHERE ns = ? AND k = ? AND v = ? AND (e IS NULL OR e > ?)"
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
        ``":memory:"`` for a private in-memory database (kept across ``close()`` and
        ``open()`` of the same object, like :class:`MemoryKV`'s).
    :param table: the table holding the keys of every namespace (created if missing).
    :param sweep_interval: seconds between two sweeps of expired rows (None: no sweep).
    :param busy_timeout: seconds an operation waits for another process's write lock
        before :class:`StoreLockedError`.
    :param create: False: only open a file that exists (:class:`NotFoundError`
        otherwise; nothing is created), as the command line reads a SOURCE.
    :raises InvalidArgumentError: a bad table name or interval.

    A relative ``path`` is taken from the current directory, as ``open()`` takes it.
    Files and folders it creates are private (0600 and 0700, whatever the umask); a
    symbolic link in place of the file or its ``-wal``/``-shm``/``-journal`` files is
    refused (:class:`StorageError`), and so is a table written by a newer release
    (:class:`SchemaTooNewError`).
    """

    creates_files = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        table: str = "kv",
        sweep_interval: float | None = 60.0,
        busy_timeout: float = 5.0,
        create: bool = True,
        namespace: str | None = None,
        default_ttl: float | None = None,
        serializer: Serializer | None = None,
        sole_writer: bool = False,
        sole_writer_keys: int = SOLE_WRITER_KEYS,
        commit_interval: float = 0.0,
    ) -> None:
        super().__init__(
            namespace=namespace,
            default_ttl=default_ttl,
            serializer=serializer,
            sole_writer=sole_writer,
            sole_writer_keys=sole_writer_keys,
            commit_interval=commit_interval,
        )
        if not isinstance(path, (str, os.PathLike)):
            raise InvalidArgumentError(f"path is a str or path, not {type(path).__name__}")
        if type(table) is not str or not _TABLE.fullmatch(table):
            raise InvalidArgumentError(
                f"table must be a SQL identifier (letters, digits, '_'), not {table!r}"
            )
        for name, value in (("sweep_interval", sweep_interval), ("busy_timeout", busy_timeout)):
            if value is not None and (type(value) not in (int, float) or not 0 < value < 1e9):
                raise InvalidArgumentError(f"{name} must be a positive number, not {value!r}")
        self.memory = path == ":memory:"
        self.persistent = not self.memory
        self.path: Path | None = None if self.memory else Path(path)
        self.table = table
        self.sweep_interval = sweep_interval
        self.busy_timeout = float(busy_timeout)
        self.create = bool(create)
        self._sql = _SQL(table)
        self._db: sqlite3.Connection | None = None  # the loop's connection
        self._kept: sqlite3.Connection | None = None  # a closed ":memory:" store's data
        self._wdb: sqlite3.Connection | None = None  # the lane's connection (files only)
        self._lane = Lane()
        self._sweeper: asyncio.Task[None] | None = None
        self._commits = 0
        self._checkpointing = False
        self._stale: set[str] = set()

    @classmethod
    def from_location(cls, location: str, **options: Any) -> SQLiteKV[Any]:
        """Build the store of ``sqlite:PATH``, ``file:PATH`` or a bare ``PATH``
        (``sqlite::memory:`` for memory), each optionally ending in ``#NAMESPACE``."""
        body, options = split_location(location, options)
        return cls(path_of(body, ("sqlite", "file"), "sqlite:bot.db"), **options)

    def __repr__(self) -> str:
        where = ":memory:" if self.path is None else str(self.path)
        return f"SQLiteKV({where!r}, table={self.table!r}, namespace={self.namespace!r})"

    # -- errors ---------------------------------------------------------------------

    def _translate(self, what: str, exc: Exception) -> StorageError:
        where = ":memory:" if self.path is None else str(self.path)
        if self.path is not None:
            full = _files.disk_full(exc, self.path.parent, f"cannot {what} in {where}")
            if full is not None:
                return full
        if not isinstance(exc, sqlite3.Error):
            return super()._translate(what, exc)
        if _files.sqlite_failure(exc) == _files.UNDECODABLE:
            return CorruptValueError(
                f"cannot {what}: {where} holds text that is not UTF-8 (not written by this "
                "library); it was left untouched"
            )
        return _files.sqlite_error(exc, where, self.busy_timeout, _files.STORE)

    # -- connections ----------------------------------------------------------------

    def _connect(self, timeout: float) -> sqlite3.Connection:
        target = ":memory:" if self.path is None else str(self.path)
        return sqlite3.connect(
            target, timeout=timeout, isolation_level=None, check_same_thread=False
        )

    def _setup(self) -> tuple[sqlite3.Connection, sqlite3.Connection | None]:
        if self.path is None:
            kept, self._kept = self._kept, None
            if kept is not None:
                return kept, None
            db = self._connect(0)
            try:
                _migrate(db, self.table, ":memory:")
            except BaseException:
                db.close()
                raise
            return db, None
        if not self.create and not os.path.lexists(self.path):
            raise NotFoundError(f"no such SQLite store: {self.path}")
        _make_file(self.path)
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
        _migrate(db, self.table, str(self.path))

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

    async def _open(self) -> None:
        if self.path is None:
            self._db, self._wdb = self._setup()
        else:
            self._db, self._wdb = await self._lane.setup(self._setup, _close_both)
        if self.sweep_interval is not None:
            self._sweeper = asyncio.create_task(self._sweep_forever(self.sweep_interval))

    async def _close(self) -> None:
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
        db, self._db = self._db, None
        if db is not None and self.path is None:
            self._kept = db  # like MemoryKV, a closed :memory: store keeps its data
        elif db is not None:
            db.close()
        wdb, self._wdb = self._wdb, None
        if wdb is not None:
            await self._lane.run(lambda: _close_after_checkpoint(wdb))

    # -- running a statement --------------------------------------------------------

    def _on_loop(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        db = self._db
        if db is None:
            raise self._closed_error()
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
                raise self._closed_error() from None
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
            raise self._closed_error()
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
        if type(expires) is float and expires <= self.clock():
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

    async def _merge(self, key: str, merging: Merging, expires: float | None, now: float) -> Raw:
        ns, sql = self.namespace, self._sql

        def merge(db: sqlite3.Connection) -> Raw:
            # One transaction, so the read and the write are one step for every process.
            db.execute("BEGIN IMMEDIATE")
            try:
                rows = db.execute(sql.get, (ns, key)).fetchall()
                live = rows and self._unexpired(key, rows[0][1], now)
                raw = merging.apply(rows[0][0] if live else None)
                db.execute(sql.set, (ns, key, raw, expires))
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            return raw

        return await self._run(merge, write=True)

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

    async def _ping(self) -> None:
        await self._run(lambda db: db.execute("SELECT 1").fetchall(), write=False)

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
        sql, ns, now = self._sql.expire_one, self.namespace, self.clock()

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

        :raises StorageClosedError: the store is not open.
        :raises BackendError: the database failed (a full disk: :class:`DiskFullError`).
        """
        self._check_open()
        return await self._call("remove expired keys", self._sweep())

    async def _sweep(self) -> int:
        sql = self._sql.sweep
        removed = 0
        while True:
            now = self.clock()
            count: int = await self._in_lane(
                lambda db, now=now: db.execute(sql, (now,)).rowcount  # type: ignore[misc]
            )
            removed += count
            if count < _SWEEP_CHUNK:
                break
        if self._wdb is not None:
            wdb = self._wdb
            await self._lane.run(lambda: _checkpoint(wdb))
        return removed

    async def _sweep_forever(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            # A failed sweep (disk full, a lock held too long) is tried again next time.
            with contextlib.suppress(StorageError):
                await self.sweep()


def _make_file(path: Path) -> None:
    """Make the folders (0700) and an empty file (0600) before SQLite sees it; no links."""
    _files.make_private_folder(path.parent, _files.STORE)
    _files.refuse_links(path, _SIDE_FILES, _files.STORE)
    if os.path.lexists(path):
        if not stat.S_ISREG(os.lstat(path).st_mode):
            raise StorageError(f"{path} is not a file (a folder, a pipe or a device)")
        return
    try:
        # SQLite gives its -wal and -shm files the mode of this one.
        os.close(_files.create_private(path))
    except FileExistsError:
        _files.refuse_links(path, (), _files.STORE)  # made meanwhile, by another opener?


def _migrate(db: sqlite3.Connection, table: str, where: str) -> None:
    """Bring ``table`` to the newest version of ``migrations/kv_sqlite/`` in one transaction.

    :raises SchemaTooNewError: a newer release wrote the table; nothing is changed.
    :raises CorruptDataError: a table of that name exists but is not a kv table.
    """
    steps = _migrations.numbered(_MIGRATIONS)
    latest = steps[-1].version
    db.execute(
        f'CREATE TABLE IF NOT EXISTS "{_VERSIONS}" '
        "(name TEXT PRIMARY KEY, version INTEGER NOT NULL)"
    )
    db.execute("BEGIN IMMEDIATE")
    try:
        row = db.execute(f'SELECT version FROM "{_VERSIONS}" WHERE name = ?', (table,)).fetchone()
        found = 0 if row is None else row[0]
        if found == latest and type(found) is int:
            db.execute("ROLLBACK")
            return
        if type(found) is not int or found > latest:
            raise SchemaTooNewError(
                f"{where}: table {table!r} has kv schema version {found!r}, newer than {latest} "
                "(the newest this release knows); upgrade pyrogram-storage. It was left untouched"
            )
        columns = [info[1] for info in db.execute(f'PRAGMA table_info("{table}")')]
        if found == 0 and columns and columns != ["ns", "k", "v", "e"]:
            raise CorruptDataError(
                f"{where}: table {table!r} exists but is not a key-value table (columns "
                f"{columns}); pass another table= name. It was left untouched"
            )
        for step in steps[found:]:
            for statement in _migrations.statements(step.text.replace("{table}", table)):
                db.execute(statement)
        db.execute(f'INSERT OR REPLACE INTO "{_VERSIONS}" VALUES (?, ?)', (table, latest))
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _close_both(connections: tuple[sqlite3.Connection | None, sqlite3.Connection | None]) -> None:
    for db in connections:
        if db is not None:
            db.close()


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
