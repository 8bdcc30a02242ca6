"""Two processes, one RedisStorage session (shared mode): the invalidated cache.

Each process keeps the peers it looked up in memory, and hears from the server
(``CLIENT TRACKING``) what the other changes. The rule checked here: after one
process's write was acknowledged, a lookup the other process starts afterwards
returns the new value, never the one it replaced; when the invalidation connection
drops (``CLIENT KILL``, a server restart) memory is not trusted until tracking is back.

Process A is this test's own storage; process B is tests/shared_peer.py, driven by
lines over a pipe. Every write is acknowledged (``commit_interval=0``) before the
other process is told to look.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pyrogram_storage import BackendError, Peer, PeerType, UpdateState
from pyrogram_storage.redisdb.storage import RedisStorage

from . import shared_peer
from .servers.redisserver import RedisCluster, RedisServer, _encode, _read_reply, command

pytestmark = pytest.mark.redis

PEER = Path(shared_peer.__file__)
ROUNDS = 1000


class Other:
    """Process B: a shared storage of the same session in another process."""

    def __init__(self, url: str, name: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(PEER), url, name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.ask_line() == "ready"

    def ask_line(self) -> Any:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, f"the other process ended (exit code {self.proc.poll()})"
        return json.loads(line)

    def __call__(self, *command: Any) -> Any:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        return self.ask_line()

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


def storage_on(url: str, name: str, timeout: float = 1.0) -> RedisStorage:
    options = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    return RedisStorage.from_url(
        url, name=name, commit_interval=0, username_ttl=None, client_options=options
    )


def user(peer_id: int, access_hash: int) -> Peer:
    return Peer(peer_id, access_hash, PeerType.USER, ("x",))


@pytest.fixture
def name() -> str:
    return f"shared_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def other(redis_server: RedisServer, name: str) -> Iterator[Other]:
    process = Other(redis_server.url, name)
    try:
        yield process
    finally:
        process.close()


async def test_a_peer_written_by_one_process_is_seen_by_the_others_next_lookup(
    redis_server: RedisServer, name: str, other: Other
) -> None:
    async with storage_on(redis_server.url, name) as mine:
        assert mine._tracker is not None and mine._tracker.live
        await mine.upsert_peers([user(1, 10)])
        assert other("get", 1) == 10
        assert other("cached", 1) is True  # B answers from memory from now on...
        await mine.upsert_peers([user(1, 11)])
        assert other("get", 1) == 11  # ...until A changes the peer
        assert other("put", 1, 12) is True
        assert (await mine.peer_by_id(1)).access_hash == 12
        assert mine.cached_peer(1) is not None
        assert other("put", 1, 13) is True
        assert mine.cached_peer(1) is None  # dropped: the server said B changed it
        assert (await mine.peer_by_id(1)).access_hash == 13


async def test_a_thousand_alternating_writes_leave_no_stale_read(
    redis_server: RedisServer, name: str, other: Other
) -> None:
    """Each side writes the peer, session field and update state the other has just
    read (and so holds in memory), then the other looks again."""
    hits = 0
    async with storage_on(redis_server.url, name) as mine:
        await mine.upsert_peers([user(1, 0)])
        await mine.update_session(api_id=1)
        for step in range(1, ROUNDS + 1):
            mine_value, other_value = 2 * step, 2 * step + 1
            await mine.upsert_peers([user(1, mine_value)])
            await mine.update_session(api_id=mine_value)
            await mine.set_update_states([UpdateState(1, pts=mine_value)])
            assert other("get", 1) == mine_value, step
            assert other("session") == mine_value, step
            assert other("state", 1) == mine_value, step
            hits += other("cached", 1)
            assert other("put", 1, other_value) is True
            assert other("set_session", other_value) is True
            assert other("set_state", 1, other_value) is True
            assert (await mine.peer_by_id(1)).access_hash == other_value, step
            assert (await mine.get_session()).api_id == other_value, step
            assert [s.pts for s in await mine.get_update_states([1])] == [other_value], step
            hits += mine.cached_peer(1) is not None
    assert hits > ROUNDS  # memory answered (the test is not only of the server)


def _commands_of(server: RedisServer, client_id: int | None) -> int:
    """How many commands one connection has run (a storage stores its writes on its
    tracking connection, each batch a script, the commands it runs counted too); not
    the other process's, nor its background reads."""
    text = command("127.0.0.1", server.port, "CLIENT", "LIST", "ID", str(client_id))
    text = text.decode() if isinstance(text, bytes) else str(text)
    fields = dict(item.split("=", 1) for item in text.split() if "=" in item)
    return int(fields["tot-cmds"])


