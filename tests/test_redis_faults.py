"""Redis faults: the server stopped, killed, paused, asleep, or out of disk, under a storage.

Each test runs a server of its own (never the shared one). Every call either returns or
raises one of our errors (``BackendError``, ``DiskFullError``), never a driver exception
and never later than the client's timeout allows (one retry: two ``socket_timeout``);
once the server is back the same storage object works again without being reopened,
and every write acknowledged before the fault is there (the server's append-only file
is on: ``appendfsync always`` unless said otherwise).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pyrogram_storage import BackendError, DiskFullError, Peer, PeerType
from pyrogram_storage.redisdb.storage import RedisStorage

from .outages import (
    check_a_failed_flush_is_retried,
    check_nothing_acknowledged_lost,
    eventually_healthy,
    write_through_outages,
)
from .servers.redisserver import RedisServer
from .test_hostile import _small_disk
from .test_redis import check_indexes

pytestmark = pytest.mark.redis

FULL = os.environ.get("PYROGRAM_STORAGE_FULL") == "1"
OUTAGES = int(os.environ.get("PYROGRAM_STORAGE_OUTAGES", 5 if FULL else 1))
TIMEOUT = 1.0
OPTIONS = {"socket_timeout": TIMEOUT, "socket_connect_timeout": TIMEOUT}
LATEST = 2 * TIMEOUT + 1.5
"""The longest a call may take against a silent server: two timeouts (one retry), plus
room for a loaded machine; the faults below last longer than that."""


@pytest.fixture(scope="module")
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(
        tmp_path_factory.mktemp("faults-redis"),
        appendonly=True,
        extra_args=["--enable-debug-command", "yes"],
    ) as server:
        yield server


@pytest.fixture
def server(own_server: RedisServer) -> RedisServer:
    own_server.start()  # a failed test may have left it stopped
    return own_server


def storage_on(server: RedisServer, driver: str, name: str, **options: Any) -> RedisStorage:
    return RedisStorage.from_url(
        server.url, name=name, driver=driver, client_options=OPTIONS, username_ttl=None, **options
    )


@pytest.mark.slow
@pytest.mark.parametrize("outage", ["stop", "kill"])
@pytest.mark.parametrize("driver", ["redis", "valkey"])
async def test_writers_survive_outages_and_lose_no_acknowledged_write(
    server: RedisServer, driver: str, outage: str
) -> None:
    name = f"faults_{uuid.uuid4().hex[:12]}"
    storage = storage_on(server, driver, name)
    await storage.open()
    ack = await write_through_outages(
        storage,
        outages=OUTAGES,
        take_down=server.stop if outage == "stop" else server.kill,
        bring_back=server.start,
        also_while_down=lambda: storage.get_session(),
        named="Redis",
        latest=LATEST,
        healthy_tries=100,
    )
    await storage.close()
    await check_nothing_acknowledged_lost(storage_on(server, driver, name), ack)
    print(
        f"\n{driver}/{outage}: {OUTAGES} outages, {len(ack.peers)} acknowledged peer "
        f"writes kept, failures while down: {dict(ack.failures)}"
    )


async def test_writes_a_flush_could_not_store_are_stored_once_the_server_is_back(
    server: RedisServer,
) -> None:
    name = f"retry_{uuid.uuid4().hex[:12]}"
    await check_a_failed_flush_is_retried(
        lambda **options: storage_on(server, "redis", name, **options),
        take_down=server.stop,
        bring_back=server.start,
    )


@pytest.mark.parametrize(
    "pause",
    [("CLIENT", "PAUSE", "8000", "ALL"), ("DEBUG", "SLEEP", "8")],
    ids=["client-pause", "debug-sleep"],
)
async def test_a_silent_server_is_a_backend_error_within_the_timeout(
    server: RedisServer, pause: tuple[str, ...]
) -> None:
    import redis.asyncio

    storage = storage_on(server, "redis", f"pause_{uuid.uuid4().hex[:12]}", commit_interval=0)
    await storage.open()
    await storage.upsert_peers([Peer(1, 11, PeerType.USER, ("one",))])
    admin = redis.asyncio.Redis.from_url(server.url, socket_timeout=None)
    await admin.ping()
    silence = asyncio.create_task(admin.execute_command(*pause))
    await asyncio.sleep(0.3)  # the server is silent now
    try:

        async def timed(call: Any) -> tuple[BaseException | None, float]:
            started = time.monotonic()
            try:
                await call
            except BaseException as exc:
                return exc, time.monotonic() - started
            return None, time.monotonic() - started

        # Writes are stored one after another: a second one would wait for the first.
        # A peer held in memory would be answered (a silent server takes no writes from
        # anyone either): look up one that is not.
        outcomes = await asyncio.gather(
            timed(storage.peer_by_id(99)),
            timed(storage.update_session(dc_id=3)),
            timed(storage.health()),
        )
        outcomes.append(await timed(storage.upsert_peers([Peer(2, 22, PeerType.USER)])))
        for error, elapsed in outcomes:
            assert isinstance(error, BackendError), repr(error)
            assert "Timeout" in type(error.__cause__).__name__, repr(error.__cause__)
            assert elapsed < LATEST, elapsed
    finally:
        await silence
        await admin.aclose()
    assert await eventually_healthy(storage, 100)
    await storage.upsert_peers([Peer(3, 33, PeerType.USER)])
    assert (await storage.peer_by_id(1)).access_hash == 11
    await storage.delete()


@pytest.mark.parametrize("fsync", ["everysec", "always"])
async def test_a_full_disk_in_the_servers_data_dir_is_a_clear_error(
    tmp_path: Path, fsync: str
) -> None:
    """``everysec`` (the usual setting): the server refuses writes (MISCONF), DiskFullError,
    and takes them again once there is room. ``always``: the server exits, BackendError."""
    import redis.asyncio

    with (
        _small_disk(tmp_path / "disk", "size=2m,mode=0700") as disk,
        RedisServer(
            disk.root / "redis", appendonly=True, extra_args=["--appendfsync", fsync]
        ) as server,
    ):
        storage = storage_on(server, "redis", "full", commit_interval=0)
        await storage.open()
        await storage.update_session(dc_id=4)
        await storage.upsert_peers([Peer(1, 11, PeerType.USER, ("kept",), "1555")])
        disk.fill()
        outcomes: Counter[str] = Counter()
        for step in range(2, 40):
            peers = [
                Peer(step * 100 + i, i, PeerType.USER, (f"u{step}_{i}" * 20,)) for i in range(50)
            ]
            started = time.monotonic()
            try:
                await storage.upsert_peers(peers)
            except DiskFullError as exc:
                assert "disk" in str(exc) and "free space" in str(exc), str(exc)
                outcomes["DiskFullError"] += 1
            except BackendError:
                outcomes["BackendError"] += 1
            else:
                outcomes["stored"] += 1
            assert time.monotonic() - started < LATEST
            if outcomes["DiskFullError"] + outcomes["BackendError"] >= 3:
                break
        print(f"\nappendfsync {fsync}, full disk: {dict(outcomes)}")
        disk.empty()
        if fsync == "always":
            assert outcomes["BackendError"] >= 3 and not server.running
            return
        assert outcomes["DiskFullError"] >= 3 and outcomes["BackendError"] == 0
        for _ in range(100):  # the server retries its AOF write every second
            try:
                await storage.update_session(dc_id=5)
                break
            except DiskFullError:
                await asyncio.sleep(0.1)
        assert (await storage.get_session()).dc_id == 5
        assert (await storage.peer_by_username("kept")).phone_number == "1555"
        raw = redis.asyncio.Redis.from_url(server.url)
        await check_indexes(raw, storage.keys)  # no batch was stored in part
        await raw.aclose()
        await storage.close()


async def test_a_server_out_of_memory_refuses_writes_and_says_so(tmp_path: Path) -> None:
    """``maxmemory`` reached under ``noeviction``: an error naming it, nothing half stored."""
    import redis.asyncio

    with RedisServer(
        tmp_path / "small", extra_args=["--maxmemory", "3mb", "--maxmemory-policy", "noeviction"]
    ) as server:
        storage = storage_on(server, "redis", "oom", commit_interval=0)
        await storage.open()
        await storage.update_session(dc_id=4)
        refused = None
        for step in range(1, 400):
            peers = [
                Peer(step * 1000 + i, i, PeerType.USER, (f"n{step}_{i}" * 8,)) for i in range(50)
            ]
            try:
                await storage.upsert_peers(peers)
            except BackendError as exc:
                refused = exc
                break
        assert refused is not None, "the server never ran out of memory"
        assert "out of memory" in str(refused) and "maxmemory" in str(refused), str(refused)
        assert (await storage.get_session()).dc_id == 4  # reads still work
        raw = redis.asyncio.Redis.from_url(server.url)
        await check_indexes(raw, storage.keys)  # the refused batch left nothing behind
        await raw.config_set("maxmemory", "0")
        await raw.aclose()
        await storage.flush()  # the refused batch, stored now
        assert (await storage.peer_by_id(step * 1000 + 49)).access_hash == 49
        await storage.close()
