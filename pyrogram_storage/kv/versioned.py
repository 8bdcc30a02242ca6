"""Versioned values: ``{v, data}`` envelopes, migrated lazily on read and written back."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Generic, Literal, TypeVar

from .base import KEEP, MISSING, KVStore, _Missing
from .errors import InvalidArgumentError, VersionTooNewError

__all__ = ["VersionedKV", "versioned"]

V = TypeVar("V")
W = TypeVar("W", bound="VersionedKV[Any]")
Migration = Callable[[Any], Any]


def versioned(
    store: KVStore[Any],
    migrations: Mapping[int, Migration] | None = None,
    *,
    current: int | None = None,
) -> VersionedKV[Any]:
    """Wrap ``store`` so its values carry a version and old ones are migrated on read.

    Values are stored as ``{"v": version, "data": value}``; a value without that
    envelope (written before) is version 0. Reading a value of version ``n`` below
    ``current`` runs ``migrations[n + 1]``, ``migrations[n + 2]``… up to ``current``
    and writes the result back (compare-and-set, keeping its TTL, so concurrent
    readers converge on one stored value).

    :param migrations: ``{1: f, 2: g}``: ``f`` turns a version-0 value into version 1…
    :param current: the version written (default: the highest migration, or 0).
    :raises InvalidArgumentError: migrations missing a step, or ``current`` beyond them.
    """
    return VersionedKV(store, migrations or {}, current=current)


class VersionedKV(Generic[V]):
    """A :class:`KVStore` seen through versioned envelopes (see :func:`versioned`)."""

    def __init__(
        self, store: KVStore[Any], migrations: Mapping[int, Migration], *, current: int | None
    ) -> None:
        if not isinstance(store, KVStore):
            raise InvalidArgumentError(f"store must be a KVStore, not {type(store).__name__}")
        steps = dict(migrations)
        for version, step in steps.items():
            if type(version) is not int or version < 1 or not callable(step):
                raise InvalidArgumentError(
                    f"migrations map versions 1, 2, … to callables, not {version!r}: {step!r}"
                )
        top = max(steps, default=0)
        if current is None:
            current = top
        if type(current) is not int or current < 0:
            raise InvalidArgumentError(f"current must be a version (int >= 0), not {current!r}")
        missing = [n for n in range(1, current + 1) if n not in steps]
        if missing:
            raise InvalidArgumentError(f"migrations to versions {missing} are missing")
        if top > current:
            raise InvalidArgumentError(f"migration {top} is beyond current={current}")
        self.store = store
        self.migrations = steps
        self.current = current

    def __repr__(self) -> str:
        return f"versioned({self.store!r}, current={self.current})"

    # -- envelopes ------------------------------------------------------------------

    def _wrap(self, value: Any) -> dict[str, Any]:
        return {"v": self.current, "data": value}

    def _unwrap(self, key: str, stored: Any) -> tuple[int, Any]:
        if type(stored) is dict and len(stored) == 2 and "v" in stored and "data" in stored:
            version = stored["v"]
            if type(version) is int and version >= 0:
                return version, stored["data"]
        return 0, stored

    def _upgrade(self, key: str, version: int, data: Any) -> Any:
        if version > self.current:
            raise VersionTooNewError(
                f"key {key!r} holds version {version}, newer than this code's {self.current}; "
                "upgrade the code (the value was left untouched)"
            )
        for step in range(version + 1, self.current + 1):
            data = self.migrations[step](data)
        return data

    async def _read(self, key: str, stored: Any) -> Any:
        version, data = self._unwrap(key, stored)
        if version == self.current:
            return data
        data = self._upgrade(key, version, data)
        # Written back only if nobody changed it meanwhile; the TTL is kept.
        await self.store._compare_and_set(key, self._wrap(data), stored, KEEP)
        return data

    # -- the contract ---------------------------------------------------------------

    async def open(self) -> None:
        """Open the wrapped store."""
        await self.store.open()

    async def close(self) -> None:
        """Close the wrapped store."""
        await self.store.close()

    async def __aenter__(self: W) -> W:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def get(self, key: str, default: Any = None) -> Any:
        """Return the key's value at the current version (migrating it), or ``default``.

        :raises VersionTooNewError: it was written by newer code.
        """
        stored = await self.store.get(key, MISSING)
        if stored is MISSING:
            return default
        return await self._read(key, stored)

    async def set(self, key: str, value: V, *, ttl: float | None = None) -> None:
        """Store ``value`` at the current version (an envelope ``{"v": N, "data": value}``)."""
        await self.store.set(key, self._wrap(value), ttl=ttl)

    async def delete(self, key: str) -> bool:
        """Remove the key; return whether it existed (as :meth:`KVStore.delete`)."""
        return await self.store.delete(key)

    async def has(self, key: str) -> bool:
        """Return whether the key holds a live value (as :meth:`KVStore.has`)."""
        return await self.store.has(key)

    async def touch(self, key: str, ttl: float | None = None) -> bool:
        """Restart the key's expiry (as :meth:`KVStore.touch`)."""
        return await self.store.touch(key, ttl)

    async def compare_and_set(
        self,
        key: str,
        value: V,
        *,
        expected: V | Literal[_Missing.MISSING],
        ttl: float | None = None,
    ) -> bool:
        """Store ``value`` if the current value (as :meth:`get` returns it) is ``expected``."""
        if expected is MISSING:
            return await self.store.compare_and_set(
                key, self._wrap(value), expected=MISSING, ttl=ttl
            )
        stored = await self.store.get(key, MISSING)
        if stored is MISSING or await self._read(key, stored) != expected:
            return False
        return await self.store.compare_and_set(
            key, self._wrap(value), expected=self._wrap(expected), ttl=ttl
        )

    async def keys(self, pattern: str = "*") -> AsyncIterator[str]:
        """Iterate over the live keys matching ``pattern`` (as :meth:`KVStore.keys`)."""
        async for key in self.store.keys(pattern):
            yield key

    async def values(self, pattern: str = "*") -> AsyncIterator[V]:
        """Iterate over the values at the current version (migrating older ones)."""
        async for _, value in self.items(pattern):
            yield value

    async def items(self, pattern: str = "*") -> AsyncIterator[tuple[str, V]]:
        """Iterate over ``(key, value)`` at the current version (migrating older ones)."""
        async for key, stored in self.store.items(pattern):
            yield key, await self._read(key, stored)

    async def clear(self) -> int:
        """Remove every key of the namespace; return how many were live."""
        return await self.store.clear()

    async def health(self) -> bool:
        """The wrapped store's :meth:`~KVStore.health`."""
        return await self.store.health()
