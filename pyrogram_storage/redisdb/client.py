"""Redis driver plumbing: redis-py's and valkey's asyncio clients, loaded lazily.

Shared by every Redis-backed store (the bot-state :class:`~pyrogram_storage.kv.RedisKV`
today). Nothing here imports a driver until asked, and nothing here knows what is stored.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

from ..drivers import load_driver

__all__ = [
    "DRIVERS",
    "SCHEMES",
    "Driver",
    "build_client",
    "check_async_client",
    "detect_cluster",
    "driver_errors",
    "driver_of",
    "import_driver",
    "is_cluster",
    "no_script_error",
    "response_error",
]

SCHEMES = ("redis", "rediss", "unix")
"""URL schemes :func:`build_client` accepts."""


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
        raise ValueError(f"unknown Redis driver {driver!r}; choose from {', '.join(DRIVERS)}")
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
    raise TypeError(
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
        raise TypeError(
            f"{kind.__module__}.{kind.__qualname__} is synchronous and would block the event "
            f"loop; pass a client from {asyncio_module} (e.g. {asyncio_module}.from_url(url))"
        )
    return driver


def is_cluster(client: object) -> bool:
    """Whether the client is a cluster client (RedisCluster, ValkeyCluster)."""
    names = {"RedisCluster", "ValkeyCluster"}
    return any(cls.__name__ in names for cls in type(client).__mro__)


def _check_url(url: object) -> str:
    if not isinstance(url, str):
        raise ValueError(f"a Redis URL is a str, not {type(url).__name__}")
    scheme = urlsplit(url).scheme
    if scheme not in SCHEMES:
        raise ValueError(
            "a Redis URL starts with redis://, rediss:// (TLS) or unix://, e.g. "
            "redis://127.0.0.1:6379/0"
        )
    return scheme


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
            raise ValueError("a Redis Cluster is reached over TCP, not a unix:// socket")
        cluster_module = load_driver(spec.cluster_module, spec.package, spec.extra)
        factory = getattr(cluster_module, spec.cluster_class)
    else:
        factory = getattr(module, spec.client_class)
    return factory.from_url(url, **dict(options or {}))


async def detect_cluster(client: Any) -> bool:
    """Ask a single-node client whether its server runs in cluster mode."""
    info = await client.info("cluster")
    return bool(int(info.get("cluster_enabled", 0) or 0))
