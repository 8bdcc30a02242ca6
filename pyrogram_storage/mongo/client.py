"""MongoDB driver plumbing: the three asynchronous drivers, loaded lazily, and their errors.

Shared by :class:`~pyrogram_storage.MongoStorage` and the bot-state store
:class:`~pyrogram_storage.kv.MongoKV`. Nothing here imports a driver until asked.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Protocol, TypeVar
from urllib.parse import parse_qsl, urlsplit

from ..drivers import load_driver
from ..errors import InvalidTypeError, InvalidValueError, MissingDriverError

__all__ = [
    "DEFAULT_CLIENT_OPTIONS",
    "DRIVERS",
    "SYSTEM_DATABASES",
    "AsyncMongoClientLike",
    "ClientRecipe",
    "Driver",
    "awaited",
    "check_async_client",
    "check_database_name",
    "check_options",
    "documents",
    "driver_errors",
    "import_driver",
    "load_pymongo",
    "maybe_await",
    "unreachable",
]

T = TypeVar("T")


@dataclass(frozen=True)
class Driver:
    module: str
    client_class: str
    package: str
    extra: str


DRIVERS: Mapping[str, Driver] = {
    "pymongo": Driver("pymongo", "AsyncMongoClient", "pymongo>=4.9", "mongo"),
    "motor": Driver("motor.motor_asyncio", "AsyncIOMotorClient", "motor", "motor"),
    "async_pymongo": Driver("async_pymongo", "AsyncClient", "async-pymongo", "async-pymongo"),
}
"""The drivers :meth:`MongoStorage.from_url` can build a client with, and their extras."""

DEFAULT_CLIENT_OPTIONS: Mapping[str, Any] = {
    "serverSelectionTimeoutMS": 5000,
    "connectTimeoutMS": 5000,
}
"""What a client built from a URL gets unless the URL or ``client_options`` say otherwise:
a server that cannot be reached is reported after 5 s, not the driver's 30."""

SYSTEM_DATABASES = frozenset({"admin", "local", "config"})
"""MongoDB's own databases (``local`` is not even replicated): never a store's."""

_BAD_DATABASE_CHARS = frozenset('/\\. "$*<>:|?\x00')


def check_database_name(name: str, hint: str) -> None:
    """Refuse what MongoDB cannot take as a database name, and its own databases.

    :raises InvalidValueError: the name says why, followed by ``hint``.
    """
    bad = sorted(set(name) & _BAD_DATABASE_CHARS)
    if not name or bad or len(name.encode()) > 63:
        reason = f"contains {''.join(bad)!r}" if bad else "is empty or longer than 63 bytes"
        raise InvalidValueError(f"{name!r} cannot be a MongoDB database name: it {reason}; {hint}")
    if name.lower() in SYSTEM_DATABASES:
        raise InvalidValueError(
            f"{name!r} is one of MongoDB's own databases (admin, local, config; local is not "
            f"even replicated, so data there is lost on a failover); {hint}"
        )


def _known_options() -> frozenset[str]:
    common = importlib.import_module("pymongo.common")
    return frozenset(
        {
            *common.URI_OPTIONS_VALIDATOR_MAP,
            *common.URI_OPTIONS_ALIAS_MAP,
            *getattr(common, "URI_OPTIONS_DEPRECATION_MAP", {}),
        }
    )


def check_options(url: str, options: Mapping[str, Any]) -> None:
    """Refuse an option the driver does not know, in the URL's query or in ``options``
    (pymongo would ignore the first with a warning and refuse the second on ``open()``).

    :raises InvalidValueError: the message names the unknown option and the known ones.
    """
    known = _known_options()
    names = [name for name, _ in parse_qsl(urlsplit(url).query, keep_blank_values=True)]
    for where, found in (("the MongoDB URL", names), ("client_options", list(options))):
        for name in found:
            if name.lower() not in known:
                raise InvalidValueError(
                    f"unknown option {name!r} in {where}; known options (any case): "
                    f"{', '.join(sorted(known))}"
                )


def _with_defaults(url: str, options: Mapping[str, Any]) -> dict[str, Any]:
    given = {name.lower() for name, _ in parse_qsl(urlsplit(url).query)}
    given |= {name.lower() for name in options}
    defaults = {k: v for k, v in DEFAULT_CLIENT_OPTIONS.items() if k.lower() not in given}
    return {**defaults, **options}


