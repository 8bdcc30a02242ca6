"""What an import moves to the collector's oldest generation, watched lightly.

Usage (in the Kurigram virtualenv, ``tests/clientenv.py``)::

    .venvs/clients/kurigram/bin/python benchmarks/gc_promotions.py [N] [--system NAME]
        [--collected] [--census]

Ingests N peers in batches of 100 (the cells suite's first phase) through ``--system``
(``ours-client``: our FileStorage via for_client; ``kurigram-file``: Kurigram's own),
and prints every full collection (at how many peers, its thread CPU time) and how many
objects the collections of generation 1 moved to the oldest generation: CPython starts
a full collection once those reach a quarter of the objects there at the last one.

Unlike ``profile_memory.py --promoted``, whose callback classifies every object and
makes each young collection last ~10 ms, this one only takes the length of the oldest
generation before and after each collection of generation 1 (~1 ms at 100k objects),
so that the batches in flight live across about as many collections as unwatched;
``--census`` adds the promoted objects by type (cheap names only). ``--collected``
runs ``gc.collect()`` once the storage is open: what the import and the open left
to promote is settled first, and the full collections left are the ingest's own.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import workload as w
from systems import BY_NAME
from worker import ADAPTERS


def _kind(obj: object) -> str:
    kind = type(obj)
    if kind is types.FunctionType:
        return f"function {obj.__qualname__}"  # type: ignore[attr-defined]
    if kind is tuple:
        return f"tuple({', '.join(type(item).__name__ for item in obj)})"  # type: ignore[attr-defined]
    if kind is list:
        return f"list of {len(obj)}"  # type: ignore[arg-type]
    return kind.__qualname__


class Watch:
    """Full collections (peers written, thread CPU ms) and what generation 1 promoted."""

    def __init__(self, census: bool) -> None:
        self.peers = 0
        self.full: list[tuple[int, float]] = []
        self.promoted = 0
        self.kinds: collections.Counter[str] = collections.Counter()
        self._census = census
        self._oldest = 0
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        generation = info["generation"]
        if generation == 1:
            oldest = gc.get_objects(2)
            if phase == "start":
                self._oldest = len(oldest)
            else:  # a collection appends its survivors to the oldest generation
                self.promoted += len(oldest) - self._oldest
                if self._census:
                    self.kinds.update(_kind(obj) for obj in oldest[self._oldest :])
            del oldest
        elif generation == 2:
            if phase == "start":
                self._start = time.thread_time()
            else:
                self.full.append((self.peers, (time.thread_time() - self._start) * 1000))


async def main(n: int, system_name: str, collected: bool, census: bool) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-gc-"))
    system = BY_NAME[system_name]
    w.settle()
    adapter = ADAPTERS[system.kind](system, workdir, "gc", None)
    await adapter.open()  # type: ignore[attr-defined]
    await adapter.set_session()  # type: ignore[attr-defined]
    if collected:
        gc.collect()
    watch = Watch(census)
    gc.callbacks.append(watch)
    start = time.perf_counter()
    for batch in w.batches(range(n)):
        await adapter.write(batch, 0)  # type: ignore[attr-defined]
        watch.peers += len(batch)
        await asyncio.sleep(0)
    await adapter.save()  # type: ignore[attr-defined]
    spent = time.perf_counter() - start
    gc.callbacks.remove(watch)
    full = ", ".join(f"{peers:,} ({ms:.1f} ms)" for peers, ms in watch.full) or "none"
    print(f"{system_name}, {n:,} peers{' (collected first)' if collected else ''}, {spent:.1f} s")
    print(f"  full collections at: {full}")
    print(f"  moved to the oldest generation: {watch.promoted:,} ({watch.promoted / n:.3f} a peer)")
    for kind, count in watch.kinds.most_common(15):
        print(f"    {count:>8,}  {kind}")
    await adapter.close()  # type: ignore[attr-defined]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=100_000)
    parser.add_argument("--system", default="ours-client", choices=["ours-client", "kurigram-file"])
    parser.add_argument("--collected", action="store_true", help="gc.collect() once open")
    parser.add_argument("--census", action="store_true", help="promoted objects by type")
    options = parser.parse_args()
    asyncio.run(main(options.n, options.system, options.collected, options.census))
