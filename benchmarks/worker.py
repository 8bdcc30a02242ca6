"""Run the benchmark workload against one system at one N, in this process.

Usage (``run.py`` does this for you, one fresh process per system and N, each with the
python that has the system installed)::

    python benchmarks/worker.py SYSTEM N WORKDIR [--params JSON] [--mongo-uri URI]

Prints one line ``RESULT <json>`` on stdout. Each process measures one system only,
so its peak RSS (``resource.getrusage``) belongs to that system alone.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import os
import platform
import sqlite3
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import workload as w

REPO = Path(__file__).resolve().parent.parent

DEFAULT_PARAMS = {
    "lookups": 100_000,  # id hits; misses are a tenth of it
    "usernames": 10_000,
    "phones": 10_000,
    "tasks": 50,
    "ops_per_task": 100,
    "roundtrips": 200,
    "cold_opens": 3,
}


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


# -- adapters: one small class per system, all with the same async surface ----------------


class Adapter:
    """The operations the workload needs, in one system's own dialect."""

    sync = False  # the raw-sqlite3 reference has plain methods, called without await
    file_based = True

    def __init__(self, workdir: Path, name: str) -> None:
        self.workdir = workdir
        self.name = name

    def versions(self) -> dict[str, str | None]:
        return {}

    def files(self) -> list[Path]:
        return [
            self.workdir / (self.name + suffix)
            for suffix in (".session", ".session-wal", ".session-shm", ".session-journal")
        ]

    def reopen(self) -> Adapter:
        return type(self)(self.workdir, self.name)


class Ours(Adapter):
    """pyrogram_storage through its neutral API (upsert_peers, peer_by_id, ...)."""

    def __init__(self, workdir: Path, name: str, memory: bool = False) -> None:
        super().__init__(workdir, name)
        import pyrogram_storage as ps

        self.ps = ps
        self.memory = memory
        self.file_based = not memory
        if memory:
            self.storage: Any = ps.MemoryStorage(name)
        else:
            self.storage = ps.FileStorage(name, workdir)
        self.types = {kind: ps.PeerType(kind) for kind in set(w.TYPES)}

    def versions(self) -> dict[str, str | None]:
        import aiosqlite

        return {"pyrogram_storage": self.ps.__version__, "aiosqlite": aiosqlite.__version__}

    def reopen(self) -> Adapter:
        return Ours(self.workdir, self.name, self.memory)

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


class OursMongo(Ours):
    """pyrogram_storage.MongoStorage on the benchmark's SecantusDB (or mongod) server."""

    file_based = False

    def __init__(self, workdir: Path, name: str, uri: str) -> None:
        Adapter.__init__(self, workdir, name)
        import pyrogram_storage as ps

        self.ps = ps
        self.uri = uri
        self.memory = False
        self.storage = _make_our_mongo(ps, name, uri)
        self.types = {kind: ps.PeerType(kind) for kind in set(w.TYPES)}

    def versions(self) -> dict[str, str | None]:
        return {
            "pyrogram_storage": self.ps.__version__,
            "pymongo": _version("pymongo"),
            "SecantusDB": _version("SecantusDB"),
        }

    def reopen(self) -> Adapter:
        return OursMongo(self.workdir, self.name, self.uri)

    def files(self) -> list[Path]:
        return []

    async def close(self) -> None:
        await self.storage.close()


def _make_our_mongo(ps: Any, name: str, uri: str) -> Any:
    """Build our MongoStorage from a URI, whichever constructor form it offers."""
    cls = ps.MongoStorage
    if hasattr(cls, "from_url"):
        return (
            cls.from_url(uri, name=name)
            if _takes(cls.from_url, "name")
            else cls.from_url(uri, name)
        )
    from pymongo import AsyncMongoClient

    return cls(name, AsyncMongoClient(uri))


def _takes(fn: Any, param: str) -> bool:
    import inspect

    try:
        return param in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


class RawSQLite(Adapter):
    """The reference: sqlite3, our schema, WAL + synchronous=NORMAL, executemany, no asyncio.

    It does the same writes as our upsert_peers (one transaction per batch) and the
    smallest reads a client needs (id, access_hash, type).
    """

    sync = True

    def versions(self) -> dict[str, str | None]:
        return {}

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

    def __init__(self, workdir: Path, name: str, memory: bool = False) -> None:
        super().__init__(workdir, name)
        from pyrogram.storage import SQLiteStorage

        self.cls = SQLiteStorage
        self.memory = memory
        self.file_based = not memory
        self.storage = SQLiteStorage(name, workdir, in_memory=memory)

    def versions(self) -> dict[str, str | None]:
        return {"kurigram": _version("kurigram")}

    def reopen(self) -> Adapter:
        return Kurigram(self.workdir, self.name, self.memory)

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


