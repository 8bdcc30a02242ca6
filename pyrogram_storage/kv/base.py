"""The bot-state contract: :class:`KVStore`, whose public methods own every rule.

A backend implements the protected primitives (``_get``, ``_set``, ``_cas``…) over
already checked keys and encoded values; the base checks keys, TTLs and patterns,
hides expired keys from every read, serializes values, and (through
:class:`~pyrogram_storage._lifecycle.Lifecycle`, shared with the session half) keeps
the open/closed state and turns whatever a primitive raises into one of this
package's errors. A subclass cannot forget a rule because it never sees a public call.

Encoded values (``Raw``) are ``int`` for integers in the int64 range (so that
``increment`` works on them natively everywhere) and the serializer's text for
everything else. Expiry times are absolute, in seconds since the epoch.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import math
import random
import re
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Generic, Literal, TypeVar, Union, overload

from .._lifecycle import _OPEN, Lifecycle
from ..errors import BackendError
from ..validation import interval
from ._queued import Batch, Queued
from ._remembered import UNKNOWN, Remembered, _Unknown
from .errors import (
    CorruptValueError,
    InvalidArgumentError,
    InvalidKeyError,
    InvalidTTLError,
    KVSerializationError,
    MergeConflictError,
    NotACounterError,
    NotADictError,
)
from .pattern import Pattern, compile_pattern
from .serializer import JSON, Serializer, UnsupportedType, object_members

__all__ = [
    "DEFAULT_NAMESPACE",
    "INT64_MAX",
    "INT64_MIN",
    "KEEP",
    "MAX_KEY_LENGTH",
    "MAX_TTL",
    "MISSING",
    "SOLE_WRITER_KEYS",
    "Entry",
    "KVStore",
    "Merging",
    "Plain",
    "Raw",
    "Record",
    "add_to_counter",
    "is_live",
]

V = TypeVar("V")
D = TypeVar("D")
T = TypeVar("T")
S = TypeVar("S", bound="KVStore[Any]")


class _Missing(enum.Enum):
    """The type of :data:`MISSING` (a one-member enum, so type checkers can narrow it)."""

    MISSING = "MISSING"

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing.MISSING
"""``compare_and_set(..., expected=MISSING)``: set only if the key is absent (or expired)."""


class _Keep(enum.Enum):
    """The type of :data:`KEEP`."""

    KEEP = "KEEP"


KEEP: Final = _Keep.KEEP
"""An expiry argument meaning "leave the key's expiry as it is"."""


class Plain:
    """An immutable value kept as the object itself (memory stores), never serialized."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


Raw = Union[str, int, Plain]  # noqa: UP007 (a runtime alias, Python 3.10)
"""What a primitive stores for a value: an ``int`` counter, or the serializer's text."""
Record = tuple[Raw, float | None]
"""A stored value and its absolute expiry (None: never)."""

MAX_KEY_LENGTH = 512
"""The longest key accepted, in characters."""
MAX_TTL = 100 * 365.25 * 86400.0
"""The longest TTL accepted (a hundred years), so every backend can represent the date."""
#: The range of a counter: ``increment`` past either end raises.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
SOLE_WRITER_KEYS = 10_000
"""Keys a ``sole_writer=True`` store remembers unless told otherwise (the least
recently used are forgotten first)."""
DEFAULT_NAMESPACE = "default"
"""The namespace of a store built without ``namespace=``."""
_NAMESPACE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_INT_TEXT = re.compile(r"-?[0-9]+")
_PLAIN_TYPES = frozenset({str, float, bool, type(None), bytes})
_MERGE_ATTEMPTS = 100


@dataclass(frozen=True)
class Entry(Generic[V]):
    """One live key as :meth:`KVStore.records` yields it and :meth:`KVStore.put` takes it.

    :param key: the key.
    :param value: its value, decoded.
    :param expires: when it expires, in seconds since the epoch (None: never).
    """

    key: str
    value: V
    expires: float | None = None


def is_live(expires: float | None, now: float) -> bool:
    """Whether a record with this expiry is visible at ``now``."""
    return expires is None or expires > now


def _is_time(value: object) -> bool:
    return type(value) is float or type(value) is int


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


