"""Locations: one table of URL schemes per half, each naming a class imported when used.

``from_url("sessions/me.session")``, ``from_url("memory:")`` or
``from_url("mongodb://host/#me")`` build the session storage a location names,
unopened; ``kv.from_url("sqlite:bot.db#fsm")`` the bot-state store. The command line,
the tests and users all go through these tables; a new backend is one class (with
``from_location``) plus one entry in the table of its half.

One rule for both halves: ``SCHEME://...`` must name a known scheme; ``SCHEME:REST`` with
a known scheme is that backend; anything else is a file path, relative to the current
directory (``notes:v2.session`` is a file name with a colon).
"""

from __future__ import annotations

import importlib
import re
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

from .base import Storage
from .errors import InvalidTypeError, InvalidValueError

if TYPE_CHECKING:
    from .kv.base import KVStore

__all__ = [
    "KV_SCHEMES",
    "READ_ONLY_SCHEMES",
    "SCHEMES",
    "display",
    "from_url",
    "kv_from_url",
    "scheme_of",
    "storage_class",
    "store_class",
]

SCHEMES: dict[str, str] = {
    "file": "pyrogram_storage.sqlite.file:FileStorage",
    "sqlite": "pyrogram_storage.sqlite.file:FileStorage",
    "memory": "pyrogram_storage.sqlite.memory:MemoryStorage",
    "mongodb": "pyrogram_storage.mongo:MongoStorage",
    "mongodb+srv": "pyrogram_storage.mongo:MongoStorage",
    "postgresql": "pyrogram_storage.postgres:PostgresStorage",
    "postgres": "pyrogram_storage.postgres:PostgresStorage",
    "asyncpg-storage+postgresql": "pyrogram_storage.postgres.foreign:AsyncpgStorageSource",
    "asyncpg-storage+postgres": "pyrogram_storage.postgres.foreign:AsyncpgStorageSource",
    "redis": "pyrogram_storage.redisdb.storage:RedisStorage",
    "rediss": "pyrogram_storage.redisdb.storage:RedisStorage",
    "unix": "pyrogram_storage.redisdb.storage:RedisStorage",
    "string": "pyrogram_storage.tools.sources:StringSource",
    "telethon": "pyrogram_storage.tools.sources:TelethonSource",
}
"""Session location scheme to the storage class (``"module:Class"``) that opens it.
``file`` is also what a location without a scheme is."""

READ_ONLY_SCHEMES = frozenset(
    {"string", "telethon", "asyncpg-storage+postgresql", "asyncpg-storage+postgres"}
)
"""Session schemes that can only be read: copy from them, never to them."""

KV_SCHEMES: dict[str, str] = {
    "file": "pyrogram_storage.kv.sqlite:SQLiteKV",
    "sqlite": "pyrogram_storage.kv.sqlite:SQLiteKV",
    "json": "pyrogram_storage.kv.jsonfile:JSONFileKV",
    "memory": "pyrogram_storage.kv.memory:MemoryKV",
    "mongodb": "pyrogram_storage.kv.mongo:MongoKV",
    "mongodb+srv": "pyrogram_storage.kv.mongo:MongoKV",
    "redis": "pyrogram_storage.kv.redisdb:RedisKV",
    "rediss": "pyrogram_storage.kv.redisdb:RedisKV",
    "unix": "pyrogram_storage.kv.redisdb:RedisKV",
    "postgresql": "pyrogram_storage.kv.postgres:PostgresKV",
    "postgres": "pyrogram_storage.kv.postgres:PostgresKV",
}
"""Bot-state location scheme to the store class. A path without a scheme is ``file``
(SQLite), or ``json`` when it ends in ``.json``."""

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")
_SECRET_QUERY = re.compile(r"pass|secret|token|key|auth", re.IGNORECASE)


def scheme_of(location: str, table: dict[str, str] = SCHEMES) -> str:
    """Return the scheme of ``location`` in ``table``; a location without one is a path.

    :raises InvalidValueError: a ``scheme://`` this library has no backend for.
    """
    if not isinstance(location, str):
        raise InvalidTypeError(f"a location must be a str, not {type(location).__name__}")
    match = _SCHEME.match(location)
    scheme = None if match is None else match.group(1).lower()
    if scheme in table:
        return scheme
    if match is not None and location[match.end() :].startswith("//"):
        raise InvalidValueError(
            f"no backend for {scheme}:// locations; known schemes: {', '.join(table)}"
        )
    if table is KV_SCHEMES and location.partition("#")[0].lower().endswith(".json"):
        return "json"
    return "file"


def _named(spec: str) -> Any:
    module_name, _, name = spec.partition(":")
    return getattr(importlib.import_module(module_name), name)


def _class(spec: str) -> type[Any]:
    cls: type[Any] = _named(spec)
    return cls


def lazy_names(module: str, names: dict[str, str]) -> Callable[[str], Any]:
    """Return a module ``__getattr__`` that imports each of ``names`` on first use.

    ``names`` maps a public name to ``"package.module:name"``: the package's server
    backends and client glue load only when used, so that importing the package
    imports no optional driver.
    """

    def __getattr__(name: str) -> Any:
        spec = names.get(name)
        if spec is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        return _named(spec)

    return __getattr__