async def test_an_unchanged_peer_held_costs_no_write_until_the_other_changes_it(
    redis_server: RedisServer, name: str, other: Other
) -> None:
    """A client writes an update's sender on every update: held as stored, it costs no
    write; once the other process's change is acknowledged, it is written again."""
    async with storage_on(redis_server.url, name) as mine:
        await mine.upsert_peers([user(1, 10)])
        held = (1, 10, "user", ("x",), None)
        engine = mine._peer_engine

        def writes_nothing(peer: tuple[Any, ...]) -> bool:
            return engine.holds(peer, time.time())

        assert writes_nothing(held) and engine.holds_names((1, ["x"]))
        assert not writes_nothing((1, 10, "bot", ("x",), None))
        assert not engine.holds_names((1, ["y"]))
        assert not engine.holds_names((2, ["x"]))  # not held: it may be stored
        tracker = mine._tracker
        assert tracker is not None and tracker.live
        before = _commands_of(redis_server, tracker.client_id)
        await mine._upsert_tuples([held])
        await mine.upsert_peers([user(1, 10)])
        await mine.set_usernames([(1, ["x"])])
        assert _commands_of(redis_server, tracker.client_id) == before
        assert other("put", 1, 11) is True
        assert not writes_nothing(held)  # the server said B changed it
        assert not engine.holds_names((1, ["x"]))
        await mine.upsert_peers([user(1, 10)])  # written again, and stored
        assert _commands_of(redis_server, tracker.client_id) > before
        assert other("get", 1) == 10


async def test_concurrent_writes_of_one_peer_leave_one_whole_value(
    redis_server: RedisServer, name: str, other: Other
) -> None:
    """Two processes writing the same peer at once: one of the two values, never a mix."""
    async with storage_on(redis_server.url, name) as mine:
        for step in range(50):
            theirs = 1000 + step  # B writes (USER, ("x",), no phone)
            ours = Peer(7, 2000 + step, PeerType.BOT, ("ours",), "222")

            def put(access_hash: int = theirs) -> Any:
                return other("put", 7, access_hash)

            task = asyncio.get_running_loop().run_in_executor(None, put)
            await mine.upsert_peers([ours])
            assert await task is True
            found = await mine.peer_by_id(7)
            assert other("get", 7) == found.access_hash
            fields = (found.type, found.usernames, found.phone_number)
            if found.access_hash == ours.access_hash:
                assert fields == (PeerType.BOT, ("ours",), "222")
            else:
                assert found.access_hash == theirs
                assert fields == (PeerType.USER, ("x",), None)


async def test_a_killed_invalidation_connection_leaves_no_stale_read(
    redis_server: RedisServer, name: str, other: Other
) -> None:
    import redis.asyncio

    admin = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        async with storage_on(redis_server.url, name) as mine:
            await mine.upsert_peers([user(1, 1)])
            assert other("get", 1) == 1 and other("cached", 1) is True
            tracker = other("tracker")
            assert await admin.client_kill_filter(_id=tracker) == 1
            await mine.upsert_peers([user(1, 2)])  # while B hears nothing
            assert other("get", 1) == 2
            assert other("cached", 1) is False  # not trusted: memory is not used
            new = await _tracking_again(other, tracker)
            assert new != tracker
            assert other("get", 1) == 2 and other("cached", 1) is True
            await mine.upsert_peers([user(1, 3)])
            assert other("get", 1) == 3
    finally:
        await admin.aclose()


