"""A sole writer's writes that returned but are not stored yet (``commit_interval`` > 0).

``set``, ``delete`` and ``merge`` of a ``sole_writer=True`` store with a
``commit_interval`` land here and in the store's memory at once; a timer stores them
within ``commit_interval`` seconds, as one batch, coalesced per key (the last write of
a key wins), so that a backend that writes a batch atomically leaves a prefix of the
writes after a crash. Records keep absolute expiry deadlines: a batch writes what is
left of each TTL, and deletes a key whose deadline has passed meanwhile.

Two layers, as in the session half (:mod:`pyrogram_storage._pending`): the *queue*
takes new writes; a store moves it to *flying* and drops it once stored. A batch that
failed stays in flying, is stored first next time, and :attr:`Queued.failure` says why
meanwhile. Readers look in the queue, then in flying.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from ..errors import BackendError, StorageClosedError
from ._remembered import UNKNOWN, _Unknown

if TYPE_CHECKING:
    from .base import Record

__all__ = ["QUEUE_LIMIT", "Batch", "Queued"]

log = logging.getLogger("pyrogram_storage")

QUEUE_LIMIT = 1000
"""Keys in the queue past which a write has it stored at once."""

Batch = dict[str, "Record | None"]
"""Key to the record to store (None: delete the key), in the order of each key's last write."""


class Queued:
    """The queue, the batch in flight, and when they are stored.

    :param store: stores one batch (errors translated to this package's).
    :param interval: the store's ``commit_interval``.
    :param lock: the lock that lets one batch be stored at a time.
    :param is_open: whether the owner is open (a timer firing after close stores nothing).
    :param owner: the owner's repr, for log lines and errors.
    """

    __slots__ = (
        "_is_open",
        "_lock",
        "_owner",
        "_store",
        "_task",
        "_wake",
        "failure",
        "flying",
        "interval",
        "queue",
    )

    def __init__(
        self,
        store: Callable[[Batch], Awaitable[None]],
        interval: float,
        *,
        lock: Callable[[], asyncio.Lock],
        is_open: Callable[[], bool],
        owner: Callable[[], str],
    ) -> None:
        self.queue: Batch = {}
        self.flying: Batch | None = None
        self.interval = interval
        self.failure: BaseException | None = None
        self._store = store
        self._lock = lock
        self._is_open = is_open
        self._owner = owner
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Future[None] | None = None

    @property
    def busy(self) -> bool:
        """Whether a write waits to be stored (queued, in flight, or failed before)."""
        return bool(self.queue) or self.flying is not None

    def find(self, key: str) -> Record | _Unknown | None:
        """The record a pending write leaves ``key`` with (None: deleted), or UNKNOWN."""
        found = self.queue.get(key, UNKNOWN)
        flying = self.flying
        if found is UNKNOWN and flying is not None:
            return flying.get(key, UNKNOWN)
        return found

    async def add(self, key: str, record: Record | None) -> None:
        """Queue a write of ``key``; start the timer, or store at once when the queue is full.

        :raises BackendError: an earlier batch could not be stored (nothing is queued).
        """
        if self.failure is not None:
            raise self.failed_error() from self.failure
        queue = self.queue
        queue.pop(key, None)  # a key goes where its last write is
        queue[key] = record
        task = self._task
        if len(queue) >= QUEUE_LIMIT:
            if task is None:
                self._start(0)
                return
            self._wake_up()
            await asyncio.wait([task])  # the writer waits: two batches at most
        elif task is None:
            self._start(self.interval)

    async def store(self, *, explain: bool = True) -> None:
        """Store the batch that failed before, if any, then the queue.

        With ``explain``, the :class:`BackendError` raised says that the writes stay
        pending and are retried; without, it is the backend's own.
        """
        async with self._lock():
            try:
                if self.flying is None and self.queue:
                    self.flying, self.queue = self.queue, {}
                if self.flying is not None:
                    await self._store(self.flying)
                    self.flying = None
                    if self.queue:
                        self.flying, self.queue = self.queue, {}
                        await self._store(self.flying)
                        self.flying = None
            except BackendError as exc:
                self.failure = exc
                if not explain:
                    raise
                raise type(exc)(
                    f"{exc}; the writes made so far are not stored yet: they stay pending "
                    "(visible to reads) and are retried by the next flush(), close() or "
                    "the timer"
                ) from (exc.__cause__ or exc)
            self.failure = None

    async def stop(self) -> None:
        """Let the timer's batch be stored (close() stores the rest after it)."""
        task = self._task
        if task is None:
            return
        self._wake_up()
        await asyncio.wait([task])

    def clear(self) -> None:
        self.queue = {}
        self.flying = None
        self.failure = None

    def failed_error(self) -> BackendError:
        """The error a write raises while an earlier batch cannot be stored."""
        return BackendError(
            f"{self._owner()}: earlier writes could not be stored ({self.failure}); they "
            "stay pending and are retried by the next flush(), close() or the timer; "
            "writes are refused until then"
        )

    # -- the timer ----------------------------------------------------------------------

    def _start(self, delay: float) -> None:
        loop = asyncio.get_running_loop()
        wake = self._wake = loop.create_future()
        task = loop.create_task(self._later(delay, wake))
        task.add_done_callback(self._done)
        self._task = task

    def _wake_up(self) -> None:
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    async def _later(self, delay: float, wake: asyncio.Future[None]) -> None:
        """Store the queue after ``delay`` seconds, or once woken."""
        try:
            if delay > 0 and not wake.done():
                await asyncio.wait([wake], timeout=delay)
        except asyncio.CancelledError:
            # The event loop is shutting down with the store still open: store first.
            if self._is_open():
                with contextlib.suppress(Exception):
                    await self.store()
            raise
        failing = self.failure is not None
        try:
            await self.store(explain=False)
        except StorageClosedError:
            pass
        except Exception as exc:
            if not failing:
                log.warning(
                    "%s: could not store pending writes, will retry: %s", self._owner(), exc
                )
            self.failure = exc

    def _done(self, task: asyncio.Task[None]) -> None:
        if self._task is task:
            self._task = self._wake = None
        if task.cancelled() or not self._is_open() or not self.busy:
            return
        if self._task is None:
            retry = self.failure is not None
            self._start(max(1.0, self.interval) if retry else self.interval)
