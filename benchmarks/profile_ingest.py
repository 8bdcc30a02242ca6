"""Break our FileStorage's ingest time down: event-loop side, worker thread, commits, GC.

Usage::

    python benchmarks/profile_ingest.py [N] [--cprofile]

Prints where the time of ``upsert_peers`` goes during an N-peer ingest in batches of
100 (the benchmark's insert phase), and the longest garbage-collector pause, which
shows up as event-loop stalls.
"""

from __future__ import annotations

import asyncio
import cProfile
import gc
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import workload as w
from worker import Ours


async def main(n: int, profile: bool) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    adapter = Ours(workdir, "profile")
    storage = adapter.storage
    spent = {"worker_fn": 0.0, "worker_txn": 0.0, "loop_call": 0.0}
    original_call = storage._call

    async def call(fn: Any) -> Any:
        def timed(db: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(db)
            finally:
                spent["worker_txn"] += time.perf_counter() - start

        start = time.perf_counter()
        try:
            return await original_call(timed)
        finally:
            spent["loop_call"] += time.perf_counter() - start

    storage._call = call
    pauses: list[float] = []
    gc_start = [0.0]

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            gc_start[0] = time.perf_counter()
        elif info["generation"] == 2:
            pauses.append(time.perf_counter() - gc_start[0])

    gc.callbacks.append(on_gc)
    await adapter.open()
    await adapter.set_session()
    ticker = w.Ticker()
    ticker.start()
    profiler = cProfile.Profile() if profile else None
    if profiler:
        profiler.enable()
    start = time.perf_counter()
    for batch in w.batches(range(n)):
        await adapter.write(batch, 0)
        await asyncio.sleep(0)
    await adapter.save()
    total = time.perf_counter() - start
    if profiler:
        profiler.disable()
    stall = await ticker.stop()
    await adapter.close()
    per = 1e6 / n
    print(
        f"N={n}: {total * per:.1f} µs/peer in all; awaiting the worker thread "
        f"{spent['loop_call'] * per:.1f} µs/peer (of which the transaction itself "
        f"{spent['worker_txn'] * per:.1f}); the rest, on the loop: "
        f"{(total - spent['loop_call']) * per:.1f} µs/peer"
    )
    print(
        f"longest loop stall {stall:.1f} ms; {len(pauses)} full GC passes, longest "
        f"{max(pauses, default=0) * 1000:.1f} ms, total {sum(pauses) * 1000:.0f} ms"
    )
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    asyncio.run(main(int(args[0]) if args else 100_000, "--cprofile" in sys.argv))
