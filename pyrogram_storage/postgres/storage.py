"""The PostgreSQL session storage: many sessions in one set of tables, over asyncpg.

Every session of a schema lives in the same five tables (see
``migrations/postgres/0001_initial.sql``), its rows keyed by the session's ``sid``: ten
thousand sessions cost ten thousand rows of ``sessions``, not ten thousand tables.
Every value reaches the server as a parameter; the schema's name, quoted, is the only
name written into SQL text. Each batch of writes is one transaction.
"""

from __future__ import annotations

import json
import secrets
import zlib
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from .._pending import Changes, PeerRow
from ..base import Storage
from ..errors import (
    InvalidTypeError,
    InvalidValueError,
    MigrationError,
    SessionNotFoundError,
    StorageClosedError,
)
from ..types import SESSION_FIELDS, Peer, PeerType, SessionData, UpdateState
from . import client as pg
from . import notify, schema

__all__ = ["DEFAULT_SCHEMA", "MAX_NAME_LENGTH", "PostgresStorage"]

DEFAULT_SCHEMA = "pyrogram_storage"
"""The schema holding the tables, unless ``schema=`` names another."""

MAX_NAME_LENGTH = 512
"""Characters of a session name at most (it is a key of a btree index)."""

_PEER = "id, access_hash, type, usernames, phone_number, last_update_on"
_SESSION = ", ".join(SESSION_FIELDS)
_NEW_SHARE_PROBE = 0.5