class OursAsKurigram(Kurigram):
    """Our FileStorage as Kurigram drives it: ``for_client(storage, "kurigram")``."""

    def __init__(self, workdir: Path, name: str, memory: bool = False) -> None:
        Adapter.__init__(self, workdir, name)
        import pyrogram_storage as ps
        from pyrogram_storage.clients import for_client

        self.ps = ps
        self.for_client = for_client
        self.memory = False
        self.storage = for_client(ps.FileStorage(name, workdir), "kurigram")

    def versions(self) -> dict[str, str | None]:
        return {"pyrogram_storage": self.ps.__version__, "kurigram": _version("kurigram")}

    def reopen(self) -> Adapter:
        return OursAsKurigram(self.workdir, self.name)

    async def roundtrip(self) -> None:
        text = await self.storage.export_session_string()
        other = self.for_client(self.ps.MemoryStorage("roundtrip", session_string=text), "kurigram")
        await other.open()
        assert await other.auth_key() == w.AUTH_KEY
        await other.close()


class Pyrogram(Kurigram):
    """Pyrogram 2.0.106's own FileStorage / MemoryStorage, its 5-tuple dialect."""

    def __init__(self, workdir: Path, name: str, memory: bool = False) -> None:
        Adapter.__init__(self, workdir, name)
        from pyrogram.storage import FileStorage, MemoryStorage

        self.memory_cls = MemoryStorage
        self.memory = memory
        self.file_based = not memory
        self.storage = MemoryStorage(name) if memory else FileStorage(name, workdir)

    def versions(self) -> dict[str, str | None]:
        return {"pyrogram": _version("pyrogram")}

    def reopen(self) -> Adapter:
        return Pyrogram(self.workdir, self.name, self.memory)

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

    file_based = False

    def __init__(self, workdir: Path, name: str, uri: str) -> None:
        Adapter.__init__(self, workdir, name)
        from motor.motor_asyncio import AsyncIOMotorClient
        from pyrogram.storage import MongoStorage

        self.uri = uri
        self.memory = False
        self.storage = MongoStorage(name, AsyncIOMotorClient(uri))

    def versions(self) -> dict[str, str | None]:
        return {
            "pyrofork": _version("pyrofork"),
            "motor": _version("motor"),
            "pymongo": _version("pymongo"),
        }

    def reopen(self) -> Adapter:
        return PyroforkMongo(self.workdir, self.name, self.uri)

    def files(self) -> list[Path]:
        return []

    async def write(self, indices: list[int], rnd: int) -> None:
        await super().write(indices, rnd)
        await self.storage.update_usernames([])  # the client always calls it, even empty

    roundtrip = None  # type: ignore[assignment]


def make_adapter(system: str, workdir: Path, name: str, mongo_uri: str | None) -> Adapter:
    if system == "ours-file":
        return Ours(workdir, name)
    if system == "ours-memory":
        return Ours(workdir, name, memory=True)
    if system == "ours-mongo":
        assert mongo_uri, "ours-mongo needs --mongo-uri"
        return OursMongo(workdir, name, mongo_uri)
    if system == "raw-sqlite":
        return RawSQLite(workdir, name)
    if system == "kurigram-file":
        return Kurigram(workdir, name)
    if system == "ours-kurigram":
        return OursAsKurigram(workdir, name)
    if system == "kurigram-memory":
        return Kurigram(workdir, name, memory=True)
    if system == "pyrogram-file":
        return Pyrogram(workdir, name)
    if system == "pyrogram-memory":
        return Pyrogram(workdir, name, memory=True)
    if system == "pyrofork-mongo":
        assert mongo_uri, "pyrofork-mongo needs --mongo-uri"
        return PyroforkMongo(workdir, name, mongo_uri)
    raise SystemExit(f"unknown system {system!r}")


# -- the workload ---------------------------------------------------------------------------


async def _call(adapter: Adapter, method: str, *args: Any) -> Any:
    result = getattr(adapter, method)(*args)
    if not adapter.sync:
        result = await result
    return result


async def _lookup_loop(adapter: Adapter, method: str, keys: Any) -> tuple[float, int]:
    """Time ``len(keys)`` lookups; return (seconds, how many were found)."""
    fn = getattr(adapter, method)
    found = 0
    start = time.perf_counter()
    if adapter.sync:
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


async def _ingest(adapter: Adapter, chunks: list[list[int]] | Any, rnd: int) -> float:
    start = time.perf_counter()
    if adapter.sync:
        for batch in chunks:
            adapter.write(batch, rnd)
    else:
        for batch in chunks:
            await adapter.write(batch, rnd)
            # A client gets each batch from the network: the loop runs other tasks between.
            await asyncio.sleep(0)
    await _call(adapter, "save")
    return time.perf_counter() - start


async def _concurrent(adapter: Adapter, n: int, tasks: int, ops: int) -> float:
    """``tasks`` tasks, each ``ops`` operations: 1 in 10 writes 10 peers, 1 in 10 a
    username lookup, the rest id lookups (hits)."""
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

    start = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(tasks)))
    return time.perf_counter() - start


