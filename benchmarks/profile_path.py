"""Where the time of Kurigram's update path goes with our FileStorage: a cProfile by owner.

Usage, from the repository root (it re-runs itself in Kurigram's virtualenv)::

    python benchmarks/profile_path.py 100000 --streams uniform,new [--updates 5000]
        [--out benchmarks/results/issue19-profile.md]

For each stream it builds the path suite's setup (``client_path``: a first ``Client``
fills a FileStorage of N peers through ``for_client``, a second one opens it as
``start()`` does), runs a warm-up, times ``updates`` updates without a profiler (the
reference µs/update), then runs as many fresh updates again under ``cProfile``: the
event loop's thread and the storage's worker threads each have a profiler of their
own (a thread profiler starts at the thread's first call after the profiled pass
begins). Each function's own time (``tottime``) is charged to an owner by its file:
our code (``pyrogram_storage``), Kurigram (``pyrogram``), SQLite (the ``sqlite3``
module's C methods), asyncio, and the rest (the standard library, the harness). The
CPU split between the loop's thread and the others comes from ``time.thread_time()``
and the process's CPU time, without the profiler. Writes a Markdown report.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

OWNERS = ("ours", "Kurigram's storage", "Kurigram", "SQLite", "asyncio", "rest")
IDLE = ("'acquire' of '_thread.lock'", "'poll' of 'select.epoll'", "time.sleep")
"""Blocking waits: a thread parked here does no work (charged to "idle", left out of the
shares; on worker threads cProfile's CPU timer charges them their wall time)."""


def owner(filename: str, name: str) -> str:
    """Who a profiled function belongs to, by its file (or, for C functions, its name)."""
    if "pyrogram_storage" in filename:
        return "ours"
    if "/pyrogram/storage/" in filename:
        return "Kurigram's storage"
    if "/pyrogram/" in filename:
        return "Kurigram"
    if filename == "~":  # a C function: cProfile names it in ``name``
        if "sqlite3" in name:
            return "SQLite"
        if any(wait in name for wait in IDLE):
            return "idle"
        return "rest"
    if "/asyncio/" in filename:
        return "asyncio"
    return "rest"


def _process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class ThreadProfiles:
    """A CPU-time cProfile for every thread started while installed.

    The storage's worker threads outlive any one pass, so ``install()`` also gives
    ``pyrogram_storage._worker`` a new pool: the jobs of the profiled pass run on new
    threads, each profiled from its first call (the old threads stay idle).
    """

    def __init__(self) -> None:
        self.profiles: list[tuple[str, cProfile.Profile]] = []

    def install(self) -> None:
        from pyrogram_storage import _worker

        threading.setprofile(self._hook)
        _worker._POOL = _worker._Pool(_worker.MAX_THREADS)

    def _hook(self, frame: Any, event: str, arg: Any) -> None:
        profile = cProfile.Profile(time.thread_time)
        self.profiles.append((threading.current_thread().name, profile))
        profile.enable()  # replaces this hook as the thread's profile function

    def uninstall(self) -> None:
        threading.setprofile(None)


async def profile_stream(
    n: int, stream: str, updates: int, workdir: Path, system_name: str = "path-kurigram-ours"
) -> dict[str, Any]:
    import client_path as cp
    import workload as w
    from systems import BY_NAME

    system = BY_NAME[system_name]
    name = f"profile_{stream}_{n}"
    first = cp.build_client(system, name, workdir, None)
    cp.go_offline(first)
    await first.storage.open()
    await cp.set_session(first.storage)
    await cp.populate(first.storage, "kurigram", n)
    await first.storage.save()
    await first.storage.close()
    del first

    fresh = 3 * n
    warm = cp.make_updates(w.update_senders(n, 1000, 0.9, w.SEED + 30, fresh, stream), 1)
    fresh += 10 * 1000 + 10
    plain = cp.make_updates(
        w.update_senders(n, updates, 0.9, w.SEED + 31, fresh, stream), 1 + len(warm)
    )
    fresh += 10 * updates + 10
    profiled = cp.make_updates(
        w.update_senders(n, updates, 0.9, w.SEED + 32, fresh, stream),
        1 + len(warm) + len(plain),
    )
    w.settle()

    client = cp.build_client(system, name, workdir, None)
    cp.go_offline(client)
    opening = time.perf_counter()
    await client.load_session()
    opened = time.perf_counter()
    client.is_connected = True
    # Steady state: the peers loaded into memory after open (in the background).
    engine = getattr(getattr(client.storage, "storage", None), "_peer_engine", None)
    loading = getattr(engine, "_loading", None)
    if loading is not None:
        await loading
    loaded = time.perf_counter()
    memory = "bounded"  # read now: close() lets the memory go
    if getattr(engine, "index", None) is not None:
        memory = "compact index"
    elif getattr(engine, "complete", False):
        memory = "complete"
    await cp.drive(client, warm)

    cpu0, proc0, wall0 = time.thread_time(), _process_cpu(), time.perf_counter()
    await cp.drive(client, plain)
    await client.storage.save()
    cpu1, proc1, wall1 = time.thread_time(), _process_cpu(), time.perf_counter()

    main = cProfile.Profile(time.thread_time)
    threads = ThreadProfiles()
    threads.install()
    main.enable()
    start = time.perf_counter()
    await cp.drive(client, profiled)
    await client.storage.save()
    profiled_s = time.perf_counter() - start
    main.disable()
    threads.uninstall()
    await client.storage.close()

    def table(profiles: list[cProfile.Profile]) -> tuple[dict[str, float], list[dict[str, Any]]]:
        by_owner = dict.fromkeys((*OWNERS, "idle"), 0.0)
        rows: list[dict[str, Any]] = []
        if not profiles:
            return by_owner, rows
        stats = pstats.Stats(profiles[0])
        for more in profiles[1:]:
            stats.add(more)
        for (filename, line, func), (_cc, nc, tt, ct, _) in stats.stats.items():  # type: ignore[attr-defined]
            who = owner(filename, func)
            by_owner[who] += tt / updates * 1e6
            where = func if filename == "~" else f"{_short(filename)}:{line} {func}"
            rows.append({"owner": who, "where": where, "calls": nc, "tottime": tt, "cumtime": ct})
        return by_owner, sorted(rows, key=lambda r: -r["tottime"])

    loop_owner, loop_rows = table([main])
    thread_owner, thread_rows = table([p for _, p in threads.profiles])
    return {
        "n": n,
        "stream": stream,
        "system": system.label,
        "updates": updates,
        "path_us": (wall1 - wall0) / updates * 1e6,
        "loop_thread_cpu_us": (cpu1 - cpu0) / updates * 1e6,
        "other_threads_cpu_us": ((proc1 - proc0) - (cpu1 - cpu0)) / updates * 1e6,
        "profiled_us": profiled_s / updates * 1e6,
        "by_owner_us": loop_owner,
        "rows": loop_rows,
        "threads_by_owner_us": thread_owner,
        "thread_rows": thread_rows,
        "threads": [name for name, _ in threads.profiles],
        "load": os.getloadavg()[0],
        "open_ms": (opened - opening) * 1000,
        "memory_fill_ms": (loaded - opened) * 1000,
        "memory": memory,
        "memory_engine": engine is not None,
    }


def _short(filename: str) -> str:
    for marker in ("pyrogram_storage/", "pyrogram/", "asyncio/"):
        if marker in filename:
            return marker + filename.split(marker, 1)[1]
    return Path(filename).name


def render(results: list[dict[str, Any]], top: int, command: str, uptime: str) -> str:
    lines = [
        "# Kurigram's update path: where the time goes (issue 19)",
        "",
        f"- Command: `{command}`",
        f"- Machine load: `{uptime}` (2 cores shared with other work: absolute µs are "
        "inflated; the shares are what to read)",
        "- Each update: `handle_updates` of one `UpdateNewMessage` with its sender + 2 × "
        "`resolve_peer`, through `for_client(FileStorage)` in the real Kurigram 2.2.26 "
        "`Client`, session on disk, after the peers have loaded into memory (steady state). "
        "Own CPU time (`tottime`, each thread's `time.thread_time()`: time spent waiting "
        "for the CPU on the loaded machine does not count) per update, charged to the "
        "owner of each function's file; C functions of the `sqlite3` module count as "
        "SQLite. Every thread is profiled (the loop's and the storage's worker threads).",
        "",
    ]
    for r in results:
        total = sum(v for k, v in r["by_owner_us"].items() if k != "idle")
        per = r["updates"]
        lines += [
            f"## {r['system']}: {r['stream']} senders, N = {r['n']:,} ({per:,} updates, "
            f"load {r['load']:.1f})",
            "",
            f"- Without the profiler: **{r['path_us']:.0f} µs/update** wall; CPU of the "
            f"loop's thread {r['loop_thread_cpu_us']:.0f} µs, of the other threads "
            f"(the storage's SQLite work) {r['other_threads_cpu_us']:.0f} µs per update.",
            f"- Open (`load_session`) {r['open_ms']:.1f} ms"
            + (
                f"; the peers were in memory ({r['memory']}) {r['memory_fill_ms']:.0f} ms later."
                if r["memory_engine"]
                else "."
            ),
            f"- Under the profiler: {r['profiled_us']:.0f} µs/update wall; the loop thread's "
            f"profiled own CPU {total:.0f} µs/update (cProfile's own cost inflates every "
            "row about alike: read the shares).",
            "",
            "The event loop's thread (everything the bot waits for):",
            "",
            "| owner | own CPU µs/update | share |",
            "|---|---|---|",
        ]
        for who in OWNERS:
            value = r["by_owner_us"][who]
            lines.append(f"| {who} | {value:.1f} | {value / total:.0%} |")
        lines += _rows(
            f"Top {top} functions on the loop's thread by own CPU:", r["rows"][:top], per
        )
        ours = [row for row in r["rows"] if row["owner"] == "ours"]
        lines += _rows(
            f"Our top {top} functions on the loop's thread by cumulative CPU (what each "
            "entry point costs, callees included):",
            sorted(ours, key=lambda x: -x["cumtime"])[:top],
            per,
        )
        worker = sum(v for k, v in r["threads_by_owner_us"].items() if k != "idle")
        lines += [
            f"The storage's worker threads ({', '.join(r['threads']) or 'none started'}): "
            f"profiled own CPU {worker:.1f} µs/update, blocking waits left out "
            f"({r['threads_by_owner_us'].get('idle', 0):.0f} µs/update parked in a lock: "
            "cProfile's timer charges a worker thread's waits their wall time).",
            "",
            "| owner | own CPU µs/update |",
            "|---|---|",
        ]
        for who in OWNERS:
            lines.append(f"| {who} | {r['threads_by_owner_us'][who]:.1f} |")
        busy = [row for row in r["thread_rows"] if row["owner"] != "idle"]
        lines += _rows("Top 10 functions on the worker threads by own CPU:", busy[:10], per)
        lines.append("")
    return "\n".join(lines)


def _rows(title: str, rows: list[dict[str, Any]], per: int) -> list[str]:
    out = [
        "",
        title,
        "",
        "| owner | function | calls/update | own CPU µs/update | cumulative µs/update |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        out.append(
            f"| {row['owner']} | `{row['where']}` | {row['calls'] / per:.2f} | "
            f"{row['tottime'] / per * 1e6:.2f} | {row['cumtime'] / per * 1e6:.2f} |"
        )
    return [*out, ""]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, nargs="?", default=100_000)
    parser.add_argument("--streams", default="uniform,new")
    parser.add_argument(
        "--systems",
        default="path-kurigram-ours",
        help="path systems of Kurigram to profile (path-kurigram-file: its own storage)",
    )
    parser.add_argument("--updates", type=int, default=5_000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "issue19-profile.md")
    parser.add_argument("--json", type=Path, help=argparse.SUPPRESS)
    options = parser.parse_args()
    try:
        import pyrogram  # noqa: F401
    except ImportError:  # re-run in Kurigram's virtualenv
        sys.path.insert(0, str(REPO / "tests"))
        from clientenv import ensure_env

        python = ensure_env("kurigram")
        return subprocess.run([str(python), __file__, *sys.argv[1:]]).returncode
    streams = [s.strip() for s in options.streams.split(",") if s.strip()]
    if options.json is not None:  # one stream, in a process of its own
        with tempfile.TemporaryDirectory(prefix="profile-path-") as tmp:
            result = asyncio.run(
                profile_stream(options.n, streams[0], options.updates, Path(tmp), options.systems)
            )
        options.json.write_text(json.dumps(result))
        return 0
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    results = []
    # A process per stream: the storage's worker threads outlive an event loop, and
    # their profilers with them.
    systems = [s.strip() for s in options.systems.split(",") if s.strip()]
    for system, stream in [(sy, st) for sy in systems for st in streams]:
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            subprocess.run(
                [
                    sys.executable,
                    __file__,
                    str(options.n),
                    "--streams",
                    stream,
                    "--updates",
                    str(options.updates),
                    "--systems",
                    system,
                    "--json",
                    out.name,
                ],
                check=True,
            )
            results.append(json.loads(Path(out.name).read_text()))
        print(f"{system} {stream}: {results[-1]['path_us']:.0f} µs/update", file=sys.stderr)
    command = "python benchmarks/profile_path.py " + " ".join(sys.argv[1:])
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(render(results, options.top, command, uptime))
    print(f"wrote {options.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
