"""A session writer for tests/test_crash.py, which SIGKILLs it at random points.

Usage: ``python tests/crash_writer.py WORKDIR NAME FIRST_CYCLE``

Each cycle ``n`` (counting from FIRST_CYCLE) upserts a batch of peers, stores the
session fields, then calls ``save()``. After each call *returned* it prints one line
to stdout (flushed), so every line the parent reads names a write the storage had
acknowledged:

* ``peers n`` -- the peers ``peer_ids(n)`` are stored with ``access_hash(n, id)``;
* ``session n`` -- the session has ``user_id == n`` and ``api_id == n + 1``;
* ``save n`` -- ``save()`` returned after the above.

``ready`` is printed once the storage is open. The loop never ends by itself.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

PEERS_PER_CYCLE = 25


def peer_ids(cycle: int) -> range:
    """Return the ids of the peers a cycle writes (half new, half rewritten from before)."""
    start = cycle * PEERS_PER_CYCLE // 2
    return range(start, start + PEERS_PER_CYCLE)


def access_hash(cycle: int, peer_id: int) -> int:
    """Return the access hash a cycle gives a peer, so a rewrite is distinguishable."""
    return cycle * 1_000_003 + peer_id


def username(peer_id: int) -> str:
    return f"user_{peer_id}"


async def main(workdir: str, name: str, first: int) -> None:
    # Imported here: the test imports this module for its helpers only.
    from pyrogram_storage import FileStorage, Peer, PeerType

    # Every call durable when it returns: the "nothing acknowledged is lost" mode.
    storage = FileStorage(name, Path(workdir), username_ttl=None, commit_interval=0)
    await storage.open()
    print("ready", flush=True)
    cycle = first
    while True:
        await storage.upsert_peers(
            Peer(
                peer_id,
                access_hash(cycle, peer_id),
                PeerType.USER,
                (username(peer_id), f"alt_{peer_id}_{cycle}"),
                f"1555{peer_id:07d}",
            )
            for peer_id in peer_ids(cycle)
        )
        print(f"peers {cycle}", flush=True)
        await storage.update_session(user_id=cycle, api_id=cycle + 1, auth_key=bytes(256))
        print(f"session {cycle}", flush=True)
        await storage.save()
        print(f"save {cycle}", flush=True)
        cycle += 1


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
