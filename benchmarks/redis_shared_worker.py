"""One process of ``redis_shared.py``, run in the Kurigram venv (``tests/clientenv.py``).

Usage: ``python redis_shared_worker.py JSON`` where JSON holds ``mode`` and its arguments:

* ``populate``: fill the session ``name`` of ``system`` with ``n`` workload peers through
  the real Kurigram ``Client`` (as ``client_path.py`` does), set a bot's session, save.
* ``path``: open it with a second ``Client``, print ``ready``, wait for a line on stdin
  (so that two processes start together), hand it ``updates`` updates after ``warmup``
  (the senders of process ``index``: its own seed and its own new users), then flush and
  print ``{"path_us": ...}``: wall time per update, flush included. Before the timed
  updates, ours waits until its memory is filled (shared mode fills it in the
  background after open, within seconds for a bot that runs).
* ``lookups``: ``get_peer_by_id`` through the client's storage for a hot set of 1,000
  peers, ``count`` times (after one pass that fills memory), and once per peer for
  ``count`` distinct peers (a cold lookup each); prints ``{"hot_us", "cold_us"}``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import client_path as cp  # noqa: E402
import workload as w  # noqa: E402
from systems import BY_NAME  # noqa: E402


async def populate(args: dict[str, Any]) -> dict[str, Any]:
    system = BY_NAME[args["system"]]
    client = cp.build_client(system, args["name"], Path(args["workdir"]), args.get("uri"))
    cp.go_offline(client)
    await client.storage.open()
    await cp.set_session(client.storage)
    start = time.perf_counter()
    await cp.populate(client.storage, str(system.venv), int(args["n"]))
    await client.storage.save()
    took = time.perf_counter() - start
    await client.storage.close()
    return {"populate_s": took}


async def path(args: dict[str, Any]) -> dict[str, Any]:
    system = BY_NAME[args["system"]]
    n, index = int(args["n"]), int(args["index"])
    count, warmup = int(args["updates"]), int(args["warmup"])
    fresh = 3 * n + 50_000_000 * (index + 1) + 100_000 * int(args["round"])
    seed = w.SEED + 1000 * (index + 1) + 10 * int(args["round"])
    warm = cp.make_updates(w.update_senders(n, warmup, 0.9, seed, fresh), 1)
    timed = cp.make_updates(
        w.update_senders(n, count, 0.9, seed + 1, fresh + 20 * warmup), 1 + warmup
    )
    client = cp.build_client(system, args["name"], Path(args["workdir"]), args.get("uri"))
    cp.go_offline(client)
    await client.load_session()
    client.is_connected = True
    flush = getattr(getattr(client.storage, "storage", None), "flush", None)
    await cp.drive(client, warm)
    if flush is not None:
        await flush()
    await _memory_filled(client.storage)
    w.settle()
    print(json.dumps("ready"), flush=True)
    sys.stdin.readline()  # go
    profiler = _profiler(args)
    start, cpu = time.perf_counter(), time.process_time()
    await cp.drive(client, timed)
    if flush is not None:
        await flush()
    took, cpu = time.perf_counter() - start, time.process_time() - cpu
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args["profile"])
    await client.storage.save()
    await client.storage.close()
    return {"path_us": took / count * 1e6, "cpu_us": cpu / count * 1e6}


def _profiler(args: dict[str, Any]) -> Any:
    """``profile``: a path to write the cProfile stats of the timed part to."""
    if not args.get("profile"):
        return None
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    return profiler


async def _memory_filled(glue: Any) -> None:
    """Ours: wait until memory holds the stored peers, as a bot's would within seconds of
    start (shared mode fills it in the background; it yields only between updates here)."""
    engine = getattr(getattr(glue, "storage", None), "_peer_engine", None)
    for _ in range(600):
        if engine is None or (engine._warming is None and engine._touched is None):
            return
        await asyncio.sleep(0.1)


async def lookups(args: dict[str, Any]) -> dict[str, Any]:
    system = BY_NAME[args["system"]]
    n, count = int(args["n"]), int(args["count"])
    client = cp.build_client(system, args["name"], Path(args["workdir"]), args.get("uri"))
    cp.go_offline(client)
    await client.load_session()
    storage = client.storage
    get = storage.get_peer_by_id
    _, hot = w.hot_lookups(n, 1000, count)
    for peer_id in hot[:1000]:
        await get(peer_id)
    await _memory_filled(storage)
    for peer_id in hot:
        await get(peer_id)
    start, cpu = time.perf_counter(), time.process_time()
    for peer_id in hot:
        await get(peer_id)
    hot_us = (time.perf_counter() - start) / len(hot) * 1e6
    hot_cpu_us = (time.process_time() - cpu) / len(hot) * 1e6
    cold = list(w.distinct_ids(n, min(count, n), seed=w.SEED + 77))
    profiler = _profiler(args)
    start, cpu = time.perf_counter(), time.process_time()
    for peer_id in cold:
        await get(peer_id)
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args["profile"])
    cold_us = (time.perf_counter() - start) / len(cold) * 1e6
    cold_cpu_us = (time.process_time() - cpu) / len(cold) * 1e6
    await storage.close()
    return {"hot_us": hot_us, "cold_us": cold_us, "hot_cpu_us": hot_cpu_us,
            "cold_cpu_us": cold_cpu_us}  # fmt: skip


MODES = {"populate": populate, "path": path, "lookups": lookups}


def main() -> None:
    args = json.loads(sys.argv[1])
    if args.get("options"):
        from backends import OPTIONS

        # The dict every storage of ours is built with (client_path.build_client reads
        # it): rebinding worker.Ours.options, as this did before, reached none of them.
        OPTIONS.clear()
        OPTIONS.update(args["options"])
    result = asyncio.run(MODES[args["mode"]](args))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
