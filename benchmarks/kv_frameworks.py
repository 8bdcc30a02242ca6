"""Our stores as the bot frameworks' FSM storages, against the frameworks' own storages.

Every round runs ``kv_frameworks_worker.py`` once in the kurigram-addons venv and
once in the aiogram venv (``tests/clientenv.py``, built on first use), against ONE
Redis server (``tests/servers/redisserver.py``), ONE SecantusDB
(``tests/servers/mongoserver.py``) and ONE PostgreSQL server
(``tests/servers/pgserver.py``, fsync on) started here on 127.0.0.1 for the whole run.
Each worker times, one call at a time:

* kurigram-addons (its MemoryStorage, SQLiteStorage and RedisStorage against
  ``kv.for_kurigram_addons`` over MemoryKV, SQLiteKV and RedisKV): ``get_state``,
  ``set_state``, ``increment``, a matching ``compare_and_set``, and a conversation
  step through kurigram-addons' ``FSMContext`` (get state, get data, update data,
  set state);
* aiogram (its MemoryStorage, RedisStorage and PyMongoStorage against
  ``kv.for_aiogram`` over MemoryKV, SQLiteKV, RedisKV (plain, ``client_cache=True``,
  ``sole_writer=True``), PostgresKV (plain, ``sole_writer=True``, and with
  ``commit_interval=0.05`` too: on aiogram's one key, and spread over 1000 users so
  that no write coalesces with another in a window) and MongoKV): ``get_state``,
  ``set_state``, ``get_data``, ``set_data``, ``update_data``, and a step through
  aiogram's ``FSMContext`` (get state, get data, set data, set state);
* the anchors, in both venvs: MemoryKV and RedisKV without an adapter, and raw
  redis-py ``GET``/``SET`` on the same server (the floor for Redis).

Ratios are taken within each round (both systems measured minutes apart at most, on
the same server), then the median over rounds; the machine's load is recorded.

    .venv/bin/python benchmarks/kv_frameworks.py [--repeat 5] [--quick] [--out DIR]
    .venv/bin/python benchmarks/kv_frameworks.py --from-json results/kv-frameworks.json

Writes ``kv-frameworks.md`` and ``kv-frameworks.json``. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests"))

FRAMEWORKS = ("kurigram-addons", "aiogram")
WORKLOADS = {
    "kurigram-addons": ("get", "set", "increment", "CAS", "step"),
    "aiogram": ("get_state", "set_state", "get_data", "set_data", "update_data", "step"),
}
ANCHORS = ("MemoryKV, no adapter", "RedisKV, no adapter", "raw redis-py GET/SET")
# (framework, their system, our system, target "x faster" or None for information)
PAIRS = (
    ("kurigram-addons", "kurigram-addons SQLiteStorage", "ours: SQLiteKV", 10.0),
    ("kurigram-addons", "kurigram-addons RedisStorage", "ours: RedisKV", 1.0),
    ("kurigram-addons", "kurigram-addons MemoryStorage", "ours: MemoryKV", None),
    ("aiogram", "aiogram RedisStorage", "ours: RedisKV", 1.0),
    ("aiogram", "aiogram RedisStorage", "ours: RedisKV (client_cache)", 1.5),
    ("aiogram", "aiogram RedisStorage", "ours: PostgresKV", None),
    ("aiogram", "aiogram RedisStorage", "ours: PostgresKV (sole_writer)", None),
    (
        "aiogram",
        "aiogram RedisStorage",
        "ours: PostgresKV (sole_writer, commit_interval 0.05)",
        1.0,
    ),
    (
        "aiogram",
        "aiogram RedisStorage",
        "ours: PostgresKV (sole_writer, commit_interval 0.05, 1000 users)",
        None,
    ),
    ("aiogram", "aiogram RedisStorage", "ours: RedisKV (sole_writer)", None),
    ("aiogram", "aiogram MemoryStorage", "ours: MemoryKV", None),
    ("aiogram", "aiogram PyMongoStorage", "ours: MongoKV (pymongo)", None),
)


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def _worker(framework: str, servers: dict[str, str], workdir: Path, scale: float) -> Any:
    from clientenv import run_in_env

    config = {"framework": framework, "servers": servers, "workdir": str(workdir), "scale": scale}
    result = run_in_env(
        framework, HERE / "kv_frameworks_worker.py", json.dumps(config), timeout=3600
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def _versions(framework: str) -> str:
    from clientenv import run_in_env

    code = (
        "import importlib.metadata as m\n"
        "names = ['kurigram-addons', 'aiogram', 'redis', 'hiredis', 'pymongo']\n"
        "found = []\n"
        "for n in names:\n"
        "    try: found.append(n + ' ' + m.version(n))\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(', '.join(found))\n"
    )
    return run_in_env(framework, code).stdout.strip()


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _analyse(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of the figures and of the per-round ratios."""
    medians: dict[str, dict[str, dict[str, float]]] = {}
    for framework in FRAMEWORKS:
        systems = rounds[0][framework]
        medians[framework] = {
            system: {w: _median([r[framework][system][w] for r in rounds]) for w in row}
            for system, row in systems.items()
        }
    ratios = []
    for framework, theirs, ours, target in PAIRS:
        if theirs not in rounds[0][framework] or ours not in rounds[0][framework]:
            continue
        per_workload = {
            w: _median([r[framework][theirs][w] / r[framework][ours][w] for r in rounds])
            for w in WORKLOADS[framework]
        }
        ratios.append(
            {
                "framework": framework,
                "theirs": theirs,
                "ours": ours,
                "target": target,
                "faster": per_workload,
            }
        )
    floors = []
    for framework in FRAMEWORKS:
        raw = "raw redis-py GET/SET"
        through = {"kurigram-addons": ("get", "set"), "aiogram": ("get_state", "set_state")}
        for label, system, (get, put) in (
            ("RedisKV alone", "RedisKV, no adapter", ("get", "set")),
            ("RedisKV through the adapter", "ours: RedisKV", through[framework]),
        ):
            floors.append(
                {
                    "framework": framework,
                    "what": label,
                    "get": _median(
                        [r[framework][system][get] / r[framework][raw]["get"] for r in rounds]
                    ),
                    "set": _median(
                        [r[framework][system][put] / r[framework][raw]["set"] for r in rounds]
                    ),
                }
            )
    memory_get = _median([r[f]["MemoryKV, no adapter"]["get"] for r in rounds for f in FRAMEWORKS])
    return {"medians": medians, "ratios": ratios, "floors": floors, "memory_get": memory_get}


