"""A multi-account host: many sessions open in one process, each used a little.

Runs in Kurigram's virtualenv. One session file of N peers is written through the
storage (Kurigram's dialect: ``update_peers`` + ``update_usernames``, batches of 100)
and copied ``sessions`` times; then every copy is opened in this one process
(``for_client(FileStorage(...))`` for ours, Kurigram's ``SQLiteStorage`` for the
anchor) and, all sessions at once, each looks up a few peers by id and writes a few
(a peer and an update state each time), as many small bots on one host would. What
is measured with everything open: the process's RSS, its threads and its open file
descriptors, in all and per session, and the time to open and to close them all.
"""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import time
from pathlib import Path
from typing import Any

import workload as w
from backends import OPTIONS, our_storage, our_versions, version
from client_path import populate, set_session
from systems import System


def threads() -> int:
    """The process's OS threads (Python's and native ones alike)."""
    return len(os.listdir("/proc/self/task"))


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _storage(system: System, name: str, workdir: Path) -> Any:
    if system.kind == "own":
        from pyrogram.storage import SQLiteStorage

        return SQLiteStorage(name, workdir)
    import pyrogram_storage

    assert system.backend is not None
    return pyrogram_storage.for_client(our_storage(system.backend, name, workdir, None, OPTIONS))


async def run(
    system: System, n: int, workdir: Path, params: dict[str, Any], uri: str | None
) -> dict[str, Any]:
    from pyrogram.storage import UpdateState

    count = int(params["sessions"])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:  # a host of many sessions raises its own limit the same way
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    template = _storage(system, "template", workdir)
    await template.open()
    await set_session(template)
    start = time.perf_counter()
    await populate(template, "kurigram", n)
    await template.save()
    populate_s = time.perf_counter() - start
    await template.close()
    source = workdir / "template.session"
    extra = [p for p in workdir.glob("template.session-*")]
    for k in range(count):
        shutil.copyfile(source, workdir / f"s{k}.session")
        for path in extra:
            shutil.copyfile(path, workdir / path.name.replace("template", f"s{k}", 1))

    del template
    w.settle()
    idle_ms = await w.idle_stall(float(params["idle_s"]))
    rss0, threads0, fds0 = w.current_rss_mb(), threads(), fds()
    storages = [_storage(system, f"s{k}", workdir) for k in range(count)]
    loop: dict[str, Any] = {}
    start = time.perf_counter()
    async with w.LoopWatch(*storages) as watch:
        for storage in storages:
            await storage.open()
            await asyncio.sleep(0)
    open_s = time.perf_counter() - start
    loop["host_open"] = watch.result

    lookups, writes = int(params["host_lookups"]), int(params["host_writes"])

    async def use(k: int, storage: Any) -> None:
        ids = w.sample_ids(n, lookups, seed=w.SEED + 40 + k)
        for pid in ids:
            await storage.get_peer_by_id(pid)
            await asyncio.sleep(0)  # a session's calls come between network waits
        for j in range(writes):
            i = (k * 7 + j) % n
            peer = (w.peer_id(i), w.access_hash(i) + 1, w.TYPES[i % 10], None)
            await storage.update_peers([peer])
            await storage.set_update_state(UpdateState(0, 100 + j, None, None, None))
            await asyncio.sleep(0)

    start = time.perf_counter()
    async with w.LoopWatch(*storages) as watch:
        await asyncio.gather(*(use(k, s) for k, s in enumerate(storages)))
        for storage in storages:
            await storage.save()
    use_s = time.perf_counter() - start
    loop["host_use"] = watch.result
    rss1, threads1, fds1 = w.current_rss_mb(), threads(), fds()

    start = time.perf_counter()
    async with w.LoopWatch(*storages) as watch:
        for storage in storages:
            await storage.close()
            await asyncio.sleep(0)
    close_s = time.perf_counter() - start
    loop["host_close"] = watch.result
    after_close = threads()

    m = {
        "host_rss_mb": rss1,
        "host_rss_growth_mb": rss1 - rss0,
        "host_rss_per_session_mb": (rss1 - rss0) / count,
        "host_threads": threads1,
        "host_threads_per_session": (threads1 - threads0) / count,
        "host_fds_per_session": (fds1 - fds0) / count,
        "host_open_ms": open_s / count * 1000,
        "host_use_ms": use_s / count * 1000,
        "host_close_ms": close_s / count * 1000,
        "host_threads_after_close": after_close,
        "populate_us": populate_s / n * 1e6,
        "rss_peak_mb": w.peak_rss_mb(),
    }
    versions = {"kurigram": version("kurigram")}
    if system.ours:
        versions.update(our_versions())
    return {
        "metrics": m,
        "loop": loop,
        "idle_ms": idle_ms,
        "counts": {"n": n, "sessions": count, "lookups": lookups, "writes": writes},
        "baseline": {"rss_mb": rss0, "threads": threads0, "fds": fds0},
        "versions": versions,
    }
