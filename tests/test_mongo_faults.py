"""MongoDB faults: the server stops or crashes under a running writer, then comes back.

tests/test_mongo.py checks single calls against a stopped server; here writers keep
running through several outages (SIGTERM and SIGKILL), and the bookkeeping is per
acknowledged write: every call either returned (acknowledged: it must survive) or
raised one of our errors (BackendError; never a driver exception), and after the
server is back the same storage object works again without being reopened.
The server runs with ``--sync-on-commit``, so it is durable itself.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pyrogram_storage import BackendError, Peer, PeerType, Storage, UpdateState

from .mongoserver import MongoServer, mongo_uri_from_env

pytestmark = [
    pytest.mark.mongo,
    pytest.mark.skipif(
        mongo_uri_from_env() is not None,
        reason="stops and restarts a server of its own; not done to a user's mongod",
    ),
]

FULL = os.environ.get("PYROGRAM_STORAGE_FULL") == "1"
OUTAGES = int(os.environ.get("PYROGRAM_STORAGE_OUTAGES", 5 if FULL else 1))
TIMEOUTS = {"serverSelectionTimeoutMS": 500, "connectTimeoutMS": 1000, "socketTimeoutMS": 5000}


@pytest.fixture(scope="module")
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MongoServer]:
    """A server of this module's own (never the shared one), durable on every commit."""
    with MongoServer(tmp_path_factory.mktemp("faults-mongo"), sync_on_commit=True) as server:
        yield server


@pytest.fixture
def server(own_server: MongoServer) -> MongoServer:
    own_server.restart()  # a failed test may have left it stopped
    return own_server


def _is_our_error(exc: BaseException) -> bool:
    return isinstance(exc, BackendError)


@pytest.mark.slow
@pytest.mark.parametrize("outage", ["stop", "kill"])
@pytest.mark.parametrize(
    ("driver", "interval"),
    [("pymongo", None), ("motor", None), ("async_pymongo", None), ("pymongo", 0)],
)
async def test_writers_survive_outages_and_lose_no_acknowledged_write(
    server: MongoServer, driver: str, interval: float | None, outage: str, tmp_path: Path
) -> None:
    """With the default interval a returned write is kept pending until the server is
    back; with 0 it was stored before it returned. Either way none is lost."""
    from pyrogram_storage.mongo import MongoStorage

    name = f"faults_{uuid.uuid4().hex[:12]}"
    options: dict[str, Any] = {} if interval is None else {"commit_interval": interval}
    storage = MongoStorage.from_url(
        server.uri, name=name, driver=driver, client_options=TIMEOUTS, username_ttl=None,
        **options,
    )
    await storage.open()
    acked_peers: dict[int, int] = {}  # peer id -> acknowledged access hash
    attempted_api_ids: list[int] = []
    acked_api_id: int | None = None
    acked_states: dict[int, int] = {}
    failures: Counter[str] = Counter()
    stop_writing = asyncio.Event()

    async def writer(n: int) -> None:
        nonlocal acked_api_id
        step = 0
        while not stop_writing.is_set():
            step += 1
            peer_id = n * 1_000_000 + step
            try:
                await storage.upsert_peers([Peer(peer_id, step, PeerType.USER, (f"p{peer_id}",))])
                acked_peers[peer_id] = step
                api_id = n * 1_000_000 + step
                attempted_api_ids.append(api_id)
                await storage.update_session(api_id=api_id)
                acked_api_id = api_id
                await storage.set_update_states([UpdateState(n, pts=step)])
                acked_states[n] = step
                await storage.peer_by_id(peer_id)
            except Exception as exc:
                if not _is_our_error(exc):
                    raise
                failures[type(exc.__cause__).__name__] += 1
                await asyncio.sleep(0.05)

    writers = [asyncio.create_task(writer(n)) for n in range(1, 4)]
    try:
        for _ in range(OUTAGES):
            await asyncio.sleep(0.3)  # let the writers get going
            await asyncio.to_thread(server.stop if outage == "stop" else server.kill)
            # While it is down: every kind of call fails with our error, and fast enough.
            for call in (
                storage.health(),
                storage.peer_by_id(1),
                storage.peer_by_username("p1"),
                storage.peer_by_phone("1"),
                storage.get_update_states(),
                storage.count_peers(),
                _write_and_flush(storage),
                storage.update_session(user_id=5),
            ):
                with pytest.raises(BackendError) as error:
                    await call
                assert "MongoStorage" in str(error.value)
            await asyncio.to_thread(server.restart)
            # Back: the same object works without reopening (the driver reconnects).
            assert await _eventually_healthy(storage)
        await asyncio.sleep(0.3)
    finally:
        stop_writing.set()
        results = await asyncio.gather(*writers, return_exceptions=True)
    assert [r for r in results if r is not None] == []
    assert failures, "no write ever failed: the server was not really down"
    await storage.close()

    again = MongoStorage.from_url(
        server.uri, name=name, driver=driver, client_options=TIMEOUTS, username_ttl=None
    )
    async with again:
        stored = {}
        async for batch in again.iter_peers(batch_size=5000):
            stored.update((peer.id, peer.access_hash) for peer in batch)
        lost = {pid: h for pid, h in acked_peers.items() if stored.get(pid) != h}
        assert lost == {}, f"{len(lost)} acknowledged peers lost"
        api_id = (await again.get_session()).api_id
        # The newest acknowledged value, or one a later call sent before it failed.
        assert acked_api_id is not None
        assert api_id in attempted_api_ids[attempted_api_ids.index(acked_api_id) :]
        states = {s.id: s.pts for s in await again.get_update_states()}
        for state_id, pts in acked_states.items():
            assert states[state_id] is not None and states[state_id] >= pts
    await again.delete()
    print(
        f"\n{driver}/{outage}: {OUTAGES} outages, {len(acked_peers)} acknowledged peer "
        f"writes kept, failures while down: {dict(failures)}"
    )


async def _write_and_flush(storage: Storage) -> None:
    """A peer write, stored: it fails in the call or, once batched, in the flush."""
    await storage.upsert_peers([Peer(1, 1, PeerType.USER)])
    await storage.flush()


async def _eventually_healthy(storage: Storage) -> bool:
    """Return True once a ping goes through; each try fails within the selection timeout."""
    for _ in range(50):
        try:
            return await storage.health()
        except BackendError:
            await asyncio.sleep(0.1)
    return False