def split_location(location: str, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Split ``LOCATION#NAMESPACE``; the namespace joins ``options`` (``#`` alone: default).

    :raises InvalidArgumentError: a namespace both in the location and in ``options``.
    """
    body, sep, fragment = location.partition("#")
    if sep and fragment:
        if "namespace" in options:
            raise InvalidArgumentError(
                "give the namespace in the location or as namespace=, not both"
            )
        options = {**options, "namespace": fragment}
    return body, options


def path_of(body: str, schemes: tuple[str, ...], example: str) -> str:
    """The path of ``SCHEME:PATH`` (or of a bare ``PATH``) for a file store.

    :raises InvalidArgumentError: no path after the scheme.
    """
    scheme, colon, rest = body.partition(":")
    path = rest if colon and scheme.lower() in schemes else body
    if not path:
        raise InvalidArgumentError(f"{body!r} needs a path, e.g. {example}")
    return path


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


class KVStore(Lifecycle, ABC, Generic[V]):
    """An asynchronous key-value store for bot state, generic in the value type.

    Keys are ``str``; values anything the serializer writes (by default JSON plus
    datetime, date, time, timedelta, set, frozenset, tuple, bytes, Decimal and UUID).
    TTLs are seconds (``float``); an expired key is invisible to every read at once.
    Use ``async with store:`` or :meth:`open`/:meth:`close`. Every public method raises
    only this package's errors (:class:`~pyrogram_storage.errors.StorageError`); what a
    backend's driver raises becomes :class:`~pyrogram_storage.errors.BackendError`.

    :param namespace: keys live in this namespace (1-64 of ``[A-Za-z0-9_.-]``); stores
        with other namespaces on the same file or server never see them.
    :param default_ttl: the TTL of writes that give none (None: keys never expire).
    :param serializer: how values become text (see :class:`Serializer`); JSON by default.
    :param sole_writer: promise that while this object is open no other object or
        process writes its namespace's keys. It then remembers the records it wrote or
        read (up to ``sole_writer_keys`` keys, the least recently used forgotten
        first) and answers ``get`` and ``has`` of those keys from memory, expiry
        included; every write still goes to the backend. Off by default: leave it
        off when several processes (or store objects) write the same keys, or
        another's writes are not seen. Stores that keep everything in memory anyway
        (``MemoryKV``, ``JSONFileKV``) accept it and change nothing.
    :param sole_writer_keys: how many keys a sole writer remembers.
    :param commit_interval: (only with ``sole_writer=True``) seconds within which
        ``set``, ``delete`` and ``merge`` are stored. 0 (the default): each is stored
        before it returns. Above 0, they are visible to this store's reads at once,
        stored within ``commit_interval`` seconds, coalesced per key, in call order,
        and at :meth:`flush` and :meth:`close`; TTLs count from the call. Every other
        operation stores what is pending first. A crash loses at most the last
        ``commit_interval`` seconds of writes. A batch that cannot be stored stays
        pending (and is retried): :meth:`flush` and later writes raise
        :class:`BackendError` until it is stored.
    :raises InvalidArgumentError: a bad namespace, default TTL, serializer or option,
        or ``commit_interval`` above 0 without ``sole_writer=True``.
    """

    #: Memory stores set this: immutable values are kept as themselves, not as text.
    _keeps_objects: bool = False
    requires: ClassVar[str | None] = None
    """The kind of server the backend needs ("mongodb", "redis"), or None."""
    expires_by_server_clock: ClassVar[bool] = False
    """Whether keys expire by the server's own clock (Redis), which :attr:`clock` cannot move."""
    persistent: bool = True
    """Whether a new object built the same way reaches the data this one wrote."""
    exclusive: bool = False
    """Whether only one object at a time may have the store open (:class:`StoreLockedError`)."""
    creates_files: ClassVar[bool] = False
    """Whether opening creates a file that is missing; such a store takes ``create=False``."""
    _answers_from_memory: ClassVar[bool] = False
    """Whether every read is answered from memory already (``sole_writer`` adds nothing)."""

    def __init__(
        self,
        *,
        namespace: str | None = None,
        default_ttl: float | None = None,
        serializer: Serializer | None = None,
        sole_writer: bool = False,
        sole_writer_keys: int = SOLE_WRITER_KEYS,
        commit_interval: float = 0.0,
    ) -> None:
        super().__init__()
        self._commit_interval = 0.0
        self._queued: Queued | None = None
        self.namespace = check_namespace(namespace)
        self.default_ttl = None if default_ttl is None else check_ttl(default_ttl, "default_ttl")
        if serializer is not None and not isinstance(serializer, Serializer):
            raise InvalidArgumentError(
                "serializer must have dumps(value) -> str and loads(str) -> value"
            )
        self.serializer: Serializer = JSON if serializer is None else serializer
        self._plain = self._keeps_objects and serializer is None
        self.clock: Callable[[], float] = time.time
        """Where "now" comes from, in seconds since the epoch; tests give a fake clock."""
        if type(sole_writer_keys) is not int or sole_writer_keys < 1:
            raise InvalidArgumentError(
                f"sole_writer_keys must be a positive int, not {sole_writer_keys!r}"
            )
        self.sole_writer_keys = sole_writer_keys
        self._memory: Remembered | None = None
        self.sole_writer = sole_writer
        self.commit_interval = commit_interval

    @property
    def sole_writer(self) -> bool:
        """Whether the store remembers what it wrote and read (see the class); may be
        changed at any time (memory starts empty).

        :raises InvalidArgumentError: not a bool.
        """
        return self._sole_writer

    @sole_writer.setter
    def sole_writer(self, value: bool) -> None:
        if type(value) is not bool:
            raise InvalidArgumentError(f"sole_writer must be a bool, not {value!r}")
        if not value and self._commit_interval > 0:
            raise InvalidArgumentError(
                "a store with a commit_interval above 0 must stay sole_writer=True; "
                "set commit_interval to 0 first"
            )
        if not value and self._queued is not None and self._queued.busy:
            raise InvalidArgumentError(
                "writes made with a commit_interval are not stored yet; flush() first"
            )
        self._sole_writer = value
        remembers = value and not self._answers_from_memory
        self._memory = Remembered(self.sole_writer_keys) if remembers else None

    @property
    def commit_interval(self) -> float:
        """Seconds within which a sole writer's ``set``, ``delete`` and ``merge`` are
        stored (0: before they return; see the class). May be changed at any time;
        writes already pending are stored as before.

        :raises InvalidArgumentError: not a finite number of seconds, at least 0, or
            above 0 on a store that is not ``sole_writer=True``.
        """
        return self._commit_interval

    @commit_interval.setter
    def commit_interval(self, value: float) -> None:
        try:
            seconds = interval(value, "commit_interval")
        except (TypeError, ValueError) as exc:
            raise InvalidArgumentError(str(exc)) from None
        if seconds > 0 and not self._sole_writer:
            raise InvalidArgumentError(
                "commit_interval above 0 needs sole_writer=True: writes that are not "
                "stored yet are only visible to this store's own memory"
            )
        self._commit_interval = seconds
        queued = self._queued
        if queued is not None:
            queued.interval = seconds
        elif seconds > 0 and not self._answers_from_memory:
            self._queued = Queued(
                self._store_batch,
                seconds,
                lock=lambda: self._lock_pair()[1],
                is_open=lambda: self._state == _OPEN,
                owner=lambda: repr(self),
            )

    def _queueing(self) -> Queued | None:
        """The queue, when writes go through it (a sole writer with a commit_interval)."""
        if self._commit_interval > 0 and self._memory is not None:
            return self._queued
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(namespace={self.namespace!r})"

    @classmethod
    def from_location(cls, location: str, **options: Any) -> KVStore[Any]:
        """Build the store a location names (see :func:`pyrogram_storage.kv.from_url`).

        :raises InvalidArgumentError: ``location`` is not one of this backend's.
        """
        raise InvalidArgumentError(f"{cls.__name__} cannot be built from a location")

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

    async def _get_exact(self, key: str) -> Record | None:
        """Like :meth:`_get`, with the key's exact expiry: what a sole writer remembers.

        For a backend whose :meth:`_get` leaves the expiry out because the server hides
        expired keys itself (Redis); this default is :meth:`_get`.
        """
        return await self._get(key)

    async def _peek(self, key: str) -> Record | None:
        """Like :meth:`_get`, for ``has``: the value may be left out (``""``), no LRU bump."""
        return await self._get(key)

    @abstractmethod
    async def _set(self, key: str, raw: Raw, expires: float | None) -> None:
        """Store ``raw`` under ``key`` with this expiry, replacing whatever was there."""

    @abstractmethod
    async def _delete(self, key: str) -> Record | None:
        """Remove the key; return its record (value may be ``""``) or None if it was absent."""

    async def _write_many(self, writes: list[tuple[str, Record | None]]) -> None:
        """Store each key's record (None: delete the key); each key appears once.

        For the pending writes of a ``commit_interval``; expiries are in the future.
        This default calls :meth:`_set` and :meth:`_delete` in order; a backend that
        writes a batch in one round trip, atomically, overrides it (a crash then
        leaves a prefix of the writes).
        """
        for key, record in writes:
            if record is None:
                await self._delete(key)
            else:
                await self._set(key, record[0], record[1])

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

    async def _merge(self, key: str, merging: Merging, expires: float | None, now: float) -> Raw:
        """Atomically store ``merging.apply(raw)``, ``raw`` the live value (None: none).

        The new value gets ``expires``; return it as stored. This default is a read and
        a compare-and-set, retried while other writers get in between (raising
        :class:`MergeConflictError` after 100 attempts). A backend that merges in one
        round trip overrides it: in its own transaction, or on the server by splicing
        :attr:`Merging.members` into the stored text, returning the text it stored
        (where it cannot, say for a value that is not a plain JSON object, it calls
        this default, which raises the right error). The server's work grows with the
        stored dict's text, as a read and a write of it would.
        """
        for attempt in range(_MERGE_ATTEMPTS):
            record = await self._get(key)
            current = None
            if record is not None and self._unexpired(key, record[1], now):
                current = record[0]
            raw = merging.apply(current)
            if await self._cas(key, current, raw, expires, now):
                return raw
            # Another writer got in between: step aside for a random moment, longer
            # after each loss, so that many contenders spread out instead of colliding.
            await asyncio.sleep(random.random() * min(0.25, 0.0005 * 2**attempt))
            now = self.clock()
        raise MergeConflictError(
            f"merge: the value of key {key!r} changed {_MERGE_ATTEMPTS} times while this "
            "merge was being applied; nothing was written"
        )

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

    async def _ping(self) -> None:
        """Raise if the backend does not answer a trivial query (for :meth:`health`)."""

    # -- lifecycle ------------------------------------------------------------------

    async def open(self) -> None:
        """Open the store; a second call while open does nothing.

        :raises BackendError: the backend cannot be reached or set up.
        :raises StoreLockedError: another object holds a single-writer store open.
        :raises CorruptStoreError: the stored data cannot be read (it is left untouched).
        """
        await super().open()

    async def _opening(self) -> None:
        if self._memory is not None:
            self._memory.forget()
        await self._call("open the store", self._open())

    async def close(self) -> None:
        """Close the store; writes that returned are stored. Closing twice is harmless.

        :raises BackendError: pending writes (``commit_interval``) could not be stored
            (the store is closed anyway; they are lost).
        """
        await super().close()

    async def flush(self) -> None:
        """Store the writes still pending (``commit_interval``); nothing to do otherwise.

        :raises StorageClosedError: the store is not open.
        :raises BackendError: they could not be stored; they stay pending (visible to
            reads) and are retried by the next flush, the timer or :meth:`close`.
        """
        self._check_open()
        queued = self._queued
        if queued is not None and queued.busy:
            await queued.store()

    async def _settle(self) -> None:
        """Store what is pending, before an operation that does not go through the queue."""
        queued = self._queued
        if queued is not None and queued.busy:
            await queued.store()

    async def _store_batch(self, batch: Batch) -> None:
        now = self.clock()
        writes: list[tuple[str, Record | None]] = []
        for key, record in batch.items():
            if record is not None and record[1] is not None and not record[1] > now + 0.001:
                record = None  # its deadline passed while it waited: the key is gone
            writes.append((key, record))
        await self._call("store pending writes", self._write_many(writes))

    async def _closing(self) -> None:
        failure: BaseException | None = None
        queued = self._queued
        if queued is not None:
            await queued.stop()
            try:
                await queued.store(explain=False)
            except BackendError as exc:
                failure = exc
            queued.clear()
        if self._memory is not None:
            self._memory.forget()
        await self._call("close the store", self._close())
        if failure is not None:
            raise BackendError(
                f"{self!r}: writes made before close() could not be stored and are lost "
                f"(the store is closed): {failure}"
            ) from failure

    # -- the sole writer's memory ---------------------------------------------------

    async def _remember(
        self,
        what: str,
        key: str,
        operation: Awaitable[T],
        outcome: Callable[[T, Record | _Unknown | None], Record | _Unknown | None],
    ) -> T:
        """Run a write of ``key``; a sole writer then remembers ``outcome(result, the
        record remembered before)`` (:data:`UNKNOWN`: forget the key)."""
        memory = self._memory
        if memory is None:
            return await self._call(what, operation)
        before = memory.peek(key)
        memory.start(key)
        left: Record | _Unknown | None = UNKNOWN
        try:
            result = await self._call(what, operation)
            left = outcome(result, before)
            return result
        finally:
            memory.finish(key, left)

    async def _read_remembering(self, memory: Remembered, key: str) -> Record | None:
        news = memory.news
        found: Record | Literal[_Keep.KEEP] | None = self._call_now(
            "read a key", self._get_now, key
        )
        record = await self._call("read a key", self._get_exact(key)) if found is KEEP else found
        memory.read(key, news, record)
        return record

    async def _enqueue(
        self, queued: Queued, memory: Remembered, key: str, record: Record | None
    ) -> None:
        """Queue a write (``commit_interval``): memory has it at once, the timer stores it."""
        if queued.failure is not None:
            raise queued.failed_error() from queued.failure
        memory.start(key)  # reads racing this write do not keep what they found
        memory.finish(key, record)
        await queued.add(key, record)

    # -- values ---------------------------------------------------------------------

    def _encode(self, key: str, value: Any) -> Raw:
        kind = type(value)
        if kind is int and INT64_MIN <= value <= INT64_MAX:
            return value  # type: ignore[no-any-return]
        if self._plain and kind in _PLAIN_TYPES:
            if kind is str and not _storable(value):
                raise _surrogates(key, value)
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
        except Exception as exc:
            raise KVSerializationError(
                f"cannot store key {key!r}: {type(value).__qualname__} value: {exc}",
                key=key,
                type_name=type(value).__qualname__,
            ) from exc
        if type(text) is not str:
            raise KVSerializationError(
                f"cannot store key {key!r}: the serializer returned {type(text).__name__}, not str",
                key=key,
                type_name=type(value).__qualname__,
            )
        if self.serializer is not JSON and _INT_TEXT.fullmatch(text):
            # Redis would read it back as a counter; refuse it everywhere alike.
            raise KVSerializationError(
                f"cannot store key {key!r}: the serializer wrote {type(value).__qualname__} "
                "as an integer literal, which stores reserve for integers",
                key=key,
                type_name=type(value).__qualname__,
            )
        if not _storable(text):
            raise _surrogates(key, value)
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
        if kind is Plain:
            return raw.value  # type: ignore[union-attr]
        raise CorruptValueError(
            f"the stored value of key {key!r} is {kind.__name__}, not text or an integer: "
            "not written by this library; it was left untouched"
        )

    def _unexpired(self, key: str, expires: object, now: float) -> bool:
        """Whether a stored expiry is still ahead of ``now``; a damaged one is an error."""
        if expires is None:
            return True
        if not _is_time(expires) or expires != expires:  # NaN: not a time either
            raise CorruptValueError(
                f"the stored expiry of key {key!r} is {expires!r}, not a number of seconds: "
                "not written by this library; it was left untouched"
            )
        return expires > now  # type: ignore[operator]

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
        :raises CorruptValueError: the stored value cannot be decoded.
        :raises BackendError: the backend failed.
        """
        if not _key_ok(key):
            raise _key_problem(key)
        if self._state != _OPEN:
            raise self._closed_error()
        memory = self._memory
        if memory is None:
            found: Record | Literal[_Keep.KEEP] | None = self._call_now(
                "read a key", self._get_now, key
            )
            record = await self._call("read a key", self._get(key)) if found is KEEP else found
        else:
            queued = self._queued
            remembered = UNKNOWN if queued is None else queued.find(key)
            if remembered is UNKNOWN:
                remembered = memory.recall(key)
            if remembered is UNKNOWN:
                record = await self._read_remembering(memory, key)
            else:
                record = remembered  # type: ignore[assignment]
        if record is None:
            return default
        raw, expires = record
        if expires is not None and not self._unexpired(key, expires, self.clock()):
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
        expires = self._expires(ttl, self.clock()) if ttl is not None or self.default_ttl else None
        raw = self._encode(key, value)
        if self._state != _OPEN:
            raise self._closed_error()
        if self._memory is None:
            await self._call("store a key", self._set(key, raw, expires))
        elif (queued := self._queueing()) is not None:
            await self._enqueue(queued, self._memory, key, (raw, expires))
        else:
            await self._settle()
            await self._remember(
                "store a key", key, self._set(key, raw, expires), lambda _, __: (raw, expires)
            )

    async def put(self, entry: Entry[V]) -> bool:
        """Store an entry as :meth:`records` yields it: its value and absolute expiry.

        ``expires=None`` means the key never expires, whatever ``default_ttl`` says (so
        a copy keeps each key as it was). Return False, storing nothing, for an entry
        that has expired already.

        :raises InvalidArgumentError: ``entry`` is not an :class:`Entry`, or its expiry
            is not a number of seconds since the epoch.
        :raises InvalidTTLError: it expires more than :data:`MAX_TTL` seconds from now.
        :raises KVSerializationError: the value cannot be serialized (nothing is stored).
        :raises StorageClosedError: the store is not open.
        :raises BackendError: the backend failed.
        """
        if not isinstance(entry, Entry):
            raise InvalidArgumentError(f"put() takes an Entry, not {type(entry).__name__}")
        key, expires = entry.key, entry.expires
        if not _key_ok(key):
            raise _key_problem(key)
        now = self.clock()
        if expires is not None:
            if not _is_time(expires) or math.isnan(expires):
                raise InvalidArgumentError(
                    f"an entry's expiry is seconds since the epoch or None, not {expires!r}"
                )
            if expires - now > MAX_TTL:
                raise InvalidTTLError(f"an entry may expire at most {MAX_TTL:.0f} seconds from now")
        raw = self._encode(key, entry.value)
        self._check_open()
        if expires is not None and expires <= now:
            return False
        await self._settle()
        await self._remember(
            "store a key", key, self._set(key, raw, expires), lambda _, __: (raw, expires)
        )
        return True

    async def delete(self, key: str) -> bool:
        """Remove the key; return whether it existed (an expired key did not).

        A key whose stored data is damaged is removed too (and counts as existing):
        deleting is the way to get rid of it.

        :raises InvalidKeyError: a bad key.
        :raises StorageClosedError: the store is not open.
        :raises BackendError: the backend failed.
        """
        self._check(key)
        queued = self._queueing()
        if queued is not None:
            known = queued.find(key)
            memory = self._memory
            if known is UNKNOWN and memory is not None:
                known = memory.peek(key)
            if known is not UNKNOWN:
                await self._enqueue(queued, memory, key, None)  # type: ignore[arg-type]
                if known is None:
                    return False
                expires = known[1]  # type: ignore[index]
                return expires is None or not _is_time(expires) or expires > self.clock()
        await self._settle()
        record = await self._remember("delete a key", key, self._delete(key), _absent)
        if record is None:
            return False
        expires = record[1]
        # A damaged expiry (not a number, NaN) counts as existing: the key was removed.
        return expires is None or not _is_time(expires) or not expires <= self.clock()

    async def has(self, key: str) -> bool:
        """Return whether the key holds a live value (without counting as a use).

        :raises InvalidKeyError: a bad key.
        :raises StorageClosedError: the store is not open.
        :raises BackendError: the backend failed.
        """
        self._check(key)
        memory = self._memory
        queued = self._queued
        remembered = UNKNOWN if queued is None else queued.find(key)
        if remembered is UNKNOWN and memory is not None:
            remembered = memory.peek(key)
        if remembered is UNKNOWN:
            record = await self._call("read a key", self._peek(key))
        else:
            record = remembered  # type: ignore[assignment]
        return record is not None and self._unexpired(key, record[1], self.clock())

    async def touch(self, key: str, ttl: float | None = None) -> bool:
        """Restart the key's expiry: ``ttl`` (or ``default_ttl``) seconds from now.

        With neither, the key stops expiring. Return False if the key is absent.

        :raises InvalidKeyError: a bad key.
        :raises InvalidTTLError: a bad ``ttl``.
        :raises StorageClosedError: the store is not open.
        :raises BackendError: the backend failed.
        """
        self._check(key)
        now = self.clock()
        expires = self._expires(ttl, now)

        def outcome(live: bool, before: Record | _Unknown | None) -> Record | _Unknown | None:
            if live and type(before) is tuple:
                return before[0], expires
            return UNKNOWN

        await self._settle()
        return await self._remember(
            "change a key's expiry", key, self._touch(key, expires, now), outcome
        )

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
        :raises InvalidTTLError: a bad ``ttl``.
        :raises KVSerializationError: ``value`` or ``expected`` cannot be serialized.
        :raises CorruptValueError: the stored value cannot be decoded to compare it.
        :raises StorageClosedError: the store is not open.
        :raises BackendError: the backend failed.
        """
        self._check(key)
        return await self._compare_and_set(key, value, expected, self._expires(ttl, self.clock()))

    async def _compare_and_set(
        self,
        key: str,
        value: Any,
        expected: Any,
        expires: float | Literal[_Keep.KEEP] | None,
    ) -> bool:
        """:meth:`compare_and_set` with an absolute expiry (``KEEP``: the key's own).

        For the package's wrappers (:func:`~pyrogram_storage.kv.versioned.versioned`, the
        framework adapters).
        """
        raw = self._encode(key, value)
        wanted = None if expected is MISSING else self._encode(key, expected)
        await self._settle()
        if self._memory is None:
            return await self._compare_and_set_raw(key, expected, raw, wanted, expires)
        now = self.clock()

        def outcome(stored: bool, before: Record | _Unknown | None) -> Record | _Unknown | None:
            if not stored:
                return UNKNOWN
            if expires is not KEEP:
                return raw, expires
            if wanted is None:
                return raw, None  # created: no expiry to keep
            if type(before) is tuple and (before[1] is None or before[1] > now):
                return raw, before[1]
            return UNKNOWN

        return await self._remember(
            "compare and set a key",
            key,
            self._compare_and_set_raw(key, expected, raw, wanted, expires),
            outcome,
        )

    async def _compare_and_set_raw(
        self,
        key: str,
        expected: Any,
        raw: Raw,
        wanted: Raw | None,
        expires: float | Literal[_Keep.KEEP] | None,
    ) -> bool:
        now = self.clock()
        if await self._call("compare and set a key", self._cas(key, wanted, raw, expires, now)):
            return True
        if wanted is None:
            return False
        # The serializer may write an equal value differently (a custom one, say);
        # retry against the stored text while it still decodes to ``expected``.
        for _ in range(16):
            record = await self._call("read a key", self._get(key))
            if record is None or not self._unexpired(key, record[1], self.clock()):
                return False
            current = record[0]
            if current == wanted:
                return False
            decoded = self._decode(key, current)
            if type(decoded) is not type(expected) or decoded != expected:
                return False  # by value and type: True is not 1
            if await self._call(
                "compare and set a key", self._cas(key, current, raw, expires, self.clock())
            ):
                return True
        return False

    async def merge(
        self, key: str, mapping: Mapping[Any, Any], *, ttl: float | None = None
    ) -> dict[Any, Any]:
        """Merge ``mapping`` into the dict stored under ``key``; atomic; return the result.

        The key's live value (absent or expired: ``{}``) becomes ``{**value, **mapping}``
        (a shallow merge, as ``dict.update``), stored as :meth:`set` stores it: with
        ``ttl`` (or ``default_ttl``) replacing its expiry. Merges into one key from any
        number of tasks or processes at once all land. It takes one round trip on
        PostgreSQL, Redis and SQLite (on the servers, with the default serializer),
        none on memory and JSON-file stores; elsewhere a read and a compare-and-set,
        retried on conflict.

        :param mapping: the items to merge, any ``Mapping`` (an empty one rewrites the
            value with its new expiry).
        :param ttl: as in :meth:`set`.
        :raises InvalidKeyError: a bad key.
        :raises InvalidArgumentError: ``mapping`` is not a mapping.
        :raises InvalidTTLError: a bad ``ttl``.
        :raises KVSerializationError: a value cannot be serialized (nothing is stored).
        :raises NotADictError: the live value is not a dict (it is left as it is).
        :raises CorruptValueError: the stored value cannot be decoded.
        :raises MergeConflictError: (no native merge) other writers changed the key 100
            times in a row.
        :raises StorageClosedError: the store is not open.
        :raises BackendError: the backend failed.
        """
        self._check(key)
        if not isinstance(mapping, Mapping):
            raise InvalidArgumentError(f"merge() takes a mapping, not {type(mapping).__name__}")
        now = self.clock()
        expires = self._expires(ttl, now)
        merging = Merging(self, key, mapping)
        memory = self._memory
        queued = self._queueing()
        if queued is not None and memory is not None:
            known = queued.find(key)
            if known is UNKNOWN:
                known = memory.peek(key)
            if known is not UNKNOWN:
                current = None
                if known is not None and self._unexpired(key, known[1], now):  # type: ignore[index]
                    current = known[0]  # type: ignore[index]
                raw = merging.apply(current)
                await self._enqueue(queued, memory, key, (raw, expires))
                return merging.result  # type: ignore[return-value]
        await self._settle()
        if memory is not None:
            before = memory.peek(key)
            if before is None or type(before) is tuple:
                # A sole writer knows the value: merge here, store it if it is still
                # the stored one (a compare-and-set, cheaper than a merge on the server).
                current = None
                if before is not None and self._unexpired(key, before[1], now):
                    current = before[0]
                raw = merging.apply(current)
                stored = await self._remember(
                    "merge into a key",
                    key,
                    self._cas(key, current, raw, expires, now),
                    lambda done, _: (raw, expires) if done else UNKNOWN,
                )
                if stored and merging.result is not None:
                    return merging.result
                merging = Merging(self, key, mapping)
        raw = await self._remember(
            "merge into a key",
            key,
            self._merge(key, merging, expires, now),
            lambda stored, _: (stored, expires),
        )
        result = merging.result
        return merging.decode(raw) if result is None else result

    async def increment(self, key: str, amount: int = 1, *, ttl: float | None = None) -> int:
        """Add ``amount`` to the key's integer (absent or expired counts as 0); atomic.

        A key created here gets ``ttl`` (or ``default_ttl``); an existing one keeps
        its expiry unless ``ttl`` is given. Return the new value.

        :raises InvalidKeyError: a bad key.
        :raises InvalidArgumentError: ``amount`` is not an int.
        :raises InvalidTTLError: a bad ``ttl``.
        :raises NotACounterError: the value is not an integer, or would leave int64.
        :raises StorageClosedError: the store is not open.
        :raises BackendError: the backend failed.
        """
        self._check(key)
        if type(amount) is not int:
            raise InvalidArgumentError(f"amount is an int, not {type(amount).__name__}")
        if not INT64_MIN <= amount <= INT64_MAX:
            raise NotACounterError("amount is outside the 64-bit integer range")
        now = self.clock()
        expires = self._expires(ttl, now)
        reset = ttl is not None

        def outcome(total: int, before: Record | _Unknown | None) -> Record | _Unknown | None:
            if reset or before is None:
                return total, expires
            if type(before) is tuple and before[1] is None:
                return total, None  # kept its (lack of) expiry
            return UNKNOWN

        await self._settle()
        return await self._remember(
            "increment a key", key, self._increment(key, amount, expires, reset, now), outcome
        )

    async def keys(self, pattern: str = "*") -> AsyncIterator[str]:
        """Iterate over the live keys matching the glob ``pattern``, in batches.

        :raises InvalidPatternError: a bad pattern.
        :raises StorageClosedError: the store is not open.
        :raises BackendError: the backend failed.
        """
        async for key, _, _ in self._records(pattern, values=False):
            yield key

    async def values(self, pattern: str = "*") -> AsyncIterator[V]:
        """Iterate over the values of the live keys matching ``pattern``, in batches.

        :raises CorruptValueError: a stored value cannot be decoded.
        """
        async for key, raw, _ in self._records(pattern, values=True):
            yield self._decode(key, raw)  # type: ignore[arg-type]

    async def items(self, pattern: str = "*") -> AsyncIterator[tuple[str, V]]:
        """Iterate over ``(key, value)`` of the live keys matching ``pattern``, in batches.

        :raises CorruptValueError: a stored value cannot be decoded.
        """
        async for key, raw, _ in self._records(pattern, values=True):
            yield key, self._decode(key, raw)  # type: ignore[arg-type]

    async def records(self, pattern: str = "*") -> AsyncIterator[Entry[V]]:
        """Iterate over the live keys matching ``pattern`` as :class:`Entry` objects.

        Each carries its absolute expiry, so :meth:`put` on another store keeps it
        (what :func:`~pyrogram_storage.kv.copy` does).

        :raises InvalidPatternError: a bad pattern.
        :raises CorruptValueError: a stored value cannot be decoded.
        :raises StorageClosedError: the store is not open.
        :raises BackendError: the backend failed.
        """
        async for key, raw, expires in self._records(pattern, values=True):
            yield Entry(key, self._decode(key, raw), expires)  # type: ignore[arg-type]

    async def _records(
        self, pattern: str, *, values: bool
    ) -> AsyncIterator[tuple[str, Raw | None, float | None]]:
        compiled = compile_pattern(pattern)
        self._check_open()
        await self._settle()
        batches = self._scan(compiled, values, self.clock())
        try:
            while True:
                batch = await self._call("list keys", anext(batches, None))
                if batch is None:
                    return
                now = self.clock()
                for key, raw, expires in batch:
                    if not self._unexpired(key, expires, now) or not compiled.match(key):
                        continue
                    if values and raw is None:
                        continue  # removed between listing and reading
                    yield key, raw, expires
        finally:
            aclose = getattr(batches, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):  # the listing's own error, if any, wins
                    await aclose()

    async def clear(self) -> int:
        """Remove every key of this store's namespace; return how many were live.

        Other namespaces on the same file or server are untouched.

        :raises StorageClosedError: the store is not open.
        :raises BackendError: the backend failed.
        """
        self._check_open()
        await self._settle()
        memory = self._memory
        if memory is None:
            return await self._call("clear the namespace", self._clear(self.clock()))
        memory.start_clear()
        try:
            return await self._call("clear the namespace", self._clear(self.clock()))
        finally:
            memory.finish_clear()

    # -- used by the package's wrappers ---------------------------------------------

    def _check(self, key: object) -> None:
        if not _key_ok(key):
            raise _key_problem(key)
        if self._state != _OPEN:
            raise self._closed_error()


class Merging:
    """One :meth:`KVStore.merge` as a backend's :meth:`KVStore._merge` receives it.

    :attr:`text` is the merged mapping alone as stored (what an absent key gets);
    :meth:`apply` merges in Python; :attr:`members` are the pieces a server splices
    into a stored dict's text instead.
    """

    __slots__ = ("_members", "_store", "_text", "items", "key", "result")

    def __init__(self, store: KVStore[Any], key: str, mapping: Mapping[Any, Any]) -> None:
        self._store = store
        self.key = key
        self.items: dict[Any, Any] = dict(mapping)
        self.result: dict[Any, Any] | None = None
        """The merged dict, once :meth:`apply` made it (None after a server merge)."""
        # Made on first use: a merge into a stored dict in Python needs neither.
        self._members: list[tuple[str, str, str]] | Literal[_Keep.KEEP] | None = KEEP
        self._text: Raw | None = None

    @property
    def members(self) -> list[tuple[str, str, str]] | None:
        """``(key, key as JSON, value as JSON)`` of the mapping's items, sorted by key
        (see ``kv.serializer.object_members``), when the store's
        serializer is the default one and the merged dict stays a plain JSON object;
        otherwise None, and the merge must be made in Python.

        :raises KVSerializationError: a value cannot be serialized.
        """
        if self._members is KEEP:
            self._prepare()
        return self._members  # type: ignore[return-value]

    @property
    def text(self) -> Raw:
        """The mapping alone as stored: what an absent key gets.

        :raises KVSerializationError: a value cannot be serialized.
        """
        if self._text is None:
            self._prepare()
        return self._text  # type: ignore[return-value]

    def _prepare(self) -> None:
        store, members = self._store, None
        if store.serializer is JSON:
            with contextlib.suppress(Exception):  # _encode below says what is wrong
                members = object_members(self.items)
        if members is None:
            self._text = store._encode(self.key, self.items)
        else:
            # The serializer's own text for the mapping, from the pieces just made.
            text = "{" + ",".join([name + ":" + value for _, name, value in members]) + "}"
            if not _storable(text):
                raise _surrogates(self.key, self.items)
            self._text = text
        self._members = members

    def apply(self, raw: Raw | None) -> Raw:
        """Return the merged value as stored, given the key's live value (None: none).

        :raises NotADictError: the live value is not a dict.
        :raises CorruptValueError: it cannot be decoded.
        :raises KVSerializationError: the merged dict cannot be serialized.
        """
        if raw is None:
            self.result = dict(self.items)
            return self.text
        store, key = self._store, self.key
        current = store._decode(key, raw)
        if type(current) is not dict:
            raise NotADictError(
                f"merge: the value of key {key!r} is {type(current).__name__}, not a dict; "
                "it was left as it is"
            )
        merged = {**current, **self.items}
        stored = store._encode(key, merged)
        self.result = merged
        return stored

    def decode(self, raw: Raw) -> dict[Any, Any]:
        """The merged dict from the value a server stored.

        :raises CorruptValueError: it is not a dict's text.
        """
        value = self._store._decode(self.key, raw)
        if type(value) is not dict:
            raise CorruptValueError(
                f"merge: the server stored {type(value).__name__} under key {self.key!r}, "
                "not a dict"
            )
        return value


def _absent(result: object, before: object) -> None:
    return None


def _storable(text: str) -> bool:
    """Whether ``text`` can be stored as UTF-8 (no lone surrogates)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _surrogates(key: str, value: Any) -> KVSerializationError:
    return KVSerializationError(
        f"cannot store key {key!r}: its {type(value).__qualname__} value holds a lone "
        "surrogate (half of a UTF-16 pair), which is not text any backend can store; "
        "nothing was stored",
        key=key,
        type_name=type(value).__qualname__,
    )
