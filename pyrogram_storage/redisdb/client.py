"""Redis driver plumbing: redis-py's and valkey's asyncio clients, loaded lazily.

Shared by every Redis-backed store: the session storage
(:class:`~pyrogram_storage.RedisStorage`) and the bot-state
:class:`~pyrogram_storage.kv.RedisKV`. Nothing here imports a driver until asked, and
nothing here knows what is stored.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from ..drivers import load_driver
from ..errors import InvalidTypeError, InvalidValueError

__all__ = [
    "DEFAULT_CLIENT_OPTIONS",
    "DRIVERS",
    "SCHEMES",
    "ClientRecipe",
    "Driver",
    "Script",
    "build_client",
    "check_async_client",
    "check_url",
    "check_url_options",
    "client_options",
    "decodes_responses",
    "default_driver",
    "detect_cluster",
    "driver_errors",
    "driver_of",
    "import_driver",
    "is_cluster",
    "no_script_error",
    "response_error",
    "retry_once",
    "scan_slot",
    "url_options",
]

SCHEMES = ("redis", "rediss", "unix")
"""URL schemes :func:`build_client` accepts."""

DEFAULT_CLIENT_OPTIONS: Mapping[str, Any] = {"socket_timeout": 5.0, "socket_connect_timeout": 5.0}
"""Options of a client built from a URL (``from_url`` of the session storage and of the
bot-state store), unless given: no call waits on a silent server for more than two
``socket_timeout`` periods (one retry), and a server that cannot be reached is reported
at once (refused) or after 5 s (no answer)."""


@dataclass(frozen=True)
class Driver:
    """One client library: where its asyncio clients and errors live, which extra installs it."""

    name: str
    module: str
    client_class: str
    cluster_module: str
    cluster_class: str
    exceptions: str
    base_error: str
    cluster_error: str
    package: str
    extra: str


DRIVERS: Mapping[str, Driver] = {
    "redis": Driver(
        "redis",
        "redis.asyncio",
        "Redis",
        "redis.asyncio.cluster",
        "RedisCluster",
        "redis.exceptions",
        "RedisError",
        "RedisClusterException",
        "redis>=5.0.1",
        "redis",
    ),
    "valkey": Driver(
        "valkey",
        "valkey.asyncio",
        "Valkey",
        "valkey.asyncio.cluster",
        "ValkeyCluster",
        "valkey.exceptions",
        "ValkeyError",
        "ValkeyClusterException",
        "valkey>=6",
        "valkey",
    ),
}
"""The client libraries, by name: ``"redis"`` (redis-py) and ``"valkey"``."""


def _spec(driver: str) -> Driver:
    spec = DRIVERS.get(driver)
    if spec is None:
        raise InvalidValueError(
            f"unknown Redis driver {driver!r}; choose from {', '.join(DRIVERS)}"
        )
    return spec


def import_driver(driver: str) -> ModuleType:
    """Import the driver's asyncio module.

    :raises MissingDriverError: it is not installed (the message names the extra).
    :raises ValueError: ``driver`` is not one of :data:`DRIVERS`.
    """
    spec = _spec(driver)
    return load_driver(spec.module, spec.package, spec.extra, needs=spec.client_class)


def _exceptions(driver: str) -> ModuleType:
    spec = _spec(driver)
    return load_driver(spec.exceptions, spec.package, spec.extra)


def driver_errors(driver: str) -> tuple[type[BaseException], ...]:
    """The exceptions the driver raises: its base error and its cluster error."""
    spec = _spec(driver)
    module = _exceptions(driver)
    return (getattr(module, spec.base_error), getattr(module, spec.cluster_error))


def response_error(driver: str) -> type[BaseException]:
    """The driver's error for a command the server refused (``-ERR ...``)."""
    error: type[BaseException] = _exceptions(driver).ResponseError
    return error


def no_script_error(driver: str) -> type[BaseException]:
    """The driver's error for ``EVALSHA`` of a script the server does not have."""
    error: type[BaseException] = _exceptions(driver).NoScriptError
    return error


