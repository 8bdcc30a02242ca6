"""The other process of tests/test_redis_shared.py: one shared RedisStorage, driven by lines.

Usage: ``python tests/shared_peer.py URL NAME``

Reads one JSON command a line on stdin and answers one JSON line on stdout:
``["get", id]`` (the peer's access hash, or null), ``["put", id, hash]`` (stored before
the answer: ``commit_interval=0``), ``["session"]`` (``api_id``), ``["set_session",
api_id]``, ``["state", id]`` (its ``pts``), ``["set_state", id, pts]``, ``["cached",
id]`` (whether memory holds the peer: no I/O), ``["tracker"]`` (the invalidation
connection's client id, or null while it is down). A call that fails answers
``{"error": class name, "message": ...}``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any


async def main(url: str, name: str) -> None:
    from pyrogram_storage import Peer, PeerType, StorageError, UpdateState
    from pyrogram_storage.redisdb.storage import RedisStorage

    storage = RedisStorage.from_url(
        url,
        name=name,
        commit_interval=0,
        username_ttl=None,
        client_options={"socket_timeout": 1.0, "socket_connect_timeout": 1.0},
    )
    await storage.open()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def run(command: list[Any]) -> Any:
        what = command[0]
        if what == "get":
            try:
                return (await storage.peer_by_id(command[1], with_usernames=False)).access_hash
            except KeyError:
                return None
        if what == "put":
            await storage.upsert_peers([Peer(command[1], command[2], PeerType.USER, ("x",))])
            return True
        if what == "session":
            return (await storage.get_session()).api_id
        if what == "set_session":
            await storage.update_session(api_id=command[1])
            return True
        if what == "state":
            states = await storage.get_update_states([command[1]])
            return states[0].pts if states else None
        if what == "set_state":
            await storage.set_update_states([UpdateState(command[1], pts=command[2])])
            return True
        if what == "cached":
            return storage.cached_peer(command[1]) is not None
        if what == "tracker":
            tracker = storage._tracker
            return tracker.client_id if tracker is not None and tracker.live else None
        raise ValueError(what)

    print(json.dumps("ready"), flush=True)
    while line := await reader.readline():
        try:
            answer: Any = await run(json.loads(line))
        except StorageError as exc:
            answer = {"error": type(exc).__name__, "message": str(exc)}
        print(json.dumps(answer), flush=True)
    await storage.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
