"""Run one system of the benchmark at one N, in this process.

Usage (``run.py`` does this for you, one fresh process per system and N, each with the
python that has the system installed)::

    python benchmarks/worker.py SYSTEM N WORKDIR [--params JSON] [--server-uri URI]

Prints one line ``RESULT <json>`` on stdout. Each process measures one system only,
so its peak RSS (``resource.getrusage``) belongs to that system alone. The ``cells``
suite lives here; the client path is ``client_path.py`` and the host ``host.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

sys.path.insert(0, str(Path(__file__).resolve().parent))
# The package of this tree, not the one the client venv installed (editable, from the
# tree that made the venv: another worktree's run would measure that tree's code).
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

import workload as w
from backends import (
    FILE_BACKENDS,
    OPTIONS,
    PERSISTENT_BACKENDS,
    commit_interval,
    our_storage,
    our_versions,
    version,
)
from systems import BY_NAME, System

REPO = Path(__file__).resolve().parent.parent

DEFAULT_PARAMS: dict[str, Any] = {
    # cells
    "lookups": 100_000,  # cached id lookups (hot set); absent ids are a tenth of it
    "hot": 1_000,  # the hot working set of the cached lookups
    "uncached": 10_000,  # distinct ids looked up once on a fresh storage object
    "usernames": 10_000,
    "phones": 10_000,
    "tasks": 50,
    "ops_per_task": 100,
    "small": 20_000,  # peers ingested in batches of 1-3
    "roundtrips": 200,
    "cold_opens": 3,
    "for_client_calls": 200,
    "loop_cap": 10_000,  # operations per phase in the event-loop pass
    "idle_s": 2.0,  # the idle ticker's baseline run
    # path
    "updates": 20_000,
    "warmup": 1_000,
    "metered_updates": 5_000,
    "known": 0.9,
    "stream": "uniform",  # uniform, zipf or new (workload.update_senders)
    "settle_memory": 0,  # 1: ours' timed updates wait until its peers are in memory
    # host
    "sessions": 1_000,
    "host_lookups": 10,
    "host_writes": 2,
    # extra keyword arguments for our storages' constructors, e.g. {"commit_interval": 0}
    "storage_options": {},
}


# -- adapters: one small class per way of driving a storage, all with the same surface -----


class Adapter:
    """The operations the cells need, in one system's own dialect."""

    sync = False  # the raw-sqlite3 reference has plain methods, called without await
    persistent = True  # a new object over the same name sees the data

    def __init__(self, system: System, workdir: Path, name: str, uri: str | None) -> None:
        self.system = system
        self.workdir = workdir
        self.name = name
        self.uri = uri
        self.storage: Any = None

    def versions(self) -> dict[str, str | None]:
        return {}

    def files(self) -> list[Path]:
        return [
            self.workdir / (self.name + suffix)
            for suffix in (".session", ".session-wal", ".session-shm", ".session-journal")
        ]

    def reopen(self) -> Adapter:
        return type(self)(self.system, self.workdir, self.name, self.uri)

    def config(self) -> dict[str, Any]:
        return {}


class Ours(Adapter):
    """pyrogram_storage through its neutral API (upsert_peers, peer_by_id, ...)."""

    options = OPTIONS  # the same dict: params["storage_options"], set by main()

    def __init__(self, system: System, workdir: Path, name: str, uri: str | None) -> None:
        super().__init__(system, workdir, name, uri)
        import pyrogram_storage as ps

        self.ps = ps
        assert system.backend is not None
        self.persistent = system.backend in PERSISTENT_BACKENDS
        self.storage = our_storage(system.backend, name, workdir, uri, self.options)
        self.types = {kind: ps.PeerType(kind) for kind in set(w.TYPES)}

    def versions(self) -> dict[str, str | None]:
        found = our_versions()
        if self.system.backend == "mongo":
            found.update(pymongo=version("pymongo"), SecantusDB=version("SecantusDB"))
        if self.system.server == "redis":
            found.update(redis=version("redis"))
        return found

    def files(self) -> list[Path]:
        return super().files() if self.system.backend in FILE_BACKENDS else []

    def config(self) -> dict[str, Any]:
        return {"commit_interval": commit_interval(self.storage), "options": self.options}

    async def open(self) -> None:
        await self.storage.open()

    async def close(self) -> None:
        await self.storage.close()

    async def save(self) -> None:
        await self.storage.save()

    async def set_session(self) -> None:
        await self.storage.update_session(**w.SESSION)

    def _peer(self, i: int, rnd: int) -> Any:
        name = w.username(i, rnd)
        return self.ps.Peer(
            w.peer_id(i),
            w.access_hash(i),
            self.types[w.TYPES[i % 10]],
            (name,) if name else (),
            w.phone(i),
        )

    async def write(self, indices: list[int], rnd: int) -> None:
        peer = self._peer
        await self.storage.upsert_peers([peer(i, rnd) for i in indices])

    async def by_id(self, pid: int) -> Any:
        return await self.storage.peer_by_id(pid)

    async def by_username(self, name: str) -> Any:
        return await self.storage.peer_by_username(name)

    async def by_phone(self, number: str) -> Any:
        return await self.storage.peer_by_phone(number)

    async def roundtrip(self) -> None:
        text = await self.storage.export_session_string()
        other = self.ps.MemoryStorage("roundtrip", session_string=text)
        await other.open()
        assert (await other.get_session()).auth_key == w.AUTH_KEY
        await other.close()