def _file_mb(adapter: Adapter) -> float | None:
    if not adapter.file_based:
        return None
    return sum(p.stat().st_size for p in adapter.files() if p.exists()) / 2**20


async def run(
    system: str, n: int, workdir: Path, params: dict[str, Any], mongo_uri: str | None
) -> dict[str, Any]:
    name = f"bench_{system.replace('-', '_')}_{n}"
    load_before = os.getloadavg()[0]
    rss_start = w.current_rss_mb()
    adapter = make_adapter(system, workdir, name, mongo_uri)
    lookups = int(params["lookups"])
    hit_ids = w.sample_ids(n, lookups)
    miss_ids = w.sample_ids(n, max(1, lookups // 10), miss=True)
    names = w.sample_usernames(n, int(params["usernames"]))
    phones = w.sample_phones(n, int(params["phones"])) if n >= 10 else []
    rss_base = w.current_rss_mb()
    m: dict[str, Any] = {}
    counts: dict[str, Any] = {
        "n": n,
        "lookups": lookups,
        "misses": len(miss_ids),
        "usernames": len(names),
        "phones": len(phones),
    }

    await _call(adapter, "open")
    await _call(adapter, "set_session")

    ticker = w.Ticker()
    if not adapter.sync:
        ticker.start()
    seconds = await _ingest(adapter, w.batches(range(n)), 0)
    stall = await ticker.stop()
    m["insert_us"] = seconds / n * 1e6
    m["stall_ms"] = None if adapter.sync else stall

    churn = list(w.churn_indices(n))
    counts["churn"] = len(churn)
    if churn:
        m["churn_us"] = await _ingest(adapter, w.batches(churn), 1) / len(churn) * 1e6

    seconds, found = await _lookup_loop(adapter, "by_id", hit_ids)
    if found != len(hit_ids):
        raise SystemExit(f"{system}: {len(hit_ids) - found} id hits not found")
    m["id_hit_us"] = seconds / len(hit_ids) * 1e6
    seconds, found = await _lookup_loop(adapter, "by_id", miss_ids)
    if found:
        raise SystemExit(f"{system}: {found} id misses were found")
    m["id_miss_us"] = seconds / len(miss_ids) * 1e6
    seconds, found = await _lookup_loop(adapter, "by_username", names)
    if found != len(names):
        raise SystemExit(f"{system}: {len(names) - found} usernames not found")
    m["username_us"] = seconds / len(names) * 1e6
    if phones:
        seconds, found = await _lookup_loop(adapter, "by_phone", phones)
        if found != len(phones):
            raise SystemExit(f"{system}: {len(phones) - found} phones not found")
        m["phone_us"] = seconds / len(phones) * 1e6

    if not adapter.sync:
        tasks, ops = int(params["tasks"]), int(params["ops_per_task"])
        counts["concurrent_ops"] = tasks * ops
        m["concurrent_us"] = await _concurrent(adapter, n, tasks, ops) / (tasks * ops) * 1e6

    rounds = int(params["roundtrips"])
    if getattr(adapter, "roundtrip", None) is not None and rounds > 0:
        counts["roundtrips"] = rounds
        start = time.perf_counter()
        for _ in range(rounds):
            await adapter.roundtrip()  # type: ignore[misc]
        m["roundtrip_us"] = (time.perf_counter() - start) / rounds * 1e6

    await _call(adapter, "save")
    await _call(adapter, "close")
    m["file_mb"] = _file_mb(adapter)

    if adapter.file_based or system.endswith("mongo"):
        samples = []
        first = w.sample_ids(n, int(params["cold_opens"]), seed=w.SEED + 20)
        for pid in first:
            again = adapter.reopen()
            start = time.perf_counter()
            await _call(again, "open")
            await _call(again, "by_id", pid)
            samples.append(time.perf_counter() - start)
            await _call(again, "close")
        m["cold_open_ms"] = statistics.median(samples) * 1000
        counts["cold_opens"] = len(samples)

    m["rss_peak_mb"] = w.peak_rss_mb()
    m["rss_growth_mb"] = m["rss_peak_mb"] - rss_base
    return {
        "system": system,
        "n": n,
        "metrics": m,
        "counts": counts,
        "load": [load_before, os.getloadavg()[0]],
        "rss_start_mb": rss_start,
        "rss_base_mb": rss_base,
        "versions": {
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
            **adapter.versions(),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("system")
    parser.add_argument("n", type=int)
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--params", default="{}", help="JSON overrides of DEFAULT_PARAMS")
    parser.add_argument("--mongo-uri")
    options = parser.parse_args()
    params = {**DEFAULT_PARAMS, **json.loads(options.params)}
    options.workdir.mkdir(parents=True, exist_ok=True)
    result = asyncio.run(run(options.system, options.n, options.workdir, params, options.mongo_uri))
    print("RESULT " + json.dumps(result), flush=True)
    os._exit(0)  # motor/pymongo may leave threads behind; the result is out


if __name__ == "__main__":
    main()
