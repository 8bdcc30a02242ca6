"""A bot-state writer for tests/kv/test_kill.py, which SIGKILLs it at random points.

Usage: ``python tests/kv/kill_writer.py KIND PATH FIRST``

KIND is ``json`` or ``sqlite``. From FIRST on, write n: ``set("k<n>", {"n": n})``, then
``increment("writes")``, printing ``set n`` / ``inc n`` after each call *returned*
(flushed), so every line the parent reads is an acknowledged write. Never ends.
"""

from __future__ import annotations

import asyncio
import sys


async def main(kind: str, path: str, first: int) -> None:
    from pyrogram_storage import kv

    store: kv.KVStore[object] = kv.JSONFileKV(path) if kind == "json" else kv.SQLiteKV(path)
    await store.open()
    print("ready", flush=True)
    n = first
    while True:
        await store.set(f"k{n}", {"n": n, "pad": "x" * (n % 50)})
        print(f"set {n}", flush=True)
        await store.increment("writes")
        print(f"inc {n}", flush=True)
        n += 1


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