class RawSQLite(Adapter):
    """The reference: sqlite3, our schema, WAL + synchronous=NORMAL, executemany, no asyncio.

    It does the same writes as our upsert_peers (one transaction per batch) and the
    smallest reads a client needs (id, access_hash, type).
    """

    sync = True

    @property
    def path(self) -> Path:
        return self.workdir / (self.name + ".session")

    def open(self) -> None:
        fresh = not self.path.exists()
        self.db = sqlite3.connect(str(self.path), isolation_level=None)
        self.db.execute("PRAGMA journal_mode = WAL").fetchall()
        self.db.execute("PRAGMA synchronous = NORMAL")
        if fresh:
            from pyrogram_storage import _migrations  # the script with its includes expanded

            self.db.executescript(_migrations.numbered("sqlite")[0].text)

    def close(self) -> None:
        self.db.close()

    def save(self) -> None:
        self.db.execute("UPDATE sessions SET date = ?", (int(time.time()),))
        self.db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def set_session(self) -> None:
        s = w.SESSION
        self.db.execute(
            "UPDATE sessions SET dc_id = ?, api_id = ?, test_mode = ?, auth_key = ?, "
            "user_id = ?, is_bot = ?",
            (
                s["dc_id"],
                s["api_id"],
                int(s["test_mode"]),
                s["auth_key"],
                s["user_id"],
                int(s["is_bot"]),
            ),
        )

    def write(self, indices: list[int], rnd: int) -> None:
        now = int(time.time())
        peers = []
        ids = []
        names = []
        for i in indices:
            pid = w.peer_id(i)
            name = w.username(i, rnd)
            peers.append((pid, w.access_hash(i), w.TYPES[i % 10], name, w.phone(i), now))
            ids.append((pid,))
            if name:
                names.append((pid, name))
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        db.executemany(
            "REPLACE INTO peers (id, access_hash, type, username, phone_number, "
            "last_update_on) VALUES (?, ?, ?, ?, ?, ?)",
            peers,
        )
        db.executemany("DELETE FROM usernames WHERE id = ?", ids)
        db.executemany("INSERT INTO usernames (id, username) VALUES (?, ?)", names)
        db.execute("COMMIT")

    def by_id(self, pid: int) -> Any:
        row = self.db.execute(
            "SELECT id, access_hash, type FROM peers WHERE id = ?", (pid,)
        ).fetchone()
        if row is None:
            raise KeyError(pid)
        return row

    def by_username(self, name: str) -> Any:
        row = self.db.execute(
            "SELECT id, access_hash, type FROM peers WHERE id = "
            "(SELECT id FROM usernames WHERE username = ?)",
            (name,),
        ).fetchone()
        if row is None:
            raise KeyError(name)
        return row

    def by_phone(self, number: str) -> Any:
        row = self.db.execute(
            "SELECT id, access_hash, type FROM peers WHERE phone_number = ?", (number,)
        ).fetchone()
        if row is None:
            raise KeyError(number)
        return row

    roundtrip = None


