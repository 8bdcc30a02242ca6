"""Benchmark pyrogram_storage against the clients' own storages, side by side in one run.

Usage, from the repository root, with the python that has pyrogram_storage installed
(``pip install -e '.[bench]'``)::

    python benchmarks/run.py            # N = 1k, 10k, 100k, 1M (about 15-30 min on 2 cores)
    python benchmarks/run.py --quick    # N = 1k, 10k, fewer lookups (about 2 min)

Kurigram and Pyrogram 2.0.106 (and Pyrofork with motor, for Mongo) are installed in
their own virtualenvs (``tests/clientenv.py``, under ``.venvs/clients``) on first use.
Mongo rows run on a throwaway SecantusDB server (``tests/mongoserver.py``), or on
``$PYROGRAM_STORAGE_MONGO_URI``. Every system and N runs in a fresh process.

Writes ``benchmarks/results/latest.md`` (ratio tables, targets, machine),
``latest.json`` (raw numbers) and ``latest.png`` (µs/op against N).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import sqlite3
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

SYSTEMS = (
    "ours-file",
    "ours-memory",
    "ours-mongo",
    "ours-kurigram",
    "kurigram-file",
    "kurigram-memory",
    "pyrogram-file",
    "pyrogram-memory",
    "pyrofork-mongo",
    "raw-sqlite",
)
LABELS = {
    "ours-file": "ours FileStorage",
    "ours-memory": "ours MemoryStorage",
    "ours-mongo": "ours MongoStorage",
    "ours-kurigram": "ours FileStorage via for_client (Kurigram dialect)",
    "kurigram-file": "Kurigram file",
    "kurigram-memory": "Kurigram memory",
    "pyrogram-file": "Pyrogram 2.0.106 FileStorage",
    "pyrogram-memory": "Pyrogram 2.0.106 MemoryStorage",
    "pyrofork-mongo": "Pyrofork MongoStorage",
    "raw-sqlite": "raw sqlite3 (tuned)",
}
# (ours, anchor) pairs of the ratio table.
PAIRS = (
    ("ours-file", "kurigram-file"),
    ("ours-kurigram", "kurigram-file"),
    ("ours-file", "pyrogram-file"),
    ("ours-memory", "kurigram-memory"),
    ("ours-memory", "pyrogram-memory"),
    ("ours-file", "raw-sqlite"),
    ("ours-mongo", "pyrofork-mongo"),
)
METRICS = {
    "insert_us": "bulk insert, batches of 100 (µs/peer)",
    "churn_us": "churn: 10% re-sent, new usernames (µs/peer)",
    "id_hit_us": "peer by id, hit (µs)",
    "id_miss_us": "peer by id, miss (µs)",
    "username_us": "peer by username (µs)",
    "phone_us": "peer by phone (µs)",
    "concurrent_us": "50 tasks, 80% id / 10% username / 10% write (µs/op)",
    "roundtrip_us": "session string export + new memory storage (µs)",
    "cold_open_ms": "cold open + first lookup (ms)",
    "stall_ms": "longest event-loop stall during ingest (ms)",
    "rss_growth_mb": "peak RSS growth (MB)",
    "rss_peak_mb": "peak RSS (MB)",
    "file_mb": "file size after save (MB)",
}
TIME_METRICS = (
    "insert_us",
    "churn_us",
    "id_hit_us",
    "id_miss_us",
    "username_us",
    "phone_us",
    "concurrent_us",
    "roundtrip_us",
    "cold_open_ms",
)

FULL_SIZES = (1_000, 10_000, 100_000, 1_000_000)
QUICK_SIZES = (1_000, 10_000)
MONGO_SIZES = (1_000, 10_000)
QUICK_PARAMS = {"lookups": 10_000, "usernames": 2_000, "phones": 2_000, "roundtrips": 50}
# SecantusDB needs ~2 s per 1000-upsert bulk_write, so Mongo gets fewer operations.
MONGO_PARAMS = {
    "lookups": 2_000,
    "usernames": 200,
    "phones": 200,
    "tasks": 50,
    "ops_per_task": 4,
    "roundtrips": 0,
    "cold_opens": 3,
}
PYROFORK_EXTRA = "motor==3.7.1"
# The client-dialect row only answers "what does for_client cost"; 100k says it.
MAX_N = {"ours-kurigram": 100_000}


def _python_for(system: str) -> Path:
    """Return the interpreter that has ``system`` installed, preparing its venv if needed."""
    if system.startswith(("ours", "raw")) and system != "ours-kurigram":
        return Path(sys.executable)
    from clientenv import ensure_env

    client = "kurigram" if system == "ours-kurigram" else system.split("-")[0]
    python = ensure_env(client)
    if system == "pyrofork-mongo":
        probe = subprocess.run([str(python), "-c", "import motor"], capture_output=True)
        if probe.returncode != 0:
            subprocess.run(
                [
                    str(python),
                    "-m",
                    "pip",
                    "install",
                    "-q",
                    "--disable-pip-version-check",
                    PYROFORK_EXTRA,
                ],
                check=True,
            )
    return python


def _unavailable(system: str) -> str | None:
    """Say why a system cannot run here, or None."""
    if system == "ours-mongo":
        try:
            import pyrogram_storage.mongo
        except ImportError as exc:
            return f"pyrogram_storage.mongo cannot be imported ({exc})"
    if system.startswith("ours") or system == "raw-sqlite":
        try:
            import pyrogram_storage  # noqa: F401
        except ImportError:
            return "pyrogram_storage is not installed in this python (pip install -e .)"
    return None


def _run_one(
    system: str, n: int, params: dict[str, Any], mongo_uri: str | None, timeout: float
) -> dict[str, Any]:
    python = _python_for(system)
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{system}-{n}-"))
    argv = [
        str(python),
        str(HERE / "worker.py"),
        system,
        str(n),
        str(workdir),
        "--params",
        json.dumps(params),
    ]
    if mongo_uri:
        argv += ["--mongo-uri", mongo_uri]
    started = time.monotonic()
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=workdir)
    except subprocess.TimeoutExpired:
        return {"system": system, "n": n, "error": f"timed out after {timeout:.0f}s"}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            result: dict[str, Any] = json.loads(line[len("RESULT ") :])
            result["wall_s"] = time.monotonic() - started
            result["params"] = params
            return result
    tail = (proc.stdout + proc.stderr)[-1500:]
    return {"system": system, "n": n, "error": f"exit {proc.returncode}: {tail}"}


def merge_repeats(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fold repeated runs of one system and N into one result of per-metric medians."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run["system"], run["n"]), []).append(run)
    merged = []
    for group in groups.values():
        good = [r for r in group if "metrics" in r]
        if not good:
            merged.append(group[-1])
            continue
        result = dict(good[-1])
        names = {name for r in good for name in r["metrics"]}
        result["metrics"] = {}
        for name in sorted(names):
            values = [r["metrics"][name] for r in good if r["metrics"].get(name) is not None]
            result["metrics"][name] = statistics.median(values) if values else None
        result["repeats"] = len(good)
        result["load"] = [x for r in good for x in r.get("load", [])]
        merged.append(result)
    return merged


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["ram_gb"] = round(int(line.split()[1]) / 2**20, 1)
                break
    except OSError:
        pass
    return info


# -- report ----------------------------------------------------------------------------------


def _index(results: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    return {(r["system"], r["n"]): r.get("metrics", {}) for r in results if "metrics" in r}


def _get(
    idx: dict[tuple[str, int], dict[str, Any]], system: str, n: int, metric: str
) -> float | None:
    value = idx.get((system, n), {}).get(metric)
    return None if value is None else float(value)


def _fmt(value: float | None) -> str:
    if value is None:
        return "–"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _ratio_cell(ours: float | None, anchor: float | None) -> str:
    if ours is None or anchor is None or ours <= 0 or anchor <= 0:
        return "–"
    faster = anchor / ours
    return (
        f"**{faster:.1f}×** ({ours / anchor:.2f})"
        if faster >= 1
        else f"{faster:.2f}× ({ours / anchor:.2f})"
    )


def _n_label(n: int) -> str:
    return (
        f"{n // 1_000_000}M"
        if n >= 1_000_000 and n % 1_000_000 == 0
        else (f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n))
    )


def targets(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Evaluate issue 5's targets on this run's numbers."""
    idx = _index(results)
    out: list[dict[str, Any]] = []

    def add(name: str, value: float | None, ok: bool | None, detail: str) -> None:
        out.append({"target": name, "value": value, "met": ok, "detail": detail})

    def ratio(metric: str, n: int, ours: str, anchor: str) -> float | None:
        a, b = _get(idx, anchor, n, metric), _get(idx, ours, n, metric)
        return None if a is None or b is None or b <= 0 else a / b

    r = ratio("cold_open_ms", 1_000_000, "ours-file", "kurigram-file")
    add(
        "cold open at 1M ≥ 100× faster than Kurigram file",
        r,
        None if r is None else r >= 100,
        "" if r is None else f"{r:.0f}× faster",
    )
    r = ratio("id_hit_us", 100_000, "ours-file", "kurigram-file")
    add(
        "peer by id (hit) at 100k ≥ 5× faster than Kurigram file",
        r,
        None if r is None else r >= 5,
        "" if r is None else f"{r:.1f}× faster",
    )
    for n in (100_000, 1_000_000):
        r = ratio("insert_us", n, "ours-file", "kurigram-file")
        add(
            f"bulk insert at {_n_label(n)} ≥ 1.5× faster than Kurigram file",
            r,
            None if r is None else r >= 1.5,
            "" if r is None else f"{r:.2f}× faster",
        )
        ours, raw = _get(idx, "ours-file", n, "insert_us"), _get(idx, "raw-sqlite", n, "insert_us")
        q = None if ours is None or raw is None else ours / raw
        add(
            f"bulk insert at {_n_label(n)} within 1.3× of raw sqlite3",
            q,
            None if q is None else q <= 1.3,
            "" if q is None else f"ours/raw = {q:.2f}",
        )
    for system in ("ours-file", "ours-memory"):
        s = _get(idx, system, 100_000, "stall_ms")
        add(
            f"{LABELS[system]}: no event-loop stall > 5 ms during the 100k ingest",
            s,
            None if s is None else s <= 5,
            "" if s is None else f"longest {s:.2f} ms",
        )
    common = [n for (system, n) in idx if system == "ours-mongo" and ("pyrofork-mongo", n) in idx]
    if common:
        n = max(common)
        r = ratio("insert_us", n, "ours-mongo", "pyrofork-mongo")
        add(
            f"MongoStorage bulk ingest ≥ 3× Pyrofork's MongoStorage (N={_n_label(n)}, same server)",
            r,
            None if r is None else r >= 3,
            "" if r is None else f"{r:.2f}× faster",
        )
    else:
        add("MongoStorage bulk ingest ≥ 3× Pyrofork's MongoStorage", None, None, "")
    g = _get(idx, "ours-file", 1_000_000, "rss_growth_mb")
    add(
        "RSS growth of a 1M-peer FileStorage ≤ 50 MB",
        g,
        None if g is None else g <= 50,
        "" if g is None else f"{g:.1f} MB",
    )
    return out