def driver_of(client: object) -> str:
    """Name the driver a client belongs to (``"redis"`` or ``"valkey"``).

    :raises TypeError: it is not a redis-py or valkey client.
    """
    top = type(client).__module__.split(".")[0]
    if top in DRIVERS:
        return top
    for cls in type(client).__mro__:
        top = cls.__module__.split(".")[0]
        if top in DRIVERS:
            return top
    raise InvalidTypeError(
        "client must be a redis-py or valkey asyncio client (redis.asyncio.Redis, "
        "redis.asyncio.RedisCluster, valkey.asyncio.Valkey or valkey.asyncio.ValkeyCluster), "
        f"not {type(client).__module__}.{type(client).__qualname__}"
    )


def check_async_client(client: object) -> str:
    """Refuse a synchronous client; return the driver's name.

    :raises TypeError: a synchronous (blocking) client, or no Redis client at all.
    """
    driver = driver_of(client)
    execute = getattr(type(client), "execute_command", None)
    if execute is None or not inspect.iscoroutinefunction(execute):
        kind = type(client)
        asyncio_module = _spec(driver).module
        raise InvalidTypeError(
            f"{kind.__module__}.{kind.__qualname__} is synchronous and would block the event "
            f"loop; pass a client from {asyncio_module} (e.g. {asyncio_module}.from_url(url))"
        )
    return driver


def is_cluster(client: object) -> bool:
    """Whether the client is a cluster client (RedisCluster, ValkeyCluster)."""
    names = {"RedisCluster", "ValkeyCluster"}
    return any(cls.__name__ in names for cls in type(client).__mro__)


def default_driver() -> str:
    """The driver to use when none is named: redis-py if installed, else valkey, else redis-py.

    Nothing is imported; a missing driver is reported when it is loaded.
    """
    for name, spec in DRIVERS.items():
        if importlib.util.find_spec(spec.module.split(".")[0]) is not None:
            return name
    return "redis"


def decodes_responses(client: Any) -> bool:
    """Whether the client hands back ``str`` instead of ``bytes`` (``decode_responses=True``)."""
    encoder = client.get_encoder()
    return bool(getattr(encoder, "decode_responses", False))


def check_url(url: object) -> str:
    """Return the scheme of a Redis URL.

    :raises ValueError: not a ``redis://``, ``rediss://`` or ``unix://`` URL.
    """
    return _check_url(url)


def _check_url(url: object) -> str:
    if not isinstance(url, str):
        raise InvalidValueError(f"a Redis URL is a str, not {type(url).__name__}")
    scheme = urlsplit(url).scheme
    if scheme not in SCHEMES:
        raise InvalidValueError(
            "a Redis URL starts with redis://, rediss:// (TLS) or unix://, e.g. "
            "redis://127.0.0.1:6379/0"
        )
    return scheme


def url_options(driver: str) -> frozenset[str]:
    """The options a ``redis://`` URL's query may give the driver's connections."""
    spec = _spec(driver)
    connection = load_driver(f"{spec.name}.asyncio.connection", spec.package, spec.extra)
    names = set(getattr(connection, "URL_QUERY_ARGUMENT_PARSERS", {}))
    # Every kind of connection (TCP, TLS, unix socket) and the pool take URL options.
    for value in vars(connection).values():
        if isinstance(value, type) and value.__name__.endswith(("Connection", "ConnectionPool")):
            names |= set(inspect.signature(value).parameters)
    return frozenset(names - {"self", "kwargs", "args", "host", "port", "path"})


def check_url_options(url: str, driver: str, ours: Sequence[str] = ()) -> None:
    """Refuse an option in the URL's query that neither the driver nor we (``ours``)
    know; the driver would fail on ``open()`` with "unexpected keyword argument".

    :raises ValueError: the message names the unknown option and the known ones.
    """
    known = url_options(driver) | set(ours)
    for name, _ in parse_qsl(urlsplit(url).query, keep_blank_values=True):
        if name not in known:
            raise InvalidValueError(
                f"unknown option {name!r} in the Redis URL; known options: "
                f"{', '.join(sorted(known))}"
            )


def build_client(
    url: str,
    *,
    driver: str = "redis",
    cluster: bool = False,
    options: Mapping[str, Any] | None = None,
) -> Any:
    """Build an asyncio client (or cluster client) from a ``redis://`` URL; no I/O yet.

    :param url: ``redis://[[user]:password@]host[:port][/db]``, ``rediss://`` for TLS,
        or ``unix:///path/to/socket?db=0`` (not for a cluster).
    :param driver: ``"redis"`` (redis-py) or ``"valkey"``.
    :param cluster: build a cluster client (``url`` names any node).
    :param options: keyword arguments for the client's ``from_url``.
    :raises ValueError: a bad URL or driver, or ``unix://`` with ``cluster=True``.
    :raises MissingDriverError: the driver is not installed.
    """
    scheme = _check_url(url)
    spec = _spec(driver)
    module = import_driver(driver)
    if cluster:
        if scheme == "unix":
            raise InvalidValueError("a Redis Cluster is reached over TCP, not a unix:// socket")
        cluster_module = load_driver(spec.cluster_module, spec.package, spec.extra)
        factory = getattr(cluster_module, spec.cluster_class)
    else:
        factory = getattr(module, spec.client_class)
    return factory.from_url(url, **dict(options or {}))


