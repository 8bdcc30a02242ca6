"""Lifecycle: calls after close(), close() racing many tasks, on every backend.

The defined behaviour (core): once ``close()`` has been called, every read and write
raises :class:`StorageClosedError`; a call that started before ``close()`` either
completes (and its write is kept) or raises :class:`StorageClosedError`. ``close()``
is idempotent and leaves no thread running. The client glue drops late peer and
update-state writes with a DEBUG log instead (tested at the end).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from typing import Any

import pytest

from pyrogram_storage import (
    MemoryStorage,
    Peer,
    PeerNotFound,
    PeerType,
    StorageClosedError,
    UpdateState,
)
from pyrogram_storage._worker import MAX_THREADS, pool_threads

from .conftest import StorageMaker

WORKERS = 40
SEED_PEERS = [Peer(i, i * 11, PeerType.USER, (f"seed{i}",), f"1444{i:04d}") for i in range(1, 51)]


def _threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.is_alive()}


async def _wait_for_threads_to_end(
    before: set[threading.Thread], backend: str
) -> set[threading.Thread]:
    """Return the threads started since ``before`` that are still alive after a grace period."""
    # Idle workers of shared pools are not a storage's to end: asyncio's default executor,
    # our own SQLite workers (a few per process, shared by every storage), and motor's,
    # which runs the synchronous PyMongo for every motor client in the process.
    pools: tuple[str, ...] = ("asyncio_", "pyrogram-storage-")
    if backend == "mongo-motor":
        pools += ("ThreadPoolExecutor-",)
    deadline = time.monotonic() + 10
    while True:
        extra = {t for t in _threads() - before if not t.name.startswith(pools)}
        if not extra or time.monotonic() > deadline:
            return extra
        await asyncio.sleep(0.02)


class Recorder:
    """Collect what the event loop reports as unhandled."""

    def __init__(self) -> None:
        self.contexts: list[dict[str, Any]] = []

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        self.contexts.append(context)


@pytest.mark.parametrize("close_after", [0, 5, 60])
async def test_close_racing_many_tasks(
    make_storage: StorageMaker, backend: str, close_after: int
) -> None:
    loop = asyncio.get_running_loop()
    recorder = Recorder()
    previous_handler = loop.get_exception_handler()
    loop.set_exception_handler(recorder)
    before = _threads()
    storage = make_storage(username_ttl=None)
    await storage.open()
    await storage.upsert_peers(SEED_PEERS)
    rng = random.Random(close_after)
    completed: dict[int, Peer] = {}  # peers whose upsert returned
    session_values: set[int] = set()  # api_ids some task tried to store
    states: dict[int, int] = {}  # update states whose write returned
    progress = asyncio.Event()

    async def worker(n: int) -> None:
        for step in range(10_000):
            seed = SEED_PEERS[(n + step) % len(SEED_PEERS)]
            assert (await storage.peer_by_id(seed.id)).access_hash == seed.access_hash
            assert (await storage.peer_by_username(f"seed{seed.id}")).id == seed.id
            peer = Peer(100_000 + n * 10_000 + step, n, PeerType.USER, (f"w{n}_{step}",))
            await storage.upsert_peers([peer])
            completed[peer.id] = peer
            api_id = n * 10_000 + step + 1
            session_values.add(api_id)
            await storage.update_session(api_id=api_id)
            await storage.set_update_states([UpdateState(n + 1, pts=step)])
            states[n + 1] = step
            with contextlib.suppress(PeerNotFound):
                await storage.peer_by_phone("0")
            if len(completed) >= close_after:
                progress.set()
            await asyncio.sleep(0)

    tasks = [asyncio.create_task(worker(n)) for n in range(WORKERS)]
    if close_after:
        await progress.wait()
    await asyncio.sleep(rng.uniform(0, 0.002))
    await storage.close()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    await storage.close()  # idempotent
    try:
        unexpected = [r for r in results if not isinstance(r, StorageClosedError)]
        assert unexpected == [], unexpected[:3]
        with pytest.raises(StorageClosedError):
            await storage.peer_by_id(1)
        with pytest.raises(StorageClosedError):
            await storage.update_session(api_id=1)
        with pytest.raises(StorageClosedError):
            await storage.upsert_peers([Peer(1, 1, PeerType.USER)])
        # Give finished tasks' callbacks a turn, then nothing may have reached the handler.
        await asyncio.sleep(0.05)
        assert recorder.contexts == []
        assert await _wait_for_threads_to_end(before, backend) == set()
        assert pool_threads() <= MAX_THREADS
    finally:
        loop.set_exception_handler(previous_handler)

    # Everything a completed call wrote is there after reopening.
    again = make_storage(username_ttl=None) if type(storage).persistent else storage
    async with again:
        for peer in completed.values():
            stored = await again.peer_by_id(peer.id)
            assert (stored.access_hash, stored.usernames) == (peer.access_hash, peer.usernames)
        stored_states = {s.id: s.pts for s in await again.get_update_states()}
        for state_id, pts in states.items():
            assert stored_states[state_id] is not None and stored_states[state_id] >= pts
        api_id = (await again.get_session()).api_id
        assert api_id is None or api_id in session_values
    print(f"\n{backend}: {len(completed)} upserts completed before close")


async def test_every_call_on_a_closed_storage_raises_storage_closed_error(
    make_storage: StorageMaker,
) -> None:
    storage = make_storage()
    for phase in ("never opened", "closed"):
        calls = {
            "get_session": storage.get_session(),
            "update_session": storage.update_session(api_id=1),
            "upsert_peers": storage.upsert_peers([Peer(1, 1, PeerType.USER)]),
            "set_usernames": storage.set_usernames([(1, ["a"])]),
            "peer_by_id": storage.peer_by_id(1),
            "peer_by_username": storage.peer_by_username("a"),
            "peer_by_phone": storage.peer_by_phone("1"),
            "count_peers": storage.count_peers(),
            "get_update_states": storage.get_update_states(),
            "set_update_states": storage.set_update_states([UpdateState(1, 1)]),
            "delete_update_states": storage.delete_update_states([1]),
            "save": storage.save(),
            "health": storage.health(),
            "export_session_string": storage.export_session_string(),
        }
        for name, call in calls.items():
            with pytest.raises(StorageClosedError):
                await call
                pytest.fail(f"{name} did not raise ({phase})")
        with pytest.raises(StorageClosedError):
            async for _ in storage.iter_peers():
                pass
        if phase == "never opened":
            await storage.open()
            await storage.close()
            await storage.close()


async def test_reopen_after_close_many_times(make_storage: StorageMaker) -> None:
    storage = make_storage(username_ttl=None)
    for round_ in range(5):
        await storage.open()
        await storage.open()  # opening an open storage does nothing
        await storage.upsert_peers([Peer(round_ + 1, round_, PeerType.USER, (f"r{round_}",))])
        await storage.close()
        await storage.close()
    async with storage:
        assert await storage.count_peers() == 5
        assert (await storage.peer_by_username("r4")).id == 5


# -- the client glue: late writes are dropped with a DEBUG log ---------------------------------


async def test_client_glue_drops_late_writes_with_a_debug_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from pyrogram_storage.clients import ADAPTERS

    storage = MemoryStorage("glue", username_ttl=None)
    adapter = ADAPTERS["kurigram"](storage)
    await adapter.open()
    await adapter.update_peers([(1, 11, "user", "15550001")])
    await adapter.close()
    with caplog.at_level(logging.DEBUG, logger="pyrogram_storage.clients"):
        await adapter.update_peers([(2, 22, "user", None)])
        await adapter.update_usernames([(1, ["late"])])
    dropped = [r for r in caplog.records if "dropped a late" in r.getMessage()]
    assert len(dropped) == 2 and all(r.levelno == logging.DEBUG for r in dropped)
    with pytest.raises(StorageClosedError):
        await adapter.dc_id()
    with pytest.raises(StorageClosedError):
        await adapter.user_id(5)
    await storage.open()
    with pytest.raises(PeerNotFound):
        await storage.peer_by_id(2)
    assert (await storage.peer_by_id(1)).usernames == ()
    await storage.close()


async def test_writes_issued_while_close_runs_are_kept_or_refused(
    make_storage: StorageMaker, backend: str
) -> None:
    storage = make_storage()
    await storage.open()
    written: list[int] = []

    async def write(peer_id: int) -> None:
        await storage.upsert_peers([Peer(peer_id, peer_id, PeerType.USER)])
        written.append(peer_id)

    early = [asyncio.create_task(write(i)) for i in range(1, 20)]
    await asyncio.sleep(0)  # the early writes are under way
    closing = asyncio.create_task(storage.close())
    await asyncio.sleep(0)  # close() has started
    late = [asyncio.create_task(write(i)) for i in range(20, 40)]
    await closing
    results = await asyncio.gather(*early, *late, return_exceptions=True)
    assert [r for r in results if not isinstance(r, StorageClosedError) and r is not None] == []
    again = make_storage() if type(storage).persistent else storage
    async with again:
        for peer_id in written:
            assert (await again.peer_by_id(peer_id)).access_hash == peer_id
