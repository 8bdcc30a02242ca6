"""Session storage for the Pyrogram family of Telegram clients.

``import pyrogram_storage`` imports no database driver; :class:`MongoStorage`,
:class:`RedisStorage` and :class:`PostgresStorage` load theirs only when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import DEFAULT_PEER_CACHE_SIZE, USERNAME_TTL, Changes, Storage
from .errors import (
    BackendError,
    CorruptDataError,
    CorruptSessionError,
    DamagedEnvelopeError,
    DiskFullError,
    EncryptionKeyError,
    InvalidTypeError,
    InvalidValueError,
    LockedError,
    MigrationError,
    MissingDriverError,
    NotFoundError,
    PeerNotFound,
    ReadOnlyError,
    SchemaTooNewError,
    SessionLocked,
    SessionNotFoundError,
    SessionStringError,
    StorageClosedError,
    StorageError,
    TargetNotEmptyError,
    UnknownSchemaError,
)
from .registry import from_url
from .registry import lazy_names as _lazy_names
from .session_string import decode_session_string, encode_session_string
from .sqlite import FileStorage, Layout, MemoryStorage, SQLiteStorage
from .tools import copy_session
from .types import Peer, PeerCount, PeerType, SessionData, UpdateState

if TYPE_CHECKING:
    from .clients import for_client
    from .mongo import MongoStorage
    from .postgres import PostgresStorage
    from .redisdb.storage import RedisStorage

__version__ = "0.2.0"

__all__ = [
    "DEFAULT_PEER_CACHE_SIZE",
    "USERNAME_TTL",
    "BackendError",
    "Changes",
    "CorruptDataError",
    "CorruptSessionError",
    "DamagedEnvelopeError",
    "DiskFullError",
    "EncryptionKeyError",
    "FileStorage",
    "InvalidTypeError",
    "InvalidValueError",
    "Layout",
    "LockedError",
    "MemoryStorage",
    "MigrationError",
    "MissingDriverError",
    "MongoStorage",
    "NotFoundError",
    "Peer",
    "PeerCount",
    "PeerNotFound",
    "PeerType",
    "PostgresStorage",
    "ReadOnlyError",
    "RedisStorage",
    "SQLiteStorage",
    "SchemaTooNewError",
    "SessionData",
    "SessionLocked",
    "SessionNotFoundError",
    "SessionStringError",
    "Storage",
    "StorageClosedError",
    "StorageError",
    "TargetNotEmptyError",
    "UnknownSchemaError",
    "UpdateState",
    "__version__",
    "copy_session",
    "decode_session_string",
    "encode_session_string",
    "for_client",
    "from_url",
]


# The server backends load on first use, so that no driver loads with the package; the
# client glue too (it imports no client library until called).
__getattr__ = _lazy_names(
    __name__,
    {
        "MongoStorage": "pyrogram_storage.mongo:MongoStorage",
        "PostgresStorage": "pyrogram_storage.postgres:PostgresStorage",
        "RedisStorage": "pyrogram_storage.redisdb.storage:RedisStorage",
        "for_client": "pyrogram_storage.clients:for_client",
    },
)