async def detect_cluster(client: Any) -> bool:
    """Ask a single-node client whether its server runs in cluster mode."""
    info = await client.info("cluster")
    return bool(int(info.get("cluster_enabled", 0) or 0))


def retry_once(driver: str) -> dict[str, Any]:
    """Client options that retry a command once, at once, after a lost connection or a timeout.

    A server restart leaves every pooled connection dead: one retry on a new connection
    makes the first command after it succeed, and bounds a call that gets no answer
    to two ``socket_timeout`` periods.
    """
    spec = _spec(driver)
    retry_module = load_driver(f"{spec.name}.asyncio.retry", spec.package, spec.extra)
    backoff_module = load_driver(f"{spec.name}.backoff", spec.package, spec.extra)
    errors = _exceptions(driver)
    return {
        "retry": retry_module.Retry(backoff_module.NoBackoff(), 1),
        "retry_on_error": [errors.ConnectionError, errors.TimeoutError],
    }


def client_options(
    driver: str, given: Mapping[str, Any] | None, cluster: bool | None
) -> dict[str, Any]:
    """The options of a client we build: :data:`DEFAULT_CLIENT_OPTIONS`, one retry after
    a lost connection (not on a cluster, whose client redirects itself), then ``given``."""
    options = {**DEFAULT_CLIENT_OPTIONS, **dict(given or {})}
    if not cluster and "retry" not in options:
        options.update(retry_once(driver))
    return options


@dataclass
class ClientRecipe:
    """How to build a client on first use: a URL, a driver, cluster or not, options.

    :param cluster: None asks the server (``INFO cluster``) the first time a client
        is built, and remembers the answer.
    """

    url: str
    driver: str = "redis"
    cluster: bool | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_url(self.url)
        _spec(self.driver)

    def __repr__(self) -> str:
        # Never the URL: it may carry a password.
        return f"ClientRecipe(driver={self.driver!r}, cluster={self.cluster!r})"

    async def build(self) -> Any:
        """Build the client (no command sent, unless the cluster mode must be asked)."""
        if self.cluster is None:
            probe = build_client(self.url, driver=self.driver, options=self.options)
            try:
                self.cluster = await detect_cluster(probe)
            finally:
                await probe.aclose()
        return build_client(
            self.url, driver=self.driver, cluster=self.cluster, options=self.options
        )


class Script:
    """A Lua script run by its SHA1 (``EVALSHA``), sent whole only when the server lacks it."""

    __slots__ = ("sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    async def run(
        self,
        client: Any,
        keys: Sequence[str],
        args: Sequence[Any],
        no_script: type[BaseException],
    ) -> Any:
        """Run the script; ``no_script`` is the driver's ``NoScriptError``.

        A restarted server, or another node of a cluster, has not seen the script yet:
        ``EVAL`` then sends it (and the server keeps it for the next ``EVALSHA``).
        """
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except no_script:
            return await client.eval(self.source, len(keys), *keys, *args)


async def scan_slot(client: Any, match: str, key: str, count: int = 1000) -> AsyncIterator[bytes]:
    """Yield the keys matching ``match`` on the server holding ``key`` (SCAN, never KEYS).

    On a cluster only the node serving ``key``'s slot is scanned: keys sharing a hash
    tag all live there.
    """
    options: dict[str, Any] = {}
    if is_cluster(client):
        await client.initialize()  # learns the slots (does nothing the second time)
        options["target_nodes"] = client.get_node_from_key(key)
    cursor: Any = 0
    while True:
        cursor, found = await client.scan(cursor, match=match, count=count, **options)
        if isinstance(cursor, dict):  # a cluster client answers {node name: cursor}
            cursor = next(iter(cursor.values()), 0)
        for name in found:
            yield name
        if not int(cursor):
            return