class Kurigram(Adapter):
    """Kurigram 2.2.26's own SQLiteStorage (file or in_memory), its 4-tuple dialect."""

    memory = False

    def __init__(self, system: System, workdir: Path, name: str, uri: str | None) -> None:
        super().__init__(system, workdir, name, uri)
        from pyrogram.storage import SQLiteStorage

        self.cls = SQLiteStorage
        self.memory = system.kind.endswith("-memory")
        self.persistent = not self.memory
        self.storage = SQLiteStorage(name, workdir, in_memory=self.memory)

    def versions(self) -> dict[str, str | None]:
        return {"kurigram": version("kurigram")}

    async def open(self) -> None:
        await self.storage.open()

    async def close(self) -> None:
        await self.storage.close()

    async def save(self) -> None:
        await self.storage.save()

    async def set_session(self) -> None:
        for field, value in w.SESSION.items():
            await getattr(self.storage, field)(value)

    async def write(self, indices: list[int], rnd: int) -> None:
        peers = []
        usernames = []
        for i in indices:
            pid = w.peer_id(i)
            peers.append((pid, w.access_hash(i), w.TYPES[i % 10], w.phone(i)))
            name = w.username(i, rnd)
            if name:
                usernames.append((pid, [name]))
        await self.storage.update_peers(peers)
        if usernames:
            await self.storage.update_usernames(usernames)

    async def by_id(self, pid: int) -> Any:
        return await self.storage.get_peer_by_id(pid)

    async def by_username(self, name: str) -> Any:
        return await self.storage.get_peer_by_username(name)

    async def by_phone(self, number: str) -> Any:
        return await self.storage.get_peer_by_phone_number(number)

    async def roundtrip(self) -> None:
        text = await self.storage.export_session_string()
        other = self.cls("roundtrip", self.workdir, session_string=text, in_memory=True)
        await other.open()
        assert await other.auth_key() == w.AUTH_KEY
        await other.close()


class OursClient(Kurigram):
    """Our storage as the installed client drives it: ``for_client(storage)``, auto-detected.

    The first ``for_client`` call of the process is timed (``for_client_first_ms``).
    """

    first_call_ms: ClassVar[float | None] = None

    def __init__(self, system: System, workdir: Path, name: str, uri: str | None) -> None:
        Adapter.__init__(self, system, workdir, name, uri)
        import pyrogram  # noqa: F401  (a program imports its client before building storage)

        import pyrogram_storage as ps

        self.ps = ps
        assert system.backend is not None
        self.persistent = system.backend in PERSISTENT_BACKENDS
        self.neutral = our_storage(system.backend, name, workdir, uri, OPTIONS)
        start = time.perf_counter()
        self.storage = ps.for_client(self.neutral)
        if OursClient.first_call_ms is None:
            OursClient.first_call_ms = (time.perf_counter() - start) * 1000

    def versions(self) -> dict[str, str | None]:
        return {**our_versions(), "kurigram": version("kurigram")}

    def files(self) -> list[Path]:
        return super().files() if self.system.backend in FILE_BACKENDS else []

    def config(self) -> dict[str, Any]:
        return {
            "commit_interval": commit_interval(self.neutral),
            "options": OPTIONS,
            "dialect": type(self.storage).__name__,
        }

    async def roundtrip(self) -> None:
        text = await self.storage.export_session_string()
        other = self.ps.for_client(self.ps.MemoryStorage("roundtrip", session_string=text))
        await other.open()
        assert await other.auth_key() == w.AUTH_KEY
        await other.close()


class Pyrogram(Kurigram):
    """Pyrogram 2.0.106's own FileStorage / MemoryStorage, its 5-tuple dialect."""

    def __init__(self, system: System, workdir: Path, name: str, uri: str | None) -> None:
        Adapter.__init__(self, system, workdir, name, uri)
        from pyrogram.storage import FileStorage, MemoryStorage

        self.memory_cls = MemoryStorage
        self.memory = system.kind.endswith("-memory")
        self.persistent = not self.memory
        self.storage = MemoryStorage(name) if self.memory else FileStorage(name, workdir)

    def versions(self) -> dict[str, str | None]:
        return {"pyrogram": version("pyrogram")}

    async def write(self, indices: list[int], rnd: int) -> None:
        await self.storage.update_peers(
            [
                (w.peer_id(i), w.access_hash(i), w.TYPES[i % 10], w.username(i, rnd), w.phone(i))
                for i in indices
            ]
        )

    async def roundtrip(self) -> None:
        text = await self.storage.export_session_string()
        other = self.memory_cls("roundtrip", session_string=text)
        await other.open()
        assert await other.auth_key() == w.AUTH_KEY
        await other.close()