async def test_lookups_memory_cannot_answer_ask_on_the_tracking_connection_or_the_driver(
    redis_server: RedisServer, name: str, other: Other
) -> None:
    """Without memory (peer_cache_size=0) each lookup by id is a round trip: on the
    tracking connection while it is up, on the driver's own when it is not."""
    import redis.asyncio

    admin = redis.asyncio.Redis.from_url(redis_server.url)
    options = {"socket_timeout": 1.0, "socket_connect_timeout": 1.0}
    mine = RedisStorage.from_url(
        redis_server.url, name=name, commit_interval=0, peer_cache_size=0, client_options=options
    )
    try:
        async with mine:
            tracker = mine._tracker
            assert tracker is not None and tracker.live
            assert other("put", 1, 10) is True
            assert (await mine.peer_by_id(1, with_usernames=False)).access_hash == 10
            assert mine.cached_peer(1) is None
            listed = await admin.execute_command("CLIENT", "LIST", "ID", tracker.client_id)
            assert b"cmd=hget" in listed  # the last command of the tracking connection
            assert other("put", 1, 11) is True
            assert (await mine.peer_by_id(1, with_usernames=False)).access_hash == 11
            with pytest.raises(KeyError):
                await mine.peer_by_id(2, with_usernames=False)
            assert await admin.client_kill_filter(_id=tracker.client_id) == 1
            assert other("put", 1, 12) is True
            # The tracking connection is down (or found down by this very call): the
            # driver answers.
            assert (await mine.peer_by_id(1, with_usernames=False)).access_hash == 12
            assert not tracker.live
            assert other("put", 1, 13) is True
            assert (await mine.peer_by_id(1, with_usernames=False)).access_hash == 13
    finally:
        await admin.aclose()


async def test_a_tracking_connection_that_stops_answering_is_dropped_and_comes_back(
    redis_server: RedisServer, name: str
) -> None:
    """One timer watches every reply awaited on the tracking connection: a server that
    does not answer within socket_timeout (CLIENT PAUSE) has the awaited calls fail,
    memory distrusted, and the connection made again."""
    import redis.asyncio

    admin = redis.asyncio.Redis.from_url(redis_server.url)
    mine = storage_on(redis_server.url, name, timeout=0.3)
    try:
        async with mine:
            tracker = mine._tracker
            assert tracker is not None and tracker.live
            old = tracker.client_id
            await mine.upsert_peers([user(1, 1)])
            assert (await tracker.execute(("PING",))) == [b"PONG"]  # answered: no timer left
            await admin.execute_command("CLIENT", "PAUSE", 3000, "ALL")
            waiting = [tracker.execute(("HGET", mine.keys.peers, 1)) for _ in range(3)]
            results = await asyncio.gather(*waiting, return_exceptions=True)
            assert all(isinstance(result, TimeoutError) for result in results), results
            assert not tracker.live
            assert mine.cached_peer(1) is None  # not trusted
            await admin.execute_command("CLIENT", "UNPAUSE")
            for _ in range(300):
                if tracker.live:
                    break
                await asyncio.sleep(0.05)
            assert tracker.live and tracker.client_id != old
            assert await tracker.execute(("HEXISTS", mine.keys.peers, 1)) == [1]
            assert (await mine.peer_by_id(1)).access_hash == 1
    finally:
        await admin.execute_command("CLIENT", "UNPAUSE")
        await admin.aclose()


async def _tracking_again(other: Other, old: int | None) -> int:
    """The id of B's invalidation connection once it is back (it retries with pauses)."""
    for _ in range(300):
        tracker = other("tracker")
        if tracker is not None and tracker != old:
            return int(tracker)
        await asyncio.sleep(0.1)
    raise AssertionError("the invalidation connection did not come back")


@pytest.fixture(scope="module")
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(tmp_path_factory.mktemp("shared-redis"), appendonly=True) as server:
        yield server


async def test_a_server_restart_leaves_no_stale_read(own_server: RedisServer, name: str) -> None:
    own_server.start()
    other = Other(own_server.url, name)
    try:
        async with storage_on(own_server.url, name) as mine:
            await mine.upsert_peers([user(1, 1)])
            assert other("get", 1) == 1 and other("cached", 1) is True
            tracker = other("tracker")
            own_server.stop()
            down = other("get", 1)
            assert down["error"] == "BackendError", down  # not the value held in memory
            with pytest.raises(BackendError):
                await mine.peer_by_id(1)
            own_server.start()
            await _until_stored(mine, user(1, 2))
            assert other("get", 1) == 2
            await _tracking_again(other, tracker)
            assert other("get", 1) == 2 and other("cached", 1) is True
            await mine.upsert_peers([user(1, 3)])
            assert other("get", 1) == 3
    finally:
        other.close()


async def _until_stored(storage: RedisStorage, peer: Peer) -> None:
    """Write once the server answers again (its first calls may still fail)."""
    for _ in range(100):
        try:
            await storage.upsert_peers([peer])
            return
        except BackendError:
            await asyncio.sleep(0.1)
    raise AssertionError("the server did not come back")


# -- a Redis Cluster: tracking on the node that serves the session's slot ---------------------


