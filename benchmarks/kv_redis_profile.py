"""Where the time of a Redis FSM call goes: aiogram's RedisStorage against ours, layer by layer.

The profile behind the Redis rows of ``kv_frameworks.py``. Runs in the aiogram venv
(``tests/clientenv.py``) against a Redis server started here on 127.0.0.1:

* per call, on the server: the calls are interleaved ONE BY ONE (raw GET, aiogram's
  ``get_state``, our store's own client GET, ``RedisKV.get``, ``for_aiogram``'s
  ``get_state``, and so on), 20,000 times, so that load drift hits all alike; median
  µs per call;
* the Python cost alone: the same layers over an in-process client whose ``get`` and
  ``set`` return at once, so only our code and aiogram's remain (µs per call, best of
  7 runs).

    .venv/bin/python benchmarks/kv_redis_profile.py [--rounds 20000] [--out DIR] [--name NAME]

Writes ``kv-frameworks-profile.md`` (``--name`` for another name).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests"))

Call = Callable[[], Awaitable[Any]]


class _InstantRedis:
    """Answers GET/SET/EVALSHA at once, like a server with no latency."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    async def get(self, name: str) -> bytes | None:
        return self.data.get(name)

    async def set(self, name: str, value: Any, ex: Any = None, px: Any = None) -> bool:
        self.data[name] = value.encode() if isinstance(value, str) else value
        return True

    async def delete(self, *names: str) -> int:
        return sum(self.data.pop(name, None) is not None for name in names)

    async def ping(self) -> bool:
        return True


async def _server_rows(url: str, rounds: int) -> dict[str, float]:
    import redis.asyncio
    from aiogram.fsm.storage.base import StorageKey
    from aiogram.fsm.storage.redis import DefaultKeyBuilder, RedisStorage

    from pyrogram_storage import kv

    key = StorageKey(bot_id=1, chat_id=1, user_id=1)
    raw = redis.asyncio.Redis.from_url(url)
    theirs = RedisStorage.from_url(url, key_builder=DefaultKeyBuilder(prefix="t"))
    store: kv.RedisKV[Any] = kv.RedisKV.from_url(url, namespace="o")
    ours = kv.for_aiogram(store)
    cached: kv.RedisKV[Any] = kv.RedisKV.from_url(url, namespace="c", client_cache=True)
    ours_cached = kv.for_aiogram(cached)
    await raw.set("raw", '"Form:name"')
    for storage in (theirs, ours, ours_cached):
        await storage.set_state(key, "Form:name")
        await storage.set_data(key, {"name": "Ann", "age": 30})
    inner, lane = store._client, store._lane
    assert lane is not None, "RedisKV has no command connection of its own here"
    ages = iter(range(10**9))  # every update changes the data, so both write
    calls: dict[str, Call] = {
        "raw redis-py GET": lambda: raw.get("raw"),
        "aiogram get_state": lambda: theirs.get_state(key),
        "our driver client's GET (same key)": lambda: inner.get("o:fsm:1:1:state"),
        "our command connection's GET (same key)": lambda: lane.execute(("GET", "o:fsm:1:1:state")),
        "RedisKV.get": lambda: store.get("fsm:1:1:state"),
        "for_aiogram get_state": lambda: ours.get_state(key),
        "raw redis-py SET": lambda: raw.set("raw", '"Form:age"'),
        "aiogram set_state": lambda: theirs.set_state(key, "Form:age"),
        "for_aiogram set_state": lambda: ours.set_state(key, "Form:age"),
        "aiogram get_data": lambda: theirs.get_data(key),
        "for_aiogram get_data": lambda: ours.get_data(key),
        "aiogram set_data": lambda: theirs.set_data(key, {"name": "Ann", "age": next(ages)}),
        "for_aiogram set_data": lambda: ours.set_data(key, {"name": "Ann", "age": next(ages)}),
        "for_aiogram set_data (client_cache)": lambda: ours_cached.set_data(
            key, {"name": "Ann", "age": next(ages)}
        ),
        "aiogram update_data (GET + SET)": lambda: theirs.update_data(key, {"age": next(ages)}),
        "for_aiogram update_data (the merge script)": lambda: ours.update_data(
            key, {"age": next(ages)}
        ),
        "for_aiogram update_data (client_cache, on the tracking connection)": lambda: (
            ours_cached.update_data(key, {"age": next(ages)})
        ),
        "RedisKV.compare_and_set (the Lua script)": lambda: store.compare_and_set(
            "cas", "a", expected="a"
        ),
    }
    await store.set("cas", "a")
    samples: dict[str, list[float]] = {name: [] for name in calls}
    clock = time.perf_counter
    for _ in range(rounds):
        for name, call in calls.items():
            started = clock()
            await call()
            samples[name].append(clock() - started)
    await store.clear()
    await cached.clear()
    await ours_cached.close()
    await theirs.set_state(key, None)
    await theirs.set_data(key, {})
    await theirs.close()
    await ours.close()
    await raw.delete("raw")
    await raw.aclose()
    return {name: statistics.median(values) * 1e6 for name, values in samples.items()}