class PostgresStorage(Storage):
    """A session kept in PostgreSQL, beside any number of others in the same tables.

    Session fields are stored before their call returns. Peer, username and
    update-state writes are visible to this object at once and stored within
    ``commit_interval`` (50 ms by default; 0 stores each before its call returns),
    each batch in one transaction: all of it or nothing. Other processes see them once
    stored.

    :param name: the session name: up to :data:`MAX_NAME_LENGTH` characters, no NUL.
        It is only ever a parameter of a query, never part of SQL text.
    :param pool: an :class:`asyncpg.Pool`. It stays the caller's: :meth:`close` does
        not close it. Or a :class:`~.client.PoolRecipe`: the storage then builds its
        own pool on :meth:`open` and closes it on :meth:`close` (what :meth:`from_url`
        does). A shared storage keeps one connection of the pool for ``LISTEN``.
    :param schema: the PostgreSQL schema holding the tables (made on first open).
    :param sole_writer: promise that while this object is open no other object or
        process writes this session: peers are then kept in memory, unchanged peers
        are not written again and session fields are served from memory. Leave it
        False (the default) when several processes share the session: each flush then
        sends a ``NOTIFY`` that the others' ``LISTEN`` turns into invalidations.
    :param options: ``username_ttl``, ``session_string``, ``peer_cache_size``,
        ``commit_interval``, ``read_only`` (see :class:`~pyrogram_storage.Storage`).
    :raises InvalidTypeError: ``pool`` is not an asyncpg pool or a recipe.
    :raises InvalidValueError: a bad session name or schema name.
    """

    requires = "postgresql"
    default_commit_interval = 0.05
    delivers_invalidations: ClassVar[bool] = True

    def __init__(
        self,
        name: str,
        pool: Any,
        *,
        schema: str = DEFAULT_SCHEMA,
        sole_writer: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(name, **options)
        _check_name(name)
        self.schema = pg.check_identifier(schema, "schema")
        if not isinstance(sole_writer, bool):
            raise InvalidTypeError(f"sole_writer must be a bool, not {type(sole_writer).__name__}")
        self.sole_writer = sole_writer
        self._recipe: pg.PoolRecipe | None = None
        self._pool: Any = None
        if isinstance(pool, pg.PoolRecipe):
            self._recipe = pool
        else:
            pg.check_pool(pool)
            self._pool = pool
        self._open_pool: Any = None
        self._runner: pg.Runner | None = None
        self._sid: int | None = None
        self._channel: str | None = None
        self._listener: notify.Listener | None = None
        self.token = secrets.token_hex(4)
        self._url: str | None = None
        self._new_share = 1.0
        self._sql = _Statements(pg.quote_ident(self.schema))

    # -- building ------------------------------------------------------------------------------

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        name: str,
        pool_options: Mapping[str, Any] | None = None,
        connect_timeout: float = pg.DEFAULT_CONNECT_TIMEOUT,
        **options: Any,
    ) -> PostgresStorage:
        """Build a storage whose pool is made from ``url`` on :meth:`open` (and closed on
        :meth:`close`). Nothing connects before :meth:`open`.

        :param url: ``postgresql://[USER[:PASSWORD]@]HOST[:PORT]/DATABASE``; libpq-style
            server options in the query (``?sslmode=require``...) go to asyncpg.
        :param name: the session name.
        :param pool_options: keyword arguments of :func:`asyncpg.create_pool`
            (:data:`~.client.DEFAULT_POOL_OPTIONS` otherwise): ``statement_cache_size=0``
            behind PgBouncer in transaction mode.
        :param connect_timeout: seconds :meth:`open` waits for the server before a
            :class:`~pyrogram_storage.BackendError` (5 by default).
        :param options: the other arguments of :class:`PostgresStorage`.
        :raises MissingDriverError: asyncpg is not installed (``pip install
            pyrogram-storage[postgres]``).
        :raises InvalidValueError: not a ``postgresql://`` URL.
        """
        pg.import_asyncpg()
        recipe = pg.PoolRecipe(url, dict(pool_options or {}), connect_timeout)
        storage = cls(name, recipe, **options)
        storage._url = url
        return storage

    @classmethod
    def from_location(cls, location: str, **options: Any) -> PostgresStorage:
        """Build the storage of ``postgresql://USER:PASSWORD@HOST:PORT/DB?schema=S#NAME``.

        ``schema``, ``sole_writer``, ``statement_cache_size`` and ``connect_timeout`` in
        the query are this library's options; the rest of the URL goes to asyncpg.

        :raises InvalidValueError: no ``#NAME``, or a bad URL.
        """
        url, ours, name = pg.split_location(location, "session")
        return cls.from_url(url, name=name, **{**pg.parse_options(ours), **options})

    @property
    def location(self) -> str | None:
        url = self._url
        if url is None:
            return None  # built on a pool of the caller's: its URL is not known here
        from urllib.parse import quote

        extra = [] if self.schema == DEFAULT_SCHEMA else [("schema", self.schema)]
        return f"{pg.location_query(url, extra)}#{quote(self.name, safe='')}"

    def __repr__(self) -> str:
        # Never the URL: it may carry a password.
        return f"{type(self).__name__}(name={self.name!r}, schema={self.schema!r})"

    def _sole_writer(self) -> bool:
        return self.sole_writer and not self.read_only

    @property
    def _where(self) -> str:
        return f"PostgreSQL schema {self.schema!r} (session {self.name!r})"

    def _bound(self) -> tuple[pg.Runner, int]:
        runner, sid = self._runner, self._sid
        if runner is None or sid is None:
            raise StorageClosedError(f"{self!r} is closed")
        return runner, sid

    # -- lifecycle -----------------------------------------------------------------------------

    async def _open(self) -> SessionData:
        owned = self._pool is None
        if owned:
            assert self._recipe is not None
            pool = await self._recipe.build()
        else:
            pool = self._pool
        runner = pg.Runner(pool, hold=owned)
        try:
            async with runner.connection() as conn:
                version = await schema.read_version(conn, self.schema, self._where)
                if version < schema.latest():
                    if self.read_only:
                        if version == 0:
                            raise SessionNotFoundError(f"no {self._where} on this server")
                        raise MigrationError(
                            f"{self._where} has schema version {version}; open it once "
                            f"without read_only to bring it to version {schema.latest()}"
                        )
                    await schema.prepare(conn, self.schema, self._where)
                if self.read_only:
                    row = await conn.fetchrow(self._sql.read_session_by_name, self.name)
                    if row is None:
                        raise SessionNotFoundError(f"no {self._where} on this server")
                else:
                    row = await conn.fetchrow(self._sql.open_session, self.name)
            self._sid = row["sid"]
            self._open_pool, self._runner = pool, runner
            await self._listen(pool, row["sid"])
            return _session(row)
        except BaseException:
            self._open_pool = self._runner = None
            self._sid = None
            await runner.close()
            if owned:
                await pool.close()
            raise

    async def _listen(self, pool: Any, sid: int) -> None:
        if self._sole_writer():
            return
        if pool.get_max_size() < 2:
            raise InvalidValueError(
                "a shared PostgresStorage keeps one connection of its pool for LISTEN: give "
                "it a pool of max_size 2 or more, or pass sole_writer=True"
            )
        key = f"{zlib.crc32(self.schema.encode()):08x}"
        self._channel = notify.channel_of(key, sid)
        self._listener = notify.listener_of(pool)
        await self._listener.subscribe(self._channel, self)

    async def _close(self) -> None:
        pool, self._open_pool = self._open_pool, None
        runner, self._runner = self._runner, None
        self._sid = None
        if runner is not None:
            await runner.close()
        listener, self._listener = self._listener, None
        if listener is not None and self._channel is not None:
            await listener.unsubscribe(self._channel, self)
        if pool is not None and self._pool is None:
            await pool.close()

    async def _delete(self) -> None:
        """Delete the session's rows from every table, in one transaction."""
        pool = self._open_pool or self._pool
        owned = pool is None
        if owned:
            assert self._recipe is not None
            pool = await self._recipe.build()
        try:
            async with pool.acquire() as conn:
                if await schema.read_version(conn, self.schema, self._where) == 0:
                    return
                async with conn.transaction():
                    sid = await conn.fetchval(self._sql.delete_session, self.name)
                    if sid is None:
                        return
                    for statement in self._sql.delete_rows:
                        await conn.execute(statement, sid)
                    key = f"{zlib.crc32(self.schema.encode()):08x}"
                    await conn.execute(
                        "SELECT pg_notify($1, $2)",
                        notify.channel_of(key, sid),
                        f"{self.token} * S U",
                    )
        finally:
            if owned:
                await pool.close()

    async def _ping(self) -> None:
        runner, _ = self._bound()
        await runner.run("fetchval", "SELECT 1")

    # -- writes --------------------------------------------------------------------------------

    async def _apply(self, changes: Changes) -> None:
        runner, sid = self._bound()
        sql = self._sql
        async with runner.connection() as conn, conn.transaction():
            if changes.deleted_peers:
                ids = changes.deleted_peers
                await conn.execute(sql.delete_peers, sid, ids)
                await conn.execute(sql.delete_usernames_of, sid, ids)
            if changes.peers:
                await self._write_peers(conn, sid, changes.peers)
            if changes.usernames:
                ids = [peer_id for peer_id, _ in changes.usernames]
                names = [json.dumps(names) for _, names in changes.usernames]
                found = await conn.fetch(sql.set_usernames, sid, ids, names)
                stored = {row[0] for row in found}
                await conn.execute(sql.delete_usernames_of, sid, list(stored))
                owners, flat = _flat(
                    (peer_id, names) for peer_id, names in changes.usernames if peer_id in stored
                )
                if flat:
                    await conn.execute(sql.insert_usernames, sid, owners, flat)
            if changes.deleted_states:
                await conn.execute(sql.delete_states, sid, changes.deleted_states)
            for statement, states in (
                (sql.put_states, changes.states),
                (sql.merge_states, changes.merged_states),
            ):
                if states:
                    await conn.execute(
                        statement,
                        sid,
                        [s.id for s in states],
                        [s.pts for s in states],
                        [s.qts for s in states],
                        [s.date for s in states],
                        [s.seq for s in states],
                    )
            session = changes.session
            fields = [name for name in SESSION_FIELDS if name in changes.session_fields]
            if session is not None and fields:
                await conn.execute(
                    sql.update_session(fields), sid, *(getattr(session, f) for f in fields)
                )
            if not self._sole_writer():
                peers = [
                    *changes.deleted_peers,
                    *(peer.id for peer in changes.peers),
                    *(peer_id for peer_id, _ in changes.usernames),
                ]
                touched = bool(changes.deleted_states or changes.states or changes.merged_states)
                text = notify.payload(self.token, peers, bool(fields), touched)
                await conn.execute("SELECT pg_notify($1, $2)", self._channel, text)

    async def _write_peers(self, conn: Any, sid: int, peers: list[PeerRow]) -> None:
        """Upsert the peers: those with usernames replace them, the others keep them."""
        sql = self._sql
        full = [peer for peer in peers if peer.usernames is not None]
        kept = [peer for peer in peers if peer.usernames is None]
        if kept:
            await conn.execute(sql.upsert_kept, sid, *_columns(kept))
        if full:
            await conn.execute(
                sql.upsert_full, sid, *_columns(full), [json.dumps(p.usernames) for p in full]
            )
            ids = [peer.id for peer in full]
            await conn.execute(sql.delete_usernames_of, sid, ids)
            owners, flat = _flat((peer.id, peer.usernames or ()) for peer in full)
            if flat:
                await conn.execute(sql.insert_usernames, sid, owners, flat)

    # -- reads ---------------------------------------------------------------------------------

    async def _read_session(self) -> SessionData | None:
        pool, sid = self._bound()
        row = await pool.run("fetchrow", self._sql.read_session, sid)
        return None if row is None else _session(row)

    async def _find_peer(self, peer_id: int, usernames: bool) -> Peer | None:
        pool, sid = self._bound()
        row = await pool.run("fetchrow", self._sql.find_peer, sid, peer_id)
        return None if row is None else _peer(row)

    async def _find_by_username(self, username: str, usernames: bool) -> Peer | None:
        pool, sid = self._bound()
        row = await pool.run("fetchrow", self._sql.find_by_username, sid, username)
        return None if row is None else _peer(row)

    async def _username_holders(self, username: str) -> set[int] | None:
        pool, sid = self._bound()
        return {row[0] for row in await pool.run("fetch", self._sql.holders, sid, username)}

    async def _find_by_phone(self, phone: str, usernames: bool) -> Peer | None:
        pool, sid = self._bound()
        row = await pool.run("fetchrow", self._sql.find_by_phone, sid, phone)
        return None if row is None else _peer(row)

    async def _find_peers(self, peer_ids: Sequence[int]) -> list[Peer]:
        pool, sid = self._bound()
        return [_peer(row) for row in await pool.run("fetch", self._sql.find_peers, sid, peer_ids)]

    async def _read_peers(self, after: int | None, limit: int) -> list[Peer]:
        pool, sid = self._bound()
        if after is None:
            rows = await pool.run("fetch", self._sql.first_peers, sid, limit)
        else:
            rows = await pool.run("fetch", self._sql.read_peers, sid, after, limit)
        return [_peer(row) for row in rows]

    async def _recent_peers(self, limit: int) -> list[int]:
        pool, sid = self._bound()
        return [row[0] for row in await pool.run("fetch", self._sql.recent, sid, limit)]

    async def _count_peers(self) -> dict[str, int]:
        pool, sid = self._bound()
        return {row[0]: row[1] for row in await pool.run("fetch", self._sql.count, sid)}

    async def _read_states(self, ids: Sequence[int] | None) -> list[UpdateState]:
        pool, sid = self._bound()
        if ids is None:
            rows = await pool.run("fetch", self._sql.all_states, sid)
        else:
            rows = await pool.run("fetch", self._sql.some_states, sid, list(ids))
        return [UpdateState(*row) for row in rows]


