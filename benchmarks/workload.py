"""The benchmark workload, shared by every system's worker (standard library only).

Peers are a pure function of their index, so a worker never holds the whole data set
in memory (that would swamp the RSS figures) and every system sees the same peers:

* index ``i`` has type ``TYPES[i % 10]`` (5 users, 2 bots, 1 group, 1 channel,
  1 supergroup in every ten), and an id in the clients' stored form;
* even indices have one username, ``u<i>r<round>``; the churn re-sends 10% of the
  peers (blocks of ten consecutive indices, so every type is hit) with round 1;
* users whose index is a multiple of 3 have a phone number.

Indices ``N .. 2N-1`` are never written: their ids are the lookup misses.

This module must import nothing outside the standard library: the client workers
run it with the python of each client's own virtualenv.
"""

from __future__ import annotations

import array
import asyncio
import bisect
import contextlib
import gc
import itertools
import os
import random
import resource
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

TYPES = ("user", "user", "user", "user", "user", "bot", "bot", "group", "channel", "supergroup")
CHANNEL_OFFSET = -1_000_000_000_000
ID_BASE = 10_000_000
BATCH = 100
SEED = 20261121

AUTH_KEY = bytes(range(256))
SESSION = {
    "dc_id": 2,
    "api_id": 123456,
    "test_mode": False,
    "auth_key": AUTH_KEY,
    "user_id": 777000,
    "is_bot": False,
}


def peer_type(i: int) -> str:
    return TYPES[i % 10]


def peer_id(i: int) -> int:
    kind = TYPES[i % 10]
    base = ID_BASE + i
    if kind == "group":
        return -base
    if kind in ("channel", "supergroup"):
        return CHANNEL_OFFSET - base
    return base


def access_hash(i: int) -> int:
    if TYPES[i % 10] == "group":
        return 0
    return (i * 0x9E3779B97F4A7C15) % (1 << 63) - (1 << 62)


