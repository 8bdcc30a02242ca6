"""Benchmark pyrogram_storage against the clients' own storages, side by side in one run.

Usage, from the repository root, with the python that has pyrogram_storage installed
(``pip install -e '.[bench]'``)::

    python benchmarks/run.py            # everything, N up to 1M (about an hour on 2 cores)
    python benchmarks/run.py --quick    # small N, fewer operations (a few minutes)
    python benchmarks/run.py --suites path --sizes 100000,1000000

The clients (Kurigram, Pyrofork, Pyrogram 2.0.106) are installed in their own
virtualenvs (``tests/clientenv.py``, under ``.venvs/clients``) on first use. Mongo rows
run on a throwaway SecantusDB server (``tests/servers/mongoserver.py``), or on
``$PYROGRAM_STORAGE_MONGO_URI``; Redis rows on a throwaway Redis or Valkey server
(``tests/servers/redisserver.py``, AOF with ``appendfsync everysec``), or on
``$PYROGRAM_STORAGE_REDIS_URL``. Every system and N runs in a fresh process.

Issue 19's shapes: ``--streams uniform,zipf,new`` (the path suite's senders),
``--conditions disk,tmpfs,busy`` (the session folder on a real disk, on ``/dev/shm``, or
on disk with a second process spinning one core); each result is labelled with both.

Writes ``benchmarks/results/latest.md`` (``--name``: issue 19's and issue 12's targets,
ratio tables, the event loop, every measurement, the machine and its load),
``latest.json`` (raw numbers) and ``latest.png``.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(HERE))

import report  # noqa: E402
from systems import BY_NAME, SYSTEMS, System  # noqa: E402
from workload import STREAMS  # noqa: E402

SUITES = ("cells", "path", "host")
# N per suite; server-backed systems (SecantusDB is slow) get their own.
FULL_SIZES = {
    "cells": (1_000, 10_000, 100_000, 1_000_000),
    "path": (3_000, 10_000, 100_000, 1_000_000),
}
QUICK_SIZES = {"cells": (1_000, 10_000), "path": (10_000,)}
SERVER_SIZES = {"cells": (1_000, 10_000), "path": (10_000,)}
QUICK_SERVER_SIZES = {"cells": (1_000,), "path": (1_000,)}
HOST_SIZE, QUICK_HOST_SIZE = 10_000, 1_000  # peers per session

QUICK_PARAMS: dict[str, Any] = {
    "lookups": 10_000,
    "usernames": 2_000,
    "phones": 2_000,
    "uncached": 2_000,
    "small": 2_000,
    "roundtrips": 50,
    "for_client_calls": 10,
    "loop_cap": 2_000,
    "idle_s": 0.5,
    "updates": 5_000,
    "warmup": 500,
    "metered_updates": 2_000,
    "sessions": 50,
}
FULL_PARAMS: dict[str, Any] = {"for_client_calls": 30}
SERVER_PARAMS: dict[str, Any] = {
    "lookups": 2_000,
    "usernames": 200,
    "phones": 200,
    "uncached": 200,
    "small": 200,
    "tasks": 50,
    "ops_per_task": 4,
    "roundtrips": 0,
    "cold_opens": 3,
    "loop_cap": 200,
    "updates": 300,
    "warmup": 30,
    "metered_updates": 100,
}


# -- servers: one starter per kind a system may need (System.server) -------------------------


def _start_mongo() -> tuple[str, Callable[[], None], str]:
    from servers.mongoserver import MongoServer, mongo_uri_from_env

    uri = mongo_uri_from_env()
    if uri is not None:
        return uri, lambda: None, "$PYROGRAM_STORAGE_MONGO_URI"
    server = MongoServer(Path(tempfile.mkdtemp(prefix="bench-mongo-"))).start()
    return server.uri, server.close, "SecantusDB " + _dist_version("SecantusDB")


def _start_redis() -> tuple[str, Callable[[], None], str]:
    """A throwaway server as production runs one: append-only file, fsync every second."""
    from servers.redisserver import RedisServer, find_server

    url = os.environ.get("PYROGRAM_STORAGE_REDIS_URL")
    if url:
        return url, lambda: None, "$PYROGRAM_STORAGE_REDIS_URL"
    binary = find_server()
    server = RedisServer(
        Path(tempfile.mkdtemp(prefix="bench-redis-")),
        appendonly=True,
        extra_args=["--appendfsync", "everysec"],
    ).start()
    found = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    return server.url, server.close, f"{found.stdout.strip()} (AOF, appendfsync everysec)"


def _start_postgres() -> tuple[str, Callable[[], None], str]:
    """A throwaway server as production runs one: fsync and full page writes on."""
    from servers.pgserver import PostgresServer

    url = os.environ.get("PYROGRAM_STORAGE_POSTGRES_URL")
    if url:
        return url, lambda: None, "$PYROGRAM_STORAGE_POSTGRES_URL"
    server = PostgresServer(settings=["fsync=on", "full_page_writes=on"]).start()
    found = subprocess.run(
        [str(server.bin / "postgres"), "--version"], capture_output=True, text=True, check=False
    )
    return server.url, server.close, f"{found.stdout.strip()} (fsync on)"


SERVERS: dict[str, Callable[[], tuple[str, Callable[[], None], str]]] = {
    "mongo": _start_mongo,
    "redis": _start_redis,
    "postgres": _start_postgres,
}
"""Server kind to a starter returning (URI, stop function, description)."""


# -- conditions: where the session folder lives, and what else the machine does ------------

CONDITIONS = ("disk", "tmpfs", "busy")
"""``disk``: the session folder on a real disk (fsync costs what it costs); ``tmpfs``: on
``/dev/shm`` (no fsync cost: the CPU-only case); ``busy``: on disk, with a second process
spinning one core for the whole run of each system."""
MEMORY_FS = ("tmpfs", "ramfs")


def fs_type(path: Path) -> str:
    """The type of the file system holding ``path`` (``/proc/mounts``' longest prefix)."""
    best, kind = "", "?"
    target = str(path.resolve())
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return kind
    for line in mounts:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, fields[2]
    return kind


def condition_root(condition: str) -> Path:
    """The folder the runs of ``condition`` make their session folders in."""
    if condition == "tmpfs":
        root = Path("/dev/shm")
        if fs_type(root) not in MEMORY_FS:
            raise SystemExit(f"/dev/shm is {fs_type(root)}, not tmpfs: no tmpfs condition here")
        return root
    root = Path(tempfile.gettempdir())
    if fs_type(root) in MEMORY_FS:  # /tmp in memory: the disk case needs a real disk
        root = REPO / ".bench-work"
        root.mkdir(exist_ok=True)
    return root


SPIN = "import os\nparent = os.getppid()\nwhile os.getppid() == parent:\n    pass\n"


class Spinner:
    """A second process keeping one core busy; started and stopped by PID."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            # It spins until killed, or until run.py is gone (its parent changes).
            [sys.executable, "-c", SPIN],
            stdin=subprocess.DEVNULL,
        )
        self.pid = self.proc.pid
        self.started = time.monotonic()

    def cpu_s(self) -> float | None:
        """CPU seconds the spinner has used (``/proc/<pid>/stat``), None if gone."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> dict[str, Any]:
        """Kill it; return its PID, wall seconds and the share of a core it got."""
        cpu = self.cpu_s()
        wall = time.monotonic() - self.started
        os.kill(self.pid, signal.SIGKILL)
        self.proc.wait()
        return {
            "pid": self.pid,
            "wall_s": round(wall, 1),
            "core_share": None if cpu is None or wall <= 0 else round(cpu / wall, 2),
        }


# -- running one system ----------------------------------------------------------------------


def python_for(system: System) -> Path:
    """Return the interpreter that runs ``system``, preparing its venv if needed."""
    if system.venv is None:
        return Path(sys.executable)
    from clientenv import ensure_env

    python = ensure_env(system.venv)
    for requirement in system.pip:
        dist, _, wanted = requirement.partition("==")
        probe = subprocess.run(
            [str(python), "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"],
            capture_output=True,
            text=True,
        )
        if probe.returncode != 0 or probe.stdout.strip() != wanted:
            subprocess.run(
                [
                    str(python),
                    "-m",
                    "pip",
                    "install",
                    "-q",
                    "--disable-pip-version-check",
                    requirement,
                ],
                check=True,
            )
    return python


def unavailable(system: System) -> str | None:
    """Say why a system cannot run here, or None."""
    if system.venv is None and system.ours:
        try:
            import pyrogram_storage  # noqa: F401
        except ImportError:
            return "pyrogram_storage is not installed in this python (pip install -e .)"
        if system.backend == "mongo":
            try:
                import pymongo  # noqa: F401
            except ImportError as exc:
                return f"pymongo cannot be imported ({exc})"
        if system.server == "redis":
            try:
                import redis  # noqa: F401
            except ImportError as exc:
                return f"redis-py cannot be imported ({exc})"
    return None


def run_one(
    system: System,
    n: int,
    params: dict[str, Any],
    uri: str | None,
    timeout: float,
    condition: str = "disk",
) -> dict[str, Any]:
    python = python_for(system)
    root = condition_root(condition)
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{system.name}-{n}-", dir=root))
    label = {
        "stream": params.get("stream", "uniform") if system.suite == "path" else None,
        "condition": condition,
        "workdir_fs": fs_type(workdir),
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
    }
    argv = [
        str(python),
        str(HERE / "worker.py"),
        system.name,
        str(n),
        str(workdir),
        "--params",
        json.dumps(params),
    ]
    if uri:
        argv += ["--server-uri", uri]
    spinner = Spinner() if condition == "busy" else None
    started = time.monotonic()
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=workdir)
    except subprocess.TimeoutExpired:
        return {"system": system.name, "n": n, **label, "error": f"timed out after {timeout:.0f}s"}
    finally:
        if spinner is not None:
            label["busy"] = spinner.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    label["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            result: dict[str, Any] = json.loads(line[len("RESULT ") :])
            result.update(label)
            result["wall_s"] = time.monotonic() - started
            return result
    tail = (proc.stdout + proc.stderr)[-1500:]
    return {"system": system.name, "n": n, **label, "error": f"exit {proc.returncode}: {tail}"}


def variant(result: dict[str, Any]) -> tuple[str, int, str, str]:
    """(system, N, stream, condition): what one result measured."""
    return (
        result["system"],
        result["n"],
        result.get("stream") or "uniform",
        result.get("condition") or "disk",
    )


def _median_tree(values: list[Any]) -> Any:
    """Medians of the numbers found at the same place in each of ``values``."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    if all(isinstance(v, dict) for v in present):
        keys = {k for v in present for k in v}
        return {k: _median_tree([v.get(k) for v in present]) for k in sorted(keys)}
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return statistics.median(present)
    return present[-1]


def merge_repeats(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fold repeated runs of one system and N into one result of medians."""
    groups: dict[tuple[str, int, str, str], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault(variant(run), []).append(run)
    merged = []
    for group in groups.values():
        good = [r for r in group if "metrics" in r]
        if not good:
            merged.append(group[-1])
            continue
        result = dict(good[-1])
        for key in ("metrics", "loop", "idle_ms"):
            result[key] = _median_tree([r.get(key) for r in good])
        result["repeats"] = len(good)
        result["load"] = [x for r in good for x in r.get("load", [])]
        result["loads"] = [r.get("loadavg_before") for r in good]
        if any("busy" in r for r in good):
            result["busy_core_share"] = [r.get("busy", {}).get("core_share") for r in good]
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


def plan(
    systems: list[System], options: argparse.Namespace
) -> list[tuple[int, System, dict[str, Any], str]]:
    """Every (N, system, params, condition) to run: local systems first, server-backed
    ones last; path systems once per stream, everything once per condition."""
    override = json.loads(options.params)
    base = {**(QUICK_PARAMS if options.quick else FULL_PARAMS)}

    def sizes(suite: str, server: bool) -> list[int]:
        if suite == "host":
            return [options.host_size or (QUICK_HOST_SIZE if options.quick else HOST_SIZE)]
        given = options.server_sizes if server else options.sizes
        if given:
            return [int(x) for x in given.split(",")]
        table = (
            (QUICK_SERVER_SIZES if options.quick else SERVER_SIZES)
            if server
            else (QUICK_SIZES if options.quick else FULL_SIZES)
        )
        return list(table[suite])

    # The systems compared with each other run back to back for each N, stream and
    # condition, so that a burst of load from outside hits all of them alike.
    out = []
    for server in (False, True):
        for suite in SUITES:
            chosen = [s for s in systems if s.suite == suite and bool(s.server) == server]
            streams = options.stream_list if suite == "path" else [None]
            for n in sorted(sizes(suite, server)):
                for stream in streams:
                    for condition in options.condition_list:
                        for system in chosen:
                            if system.max_n is not None and n > system.max_n:
                                continue
                            params = {
                                **base,
                                **(SERVER_PARAMS if server else {}),
                                **dict(system.params),
                                **override,
                            }
                            if stream is not None and "stream" not in override:
                                params["stream"] = stream
                            out.append((n, system, params, condition))
    return out


# -- main ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small N, fewer operations")
    parser.add_argument("--suites", default=",".join(SUITES), help="from: " + ", ".join(SUITES))
    parser.add_argument(
        "--systems", help="comma-separated, from: " + ", ".join(s.name for s in SYSTEMS)
    )
    parser.add_argument("--sizes", help="comma-separated N of the cells and path suites")
    parser.add_argument("--server-sizes", help="comma-separated N of server-backed systems")
    parser.add_argument("--host-size", type=int, help="peers per session of the host suite")
    parser.add_argument("--params", default="{}", help="JSON overrides of the worker's counts")
    parser.add_argument(
        "--out", type=Path, default=HERE / "results", help="folder for latest.md/.json/.png"
    )
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per run")
    parser.add_argument(
        "--repeat", type=int, default=1, help="run everything K times; report the medians"
    )
    parser.add_argument(
        "--streams",
        default="uniform",
        help="the path suite's sender streams, comma-separated, from: " + ", ".join(STREAMS),
    )
    parser.add_argument(
        "--conditions",
        default="disk",
        help="comma-separated, from: " + ", ".join(CONDITIONS) + " (every suite runs in each)",
    )
    parser.add_argument(
        "--name",
        default="latest",
        help="the results' file names: NAME.md, NAME.json, NAME.png (default latest)",
    )
    parser.add_argument("--note", help="a line of context for the report's header")
    parser.add_argument(
        "--from-json",
        help="only write the report and plot of an earlier latest.json; several "
        "comma-separated: one report over all their results",
    )
    options = parser.parse_args(argv)
    options.stream_list = [x.strip() for x in options.streams.split(",") if x.strip()]
    options.condition_list = [x.strip() for x in options.conditions.split(",") if x.strip()]
    for stream in options.stream_list:
        if stream not in STREAMS:
            parser.error(f"unknown stream {stream!r}")
    for condition in options.condition_list:
        if condition not in CONDITIONS:
            parser.error(f"unknown condition {condition!r}")
    if options.from_json:
        paths = [Path(x.strip()) for x in options.from_json.split(",") if x.strip()]
        data = combine([json.loads(p.read_text()) for p in paths])
        if options.note:
            data["note"] = options.note
        return write_report(data, options.out, options.name)

    suites = [s.strip() for s in options.suites.split(",") if s.strip()]
    for suite in suites:
        if suite not in SUITES:
            parser.error(f"unknown suite {suite!r}")
    names = (
        [s.strip() for s in options.systems.split(",") if s.strip()]
        if options.systems
        else [s.name for s in SYSTEMS if s.suite in suites]
    )
    for name in names:
        if name not in BY_NAME:
            parser.error(f"unknown system {name!r}")
    skipped = {name: why for name in names if (why := unavailable(BY_NAME[name]))}
    for name, why in skipped.items():
        print(f"skipping {name}: {why}", file=sys.stderr)
    systems = [BY_NAME[name] for name in names if name not in skipped]

    started = datetime.datetime.now(datetime.timezone.utc)
    data: dict[str, Any] = {
        "started": started.strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python benchmarks/run.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine(),
        "git": _git_describe(),
        "repeat": options.repeat,
        "streams": options.stream_list,
        "conditions": {
            c: f"{condition_root(c)} ({fs_type(condition_root(c))})" for c in options.condition_list
        },
        "uptime": _uptime(),
        "params_override": options.params if options.params != "{}" else None,
        "servers": {},
        "runs": [],
        "results": [],
        "skipped": skipped,
    }
    options.out.mkdir(parents=True, exist_ok=True)
    # A kill (SIGTERM) unwinds like Ctrl-C: the spinner and the servers are stopped.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    stops: list[Callable[[], None]] = []
    uris: dict[str, str] = {}
    clock = time.monotonic()
    try:
        for kind in sorted({s.server for s in systems if s.server}):
            uri, stop, description = SERVERS[kind]()
            uris[kind] = uri
            stops.append(stop)
            data["servers"][kind] = description
        # Repeats go round the whole plan, so a burst of load hits one sample, not all.
        for n, system, params, condition in plan(systems, options) * options.repeat:
            shape = params.get("stream", "") if system.suite == "path" else ""
            print(
                f"[{time.monotonic() - clock:7.1f}s] {system.name:26} N={n:>9,} "
                f"{shape:7} {condition:5} load {os.getloadavg()[0]:.1f} ...",
                end=" ",
                flush=True,
            )
            uri = uris.get(system.server) if system.server else None
            result = run_one(system, n, params, uri, options.timeout, condition)
            data["runs"].append(result)
            data["results"] = merge_repeats(data["runs"])
            print("FAILED" if "error" in result else f"{result['wall_s']:.1f}s", flush=True)
            if "error" in result:
                print(result["error"], file=sys.stderr)
            _write_json(data, options.out / f"{options.name}.json", clock)
    finally:
        for stop in stops:
            stop()
    data["uptime_after"] = _uptime()
    _write_json(data, options.out / f"{options.name}.json", clock)
    return write_report(data, options.out, options.name)


def combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One report's data from several runs': their results side by side, every command."""
    if len(runs) == 1:
        return runs[0]
    data = dict(runs[0])
    data["runs"] = [r for run in runs for r in run.get("runs", [])]
    # A system, N, stream and condition measured by more than one run: the medians
    # over all their repeats.
    data["results"] = merge_repeats(data["runs"]) or [r for run in runs for r in run["results"]]
    data["command"] = " ; ".join(run["command"] for run in runs)
    data["wall_s"] = sum(float(run.get("wall_s") or 0) for run in runs)
    data["repeat"] = max(int(run.get("repeat") or 1) for run in runs)
    data["params_override"] = " ; ".join(
        str(run.get("params_override")) for run in runs if run.get("params_override")
    )
    data["skipped"] = {k: v for run in runs for k, v in (run.get("skipped") or {}).items()}
    data["servers"] = {k: v for run in runs for k, v in (run.get("servers") or {}).items()}
    data["sources"] = [
        {"command": run["command"], "started": run["started"], "uptime": run.get("uptime")}
        for run in runs
    ]
    return data


def write_report(data: dict[str, Any], out: Path, name: str = "latest") -> int:
    """Evaluate the targets, write NAME.md, NAME.json and NAME.png; print the verdicts."""
    out.mkdir(parents=True, exist_ok=True)
    data["targets"] = report.targets(data["results"])
    data["targets_19"] = report.targets_19(data["results"])
    (out / f"{name}.json").write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    (out / f"{name}.md").write_text(report.render(data))
    report.plot(data, out / f"{name}.png")
    print()
    report.verdicts(data)
    print(f"\nwrote {out / (name + '.md')}, {name}.json, {name}.png")
    return 1 if any("error" in r for r in data["results"]) else 0


def _git_describe() -> str | None:
    try:
        proc = subprocess.run(
            ["git", "describe", "--always", "--dirty"], capture_output=True, text=True, cwd=REPO
        )
    except OSError:
        return None
    return proc.stdout.strip() or None


def _uptime() -> str:
    """``uptime``'s line (the load of the shared machine), or the load averages."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def _dist_version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _write_json(data: dict[str, Any], path: Path, clock: float) -> None:
    data["wall_s"] = time.monotonic() - clock
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    sys.exit(main())
