"""Bot state in the process's memory, optionally bounded with LRU eviction."""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any, Literal

from .base import (
    KEEP,
    SOLE_WRITER_KEYS,
    KVStore,
    Merging,
    Plain,
    Raw,
    Record,
    V,
    _Keep,
    add_to_counter,
    is_live,
    scan_entries,
    split_location,
)
from .errors import InvalidArgumentError
from .pattern import Pattern
from .serializer import Serializer

__all__ = ["MemoryKV"]


def _same(stored: Raw, expected: Raw) -> bool:
    if type(stored) is Plain and type(expected) is Plain:
        return type(stored.value) is type(expected.value) and stored.value == expected.value
    return type(stored) is type(expected) and stored == expected


class MemoryKV(KVStore[V]):
    """Bot state in a dict: fast, lost when the process exits, one process only.

    Immutable values (str, int, float, bool, None, bytes) are kept as themselves;
    other values are kept serialized, so the object :meth:`get` returns is a fresh
    copy that changing does not change the store.

    :param max_entries: keep at most this many keys, evicting the least recently used
        (``get``, ``set``, ``increment`` and a successful ``compare_and_set`` count as
        a use; ``has``, ``touch`` and ``delete`` do not). None: unbounded.
    """

    _keeps_objects = True
    _answers_from_memory = True
    persistent = False

    def __init__(
        self,
        max_entries: int | None = None,
        *,
        namespace: str | None = None,
        default_ttl: float | None = None,
        serializer: Serializer | None = None,
        sole_writer: bool = False,
        sole_writer_keys: int = SOLE_WRITER_KEYS,
        commit_interval: float = 0.0,
    ) -> None:
        super().__init__(
            namespace=namespace,
            default_ttl=default_ttl,
            serializer=serializer,
            sole_writer=sole_writer,
            sole_writer_keys=sole_writer_keys,
            commit_interval=commit_interval,
        )
        if max_entries is not None and (type(max_entries) is not int or max_entries < 1):
            raise InvalidArgumentError(f"max_entries must be a positive int, not {max_entries!r}")
        self.max_entries = max_entries
        self._data: dict[str, list[Any]] = OrderedDict() if max_entries is not None else {}
        self._lru = max_entries is not None
        # (expiry, key) of keys written with a TTL; stale entries are skipped when popped.
        self._expiries: list[tuple[float, str]] = []

    @classmethod
    def from_location(cls, location: str, **options: Any) -> MemoryKV[Any]:
        """Build a new, empty store from ``memory:`` (or ``memory:#NAMESPACE``)."""
        body, options = split_location(location, options)
        if body.lower() != "memory:":
            raise InvalidArgumentError(f"{body!r}: a memory: location has no path")
        return cls(**options)

    def __repr__(self) -> str:
        return f"MemoryKV(namespace={self.namespace!r}, max_entries={self.max_entries!r})"

    def __len__(self) -> int:
        return len(self._data)

    def _bump(self, key: str) -> None:
        if self._lru:
            self._data.move_to_end(key)  # type: ignore[attr-defined]

    def _get_now(self, key: str) -> Record | Literal[_Keep.KEEP] | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        if self._lru:
            self._data.move_to_end(key)  # type: ignore[attr-defined]
        return entry[0], entry[1]

    async def _get(self, key: str) -> Record | None:
        found = self._get_now(key)
        assert found is not KEEP
        return found

    async def _peek(self, key: str) -> Record | None:
        entry = self._data.get(key)
        return None if entry is None else (entry[0], entry[1])

    def _store(self, key: str, raw: Raw, expires: float | None) -> None:
        data = self._data
        entry = data.get(key)
        if entry is None:
            data[key] = [raw, expires]
            if self._lru and len(data) > self.max_entries:  # type: ignore[operator]
                data.popitem(last=False)  # type: ignore[call-arg]
        else:
            entry[0] = raw
            entry[1] = expires
            self._bump(key)
        if expires is not None:
            self._expire_later(key, expires)

    def _expire_later(self, key: str, expires: float) -> None:
        heap = self._expiries
        heapq.heappush(heap, (expires, key))
        now = self.clock()
        # Drop what has expired; rebuild when stale entries (rewritten keys) pile up.
        while heap and heap[0][0] <= now:
            _, old = heapq.heappop(heap)
            entry = self._data.get(old)
            if entry is not None and entry[1] is not None and entry[1] <= now:
                del self._data[old]
        if len(heap) > 2 * len(self._data) + 1024:
            self._expiries = [
                (entry[1], name) for name, entry in self._data.items() if entry[1] is not None
            ]
            heapq.heapify(self._expiries)

    async def _set(self, key: str, raw: Raw, expires: float | None) -> None:
        self._store(key, raw, expires)

    async def _delete(self, key: str) -> Record | None:
        entry = self._data.pop(key, None)
        return None if entry is None else (entry[0], entry[1])

    def _live(self, key: str, now: float) -> list[Any] | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        if not is_live(entry[1], now):
            del self._data[key]
            return None
        return entry

    async def _touch(self, key: str, expires: float | None, now: float) -> bool:
        entry = self._live(key, now)
        if entry is None:
            return False
        entry[1] = expires
        if expires is not None:
            self._expire_later(key, expires)
        return True

    async def _cas(
        self,
        key: str,
        expected: Raw | None,
        raw: Raw,
        expires: float | Literal[_Keep.KEEP] | None,
        now: float,
    ) -> bool:
        entry = self._live(key, now)
        if expected is None:
            if entry is not None:
                return False
        elif entry is None or not _same(entry[0], expected):
            return False
        if expires is KEEP:
            expires = None if entry is None else entry[1]
        self._store(key, raw, expires)
        return True

    async def _increment(
        self, key: str, amount: int, expires: float | None, reset: bool, now: float
    ) -> int:
        entry = self._live(key, now)
        if entry is None:
            total = add_to_counter(key, None, amount)
            self._store(key, total, expires)
        else:
            total = add_to_counter(key, entry[0], amount)
            self._store(key, total, expires if reset else entry[1])
        return total

    async def _merge(self, key: str, merging: Merging, expires: float | None, now: float) -> Raw:
        entry = self._live(key, now)
        raw = merging.apply(None if entry is None else entry[0])
        self._store(key, raw, expires)
        return raw

    async def _scan(
        self, pattern: Pattern, values: bool, now: float
    ) -> AsyncIterator[list[tuple[str, Raw | None, float | None]]]:
        async for batch in scan_entries(self._data, pattern.prefix, values):
            yield batch

    async def _clear(self, now: float) -> int:
        live = sum(1 for entry in self._data.values() if is_live(entry[1], now))
        self._data.clear()
        self._expiries.clear()
        return live
