"""Bot state in PostgreSQL: one table for every namespace, each operation one statement.

A key is a row ``(ns, k, i, t, e)``: an integer value in ``i`` (so ``increment`` adds in
the server), any other value's text in ``t``, its absolute expiry in ``e`` (seconds
since the epoch; NULL: never). Every operation is one statement, atomic across
processes without a transaction of its own; ``k`` sorts by code point (``COLLATE
"C"``), so a pattern's literal prefix is an index range whatever the database's
locale. Expired rows are invisible at once and removed by the next write of the key
and by a background sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any, Literal

from ..errors import BackendError, StorageClosedError, StorageError
from ..postgres import client as pg
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
    split_location,
)
from .errors import CorruptStoreError, InvalidArgumentError, NotACounterError
from .pattern import Pattern
from .serializer import Serializer

__all__ = ["KV_SERVER_SETTINGS", "PostgresKV"]

KV_SERVER_SETTINGS = {"synchronous_commit": "off"}
"""Session settings of a pool :meth:`PostgresKV.from_url` builds, unless
``pool_options={"server_settings": {...}}`` say otherwise: a commit does not wait for
its WAL record to reach the disk. Bot state is then as durable as Redis with
``appendfsync everysec``: a crash of the server (not of the bot) may lose the last
fraction of a second of writes (three times ``wal_writer_delay``, 0.6 s by default),
never part of one; ``{"synchronous_commit": "on"}`` makes every write durable when it
returns, at the price of a WAL flush each."""

_BATCH = 500
_SWEEP_CHUNK = 1000
_COLUMNS = ["ns", "k", "i", "t", "e"]


def _upper(prefix: str) -> str | None:
    """The smallest string above every string starting with ``prefix`` (None: no bound)."""
    while prefix:
        last = ord(prefix[-1])
        if last < 0x10FFFF and not 0xD7FF <= last < 0xE000:
            return prefix[:-1] + chr(last + 1)
        prefix = prefix[:-1]
    return None


def _split(raw: Raw) -> tuple[int | None, str | None]:
    return (raw, None) if type(raw) is int else (None, str(raw))


def _count(status: str) -> int:
    """Rows an ``INSERT``/``UPDATE``/``DELETE`` status says it touched."""
    return int(status.rsplit(" ", 1)[-1])


class _SQL:
    def __init__(self, schema: str, table: str) -> None:
        t = f"{pg.quote_ident(schema)}.{pg.quote_ident(table)}"
        live = "(e IS NULL OR e > $3)"
        self.create_schema = f"CREATE SCHEMA IF NOT EXISTS {pg.quote_ident(schema)}"
        self.create = (
            f'CREATE TABLE IF NOT EXISTS {t} (ns text COLLATE "C" NOT NULL, '
            f'k text COLLATE "C" NOT NULL, i bigint, t text, e double precision, '
            f"PRIMARY KEY (ns, k))"
        )
        self.index = (
            f"CREATE INDEX IF NOT EXISTS {pg.quote_ident(table + '_expiry')} "
            f"ON {t} (e) WHERE e IS NOT NULL"
        )
        self.get = f"SELECT i, t, e FROM {t} WHERE ns = $1 AND k = $2"
        self.peek = f"SELECT e FROM {t} WHERE ns = $1 AND k = $2"
        self.set = (
            f"INSERT INTO {t} (ns, k, i, t, e) VALUES ($1, $2, $3, $4, $5) "
            f"ON CONFLICT (ns, k) DO UPDATE SET i = EXCLUDED.i, t = EXCLUDED.t, e = EXCLUDED.e"
        )
        self.delete = f"DELETE FROM {t} WHERE ns = $1 AND k = $2 RETURNING e"
        self.delete_only = f"DELETE FROM {t} WHERE ns = $1 AND k = $2"
        self.touch = f"UPDATE {t} SET e = $4 WHERE ns = $1 AND k = $2 AND {live}"
        self.insert_if_absent = (
            f"INSERT INTO {t} AS kv (ns, k, i, t, e) VALUES ($1, $2, $4, $5, $6) "
            f"ON CONFLICT (ns, k) DO UPDATE SET i = EXCLUDED.i, t = EXCLUDED.t, e = EXCLUDED.e "
            f"WHERE kv.e IS NOT NULL AND kv.e <= $3"
        )
        same = "i IS NOT DISTINCT FROM $4 AND t IS NOT DISTINCT FROM $5"
        self.replace_if = (
            f"UPDATE {t} SET i = $6, t = $7, e = $8 WHERE ns = $1 AND k = $2 AND {same} AND {live}"
        )
        self.replace_if_keep = (
            f"UPDATE {t} SET i = $6, t = $7 WHERE ns = $1 AND k = $2 AND {same} AND {live}"
        )
        # Refused (no row back) for a value that is not an integer; an int64 overflow
        # is the server's error 22003.
        self.increment = (
            f"INSERT INTO {t} AS kv (ns, k, i, t, e) VALUES ($1, $2, $4, NULL, $5) "
            f"ON CONFLICT (ns, k) DO UPDATE SET "
            f"i = CASE WHEN kv.e IS NOT NULL AND kv.e <= $3 THEN $4 ELSE kv.i + $4 END, "
            f"t = NULL, "
            f"e = CASE WHEN kv.e IS NOT NULL AND kv.e <= $3 THEN $5 "
            f"WHEN $6 THEN $5 ELSE kv.e END "
            f"WHERE ((kv.e IS NOT NULL AND kv.e <= $3) OR kv.i IS NOT NULL) "
            f"AND kv.e IS DISTINCT FROM 'NaN' "  # damaged: refused, as every read refuses it
            f"RETURNING i"
        )
        # A stored dict's text with the new members spliced in: the stored members kept
        # as they are written (json_each gives each value's own text), the keys sorted
        # by code point and written as the serializer writes them, so the result is the
        # text the serializer would write for the merged dict. Refused (no row back)
        # for a value that is not a plain JSON object: the caller merges in Python.
        spliced = (
            "(SELECT '{' || coalesce(string_agg(to_json(m.key)::text || ':' || m.value, ',' "
            "ORDER BY m.key COLLATE \"C\"), '') || '}' FROM ("
            "SELECT j.key, j.value::text FROM json_each(kv.t::json) AS j "
            "WHERE j.key <> ALL($6::text[]) "
            "UNION ALL SELECT * FROM unnest($6::text[], $7::text[])) AS m(key, value))"
        )
        expired = "kv.e IS NOT NULL AND kv.e <= $3"
        self.merge = (
            f"INSERT INTO {t} AS kv (ns, k, i, t, e) VALUES ($1, $2, NULL, $4, $5) "
            f"ON CONFLICT (ns, k) DO UPDATE SET i = NULL, "
            f"t = CASE WHEN {expired} THEN EXCLUDED.t ELSE {spliced} END, e = EXCLUDED.e "
            f"WHERE (({expired}) OR CASE WHEN kv.i IS NULL AND left(kv.t, 1) = '{{' "
            f"THEN strpos(kv.t, '\"$kv\"') = 0 OR (kv.t::json -> '$kv') IS NULL ELSE false END) "
            f"AND kv.e IS DISTINCT FROM 'NaN' "  # damaged: refused, as every read refuses it
            f"RETURNING t"
        )
        self.scan = (
            f"SELECT k, i, t, e FROM {t} WHERE ns = $1 AND k >= $2 AND {live} "
            f"AND ($4::text IS NULL OR k < $4) AND ($5::text IS NULL OR k > $5) "
            f"ORDER BY k LIMIT {_BATCH}"
        )
        self.count_live = f"SELECT count(*) FROM {t} WHERE ns = $1 AND (e IS NULL OR e > $2)"
        self.clear = f"DELETE FROM {t} WHERE ns = $1"
        self.sweep = (
            f"DELETE FROM {t} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {t} "
            f"WHERE e IS NOT NULL AND e <= $1 LIMIT {_SWEEP_CHUNK}))"
        )


class PostgresKV(KVStore[V]):
    """Bot state in a PostgreSQL table, shared safely by every process using it.

    :param pool: an :class:`asyncpg.Pool`; it stays the caller's (:meth:`close` leaves
        it open). :meth:`from_url` builds one the store owns.
    :param schema: the schema holding the table (created if missing).
    :param table: the table holding the keys of every namespace (created if missing).
    :param sweep_interval: seconds between two sweeps of expired rows (None: no sweep).
    :raises InvalidArgumentError: a bad schema or table name, or not a pool.
    """

    requires = "postgresql"

    def __init__(
        self,
        pool: Any,
        *,
        schema: str = "pyrogram_storage",
        table: str = "kv",
        sweep_interval: float | None = 60.0,
        namespace: str | None = None,
        default_ttl: float | None = None,
        serializer: Serializer | None = None,
        sole_writer: bool = False,
        sole_writer_keys: int = SOLE_WRITER_KEYS,
        commit_interval: float = 0.0,
        _recipe: pg.PoolRecipe | None = None,
    ) -> None:
        super().__init__(
            namespace=namespace,
            default_ttl=default_ttl,
            serializer=serializer,
            sole_writer=sole_writer,
            sole_writer_keys=sole_writer_keys,
            commit_interval=commit_interval,
        )
        try:
            pg.check_identifier(schema, "schema")
            pg.check_identifier(table, "table")
            if len((table + "_expiry").encode()) > 63:
                raise InvalidArgumentError("table must be at most 56 bytes")
            if _recipe is None:
                pg.check_pool(pool)
        except (TypeError, ValueError) as exc:
            raise InvalidArgumentError(str(exc)) from None
        if sweep_interval is not None and (
            type(sweep_interval) not in (int, float) or not 0 < sweep_interval < 1e9
        ):
            raise InvalidArgumentError(
                f"sweep_interval must be a positive number, not {sweep_interval!r}"
            )
        self.schema, self.table, self.sweep_interval = schema, table, sweep_interval
        self._given = pool
        self._recipe = _recipe
        self._pool: Any = None
        self._runner: pg.Runner | None = None
        self._sql = _SQL(schema, table)
        self._sweeper: asyncio.Task[None] | None = None
        asyncpg = pg.import_asyncpg()
        self._overflow = asyncpg.NumericValueOutOfRangeError
        self._unparsable = (
            asyncpg.InvalidTextRepresentationError,
            asyncpg.UntranslatableCharacterError,
        )

    @classmethod
    def from_location(cls, location: str, **options: Any) -> PostgresKV[Any]:
        """Build the store of ``postgresql://USER:PASSWORD@HOST[:PORT]/DB[?schema=&table=]
        [#NAMESPACE]`` (also ``postgres://``)."""
        url, options = split_location(location, options)
        return cls.from_url(url, **options)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        pool_options: Mapping[str, Any] | None = None,
        connect_timeout: float = pg.DEFAULT_CONNECT_TIMEOUT,
        **options: Any,
    ) -> PostgresKV[Any]:
        """Build a store whose pool is made from ``url`` on :meth:`open` (closed by close).

        :param url: ``postgresql://[USER[:PASSWORD]@]HOST[:PORT]/DATABASE``; ``?schema=``,
            ``?table=``, ``?sole_writer=true`` and ``?commit_interval=SECONDS`` in the
            query are this store's options,
            the rest asyncpg's.
        :param pool_options: keyword arguments of :func:`asyncpg.create_pool`; its
            ``server_settings`` start from :data:`KV_SERVER_SETTINGS`.
        :param connect_timeout: seconds :meth:`open` waits for the server.
        :raises InvalidArgumentError: not a ``postgresql://`` URL.
        :raises MissingDriverError: asyncpg is not installed.
        """
        head, _, text = url.partition("?")
        from urllib.parse import parse_qsl, urlencode

        query = parse_qsl(text, keep_blank_values=True)
        ours = ("schema", "table", "sole_writer", "commit_interval")
        for key, value in query:
            if key == "sole_writer":
                if value.lower() not in ("1", "true", "yes", "0", "false", "no"):
                    raise InvalidArgumentError("sole_writer in a URL is true or false")
                options.setdefault(key, value.lower() in ("1", "true", "yes"))
            elif key == "commit_interval":
                try:
                    options.setdefault(key, float(value))
                except ValueError:
                    raise InvalidArgumentError(
                        f"commit_interval in a URL is a number of seconds, not {value!r}"
                    ) from None
            elif key in ours:
                options.setdefault(key, value)
        rest = [(key, value) for key, value in query if key not in ours]
        url = f"{head}?{urlencode(rest)}" if rest else head
        given = dict(pool_options or {})
        settings = {**KV_SERVER_SETTINGS, **dict(given.get("server_settings") or {})}
        given["server_settings"] = settings
        try:
            recipe = pg.PoolRecipe(url, given, connect_timeout)
        except (TypeError, ValueError) as exc:
            raise InvalidArgumentError(str(exc)) from None
        return cls(None, _recipe=recipe, **options)

    def __repr__(self) -> str:
        # Never the URL: it may carry a password.
        return (
            f"PostgresKV(schema={self.schema!r}, table={self.table!r}, "
            f"namespace={self.namespace!r})"
        )

    def _translate(self, what: str, exc: Exception) -> StorageError:
        text = str(exc).strip().splitlines()
        first = text[0] if text else ""
        return BackendError(f"PostgresKV failed to {what}: {type(exc).__name__}: {first}")

    # -- lifecycle ------------------------------------------------------------------

    async def _open(self) -> None:
        if self._recipe is not None:
            self._pool = await self._recipe.build()
        else:
            self._pool = self._given
        self._runner = pg.Runner(self._pool, hold=self._recipe is not None)
        sql = self._sql
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext($1))",
                f"pyrogram_storage kv:{self.schema}.{self.table}",
            )
            exists = await conn.fetchval(
                "SELECT count(*) FROM pg_namespace WHERE nspname = $1", self.schema
            )
            if not exists:
                await conn.execute(sql.create_schema)
            await conn.execute(sql.create)
            columns = [
                row[0]
                for row in await conn.fetch(
                    "SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass "
                    "AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                    f"{pg.quote_ident(self.schema)}.{pg.quote_ident(self.table)}",
                )
            ]
            if columns != _COLUMNS:
                raise CorruptStoreError(
                    f"table {self.schema}.{self.table} exists but is not a key-value table "
                    f"(columns {columns}); pass another table="
                )
            await conn.execute(sql.index)
        if self.sweep_interval is not None:
            self._sweeper = asyncio.get_running_loop().create_task(
                self._sweep_forever(self.sweep_interval)
            )

    async def _close(self) -> None:
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.close()
        pool, self._pool = self._pool, None
        if pool is not None and self._recipe is not None:
            await pool.close()

    async def _sweep_forever(self, interval: float) -> None:
        from time import time as now

        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(Exception):  # the next sweep tries again
                while (
                    _count(await self._bound().run("execute", self._sql.sweep, now()))
                    >= _SWEEP_CHUNK
                ):
                    await asyncio.sleep(0)

    def _bound(self) -> pg.Runner:
        runner = self._runner
        if runner is None:
            raise StorageClosedError(f"{self!r} is closed")
        return runner

    # -- primitives -----------------------------------------------------------------

    async def _get(self, key: str) -> Record | None:
        row = await self._bound().run("fetchrow", self._sql.get, self.namespace, key)
        if row is None:
            return None
        value = row[0] if row[0] is not None else row[1]
        return value, row[2]

    async def _peek(self, key: str) -> Record | None:
        row = await self._bound().run("fetchrow", self._sql.peek, self.namespace, key)
        return None if row is None else ("", row[0])

    async def _set(self, key: str, raw: Raw, expires: float | None) -> None:
        await self._bound().run(
            "execute", self._sql.set, self.namespace, key, *_split(raw), expires
        )

    async def _write_many(self, writes: list[tuple[str, Record | None]]) -> None:
        # One transaction: a crash leaves all of the batch or none of it.
        ns = self.namespace
        sets = [(ns, key, *_split(rec[0]), rec[1]) for key, rec in writes if rec is not None]
        deletes = [(ns, key) for key, rec in writes if rec is None]
        async with self._bound().connection() as conn, conn.transaction():
            if sets:
                await conn.executemany(self._sql.set, sets)
            if deletes:
                await conn.executemany(self._sql.delete_only, deletes)

    async def _delete(self, key: str) -> Record | None:
        row = await self._bound().run("fetchrow", self._sql.delete, self.namespace, key)
        return None if row is None else ("", row[0])

    async def _touch(self, key: str, expires: float | None, now: float) -> bool:
        status = await self._bound().run(
            "execute", self._sql.touch, self.namespace, key, now, expires
        )
        return _count(status) > 0

    async def _cas(
        self,
        key: str,
        expected: Raw | None,
        raw: Raw,
        expires: float | Literal[_Keep.KEEP] | None,
        now: float,
    ) -> bool:
        pool, sql, ns = self._bound(), self._sql, self.namespace
        if expected is None:
            when = None if expires is KEEP else expires
            status = await pool.run(
                "execute", sql.insert_if_absent, ns, key, now, *_split(raw), when
            )
        elif expires is KEEP:
            status = await pool.run(
                "execute", sql.replace_if_keep, ns, key, now, *_split(expected), *_split(raw)
            )
        else:
            status = await pool.run(
                "execute", sql.replace_if, ns, key, now, *_split(expected), *_split(raw), expires
            )
        return _count(status) > 0

    async def _increment(
        self, key: str, amount: int, expires: float | None, reset: bool, now: float
    ) -> int:
        pool, sql, ns = self._bound(), self._sql, self.namespace
        for _ in range(8):
            try:
                value = await pool.run(
                    "fetchval", sql.increment, ns, key, now, amount, expires, reset
                )
            except self._overflow:
                raise NotACounterError(
                    f"increment: key {key!r} would leave the 64-bit integer range"
                ) from None
            if value is not None:
                return int(value)
            # Refused: say why (add_to_counter raises), unless it changed since.
            record = await self._get(key)
            if record is None or not self._unexpired(key, record[1], now):
                continue
            add_to_counter(key, record[0], amount)
        raise NotACounterError(f"increment: the value of key {key!r} kept changing type")

    async def _merge(self, key: str, merging: Merging, expires: float | None, now: float) -> Raw:
        members = merging.members
        if members is None or any("\x00" in name for name, _, _ in members):
            return await super()._merge(key, merging, expires, now)
        names = [name for name, _, _ in members]
        texts = [text for _, _, text in members]
        try:
            merged = await self._bound().run(
                "fetchval",
                self._sql.merge,
                self.namespace,
                key,
                now,
                merging.text,
                expires,
                names,
                texts,
            )
        except self._unparsable:
            merged = None  # not JSON PostgreSQL reads (damaged, NaN, a \u0000 key)
        if merged is None:
            return await super()._merge(key, merging, expires, now)
        return str(merged)

    async def _scan(
        self, pattern: Pattern, values: bool, now: float
    ) -> AsyncIterator[list[tuple[str, Raw | None, float | None]]]:
        pool, sql, ns = self._bound(), self._sql, self.namespace
        upper = _upper(pattern.prefix) if pattern.prefix else None
        after: str | None = None
        while True:
            rows = await pool.run("fetch", sql.scan, ns, pattern.prefix, now, upper, after)
            if rows:
                yield [
                    (
                        row[0],
                        (row[1] if row[1] is not None else row[2]) if values else None,
                        row[3],
                    )
                    for row in rows
                ]
            if len(rows) < _BATCH:
                return
            after = rows[-1][0]

    async def _clear(self, now: float) -> int:
        async with self._bound().connection() as conn, conn.transaction():
            live = await conn.fetchval(self._sql.count_live, self.namespace, now)
            await conn.execute(self._sql.clear, self.namespace)
        return int(live)

    async def _health(self) -> bool:
        return bool(await self._bound().run("fetchval", "SELECT 1") == 1)
