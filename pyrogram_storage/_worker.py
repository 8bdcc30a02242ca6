"""Blocking work off the event loop, on a few threads every storage in the process shares.

Each SQLite connection gets a :class:`Lane`: the jobs of one lane run one at a time,
in the order they were submitted, so a connection is never used by two threads at
once. Lanes share a small pool of daemon threads, so a process holding a thousand
sessions runs a handful of threads, not a thousand, and a storage nobody closed
cannot hang interpreter exit.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["MAX_THREADS", "Lane", "pool_threads"]

T = TypeVar("T")

MAX_THREADS = 4
"""Threads the pool grows to; a long job (adopting a big file) leaves the others free."""
_BURST = 16  # jobs one lane runs before others get a turn

_Job = tuple[Callable[[], Any], "asyncio.Future[Any]", asyncio.AbstractEventLoop]


class _Pool:
    def __init__(self, size: int) -> None:
        self.size = size
        self._ready: collections.deque[Lane] = collections.deque()
        self._cond = threading.Condition(threading.Lock())
        self._threads: list[threading.Thread] = []
        self._idle = 0

    def submit(self, lane: Lane) -> None:
        with self._cond:
            self._ready.append(lane)
            if self._idle == 0 and len(self._threads) < self.size:
                thread = threading.Thread(
                    target=self._serve,
                    name=f"pyrogram-storage-{len(self._threads) + 1}",
                    daemon=True,
                )
                self._threads.append(thread)
                thread.start()
            else:
                self._cond.notify()

    def _serve(self) -> None:
        while True:
            with self._cond:
                while not self._ready:
                    self._idle += 1
                    self._cond.wait()
                    self._idle -= 1
                lane = self._ready.popleft()
            if lane._run_burst():
                self.submit(lane)

    def threads(self) -> int:
        with self._cond:
            return len(self._threads)


_POOL = _Pool(MAX_THREADS)


def pool_threads() -> int:
    """How many worker threads the process has started so far (at most MAX_THREADS)."""
    return _POOL.threads()


class Lane:
    """Run blocking callables for one resource in submission order, off the event loop."""

    __slots__ = ("_jobs", "_lock", "_scheduled")

    def __init__(self) -> None:
        self._jobs: collections.deque[_Job] = collections.deque()
        self._lock = threading.Lock()
        self._scheduled = False

    def drained(self, timeout: float = 2.0) -> bool:
        """Wait (blocking; never on an event loop) until no job is queued or running, at
        most ``timeout`` seconds; return whether none is."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if not self._scheduled and not self._jobs:
                    return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.001)

    def run(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        """Queue ``fn``; the returned future (of the running loop) gets its result.

        Cancelling the future does not stop ``fn`` once a thread has started it.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            self._jobs.append((fn, future, loop))
            if self._scheduled:
                return future
            self._scheduled = True
        _POOL.submit(self)
        return future

    async def setup(self, work: Callable[[], T], undo: Callable[[T], None]) -> T:
        """Run ``work`` (which takes resources: connections, locks) and return its result.

        If the caller is cancelled meanwhile, ``undo(result)`` runs on the lane once
        ``work`` has finished, and is waited for: a cancelled ``open()`` leaves nothing
        held behind it.
        """
        done: list[T] = []

        def job() -> T:
            result = work()
            done.append(result)
            return result

        try:
            return await self.run(job)
        except asyncio.CancelledError:

            def release() -> None:
                for result in done:
                    with contextlib.suppress(Exception):
                        undo(result)

            with contextlib.suppress(BaseException):
                await asyncio.shield(self.run(release))
            raise

    def _run_burst(self) -> bool:
        """Run up to a burst of jobs; return True when more are waiting."""
        for _ in range(_BURST):
            with self._lock:
                if not self._jobs:
                    self._scheduled = False
                    return False
                fn, future, loop = self._jobs.popleft()
            if future.cancelled():
                continue
            try:
                result = fn()
            except BaseException as exc:  # handed to the awaiting task, whatever it is
                _settle(loop, future, None, exc)
            else:
                _settle(loop, future, result, None)
        with self._lock:
            if self._jobs:
                return True
            self._scheduled = False
            return False


def _settle(
    loop: asyncio.AbstractEventLoop,
    future: asyncio.Future[Any],
    result: Any,
    error: BaseException | None,
) -> None:
    def settle() -> None:
        if future.cancelled():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    # A closed loop (RuntimeError) has nobody waiting any more.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(settle)
