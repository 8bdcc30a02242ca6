"""One round of the framework benchmark, inside a framework's venv (see kv_frameworks.py).

    python kv_frameworks_worker.py '{"framework": ..., "servers": {...}, "workdir": ...,
                                     "scale": 1.0}'

Builds every system of the framework (theirs, ours through the adapter, the anchors),
then times each workload in cycles: every cycle runs one batch of calls on each
system, one call at a time on one event loop, alternating the order; a system's figure
is the median µs per call over its batches. Systems compared with each other are so
measured seconds apart, and a load spike hits them alike. Prints one JSON line
``{system: {workload: µs per call}}``.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import redis.asyncio

from pyrogram_storage import kv

CONFIG: dict[str, Any] = json.loads(sys.argv[1])
SERVERS: dict[str, str] = CONFIG["servers"]
WORKDIR = Path(CONFIG["workdir"])
SCALE: float = CONFIG.get("scale", 1.0)
CYCLES = 10
# Calls per batch, by how fast the system is; times CYCLES batches per workload.
BATCH = {
    "memory": 2_000,
    "sqlite": 200,
    "their-sqlite": 40,
    "redis": 200,
    "postgres": 200,
    "mongo": 15,
}
STEP_SHARE = 4  # a step is several calls: a quarter of the batch
DOC_A = {"name": "Form:name", "data": {"name": "Ann", "lang": "en"}}
DOC_B = {"name": "Form:age", "data": {"name": "Ann", "lang": "en", "age": 30}}
DATA = {"name": "Ann", "lang": "en", "age": 30}
STATES = ("Form:name", "Form:age")
USERS = 1000
MANY_USERS = f"ours: PostgresKV (sole_writer, commit_interval 0.05, {USERS} users)"

Call = Callable[[int], Awaitable[Any]]


class System:
    """One storage and its workloads: ``calls[workload](i)`` makes the i-th call."""

    def __init__(
        self,
        name: str,
        kind: str,
        calls: dict[str, Call],
        flush: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.name, self.calls = name, calls
        self.batch = max(2, int(BATCH[kind] * SCALE))
        self.done: dict[str, int] = dict.fromkeys(calls, 0)
        # A store with a commit_interval: the window ends by storing what its calls
        # queued, inside the timing (else the batch would be stored, and timed, while
        # another system runs).
        self.flush = flush

    async def run(self, workload: str, n: int) -> float:
        call, start = self.calls[workload], self.done[workload]
        started = time.perf_counter()
        for i in range(start, start + n):
            await call(i)
        if self.flush is not None:
            await self.flush()
        elapsed = time.perf_counter() - started
        self.done[workload] = start + n
        return elapsed / n * 1e6


async def measure(systems: list[System], workloads: tuple[str, ...]) -> dict[str, Any]:
    results: dict[str, dict[str, float]] = {system.name: {} for system in systems}
    for workload in workloads:
        taking = [system for system in systems if workload in system.calls]
        share = STEP_SHARE if workload == "step" else 1
        for system in taking:  # warm-up
            await system.run(workload, max(2, min(50, system.batch // share)))
        samples: dict[str, list[float]] = {system.name: [] for system in taking}
        for cycle in range(CYCLES):
            for system in taking if cycle % 2 == 0 else taking[::-1]:
                n = max(2, system.batch // share)
                n -= n % 2  # an even count keeps the alternating CAS in step
                samples[system.name].append(await system.run(workload, n))
        for name, values in samples.items():
            results[name][workload] = statistics.median(values)
    return results


# -- kurigram-addons --------------------------------------------------------------------


async def kurigram_system(name: str, kind: str, storage: Any) -> System:
    from pyrogram_patch.fsm import FSMContext

    await storage.start()
    await storage.clear_namespace()
    await storage.set_state("chat:1", DOC_A)
    await storage.set_state("cas", DOC_A)
    docs = (DOC_A, DOC_B)
    ctx = FSMContext(storage, "chat:2")

    async def cas(i: int) -> None:
        # Alternating documents: every call compares, matches and writes.
        assert await storage.compare_and_set("cas", docs[(i + 1) % 2], expected_state=docs[i % 2])

    async def step(i: int) -> None:
        await ctx.get_state()
        await ctx.get_data()
        await ctx.update_data(age=i)
        await ctx.set_state(STATES[i % 2])

    return System(
        name,
        kind,
        {
            "get": lambda i: storage.get_state("chat:1"),
            "set": lambda i: storage.set_state("chat:1", docs[i % 2]),
            "increment": lambda i: storage.increment("hits"),
            "CAS": cas,
            "step": step,
        },
    )


async def kurigram_round() -> tuple[list[System], list[Any]]:
    import kurigram_addons  # noqa: F401  (sets up pyrogram_patch without its warning)
    from pyrogram_patch.fsm.storages.memory_storage import MemoryStorage
    from pyrogram_patch.fsm.storages.redis_storage import RedisStorage
    from pyrogram_patch.fsm.storages.sqlite_storage import SQLiteStorage

    client = redis.asyncio.Redis.from_url(SERVERS["redis"])
    storages = [
        ("kurigram-addons MemoryStorage", "memory", MemoryStorage()),
        ("ours: MemoryKV", "memory", kv.for_kurigram_addons(kv.MemoryKV())),
        ("kurigram-addons SQLiteStorage", "their-sqlite", SQLiteStorage(str(WORKDIR / "t.db"))),
        ("ours: SQLiteKV", "sqlite", kv.for_kurigram_addons(kv.SQLiteKV(WORKDIR / "o.db"))),
        ("kurigram-addons RedisStorage", "redis", RedisStorage(client, prefix="theirs")),
        (
            "ours: RedisKV",
            "redis",
            kv.for_kurigram_addons(kv.RedisKV.from_url(SERVERS["redis"], namespace="ours")),
        ),
    ]
    systems = [await kurigram_system(name, kind, s) for name, kind, s in storages]

    async def close() -> None:
        for _, _, storage in storages:
            await storage.clear_namespace()
            await storage.stop()
        await client.aclose()

    return systems, [close]


# -- aiogram --------------------------------------------------------------------------


async def aiogram_system(name: str, kind: str, storage: Any, users: int = 1) -> System:
    """``users`` > 1: call i is user i % users's (all known to the store beforehand),
    so that a commit_interval has no repeated key to coalesce within a window."""
    from aiogram.fsm.context import FSMContext
    from aiogram.fsm.storage.base import StorageKey

    if users == 1:
        keys = [StorageKey(bot_id=42, chat_id=1, user_id=1)]
        contexts = [FSMContext(storage, StorageKey(bot_id=42, chat_id=2, user_id=2))]
    else:
        keys = [StorageKey(bot_id=42, chat_id=1000 + u, user_id=1000 + u) for u in range(users)]
        contexts = [FSMContext(storage, key) for key in keys]
    for key in keys:
        await storage.set_state(key, "Form:name")
        await storage.set_data(key, DATA)
    store = getattr(storage, "store", None)
    flush = store.flush if store is not None and store.commit_interval > 0 else None

    def key_of(i: int) -> Any:
        return keys[i % len(keys)]

    async def step(i: int) -> None:
        ctx = contexts[i % len(contexts)]
        await ctx.get_state()
        data = await ctx.get_data()
        data["age"] = i
        await ctx.set_data(data)
        await ctx.set_state(STATES[i % 2])

    return System(
        name,
        kind,
        {
            "get_state": lambda i: storage.get_state(key_of(i)),
            "set_state": lambda i: storage.set_state(key_of(i), STATES[i % 2]),
            "get_data": lambda i: storage.get_data(key_of(i)),
            "set_data": lambda i: storage.set_data(key_of(i), {**DATA, "age": i}),
            "update_data": lambda i: storage.update_data(key_of(i), {"age": i}),
            "step": step,
        },
        flush,
    )


async def aiogram_round() -> tuple[list[System], list[Any]]:
    from aiogram.fsm.storage.base import StorageKey
    from aiogram.fsm.storage.memory import MemoryStorage
    from aiogram.fsm.storage.pymongo import PyMongoStorage
    from aiogram.fsm.storage.redis import DefaultKeyBuilder, RedisStorage

    storages = [
        ("aiogram MemoryStorage", "memory", MemoryStorage()),
        ("ours: MemoryKV", "memory", kv.for_aiogram(kv.MemoryKV())),
        ("ours: SQLiteKV", "sqlite", kv.for_aiogram(kv.SQLiteKV(WORKDIR / "o.db"))),
        (
            "aiogram RedisStorage",
            "redis",
            RedisStorage.from_url(SERVERS["redis"], key_builder=DefaultKeyBuilder(prefix="t")),
        ),
        (
            "ours: RedisKV",
            "redis",
            kv.for_aiogram(kv.RedisKV.from_url(SERVERS["redis"], namespace="ours")),
        ),
        (
            "ours: RedisKV (client_cache)",
            "redis",
            kv.for_aiogram(
                kv.RedisKV.from_url(SERVERS["redis"], namespace="ourscc", client_cache=True)
            ),
        ),
    ]
    storages.append(
        (
            "ours: RedisKV (sole_writer)",
            "redis",
            kv.for_aiogram(
                kv.RedisKV.from_url(SERVERS["redis"], namespace="ourssw"), sole_writer=True
            ),
        )
    )
    if "postgres" in SERVERS:
        storages += [
            (
                "ours: PostgresKV",
                "postgres",
                kv.for_aiogram(kv.PostgresKV.from_url(SERVERS["postgres"], namespace="ours")),
            ),
            (
                "ours: PostgresKV (sole_writer)",
                "postgres",
                kv.for_aiogram(
                    kv.PostgresKV.from_url(SERVERS["postgres"], namespace="ourssw"),
                    sole_writer=True,
                ),
            ),
            (
                "ours: PostgresKV (sole_writer, commit_interval 0.05)",
                "postgres",
                kv.for_aiogram(
                    kv.PostgresKV.from_url(SERVERS["postgres"], namespace="oursci"),
                    sole_writer=True,
                    commit_interval=0.05,
                ),
            ),
            (
                MANY_USERS,
                "postgres",
                kv.for_aiogram(
                    kv.PostgresKV.from_url(SERVERS["postgres"], namespace="oursciu"),
                    sole_writer=True,
                    commit_interval=0.05,
                ),
            ),
        ]
    if "mongo" in SERVERS:
        storages += [
            (
                "aiogram PyMongoStorage",
                "mongo",
                PyMongoStorage.from_url(SERVERS["mongo"], db_name="bench_theirs"),
            ),
            (
                "ours: MongoKV (pymongo)",
                "mongo",
                kv.for_aiogram(
                    kv.MongoKV.from_url(SERVERS["mongo"], database="bench_ours", namespace="ours")
                ),
            ),
        ]
    systems = [
        await aiogram_system(name, kind, s, USERS if name == MANY_USERS else 1)
        for name, kind, s in storages
    ]

    async def close() -> None:
        for number in (1, 2):
            key = StorageKey(bot_id=42, chat_id=number, user_id=number)
            for _, _, storage in storages:
                await storage.set_state(key, None)
                await storage.set_data(key, {})
        for name, _, storage in storages:
            if name == MANY_USERS:
                await storage.store.clear()
            await storage.close()

    return systems, [close]


# -- the anchors: our stores without an adapter, raw redis-py -------------------------


async def anchor_systems() -> tuple[list[System], list[Any]]:
    """MemoryKV and RedisKV alone, and raw redis-py, under both frameworks' names.

    Their ``get``/``set`` also answer to ``get_state``/``set_state``, so they are
    interleaved with the framework systems of either venv.
    """
    memory: kv.KVStore[Any] = kv.MemoryKV()
    await memory.open()
    await memory.set("state", "Form:name")
    store: kv.KVStore[Any] = kv.RedisKV.from_url(SERVERS["redis"], namespace="anchor")
    await store.open()
    await store.set("state", "Form:name")
    client = redis.asyncio.Redis.from_url(SERVERS["redis"])
    await client.set("raw:state", '"Form:name"')

    def both(get: Call, put: Call) -> dict[str, Call]:
        return {"get": get, "set": put, "get_state": get, "set_state": put}

    systems = [
        System(
            "MemoryKV, no adapter",
            "memory",
            both(lambda i: memory.get("state"), lambda i: memory.set("state", STATES[i % 2])),
        ),
        System(
            "RedisKV, no adapter",
            "redis",
            both(lambda i: store.get("state"), lambda i: store.set("state", STATES[i % 2])),
        ),
        System(
            "raw redis-py GET/SET",
            "redis",
            both(
                lambda i: client.get("raw:state"),
                lambda i: client.set("raw:state", '"Form:age"' if i % 2 else '"Form:name"'),
            ),
        ),
    ]

    async def close() -> None:
        await memory.close()
        await store.clear()
        await store.close()
        await client.delete("raw:state")
        await client.aclose()

    return systems, [close]


async def main() -> None:
    WORKDIR.mkdir(parents=True, exist_ok=True)
    if CONFIG["framework"] == "kurigram-addons":
        systems, closers = await kurigram_round()
        workloads: tuple[str, ...] = ("get", "set", "increment", "CAS", "step")
    else:
        systems, closers = await aiogram_round()
        workloads = ("get_state", "set_state", "get_data", "set_data", "update_data", "step")
    anchors, more = await anchor_systems()
    results = await measure(systems + anchors, workloads)
    # The anchors' rows under their own names too.
    for system in anchors:
        results[system.name]["get"] = (
            results[system.name].get("get") or results[system.name]["get_state"]
        )
        results[system.name]["set"] = (
            results[system.name].get("set") or results[system.name]["set_state"]
        )
    for close in closers + more:
        await close()
    print(json.dumps(results))


if __name__ == "__main__":
    asyncio.run(main())
