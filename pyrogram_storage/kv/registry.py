"""Locations: one string names a store, for ``kv.from_url`` and the command line.

=====================================================  =====================================
``memory:``                                            a new, empty :class:`MemoryKV`
``sqlite:PATH`` (``sqlite::memory:``)                  :class:`SQLiteKV` (table ``kv``)
``json:PATH``                                          :class:`JSONFileKV`
``mongodb://HOST/[DATABASE][?OPTIONS]``                :class:`MongoKV` (database
(``mongodb+srv://``)                                   ``pyrogram_storage`` if none, collection
                                                       ``kv``)
``redis://HOST[:PORT][/DB][?OPTIONS]``, ``rediss://``,  :class:`RedisKV` (single server or
``unix://PATH``                                        cluster, told apart on open)
``postgresql://[USER[:PASSWORD]@]HOST[:PORT]/DB``       :class:`PostgresKV` (schema
(``postgres://``; ``?schema=S&table=T``)               ``pyrogram_storage``, table ``kv``)
=====================================================  =====================================

Each may end in ``#NAMESPACE`` (default ``default``); a MongoDB location may name its
collection too, ``#COLLECTION/NAMESPACE``. Backend classes are imported only when used.
"""

from __future__ import annotations

from typing import Any

from .base import KVStore
from .errors import InvalidArgumentError

__all__ = ["SCHEMES", "from_url"]

SCHEMES = (
    "memory:",
    "sqlite:",
    "json:",
    "mongodb://",
    "mongodb+srv://",
    "redis://",
    "rediss://",
    "unix://",
    "postgresql://",
    "postgres://",
)


def split_fragment(location: str) -> tuple[str, str | None]:
    body, sep, fragment = location.partition("#")
    return body, (fragment if sep else None)


def from_url(location: str, **options: Any) -> KVStore[Any]:
    """Build the (unopened) store a location names.

    :param location: see the module's table; e.g. ``"sqlite:bot.db#fsm"``,
        ``"redis://127.0.0.1:6379/0#bot"``.
    :param options: more keyword arguments for the store (``default_ttl``, ``driver``...).
    :raises InvalidArgumentError: an unknown scheme or a malformed location.
    :raises MissingDriverError: the backend's driver is not installed.
    """
    if not isinstance(location, str):
        raise InvalidArgumentError(f"a location is a str, not {type(location).__name__}")
    body, fragment = split_fragment(location)
    if fragment is not None and "namespace" in options:
        raise InvalidArgumentError("give the namespace in the location or as namespace=, not both")
    if body.startswith(("mongodb://", "mongodb+srv://")):
        from .mongo import MongoKV

        collection = options.pop("collection", "kv")
        namespace = fragment
        if fragment is not None and "/" in fragment:
            collection, _, namespace = fragment.partition("/")
        if namespace is not None:
            options["namespace"] = namespace or None
        return MongoKV.from_url(body, collection=collection, **options)
    if fragment is not None:
        options["namespace"] = fragment or None
    if body == "memory:":
        from .memory import MemoryKV

        return MemoryKV(**options)
    if body.startswith("sqlite:"):
        from .sqlite import SQLiteKV

        path = body[len("sqlite:") :]
        if not path:
            raise InvalidArgumentError("sqlite: needs a path, e.g. sqlite:bot.db")
        return SQLiteKV(path, **options)
    if body.startswith("json:"):
        from .jsonfile import JSONFileKV

        path = body[len("json:") :]
        if not path:
            raise InvalidArgumentError("json: needs a path, e.g. json:state.json")
        return JSONFileKV(path, **options)
    if body.startswith(("redis://", "rediss://", "unix://")):
        from .redisdb import RedisKV

        return RedisKV.from_url(body, **options)
    if body.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresKV

        return PostgresKV.from_url(body, **options)
    raise InvalidArgumentError(
        f"unknown location {location.split(':')[0]!r}...; use memory:, sqlite:PATH, json:PATH, "
        "mongodb://..., redis://..., rediss://..., unix://... or postgresql://..."
    )
