"""Writers kept running through server outages, and the check that nothing they were
told was stored is lost: the harness of tests/test_mongo_faults.py and
tests/test_redis_faults.py (each brings its own server and calls).

Every write either returned (acknowledged: it must survive) or raised one of our errors
(``BackendError``, never a driver exception); once the server is back the same storage
object works again without being reopened.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import pytest

from pyrogram_storage import BackendError, Peer, PeerType, Storage, UpdateState


@dataclass
class Acknowledged:
    """What the writers were told was stored, and how their calls failed meanwhile."""

    peers: dict[int, int] = field(default_factory=dict)  # peer id -> access hash
    attempted_api_ids: list[int] = field(default_factory=list)
    api_id: int | None = None
    states: dict[int, int] = field(default_factory=dict)  # state id -> pts
    failures: Counter[str] = field(default_factory=Counter)


async def eventually_healthy(storage: Storage, tries: int) -> bool:
    """Return True once a ping goes through, trying every 0.1 s."""
    for _ in range(tries):
        try:
            return await storage.health()
        except BackendError:
            await asyncio.sleep(0.1)
    return False


async def write_through_outages(
    storage: Storage,
    *,
    outages: int,
    take_down: Callable[[], object],
    bring_back: Callable[[], object],
    also_while_down: Callable[[], Coroutine[Any, Any, Any]],
    named: str,
    latest: float | None = None,
    healthy_tries: int = 50,
) -> Acknowledged:
    """Run three writers on ``storage`` through ``outages`` outages of its server.

    While the server is down, every kind of call (the lookups, ``health()``, a session
    write and ``also_while_down()``, a call this backend cannot answer without its
    server) must raise a ``BackendError`` naming ``named`` (within ``latest`` seconds,
    if given).
    """
    ack = Acknowledged()
    stop_writing = asyncio.Event()

    async def writer(n: int) -> None:
        step = 0
        while not stop_writing.is_set():
            step += 1
            peer_id = n * 1_000_000 + step
            try:
                await storage.upsert_peers([Peer(peer_id, step, PeerType.USER, (f"p{peer_id}",))])
                ack.peers[peer_id] = step
                api_id = n * 1_000_000 + step
                ack.attempted_api_ids.append(api_id)
                await storage.update_session(api_id=api_id)
                ack.api_id = api_id
                await storage.set_update_states([UpdateState(n, pts=step)])
                ack.states[n] = step
                await storage.peer_by_id(peer_id)
            except BackendError as exc:
                ack.failures[type(exc.__cause__).__name__] += 1
                await asyncio.sleep(0.05)

    writers = [asyncio.create_task(writer(n)) for n in range(1, 4)]
    try:
        for _ in range(outages):
            await asyncio.sleep(0.3)  # let the writers get going
            await asyncio.to_thread(take_down)
            # While it is down: every kind of call fails with our error, and fast enough.
            for call in (
                storage.health(),
                storage.peer_by_id(1),
                storage.peer_by_username("p1"),
                storage.peer_by_phone("1"),
                storage.get_update_states(),
                storage.count_peers(),
                also_while_down(),
                storage.update_session(user_id=5),
            ):
                started = time.monotonic()
                with pytest.raises(BackendError) as error:
                    await call
                assert named in str(error.value)
                if latest is not None:
                    assert time.monotonic() - started < latest
            await asyncio.to_thread(bring_back)
            # Back: the same object works without reopening (the driver reconnects).
            assert await eventually_healthy(storage, healthy_tries)
        await asyncio.sleep(0.3)
    finally:
        stop_writing.set()
        results = await asyncio.gather(*writers, return_exceptions=True)
    assert [r for r in results if r is not None] == []
    assert ack.failures, "no write ever failed: the server was not really down"
    return ack


async def check_nothing_acknowledged_lost(storage: Storage, ack: Acknowledged) -> None:
    """Open the session anew (``storage``, a new object) and find every acknowledged
    write in it; then delete it."""
    async with storage:
        stored = {}
        async for batch in storage.iter_peer_batches(5000):
            stored.update((peer.id, peer.access_hash) for peer in batch)
        lost = {pid: h for pid, h in ack.peers.items() if stored.get(pid) != h}
        assert lost == {}, f"{len(lost)} acknowledged peers lost"
        api_id = (await storage.get_session()).api_id
        # The newest acknowledged value, or one a later call sent before it failed.
        assert ack.api_id is not None
        assert api_id in ack.attempted_api_ids[ack.attempted_api_ids.index(ack.api_id) :]
        states = {s.id: s.pts for s in await storage.get_update_states()}
        for state_id, pts in ack.states.items():
            assert states[state_id] is not None and states[state_id] >= pts
    await storage.delete()


async def check_a_failed_flush_is_retried(
    make: Callable[..., Storage],
    *,
    take_down: Callable[[], object],
    bring_back: Callable[[], object],
    healthy_tries: int = 100,
) -> None:
    """The rule for writes a ``flush()`` could not store: the error says they are not
    stored yet and stay pending; they are stored once the server is back (the next
    flush), in order; a session change that failed meanwhile is not stored later.

    ``make(**options)`` builds a new storage object on one session.
    """
    storage = make(commit_interval=3600)  # nothing stored but by flush()
    await storage.open()
    await storage.update_session(dc_id=2, api_id=1)
    await storage.upsert_peers([Peer(7001, 71, PeerType.USER, ("before",))])
    await asyncio.to_thread(take_down)
    try:
        await storage.upsert_peers([Peer(7002, 72, PeerType.BOT, ("during",))])
        await storage.set_update_states([UpdateState(0, pts=9)])
        with pytest.raises(BackendError) as failed:
            await storage.flush()
        said = str(failed.value)
        assert "not stored yet" in said and "retried" in said, said
        with pytest.raises(BackendError) as failed:
            await storage.update_session(dc_id=4)
        said = str(failed.value)
        assert "session change is not known to be stored" in said and "retried" in said, said
        assert (await storage.peer_by_id(7002)).access_hash == 72  # still pending: seen
    finally:
        await asyncio.to_thread(bring_back)
    assert await eventually_healthy(storage, healthy_tries)
    await storage.flush()  # the same object, the same writes, stored now
    await storage.close()
    async with make() as again:
        assert (await again.peer_by_id(7001)).usernames == ("before",)
        assert (await again.peer_by_id(7002)).access_hash == 72
        assert (await again.peer_by_username("during")).id == 7002
        assert [(s.id, s.pts) for s in await again.get_update_states()] == [(0, 9)]
        assert (await again.get_session()).dc_id == 2  # the failed change was not made later
    await again.delete()