class PyroforkMongo(Pyrogram):
    """Pyrofork 2.3.69's own MongoStorage over motor, its 5-tuple dialect."""

    def __init__(self, system: System, workdir: Path, name: str, uri: str | None) -> None:
        Adapter.__init__(self, system, workdir, name, uri)
        from motor.motor_asyncio import AsyncIOMotorClient
        from pyrogram.storage import MongoStorage

        assert uri, "pyrofork-mongo needs --server-uri"
        self.memory = False
        self.storage = MongoStorage(name, AsyncIOMotorClient(uri))

    def versions(self) -> dict[str, str | None]:
        return {"pyrofork": version("pyrofork"), "motor": version("motor")}

    def files(self) -> list[Path]:
        return []

    async def write(self, indices: list[int], rnd: int) -> None:
        await super().write(indices, rnd)
        await self.storage.update_usernames([])  # the client always calls it, even empty

    roundtrip = None  # type: ignore[assignment]


ADAPTERS: dict[str, type[Adapter]] = {
    "ours": Ours,
    "client": OursClient,
    "raw": RawSQLite,
    "kurigram": Kurigram,
    "kurigram-memory": Kurigram,
    "pyrogram": Pyrogram,
    "pyrogram-memory": Pyrogram,
    "pyrofork-mongo": PyroforkMongo,
}


# -- the cells ---------------------------------------------------------------------------------


async def _call(adapter: Adapter, method: str, *args: Any) -> Any:
    result = getattr(adapter, method)(*args)
    if not adapter.sync:
        result = await result
    return result


async def _lookups(
    adapter: Adapter, method: str, keys: Any, pause: bool = False
) -> tuple[float, int]:
    """Time ``len(keys)`` lookups; return (seconds, how many were found).

    ``pause``: give the loop a turn after each lookup (the loop-watch passes), as a
    program doing other work between lookups would.
    """
    fn = getattr(adapter, method)
    found = 0
    start = time.perf_counter()
    if pause:
        for key in keys:
            try:
                await fn(key)
                found += 1
            except KeyError:
                pass
            await asyncio.sleep(0)
    elif adapter.sync:
        for key in keys:
            try:
                fn(key)
                found += 1
            except KeyError:
                pass
    else:
        for key in keys:
            try:
                await fn(key)
                found += 1
            except KeyError:
                pass
    return time.perf_counter() - start, found


async def _ingest(adapter: Adapter, chunks: Any, rnd: int) -> tuple[float, float]:
    """Write the batches, then ``save()``; the loop runs other tasks between batches.

    Returns the seconds taken, wall clock and CPU time of every thread of the process
    (the writer threads included; other processes' load does not count).
    """
    start, cpu = time.perf_counter(), time.process_time()
    if adapter.sync:
        for batch in chunks:
            adapter.write(batch, rnd)
    else:
        for batch in chunks:
            await adapter.write(batch, rnd)
            await asyncio.sleep(0)  # a client gets each batch from the network
    await _call(adapter, "save")
    return time.perf_counter() - start, time.process_time() - cpu


async def _mix(adapter: Adapter, n: int, tasks: int, ops: int, pause: bool = False) -> float:
    """``tasks`` tasks, each ``ops`` operations: 1 in 10 writes 10 peers, 1 in 10 a
    username lookup, the rest id lookups (hits). ``pause``: a loop turn after each."""
    ids = w.sample_ids(n, tasks * ops, seed=w.SEED + 10)
    names = w.sample_usernames(n, tasks * ops, seed=w.SEED + 11)

    async def worker(k: int) -> None:
        for j in range(ops):
            slot = k * ops + j
            if j % 10 == 0:
                first = (slot * 7) % max(1, n - 10)
                await adapter.write(list(range(first, first + min(10, n))), -1)
            elif j % 10 == 5:
                await adapter.by_username(names[slot])
            else:
                await adapter.by_id(ids[slot])
            if pause:
                await asyncio.sleep(0)

    start = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(tasks)))
    return time.perf_counter() - start


def _file_mb(adapter: Adapter) -> float | None:
    files = adapter.files()
    if not files:
        return None
    return sum(p.stat().st_size for p in files if p.exists()) / 2**20


def _check(found: int, wanted: int, system: str, what: str) -> None:
    if found != wanted:
        raise SystemExit(f"{system}: {what}: found {found} of {wanted}")