class _Statements:
    """The SQL of one schema, built once: the quoted schema is the only name in it."""

    def __init__(self, s: str) -> None:
        self.s = s
        self.open_session = (
            f"WITH new AS (INSERT INTO {s}.sessions (name) VALUES ($1) "
            f"ON CONFLICT (name) DO NOTHING RETURNING sid, {_SESSION}) "
            f"SELECT * FROM new UNION ALL "
            f"SELECT sid, {_SESSION} FROM {s}.sessions WHERE name = $1 LIMIT 1"
        )
        self.read_session_by_name = f"SELECT sid, {_SESSION} FROM {s}.sessions WHERE name = $1"
        self.read_session = f"SELECT sid, {_SESSION} FROM {s}.sessions WHERE sid = $1"
        self.delete_session = f"DELETE FROM {s}.sessions WHERE name = $1 RETURNING sid"
        self.delete_rows = [
            f"DELETE FROM {s}.{table} WHERE sid = $1"
            for table in ("peers", "usernames", "update_states")
        ]
        self.delete_peers = f"DELETE FROM {s}.peers WHERE sid = $1 AND id = ANY($2::bigint[])"
        self.delete_usernames_of = (
            f"DELETE FROM {s}.usernames WHERE sid = $1 AND peer_id = ANY($2::bigint[])"
        )
        columns = "id, access_hash, type, phone_number, last_update_on"
        values = "unnest($2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::bigint[])"
        self.upsert_kept = (
            f"INSERT INTO {s}.peers (sid, {columns}) SELECT $1, * FROM {values} "
            f"ON CONFLICT (sid, id) DO UPDATE SET access_hash = EXCLUDED.access_hash, "
            f"type = EXCLUDED.type, phone_number = EXCLUDED.phone_number, "
            f"last_update_on = EXCLUDED.last_update_on"
        )
        self.upsert_full = (
            f"INSERT INTO {s}.peers (sid, {columns}, usernames) "
            f"SELECT $1, v.id, v.h, v.t, v.p, v.l, "
            f"ARRAY(SELECT json_array_elements_text(v.n::json)) "
            f"FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::bigint[], "
            f"$7::text[]) AS v(id, h, t, p, l, n) "
            f"ON CONFLICT (sid, id) DO UPDATE SET access_hash = EXCLUDED.access_hash, "
            f"type = EXCLUDED.type, phone_number = EXCLUDED.phone_number, "
            f"last_update_on = EXCLUDED.last_update_on, usernames = EXCLUDED.usernames"
        )
        self.set_usernames = (
            f"UPDATE {s}.peers AS p "
            f"SET usernames = ARRAY(SELECT json_array_elements_text(v.n::json)) "
            f"FROM unnest($2::bigint[], $3::text[]) AS v(id, n) "
            f"WHERE p.sid = $1 AND p.id = v.id RETURNING p.id"
        )
        self.insert_usernames = (
            f"INSERT INTO {s}.usernames (sid, peer_id, username) "
            f"SELECT $1, * FROM unnest($2::bigint[], $3::text[]) ON CONFLICT DO NOTHING"
        )
        state_values = (
            "unnest($2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[])"
        )
        self.put_states = (
            f"INSERT INTO {s}.update_states (sid, id, pts, qts, date, seq) "
            f"SELECT $1, * FROM {state_values} ON CONFLICT (sid, id) DO UPDATE SET "
            f"pts = EXCLUDED.pts, qts = EXCLUDED.qts, date = EXCLUDED.date, seq = EXCLUDED.seq"
        )
        self.merge_states = (
            f"INSERT INTO {s}.update_states AS u (sid, id, pts, qts, date, seq) "
            f"SELECT $1, * FROM {state_values} ON CONFLICT (sid, id) DO UPDATE SET "
            f"pts = COALESCE(EXCLUDED.pts, u.pts), qts = COALESCE(EXCLUDED.qts, u.qts), "
            f"date = COALESCE(EXCLUDED.date, u.date), seq = COALESCE(EXCLUDED.seq, u.seq)"
        )
        self.delete_states = (
            f"DELETE FROM {s}.update_states WHERE sid = $1 AND id = ANY($2::bigint[])"
        )
        self.find_peer = f"SELECT {_PEER} FROM {s}.peers WHERE sid = $1 AND id = $2"
        self.find_peers = f"SELECT {_PEER} FROM {s}.peers WHERE sid = $1 AND id = ANY($2::bigint[])"
        self.find_by_username = (
            f"SELECT p.id, p.access_hash, p.type, p.usernames, p.phone_number, "
            f"p.last_update_on FROM {s}.usernames AS u JOIN {s}.peers AS p "
            f"ON p.sid = u.sid AND p.id = u.peer_id WHERE u.sid = $1 AND u.username = $2 "
            f"ORDER BY p.last_update_on DESC, p.id DESC LIMIT 1"
        )
        self.holders = f"SELECT peer_id FROM {s}.usernames WHERE sid = $1 AND username = $2"
        self.find_by_phone = (
            f"SELECT {_PEER} FROM {s}.peers WHERE sid = $1 AND phone_number = $2 "
            f"ORDER BY last_update_on DESC, id DESC LIMIT 1"
        )
        self.first_peers = f"SELECT {_PEER} FROM {s}.peers WHERE sid = $1 ORDER BY id LIMIT $2"
        self.read_peers = (
            f"SELECT {_PEER} FROM {s}.peers WHERE sid = $1 AND id > $2 ORDER BY id LIMIT $3"
        )
        self.recent = (
            f"SELECT id FROM {s}.peers WHERE sid = $1 ORDER BY last_update_on DESC LIMIT $2"
        )
        self.count = f"SELECT type, count(*) FROM {s}.peers WHERE sid = $1 GROUP BY type"
        self.all_states = f"SELECT id, pts, qts, date, seq FROM {s}.update_states WHERE sid = $1"
        self.some_states = (
            f"SELECT id, pts, qts, date, seq FROM {s}.update_states "
            f"WHERE sid = $1 AND id = ANY($2::bigint[])"
        )
        self._updates: dict[tuple[str, ...], str] = {}

    def update_session(self, fields: Sequence[str]) -> str:
        """``UPDATE sessions SET ...`` of these fields (names of :data:`SESSION_FIELDS`)."""
        key = tuple(fields)
        statement = self._updates.get(key)
        if statement is None:
            if not set(key) <= set(SESSION_FIELDS):  # pragma: no cover - the base checks
                raise InvalidValueError(f"not session fields: {key}")
            assignments = ", ".join(f"{name} = ${n}" for n, name in enumerate(key, start=2))
            statement = f"UPDATE {self.s}.sessions SET {assignments} WHERE sid = $1"
            self._updates[key] = statement
        return statement


def _check_name(name: str) -> None:
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidValueError(
            f"a PostgreSQL session name has at most {MAX_NAME_LENGTH} characters, not {len(name)}"
        )
    if "\0" in name:
        raise InvalidValueError("a PostgreSQL session name cannot hold NUL (\\0)")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidValueError("a session name must be valid Unicode text") from None


def _columns(peers: list[PeerRow]) -> tuple[list[Any], ...]:
    return (
        [p.id for p in peers],
        [p.access_hash for p in peers],
        [p.type.value for p in peers],
        [p.phone_number for p in peers],
        [p.last_update_on for p in peers],
    )


def _flat(pairs: Any) -> tuple[list[int], list[str]]:
    owners: list[int] = []
    names: list[str] = []
    for peer_id, held in pairs:
        for name in held:
            owners.append(peer_id)
            names.append(name)
    return owners, names


def _peer(row: Any) -> Peer:
    kind = row[2]
    return Peer(row[0], row[1], PeerType.of(kind), tuple(row[3]), row[4], row[5])


def _session(row: Any) -> SessionData:
    return SessionData(**{name: row[name] for name in SESSION_FIELDS})