@pytest.fixture
def other_on_cluster(redis_cluster: RedisCluster, name: str) -> Iterator[Other]:
    process = Other(redis_cluster.url, name)
    try:
        yield process
    finally:
        process.close()


async def _until_live(tracker: Any) -> None:
    """Wait for a cluster storage's tracking: open() sets it up in the background when it
    finds the cluster in flux (a slot moved by an earlier test), and a loaded machine
    may take a while."""
    assert tracker is not None
    for _ in range(600):
        if tracker.live:
            return
        await asyncio.sleep(0.05)
    assert tracker.live


def _slot(node: RedisServer, storage: RedisStorage) -> int:
    return int(str(command(node.host, node.port, "CLUSTER", "KEYSLOT", storage.keys.schema)))


def _owner(cluster: RedisCluster, storage: RedisStorage, asked: RedisServer | None = None) -> int:
    """The port of the primary that ``asked`` (a live node) says serves the storage's slot."""
    asked = asked or cluster.nodes[0]
    slot = _slot(asked, storage)
    for line in str(command(asked.host, asked.port, "CLUSTER", "NODES")).splitlines():
        fields = line.split()
        flags = fields[2].split(",")
        if "master" not in flags or "fail" in flags:
            continue
        for part in fields[8:]:
            first, _, last = part.partition("-")
            if not first.startswith("[") and int(first) <= slot <= int(last or first):
                return int(fields[1].split("@")[0].rsplit(":", 1)[1])
    raise AssertionError(f"no primary serves slot {slot}")


def _node(cluster: RedisCluster, port: int) -> RedisServer:
    return next(node for node in cluster.nodes if node.port == port)


def _tracked_on(node: RedisServer, client_id: int) -> bool:
    """Whether ``node`` holds the connection ``client_id``."""
    return bool(command(node.host, node.port, "CLIENT", "LIST", "ID", client_id))


def _eventually(check: Any, what: str) -> None:
    for _ in range(600):
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"not within 30 s: {what}")


async def test_a_cluster_storage_tracks_on_the_node_serving_its_slot(
    redis_cluster: RedisCluster, name: str, other_on_cluster: Other
) -> None:
    other = other_on_cluster
    async with storage_on(redis_cluster.url, name) as mine:
        tracker = mine._tracker
        await _until_live(tracker)
        assert tracker is not None
        owner = _node(redis_cluster, _owner(redis_cluster, mine))
        assert tracker.address.node == (owner.host, owner.port)
        assert tracker.client_id is not None and _tracked_on(owner, tracker.client_id)
        await mine.upsert_peers([user(1, 10)])
        assert other("get", 1) == 10
        assert other("cached", 1) is True  # B answers from memory from now on...
        await mine.upsert_peers([user(1, 11)])
        assert other("get", 1) == 11  # ...until A changes the peer
        assert other("put", 1, 12) is True
        assert (await mine.peer_by_id(1)).access_hash == 12
        assert mine.cached_peer(1) is not None
        assert other("put", 1, 13) is True
        assert mine.cached_peer(1) is None  # dropped: the slot's node said B changed it
        assert (await mine.peer_by_id(1)).access_hash == 13


@pytest.mark.parametrize("driver", ["redis", "valkey"])
async def test_both_drivers_track_a_cluster_session_on_its_node(
    redis_cluster: RedisCluster, name: str, driver: str
) -> None:
    def shared() -> RedisStorage:
        return RedisStorage.from_url(
            redis_cluster.url, name=name, driver=driver, commit_interval=0, username_ttl=None
        )

    async with shared() as one, shared() as two:
        owner = _node(redis_cluster, _owner(redis_cluster, one))
        for storage in (one, two):
            await _until_live(storage._tracker)
            assert storage._tracker is not None
            assert storage._tracker.address.node == (owner.host, owner.port)
        await one.upsert_peers([user(1, 1)])
        assert (await two.peer_by_id(1)).access_hash == 1
        assert two.cached_peer(1) is not None
        for step in range(2, 102):
            writer, reader = (one, two) if step % 2 else (two, one)
            await writer.upsert_peers([user(1, step)])
            assert (await reader.peer_by_id(1)).access_hash == step, step
            await writer.update_session(api_id=step)
            assert (await reader.get_session()).api_id == step, step


