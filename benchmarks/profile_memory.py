"""Where an import's memory and garbage collections go: our FileStorage through for_client.

Usage (in the Kurigram virtualenv, ``tests/clientenv.py``)::

    .venvs/clients/kurigram/bin/python benchmarks/profile_memory.py [N] [--churn] [--promoted]

Ingests N peers in batches of 100 (the cells suite's first phase, then its churn with
``--churn``) through ``for_client(FileStorage(...))``, and prints the RSS growth as it
goes, SQLite's own memory (``sqlite3_memory_used``), the compact index's arrays, and
every garbage collection by generation. ``--promoted`` also counts, by type, the objects
each collection of generation 1 moved to the oldest generation: what makes the full
collections come (one every time they reach a quarter of the objects already there).
That count slows the run down and costs memory of its own: read the RSS without it.
``--freeze`` moves the client's objects out of the collector's reach too (``gc.freeze()``
once the client is imported, as an application may): the full collections that remain
are those of what the storage and the run create. At the end, glibc's view of the C
heap (``mallinfo2``: in use, free but kept) and what ``malloc_trim(0)`` gives back.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import ctypes
import ctypes.util
import gc
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import workload as w
from systems import BY_NAME
from worker import ADAPTERS


def _sqlite_memory() -> Any:
    name = ctypes.util.find_library("sqlite3")
    if name is None:
        return lambda: float("nan")
    used = ctypes.CDLL(name).sqlite3_memory_used
    used.restype = ctypes.c_int64
    return lambda: used() / 2**20


class Collections:
    """Every collection's thread CPU time by generation; with ``promoted``, what each
    collection of generation 1 moved to the oldest generation, by type."""

    def __init__(self, promoted: bool) -> None:
        self.pauses: dict[int, list[float]] = collections.defaultdict(list)
        self.promoted: collections.Counter[str] = collections.Counter()
        self._watch = promoted
        self._start = 0.0
        self._oldest = 0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        generation = info["generation"]
        if self._watch and generation == 1:
            gc.disable()  # the objects listed here must not start a collection
            try:
                oldest = gc.get_objects(2)
                if phase == "start":
                    self._oldest = len(oldest)
                else:  # a collection appends the survivors to the oldest generation
                    for obj in oldest[self._oldest :]:
                        self.promoted[_kind(obj)] += 1
                del oldest
            finally:
                gc.enable()
        if phase == "start":
            self._start = time.thread_time()
        else:
            self.pauses[generation].append(time.thread_time() - self._start)


def _kind(obj: object) -> str:
    name = type(obj).__name__
    if type(obj) is tuple and obj:
        return f"tuple({', '.join(type(item).__name__ for item in obj)})"
    if type(obj) in (list, dict, set) and len(obj) == 1:  # type: ignore[arg-type]
        return f"{name} of one"
    return name


def _census() -> collections.Counter[str]:
    """The tracked objects (not frozen) by owner: the top-level package of a function's
    or a class's module, of an instance's class, or ``builtins`` (dicts, tuples...)."""
    owners: collections.Counter[str] = collections.Counter()
    for obj in gc.get_objects():
        module = getattr(obj, "__module__", None) if callable(obj) else None
        if not isinstance(module, str):
            module = getattr(obj, "__name__", None) if type(obj).__name__ == "module" else None
        if not isinstance(module, str):
            module = type(obj).__module__
        owners[module.split(".")[0]] += 1
    return owners


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _heap_report(base: float) -> None:
    """glibc's view of the C heap (the arrays, SQLite's pages): in use, free but kept;
    and what ``malloc_trim(0)`` would give back to the system."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.mallinfo2.restype = _MallInfo2
    except (OSError, AttributeError):
        return
    info = libc.mallinfo2()
    print(
        f"C heap (main arena and threads'): {info.uordblks / 2**20:.1f} MB in use, "
        f"{info.fordblks / 2**20:.1f} MB free but kept, {info.hblkhd / 2**20:.1f} MB mmapped"
    )
    before = w.current_rss_mb()
    libc.malloc_trim(0)
    print(f"malloc_trim(0): RSS growth {before - base:.1f} -> {w.current_rss_mb() - base:.1f} MB")