def moved(module: str, new: str, renames: dict[str, str] | None = None) -> Callable[[str], Any]:
    """Return the ``__getattr__`` of a module that moved to ``new`` in 0.2: each name is
    taken from there (``renames``: old name -> new name) with a ``DeprecationWarning``,
    for one release, so that imports written for 0.1 keep working."""

    def __getattr__(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        target = (renames or {}).get(name, name)
        warnings.warn(
            f"{module} moved to {new} in pyrogram-storage 0.2: import {target} from there "
            f"(or from pyrogram_storage); {module} goes away in the next release",
            DeprecationWarning,
            stacklevel=2,
        )
        try:
            return _named(f"{new}:{target}")
        except AttributeError:
            raise AttributeError(f"module {module!r} has no attribute {name!r}") from None

    return __getattr__


def storage_class(location: str) -> type[Storage]:
    """Return the session storage class that opens ``location`` (importing it, and only it)."""
    cls = _class(SCHEMES[scheme_of(location)])
    if not issubclass(cls, Storage):  # pragma: no cover - the table
        raise InvalidTypeError(f"{SCHEMES[scheme_of(location)]} is not a Storage class")
    return cls


def store_class(location: str) -> type[KVStore[Any]]:
    """Return the bot-state store class that opens ``location`` (importing it, and only it)."""
    return _class(KV_SCHEMES[scheme_of(location, KV_SCHEMES)])


def from_url(location: str, **options: Any) -> Storage:
    """Build (without opening) the session storage ``location`` names.

    * ``PATH.session``, ``PATH`` (``.session`` is added), ``file:PATH`` or
      ``sqlite:PATH``: a :class:`~pyrogram_storage.FileStorage`;
    * ``memory:`` or ``memory:NAME``: a new :class:`~pyrogram_storage.MemoryStorage`;
    * ``mongodb://HOST/?OPTIONS#NAME`` and ``mongodb+srv://...#NAME``: session
      ``NAME`` in a :class:`~pyrogram_storage.MongoStorage` that owns its client;
    * ``redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]#NAME``, ``rediss://...#NAME`` and
      ``unix:///PATH?db=N#NAME``: session ``NAME`` in a
      :class:`~pyrogram_storage.RedisStorage` that owns its client;
    * ``postgresql://[USER[:PASSWORD]@]HOST[:PORT]/DATABASE[?schema=S]#NAME`` (or
      ``postgres://``): session ``NAME`` in a :class:`~pyrogram_storage.PostgresStorage`
      that owns its pool;
    * ``asyncpg-storage+postgresql://...[?schema=S]#NAME``: session ``NAME`` of
      ``pyrogram-asyncpg-storage`` (tables ``"S"."NAME:peers"``...; ``S`` is ``pyrogram``
      unless given), read-only: a source to copy from.
    * ``string:SESSION_STRING`` and ``telethon:PATH_OR_STRING``: read-only sources
      (:mod:`pyrogram_storage.tools.sources`).

    A relative path is taken from the current directory.

    :param options: the storage's own keyword options (``username_ttl``,
        ``commit_interval``, ``read_only``...).
    :raises InvalidValueError: the location cannot be parsed, names no backend, or
        carries an option the backend does not know.
    :raises MissingDriverError: the backend's driver is not installed.
    """
    return storage_class(location).from_location(location, **options)


def kv_from_url(location: str, **options: Any) -> KVStore[Any]:
    """Build (without opening) the bot-state store ``location`` names.

    See :func:`pyrogram_storage.kv.from_url` (this function, under its public name).
    """
    from .kv.errors import InvalidArgumentError

    try:
        scheme = scheme_of(location, KV_SCHEMES)
    except (InvalidTypeError, InvalidValueError) as exc:
        raise InvalidArgumentError(str(exc)) from None
    store: KVStore[Any] = _class(KV_SCHEMES[scheme]).from_location(location, **options)
    return store


def display(location: str, limit: int = 80) -> str:
    """Return a location as it may be shown: no password, no session string.

    A server URL loses its user, password and any query option that looks secret; a
    ``string:`` or ``telethon:`` string is named, not shown; a long text (a secret
    pasted where a path belongs) is cut to its first characters.
    """
    scheme, colon, body = location.partition(":")
    if colon and scheme.lower() == "string":
        return "a session string"
    if colon and scheme.lower() == "telethon":
        import os

        return body if os.path.isfile(os.path.expanduser(body)) else "a Telethon session string"
    if "://" in location:
        head, sep, fragment = location.partition("#")
        scheme_part, _, rest = head.partition("://")
        authority, slash, tail = rest.partition("/")
        path, question, query = tail.partition("?")
        if question:
            pairs = [
                (key, "***" if _SECRET_QUERY.search(key) else value)
                for key, value in parse_qsl(query, keep_blank_values=True)
            ]
            query = urlencode(pairs, safe="*")
        host = authority.rpartition("@")[2]
        return f"{scheme_part}://{host}{slash}{path}{question}{query}{sep}{fragment}"
    if len(location) <= limit:
        return location
    # A secret pasted where a path belongs: nothing of it, not even its first characters.
    return f"a location of {len(location)} characters (not shown: it may be a secret)"
