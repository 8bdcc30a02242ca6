"""A second process for tests/test_concurrency.py.

Usage: ``python tests/lock_holder.py WORKDIR NAME LOCK MODE [ARGS]``

* ``hold``: open the session, print ``ready PID``, then wait until stdin closes.
* ``write FIRST COUNT``: open the session, print ``ready PID``, wait for a line on
  stdin (the start signal, so two writers overlap), then upsert peers FIRST ..
  FIRST+COUNT-1 one call each, storing ``api_id`` and an update state after each;
  print ``done``, close. Any exception is printed as ``error TYPE: MESSAGE`` and the
  exit code is 1.
"""

from __future__ import annotations

import asyncio
import os
import sys
import traceback
from pathlib import Path


async def main(workdir: str, name: str, lock: str, mode: str, args: list[str]) -> int:
    from pyrogram_storage import FileStorage, Peer, PeerType, UpdateState

    storage = FileStorage(name, Path(workdir), lock=lock, username_ttl=None)
    try:
        await storage.open()
    except Exception as exc:
        print(f"error {type(exc).__name__}: {exc}", flush=True)
        return 1
    print(f"ready {os.getpid()}", flush=True)
    try:
        if mode == "hold":
            await asyncio.to_thread(sys.stdin.read)
        elif mode == "write":
            first, count = int(args[0]), int(args[1])
            await asyncio.to_thread(sys.stdin.readline)
            for peer_id in range(first, first + count):
                await storage.upsert_peers(
                    [Peer(peer_id, peer_id * 3, PeerType.USER, (f"u{peer_id}",), None)]
                )
                await storage.update_session(api_id=peer_id)
                await storage.set_update_states([UpdateState(first, pts=peer_id)])
                # Reads see the other process's writes too (no stale cache in shared mode).
                await storage.count_peers()
                await storage.get_session()
            print("done", flush=True)
    except Exception as exc:
        traceback.print_exc()
        print(f"error {type(exc).__name__}: {exc}", flush=True)
        return 1
    finally:
        await storage.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(*sys.argv[1:5], sys.argv[5:])))