async def main(n: int, churn: bool, promoted: bool, freeze: bool) -> None:
    sqlite_mb = _sqlite_memory()
    workdir = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    system = BY_NAME["ours-client"]
    w.settle()
    adapter = ADAPTERS[system.kind](system, workdir, "profile", None)
    if freeze:  # what an application may do once its imports are done
        gc.collect()
        gc.freeze()
    base = w.current_rss_mb()
    await adapter.open()  # type: ignore[attr-defined]
    await adapter.set_session()  # type: ignore[attr-defined]
    watch = Collections(promoted)
    gc.callbacks.append(watch)
    start = time.perf_counter()
    every = max(1, n // 1000)  # batches of 100: ten lines
    print("peers      RSS growth (MB)  peak (MB)  SQLite (MB)")
    for k, batch in enumerate(w.batches(range(n))):
        await adapter.write(batch, 0)  # type: ignore[attr-defined]
        await asyncio.sleep(0)
        if k % every == 0:
            rss, peak = w.current_rss_mb() - base, w.peak_rss_mb() - base
            print(f"{k * 100:>9,}  {rss:15.1f}  {peak:9.1f}  {sqlite_mb():11.1f}")
    await adapter.save()  # type: ignore[attr-defined]
    ingest_s = time.perf_counter() - start
    print(
        f"ingested {n:,} in {ingest_s:.1f} s: RSS growth {w.current_rss_mb() - base:.1f} MB, "
        f"peak {w.peak_rss_mb() - base:.1f} MB"
    )
    if churn:
        for batch in w.batches(list(w.churn_indices(n))):
            await adapter.write(batch, 1)  # type: ignore[attr-defined]
            await asyncio.sleep(0)
        await adapter.save()  # type: ignore[attr-defined]
        print(f"after the churn: peak RSS growth {w.peak_rss_mb() - base:.1f} MB")
    gc.callbacks.remove(watch)
    for generation, pauses in sorted(watch.pauses.items()):
        pauses.sort()
        print(
            f"generation {generation}: {len(pauses)} collections, longest "
            f"{pauses[-1] * 1000:.2f} ms, median {pauses[len(pauses) // 2] * 1000:.2f} ms"
        )
    if promoted:
        total = sum(watch.promoted.values())
        print(f"moved to the oldest generation: {total:,} objects ({total / n:.3f} a peer)")
        for kind, count in watch.promoted.most_common(12):
            print(f"  {count:>9,}  {kind}")
    start = time.thread_time()
    gc.collect()
    print(
        f"one full collection now: {(time.thread_time() - start) * 1000:.1f} ms over "
        f"{len(gc.get_objects()):,} tracked objects ({gc.get_freeze_count():,} frozen)"
    )
    print("tracked objects a full collection scans, by the package of their type or module:")
    for owner, count in _census().most_common(8):
        print(f"  {count:>9,}  {owner}")
    engine = adapter.neutral._peer_engine  # type: ignore[attr-defined]
    index = engine.index
    if index is not None:
        held = sum(sys.getsizeof(chunk) for column in index._columns() for chunk in column)
        pairs = index._owners.nbytes()
        print(
            f"compact index: {len(index):,} peers, arrays {held / 2**20:.1f} MB, phone owners "
            f"{pairs / 2**20:.1f} MB ({(held + pairs) / len(index):.1f} bytes a peer)"
        )
    print(f"cache: {len(engine.cache):,} peers; held whole: {engine.complete}")
    _heap_report(base)
    await adapter.close()  # type: ignore[attr-defined]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=1_000_000)
    parser.add_argument("--churn", action="store_true", help="re-send 10%% with new usernames")
    parser.add_argument("--promoted", action="store_true", help="count promoted objects")
    parser.add_argument(
        "--freeze", action="store_true", help="gc.freeze() after the client's import too"
    )
    options = parser.parse_args()
    asyncio.run(main(options.n, options.churn, options.promoted, options.freeze))
