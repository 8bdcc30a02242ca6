"""aiogram's ``update_data``: its RedisStorage against ``for_aiogram``, before and after merge.

``for_aiogram``'s ``update_data`` was a read and a compare-and-set (two round trips);
it is now one ``KVStore.merge`` (one). This runs, in the aiogram venv
(``tests/clientenv.py``), against ONE Redis server and ONE PostgreSQL server (fsync on)
started here, interleaved in the same cycles so that every system meets the same load:
aiogram's RedisStorage, and RedisKV and PostgresKV through ``for_aiogram`` with the
earlier update (get + compare-and-set, kept here as it was) and with the current one.
Ratios are taken within each cycle (their time / ours), then the median.

    .venv/bin/python benchmarks/kv_update_data.py [--cycles 40] [--out DIR]

Writes ``kv-update-data.md``. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CALLS = 100
DATA = {"name": "Ann", "lang": "en", "age": 30}


async def _old_update(adapter: Any, key: Any, data: dict[str, Any]) -> dict[str, Any]:
    """The adapter's update_data before merge: a read, then a compare-and-set, retried."""
    from pyrogram_storage.kv.base import MISSING

    store = adapter.store
    data_key = adapter.key_builder.build(key, "data")
    for _ in range(100):
        stored = await store.get(data_key, MISSING)
        current = stored if type(stored) is dict else {}
        merged = {**current, **data}
        if await store.compare_and_set(data_key, merged, expected=stored, ttl=adapter.data_ttl):
            return merged
    raise RuntimeError("lost 100 races")


async def _work(config: dict[str, Any]) -> dict[str, Any]:
    from aiogram.fsm.storage.base import StorageKey
    from aiogram.fsm.storage.redis import DefaultKeyBuilder, RedisStorage

    from pyrogram_storage import kv

    key = StorageKey(bot_id=42, chat_id=1, user_id=1)
    theirs = RedisStorage.from_url(config["redis"], key_builder=DefaultKeyBuilder(prefix="t"))
    redis = kv.for_aiogram(kv.RedisKV.from_url(config["redis"], namespace="ours"))
    postgres = kv.for_aiogram(kv.PostgresKV.from_url(config["postgres"], namespace="ours"))
    storages = (theirs, redis, postgres)
    for storage in storages:
        await storage.set_data(key, DATA)
    systems = {
        "aiogram RedisStorage": lambda i: theirs.update_data(key, {"age": i}),
        "ours: RedisKV, get + compare-and-set": lambda i: _old_update(redis, key, {"age": i}),
        "ours: RedisKV, merge": lambda i: redis.update_data(key, {"age": i}),
        "ours: PostgresKV, get + compare-and-set": lambda i: _old_update(postgres, key, {"age": i}),
        "ours: PostgresKV, merge": lambda i: postgres.update_data(key, {"age": i}),
    }
    names = list(systems)
    for name in names:  # warm-up
        for i in range(20):
            await systems[name](i)
    times: dict[str, list[float]] = {name: [] for name in names}
    for cycle in range(config["cycles"]):
        for name in names if cycle % 2 == 0 else names[::-1]:
            started = time.perf_counter()
            for i in range(CALLS):
                await systems[name](i)
            times[name].append((time.perf_counter() - started) / CALLS * 1e6)
    for storage in storages:
        await storage.set_data(key, {})
        await storage.close()
    return times


def _report(times: dict[str, list[float]], meta: dict[str, Any]) -> str:
    names = list(times)
    theirs = names[0]
    rows = []
    for name in names:
        median = statistics.median(times[name])
        if name == theirs:
            ratio = "1.00×"
        else:
            pairs = zip(times[theirs], times[name], strict=True)
            ratio = f"{statistics.median(a / b for a, b in pairs):.2f}×"
        rows.append(f"| {name} | {median:.1f} | {ratio} |")
    return "\n".join(
        [
            "# aiogram's update_data: RedisStorage against for_aiogram, before and after merge",
            "",
            f"Medians of {meta['cycles']} interleaved cycles of {CALLS} calls, one call at a time; "
            f"CPython {meta['python']}; {os.cpu_count()} cores; one Redis server "
            f"({meta['redis_server']}) and one PostgreSQL (fsync on) on 127.0.0.1; "
            f"generated {meta['generated']}.",
            "",
            f"- load before: `{meta['uptime_before']}`",
            f"- load after: `{meta['uptime_after']}`",
            f"- aiogram venv: {meta['versions']}",
            "",
            "The earlier update (`get + compare-and-set`, two round trips) and the current one",
            "(`merge`, one) run in the same cycles, so the ratios compare them under one load.",
            "",
            "| system | µs per update_data "
            "| × faster than aiogram's (median of per-cycle ratios) |",
            "|---|---:|---:|",
            *rows,
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=40)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.worker:
        print(json.dumps(asyncio.run(_work(json.loads(options.worker)))))
        return
    sys.path.insert(0, str(REPO / "tests"))
    from clientenv import run_in_env
    from servers.pgserver import PostgresServer
    from servers.redisserver import RedisServer, find_server

    def uptime() -> str:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()

    versions = run_in_env(
        "aiogram",
        "import aiogram, redis; print(f'aiogram {aiogram.__version__}, redis {redis.__version__}')",
    ).stdout.strip()
    before = uptime()
    with (
        RedisServer() as redis,
        PostgresServer(settings=["fsync=on", "full_page_writes=on"]) as postgres,
    ):
        config = {"redis": redis.url, "postgres": postgres.url, "cycles": options.cycles}
        result = run_in_env("aiogram", Path(__file__), "--worker", json.dumps(config), timeout=3600)
    times = json.loads(result.stdout.strip().splitlines()[-1])
    meta = {
        "cycles": options.cycles,
        "python": sys.version.split()[0],
        "redis_server": Path(find_server()).name,
        "generated": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "uptime_before": before,
        "uptime_after": uptime(),
        "versions": versions,
    }
    text = _report(times, meta)
    options.out.mkdir(parents=True, exist_ok=True)
    (options.out / "kv-update-data.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
