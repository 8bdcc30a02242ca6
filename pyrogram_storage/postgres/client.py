"""PostgreSQL driver plumbing: asyncpg, loaded lazily, and the pools built from URLs.

Shared by the session storage (:class:`~pyrogram_storage.postgres.PostgresStorage`),
the read-only source of ``pyrogram-asyncpg-storage`` sessions and the bot-state
:class:`~pyrogram_storage.kv.PostgresKV`. Nothing here imports asyncpg until asked.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from ..drivers import load_driver
from ..errors import BackendError, InvalidTypeError, InvalidValueError

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_POOL_OPTIONS",
    "SCHEMES",
    "PoolRecipe",
    "Runner",
    "check_pool",
    "driver_errors",
    "import_asyncpg",
    "quote_ident",
    "split_location",
    "usable",
]

SCHEMES = ("postgresql", "postgres")
"""URL schemes of a PostgreSQL server (asyncpg's, libpq's)."""

DEFAULT_CONNECT_TIMEOUT = 5.0
"""Seconds a pool built from a URL waits for a connection before the call fails."""

DEFAULT_POOL_OPTIONS: Mapping[str, Any] = {
    "min_size": 1,
    "max_size": 4,
    "command_timeout": 30.0,
}
"""Options of a pool built from a URL, unless given (``pool_options=``): one connection
opened at once, at most four, and no statement waiting on a silent server for more
than 30 seconds. Such a pool also skips asyncpg's reset query when a connection goes
back to it (see ``keep_session``)."""


async def keep_session(connection: Any) -> None:
    """A pool's ``reset``: nothing to send (asyncpg's default costs a round trip per use).

    asyncpg rolls back an open transaction and drops the callbacks itself before calling
    it. What the default reset query would undo, this library never leaves behind: no
    ``SET`` outside a transaction, advisory locks only for a transaction, and the
    listening connection unlistens each channel before it goes back.
    """


_OURS = ("schema", "statement_cache_size", "connect_timeout", "sole_writer")
"""Query parameters of a location that are this library's, not the server's."""


def import_asyncpg() -> ModuleType:
    """Import asyncpg, or raise :class:`MissingDriverError` naming the ``postgres`` extra."""
    return load_driver("asyncpg", "asyncpg>=0.29", "postgres", needs="create_pool")


def driver_errors() -> tuple[type[BaseException], ...]:
    """What asyncpg raises for a server error, a broken connection or a timeout."""
    asyncpg = import_asyncpg()
    return (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, asyncio.TimeoutError)


def check_pool(pool: object) -> None:
    """Refuse anything but an :class:`asyncpg.Pool`."""
    for cls in type(pool).__mro__:
        if cls.__name__ == "Pool" and cls.__module__.split(".")[0] == "asyncpg":
            return
    raise InvalidTypeError(
        f"pool must be an asyncpg.Pool (asyncpg.create_pool(...)), not "
        f"{type(pool).__module__}.{type(pool).__qualname__}; or build the storage with "
        "from_url(url, name=...)"
    )


def quote_ident(name: str) -> str:
    """Quote an identifier for SQL text (``"`` doubled): the only way one gets there."""
    return '"' + name.replace('"', '""') + '"'


def check_identifier(name: object, what: str) -> str:
    """A schema or table name PostgreSQL keeps whole: 1 to 63 bytes, no NUL."""
    if not isinstance(name, str) or not name:
        raise InvalidValueError(f"{what} must be a non-empty string")
    if "\0" in name or len(name.encode("utf-8", "surrogatepass")) > 63:
        raise InvalidValueError(f"{what} must be at most 63 bytes of UTF-8 without NUL")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidValueError(f"{what} must be valid Unicode text") from None
    return name


def split_location(location: str, kind: str) -> tuple[str, dict[str, str], str]:
    """Split ``postgresql://...?OURS&SERVER#NAME`` into the driver's URL, our options and NAME.

    :raises InvalidValueError: no ``#NAME``, or not a ``postgresql://`` URL.
    """
    base, _, fragment = location.partition("#")
    name = unquote(fragment)
    if not name:
        raise InvalidValueError(
            f"a PostgreSQL location names its {kind} after '#': "
            f"postgresql://USER:PASSWORD@HOST:PORT/DATABASE#NAME"
        )
    head, _, text = base.partition("?")
    query = parse_qsl(text, keep_blank_values=True)
    ours = {key: value for key, value in query if key in _OURS}
    rest = [(key, value) for key, value in query if key not in _OURS]
    url = f"{head}?{urlencode(rest)}" if rest else head
    return url, ours, name


URL_OPTIONS = frozenset(
    {
        # what asyncpg reads from a URL's query itself
        "host", "port", "dbname", "database", "user", "password", "passfile", "service",
        "sslmode", "sslcert", "sslkey", "sslrootcert", "sslnegotiation", "sslcrl",
        "sslpassword", "ssl_min_protocol_version", "ssl_max_protocol_version",
        "target_session_attrs", "krbsrvname", "gsslib",
        # server settings a URL commonly carries (asyncpg sends the rest of the query as
        # settings; any other goes in pool_options={"server_settings": {...}})
        "application_name", "search_path", "timezone", "statement_timeout",
        "lock_timeout", "idle_in_transaction_session_timeout",
    }
)  # fmt: skip
"""Query parameters a PostgreSQL URL may carry besides this library's own (a misspelt
one would otherwise reach the server as a setting and fail every connection)."""


def _check_url(url: object) -> str:
    if not isinstance(url, str):
        raise InvalidTypeError(f"a PostgreSQL URL is a str, not {type(url).__name__}")
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise InvalidValueError(
            "a PostgreSQL URL starts with postgresql:// or postgres://, e.g. "
            "postgresql://user:password@127.0.0.1:5432/mydb"
        )
    for name, _ in parse_qsl(parts.query, keep_blank_values=True):
        if name not in URL_OPTIONS:
            raise InvalidValueError(
                f"unknown option {name!r} in the PostgreSQL URL; known options, besides "
                f"the storage's own: {', '.join(sorted(URL_OPTIONS))} (other server "
                f"settings: pool_options={{'server_settings': {{...}}}})"
            )
    return url


def endpoint(url: str) -> str:
    """``host:port`` of a URL, for errors: never the user or the password."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    host = parts.hostname or query.get("host") or "localhost"
    try:
        port = parts.port or query.get("port") or 5432
    except ValueError:
        port = "?"
    return f"{host}:{port}"


@dataclass
class PoolRecipe:
    """How to build a pool on :meth:`open`: a URL and asyncpg's pool options.

    The storage that holds a recipe owns the pool it builds (and closes it on close).
    ``repr()`` never shows the URL: it may hold a password.

    :param url: ``postgresql://[USER[:PASSWORD]@]HOST[:PORT]/DATABASE[?SERVER OPTIONS]``.
    :param options: keyword arguments of :func:`asyncpg.create_pool`
        (:data:`DEFAULT_POOL_OPTIONS` otherwise); ``statement_cache_size=0`` for
        PgBouncer in transaction mode.
    :param connect_timeout: seconds to wait for a connection.
    """

    url: str = field(repr=False)
    options: dict[str, Any] = field(default_factory=dict, repr=False)
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT

    def __post_init__(self) -> None:
        _check_url(self.url)
        self.options = {**DEFAULT_POOL_OPTIONS, **dict(self.options)}
        timeout = self.connect_timeout
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise InvalidValueError("connect_timeout must be a positive number of seconds")

    @property
    def endpoint(self) -> str:
        """``host:port`` of the server, for messages (never the password)."""
        return endpoint(self.url)

    async def build(self) -> Any:
        """Build the pool (its first connection is made now).

        :raises BackendError: the server cannot be reached within ``connect_timeout``
            (one line naming host and port, never the password).
        """
        asyncpg = import_asyncpg()
        try:
            options = {"reset": keep_session, **self.options}
            return await asyncio.wait_for(
                asyncpg.create_pool(self.url, timeout=self.connect_timeout, **options),
                self.connect_timeout * 2,
            )
        except (OSError, asyncio.TimeoutError, asyncpg.InterfaceError) as exc:
            raise BackendError(
                f"cannot reach PostgreSQL at {self.endpoint}: {describe(exc)}"
            ) from None
        except asyncpg.PostgresError as exc:
            raise BackendError(
                f"PostgreSQL at {self.endpoint} refused the connection: {describe(exc)}"
            ) from None


def describe(exc: BaseException) -> str:
    """One line about a driver error, without the URL."""
    if isinstance(exc, asyncio.TimeoutError):
        return "no answer (timed out)"
    if isinstance(exc, ConnectionRefusedError) or "Connect call failed" in str(exc):
        return "connection refused"
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def parse_options(ours: Mapping[str, str]) -> dict[str, Any]:
    """Turn a location's own query parameters into keyword options."""
    options: dict[str, Any] = {}
    if "schema" in ours:
        options["schema"] = ours["schema"]
    if "sole_writer" in ours:
        value = ours["sole_writer"].lower()
        if value not in ("1", "0", "true", "false", "yes", "no"):
            raise InvalidValueError("sole_writer in a location is true or false")
        options["sole_writer"] = value in ("1", "true", "yes")
    pool: dict[str, Any] = {}
    if "statement_cache_size" in ours:
        try:
            pool["statement_cache_size"] = int(ours["statement_cache_size"])
        except ValueError:
            raise InvalidValueError("statement_cache_size is a number") from None
    if pool:
        options["pool_options"] = pool
    if "connect_timeout" in ours:
        try:
            options["connect_timeout"] = float(ours["connect_timeout"])
        except ValueError:
            raise InvalidValueError("connect_timeout is a number of seconds") from None
    return options


def location_query(url: str, extra: list[tuple[str, str]]) -> str:
    if not extra:
        return url
    return url + ("&" if "?" in url else "?") + urlencode(extra)


class Runner:
    """Runs statements on a pool, on one held connection while it is free.

    Taking a connection from an asyncpg pool and giving it back costs more than a
    short statement on this machine; a store whose pool is its own (built from a URL)
    keeps one connection and runs each statement on it, and only a statement that
    comes while that one is busy (concurrent calls) takes another from the pool. On a
    pool of the caller's (shared by many storages) every statement takes one.
    """

    __slots__ = ("_busy", "_held", "hold", "pool")

    def __init__(self, pool: Any, hold: bool) -> None:
        self.pool = pool
        self.hold = hold
        self._held: Any = None
        self._busy = False

    async def _take(self) -> Any:
        held = self._held
        if held is not None and not usable(held):
            self._held = None
            with contextlib.suppress(Exception):
                await self.pool.release(held)
            held = None
        if held is None:
            held = self._held = await self.pool.acquire()
        return held

    async def _drop(self) -> None:
        """Give the held connection back to the pool, which resets it (rolls back what
        a cancelled or failed call left open) or closes it; the next call takes another.

        asyncpg can leave a connection whose transaction was cancelled half-way in a
        state its next transaction refuses (the server in a transaction asyncpg does not
        know of, or the reverse): a pooled connection is reset on release, a held one
        would carry it to every later call.
        """
        held, self._held = self._held, None
        if held is not None:
            with contextlib.suppress(Exception):
                await self.pool.release(held)

    async def run(self, method: str, *args: Any) -> Any:
        """``connection.<method>(*args)`` on the held connection or a pooled one."""
        if self.hold and not self._busy:
            self._busy = True
            try:
                connection = await self._take()
                return await getattr(connection, method)(*args)
            except BaseException:
                await self._drop()
                raise
            finally:
                self._busy = False
        async with self.pool.acquire() as connection:
            return await getattr(connection, method)(*args)

    def connection(self) -> _Using:
        """``async with runner.connection() as conn``: a connection for several statements."""
        return _Using(self)

    async def close(self) -> None:
        """Release the connection this runner holds, if any."""
        await self._drop()


def usable(connection: Any) -> bool:
    """Whether a held connection still works (a lost one the pool may have taken back)
    and is outside any transaction, as a free one always should be."""
    try:
        return not connection.is_closed() and not connection.is_in_transaction()
    except Exception:  # asyncpg: "connection has been released back to the pool"
        return False


class _Using:
    __slots__ = ("_pooled", "_runner")

    def __init__(self, runner: Runner) -> None:
        self._runner = runner
        self._pooled: Any = None

    async def __aenter__(self) -> Any:
        runner = self._runner
        if runner.hold and not runner._busy:
            runner._busy = True
            try:
                return await runner._take()
            except BaseException:
                runner._busy = False
                raise
        self._pooled = await runner.pool.acquire()
        return self._pooled

    async def __aexit__(self, *exc: object) -> None:
        if self._pooled is None:
            try:
                if exc[0] is not None:
                    await self._runner._drop()
            finally:
                self._runner._busy = False
            return
        pooled, self._pooled = self._pooled, None
        await self._runner.pool.release(pooled)
