"""Session storage for the Pyrogram family of Telegram clients.

``import pyrogram_storage`` imports no database driver; :class:`MongoStorage`,
:class:`RedisStorage` and :class:`PostgresStorage` load theirs only when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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


def __getattr__(name: str) -> Any:
    # The Mongo backend is imported on first use so that no driver loads with the package.
    if name == "MongoStorage":
        from .mongo import MongoStorage

        return MongoStorage
    if name == "PostgresStorage":
        from .postgres import PostgresStorage

        return PostgresStorage
    if name == "RedisStorage":
        from .redisdb.storage import RedisStorage

        return RedisStorage
    if name == "for_client":
        # Client glue loads on first use; it imports no client library until called.
        from .clients import for_client

        return for_client
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
