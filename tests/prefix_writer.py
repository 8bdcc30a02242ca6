"""A writer for tests/test_crash_prefix.py: numbered operations, SIGKILLed at random.

Usage: ``python tests/prefix_writer.py WORKDIR NAME FIRST``

Operation ``k`` (from FIRST on, with the default ``commit_interval``) upserts the new
peer ``k`` (access hash ``k``), rewrites the group ``-(k % GROUPS) - 1`` with access
hash ``k``, and merges ``pts = k`` into update state 0; then it prints ``op k``. Every
25th operation also stores ``user_id = k`` (``session k``: durable when it returns),
every 40th calls ``flush()`` (``flush k``). The stored data must always be exactly
operations ``1..K`` for some K: a prefix, with no hole and nothing reordered.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

GROUPS = 7


def group_of(op: int) -> int:
    return -(op % GROUPS) - 1


async def main(workdir: str, name: str, first: int) -> None:
    from pyrogram_storage import FileStorage, Peer, PeerType, UpdateState

    storage = FileStorage(name, Path(workdir), username_ttl=None)
    await storage.open()
    print("ready", flush=True)
    op = first
    while True:
        await storage.upsert_peers(
            [
                Peer(op, op, PeerType.USER, (f"p{op}",)),
                Peer(group_of(op), op, PeerType.GROUP, ()),
            ]
        )
        await storage.set_update_states([UpdateState(0, pts=op)])
        print(f"op {op}", flush=True)
        if op % 25 == 0:
            await storage.update_session(user_id=op)
            print(f"session {op}", flush=True)
        if op % 40 == 0:
            await storage.flush()
            print(f"flush {op}", flush=True)
        op += 1
        if op % 5 == 0:
            await asyncio.sleep(0.001)  # a bot waits for updates now and then


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