def render(data: dict[str, Any]) -> str:
    results = data["results"]
    idx = _index(results)
    sizes = sorted({n for (_, n) in idx})
    present = [s for s in SYSTEMS if any((s, n) in idx for n in sizes)]
    lines = [f"# Benchmark results ({data['started']})", ""]
    m = data["machine"]
    lines += [
        f"- Machine: {m.get('cpu')}, {m.get('cores')} cores, {m.get('ram_gb')} GB RAM, "
        f"{m.get('os')}",
        f"- Python {m.get('python')}, SQLite {m.get('sqlite')}",
    ]
    versions: dict[str, str] = {}
    for r in results:
        for key, value in r.get("versions", {}).items():
            if key not in ("python", "sqlite") and value:
                versions[key] = value
    lines.append("- Libraries: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())))
    lines.append(f"- Command: `{data['command']}` ({data['wall_s'] / 60:.1f} min)")
    if data.get("git"):
        lines.append(f"- Code: `{data['git']}`")
    if data.get("repeat", 1) > 1:
        lines.append(
            f"- Every system and N ran {data['repeat']} times (round robin); "
            "each number is the median"
        )
    loads = [x for r in results for x in r.get("load", [])]
    if loads:
        lines.append(
            f"- 1-minute load average during the runs: {min(loads):.1f} to {max(loads):.1f} "
            f"on {m.get('cores')} cores"
            + (" (other work was running: single numbers are noisy)" if max(loads) > 1.5 else "")
        )
    lines.append("")

    lines += ["## Targets (issue 5)", "", "| target | result | met? |", "|---|---|---|"]
    for t in data["targets"]:
        verdict = "not measured" if t["met"] is None else ("**met**" if t["met"] else "NOT MET")
        lines.append(f"| {t['target']} | {t['detail'] or '–'} | {verdict} |")
    lines.append("")

    lines += [
        "## Ratios",
        "",
        "Each cell: **anchor time / our time = how many × faster we are** (over 1× means "
        "ours is faster), and in parentheses our time / anchor time.",
        "",
    ]
    pairs = [(a, b) for a, b in PAIRS if a in present and b in present]
    header = (
        "| workload | N | " + " | ".join(f"{LABELS[a]} vs {LABELS[b]}" for a, b in pairs) + " |"
    )
    lines += [header, "|---|---|" + "---|" * len(pairs)]
    for metric in TIME_METRICS:
        for n in sizes:
            cells = [
                _ratio_cell(_get(idx, a, n, metric), _get(idx, b, n, metric)) for a, b in pairs
            ]
            if all(c == "–" for c in cells):
                continue
            lines.append(f"| {METRICS[metric]} | {_n_label(n)} | " + " | ".join(cells) + " |")
    lines.append("")

    lines += [
        "## Measurements",
        "",
        "| workload | N | " + " | ".join(LABELS[s] for s in present) + " |",
        "|---|---|" + "---|" * len(present),
    ]
    for metric in METRICS:
        for n in sizes:
            cells = [_fmt(_get(idx, s, n, metric)) for s in present]
            if all(c == "–" for c in cells):
                continue
            lines.append(f"| {METRICS[metric]} | {_n_label(n)} | " + " | ".join(cells) + " |")
    lines.append("")

    errors = [r for r in results if "error" in r]
    if errors:
        lines += ["## Failed runs", ""]
        lines += [f"- {r['system']} at N={r['n']}: `{r['error'][-300:]}`" for r in errors]
        lines.append("")
    if data.get("skipped"):
        lines += ["## Not run", ""]
        lines += [f"- {s}: {why}" for s, why in data["skipped"].items()]
        lines.append("")

    counts = {r["system"]: r.get("counts", {}) for r in results if "counts" in r}
    lines += ["## How it was measured", ""]
    lines += [f"- {note}" for note in NOTES]
    mongo = [s for s in counts if s.endswith("mongo")]
    if mongo:
        c = counts[mongo[0]]
        lines.append(
            f"- Mongo rows ran on {data.get('mongo_server')} with smaller N (up to "
            f"{_n_label(max(n for (s, n) in idx if s in mongo))}) and fewer operations "
            f"({c.get('lookups')} id hits, {c.get('usernames')} username and "
            f"{c.get('phones')} phone lookups, {c.get('concurrent_ops')} concurrent ops): "
            "SecantusDB takes about 2 s per 1000-upsert bulk_write."
        )
    sample = next((counts[s] for s in SYSTEMS if s in counts and not s.endswith("mongo")), {})
    if sample:
        lines.append(
            f"- SQLite rows: {sample.get('lookups')} id hits and {sample.get('misses')} misses, "
            f"{sample.get('usernames')} username and {sample.get('phones')} phone lookups, "
            f"{sample.get('concurrent_ops')} concurrent ops, {sample.get('roundtrips')} session "
            f"string round trips, median of {sample.get('cold_opens')} cold opens."
        )
    lines.append("")
    return "\n".join(lines)


NOTES = (
    "Every system and N runs in its own fresh process (the system's own virtualenv for the "
    "clients); peak RSS is `resource.getrusage` of that process, growth is peak minus the "
    "RSS after imports and workload setup.",
    "Peers are generated from their index (5 users, 2 bots, 1 group, 1 channel, 1 supergroup "
    "in ten; half have a username, users at multiples of 3 a phone), in batches of 100, "
    "each through the system's own dialect: our `upsert_peers`; Kurigram `update_peers` "
    "4-tuples + `update_usernames`; Pyrogram/Pyrofork 5-tuples. Insert and churn time "
    "include the final `save()`; Kurigram and Pyrogram commit only there (one big "
    "transaction), we commit every batch. An `await asyncio.sleep(0)` between batches "
    "stands for the network.",
    "The stall is how late a 1 ms `asyncio.sleep` ticker wakes up, worst case, during the "
    "ingest; the clients run sqlite3 on the loop, so their stall is their slowest call.",
    "Cold open: a new storage object on the existing file (same process), open + one id "
    "lookup. OS caches cannot be dropped here (no root over the page cache in the sandbox), "
    "so the file is warm in the page cache: this measures the work done on open (the "
    "clients VACUUM the whole file on every open), not disk reads.",
    "raw sqlite3: our schema, WAL + synchronous=NORMAL, executemany, one transaction per "
    "batch (the same statements as our upsert), no asyncio; reads are autocommit SELECTs "
    "of (id, access_hash, type).",
    "Session string round trip: export from the populated storage, open a new in-memory "
    "storage of the same library from the string, read the auth key back, close.",
)


def plot(data: dict[str, Any], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install -e '.[bench]')", file=sys.stderr)
        return False
    idx = _index(data["results"])
    metrics = (
        "insert_us",
        "churn_us",
        "id_hit_us",
        "id_miss_us",
        "username_us",
        "phone_us",
        "concurrent_us",
        "cold_open_ms",
    )
    fig, axes = plt.subplots(2, 4, figsize=(20, 9))
    for ax, metric in zip(axes.flat, metrics, strict=False):
        for system in SYSTEMS:
            points = sorted(
                (n, v[metric])
                for (s, n), v in idx.items()
                if s == system and v.get(metric) is not None
            )
            if points:
                style = "-" if system.startswith("ours") else "--"
                ax.plot(
                    [p[0] for p in points],
                    [p[1] for p in points],
                    style,
                    marker="o",
                    color=f"C{SYSTEMS.index(system)}",
                    label=LABELS[system],
                )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(METRICS[metric], fontsize=9)
        ax.set_xlabel("N peers")
        ax.grid(True, which="both", alpha=0.3)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="lower center", ncol=5)
    fig.suptitle(
        f"pyrogram_storage benchmarks, {data['started']} "
        f"({data['machine'].get('cpu')}, {data['machine'].get('cores')} cores)"
    )
    fig.tight_layout(rect=(0, 0.07, 1, 0.96))
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