def _table(framework: str, medians: dict[str, dict[str, float]]) -> list[str]:
    workloads = WORKLOADS[framework]
    lines = ["| system | " + " | ".join(workloads) + " |", "|---|" + "---:|" * len(workloads)]
    for system, row in medians.items():
        if system in ANCHORS:
            continue
        lines.append(f"| {system} | " + " | ".join(f"{row[w]:.1f}" for w in workloads) + " |")
    return lines


def _report(analysis: dict[str, Any], meta: dict[str, Any]) -> str:
    med = analysis["medians"]
    out = [
        "# The bot frameworks' FSM storages: theirs against ours (µs per call)",
        "",
        f"Medians of {meta['repeat']} rounds, one call at a time on one event loop; "
        f"CPython {meta['python']}; {meta['cores']} cores; Redis server "
        f"{meta['redis_server']}, SecantusDB and PostgreSQL (fsync on) on 127.0.0.1, one of "
        f"each for the run; "
        f"generated {meta['generated']}.",
        "",
        *([f"- command: `{meta['command']}`"] if "command" in meta else []),
        *([f"- code: `{meta['code']}`"] if "code" in meta else []),
        f"- load before: `{meta['uptime_before']}`",
        f"- load after: `{meta['uptime_after']}`",
        f"- load average (1 min) per round: {', '.join(meta['loads'])}",
        f"- kurigram-addons venv: {meta['versions']['kurigram-addons']}",
        f"- aiogram venv: {meta['versions']['aiogram']}",
        "",
        "The machine is shared and was loaded: compare within a table and read the ratios",
        "(taken within each round, median over rounds), not the microseconds.",
        "",
        "## kurigram-addons (`kv.for_kurigram_addons`)",
        "",
        "`step`: one conversation step through kurigram-addons' `FSMContext` "
        "(get_state, get_data, update_data, set_state: 4 reads and 2 compare-and-sets).",
        "",
        *_table("kurigram-addons", med["kurigram-addons"]),
        "",
        "## aiogram (`kv.for_aiogram`)",
        "",
        "`step`: one conversation step through aiogram's `FSMContext` (get_state, get_data, "
        "set_data, set_state). Our `update_data` is atomic (the store's `merge`: one round "
        "trip on Redis, PostgreSQL and SQLite; a read and a compare-and-set on MongoDB); "
        "aiogram's is a read and a write.",
        "",
        "`commit_interval 0.05` rows: each timed window (200 calls, 50 steps) ends with the "
        "store's `flush()` inside the timing, so the batch its writes make is charged to "
        "it (more often than a 0.05 s timer would store at these rates). On aiogram's one "
        "key a window's writes coalesce into one row; the `1000 users` row spreads the "
        "calls over 1000 users (all written once beforehand), so each window stores up to "
        "200 distinct rows in one transaction (`executemany`).",
        "",
        *_table("aiogram", med["aiogram"]),
        "",
        "## Ratios and targets (× faster: their time / our time)",
        "",
    ]
    for ratio in analysis["ratios"]:
        cells = ", ".join(f"{w} {x:.1f}×" for w, x in ratio["faster"].items())
        if ratio["target"] is None:
            verdict = "(information)"
        else:
            missed = [w for w, x in ratio["faster"].items() if x < ratio["target"]]
            verdict = f"target ≥ {ratio['target']:g}×: " + (
                "met" if not missed else "MISSED on " + ", ".join(missed)
            )
        out.append(
            f"- {ratio['ours']} vs {ratio['theirs']} ({ratio['framework']}): {cells} — {verdict}"
        )
    out += [
        "",
        "Redis floor (our time / raw redis-py's GET and SET of a short string, same "
        "server, same client library; the target, ≤ 1.2×, is the store's; through the "
        "adapters for information: kurigram-addons' set writes a whole document):",
        "",
    ]
    for floor in analysis["floors"]:
        if floor["what"] == "RedisKV alone":
            ok = max(floor["get"], floor["set"]) <= 1.2
            verdict = "target ≤ 1.2×: " + ("met" if ok else "MISSED")
        else:
            verdict = "(information)"
        out.append(
            f"- {floor['what']} ({floor['framework']} venv): get {floor['get']:.2f}×, "
            f"set {floor['set']:.2f}× — {verdict}"
        )
    memory_get = analysis["memory_get"]
    out += [
        "",
        f"MemoryKV.get (no adapter): {memory_get:.2f} µs — target ≤ 1 µs: "
        + ("met" if memory_get <= 1.0 else "MISSED"),
        "",
    ]
    anchors = ["| anchor | get | set |", "|---|---:|---:|"]
    for framework in FRAMEWORKS:
        for name in ANCHORS:
            row = med[framework][name]
            anchors.append(f"| {name} ({framework} venv) | {row['get']:.2f} | {row['set']:.2f} |")
    out += ["## Anchors (µs per call)", "", *anchors, ""]
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="a tenth of the calls")
    parser.add_argument("--scale", type=float, default=None, help="multiply the call counts")
    parser.add_argument("--no-mongo", action="store_true")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--from-json", type=Path, help="re-render a kv-frameworks.json")
    options = parser.parse_args()
    scale = options.scale if options.scale is not None else (0.1 if options.quick else 1.0)
    if options.from_json:
        saved = json.loads(options.from_json.read_text())
        text = _report(_analyse(saved["rounds"]), saved["meta"])
        (options.out / "kv-frameworks.md").write_text(text)
        print(text)
        return 0

    from clientenv import ensure_env
    from servers.mongoserver import MongoServer
    from servers.pgserver import PostgresServer
    from servers.redisserver import RedisServer, find_server

    for framework in FRAMEWORKS:
        ensure_env(framework)
    versions = {framework: _versions(framework) for framework in FRAMEWORKS}
    uptime_before = _uptime()
    rounds: list[dict[str, Any]] = []
    loads: list[str] = []
    with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp) / "redis") as redis:
        mongo = None if options.no_mongo else MongoServer(Path(tmp) / "mongo").__enter__()
        # As production runs it: fsync on (the test helper turns it off).
        postgres = (
            None
            if options.no_postgres
            else PostgresServer(settings=["fsync=on", "full_page_writes=on"]).__enter__()
        )
        servers = {"redis": redis.url}
        if mongo is not None:
            servers["mongo"] = mongo.uri
        if postgres is not None:
            servers["postgres"] = postgres.url
        try:
            for index in range(options.repeat):
                this: dict[str, Any] = {}
                # Alternate the order so that neither framework always runs first.
                order = FRAMEWORKS if index % 2 == 0 else FRAMEWORKS[::-1]
                for framework in order:
                    workdir = Path(tmp) / f"{framework}-{index}"
                    this[framework] = _worker(framework, servers, workdir, scale)
                rounds.append(this)
                loads.append(f"{os.getloadavg()[0]:.2f}")
                print(
                    f"round {index + 1}/{options.repeat} done (load {loads[-1]})", file=sys.stderr
                )
        finally:
            if mongo is not None:
                mongo.close()
            if postgres is not None:
                postgres.close()
    meta = {
        "repeat": options.repeat,
        "scale": scale,
        "python": platform.python_version(),
        "cores": os.cpu_count(),
        "redis_server": Path(find_server()).name,
        "generated": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "uptime_before": uptime_before,
        "command": "python benchmarks/kv_frameworks.py " + " ".join(sys.argv[1:]),
        "code": subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
        ).stdout.strip(),
        "uptime_after": _uptime(),
        "loads": loads,
        "versions": versions,
    }
    analysis = _analyse(rounds)
    text = _report(analysis, meta)
    options.out.mkdir(parents=True, exist_ok=True)
    (options.out / "kv-frameworks.md").write_text(text)
    (options.out / "kv-frameworks.json").write_text(
        json.dumps({"meta": meta, "analysis": analysis, "rounds": rounds}, indent=2)
    )
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