def unreachable(url: str, exc: BaseException) -> str | None:
    """One line for a server that could not be reached (None for any other failure):
    its host and port, never the URL's password, instead of the driver's topology dump."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    if not names & {"ServerSelectionTimeoutError", "AutoReconnect", "ConnectionFailure"}:
        return None
    try:
        parts = urlsplit(url)
        hosts = parts.netloc.rpartition("@")[2] or "localhost"
    except ValueError:
        hosts = "the server"
    text = str(exc)
    for marker in (" (configured timeouts", ", Timeout:", ", Topology Description"):
        text = text.split(marker, 1)[0]
    reason = text.partition(": ")[2] or text  # without the "host:port: " it starts with
    return f"cannot reach MongoDB at {hosts} ({reason.strip()[:120]})"


class AsyncMongoClientLike(Protocol):
    """What MongoStorage needs of a client: ``client[database]`` and ``get_database``.

    PyMongo's ``AsyncMongoClient``, motor's ``AsyncIOMotorClient`` and
    ``async_pymongo.AsyncClient`` all qualify.
    """

    def __getitem__(self, name: str) -> Any: ...

    def get_database(self, name: str) -> Any:
        """Return the database ``name``."""
        ...


@dataclass(frozen=True)
class ClientRecipe:
    """How to build an asynchronous client: a connection string, a driver and its options.

    Pass one as ``connection`` to :class:`~pyrogram_storage.MongoStorage` (which is what
    :meth:`~pyrogram_storage.MongoStorage.from_url` does) and the storage builds its own
    client on ``open()`` and closes it on ``close()``. ``repr()`` never shows the URL or
    the options: they may hold a password.

    :param url: a ``mongodb://`` or ``mongodb+srv://`` connection string.
    :param driver: a key of :data:`DRIVERS` (``"async-pymongo"`` is accepted too).
    :param options: keyword arguments for the client's constructor.
    :raises InvalidValueError: an unknown driver, or a URL of another scheme.
    """

    url: str = field(repr=False)
    driver: str = "pymongo"
    options: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        key = self.driver.replace("-", "_") if isinstance(self.driver, str) else self.driver
        if key not in DRIVERS:
            raise InvalidValueError(
                f"unknown driver {self.driver!r}; choose from {', '.join(DRIVERS)}"
            )
        if not isinstance(self.url, str) or not self.url.startswith(
            ("mongodb://", "mongodb+srv://")
        ):
            raise InvalidValueError("url must be a mongodb:// or mongodb+srv:// connection string")
        object.__setattr__(self, "driver", key)
        object.__setattr__(self, "options", dict(self.options))

    def build(self) -> Any:
        """Import the driver and return a new client (it connects lazily).

        Options neither the URL nor ``options`` set come from
        :data:`DEFAULT_CLIENT_OPTIONS`.
        """
        spec = DRIVERS[self.driver]
        client_class = getattr(import_driver(spec), spec.client_class)
        return client_class(self.url, **_with_defaults(self.url, self.options))


def import_driver(spec: Driver) -> ModuleType:
    """Import the driver's module, or raise :class:`MissingDriverError` naming its extra."""
    return load_driver(spec.module, spec.package, spec.extra, needs=spec.client_class)


class _Pymongo:
    """The pymongo pieces every driver shares (write models, error classes), loaded once."""

    module: ModuleType | None = None
    errors: tuple[type[BaseException], ...] | None = None

    @classmethod
    def load(cls) -> ModuleType:
        if cls.module is None:
            try:
                cls.module = importlib.import_module("pymongo")
                importlib.import_module("bson")
            except ImportError as exc:
                raise MissingDriverError("pymongo", "mongo") from exc
        return cls.module


def load_pymongo() -> ModuleType:
    """Return pymongo (every driver uses its write models and errors)."""
    return _Pymongo.load()


def driver_errors() -> tuple[type[BaseException], ...]:
    """The exceptions any of the drivers raises: pymongo's and bson's."""
    if _Pymongo.errors is None:
        pymongo = _Pymongo.load()
        bson_errors = importlib.import_module("bson.errors")
        _Pymongo.errors = (pymongo.errors.PyMongoError, bson_errors.BSONError)
    return _Pymongo.errors


def check_async_client(connection: object) -> None:
    """Refuse anything but an asynchronous client, naming what to pass instead."""
    for cls in type(connection).__mro__:
        if cls.__name__ == "MongoClient" and cls.__module__.split(".")[0] in (
            "pymongo",
            "mongomock",
        ):
            raise InvalidTypeError(
                f"{cls.__module__}.{cls.__name__} is synchronous and would block the event "
                "loop; pass pymongo.AsyncMongoClient (or motor's AsyncIOMotorClient, "
                "async_pymongo.AsyncClient), or use MongoStorage.from_url(url, name=...)"
            )
    # Looked up on the class: a database object answers any attribute with a collection.
    if not callable(getattr(type(connection), "get_database", None)) or not hasattr(
        type(connection), "__getitem__"
    ):
        raise InvalidTypeError(
            "connection must be an asynchronous MongoDB client (pymongo.AsyncMongoClient, "
            f"motor's AsyncIOMotorClient or async_pymongo.AsyncClient) or a ClientRecipe, not "
            f"{type(connection).__module__}.{type(connection).__qualname__}"
        )


async def awaited(pending: Awaitable[T]) -> T:
    """Await a driver call's result, refusing a synchronous client's plain value."""
    if not inspect.isawaitable(pending):
        raise InvalidTypeError(
            f"the MongoDB client returned {type(pending).__name__} instead of an "
            "awaitable: it is synchronous; use an asynchronous client"
        )
    return await pending


async def maybe_await(value: Any) -> Any:
    """Await ``value`` if it is awaitable, else return it.

    motor's ``close()`` is synchronous, PyMongo's and async-pymongo's are coroutines.
    """
    if inspect.isawaitable(value):
        return await value
    return value


async def documents(cursor: Any) -> list[dict[str, Any]]:
    """Return every document of a cursor (or of what ``aggregate()`` returned)."""
    # PyMongo's aggregate() is a coroutine; motor's and async-pymongo's return a cursor.
    cursor = await maybe_await(cursor)
    return [doc async for doc in cursor]