# -- main ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="N = 1k, 10k and fewer lookups (development, CI smoke)"
    )
    parser.add_argument("--sizes", help="comma-separated N, e.g. 1000,100000")
    parser.add_argument("--mongo-sizes", help="comma-separated N for the Mongo rows")
    parser.add_argument(
        "--systems", default=",".join(SYSTEMS), help="comma-separated, from: " + ", ".join(SYSTEMS)
    )
    parser.add_argument("--params", default="{}", help="JSON overrides of the worker's counts")
    parser.add_argument(
        "--out",
        type=Path,
        default=HERE / "results",
        help="folder for latest.md, latest.json, latest.png",
    )
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per run")
    parser.add_argument(
        "--repeat", type=int, default=1, help="run everything K times; report the medians"
    )
    parser.add_argument(
        "--from-json", type=Path, help="only write the report and plot of an earlier latest.json"
    )
    options = parser.parse_args(argv)
    if options.from_json:
        return report(json.loads(options.from_json.read_text()), options.out)

    systems = [s.strip() for s in options.systems.split(",") if s.strip()]
    for system in systems:
        if system not in SYSTEMS:
            parser.error(f"unknown system {system!r}")
    sizes = (
        [int(x) for x in options.sizes.split(",")]
        if options.sizes
        else list(QUICK_SIZES if options.quick else FULL_SIZES)
    )
    mongo_sizes = (
        [int(x) for x in options.mongo_sizes.split(",")]
        if options.mongo_sizes
        else [n for n in MONGO_SIZES if n <= max(sizes)] or [min(sizes)]
    )
    params = {**(QUICK_PARAMS if options.quick else {}), **json.loads(options.params)}
    mongo_params = {**MONGO_PARAMS, **json.loads(options.params)}

    skipped = {s: why for s in systems if (why := _unavailable(s))}
    systems = [s for s in systems if s not in skipped]
    for system, why in skipped.items():
        print(f"skipping {system}: {why}", file=sys.stderr)

    started = datetime.datetime.now(datetime.timezone.utc)
    data: dict[str, Any] = {
        "started": started.strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python benchmarks/run.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine(),
        "git": _git_describe(),
        "sizes": sizes,
        "mongo_sizes": mongo_sizes,
        "repeat": options.repeat,
        "runs": [],
        "results": [],
        "skipped": skipped,
    }
    options.out.mkdir(parents=True, exist_ok=True)
    server = None
    mongo_uri = None
    try:
        if any(s.endswith("mongo") for s in systems):
            from mongoserver import MongoServer, mongo_uri_from_env

            mongo_uri = mongo_uri_from_env()
            if mongo_uri is None:
                server = MongoServer(Path(tempfile.mkdtemp(prefix="bench-mongo-"))).start()
                mongo_uri = server.uri
                data["mongo_server"] = "SecantusDB " + _dist_version("SecantusDB")
            else:
                data["mongo_server"] = "$PYROGRAM_STORAGE_MONGO_URI"
        clock = time.monotonic()
        # SQLite rows first, at every N; the slow Mongo rows last.
        plan = [(n, s) for n in sorted(sizes) for s in systems if not s.endswith("mongo")]
        plan += [(n, s) for n in sorted(mongo_sizes) for s in systems if s.endswith("mongo")]
        # Repeats go round the whole plan, so a burst of load hits one sample, not all.
        for n, system in plan * options.repeat:
            is_mongo = system.endswith("mongo")
            if n > MAX_N.get(system, n):
                continue
            print(
                f"[{time.monotonic() - clock:7.1f}s] {system:16} N={n:>9,} ...",
                end=" ",
                flush=True,
            )
            result = _run_one(
                system,
                n,
                mongo_params if is_mongo else params,
                mongo_uri if is_mongo else None,
                options.timeout,
            )
            data["runs"].append(result)
            data["results"] = merge_repeats(data["runs"])
            print("FAILED" if "error" in result else f"{result['wall_s']:.1f}s", flush=True)
            if "error" in result:
                print(result["error"], file=sys.stderr)
            _write_json(data, options.out / "latest.json", clock)
    finally:
        if server is not None:
            server.close()
    _write_json(data, options.out / "latest.json", clock)
    return report(data, options.out)


def report(data: dict[str, Any], out: Path) -> int:
    """Evaluate the targets, write latest.md, latest.json and latest.png; print the verdicts."""
    out.mkdir(parents=True, exist_ok=True)
    data["targets"] = targets(data["results"])
    (out / "latest.json").write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    (out / "latest.md").write_text(render(data))
    plot(data, out / "latest.png")
    print()
    for t in data["targets"]:
        verdict = "not measured" if t["met"] is None else ("met" if t["met"] else "NOT MET")
        print(f"{verdict:>13}  {t['target']}  {t['detail']}")
    print(f"\nwrote {out / 'latest.md'}, latest.json, latest.png")
    return 1 if any("error" in r for r in data["results"]) else 0


def _git_describe() -> str | None:
    try:
        proc = subprocess.run(
            ["git", "describe", "--always", "--dirty"], capture_output=True, text=True, cwd=REPO
        )
    except OSError:
        return None
    return proc.stdout.strip() or None


def _dist_version(dist: str) -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _write_json(data: dict[str, Any], path: Path, clock: float) -> None:
    data["wall_s"] = time.monotonic() - clock
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    sys.exit(main())
