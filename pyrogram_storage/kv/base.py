"""The bot-state contract: :class:`KVStore`, whose public methods own every rule.

A backend implements the protected primitives (``_get``, ``_set``, ``_cas``…) over
already checked keys and encoded values; the base checks keys, TTLs and patterns,
keeps the open/closed state, hides expired keys from every read, serializes values and
turns driver errors into :class:`~pyrogram_storage.errors.BackendError`. A subclass
cannot forget a rule because it never sees a public call.

Encoded values (``Raw``) are ``int`` for integers in the int64 range (so that
``increment`` works on them natively everywhere) and the serializer's text for
everything else. Expiry times are absolute, in seconds since the epoch.
"""

from __future__ import annotations

import contextlib
import enum
import math
import re
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any, Final, Generic, Literal, TypeVar, Union, overload

from ..errors import BackendError, StorageClosedError, StorageError
from .errors import (
    CorruptValueError,
    InvalidArgumentError,
    InvalidKeyError,
    InvalidTTLError,
    KVSerializationError,
    NotACounterError,
)
from .pattern import Pattern, compile_pattern
from .serializer import JSON, Serializer, UnsupportedType

__all__ = [
    "DEFAULT_NAMESPACE",
    "INT64_MAX",
    "INT64_MIN",
    "KEEP",
    "MAX_KEY_LENGTH",
    "MAX_TTL",
    "MISSING",
    "KVStore",
    "Plain",
    "Raw",
    "Record",
    "add_to_counter",
    "is_live",
]

V = TypeVar("V")
D = TypeVar("D")
S = TypeVar("S", bound="KVStore[Any]")


class _Missing(enum.Enum):
    MISSING = "MISSING"

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing.MISSING
"""``compare_and_set(..., expected=MISSING)``: set only if the key is absent (or expired)."""


class _Keep(enum.Enum):
    KEEP = "KEEP"


KEEP: Final = _Keep.KEEP
"""An expiry argument meaning "leave the key's expiry as it is"."""


