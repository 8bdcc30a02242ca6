"""Create a session file, cache a few peers, resolve them and export the session string.

Run it with ``python examples/quickstart.py``; it works in a temporary folder and
prints no secret (the auth key here is a made-up one).
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile

from pyrogram_storage import FileStorage, Peer, PeerType, UpdateState


async def main() -> None:
    with tempfile.TemporaryDirectory() as workdir:
        async with FileStorage("quickstart", workdir=workdir) as storage:
            await storage.update_session(
                dc_id=2,
                api_id=12345,
                test_mode=False,
                auth_key=hashlib.sha256(b"demo").digest() * 8,
                user_id=777000,
                is_bot=False,
            )
            await storage.upsert_peers(
                [
                    Peer(777000, 1, PeerType.USER, ("telegram",), "42777"),
                    Peer(-1001005640892, 2, PeerType.CHANNEL, ("durov",)),
                ]
            )
            await storage.set_update_states([UpdateState(0, pts=1, qts=0, date=0, seq=1)])
            print(storage)
            print(await storage.get_session())
            print("by username:", await storage.peer_by_username("@Durov"))
            print("by phone:   ", await storage.peer_by_phone("+42 777"))
            counts = await storage.count_peers_by_type()
            print("peer counts:", {str(kind): n for kind, n in counts.items()})
            text = await storage.export_session_string()
            print(f"session string: {len(text)} characters (not printed: it is a secret)")


if __name__ == "__main__":
    asyncio.run(main())
