"""Sessions kept by ``pyrogram-asyncpg-storage``, read in place so they can be copied.

That library keeps each session in tables of its own, ``"SCHEMA"."NAME:sessions"``
(one row: dc_id, api_id, test_mode as 0/1, auth_key, date, user_id, is_bot),
``"SCHEMA"."NAME:peers"`` (id, access_hash, type, one username, phone_number,
last_update_on) and ``"SCHEMA"."NAME:version"``, in the schema ``pyrogram`` unless
told otherwise; it keeps no update state. :class:`AsyncpgStorageSource` reads them,
and only reads: ``pyrogram-storage copy
asyncpg-storage+postgresql://USER:PASSWORD@HOST/DB#NAME postgresql://USER:PASSWORD@HOST/DB#NAME``
moves a session over in one command, its tables left as they were.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._pending import Changes
from ..base import Storage
from ..errors import InvalidValueError, ReadOnlyError, SessionNotFoundError, StorageClosedError
from ..types import DEFAULT_DC_ID, Peer, PeerType, SessionData, UpdateState
from ..validation import clean_usernames, normalize_phone
from . import client as pg

__all__ = ["DEFAULT_FOREIGN_SCHEMA", "SCHEMES", "AsyncpgStorageSource"]

DEFAULT_FOREIGN_SCHEMA = "pyrogram"
"""pyrogram-asyncpg-storage's default schema."""

SCHEMES = ("asyncpg-storage+postgresql", "asyncpg-storage+postgres")
"""Location schemes of this source: the library's name, then the server's URL scheme."""

_PEER = "id, access_hash, type, username, phone_number, last_update_on"


