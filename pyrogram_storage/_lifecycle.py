"""The life of every store, sessions and bot state alike: open, use, close.

:class:`Lifecycle` keeps the open/closed state (``is_open``), makes ``async with``
work, serialises ``open()`` and ``close()`` per event loop, answers ``health()`` by
one rule, and translates whatever a backend raises into this package's errors
(:meth:`Lifecycle._call`). :class:`~pyrogram_storage.Storage` and
:class:`~pyrogram_storage.kv.KVStore` derive from it; their backends only implement
the primitives the subclasses name.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Any, TypeVar

from .errors import BackendError, StorageClosedError, StorageError

__all__ = ["Lifecycle", "opened"]

T = TypeVar("T")
L = TypeVar("L", bound="Lifecycle")

_NEVER, _OPEN, _CLOSED = 0, 1, 2

log = logging.getLogger("pyrogram_storage")


class Lifecycle:
    """Open/closed state, ``async with``, ``health()`` and error translation.

    A subclass implements :meth:`_opening` (connect, read what must be read; raise to
    refuse), :meth:`_closing` (store what is pending, release) and :meth:`_ping`; it
    calls every backend primitive through :meth:`_call`.
    """

    def __init__(self) -> None:
        self._state = _NEVER
        self._epoch = 0  # counts close() calls: "closed under a call" versus a failure
        # Calls under way and calls ended: a watchdog tells a silent backend by them.
        self._waiting = 0
        self._ended = 0
        self._locks: tuple[asyncio.AbstractEventLoop, asyncio.Lock, asyncio.Lock] | None = None

    # -- what subclasses implement --------------------------------------------------------

    async def _opening(self) -> None:
        """Open the store (state is not open yet). On failure, :meth:`_closing` is called."""

    async def _closing(self) -> None:
        """Close the store; the state is closed already, later calls are refused."""

    async def _clean_exit(self) -> None:
        """What ``async with`` does on leaving without an exception, before closing."""

    async def _ping(self) -> None:
        """Raise if the store does not answer a trivial query."""

    def _abandon(self) -> bool:
        """Release what the store holds, synchronously, from any thread: its event loop
        has ended while it was open. Return False (and change nothing) if it has writes
        not stored yet or work under way; the default cannot release anything."""
        return False

    def _translate(self, what: str, exc: Exception) -> StorageError:
        """Turn what a primitive raised (not one of our errors) into one of ours."""
        return BackendError(f"{type(self).__name__} failed to {what}: {exc}")

    # -- the public lifecycle ---------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """Whether :meth:`open` succeeded and :meth:`close` has not begun since."""
        return self._state == _OPEN

    async def open(self) -> None:
        """Open the store; opening an open store does nothing.

        :raises BackendError: the backend cannot be reached or set up.
        """
        if self._state == _OPEN:
            return
        transition, _ = self._lock_pair()
        async with transition:
            if self._state == _OPEN:
                return
            try:
                await self._opening()
                self._state = _OPEN
                await self._opened()
            except BaseException:
                self._state = _CLOSED
                self._epoch += 1
                with contextlib.suppress(Exception):  # the open's error is the one to report
                    await self._closing()
                raise

    async def _opened(self) -> None:
        """Run once the state is open, still under the transition lock (may raise)."""

    async def close(self) -> None:
        """Close the store; closing a closed store does nothing. It can be opened again."""
        if self._state != _OPEN:
            return
        transition, _ = self._lock_pair()
        async with transition:
            if self._state != _OPEN:
                return
            self._state = _CLOSED
            self._epoch += 1
            await self._closing()

    async def health(self) -> bool:
        """Return True when the store is open and answers a trivial query; else raise.

        One rule for sessions and bot state alike: a store that cannot answer says why,
        as every other call does, instead of a bare False.

        :raises StorageClosedError: the store is not open.
        :raises BackendError: the store does not answer (the reason is in the message,
            the driver's error is the ``__cause__``).
        """
        self._check_open()
        await self._call("answer a health check", self._ping())
        return True

    async def __aenter__(self: L) -> L:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None and self._state == _OPEN:
                await self._clean_exit()
        finally:
            await self.close()

    def _let_go_if_abandoned(self) -> bool:
        """Close this store at once if the event loop it was last used on has ended.

        Called (from any thread) when another store of this process wants what this one
        holds, its lock file: a store left open when one ``asyncio.run()`` ended would
        otherwise lock the same process out of its own session in the next one.
        """
        locks = self._locks
        if self._state != _OPEN or locks is None or not locks[0].is_closed():
            return False
        if not self._abandon():
            return False
        self._state = _CLOSED
        self._epoch += 1
        log.warning(
            "%r was left open by an event loop that has ended; closed it so that the "
            "same process can open it again (close() stores before an event loop ends)",
            self,
        )
        return True

    # -- for subclasses ---------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._state != _OPEN:
            raise StorageClosedError(f"{self!r} is closed; call open() first")

    def _lock_pair(self) -> tuple[asyncio.Lock, asyncio.Lock]:
        """The open/close lock and a second lock for the subclass, made for the running loop."""
        loop = asyncio.get_running_loop()
        locks = self._locks
        if locks is None or locks[0] is not loop:
            locks = self._locks = (loop, asyncio.Lock(), asyncio.Lock())
        return locks[1], locks[2]

    async def _call(self, what: str, operation: Awaitable[T]) -> T:
        """Await a primitive; what it raises becomes one of our errors.

        Our own errors pass through, except that anything raised after :meth:`close`
        began under the call is :class:`StorageClosedError`.
        """
        epoch = self._epoch
        self._waiting += 1
        try:
            return await operation
        except StorageError as exc:
            if self._epoch != epoch and not isinstance(exc, StorageClosedError):
                raise StorageClosedError(f"{self!r} was closed during the call") from exc
            raise
        except Exception as exc:
            if self._epoch != epoch:
                raise StorageClosedError(f"{self!r} was closed during the call") from exc
            raise self._translate(what, exc) from exc
        finally:
            self._waiting -= 1
            self._ended += 1

    def _call_now(self, what: str, operation: Callable[..., T], *args: Any) -> T:
        """Run a synchronous primitive (a read answered without I/O); errors as :meth:`_call`."""
        try:
            return operation(*args)
        except StorageError:
            raise
        except Exception as exc:
            raise self._translate(what, exc) from exc

    def _closed_error(self, during: bool = False) -> StorageClosedError:
        if during:
            return StorageClosedError(f"{self!r} was closed during the call")
        return StorageClosedError(f"{self!r} is closed; call open() first")


@contextlib.asynccontextmanager
async def opened(store: L) -> AsyncIterator[L]:
    """Use an open store as it is; open a closed one for the block and close it after.

    What the copy tools of both halves do with the stores they are handed.
    """
    if store.is_open:
        yield store
        return
    await store.open()
    try:
        yield store
    finally:
        await store.close()
