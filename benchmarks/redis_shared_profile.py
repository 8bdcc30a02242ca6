"""Where a shared-mode update goes: two processes on one RedisStorage session, one profiled.

Starts a server as ``redis_shared.py`` does, fills one session with N peers, runs two
``path`` workers at once (shared mode) and prints, per update: wall and CPU time of each
process, the server's commands (``INFO commandstats`` before and after, both processes
together, divided by their updates) and the top of process 1's cProfile::

    .venv/bin/python benchmarks/redis_shared_profile.py [--n 10000] [--updates 5000]
        [--options '{"sole_writer": true}'] [--system path-kurigram-ours-redis]
        [--processes 2] [--no-profile]
"""

from __future__ import annotations

import argparse
import json
import pstats
import sys
import tempfile
from pathlib import Path
from typing import Any

import redis_shared as rs

sys.path.insert(0, str(rs.REPO / "tests"))


def commandstats(url: str) -> dict[str, int]:
    from servers.redisserver import command

    host, _, port = url.split("//", 1)[1].split("/", 1)[0].partition(":")
    text = command(host, int(port), "INFO", "commandstats")
    text = text.decode() if isinstance(text, bytes) else str(text)
    out = {}
    for line in text.splitlines():
        if line.startswith("cmdstat_"):
            name, _, fields = line.partition(":")
            calls = dict(item.split("=") for item in fields.split(","))
            out[name[8:]] = int(calls["calls"])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--updates", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--system", default=rs.OURS)
    parser.add_argument("--options", default="{}")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--top", type=int, default=35)
    parser.add_argument("--no-profile", action="store_true", help="time only")
    options = parser.parse_args()
    from clientenv import ensure_env
    from servers.redisserver import RedisServer

    python = ensure_env("kurigram")
    extra = json.loads(options.options)
    with (
        tempfile.TemporaryDirectory() as tmp,
        RedisServer(
            Path(tmp) / "redis", extra_args=["--appendonly", "yes", "--appendfsync", "everysec"]
        ) as server,
    ):
        workdir = Path(tmp) / "work"
        workdir.mkdir()
        common: dict[str, Any] = {
            "uri": server.url, "workdir": str(workdir), "updates": options.updates,
            "warmup": options.warmup, "n": options.n, "system": options.system,
            "name": "s", "options": extra,
        }  # fmt: skip
        shared = options.system == rs.OURS  # the others: one session (file) per process
        names = ["s"] * options.processes if shared else [f"s{i}" for i in range(options.processes)]
        for name in sorted(set(names)):
            rs.run_one(python, {**common, "mode": "populate", "name": name})
        prof = Path(tmp) / "p1.prof"
        workers = []
        for index in range(options.processes):
            args = {**common, "mode": "path", "index": index, "round": 0, "name": names[index]}
            if index == 0 and not options.no_profile:
                args["profile"] = str(prof)
            workers.append(rs.Worker(python, args))
        for worker in workers:
            assert worker.line() == "ready"
        before = commandstats(server.url)
        for worker in workers:
            worker.go()
        results = [worker.line() for worker in workers]
        after = commandstats(server.url)  # save() and close() may have begun: small
        for worker in workers:
            worker.proc.wait(timeout=600)
        print(rs._uptime())
        for index, result in enumerate(results):
            print(f"process {index + 1}: {result}")
        total = options.updates * options.processes
        for name in sorted(after, key=lambda k: -(after[k] - before.get(k, 0))):
            calls = after[name] - before.get(name, 0)
            if calls:
                print(f"  {name}: {calls} calls, {calls / total:.3f} per update")
        if options.no_profile:
            return 0
        stats = pstats.Stats(str(prof))
        stats.sort_stats("tottime").print_stats(options.top)
        stats.sort_stats("cumulative").print_stats(options.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
