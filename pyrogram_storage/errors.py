"""Exceptions raised by pyrogram_storage.

Every error derives from :class:`StorageError`. Where callers already catch a
builtin (the clients catch ``KeyError`` for a missing peer, ``ValueError`` for a
bad session string), the error mixes that builtin in too.

Sessions and bot state (:mod:`pyrogram_storage.kv`) share these classes. Three used
to have a name in each half; the old names stay importable as aliases:
:class:`LockedError` (``SessionLocked``, ``kv.StoreLockedError``),
:class:`CorruptDataError` (``CorruptSessionError``, ``kv.CorruptStoreError``) and
:class:`SchemaTooNewError` (``kv.VersionTooNewError``); :class:`NotFoundError` is
also ``SessionNotFoundError``.
"""

from __future__ import annotations

__all__ = [
    "BackendError",
    "CorruptDataError",
    "CorruptSessionError",
    "DamagedEnvelopeError",
    "DiskFullError",
    "EncryptionKeyError",
    "InvalidTypeError",
    "InvalidValueError",
    "LockedError",
    "MigrationError",
    "MissingDriverError",
    "NotFoundError",
    "PeerNotFound",
    "ReadOnlyError",
    "SchemaTooNewError",
    "SessionLocked",
    "SessionNotFoundError",
    "SessionStringError",
    "StorageClosedError",
    "StorageError",
    "TargetNotEmptyError",
    "UnknownSchemaError",
]


class StorageError(Exception):
    """Base class of every error raised by pyrogram_storage."""


class PeerNotFound(StorageError, KeyError):
    """No peer matches the id, username or phone number looked up.

    A ``KeyError``, because that is what every client's ``resolve_peer`` catches.
    """

    def __init__(self, message: str, key: object = None) -> None:
        super().__init__(message)
        self.key = key

    # KeyError.__str__ quotes its argument; keep the message readable.
    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class InvalidTypeError(StorageError, TypeError):
    """An argument of the wrong type (a ``str`` where a list of usernames belongs...)."""


class InvalidValueError(StorageError, ValueError):
    """An argument of the right type but an impossible value (an id beyond 64 bits...)."""


class SessionStringError(StorageError, ValueError):
    """A session string cannot be decoded or encoded."""


class MigrationError(StorageError):
    """A database cannot be brought to the schema this version understands."""


class SchemaTooNewError(MigrationError, ValueError):
    """Data written by newer code than this: a database of a newer pyrogram_storage, or
    a value of :func:`~pyrogram_storage.kv.versioned` from newer migrations. It is left
    untouched."""


class UnknownSchemaError(MigrationError):
    """The file is a SQLite database, but not a session this library recognises."""


class CorruptDataError(StorageError):
    """A store's data cannot be read: a session file that is not a readable SQLite
    database (truncated, garbage, damaged), a bot-state file that cannot be read (and no
    usable backup exists). It was left untouched."""


CorruptSessionError = CorruptDataError
"""The session half's name for :class:`CorruptDataError`."""


class StorageClosedError(StorageError):
    """The storage is closed (or was never opened); call ``open()`` first."""


class NotFoundError(StorageError, FileNotFoundError):
    """A session or store that is only read (a copy's source, an import) does not exist."""


SessionNotFoundError = NotFoundError
"""The session half's name for :class:`NotFoundError`."""


class TargetNotEmptyError(StorageError):
    """A copy or import would overwrite a session that already holds data."""


class LockedError(StorageError):
    """Another process, client or object holds this session or store open for writing."""


SessionLocked = LockedError
"""The session half's name for :class:`LockedError`."""


class BackendError(StorageError):
    """The database driver or server failed; the original error is the ``__cause__``."""


class DiskFullError(BackendError):
    """The disk (or the server's data directory) is full; nothing already stored was changed."""


class ReadOnlyError(StorageError):
    """A write on a storage opened with ``read_only=True``."""


class MissingDriverError(StorageError, ImportError):
    """An optional database driver is not installed."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"{package!r} is not installed; install it with `pip install pyrogram-storage[{extra}]`"
        )
        self.package = package
        self.extra = extra


class EncryptionKeyError(StorageError):
    """The encryption key does not fit the stored auth key; nothing was read or written.

    ``reason`` says which: :attr:`NO_KEY` (the auth key is sealed and no key was
    given), :attr:`WRONG_KEY`, :attr:`NOT_ENCRYPTED` (a key was given for an auth key
    stored in clear), :attr:`OTHER_FORMAT` (stored as a Fernet token) or
    :attr:`DAMAGED` (:class:`DamagedEnvelopeError`).
    """

    NO_KEY = "no key"
    WRONG_KEY = "wrong key"
    NOT_ENCRYPTED = "not encrypted"
    OTHER_FORMAT = "other format"
    DAMAGED = "damaged"

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class DamagedEnvelopeError(EncryptionKeyError, CorruptSessionError):
    """The sealed auth key was altered or truncated: it is not handed out, nothing is written."""
