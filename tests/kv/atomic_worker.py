"""One of the processes racing on a store, for tests/kv/test_atomicity.py.

Usage: ``python tests/kv/atomic_worker.py LOCATION MODE TASKS COUNT START``

Opens the store at LOCATION, waits until the epoch time START, then runs TASKS tasks:

* ``increment``: each increments ``counter`` COUNT times;
* ``cas``: each claims the keys ``round:0`` … ``round:COUNT-1`` with
  ``compare_and_set(..., expected=MISSING)``, then they all advance ``token`` from its
  current value v to v + 1 with ``compare_and_set(expected=v)`` until it reaches COUNT;
* ``merge``: task t merges ``{"<pid>:<t>:<i>": i}`` into ``dict`` for i below COUNT.

Prints one JSON object: the values ``increment`` returned, or the rounds and the token
values this process won, or the keys this process merged.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any


async def main(location: str, mode: str, tasks: int, count: int, start: float) -> None:
    from pyrogram_storage import kv

    store = kv.from_url(location)
    await store.open()
    await asyncio.sleep(max(0.0, start - time.time()))
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
            if time.time() > start + 300:
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

    if mode == "merge":
        await asyncio.gather(*(merges(task) for task in range(tasks)))
    else:
        work = increments if mode == "increment" else claims
        await asyncio.gather(*(work() for _ in range(tasks)))
    await store.close()
    print(json.dumps(result))


if __name__ == "__main__":
    location, mode, tasks, count, start = sys.argv[1:6]
    asyncio.run(main(location, mode, int(tasks), int(count), float(start)))
