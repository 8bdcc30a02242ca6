"""Where the CPU time of an ingest goes: our write path through ``for_client`` against
Kurigram's own file storage, and the SQL writes alone (issue 19, target 2).

Usage, in Kurigram's virtualenv (``tests/clientenv.py``), from the repository root::

    .venvs/clients/kurigram/bin/python benchmarks/profile_write.py [N] [--repeat 3]
        [--out benchmarks/results/issue19-ingest-profile.md]

Part 1 runs the cells' three write workloads (batches of 100, batches of 1-3, churn)
through each system's own dialect, as ``worker.py`` does, and gives wall clock and CPU
time of every thread per peer; for ours it splits the CPU by where it went, with the
thread CPU time (``time.thread_time()``) of: the client glue's fast paths on the event
loop (``_put_peers``, ``_put_names_of``, ``_put_peer``, ``_put_names``), building each
flush's rows (``to_changes``), and the SQL write in the worker thread (``_write``, one
transaction a flush). The rest is the client, the harness and asyncio.

Part 2 times the SQL alone, no event loop: N fresh peers (half with a username) written
by our ``_write`` (the function the worker thread runs) on our schema, a transaction
of 1,000 peers each (a flush), against Kurigram's own statements on Kurigram's own
schema (read from the installed Kurigram), in batches of 100 and one commit at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

import workload as w  # noqa: E402
from systems import BY_NAME  # noqa: E402
from worker import ADAPTERS  # noqa: E402

import pyrogram_storage._engine as engine_  # noqa: E402
import pyrogram_storage._pending as pending_  # noqa: E402
import pyrogram_storage.sqlite.engine as sqlite_engine  # noqa: E402

SPENT: Counter[str] = Counter()


def _charge(owner: Any, name: str, key: str) -> None:
    """Add the thread CPU time of every call of ``owner.name`` to ``SPENT[key]``."""
    original: Callable[..., Any] = getattr(owner, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.thread_time()
        try:
            return original(*args, **kwargs)
        finally:
            SPENT[key] += time.thread_time() - start

    setattr(owner, name, timed)


for _name in ("_put_peers", "_put_names_of", "_put_peer", "_put_names"):
    _charge(engine_.EngineHooks, _name, "glue fast paths (event loop)")
_charge(pending_._Layer, "to_changes", "rows of each flush (event loop)")
_charge(sqlite_engine, "_write", "SQL write (worker thread)")


async def workloads(system_name: str, n: int) -> dict[str, dict[str, float]]:
    """The three write workloads of the cells: µs per peer, wall and CPU, and the split."""
    workdir = Path(tempfile.mkdtemp(prefix="profile-write-"))
    system = BY_NAME[system_name]
    adapter = ADAPTERS[system.kind](system, workdir, "profile", None)
    await adapter.open()  # type: ignore[attr-defined]
    await adapter.set_session()  # type: ignore[attr-defined]
    out: dict[str, dict[str, float]] = {}

    async def run(label: str, chunks: Any, rnd: int, peers: int) -> None:
        SPENT.clear()
        wall, cpu = time.perf_counter(), time.process_time()
        for batch in chunks:
            await adapter.write(batch, rnd)  # type: ignore[attr-defined]
            await asyncio.sleep(0)
        await adapter.save()  # type: ignore[attr-defined]
        row = {
            "wall": (time.perf_counter() - wall) / peers * 1e6,
            "cpu": (time.process_time() - cpu) / peers * 1e6,
        }
        row.update({key: spent / peers * 1e6 for key, spent in SPENT.items()})
        out[label] = row

    await run("ingest, batches of 100", w.batches(range(n)), 0, n)
    churn = list(w.churn_indices(n))
    await run("churn", w.batches(churn), 1, len(churn))
    small = min(20_000, n)
    await run("ingest, batches of 1-3", w.small_batches(2 * n, small), 0, small)
    await adapter.close()  # type: ignore[attr-defined]
    return out


def _peers(n: int) -> list[tuple[int, int, str, str | None, str | None]]:
    return [
        (w.peer_id(i), w.access_hash(i), w.TYPES[i % 10], w.username(i, 0), w.phone(i) or None)
        for i in range(n)
    ]


def sql_ours(n: int) -> float:
    """CPU µs per peer of our ``_write`` storing ``n`` fresh peers, 1,000 a transaction."""
    from pyrogram_storage import FileStorage
    from pyrogram_storage.sqlite.schema import Layout

    workdir = Path(tempfile.mkdtemp(prefix="profile-write-sql-"))

    async def make() -> None:  # our schema, as FileStorage creates it
        async with FileStorage("s", workdir):
            pass

    asyncio.run(make())
    db = sqlite3.connect(workdir / "s.session", isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL").fetchall()
    db.execute("PRAGMA synchronous = NORMAL")
    stamp = int(time.time())
    rows = _peers(n)
    row_type = pending_.PeerRow
    kinds = pending_._TYPES
    start = time.process_time()
    for first in range(0, n, 1000):
        chunk = rows[first : first + 1000]
        changes = pending_.Changes(stamp=stamp, new_peers=frozenset(p[0] for p in chunk))
        changes.peers = [
            row_type(i, h, kinds[k], (name,) if name else (), phone, stamp)
            for i, h, k, name, phone in chunk
        ]
        sqlite_engine._write(db, Layout.UPSTREAM, changes)
    spent = time.process_time() - start
    db.close()
    return spent / n * 1e6


def sql_kurigram(n: int) -> float:
    """CPU µs per peer of Kurigram's own statements on its own schema (its
    ``update_peers`` and ``update_usernames``, batches of 100, one commit at the end)."""
    from pyrogram.storage import sqlite_storage

    path = Path(tempfile.mkdtemp(prefix="profile-write-kurigram-")) / "k.session"
    db = sqlite3.connect(path)
    db.executescript(sqlite_storage.SCHEMA)
    db.commit()
    rows = _peers(n)
    start = time.process_time()
    for first in range(0, n, 100):
        chunk = rows[first : first + 100]
        db.executemany(
            "REPLACE INTO peers (id, access_hash, type, phone_number) VALUES (?, ?, ?, ?)",
            [(i, h, k, phone) for i, h, k, _, phone in chunk],
        )
        named = [(i, name) for i, _, _, name, _ in chunk if name]
        marks = ", ".join("?" for _ in named)
        db.execute(f"DELETE FROM usernames WHERE id IN ({marks})", [i for i, _ in named])
        db.executemany("REPLACE INTO usernames (id, username) VALUES (?, ?)", named)
    db.commit()
    spent = time.process_time() - start
    db.close()
    return spent / n * 1e6


def render(
    parts: dict[str, list[dict[str, dict[str, float]]]],
    sql: dict[str, list[float]],
    n: int,
    command: str,
    uptimes: tuple[str, str],
) -> str:
    def med(values: list[float]) -> str:
        return f"{statistics.median(values):.2f}"

    lines = [
        "# Where an ingest's CPU time goes: ours via for_client vs Kurigram's file storage",
        "",
        f"- Command: `{command}`",
        f"- Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"{os.cpu_count()} cores",
        f"- `uptime` at the start: `{uptimes[0]}`",
        f"- `uptime` at the end: `{uptimes[1]}`",
        f"- N = {n:,} peers; medians of {len(sql['ours'])} runs, each system in a process "
        "of its own; µs per peer. CPU time is every thread of the process "
        "(`time.process_time()`): the load of other processes does not add to it, "
        "where it inflates the wall clock.",
        "",
        "## Part 1: the cells' write workloads",
        "",
        "| workload | ours wall | ours CPU | Kurigram wall | Kurigram CPU | CPU ratio |"
        " glue fast paths (loop) | rows of each flush (loop) | SQL write (thread) |"
        " rest of ours (client, harness, asyncio) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label in parts["ours-client"][0]:
        ours = [run[label] for run in parts["ours-client"]]
        theirs = [run[label] for run in parts["kurigram-file"]]

        def col(runs: list[dict[str, float]], key: str) -> list[float]:
            return [run.get(key, 0.0) for run in runs]

        glue = col(ours, "glue fast paths (event loop)")
        rows = col(ours, "rows of each flush (event loop)")
        sql_ = col(ours, "SQL write (worker thread)")
        rest = [r["cpu"] - g - f - s for r, g, f, s in zip(ours, glue, rows, sql_, strict=True)]
        ratio = statistics.median(col(theirs, "cpu")) / statistics.median(col(ours, "cpu"))
        lines.append(
            f"| {label} | {med(col(ours, 'wall'))} | {med(col(ours, 'cpu'))} | "
            f"{med(col(theirs, 'wall'))} | {med(col(theirs, 'cpu'))} | {ratio:.2f}× | "
            f"{med(glue)} | {med(rows)} | {med(sql_)} | {med(rest)} |"
        )
    lines += [
        "",
        "## Part 2: the SQL alone",
        "",
        "| writer | CPU µs/peer |",
        "|---|---|",
        f"| ours: `_write` on our schema, 1,000 fresh peers a transaction (WAL) | "
        f"{med(sql['ours'])} |",
        f"| Kurigram: its `update_peers` + `update_usernames` statements on its schema, "
        f"batches of 100, one commit | {med(sql['kurigram'])} |",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, nargs="?", default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "issue19-ingest-profile.md")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:  # one system's workloads, in a process of its own
        import json

        print(json.dumps(asyncio.run(workloads(options.child, options.n))))
        return 0
    import json

    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    parts: dict[str, list[dict[str, dict[str, float]]]] = {"ours-client": [], "kurigram-file": []}
    sql: dict[str, list[float]] = {"ours": [], "kurigram": []}
    for _ in range(options.repeat):
        for system in parts:
            argv = [sys.executable, __file__, str(options.n), "--child", system]
            done = subprocess.run(argv, capture_output=True, text=True, check=True)
            parts[system].append(json.loads(done.stdout.strip().splitlines()[-1]))
        sql["ours"].append(sql_ours(options.n))
        sql["kurigram"].append(sql_kurigram(options.n))
    end = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    command = "python benchmarks/profile_write.py " + " ".join(sys.argv[1:])
    options.out.write_text(render(parts, sql, options.n, command, (uptime, end)))
    print(f"wrote {options.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