class Plain:
    """An immutable value kept as the object itself (memory stores), never serialized."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


Raw = Union[str, int, Plain]  # noqa: UP007 (a runtime alias, Python 3.10)
Record = tuple[Raw, float | None]
"""A stored value and its absolute expiry (None: never)."""

MAX_KEY_LENGTH = 512
MAX_TTL = 100 * 365.25 * 86400.0
"""The longest TTL accepted (a hundred years), so every backend can represent the date."""
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
DEFAULT_NAMESPACE = "default"
_NAMESPACE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_INT_TEXT = re.compile(r"-?[0-9]+")
_PLAIN_TYPES = frozenset({str, float, bool, type(None), bytes})
_now = time.time


def is_live(expires: float | None, now: float) -> bool:
    """Whether a record with this expiry is visible at ``now``."""
    return expires is None or expires > now


async def scan_entries(
    entries: dict[str, list[Any]], prefix: str, values: bool, batch: int = 500
) -> AsyncIterator[list[tuple[str, Raw | None, float | None]]]:
    """``_scan`` for backends that hold ``key -> [raw, expires]`` in a dict.

    The matching keys are taken first, so writes between two batches cannot break the
    iteration; a key deleted meanwhile is left out.
    """
    keys = [key for key in entries if key.startswith(prefix)]
    for start in range(0, len(keys), batch):
        found: list[tuple[str, Raw | None, float | None]] = []
        for key in keys[start : start + batch]:
            entry = entries.get(key)
            if entry is not None:
                found.append((key, entry[0] if values else None, entry[1]))
        yield found


def add_to_counter(key: str, raw: Raw | None, amount: int) -> int:
    """Return ``raw`` (None: absent) plus ``amount``, for backends that add in Python.

    :raises NotACounterError: the value is not an integer or the sum leaves int64.
    """
    if raw is None:
        current = 0
    elif type(raw) is int:
        current = raw
    elif type(raw) is Plain and type(raw.value) is int:
        current = raw.value
    else:
        raise NotACounterError(f"increment: the value of key {key!r} is not an integer")
    total = current + amount
    if not INT64_MIN <= total <= INT64_MAX:
        raise NotACounterError(f"increment: key {key!r} would leave the 64-bit integer range")
    return total


def check_namespace(namespace: object) -> str:
    if namespace is None:
        return DEFAULT_NAMESPACE
    if type(namespace) is not str or not _NAMESPACE.fullmatch(namespace):
        raise InvalidArgumentError(
            f"namespace must be 1-64 characters of letters, digits, '_', '.' and '-', "
            f"not {namespace!r}"
        )
    return namespace


def check_ttl(ttl: object, name: str = "ttl") -> float:
    if type(ttl) is not float and type(ttl) is not int:
        raise InvalidTTLError(f"{name} is a number of seconds, not {type(ttl).__name__}")
    seconds = float(ttl)
    if not (0 < seconds <= MAX_TTL) or math.isnan(seconds):
        raise InvalidTTLError(
            f"{name} must be positive and at most {MAX_TTL:.0f} seconds, not {ttl!r}"
        )
    return seconds


def _key_problem(key: object) -> InvalidKeyError:
    if type(key) is not str:
        return InvalidKeyError(f"keys are str, not {type(key).__name__}")
    if not key:
        return InvalidKeyError("a key cannot be empty")
    if len(key) > MAX_KEY_LENGTH:
        return InvalidKeyError(f"a key has at most {MAX_KEY_LENGTH} characters, not {len(key)}")
    if "\x00" in key:
        return InvalidKeyError(f"a key cannot contain NUL characters: {key!r}")
    return InvalidKeyError(f"a key must be valid Unicode text (no lone surrogates): {key!r}")


def _key_ok(key: object) -> bool:
    if type(key) is not str or not 0 < len(key) <= MAX_KEY_LENGTH or "\x00" in key:
        return False
    if key.isascii():
        return True
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class KVStore(ABC, Generic[V]):
    """An asynchronous key-value store for bot state, generic in the value type.

    Keys are ``str``; values anything the serializer writes (by default JSON plus
    datetime, date, time, timedelta, set, frozenset, tuple, bytes, Decimal and UUID).
    TTLs are seconds (``float``); an expired key is invisible to every read at once.
    Use ``async with store:`` or :meth:`open`/:meth:`close`.

    :param namespace: keys live in this namespace (1-64 of ``[A-Za-z0-9_.-]``); stores
        with other namespaces on the same file or server never see them.
    :param default_ttl: the TTL of writes that give none (None: keys never expire).
    :param serializer: how values become text (see :class:`Serializer`); JSON by default.
    :raises InvalidArgumentError: a bad namespace, default TTL or serializer.
    """

    #: Memory stores set this: immutable values are kept as themselves, not as text.
    _keeps_objects: bool = False
    #: Driver exceptions the primitives may raise; the base turns them into BackendError.
    _driver_errors: tuple[type[BaseException], ...] = ()

    def __init__(
        self,
        *,
        namespace: str | None = None,
        default_ttl: float | None = None,
        serializer: Serializer | None = None,
    ) -> None:
        self.namespace = check_namespace(namespace)
        self.default_ttl = None if default_ttl is None else check_ttl(default_ttl, "default_ttl")
        if serializer is not None and not isinstance(serializer, Serializer):
            raise InvalidArgumentError(
                "serializer must have dumps(value) -> str and loads(str) -> value"
            )
        self.serializer: Serializer = JSON if serializer is None else serializer
        self._plain = self._keeps_objects and serializer is None
        self._opened = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}(namespace={self.namespace!r})"

    # -- primitives -----------------------------------------------------------------

    async def _open(self) -> None:
        """Connect, create tables and indexes. Called by :meth:`open`."""

    async def _close(self) -> None:
        """Release what :meth:`_open` took. Called by :meth:`close`, also after a failed open."""

    def _get_now(self, key: str) -> Record | Literal[_Keep.KEEP] | None:
        """Answer :meth:`_get` synchronously if that is cheap, else return ``KEEP``.

        Lets memory (and an indexed SQLite read) skip a coroutine hop.
        """
        return KEEP

    @abstractmethod
    async def _get(self, key: str) -> Record | None:
        """Return the key's record (expired ones may be returned), or None if absent."""

    async def _peek(self, key: str) -> Record | None:
        """Like :meth:`_get`, for ``has``: the value may be left out (``""``), no LRU bump."""
        return await self._get(key)

    @abstractmethod
    async def _set(self, key: str, raw: Raw, expires: float | None) -> None:
        """Store ``raw`` under ``key`` with this expiry, replacing whatever was there."""

    @abstractmethod
    async def _delete(self, key: str) -> Record | None:
        """Remove the key; return its record (value may be ``""``) or None if it was absent."""

    @abstractmethod
    async def _touch(self, key: str, expires: float | None, now: float) -> bool:
        """Give a key that is live at ``now`` this expiry; return whether it was live."""

    @abstractmethod
    async def _cas(
        self,
        key: str,
        expected: Raw | None,
        raw: Raw,
        expires: float | Literal[_Keep.KEEP] | None,
        now: float,
    ) -> bool:
        """Atomically store ``raw`` if the live value equals ``expected`` (None: no live value).

        ``expires=KEEP`` keeps the key's expiry. Return whether it was stored.
        """

    @abstractmethod
    async def _increment(
        self, key: str, amount: int, expires: float | None, reset: bool, now: float
    ) -> int:
        """Atomically add ``amount`` to the live integer (absent or expired: 0); return it.

        A key created here gets ``expires``; an existing one keeps its expiry unless
        ``reset``. Raise :class:`NotACounterError` for a value that is not an int64.
        """

    @abstractmethod
    def _scan(
        self, pattern: Pattern, values: bool, now: float
    ) -> AsyncIterator[list[tuple[str, Raw | None, float | None]]]:
        """Yield batches of ``(key, raw or None, expiry)`` whose keys may match ``pattern``.

        Never load everything at once on a server. Raw is None when ``values`` is false.
        The base filters by the pattern and expiry again.
        """

    @abstractmethod
    async def _clear(self, now: float) -> int:
        """Remove every key of the namespace; return how many were live at ``now``."""

    async def _health(self) -> bool:
        """Ask the backend whether it works (a ping); raising counts as unhealthy."""
        return True

    def _translate(self, exc: BaseException) -> StorageError:
        """Turn a driver exception into our error (override for disk-full and the like)."""
        return BackendError(f"{self!r}: {type(exc).__name__}: {exc}")

    # -- lifecycle ------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """Whether :meth:`open` succeeded and :meth:`close` has not been called since."""
        return self._opened

    async def open(self) -> None:
        """Open the store; a second call while open does nothing.

        :raises BackendError: the backend cannot be reached or set up.
        """
        if self._opened:
            return
        try:
            await self._open()
        except StorageError:
            await self._quiet_close()
            raise
        except self._driver_errors as exc:
            await self._quiet_close()
            raise self._translate(exc) from exc
        self._opened = True

    async def _quiet_close(self) -> None:
        with contextlib.suppress(Exception):  # the open's error is the one to report
            await self._close()

    async def close(self) -> None:
        """Close the store; writes that returned are stored. Closing twice is harmless."""
        if not self._opened:
            return
        self._opened = False
        try:
            await self._close()
        except self._driver_errors as exc:
            raise self._translate(exc) from exc

    async def __aenter__(self: S) -> S:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _closed(self) -> StorageClosedError:
        return StorageClosedError(f"{self!r} is closed; call open() first")

    # -- values ---------------------------------------------------------------------

    def _encode(self, key: str, value: Any) -> Raw:
        kind = type(value)
        if kind is int and INT64_MIN <= value <= INT64_MAX:
            return value  # type: ignore[no-any-return]
        if self._plain and kind in _PLAIN_TYPES:
            return Plain(value)
        try:
            text = self.serializer.dumps(value)
        except UnsupportedType as exc:
            raise KVSerializationError(
                f"cannot store key {key!r}: its value holds a {exc.kind.__qualname__} "
                f"({exc.kind.__module__}), which the JSON serializer does not know; "
                "convert it, or pass serializer=",
                key=key,
                type_name=exc.kind.__qualname__,
            ) from None
        except (TypeError, ValueError, OverflowError, RecursionError) as exc:
            raise KVSerializationError(
                f"cannot store key {key!r}: {type(value).__qualname__} value: {exc}",
                key=key,
                type_name=type(value).__qualname__,
            ) from exc
        if type(text) is str and self.serializer is not JSON and _INT_TEXT.fullmatch(text):
            # Redis would read it back as a counter; refuse it everywhere alike.
            raise KVSerializationError(
                f"cannot store key {key!r}: the serializer wrote {type(value).__qualname__} "
                "as an integer literal, which stores reserve for integers",
                key=key,
                type_name=type(value).__qualname__,
            )
        if type(text) is not str:
            raise KVSerializationError(
                f"cannot store key {key!r}: the serializer returned "
                f"{type(text).__name__}, not str",
                key=key,
                type_name=type(value).__qualname__,
            )
        return text

    def _decode(self, key: str, raw: Raw) -> Any:
        kind = type(raw)
        if kind is str:
            try:
                return self.serializer.loads(raw)  # type: ignore[arg-type]
            except Exception as exc:
                raise CorruptValueError(
                    f"the stored value of key {key!r} cannot be decoded: {exc}"
                ) from exc
        if kind is int:
            return raw
        return raw.value  # type: ignore[union-attr]

    def _expires(self, ttl: object, now: float) -> float | None:
        if ttl is None:
            return None if self.default_ttl is None else now + self.default_ttl
        return now + check_ttl(ttl)

    # -- the contract ---------------------------------------------------------------

    @overload
    async def get(self, key: str) -> V | None: ...

    @overload
    async def get(self, key: str, default: D) -> V | D: ...

    async def get(self, key: str, default: Any = None) -> Any:
        """Return the key's value, or ``default`` if it is absent or expired.

        :raises InvalidKeyError: the key is not a valid key.
        :raises StorageClosedError: the store is not open.
        :raises CorruptValueError: the stored text cannot be decoded.
        :raises BackendError: the backend failed.
        """
        if not _key_ok(key):
            raise _key_problem(key)
        if not self._opened:
            raise self._closed()
        try:
            record = self._get_now(key)
            if record is KEEP:
                record = await self._get(key)
        except self._driver_errors as exc:
            raise self._translate(exc) from exc
        if record is None:
            return default
        raw, expires = record
        if expires is not None and expires <= _now():
            return default
        kind = type(raw)
        if kind is Plain:
            return raw.value  # type: ignore[union-attr]
        if kind is int:
            return raw
        return self._decode(key, raw)

    async def set(self, key: str, value: V, *, ttl: float | None = None) -> None:
        """Store ``value`` under ``key``, replacing any value and expiry.

        :param ttl: seconds until it expires (default: the store's ``default_ttl``).
        :raises InvalidKeyError: a bad key.
        :raises InvalidTTLError: ``ttl`` is not a positive number of seconds.
        :raises KVSerializationError: the value cannot be serialized (nothing is stored).
        :raises StorageClosedError: the store is not open.
        :raises BackendError: the backend failed.
        """
        if not _key_ok(key):
            raise _key_problem(key)
        expires = self._expires(ttl, _now()) if ttl is not None or self.default_ttl else None
        raw = self._encode(key, value)
        if not self._opened:
            raise self._closed()
        try:
            await self._set(key, raw, expires)
        except self._driver_errors as exc:
            raise self._translate(exc) from exc

    async def delete(self, key: str) -> bool:
        """Remove the key; return whether it existed (an expired key did not).

        :raises InvalidKeyError: a bad key.
        :raises StorageClosedError: the store is not open.
        :raises BackendError: the backend failed.
        """
        self._check(key)
        try:
            record = await self._delete(key)
        except self._driver_errors as exc:
            raise self._translate(exc) from exc
        return record is not None and is_live(record[1], _now())

    async def has(self, key: str) -> bool:
        """Return whether the key holds a live value (without counting as a use).

        :raises InvalidKeyError: a bad key.
        :raises StorageClosedError: the store is not open.
        :raises BackendError: the backend failed.
        """
        self._check(key)
        try:
            record = await self._peek(key)
        except self._driver_errors as exc:
            raise self._translate(exc) from exc
        return record is not None and is_live(record[1], _now())

    async def touch(self, key: str, ttl: float | None = None) -> bool:
        """Restart the key's expiry: ``ttl`` (or ``default_ttl``) seconds from now.

        With neither, the key stops expiring. Return False if the key is absent.

        :raises InvalidKeyError: a bad key.
        :raises InvalidTTLError: a bad ``ttl``.
        :raises StorageClosedError: the store is not open.
        :raises BackendError: the backend failed.
        """
        self._check(key)
        now = _now()
        expires = self._expires(ttl, now)
        try:
            return await self._touch(key, expires, now)
        except self._driver_errors as exc:
            raise self._translate(exc) from exc

    async def compare_and_set(
        self,
        key: str,
        value: V,
        *,
        expected: V | Literal[_Missing.MISSING],
        ttl: float | None = None,
    ) -> bool:
        """Store ``value`` only if the key's live value equals ``expected``; atomic.

        ``expected=MISSING`` stores only if the key is absent or expired. Values are
        compared as stored (after serialization), so ``expected`` is the value as
        :meth:`get` returns it. Return whether it was stored.

        :param ttl: as in :meth:`set`; the new value gets it (or ``default_ttl``).
        :raises InvalidKeyError: a bad key.
        :raises KVSerializationError: ``value`` or ``expected`` cannot be serialized.
        :raises StorageClosedError: the store is not open.
        :raises BackendError: the backend failed.
        """
        self._check(key)
        now = _now()
        return await self._compare_and_set(key, value, expected, self._expires(ttl, now))

    async def _compare_and_set(
        self,
        key: str,
        value: Any,
        expected: Any,
        expires: float | Literal[_Keep.KEEP] | None,
    ) -> bool:
        raw = self._encode(key, value)
        wanted = None if expected is MISSING else self._encode(key, expected)
        try:
            if await self._cas(key, wanted, raw, expires, _now()):
                return True
            if wanted is None:
                return False
            # The serializer may write an equal value differently (a custom one, say);
            # retry against the stored text while it still decodes to ``expected``.
            for _ in range(16):
                record = await self._get(key)
                if record is None or not is_live(record[1], _now()):
                    return False
                current = record[0]
                if current == wanted or self._decode(key, current) != expected:
                    return False
                if await self._cas(key, current, raw, expires, _now()):
                    return True
            return False
        except self._driver_errors as exc:
            raise self._translate(exc) from exc

    async def increment(self, key: str, amount: int = 1, *, ttl: float | None = None) -> int:
        """Add ``amount`` to the key's integer (absent or expired counts as 0); atomic.

        A key created here gets ``ttl`` (or ``default_ttl``); an existing one keeps
        its expiry unless ``ttl`` is given. Return the new value.

        :raises InvalidArgumentError: ``amount`` is not an int.
        :raises NotACounterError: the value is not an integer, or would leave int64.
        :raises StorageClosedError: the store is not open.
        :raises BackendError: the backend failed.
        """
        self._check(key)
        if type(amount) is not int:
            raise InvalidArgumentError(f"amount is an int, not {type(amount).__name__}")
        if not INT64_MIN <= amount <= INT64_MAX:
            raise NotACounterError("amount is outside the 64-bit integer range")
        now = _now()
        expires = self._expires(ttl, now)
        try:
            return await self._increment(key, amount, expires, ttl is not None, now)
        except self._driver_errors as exc:
            raise self._translate(exc) from exc

    async def keys(self, pattern: str = "*") -> AsyncIterator[str]:
        """Iterate over the live keys matching the glob ``pattern``, in batches.

        :raises InvalidPatternError: a bad pattern.
        """
        async for key, _, _ in self._records(pattern, values=False):
            yield key

    async def values(self, pattern: str = "*") -> AsyncIterator[V]:
        """Iterate over the values of the live keys matching ``pattern``, in batches."""
        async for key, raw, _ in self._records(pattern, values=True):
            yield self._decode(key, raw)  # type: ignore[arg-type]

    async def items(self, pattern: str = "*") -> AsyncIterator[tuple[str, V]]:
        """Iterate over ``(key, value)`` of the live keys matching ``pattern``, in batches."""
        async for key, raw, _ in self._records(pattern, values=True):
            yield key, self._decode(key, raw)  # type: ignore[arg-type]

    async def _records(
        self, pattern: str, *, values: bool
    ) -> AsyncIterator[tuple[str, Raw | None, float | None]]:
        compiled = compile_pattern(pattern)
        if not self._opened:
            raise self._closed()
        batches = self._scan(compiled, values, _now())
        while True:
            try:
                batch = await anext(batches)
            except StopAsyncIteration:
                return
            except self._driver_errors as exc:
                raise self._translate(exc) from exc
            now = _now()
            for key, raw, expires in batch:
                if (expires is None or expires > now) and compiled.match(key):
                    if values and raw is None:
                        continue  # removed between listing and reading
                    yield key, raw, expires

    async def clear(self) -> int:
        """Remove every key of this store's namespace; return how many were live.

        Other namespaces on the same file or server are untouched.

        :raises StorageClosedError: the store is not open.
        :raises BackendError: the backend failed.
        """
        if not self._opened:
            raise self._closed()
        try:
            return await self._clear(_now())
        except self._driver_errors as exc:
            raise self._translate(exc) from exc

    async def health(self) -> bool:
        """Return whether the store is open and its backend answers; never raises."""
        if not self._opened:
            return False
        try:
            return bool(await self._health())
        except Exception:
            return False

    # -- used by copy() and versioned() ---------------------------------------------

    def _check(self, key: object) -> None:
        if not _key_ok(key):
            raise _key_problem(key)
        if not self._opened:
            raise self._closed()

    async def _put(self, key: str, value: Any, expires: float | None) -> None:
        """Store with an absolute expiry (copy keeps each key's remaining TTL)."""
        self._check(key)
        raw = self._encode(key, value)
        try:
            await self._set(key, raw, expires)
        except self._driver_errors as exc:
            raise self._translate(exc) from exc