async def test_a_thousand_alternating_writes_on_a_cluster_leave_no_stale_read(
    redis_cluster: RedisCluster, name: str, other_on_cluster: Other
) -> None:
    other = other_on_cluster
    hits = 0
    async with storage_on(redis_cluster.url, name) as mine:
        await mine.upsert_peers([user(1, 0)])
        await mine.update_session(api_id=1)
        for step in range(1, ROUNDS + 1):
            mine_value, other_value = 2 * step, 2 * step + 1
            await mine.upsert_peers([user(1, mine_value)])
            await mine.update_session(api_id=mine_value)
            await mine.set_update_states([UpdateState(1, pts=mine_value)])
            assert other("get", 1) == mine_value, step
            assert other("session") == mine_value, step
            assert other("state", 1) == mine_value, step
            hits += other("cached", 1)
            assert other("put", 1, other_value) is True
            assert other("set_session", other_value) is True
            assert other("set_state", 1, other_value) is True
            assert (await mine.peer_by_id(1)).access_hash == other_value, step
            assert (await mine.get_session()).api_id == other_value, step
            assert [s.pts for s in await mine.get_update_states([1])] == [other_value], step
            hits += mine.cached_peer(1) is not None
    assert hits > ROUNDS  # memory answered (the test is not only of the server)


async def test_a_killed_invalidation_connection_on_a_cluster_leaves_no_stale_read(
    redis_cluster: RedisCluster, name: str, other_on_cluster: Other
) -> None:
    other = other_on_cluster
    async with storage_on(redis_cluster.url, name) as mine:
        owner = _node(redis_cluster, _owner(redis_cluster, mine))
        await mine.upsert_peers([user(1, 1)])
        assert other("get", 1) == 1 and other("cached", 1) is True
        tracker = other("tracker")
        assert command(owner.host, owner.port, "CLIENT", "KILL", "ID", tracker) == 1
        await mine.upsert_peers([user(1, 2)])  # while B hears nothing
        assert other("get", 1) == 2
        assert other("cached", 1) is False  # not trusted: memory is not used
        new = await _tracking_again(other, tracker)
        assert new != tracker and _tracked_on(owner, new)
        assert other("get", 1) == 2 and other("cached", 1) is True
        await mine.upsert_peers([user(1, 3)])
        assert other("get", 1) == 3


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[RedisCluster]:
    """A cluster of the test's own (nodes are stopped, killed and moved)."""
    with RedisCluster(tmp_path / "cluster", appendonly=True) as cluster:
        yield cluster


def _move_slot(cluster: RedisCluster, slot: int, source: RedisServer, target: RedisServer) -> None:
    """Reshard one slot from ``source`` to ``target``, keys and all (what
    ``redis-cli --cluster reshard`` does)."""
    _move_keys(slot, source, target)
    _hand_over(cluster, slot, target)