async def run_cells(
    system: System, n: int, workdir: Path, params: dict[str, Any], uri: str | None
) -> dict[str, Any]:
    name = f"bench_{system.name.replace('-', '_')}_{n}"
    cap = int(params["loop_cap"])
    lookups = int(params["lookups"])
    idle_ms = await w.idle_stall(float(params["idle_s"]))
    rss_start = w.current_rss_mb()
    hot, hot_keys = w.hot_lookups(n, int(params["hot"]), lookups)
    miss_ids = w.sample_ids(n, max(1, lookups // 10), miss=True)
    names = w.sample_usernames(n, int(params["usernames"]))
    phones = w.sample_phones(n, int(params["phones"])) if n >= 10 else []
    uncached = w.distinct_ids(n, int(params["uncached"]) + min(cap, int(params["uncached"])))
    small = int(params["small"])
    w.settle()
    adapter = ADAPTERS[system.kind](system, workdir, name, uri)
    rss_base = w.current_rss_mb()
    m: dict[str, Any] = {}
    loop: dict[str, Any] = {}
    counts: dict[str, Any] = {
        "n": n,
        "lookups": lookups,
        "hot": len(hot),
        "absent": len(miss_ids),
        "usernames": len(names),
        "phones": len(phones),
        "small": small,
    }
    watched = not adapter.sync

    async def watch(phase: str, body: Callable[[], Any], *targets: Any) -> Any:
        """Run ``body`` under the loop watch (ticker, on-loop meter, GC) when async."""
        if not watched:
            return await body()
        async with w.LoopWatch(*targets) as watcher:
            result = await body()
        loop[phase] = watcher.result
        return result

    await _call(adapter, "open")
    await _call(adapter, "set_session")

    # Writes take milliseconds a batch: the meter's ~2 µs a call does not show.
    seconds, cpu = await watch(
        "ingest_100", lambda: _ingest(adapter, w.batches(range(n)), 0), adapter.storage
    )
    m["ingest_100_us"] = seconds / n * 1e6
    m["ingest_100_cpu_us"] = cpu / n * 1e6
    churn = list(w.churn_indices(n))
    counts["churn"] = len(churn)
    if churn:
        seconds, cpu = await watch(
            "churn", lambda: _ingest(adapter, w.batches(churn), 1), adapter.storage
        )
        m["churn_us"] = seconds / len(churn) * 1e6
        m["churn_cpu_us"] = cpu / len(churn) * 1e6
    # Issue 19: RSS growth while ingesting the N peers (and churning them), before any read.
    m["rss_ingest_growth_mb"] = w.peak_rss_mb() - rss_base

    # Reads: timed bare, then once more under the meter (which costs ~2 µs a call).
    await _lookups(adapter, "by_id", hot)  # the working set becomes hot
    seconds, found = await _lookups(adapter, "by_id", hot_keys)
    _check(found, len(hot_keys), system.name, "cached id lookups")
    m["id_cached_us"] = seconds / len(hot_keys) * 1e6
    seconds, found = await _lookups(adapter, "by_id", miss_ids)
    _check(found, 0, system.name, "absent ids")
    m["id_absent_us"] = seconds / len(miss_ids) * 1e6
    seconds, found = await _lookups(adapter, "by_username", names)
    _check(found, len(names), system.name, "usernames")
    m["username_us"] = seconds / len(names) * 1e6
    if phones:
        seconds, found = await _lookups(adapter, "by_phone", phones)
        _check(found, len(phones), system.name, "phones")
        m["phone_us"] = seconds / len(phones) * 1e6

    tasks, ops = int(params["tasks"]), int(params["ops_per_task"])
    if watched:
        counts["mix_ops"] = tasks * ops
        cpu = w.process_cpu()
        m["mix_us"] = await _mix(adapter, n, tasks, ops) / (tasks * ops) * 1e6
        m["mix_cpu_us"] = (w.process_cpu() - cpu) / (tasks * ops) * 1e6

    batches = w.small_batches(2 * n, small)
    counts["small_batches"] = len(batches)
    seconds, cpu = await _ingest(adapter, batches, 0)
    m["ingest_small_us"] = seconds / small * 1e6
    m["ingest_small_cpu_us"] = cpu / small * 1e6

    rounds = int(params["roundtrips"])
    if getattr(adapter, "roundtrip", None) is not None and rounds > 0:
        counts["roundtrips"] = rounds
        start = time.perf_counter()
        for _ in range(rounds):
            await adapter.roundtrip()  # type: ignore[misc]
        m["roundtrip_us"] = (time.perf_counter() - start) / rounds * 1e6

    if watched:
        target = adapter.storage

        def looked(method: str, keys: Any) -> Callable[[], Any]:
            return lambda: _lookups(adapter, method, keys, pause=True)

        await watch("id_cached", looked("by_id", hot_keys[:cap]), target)
        await watch("id_absent", looked("by_id", miss_ids[:cap]), target)
        await watch("username", looked("by_username", names[:cap]), target)
        if phones:
            await watch("phone", looked("by_phone", phones[:cap]), target)
        mix_ops = max(1, min(ops, cap // max(1, tasks)))
        await watch("mix", lambda: _mix(adapter, n, tasks, mix_ops, pause=True), target)
        more = w.small_batches(2 * n + small, min(small, cap))
        await watch("ingest_small", lambda: _ingest(adapter, more, 0), target)

    await _call(adapter, "save")
    await _call(adapter, "close")
    m["file_mb"] = _file_mb(adapter)

    if adapter.persistent:
        # A fresh object over the full data: nothing cached yet.
        count = int(params["uncached"])
        timed_ids, watched_ids = uncached[:count], uncached[count:]
        fresh = adapter.reopen()
        await _call(fresh, "open")
        cpu = w.process_cpu()
        seconds, found = await _lookups(fresh, "by_id", timed_ids)
        _check(found, len(timed_ids), system.name, "uncached id lookups")
        m["id_uncached_us"] = seconds / len(timed_ids) * 1e6
        m["id_uncached_cpu_us"] = (w.process_cpu() - cpu) / len(timed_ids) * 1e6
        counts["uncached"] = len(timed_ids)
        if watched and len(watched_ids):
            await watch(
                "id_uncached",
                lambda: _lookups(fresh, "by_id", watched_ids, pause=True),
                fresh.storage,
            )
        await _call(fresh, "close")

        opens, firsts = [], []
        for pid in w.sample_ids(n, int(params["cold_opens"]), seed=w.SEED + 20):
            start = time.perf_counter()
            again = adapter.reopen()  # for_client() is part of it, where there is one
            await _call(again, "open")
            opened = time.perf_counter()
            await _call(again, "by_id", pid)
            firsts.append(time.perf_counter() - start)
            opens.append(opened - start)
            await _call(again, "close")
        m["open_ms"] = statistics.median(opens) * 1000
        m["cold_open_ms"] = statistics.median(firsts) * 1000
        counts["cold_opens"] = len(firsts)

    if isinstance(adapter, OursClient):
        m["for_client_first_ms"] = OursClient.first_call_ms
        spent = []
        for k in range(int(params["for_client_calls"])):
            storage = our_storage(system.backend or "file", f"fc{k}", workdir, uri, OPTIONS)
            start = time.perf_counter()
            adapter.ps.for_client(storage)
            spent.append(time.perf_counter() - start)
        if spent:
            m["for_client_us"] = statistics.median(spent) * 1e6

    m["rss_peak_mb"] = w.peak_rss_mb()
    m["rss_growth_mb"] = m["rss_peak_mb"] - rss_base
    return {
        "metrics": m,
        "loop": loop,
        "idle_ms": idle_ms,
        "counts": counts,
        "config": adapter.config(),
        "rss_start_mb": rss_start,
        "rss_base_mb": rss_base,
        "versions": adapter.versions(),
    }


# -- main --------------------------------------------------------------------------------------


async def run(
    system: System, n: int, workdir: Path, params: dict[str, Any], uri: str | None
) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    if system.suite == "cells":
        result = await run_cells(system, n, workdir, params, uri)
    elif system.suite == "path":
        import client_path

        result = await client_path.run(system, n, workdir, params, uri)
    elif system.suite == "host":
        import host

        result = await host.run(system, n, workdir, params, uri)
    else:
        raise SystemExit(f"{system.name}: unknown suite {system.suite!r}")
    result["versions"] = {
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        **result.get("versions", {}),
    }
    return {
        "system": system.name,
        "suite": system.suite,
        "n": n,
        **result,
        "load": [load_before, os.getloadavg()[0]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("system", choices=sorted(BY_NAME))
    parser.add_argument("n", type=int)
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--params", default="{}", help="JSON overrides of DEFAULT_PARAMS")
    parser.add_argument("--server-uri", help="the server of a system that needs one")
    options = parser.parse_args()
    params = {**DEFAULT_PARAMS, **json.loads(options.params)}
    OPTIONS.clear()
    OPTIONS.update(params["storage_options"])
    options.workdir.mkdir(parents=True, exist_ok=True)
    system = BY_NAME[options.system]
    result = asyncio.run(run(system, options.n, options.workdir, params, options.server_uri))
    print("RESULT " + json.dumps(result), flush=True)
    os._exit(0)  # motor/pymongo may leave threads behind; the result is out


if __name__ == "__main__":
    main()
