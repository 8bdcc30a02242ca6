"""Locations: one table of URL schemes, each naming a storage class imported when used.

``from_url("sessions/me.session")``, ``from_url("memory:")`` or
``from_url("mongodb://host/#me")`` build the storage a location names, unopened. The
command line, the tests and users all go through this table; a new backend is one
class (with :meth:`~pyrogram_storage.Storage.from_location`) plus one entry here.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

from .base import Storage
from .errors import InvalidTypeError, InvalidValueError

__all__ = ["SCHEMES", "from_url", "scheme_of", "storage_class"]

SCHEMES: dict[str, str] = {
    "file": "pyrogram_storage.sqlite.file:FileStorage",
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
}
"""Location scheme to the storage class (``"module:Class"``) that opens it."""

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")


def scheme_of(location: str) -> str:
    """Return the scheme of ``location``; a location without one is a file path.

    :raises InvalidValueError: a ``scheme://`` this library has no backend for.
    """
    if not isinstance(location, str):
        raise InvalidTypeError(f"a location must be a str, not {type(location).__name__}")
    match = _SCHEME.match(location)
    if match is None:
        return "file"
    scheme = match.group(1).lower()
    if scheme in SCHEMES:
        return scheme
    if location[match.end() :].startswith("//"):
        raise InvalidValueError(
            f"no storage for {scheme}:// locations; known schemes: {', '.join(SCHEMES)}"
        )
    return "file"  # "notes:v2.session" is a file name with a colon


def storage_class(location: str) -> type[Storage]:
    """Return the storage class that opens ``location`` (importing it, and only it)."""
    module_name, _, class_name = SCHEMES[scheme_of(location)].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(cls, type) and issubclass(cls, Storage)):  # pragma: no cover - the table
        raise TypeError(f"{SCHEMES[scheme_of(location)]} is not a Storage class")
    return cls


def from_url(location: str, **options: Any) -> Storage:
    """Build (without opening) the storage ``location`` names.

    * ``PATH.session``, ``PATH`` (``.session`` is added) or ``file:PATH``: a
      :class:`~pyrogram_storage.FileStorage`;
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

    :param options: the storage's own keyword options (``username_ttl``,
        ``commit_interval``, ``read_only``...).
    :raises InvalidValueError: the location cannot be parsed, or names no backend.
    :raises MissingDriverError: the backend's driver is not installed.
    """
    return storage_class(location).from_location(location, **options)
