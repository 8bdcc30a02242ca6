"""Bot state: conversation states and data, counters, caches, behind one contract.

Every store is a :class:`KVStore` (async, typed, TTLs, atomic ``increment`` and
``compare_and_set``): :class:`MemoryKV`, :class:`SQLiteKV`, :class:`JSONFileKV`,
:class:`MongoKV`, :class:`RedisKV` and :class:`PostgresKV`. :func:`for_kurigram_addons` and
:func:`for_aiogram` make any of them a bot framework's FSM storage.
``import pyrogram_storage.kv`` imports no database driver and no framework; MongoKV,
RedisKV and PostgresKV load theirs when used, the adapters theirs when called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import registry as _registry
from ..errors import (
    BackendError,
    CorruptDataError,
    DiskFullError,
    LockedError,
    MissingDriverError,
    NotFoundError,
    SchemaTooNewError,
    StorageClosedError,
    TargetNotEmptyError,
)
from .base import MISSING, Entry, KVStore
from .copy import copy
from .errors import (
    CorruptStoreError,
    CorruptValueError,
    InvalidArgumentError,
    InvalidKeyError,
    InvalidPatternError,
    InvalidTTLError,
    KVError,
    KVSerializationError,
    MergeConflictError,
    NotACounterError,
    NotADictError,
    StoreLockedError,
    VersionTooNewError,
)
from .frameworks import for_aiogram, for_kurigram_addons
from .jsonfile import JSONFileKV
from .memory import MemoryKV
from .sealed import SealedSerializer
from .serializer import JSON, JSONSerializer, Serializer
from .sqlite import SQLiteKV
from .versioned import VersionedKV, versioned

if TYPE_CHECKING:
    from .mongo import MongoKV
    from .postgres import PostgresKV
    from .redisdb import RedisKV

__all__ = [
    "JSON",
    "MISSING",
    "BackendError",
    "CorruptDataError",
    "CorruptStoreError",
    "CorruptValueError",
    "DiskFullError",
    "Entry",
    "InvalidArgumentError",
    "InvalidKeyError",
    "InvalidPatternError",
    "InvalidTTLError",
    "JSONFileKV",
    "JSONSerializer",
    "KVError",
    "KVSerializationError",
    "KVStore",
    "LockedError",
    "MemoryKV",
    "MergeConflictError",
    "MissingDriverError",
    "MongoKV",
    "NotACounterError",
    "NotADictError",
    "NotFoundError",
    "PostgresKV",
    "RedisKV",
    "SQLiteKV",
    "SchemaTooNewError",
    "SealedSerializer",
    "Serializer",
    "StorageClosedError",
    "StoreLockedError",
    "TargetNotEmptyError",
    "VersionTooNewError",
    "VersionedKV",
    "copy",
    "for_aiogram",
    "for_kurigram_addons",
    "from_url",
    "versioned",
]


def from_url(location: str, **options: Any) -> KVStore[Any]:
    """Build the (unopened) store a location names.

    ======================================================  ====================================
    ``memory:``                                             a new, empty :class:`MemoryKV`
    ``sqlite:PATH``, ``file:PATH``, a bare ``PATH``         :class:`SQLiteKV` (table ``kv``);
    (``sqlite::memory:``)                                   ``PATH`` relative to the current
                                                            directory
    ``json:PATH``, a bare ``PATH.json``                     :class:`JSONFileKV`
    ``mongodb://HOST/[DATABASE][?OPTIONS]``                 :class:`MongoKV` (database
    (``mongodb+srv://``)                                    ``pyrogram_storage`` if none,
                                                            collection ``kv``)
    ``redis://HOST[:PORT][/DB][?OPTIONS]``, ``rediss://``,  :class:`RedisKV` (single server or
    ``unix://PATH``                                         cluster, told apart on open)
    ``postgresql://USER:PASSWORD@HOST[:PORT]/DB``           :class:`PostgresKV` (schema
    (``postgres://``; ``?schema=S&table=T``)                ``pyrogram_storage``, table ``kv``)
    ======================================================  ====================================

    Each may end in ``#NAMESPACE`` (default ``default``); a MongoDB location may name its
    collection too, ``#COLLECTION/NAMESPACE``. The table is
    :data:`pyrogram_storage.registry.KV_SCHEMES`; a backend's class is imported only
    when its location is used.

    :param location: e.g. ``"sqlite:bot.db#fsm"``, ``"redis://127.0.0.1:6379/0#bot"``.
    :param options: more keyword arguments for the store (``default_ttl``, ``driver``...).
    :raises InvalidArgumentError: an unknown scheme, a malformed location, or an option
        the backend does not know.
    :raises MissingDriverError: the backend's driver is not installed.
    """
    return _registry.kv_from_url(location, **options)


# The server backends load on first use; even then no driver is imported until a store
# is built.
__getattr__ = _registry.lazy_names(
    __name__,
    {
        "MongoKV": "pyrogram_storage.kv.mongo:MongoKV",
        "PostgresKV": "pyrogram_storage.kv.postgres:PostgresKV",
        "RedisKV": "pyrogram_storage.kv.redisdb:RedisKV",
    },
)
