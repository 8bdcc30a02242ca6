"""Several processes, one RedisStorage session: the Kurigram update path and id lookups.

Runs ``redis_shared_worker.py`` in the Kurigram venv (``tests/clientenv.py``, built on
first use) against one Valkey/Redis server started here on 127.0.0.1 (AOF,
``appendfsync everysec``, as production runs it), and measures in each round:

* the update path of the real Kurigram ``Client`` (``client_path.py``: an update with
  its sender, 90% of senders among the N stored peers, then the chat resolved twice)
  with **two processes sharing one session** in shared mode (the default, no
  ``sole_writer``), both handling updates at once; against Kurigram's own file storage
  in one process. Each process's time per update (flush included) is compared with
  Kurigram's;
* ``get_peer_by_id`` through the client's storage: a hot set of 1,000 peers (shared
  mode: memory, invalidated by the server) and the same with ``peer_cache_size=0``
  (every lookup a round trip), against Kurigram's file storage.

Ratios are Kurigram's time / ours within a round, then the median over rounds; the
machine's load is recorded before, between rounds and after.

    .venv/bin/python benchmarks/redis_shared.py [--repeat 3] [--sizes 10000,100000]

Writes ``results/redis-shared.md`` and ``results/redis-shared.json``. Nothing is asserted.
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

WORKER = HERE / "redis_shared_worker.py"
OURS = "path-kurigram-ours-redis"
THEIRS = "path-kurigram-file"


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return f"load {os.getloadavg()}"


class Worker:
    def __init__(self, python: Path, args: dict[str, Any]) -> None:
        self.proc = subprocess.Popen(
            [str(python), str(WORKER), json.dumps(args)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=HERE,
            # This tree's package, not the one the shared client venv was installed from.
            env={
                **os.environ,
                "PYTHONPATH": os.pathsep.join(
                    filter(None, [str(REPO), os.environ.get("PYTHONPATH")])
                ),
            },
        )

    def line(self) -> Any:
        assert self.proc.stdout is not None
        text = self.proc.stdout.readline()
        if not text:
            raise SystemExit(f"a worker ended (exit code {self.proc.wait()})")
        return json.loads(text)

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def result(self) -> Any:
        answer = self.line()
        self.proc.wait(timeout=600)
        return answer


def run_one(python: Path, args: dict[str, Any]) -> Any:
    return Worker(python, args).result()


def path_round(
    python: Path, common: dict[str, Any], system: str, names: list[str], rnd: int
) -> list[dict[str, float]]:
    """One process per name, all at once (one name twice: two processes, one session)."""
    workers = [
        Worker(python, {**common, "mode": "path", "system": system, "name": name,
                        "index": index, "round": rnd})
        for index, name in enumerate(names)
    ]  # fmt: skip
    for worker in workers:
        assert worker.line() == "ready"
    for worker in workers:
        worker.go()
    return [worker.result() for worker in workers]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--updates", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--lookups", type=int, default=20000)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    options = parser.parse_args(argv)
    sizes = [int(size) for size in options.sizes.split(",")]

    from clientenv import ensure_env
    from servers.redisserver import RedisServer, find_server

    python = ensure_env("kurigram")
    uptime_before = _uptime()
    rounds: list[dict[str, Any]] = []
    loads: list[str] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        RedisServer(
            Path(tmp) / "redis", extra_args=["--appendonly", "yes", "--appendfsync", "everysec"]
        ) as server,
    ):
        workdir = Path(tmp) / "work"
        workdir.mkdir()
        common = {
            "uri": server.url,
            "workdir": str(workdir),
            "updates": options.updates,
            "warmup": options.warmup,
        }
        for n in sizes:
            for system, name in ((OURS, f"s{n}"), (THEIRS, f"s{n}"), (THEIRS, f"s{n}b")):
                took = run_one(python, {**common, "mode": "populate", "system": system,
                                        "name": name, "n": n})  # fmt: skip
                print(f"populated {system} N={n} in {took['populate_s']:.1f} s", file=sys.stderr)
        for rnd in range(options.repeat):
            this: dict[str, Any] = {}
            for n in sizes:
                args = {**common, "n": n}
                runs = [
                    ("kurigram file", THEIRS, [f"s{n}"]),
                    ("ours x2", OURS, [f"s{n}", f"s{n}"]),
                    ("kurigram file x2", THEIRS, [f"s{n}", f"s{n}b"]),
                ]
                for label, system, names in runs if rnd % 2 == 0 else runs[::-1]:
                    results = path_round(python, args, system, names, rnd)
                    this[f"path {n} {label}"] = [float(r["path_us"]) for r in results]
                    this[f"cpu {n} {label}"] = [float(r["cpu_us"]) for r in results]
                lookups = {**args, "mode": "lookups", "count": options.lookups, "name": f"s{n}"}
                this[f"lookups {n} kurigram file"] = run_one(python, {**lookups, "system": THEIRS})
                this[f"lookups {n} ours shared"] = run_one(python, {**lookups, "system": OURS})
                this[f"lookups {n} ours shared, peer_cache_size=0"] = run_one(
                    python, {**lookups, "system": OURS, "options": {"peer_cache_size": 0}}
                )
            rounds.append(this)
            loads.append(f"{os.getloadavg()[0]:.2f}")
            print(f"round {rnd + 1}/{options.repeat}: {json.dumps(this)} (load {loads[-1]})",
                  file=sys.stderr)  # fmt: skip
        server_version = _server_version(server.url)
    meta = {
        "repeat": options.repeat,
        "sizes": sizes,
        "updates": options.updates,
        "warmup": options.warmup,
        "lookups": options.lookups,
        "python": platform.python_version(),
        "cores": os.cpu_count(),
        "server": f"{Path(find_server()).name} {server_version} (AOF, appendfsync everysec)",
        "generated": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": " ".join(["python benchmarks/redis_shared.py", *(argv or sys.argv[1:])]),
        "uptime_before": uptime_before,
        "uptime_after": _uptime(),
        "loads": loads,
        "kurigram": _kurigram_version(python),
    }
    analysis = analyse(rounds, sizes)
    text = report(analysis, meta)
    options.out.mkdir(parents=True, exist_ok=True)
    (options.out / "redis-shared.md").write_text(text)
    (options.out / "redis-shared.json").write_text(
        json.dumps({"meta": meta, "analysis": analysis, "rounds": rounds}, indent=2)
    )
    print(text)
    return 0


def _kurigram_version(python: Path) -> str:
    command = [str(python), "-c", "import pyrogram; print(pyrogram.__version__)"]
    return subprocess.run(command, capture_output=True, text=True).stdout.strip()


def _server_version(url: str) -> str:
    from servers.redisserver import command

    host, _, port = url.split("//", 1)[1].split("/", 1)[0].partition(":")
    try:
        info = command(host, int(port), "INFO", "server")
    except Exception:  # a label only
        return "?"
    text = info.decode() if isinstance(info, bytes) else str(info)
    for line in text.splitlines():
        if line.startswith(("valkey_version:", "redis_version:")) and "valkey" in line:
            return line.strip()
    for line in text.splitlines():
        if line.startswith("redis_version:"):
            return line.strip()
    return "?"


def _ratio(theirs: list[float], ours: list[float]) -> float:
    """The median over rounds of their time / ours."""
    return statistics.median(t / o for t, o in zip(theirs, ours, strict=True))


def analyse(rounds: list[dict[str, Any]], sizes: list[int]) -> dict[str, Any]:
    """Medians over rounds of each figure and of each within-round ratio."""
    out: dict[str, Any] = {}
    for n in sizes:
        theirs = [r[f"path {n} kurigram file"][0] for r in rounds]
        ours = [r[f"path {n} ours x2"] for r in rounds]
        pair = [statistics.mean(r[f"path {n} kurigram file x2"]) for r in rounds]
        out[f"path {n}"] = {
            "kurigram file us": statistics.median(theirs),
            "kurigram file x2 us": statistics.median(pair),
            "ratio process 1 vs x2": _ratio(pair, [o[0] for o in ours]),
            "ratio process 2 vs x2": _ratio(pair, [o[1] for o in ours]),
            "ours process 1 us": statistics.median(o[0] for o in ours),
            "ours process 2 us": statistics.median(o[1] for o in ours),
            "ratio process 1": _ratio(theirs, [o[0] for o in ours]),
            "ratio process 2": _ratio(theirs, [o[1] for o in ours]),
            "target": 1.0,
        }
        if all(f"cpu {n} ours x2" in r for r in rounds):
            cpu_theirs = [r[f"cpu {n} kurigram file"][0] for r in rounds]
            cpu_ours = [r[f"cpu {n} ours x2"] for r in rounds]
            out[f"cpu {n}"] = {
                "kurigram file us": statistics.median(cpu_theirs),
                "kurigram file x2 us": statistics.median(
                    statistics.mean(r[f"cpu {n} kurigram file x2"]) for r in rounds
                ),
                "ours process 1 us": statistics.median(o[0] for o in cpu_ours),
                "ours process 2 us": statistics.median(o[1] for o in cpu_ours),
                "ratio process 1": _ratio(cpu_theirs, [o[0] for o in cpu_ours]),
                "ratio process 2": _ratio(cpu_theirs, [o[1] for o in cpu_ours]),
            }
        for kind, target in (("hot_us", None), ("cold_us", None)):
            base = [r[f"lookups {n} kurigram file"][kind] for r in rounds]
            cached = [r[f"lookups {n} ours shared"][kind] for r in rounds]
            uncached = [r[f"lookups {n} ours shared, peer_cache_size=0"][kind] for r in rounds]
            out[f"lookups {n} {kind}"] = {
                "kurigram file us": statistics.median(base),
                "ours shared us": statistics.median(cached),
                "ours uncached us": statistics.median(uncached),
                "ratio shared": _ratio(base, cached),
                "ratio uncached": _ratio(base, uncached),
                "target": target,
            }
            cpu = kind.replace("_us", "_cpu_us")
            if all(cpu in r[f"lookups {n} ours shared, peer_cache_size=0"] for r in rounds):
                base = [r[f"lookups {n} kurigram file"][cpu] for r in rounds]
                uncached = [r[f"lookups {n} ours shared, peer_cache_size=0"][cpu] for r in rounds]
                shared = [r[f"lookups {n} ours shared"][cpu] for r in rounds]
                out[f"lookups {n} {kind}"].update(
                    {
                        "kurigram file cpu us": statistics.median(base),
                        "ours shared cpu us": statistics.median(shared),
                        "cpu ratio shared": _ratio(base, shared),
                        "ours uncached cpu us": statistics.median(uncached),
                        "cpu ratio uncached": _ratio(base, uncached),
                    }
                )
    return out


def report(analysis: dict[str, Any], meta: dict[str, Any]) -> str:
    command = meta.get("command", "benchmarks/redis_shared.py")
    out = [
        "# Two processes, one RedisStorage session (shared mode)",
        "",
        f"Generated {meta['generated']} by `{command}` ({meta['repeat']} rounds, medians). "
        f"CPython {meta['python']}; {meta['cores']} cores; Kurigram {meta['kurigram']}; "
        f"server {meta['server']} on 127.0.0.1.",
        "",
        f"Machine load: before `{meta['uptime_before']}`; after `{meta['uptime_after']}`; "
        f"1-minute load after each round: {', '.join(meta['loads'])}. The machine is "
        "shared with other work: absolute times are inflated and noisy; ratios are taken "
        "within a round.",
        "",
        "## Kurigram update path: µs per update (flush included)",
        "",
        f"{meta['updates']} updates per process after {meta['warmup']} of warm-up; ours: "
        "two processes on one session at once, each handling its own stream; Kurigram's "
        "file storage: one process alone, and two processes at once on two files (the same "
        "competition for the cores; mean of the two). Ratio: Kurigram's time / each of our "
        "processes' (target ≥ 1×).",
        "",
        "| N | Kurigram file, alone | Kurigram file, 2 at once | ours, process 1 | "
        "ours, process 2 | ratio 1 / 2 vs alone | ratio 1 / 2 vs 2 at once |",
        "|---|---|---|---|---|---|---|",
    ]
    for n in meta["sizes"]:
        row = analysis[f"path {n}"]
        out.append(
            f"| {n // 1000}k | {row['kurigram file us']:.1f} | {row['kurigram file x2 us']:.1f} "
            f"| {row['ours process 1 us']:.1f} | {row['ours process 2 us']:.1f} | "
            f"{row['ratio process 1']:.2f}× / {row['ratio process 2']:.2f}× | "
            f"{row['ratio process 1 vs x2']:.2f}× / {row['ratio process 2 vs x2']:.2f}× |"
        )
    if all(f"cpu {n}" in analysis for n in meta["sizes"]):
        out += [
            "",
            "The same runs, CPU time of each process per update (`time.process_time()`: "
            "what the update costs the process, whatever the machine's load; the server's "
            "CPU is not in it). Ratio: Kurigram's alone / each of our processes'.",
            "",
            "| N | Kurigram file, alone | Kurigram file, 2 at once | ours, process 1 | "
            "ours, process 2 | ratio 1 / 2 |",
            "|---|---|---|---|---|---|",
        ]
        for n in meta["sizes"]:
            row = analysis[f"cpu {n}"]
            out.append(
                f"| {n // 1000}k | {row['kurigram file us']:.1f} | "
                f"{row['kurigram file x2 us']:.1f} | {row['ours process 1 us']:.1f} | "
                f"{row['ours process 2 us']:.1f} | {row['ratio process 1']:.2f}× / "
                f"{row['ratio process 2']:.2f}× |"
            )
    out += [
        "",
        "## get_peer_by_id through the client's storage: µs per lookup",
        "",
        f"{meta['lookups']} lookups of a hot set of 1,000 peers (memory: shared mode's "
        "invalidated cache; target ≥ 3× Kurigram file), and distinct peers once each "
        "(cold). Uncached: `peer_cache_size=0`, every lookup a round trip (target ≥ 0.5×).",
        "",
        "| N | lookups | Kurigram file | ours shared | ratio | ours uncached | ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for n in meta["sizes"]:
        for kind, label in (("hot_us", "hot set"), ("cold_us", "distinct, once each")):
            row = analysis[f"lookups {n} {kind}"]
            out.append(
                f"| {n // 1000}k | {label} | {row['kurigram file us']:.2f} | "
                f"{row['ours shared us']:.2f} | {row['ratio shared']:.2f}× | "
                f"{row['ours uncached us']:.2f} | {row['ratio uncached']:.2f}× |"
            )
    rows = [analysis[f"lookups {n} cold_us"] for n in meta["sizes"]]
    if all("ours shared cpu us" in row for row in rows):
        out += [
            "",
            "The same lookups, CPU time per lookup (`time.process_time()`): what a lookup "
            "costs this process whatever the machine's load (uncached: without the wait "
            "for the server).",
            "",
            "| N | lookups | Kurigram file | ours shared | ratio | ours uncached | ratio |",
            "|---|---|---|---|---|---|---|",
        ]
        for n in meta["sizes"]:
            for kind, label in (("hot_us", "hot set"), ("cold_us", "distinct, once each")):
                row = analysis[f"lookups {n} {kind}"]
                out.append(
                    f"| {n // 1000}k | {label} | {row['kurigram file cpu us']:.2f} | "
                    f"{row['ours shared cpu us']:.2f} | {row['cpu ratio shared']:.2f}× | "
                    f"{row['ours uncached cpu us']:.2f} | {row['cpu ratio uncached']:.2f}× |"
                )
    elif all("ours uncached cpu us" in row for row in rows):
        out += [
            "",
            "Uncached, CPU time per lookup (`time.process_time()`, distinct peers once each): "
            "what the round trip costs this process, without the wait for the server.",
            "",
            "| N | Kurigram file | ours uncached | ratio |",
            "|---|---|---|---|",
        ]
        for n, row in zip(meta["sizes"], rows, strict=True):
            out.append(
                f"| {n // 1000}k | {row['kurigram file cpu us']:.2f} | "
                f"{row['ours uncached cpu us']:.2f} | {row['cpu ratio uncached']:.2f}× |"
            )
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.exit(main())
