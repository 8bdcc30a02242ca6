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


def current_rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


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


async def timed(fn: Callable[[], Awaitable[Any]]) -> float:
    start = time.perf_counter()
    await fn()
    return time.perf_counter() - start
