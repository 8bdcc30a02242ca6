"""Exceptions of the bot-state stores.

They derive from :class:`pyrogram_storage.errors.StorageError`, and mix in the builtin a
caller would already catch: a key of the wrong type is a ``TypeError``, a negative TTL a
``ValueError``. The stores also raise the package's own :class:`StorageClosedError`,
:class:`BackendError`, :class:`DiskFullError`, :class:`MissingDriverError`,
:class:`TargetNotEmptyError`, :class:`LockedError` (named :data:`StoreLockedError`
here too), :class:`CorruptDataError` (:data:`CorruptStoreError`) and
:class:`SchemaTooNewError` (:data:`VersionTooNewError`), which the session half
raises as well.
"""

from __future__ import annotations

from ..errors import (
    CorruptDataError,
    InvalidTypeError,
    InvalidValueError,
    LockedError,
    SchemaTooNewError,
    StorageError,
)

__all__ = [
    "CorruptStoreError",
    "CorruptValueError",
    "InvalidArgumentError",
    "InvalidKeyError",
    "InvalidPatternError",
    "InvalidTTLError",
    "KVError",
    "KVSerializationError",
    "MergeConflictError",
    "NotACounterError",
    "NotADictError",
    "StoreLockedError",
    "VersionTooNewError",
]


class KVError(StorageError):
    """Base class of the errors only the bot-state stores raise."""


class InvalidArgumentError(KVError, InvalidTypeError, InvalidValueError):
    """An argument has the wrong type or value; nothing was read or written.

    The package's :class:`InvalidTypeError` and :class:`InvalidValueError` at once
    (so also a ``TypeError`` and a ``ValueError``): any of those ``except`` catches it.
    """


class InvalidKeyError(InvalidArgumentError):
    """A key is not a non-empty ``str`` of at most 512 characters without NUL or surrogates."""


class InvalidTTLError(InvalidArgumentError):
    """A TTL is not a positive, finite number of seconds."""


class InvalidPatternError(InvalidArgumentError):
    """A glob pattern is not a ``str`` or is malformed (an unclosed ``[``, a trailing ``\\``)."""


class KVSerializationError(KVError, TypeError):
    """A value cannot be serialized; the message names the key and the offending type."""

    def __init__(self, message: str, *, key: str | None = None, type_name: str | None = None):
        super().__init__(message)
        self.key = key
        self.type_name = type_name


class CorruptValueError(KVError, ValueError):
    """A stored value cannot be decoded by the store's serializer."""


class NotACounterError(KVError, TypeError):
    """``increment`` on a value that is not an integer, or a counter leaving the int64 range."""


class NotADictError(KVError, TypeError):
    """``merge`` on a key whose live value is not a ``dict``; nothing was written."""


class MergeConflictError(KVError):
    """``merge`` on a backend without a native merge lost the race for the key to other
    writers too many times in a row; nothing was written."""


VersionTooNewError = SchemaTooNewError
"""A versioned value was written by newer code than the migrations this one knows
(:class:`~pyrogram_storage.errors.SchemaTooNewError`)."""

CorruptStoreError = CorruptDataError
"""A store's file cannot be read and no usable backup exists; it was left untouched
(:class:`~pyrogram_storage.errors.CorruptDataError`)."""

StoreLockedError = LockedError
"""Another process or object holds this single-writer store open
(:class:`~pyrogram_storage.errors.LockedError`)."""