def churned(i: int) -> bool:
    """Whether the churn phase re-sends index ``i`` (10% of the indices)."""
    return (i // 10) % 10 == 3


def username(i: int, rnd: int) -> str | None:
    """The username of ``i`` in churn round ``rnd`` (-1: the one after the churn)."""
    if i % 2:
        return None
    if rnd < 0:
        rnd = 1 if churned(i) else 0
    return f"u{i}r{rnd}"


def current_username(i: int) -> str | None:
    """The username of ``i`` after the churn phase."""
    return username(i, 1 if churned(i) else 0)


def phone(i: int) -> str | None:
    if i % 3 == 0 and TYPES[i % 10] == "user":
        return str(79_000_000_000 + i)
    return None


def batches(indices: Iterator[int] | range, size: int = BATCH) -> Iterator[list[int]]:
    batch: list[int] = []
    for i in indices:
        batch.append(i)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def churn_indices(n: int) -> Iterator[int]:
    return (i for i in range(n) if churned(i))


def sample_ids(n: int, count: int, *, miss: bool = False, seed: int = SEED) -> array.array:
    """Random peer ids: of written peers, or (``miss``) of never-written ones."""
    rng = random.Random(seed + (1 if miss else 0))
    offset = n if miss else 0
    return array.array("q", (peer_id(offset + rng.randrange(n)) for _ in range(count)))


def sample_usernames(n: int, count: int, seed: int = SEED) -> list[str]:
    rng = random.Random(seed + 2)
    names = []
    for _ in range(count):
        i = rng.randrange(n) & ~1
        names.append(current_username(i) or "")
    return names


def sample_phones(n: int, count: int, seed: int = SEED) -> list[str]:
    rng = random.Random(seed + 3)
    phones: list[str] = []
    while len(phones) < count:
        number = phone(rng.randrange(n))
        if number is not None:
            phones.append(number)
    return phones


def distinct_ids(n: int, count: int, seed: int = SEED) -> array.array:
    """Ids of ``count`` different written peers (all of them if ``count >= n``)."""
    rng = random.Random(seed + 4)
    picked = rng.sample(range(n), min(count, n))
    return array.array("q", (peer_id(i) for i in picked))


def hot_lookups(n: int, hot: int, count: int, seed: int = SEED) -> tuple[list[int], list[int]]:
    """A hot working set of ``hot`` written peers and ``count`` lookups drawn from it."""
    rng = random.Random(seed + 5)
    working = [peer_id(i) for i in rng.sample(range(n), min(hot, n))]
    return working, [rng.choice(working) for _ in range(count)]


def small_batches(first: int, count: int, seed: int = SEED) -> list[list[int]]:
    """Indices ``first .. first+count-1`` cut into batches of 1 to 3, as updates bring them."""
    rng = random.Random(seed + 6)
    out: list[list[int]] = []
    i, end = first, first + count
    while i < end:
        size = min(rng.randint(1, 3), end - i)
        out.append(list(range(i, i + size)))
        i += size
    return out


def is_user(i: int) -> bool:
    return TYPES[i % 10] in ("user", "bot")


def new_user_indices(start: int) -> Iterator[int]:
    """Indices of users and bots from ``start`` on: peers nobody has written."""
    i = start
    while True:
        if is_user(i):
            yield i
        i += 1


STREAMS = ("uniform", "zipf", "new")
"""The shapes of the update path's sender stream (``update_senders``)."""
ZIPF_S = 1.1


def update_senders(
    n: int, count: int, known: float, seed: int, fresh_start: int, stream: str = "uniform"
) -> list[tuple[int, bool]]:
    """``count`` message senders: (index, already known?), a share ``known`` of them written.

    ``stream`` says how the known senders are drawn from the users and bots among the
    ``n`` written peers: ``uniform``; ``zipf``, the k-th most active sender writing with
    weight ``k ** -1.1`` (a busy group; the ranks are a seeded shuffle of the users, so
    the busiest are spread over the file); ``new``, none known (a bot in a big public
    group: every sender is new, whatever ``known`` says). The others are new users,
    indices from ``fresh_start`` on, each seen once.
    """
    if stream not in STREAMS:
        raise ValueError(f"unknown stream {stream!r}; choose from {', '.join(STREAMS)}")
    rng = random.Random(seed)
    fresh = new_user_indices(fresh_start)
    if stream == "new":
        known = 0.0
    draw: Callable[[], int]
    if stream == "zipf":
        # Arrays, not lists: at 1M the ranks stay a few MB of the harness's memory.
        users = array.array("q", (i for i in range(n) if is_user(i)))
        random.Random(seed + 1).shuffle(users)
        cumulative = array.array(
            "d", itertools.accumulate(k**-ZIPF_S for k in range(1, len(users) + 1))
        )
        total = cumulative[-1]

        def draw() -> int:
            return users[min(bisect.bisect_left(cumulative, rng.random() * total), len(users) - 1)]

    else:

        def draw() -> int:
            while True:
                i = rng.randrange(n)
                if is_user(i):
                    return i

    out = []
    for _ in range(count):
        if rng.random() < known:
            out.append((draw(), True))
        else:
            out.append((next(fresh), False))
    return out


def current_rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def process_cpu() -> float:
    """CPU seconds this process has used, every thread, user and system."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Ticker:
    """Measure the event loop's longest stall: how late a 1 ms sleep wakes up."""

    def __init__(self, interval: float = 0.001) -> None:
        self.interval = interval
        self.max_lag = 0.0
        self._task: asyncio.Task[None] | None = None
        self._running = False

    async def _run(self) -> None:
        interval = self.interval
        while self._running:
            start = time.perf_counter()
            await asyncio.sleep(interval)
            lag = time.perf_counter() - start - interval
            if lag > self.max_lag:
                self.max_lag = lag

    def start(self) -> None:
        self._running = True
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> float:
        """Stop and return the longest stall in milliseconds."""
        self._running = False
        if self._task is not None:
            await self._task
        return self.max_lag * 1000


async def idle_stall(seconds: float) -> float:
    """Return the ticker's longest stall (ms) on an idle loop: the machine's own noise."""
    ticker = Ticker()
    ticker.start()
    await asyncio.sleep(seconds)
    return await ticker.stop()


# Every storage method a client or the neutral API calls; the meter wraps those present.
METERED = (
    "open",
    "close",
    "save",
    "flush",
    "update_peers",
    "update_usernames",
    "set_update_state",
    "update_state",
    "get_update_states",
    "get_peer_by_id",
    "get_peer_by_username",
    "get_peer_by_phone_number",
    "upsert_peers",
    "set_usernames",
    "peer_by_id",
    "peer_by_username",
    "peer_by_phone",
    "set_update_states",
    "get_session",
    "update_session",
)


class _Stepped:
    """Await a coroutine step by step, charging each step's thread CPU time to a meter."""

    __slots__ = ("coro", "meter", "name")

    def __init__(self, meter: LoopMeter, name: str, coro: Any) -> None:
        self.meter = meter
        self.name = name
        self.coro = coro

    def __await__(self) -> Any:
        coro, meter = self.coro, self.meter
        cpu, wall = time.thread_time, time.perf_counter
        value: Any = None
        error: BaseException | None = None
        spent = 0.0
        while True:
            start, started = cpu(), wall()
            try:
                signal = coro.send(value) if error is None else coro.throw(error)
            except StopIteration as stop:
                meter.step(self.name, cpu() - start, wall() - started, spent, done=True)
                return stop.value
            except BaseException:
                meter.step(self.name, cpu() - start, wall() - started, spent, done=True)
                raise
            step = cpu() - start
            spent += step
            meter.step(self.name, step, wall() - started, spent, done=False)
            try:
                value, error = (yield signal), None
            except BaseException as exc:  # cancellation and the like go into the coroutine
                value, error = None, exc


class LoopMeter:
    """The storage's own time on the event loop's thread, call by call.

    Wraps the storage object's methods (instance attributes shadow the class's, so the
    client's ``isinstance`` checks still pass) and drives each call's coroutine one
    step at a time, timing every step with ``time.thread_time()`` of the loop's thread:
    CPU time, so other processes on a shared machine do not count, while garbage
    collections and dict resizes that happen inside the call do. The longest step is
    the longest time the storage held the loop without giving it back.
    """

    def __init__(self) -> None:
        self.calls = 0
        self.total = 0.0
        self.longest = 0.0
        self.longest_call = ""
        self.longest_wall = 0.0
        self.per_call: dict[str, list[float]] = {}  # name -> [calls, total seconds]
        self._wrapped: list[tuple[Any, str]] = []

    def step(self, name: str, step: float, wall: float, spent: float, *, done: bool) -> None:
        if step > self.longest:
            self.longest = step
            self.longest_call = name
        if wall > self.longest_wall:
            self.longest_wall = wall
        if done:
            spent += step
            self.calls += 1
            self.total += spent
            stats = self.per_call.setdefault(name, [0, 0.0])
            stats[0] += 1
            stats[1] += spent

    def install(self, target: Any) -> None:
        for name in METERED:
            method = getattr(target, name, None)
            if method is None or not callable(method):
                continue
            setattr(target, name, self._metered(name, method))
            self._wrapped.append((target, name))

    def uninstall(self) -> None:
        for target, name in self._wrapped:
            with contextlib.suppress(AttributeError):
                delattr(target, name)
        self._wrapped.clear()

    def _metered(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        meter = self

        def metered(*args: Any, **kwargs: Any) -> Any:
            start, started = time.thread_time(), time.perf_counter()
            result = method(*args, **kwargs)
            if asyncio.iscoroutine(result):
                return _Stepped(meter, name, result)
            meter.step(
                name, time.thread_time() - start, time.perf_counter() - started, 0.0, done=True
            )
            return result

        return metered

    def stats(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "onloop_us": self.total / self.calls * 1e6 if self.calls else None,
            "onloop_max_ms": self.longest * 1000,
            "onloop_max_call": self.longest_call,
            "onloop_wall_max_ms": self.longest_wall * 1000,
            "per_call_us": {
                name: round(total / count * 1e6, 2)
                for name, (count, total) in sorted(self.per_call.items())
                if count
            },
        }


class GcPauses:
    """The longest garbage collection (thread CPU time of the collecting thread)."""

    def __init__(self) -> None:
        self.longest = 0.0
        self.collections = 0
        self._start = 0.0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._start = time.thread_time()
        else:
            self.collections += 1
            self.longest = max(self.longest, time.thread_time() - self._start)

    def start(self) -> None:
        gc.callbacks.append(self._callback)

    def stop(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)


def settle() -> None:
    """Keep the harness's own objects out of later garbage collections.

    Collect, then move everything alive (the prepared updates, samples, imported
    modules) to the permanent generation, so that the pauses the loop watch records
    are those of the objects created afterwards: the storage's and the client's.
    """
    gc.collect()
    gc.freeze()


class LoopWatch:
    """Watch one phase: the ticker, the storage's on-loop time per call, and GC pauses.

    ``async with LoopWatch(storage) as watch: ...`` then ``watch.result``. Give no
    target to watch with the ticker and the collector only.
    """

    def __init__(self, *targets: Any) -> None:
        self.targets = targets
        self.meter = LoopMeter()
        self.ticker = Ticker()
        self.gc = GcPauses()
        self.result: dict[str, Any] = {}

    async def __aenter__(self) -> LoopWatch:
        for target in self.targets:
            self.meter.install(target)
        self.gc.start()
        self.ticker.start()
        await asyncio.sleep(0)  # the ticker's first sleep starts now, not at the end
        return self

    async def __aexit__(self, *exc: object) -> None:
        ticker_ms = await self.ticker.stop()
        self.gc.stop()
        self.meter.uninstall()
        self.result = {
            **self.meter.stats(),
            "ticker_ms": ticker_ms,
            "gc_max_ms": self.gc.longest * 1000,
            "gc_collections": self.gc.collections,
        }


async def timed(fn: Callable[[], Awaitable[Any]]) -> float:
    start = time.perf_counter()
    await fn()
    return time.perf_counter() - start
