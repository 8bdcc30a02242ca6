"""Break our FileStorage's ingest down: time per peer, on-loop time per call, GC pauses.

Usage::

    python benchmarks/profile_ingest.py [N] [--client] [--cprofile]

Ingests N peers in batches of 100 (the benchmark's first phase) through the public API
(``--client``: through ``for_client``, in a client's virtualenv), under the loop watch
of ``workload.LoopWatch``, and prints where the event loop's time went. ``--cprofile``
adds the top functions by cumulative time.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import workload as w
from systems import BY_NAME
from worker import ADAPTERS


async def main(n: int, client: bool, profile: bool) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    system = BY_NAME["ours-client" if client else "ours-file"]
    adapter = ADAPTERS[system.kind](system, workdir, "profile", None)
    await adapter.open()  # type: ignore[attr-defined]
    profiler = cProfile.Profile() if profile else None
    start = time.perf_counter()
    async with w.LoopWatch(adapter.storage) as watch:
        if profiler is not None:
            profiler.enable()
        for batch in w.batches(range(n)):
            await adapter.write(batch, 0)  # type: ignore[attr-defined]
            await asyncio.sleep(0)
        await adapter.save()  # type: ignore[attr-defined]
        if profiler is not None:
            profiler.disable()
    total = time.perf_counter() - start
    await adapter.close()  # type: ignore[attr-defined]
    stats = watch.result
    print(
        f"N={n}: {total / n * 1e6:.1f} µs/peer; on the loop {stats['onloop_us']:.1f} µs a "
        f"call over {stats['calls']} calls; longest step {stats['onloop_max_ms']:.2f} ms "
        f"CPU ({stats['onloop_max_call']}), {stats['onloop_wall_max_ms']:.2f} ms wall; "
        f"longest GC {stats['gc_max_ms']:.2f} ms of {stats['gc_collections']}; "
        f"ticker {stats['ticker_ms']:.2f} ms"
    )
    for name, us in stats["per_call_us"].items():
        print(f"  {name:24} {us:10.1f} µs on the loop a call")
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=100_000)
    parser.add_argument("--client", action="store_true", help="through for_client")
    parser.add_argument("--cprofile", action="store_true")
    options = parser.parse_args()
    asyncio.run(main(options.n, options.client, options.cprofile))