def _move_keys(slot: int, source: RedisServer, target: RedisServer) -> None:
    """The first half of a resharding: the slot's keys migrated, the slot not yet handed
    over (the source answers ASK for it)."""
    source_id, target_id = (
        str(command(node.host, node.port, "CLUSTER", "MYID")) for node in (source, target)
    )
    command(target.host, target.port, "CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
    command(source.host, source.port, "CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
    while keys := command(source.host, source.port, "CLUSTER", "GETKEYSINSLOT", slot, 100):
        assert isinstance(keys, list)
        command(
            source.host, source.port, "MIGRATE", target.host, target.port, "", 0, 5000,
            "KEYS", *keys,
        )  # fmt: skip


def _hand_over(cluster: RedisCluster, slot: int, target: RedisServer) -> None:
    target_id = str(command(target.host, target.port, "CLUSTER", "MYID"))
    for node in cluster.nodes:
        command(node.host, node.port, "CLUSTER", "SETSLOT", slot, "NODE", target_id)


async def test_a_slot_half_moved_leaves_no_stale_read(own_cluster: RedisCluster, name: str) -> None:
    """Keys migrated, slot not yet handed over: a driver follows ASK to the new node
    unseen (its map still names the old one), while tracking listens on the old node,
    which hears nothing of the writes made once the slot is handed over. Memory must
    keep nothing from such a read: reads that fill memory go on the tracking
    connection, whose ASK drops memory until the slot is tracked on its new node.
    (Writes fail meanwhile: a script's keys are split between the nodes.)"""
    other = Other(own_cluster.url, name)
    try:
        async with storage_on(own_cluster.url, name) as mine:
            source = _node(own_cluster, _owner(own_cluster, mine))
            target = next(node for node in own_cluster.nodes if node is not source)
            await mine.update_session(api_id=1)
            await mine.upsert_peers([user(1, 1)])
            await _tracking_again(other, None)  # B tracks (maybe set up after its open)
            assert other("session") == 1 and other("get", 1) == 1
            assert other("cached", 1) is True
            tracker = other("tracker")
            slot = _slot(source, mine)
            _move_keys(slot, source, target)
            assert other("session") == 1  # read where the keys are now (ASK)
            _hand_over(own_cluster, slot, target)
            await mine.update_session(api_id=2)
            await mine.upsert_peers([user(1, 2)])
            assert other("session") == 2  # not the 1 read through ASK
            assert other("get", 1) == 2
            new = await _tracking_again(other, tracker)
            assert _tracked_on(target, new)
            assert other("get", 1) == 2 and other("cached", 1) is True
            await mine.update_session(api_id=3)
            await mine.upsert_peers([user(1, 3)])
            assert other("session") == 3 and other("get", 1) == 3
    finally:
        other.close()


async def test_a_resharded_slot_moves_tracking_to_its_new_node_with_no_stale_read(
    own_cluster: RedisCluster, name: str
) -> None:
    other = Other(own_cluster.url, name)
    try:
        async with storage_on(own_cluster.url, name) as mine:
            source = _node(own_cluster, _owner(own_cluster, mine))
            target = next(node for node in own_cluster.nodes if node is not source)
            await mine.upsert_peers([user(1, 1)])
            await _tracking_again(other, None)  # B tracks (maybe set up after its open)
            assert other("get", 1) == 1 and other("cached", 1) is True
            tracker = other("tracker")
            assert _tracked_on(source, tracker)
            _move_slot(own_cluster, _slot(source, mine), source, target)
            for node in own_cluster.nodes:
                assert _owner(own_cluster, mine, node) == target.port
            await mine.upsert_peers([user(1, 2)])  # MOVED on A's tracker: sent again
            assert other("get", 1) == 2  # B's memory is not trusted: no stale 1
            new = await _tracking_again(other, tracker)
            assert _tracked_on(target, new)
            assert other("get", 1) == 2 and other("cached", 1) is True
            await mine.upsert_peers([user(1, 3)])
            assert other("get", 1) == 3
            assert mine._tracker is not None
            for _ in range(600):
                if mine._tracker.live:
                    break
                await asyncio.sleep(0.05)
            assert mine._tracker.address.node == (target.host, target.port)
            assert other("put", 1, 4) is True
            assert (await mine.peer_by_id(1)).access_hash == 4
    finally:
        other.close()


async def test_the_cluster_clients_map_naming_another_node_stops_trust(
    own_cluster: RedisCluster, name: str
) -> None:
    """The driver met a MOVED (here: a count after a resharding) before the tracking
    connection did: the check before memory answers sees its map name another node,
    memory is not trusted, and tracking moves there."""
    async with storage_on(own_cluster.url, name) as mine:
        source = _node(own_cluster, _owner(own_cluster, mine))
        target = next(node for node in own_cluster.nodes if node is not source)
        tracker = mine._tracker
        await _until_live(tracker)
        assert tracker is not None
        await mine.upsert_peers([user(1, 1)])
        # Memory's fill after open reads on the tracking connection: let it end, or it may
        # meet the MOVED before the driver does (then tracking drops at once, the other way).
        loading = mine._engine.peers._loading
        if loading is not None:
            await asyncio.wait([loading])
        _move_slot(own_cluster, _slot(source, mine), source, target)
        assert await mine.count_peers() == 1  # on the driver: it follows the MOVED
        assert tracker.live and tracker.address.node == (source.host, source.port)
        assert mine._catch_up() is False  # the map names the target now
        assert not tracker.live
        for _ in range(600):
            if tracker.live:
                break
            await asyncio.sleep(0.05)
        assert tracker.live and tracker.address.node == (target.host, target.port)
        assert (await mine.peer_by_id(1)).access_hash == 1
        assert mine.cached_peer(1) is not None and mine._catch_up() is True


async def test_a_restarted_cluster_node_leaves_no_stale_read(
    own_cluster: RedisCluster, name: str
) -> None:
    other = Other(own_cluster.url, name)
    try:
        async with storage_on(own_cluster.url, name) as mine:
            owner = _node(own_cluster, _owner(own_cluster, mine))
            await mine.upsert_peers([user(1, 1)])
            await _tracking_again(other, None)  # B tracks (maybe set up after its open)
            assert other("get", 1) == 1 and other("cached", 1) is True
            other("tracker")
            owner.stop()
            down = other("get", 1)
            assert down["error"] == "BackendError", down  # not the value held in memory
            with pytest.raises(BackendError):
                await mine.peer_by_id(1)
            owner.start()
            await _until_stored(mine, user(1, 2))
            await _until_seen(other, 1, 2)  # B's client may fail until the node is back
            # B found its connection closed (its lookup above): any id now is a new one
            # (a restarted server numbers its clients from 1 again).
            new = await _tracking_again(other, None)
            assert _tracked_on(owner, new)
            assert other("get", 1) == 2 and other("cached", 1) is True
            await mine.upsert_peers([user(1, 3)])
            assert other("get", 1) == 3
    finally:
        other.close()


async def test_a_failed_over_primary_leaves_no_stale_read(
    own_cluster: RedisCluster, name: str, tmp_path: Path
) -> None:
    """The primary serving the session's slot dies; its replica takes over (``CLUSTER
    FAILOVER TAKEOVER``, which waits for no timeout): BackendError meanwhile, then
    tracking on the new primary and no stale read."""
    other = Other(own_cluster.url, name)
    try:
        async with storage_on(own_cluster.url, name) as mine:
            primary = _node(own_cluster, _owner(own_cluster, mine))
            replica = _add_replica(own_cluster, primary, tmp_path / "replica")
            await mine.upsert_peers([user(1, 1)])
            _eventually(lambda: _replicated(replica, mine.keys.peers), "the replica holds the peer")
            await _tracking_again(other, None)  # B tracks (maybe set up after its open)
            assert other("get", 1) == 1 and other("cached", 1) is True
            tracker = other("tracker")
            primary.kill()
            down = other("get", 1)
            assert down["error"] == "BackendError", down
            command(replica.host, replica.port, "CLUSTER", "FAILOVER", "TAKEOVER")
            _eventually(
                lambda: "role:master" in str(command(replica.host, replica.port, "INFO")),
                "the replica took over",
            )
            await _until_stored(mine, user(1, 2))
            await _until_seen(other, 1, 2)  # B's client may fail until it maps the slot anew
            new = await _tracking_again(other, tracker)
            assert _tracked_on(replica, new)
            assert other("get", 1) == 2 and other("cached", 1) is True
            await mine.upsert_peers([user(1, 3)])
            assert other("get", 1) == 3
    finally:
        other.close()


async def _until_seen(other: Other, peer_id: int, access_hash: int) -> None:
    """B answers ``access_hash`` for the peer, once its calls stop failing: every answer
    it gives meanwhile is an error, never another value."""
    for _ in range(300):
        found = other("get", peer_id)
        if not isinstance(found, dict):
            assert found == access_hash
            return
        assert found["error"] == "BackendError", found
        await asyncio.sleep(0.1)
    raise AssertionError("the other process's calls kept failing")


def _add_replica(cluster: RedisCluster, primary: RedisServer, directory: Path) -> RedisServer:
    replica = RedisServer(directory, appendonly=True, cluster=True)
    cluster.nodes.append(replica)  # stopped with the cluster
    replica.start()
    primary_id = str(command(primary.host, primary.port, "CLUSTER", "MYID"))
    command(replica.host, replica.port, "CLUSTER", "MEET", primary.host, primary.port)
    _eventually(
        lambda: primary_id in str(command(replica.host, replica.port, "CLUSTER", "NODES")),
        "the new node knows the primary",
    )
    command(replica.host, replica.port, "CLUSTER", "REPLICATE", primary_id)
    _eventually(
        lambda: "master_link_status:up" in str(command(replica.host, replica.port, "INFO")),
        "the replica is in sync",
    )
    return replica


def _replicated(replica: RedisServer, key: str) -> bool:
    """Whether the replica holds peer 1 in ``key`` (read on the replica: READONLY)."""
    with socket.create_connection((replica.host, replica.port), timeout=5) as sock:
        sock.sendall(_encode(["READONLY"]) + _encode(["HEXISTS", key, 1]))
        with sock.makefile("rb") as reader:
            _read_reply(reader)
            return _read_reply(reader) == 1


# -- RedisKV(client_cache=True): the same machinery for bot state --------------------------------


async def test_a_client_cached_kv_sees_every_acknowledged_write(redis_server: RedisServer) -> None:
    from pyrogram_storage import kv

    namespace = f"cc{uuid.uuid4().hex[:12]}"
    one = kv.RedisKV.from_url(redis_server.url, namespace=namespace, client_cache=True)
    two = kv.RedisKV.from_url(redis_server.url, namespace=namespace, client_cache=True)
    async with one, two:
        assert one._tracker is not None and two._tracker is not None
        await one.set("k", {"step": 0})
        hits = 0
        for step in range(1, ROUNDS + 1):
            assert await two.get("k") == {"step": 2 * step - 2}, step
            hits += "k" in two._held  # held: the next get is answered from memory
            await two.set("k", {"step": 2 * step - 1})
            assert await one.get("k") == {"step": 2 * step - 1}, step
            await one.set("k", {"step": 2 * step})
        assert hits == ROUNDS
        await one.delete("k")
        assert await two.get("k") is None
        await one.set("t", 1, ttl=0.05)
        assert await two.get("t") == 1
        await asyncio.sleep(0.1)
        assert await two.get("t") is None  # expired, though nobody told us
        # The invalidation connection killed: memory is not trusted until it is back.
        await two.set("k", "held")
        assert await two.get("k") == "held" and "k" in two._held
        import redis.asyncio

        admin = redis.asyncio.Redis.from_url(redis_server.url)
        try:
            assert two._tracker.client_id is not None
            assert await admin.client_kill_filter(_id=two._tracker.client_id) == 1
        finally:
            await admin.aclose()
        await one.set("k", "changed")
        assert await two.get("k") == "changed"
        assert "k" not in two._held
        for _ in range(300):
            if two._tracker.live:
                break
            await asyncio.sleep(0.1)
        assert two._tracker.live
        assert await two.get("k") == "changed" and "k" in two._held
        await one.set("k", "again")
        assert await two.get("k") == "again"


async def test_changes_made_without_our_scripts_drop_everything_held(
    redis_server: RedisServer, name: str
) -> None:
    """A peers hash changed by no script of ours (another program, an eviction), the
    schema hash (a delete, a migration) or a FLUSHDB: nothing held is trusted."""
    import redis.asyncio

    admin = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        async with storage_on(redis_server.url, name) as mine:
            tag = mine.keys.tag
            for change in (
                lambda: admin.hset(f"{tag}:schema", "note", "x"),
                lambda: admin.hset(f"{tag}:peers", "1", '[5,"user","",0]'),
            ):
                await mine.upsert_peers([user(1, 1), user(2, 2)])
                assert mine.cached_peer(1) is not None and mine.cached_peer(2) is not None
                await change()
                assert mine.cached_peer(1) is None and mine.cached_peer(2) is None
            assert (await mine.peer_by_id(1)).access_hash == 5  # what the server holds
            assert mine.cached_peer(1) is not None
            await admin.flushdb()
            # The server tells trackers of a flush as it runs it, but may send the
            # flusher's reply first: heard within moments, not before that reply.
            for _ in range(100):
                if mine.cached_peer(1) is None:
                    break
                await asyncio.sleep(0.01)
            assert mine.cached_peer(1) is None
            assert mine._tracker is not None and mine._tracker.live
    finally:
        await admin.aclose()


async def test_memory_filled_while_another_writer_writes_holds_no_stale_peer(
    redis_server: RedisServer, name: str
) -> None:
    """A shared storage fills memory with the stored peers after open; peers another
    writer changes meanwhile are left out (or dropped), never held as they were."""
    async with storage_on(redis_server.url, name, timeout=10) as writer:
        for first in range(1, 5001, 500):
            await writer.upsert_peers([user(i, i) for i in range(first, first + 500)])
        reader = storage_on(redis_server.url, name, timeout=10)
        async with reader:
            for step in range(1, 301):  # while the reader fills its memory
                await writer.upsert_peers([user(step * 16, -step)])
                await asyncio.sleep(0)
            for _ in range(600):
                if reader._peer_engine._warming is None:
                    break
                await asyncio.sleep(0.05)
            assert len(reader._peer_engine.cache) >= 4000  # filled
            for peer_id in range(1, 5001):
                expected = -(peer_id // 16) if peer_id % 16 == 0 and peer_id <= 4800 else peer_id
                held = reader.cached_peer(peer_id)
                assert held is None or held.access_hash == expected, peer_id
                assert (await reader.peer_by_id(peer_id)).access_hash == expected, peer_id