async def _python_rows() -> dict[str, float]:
    from aiogram.fsm.storage.base import StorageKey
    from aiogram.fsm.storage.redis import RedisStorage

    from pyrogram_storage import kv

    key = StorageKey(bot_id=1, chat_id=1, user_id=1)
    instant = _InstantRedis()
    theirs = RedisStorage(instant)  # type: ignore[arg-type]
    store: kv.RedisKV[Any] = kv.RedisKV.from_url("redis://127.0.0.1:1/0", namespace="o")
    from pyrogram_storage._lifecycle import _OPEN

    store._client, store._state = instant, _OPEN  # no server: only the Python layers
    ours = kv.for_aiogram(store)
    await theirs.set_state(key, "Form:name")
    await ours.set_state(key, "Form:name")
    calls: dict[str, Call] = {
        "client get (instant)": lambda: instant.get("o:fsm:1:1:state"),
        "aiogram get_state": lambda: theirs.get_state(key),
        "RedisKV._get (the primitive)": lambda: store._get("fsm:1:1:state"),
        "RedisKV.get (the contract's rules, decoding)": lambda: store.get("fsm:1:1:state"),
        "for_aiogram get_state (key builder, adapter)": lambda: ours.get_state(key),
        "aiogram set_state": lambda: theirs.set_state(key, "Form:age"),
        "for_aiogram set_state": lambda: ours.set_state(key, "Form:age"),
    }
    rows = {}
    for name, call in calls.items():
        best = float("inf")
        for _ in range(7):
            started = time.perf_counter()
            for _ in range(20_000):
                await call()
            best = min(best, (time.perf_counter() - started) / 20_000)
        rows[name] = best * 1e6
    return rows


def _worker(url: str, rounds: int) -> None:
    async def both() -> dict[str, Any]:
        return {"server": await _server_rows(url, rounds), "python": await _python_rows()}

    print(json.dumps(asyncio.run(both())))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--name", default="kv-frameworks-profile", help="the report's file name")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.worker:
        _worker(options.worker, options.rounds)
        return 0

    from clientenv import run_in_env
    from servers.redisserver import RedisServer, find_server

    before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp)) as server:
        result = run_in_env(
            "aiogram",
            Path(__file__),
            "--worker",
            server.url,
            "--rounds",
            str(options.rounds),
            timeout=3600,
        )
    after = os.getloadavg()
    rows = json.loads(result.stdout.strip().splitlines()[-1])
    lines = [
        "# Redis FSM calls, layer by layer (aiogram venv, µs per call)",
        "",
        f"{Path(find_server()).name} on 127.0.0.1; calls interleaved one by one, "
        f"{options.rounds} rounds, medians; load average {before[0]:.2f} before, "
        f"{after[0]:.2f} after; generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        "## On the server",
        "",
        "| call | µs |",
        "|---|---:|",
        *(f"| {name} | {value:.1f} |" for name, value in rows["server"].items()),
        "",
        "## The Python layers alone (an in-process client that answers at once; best of 7)",
        "",
        "| call | µs |",
        "|---|---:|",
        *(f"| {name} | {value:.2f} |" for name, value in rows["python"].items()),
        "",
    ]
    text = "\n".join(lines)
    options.out.mkdir(parents=True, exist_ok=True)
    (options.out / f"{options.name}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
