"""One of the processes racing on a store, for tests/kv/test_atomicity.py.

Usage: ``python tests/kv/atomic_worker.py``; it then serves races, one JSON line each
on stdin, until stdin closes: ``{"location", "mode", "tasks", "count"}``. For each it
opens the store at ``location``, prints ``ready``, waits for a ``go`` line (sent when
every racing process is ready, so they all start together), then runs ``tasks`` tasks:

* ``increment``: each increments ``counter`` ``count`` times;
* ``cas``: each claims the keys ``round:0`` … ``round:count-1`` with
  ``compare_and_set(..., expected=MISSING)``, then they all advance ``token`` from its
  current value v to v + 1 with ``compare_and_set(expected=v)`` until it reaches count;
* ``merge``: task t merges ``{"<pid>:<t>:<i>": i}`` into ``dict`` for i below count.

and prints one JSON object: the values ``increment`` returned, or the rounds and the
token values this process won, or the keys this process merged. One process serves
every race of a test run: the interpreter and the drivers load once.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any


async def race(location: str, mode: str, tasks: int, count: int) -> dict[str, list[Any]]:
    from pyrogram_storage import kv

    store = kv.from_url(location)
    await store.open()
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("no go")
    start = time.monotonic()
    me = os.getpid()
    result: dict[str, list[Any]] = {"returned": [], "rounds": [], "tokens": [], "merged": []}

    async def increments() -> None:
        for _ in range(count):
            result["returned"].append(await store.increment("counter"))

    async def claims() -> None:
        for round_ in range(count):
            if await store.compare_and_set(f"round:{round_}", me, expected=kv.MISSING):
                result["rounds"].append(round_)
        while True:
            if time.monotonic() > start + 300:
                raise TimeoutError("the token never reached its end")
            current = await store.get("token")
            value = 0 if current is None else current
            if value >= count:
                return
            expected = kv.MISSING if current is None else current
            if await store.compare_and_set("token", value + 1, expected=expected):
                result["tokens"].append(value)

    async def merges(task: int) -> None:
        for i in range(count):
            name = f"{me}:{task}:{i}"
            merged = await store.merge("dict", {name: i})
            assert merged[name] == i
            result["merged"].append(name)

    try:
        if mode == "merge":
            await asyncio.gather(*(merges(task) for task in range(tasks)))
        else:
            work = increments if mode == "increment" else claims
            await asyncio.gather(*(work() for _ in range(tasks)))
    finally:
        await store.close()
    return result


def main() -> None:
    for line in sys.stdin:
        job = json.loads(line)
        result = asyncio.run(race(job["location"], job["mode"], job["tasks"], job["count"]))
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