class AsyncpgStorageSource(Storage):
    """A session of ``pyrogram-asyncpg-storage``, opened read-only (a copy's source).

    :param name: the session name (the prefix of its tables' names).
    :param pool: an :class:`asyncpg.Pool` (the caller's), or a
        :class:`~.client.PoolRecipe` (see :meth:`from_location`).
    :param schema: the schema holding its tables (``pyrogram`` by default).
    :raises InvalidValueError: ``read_only=False``: these tables are never written.
    """

    requires = "postgresql"

    def __init__(
        self, name: str, pool: Any, *, schema: str = DEFAULT_FOREIGN_SCHEMA, **options: Any
    ) -> None:
        if options.get("read_only", True) is not True:
            raise InvalidValueError(
                "a pyrogram-asyncpg-storage session is read here, never written: copy it "
                "(pyrogram-storage copy asyncpg-storage+postgresql://...#NAME TARGET)"
            )
        options["read_only"] = True
        super().__init__(name, **options)
        self.schema = pg.check_identifier(schema, "schema")
        pg.check_identifier(name + ":sessions", "the session's table name")
        if isinstance(pool, pg.PoolRecipe):
            self._recipe: pg.PoolRecipe | None = pool
            self._pool: Any = None
        else:
            pg.check_pool(pool)
            self._recipe, self._pool = None, pool
        self._open_pool: Any = None
        self._url: str | None = None
        prefix = pg.quote_ident(self.schema) + "."
        self._sessions = prefix + pg.quote_ident(name + ":sessions")
        self._peers = prefix + pg.quote_ident(name + ":peers")

    @classmethod
    def from_location(cls, location: str, **options: Any) -> AsyncpgStorageSource:
        """Build the source of ``asyncpg-storage+postgresql://USER:PASSWORD@HOST/DB?schema=S#NAME``.

        :raises InvalidValueError: no ``#NAME``, or a bad URL.
        """
        scheme, sep, rest = location.partition("+")
        if not sep or scheme.lower() != "asyncpg-storage":
            raise InvalidValueError("expected asyncpg-storage+postgresql://...#NAME")
        url, ours, name = pg.split_location(rest, "session")
        parsed = pg.parse_options(ours)
        recipe = pg.PoolRecipe(
            url,
            parsed.pop("pool_options", {}),
            parsed.pop("connect_timeout", pg.DEFAULT_CONNECT_TIMEOUT),
        )
        parsed.pop("sole_writer", None)
        pg.import_asyncpg()
        source = cls(name, recipe, **{**parsed, **options})
        source._url = location
        return source

    @property
    def location(self) -> str | None:
        return self._url

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, schema={self.schema!r})"

    def _bound(self) -> Any:
        if self._open_pool is None:
            raise StorageClosedError(f"{self!r} is closed")
        return self._open_pool

    async def _open(self) -> SessionData:
        owned = self._pool is None
        if owned:
            assert self._recipe is not None
            pool = await self._recipe.build()
        else:
            pool = self._pool
        try:
            found = await pool.fetchval("SELECT to_regclass($1) IS NOT NULL", self._sessions)
            if not found:
                raise SessionNotFoundError(
                    f"no pyrogram-asyncpg-storage session {self.name!r} in schema "
                    f"{self.schema!r} (no table {self.name + ':sessions'!r})"
                )
            row = await pool.fetchrow(
                f"SELECT dc_id, api_id, test_mode, auth_key, date, user_id, is_bot "
                f"FROM {self._sessions} LIMIT 1"
            )
        except BaseException:
            if owned:
                await pool.close()
            raise
        self._open_pool = pool
        if row is None:
            return SessionData()
        test_mode = row["test_mode"]
        return SessionData(
            dc_id=row["dc_id"] if row["dc_id"] is not None else DEFAULT_DC_ID,
            api_id=row["api_id"],
            test_mode=None if test_mode is None else bool(test_mode),
            auth_key=row["auth_key"],
            date=row["date"] or 0,
            user_id=row["user_id"],
            is_bot=row["is_bot"],
        )

    async def _close(self) -> None:
        pool, self._open_pool = self._open_pool, None
        if pool is not None and self._pool is None:
            await pool.close()

    async def _delete(self) -> None:  # pragma: no cover - the base refuses first
        raise ReadOnlyError(f"{self!r} is read-only")

    async def _apply(self, changes: Changes) -> None:  # pragma: no cover - read-only
        raise ReadOnlyError(f"{self!r} is read-only")

    async def _find_peer(self, peer_id: int, usernames: bool) -> Peer | None:
        row = await self._bound().fetchrow(
            f"SELECT {_PEER} FROM {self._peers} WHERE id = $1", peer_id
        )
        return None if row is None else _peer(row)

    async def _find_by_username(self, username: str, usernames: bool) -> Peer | None:
        row = await self._bound().fetchrow(
            f"SELECT {_PEER} FROM {self._peers} WHERE lower(username) = $1 "
            f"ORDER BY last_update_on DESC, id DESC LIMIT 1",
            username,
        )
        return None if row is None else _peer(row)

    async def _find_by_phone(self, phone: str, usernames: bool) -> Peer | None:
        rows = await self._bound().fetch(
            f"SELECT {_PEER} FROM {self._peers} WHERE phone_number IS NOT NULL "
            f"ORDER BY last_update_on DESC, id DESC"
        )
        return next((_peer(row) for row in rows if normalize_phone(row[4]) == phone), None)

    async def _read_peers(self, after: int | None, limit: int) -> list[Peer]:
        pool = self._bound()
        if after is None:
            rows = await pool.fetch(
                f"SELECT {_PEER} FROM {self._peers} ORDER BY id LIMIT $1", limit
            )
        else:
            rows = await pool.fetch(
                f"SELECT {_PEER} FROM {self._peers} WHERE id > $1 ORDER BY id LIMIT $2",
                after,
                limit,
            )
        return [_peer(row) for row in rows]

    async def _read_states(self, ids: Sequence[int] | None) -> list[UpdateState]:
        return []  # pyrogram-asyncpg-storage keeps none

    async def _ping(self) -> None:
        await self._bound().fetchval("SELECT 1")


def _peer(row: Any) -> Peer:
    kind = row[2]
    phone = row[4]
    return Peer(
        row[0],
        row[1] or 0,
        PeerType.of(kind),
        clean_usernames([row[3]]),
        (normalize_phone(phone) or None) if phone else None,
        row[5],
    )
