"""RedisStorage on real servers: the layout, one round trip per batch, atomic indexes,
delete(), layout versions, read-only, shared and sole writers, clients and drivers.

The contract suite runs on redis/valkey x single server/cluster from conftest.py; here
is what is Redis's own. Servers are the run's (``redis_server``, ``redis_cluster``),
started by the tests on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyrogram_storage import (
    Changes,
    CorruptSessionError,
    InvalidTypeError,
    InvalidValueError,
    MemoryStorage,
    MigrationError,
    MissingDriverError,
    Peer,
    PeerNotFound,
    PeerType,
    ReadOnlyError,
    SchemaTooNewError,
    SessionData,
    SessionNotFoundError,
    UnknownSchemaError,
    UpdateState,
    from_url,
)
from pyrogram_storage._migrations import Migration
from pyrogram_storage.redisdb import layout, schema
from pyrogram_storage.redisdb.layout import KEY_NAMES, Keys
from pyrogram_storage.redisdb.storage import RedisStorage

from .missing_driver import missing_driver_error
from .servers.redisserver import RedisCluster, RedisServer
from .test_journal import OPS, _check, _failing

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parent.parent
KEY = bytes(range(256))


def unique(stem: str = "s") -> str:
    return f"{stem}_{uuid.uuid4().hex[:12]}"


def user(peer_id: int, *names: str, phone: str | None = None) -> Peer:
    return Peer(peer_id, peer_id * 7, PeerType.USER, names, phone)


@pytest.fixture
async def raw(redis_server: RedisServer) -> AsyncIterator[Any]:
    """A plain redis-py client of the run's server, to look at what is stored."""
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        yield client
    finally:
        await client.aclose()


async def session_keys(client: Any, name: str, prefix: str = "pyrogram_storage") -> set[str]:
    keys = Keys.of(prefix, name)
    return {key.decode() async for key in client.scan_iter(match=keys.pattern)}


async def check_indexes(client: Any, keys: Keys) -> None:
    """Every index key agrees with the peers: what the apply script must keep true."""
    peers = {int(k): json.loads(v) for k, v in (await client.hgetall(keys.peers)).items()}
    names = {int(k): json.loads(v) for k, v in (await client.hgetall(keys.names)).items()}
    assert set(names) <= set(peers)
    assert all(names.values()), "an empty usernames entry is stored"
    held: dict[str, set[int]] = {}
    for peer_id, usernames in names.items():
        for name in usernames:
            held.setdefault(name, set()).add(peer_id)
    index = await client.hgetall(keys.usernames)
    assert {k.decode(): set(map(int, v.split())) for k, v in index.items()} == held
    phones: dict[str, set[int]] = {}
    for peer_id, (_, _, phone, _) in peers.items():
        if phone:
            phones.setdefault(phone, set()).add(peer_id)
    index = await client.hgetall(keys.phones)
    assert {k.decode(): set(map(int, v.split())) for k, v in index.items()} == phones
    members = await client.zrange(keys.ids, 0, -1)
    assert [int(m.decode().split(":")[1]) for m in members] == sorted(peers)
    counts: dict[str, int] = {}
    for _, kind, _, _ in peers.values():
        counts[kind] = counts.get(kind, 0) + 1
    stored = await client.hgetall(keys.types)
    assert {k.decode(): int(v) for k, v in stored.items()} == counts


# -- the layout -------------------------------------------------------------------------------


async def test_the_keys_are_the_documented_ones_under_one_hash_tag(
    redis_server: RedisServer, raw: Any
) -> None:
    name = unique()
    storage = RedisStorage.from_url(redis_server.url, name=name, commit_interval=0)
    async with storage:
        await storage.update_session(dc_id=4, auth_key=KEY, test_mode=False)
        await storage.upsert_peers([user(1, "one", phone="1555"), user(2)])
        await storage.set_update_states([UpdateState(0, 1, None, 3, 4)])
    tag = "{pyrogram_storage:" + name + "}"
    assert await session_keys(raw, name) == {f"{tag}:{suffix}" for suffix in KEY_NAMES}
    version = str(schema.latest()).encode()
    stored = await raw.hgetall(f"{tag}:schema")
    assert stored == {b"version": version, b"writer": b"pyrogram-storage"}
    session = await raw.hgetall(f"{tag}:session")
    assert session[b"auth_key"] == KEY and session[b"dc_id"] == b"4"
    assert session[b"test_mode"] == b"0" and b"user_id" not in session
    assert json.loads(await raw.hget(f"{tag}:peers", "1")) == [7, "user", "1555", ANY_INT]
    assert json.loads(await raw.hget(f"{tag}:names", "1")) == ["one"]
    assert await raw.hget(f"{tag}:names", "2") is None
    assert await raw.hget(f"{tag}:usernames", "one") == b"1"
    assert await raw.hget(f"{tag}:phones", "1555") == b"1"
    assert await raw.hget(f"{tag}:states", "0") == b"1,,3,4"
    assert await raw.hgetall(f"{tag}:types") == {b"user": b"2"}


class _AnyInt:
    def __eq__(self, other: object) -> bool:
        return type(other) is int


ANY_INT = _AnyInt()


async def test_peer_ids_are_ordered_exactly_over_the_whole_64_bit_range(
    redis_server: RedisServer,
) -> None:
    """A sorted set's score is a double: 2**63 - 1 and 2**63 - 2 would tie. Members do not."""
    ids = [-(2**63), -(2**63) + 1, -(2**53) - 1, -1, 0, 1, 2**53 + 1, 2**63 - 2, 2**63 - 1]
    storage = RedisStorage.from_url(redis_server.url, name=unique())
    async with storage:
        await storage.upsert_peers([Peer(i, 1, PeerType.USER) for i in reversed(ids)])
        seen = [peer.id async for batch in storage.iter_peer_batches(2) for peer in batch]
        assert seen == ids
        assert [layout.order_member(i) for i in ids] == sorted(layout.order_member(i) for i in ids)


async def test_a_cluster_keeps_each_session_in_one_slot_and_spreads_sessions(
    redis_cluster: RedisCluster,
) -> None:
    import redis.asyncio

    client = redis.asyncio.RedisCluster.from_url(redis_cluster.url)
    names = [f"spread_{n}_{uuid.uuid4().hex[:6]}" for n in range(100)]
    try:
        for name in names:
            async with RedisStorage(name, client, commit_interval=0) as storage:
                await storage.update_session(dc_id=1)
                await storage.upsert_peers([user(1, "a", phone="1"), user(2, "b")])
                await storage.set_update_states([UpdateState(0, 1)])
        nodes_of: dict[str, set[str]] = {name: set() for name in names}
        keys_of: dict[str, list[str]] = {name: [] for name in names}
        for node in client.get_primaries():
            cursor: Any = 0
            while True:
                cursors, found = await client.scan(
                    cursor, match="{pyrogram_storage:spread_*", count=1000, target_nodes=node
                )
                cursor = next(iter(cursors.values()))
                for key in found:
                    name = key.decode().split("}")[0].split(":", 1)[1]
                    if name in nodes_of:
                        nodes_of[name].add(node.name)
                        keys_of[name].append(key.decode())
                if not cursor:
                    break
        for name in names:
            assert len(keys_of[name]) == len(KEY_NAMES), keys_of[name]
            slots = {await client.cluster_keyslot(key) for key in keys_of[name]}
            assert len(slots) == 1 and len(nodes_of[name]) == 1, (name, slots, nodes_of[name])
        used = set().union(*nodes_of.values())
        assert len(used) == 3, used
    finally:
        for name in names:
            await RedisStorage(name, client).delete()
        await client.aclose()


# -- one round trip per batch, atomic ---------------------------------------------------------


def _watch(host: str, port: int, marker: str, ready: threading.Event) -> list[str]:
    """MONITOR over a plain socket (lines of any length) until ``marker``; Lua's left out."""
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall(b"*1\r\n$7\r\nMONITOR\r\n")
        with sock.makefile("rb") as reader:
            assert reader.readline().startswith(b"+OK")
            ready.set()
            seen: list[str] = []
            while True:
                line = reader.readline()
                assert line, "the server closed the MONITOR connection"
                if marker.encode() in line:
                    return seen
                source, _, command = line.partition(b"] ")
                if not source.endswith(b" lua"):
                    seen.append(command.split(b'"')[1].decode().upper())


async def _commands_of(url: str, work: Any) -> list[str]:
    """Run ``work()`` under MONITOR; return the names of the commands it sent."""
    import redis.asyncio

    marker_client = redis.asyncio.Redis.from_url(url)
    marker = uuid.uuid4().hex
    ready = threading.Event()
    parts = urlsplit(url)
    try:
        await marker_client.ping()  # its connection is open before MONITOR starts
        watching = asyncio.ensure_future(
            asyncio.to_thread(_watch, parts.hostname or "", parts.port or 6379, marker, ready)
        )
        await asyncio.to_thread(ready.wait, 10)
        await work()
        await marker_client.echo(marker)
        return await asyncio.wait_for(watching, 30)
    finally:
        await marker_client.aclose()


def _batch(size: int, stamp: int) -> Changes:
    """A batch of every kind of change, ``size`` of each."""
    base = size * 10
    return Changes(
        deleted_peers=[base - 1],
        peers=[
            Peer(
                base + i, i, PeerType.USER, (f"n{base + i}", f"m{base + i}"), f"1{base + i}", stamp
            )
            for i in range(size)
        ]
        + [Peer(base - 2, 5, PeerType.BOT, None, None, stamp)],
        usernames=[(1, (f"renamed{size}",))],
        deleted_states=[base - 1],
        states=[UpdateState(base + i, i, None, i, None) for i in range(size)],
        merged_states=[UpdateState(0, pts=size)],
        session=SessionData(dc_id=4, auth_key=KEY),
        session_fields=frozenset({"dc_id", "auth_key"}),
        stamp=stamp,
    )


@pytest.mark.parametrize("driver", ["redis", "valkey"])
async def test_a_batch_is_one_command_whatever_its_size(
    redis_server: RedisServer, raw: Any, driver: str
) -> None:
    """MONITOR on the server: a batch of 3 changes of each kind or 3,000, one EVALSHA."""
    storage = RedisStorage.from_url(
        redis_server.url, name=unique(), driver=driver, username_ttl=None
    )
    async with storage:
        await storage.upsert_peers([user(1, "warm")])
        await storage.flush()  # the script is known to the server and a connection is open
        sent = {}
        for size in (3, 3000):
            sent[size] = await _commands_of(
                redis_server.url, lambda size=size: storage._apply(_batch(size, 1_700_000_000))
            )
        assert sent == {3: ["EVALSHA"], 3000: ["EVALSHA"]}
        assert (await storage.peer_by_username("renamed3000")).id == 1
        assert (await storage.peer_by_username("m30005")).phone_number == "130005"
        assert await storage.count_peers() == 1 + 4 + 3001
        assert len(await storage.get_update_states()) == 1 + 3 + 3000
        assert (await storage.get_session()).dc_id == 4
    await check_indexes(raw, storage.keys)


async def test_a_reader_never_sees_an_index_out_of_step_with_its_peers(
    redis_server: RedisServer, raw: Any
) -> None:
    """Two peers swap a username batch after batch; MULTI/EXEC readers check every view.

    The index and the peers change in one script, so no reader can catch the username
    pointing at a peer whose usernames say otherwise.
    """
    storage = RedisStorage.from_url(redis_server.url, name=unique(), commit_interval=3600)
    keys = storage.keys
    stop = asyncio.Event()
    views = 0

    async def reader() -> None:
        nonlocal views
        while not stop.is_set():
            async with raw.pipeline(transaction=True) as pipe:
                pipe.hget(keys.usernames, "ball")
                pipe.hgetall(keys.names)
                holder, names = await pipe.execute()
            if holder is not None:
                assert "ball" in json.loads(names[holder]), (holder, names)
                assert all("ball" not in json.loads(v) for k, v in names.items() if k != holder)
            views += 1

    async with storage:
        await storage.upsert_peers([user(1, "ball"), user(2, "other")])
        await storage.flush()
        readers = [asyncio.create_task(reader()) for _ in range(3)]
        for round_ in range(150):
            first, second = (1, 2) if round_ % 2 else (2, 1)
            await storage.set_usernames([(first, ["ball"]), (second, [f"x{round_}"])])
            await storage.flush()
            await asyncio.sleep(0)
        stop.set()
        await asyncio.gather(*readers)
    assert views > 150
    await check_indexes(raw, keys)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OPS, max_size=25))
def test_batches_with_failures_read_like_writes_applied_one_by_one(
    redis_server: RedisServer, ops: list[tuple[Any, ...]]
) -> None:
    """The journal's property test (tests/test_journal.py) on Redis, then the raw indexes."""
    import redis.asyncio

    failing = _failing(RedisStorage)
    name = unique("journal")
    _check(
        ops,
        lambda **options: MemoryStorage("model", **options),
        lambda **options: failing.from_url(redis_server.url, name=name, **options),
    )

    async def indexes_then_delete() -> None:
        client = redis.asyncio.Redis.from_url(redis_server.url)
        try:
            await check_indexes(client, Keys.of("pyrogram_storage", name))
        finally:
            await client.aclose()
        await RedisStorage.from_url(redis_server.url, name=name).delete()

    asyncio.run(indexes_then_delete())


# -- delete ------------------------------------------------------------------------------------


async def test_delete_unlinks_every_key_of_the_session_and_nothing_else(
    redis_server: RedisServer, raw: Any
) -> None:
    stem = unique("del")
    doomed, others = f"{stem}*?[x]", [stem, f"{stem}x", f"{stem}:b", f"{stem}*?[y]"]
    for name in [doomed, *others]:
        async with RedisStorage.from_url(redis_server.url, name=name) as storage:
            await storage.upsert_peers([user(1, "one", phone="1")])
            await storage.set_update_states([UpdateState(0, 1)])
    strangers = {
        f"pyrogram_storage:{doomed}:peers": "no hash tag",
        "{pyrogram_storage:" + doomed + "}": "the bare tag",
        "{pyrogram_storage:" + doomed + "}x:peers": "no colon after the tag",
        "{other_prefix:" + doomed + "}:peers": "another prefix",
    }
    for key, value in strangers.items():
        await raw.set(key, value)
    before = {name: await session_keys(raw, name) for name in others}
    assert len(await session_keys(raw, doomed)) == len(KEY_NAMES)

    async def delete() -> None:
        await RedisStorage.from_url(redis_server.url, name=doomed).delete()

    commands = await _commands_of(redis_server.url, delete)
    assert "KEYS" not in commands and "SCAN" in commands and "UNLINK" in commands, commands
    assert await session_keys(raw, doomed) == set()
    assert {name: await session_keys(raw, name) for name in others} == before
    for key, value in strangers.items():
        assert await raw.get(key) == value.encode()
        await raw.delete(key)
    async with RedisStorage.from_url(redis_server.url, name=doomed) as storage:
        with pytest.raises(PeerNotFound):
            await storage.peer_by_id(1)
        assert (await storage.get_session()).is_empty


async def test_a_foreign_key_under_the_tag_stops_a_batch_before_it_writes(
    redis_server: RedisServer, raw: Any
) -> None:
    """A script is not rolled back when one of its commands fails: it checks first."""
    storage = RedisStorage.from_url(redis_server.url, name=unique(), commit_interval=0)
    async with storage:
        await storage.upsert_peers([user(1, "one")])
        await raw.set(storage.keys.names, "another program's string")
        before = await raw.hgetall(storage.keys.peers)
        with pytest.raises(CorruptSessionError, match="another program"):
            await storage.upsert_peers([user(2, "two", phone="2")])
        assert await raw.hgetall(storage.keys.peers) == before
        assert await raw.exists(storage.keys.phones) == 0
        await raw.delete(storage.keys.names)
        await storage.flush()  # the refused batch, stored once the key is gone
        assert (await storage.peer_by_username("two")).id == 2
        await storage.delete_peers([1, 2])


# -- layout versions ---------------------------------------------------------------------------


async def test_a_newer_or_foreign_schema_is_refused_and_left_untouched(
    redis_server: RedisServer, raw: Any
) -> None:
    name = unique()
    tag = "{pyrogram_storage:" + name + "}"
    async with RedisStorage.from_url(redis_server.url, name=name) as storage:
        await storage.upsert_peers([user(1, "one")])
    for fields, error in (
        ({"version": "99"}, SchemaTooNewError),
        ({"version": "1", "writer": "someone else"}, UnknownSchemaError),
        ({"version": "one"}, UnknownSchemaError),
    ):
        await raw.hset(f"{tag}:schema", mapping={"writer": "pyrogram-storage", **fields})
        before = {key: await raw.dump(key) for key in await session_keys(raw, name)}
        for read_only in (False, True):
            with pytest.raises(error):
                await RedisStorage.from_url(redis_server.url, name=name, read_only=read_only).open()
        assert {key: await raw.dump(key) for key in await session_keys(raw, name)} == before
    await raw.delete(f"{tag}:schema")
    with pytest.raises(UnknownSchemaError, match="no schema hash"):
        await RedisStorage.from_url(redis_server.url, name=name).open()
    assert await raw.exists(f"{tag}:schema") == 0


async def test_a_migration_step_runs_atomically_with_its_version(
    redis_server: RedisServer, raw: Any
) -> None:
    """The interpreter's wrapper: the step's keys by name, the version checked and recorded."""
    keys = Keys.of("pyrogram_storage", unique())
    step = Migration(
        2,
        "example",
        json.dumps({"keys": ["types", "peers"], "lua": "redis.call('HSET', K.types, 'x', '7')"}),
    )
    source, names = schema._script(step)
    assert names == ["types", "peers"]
    args = (keys.schema, keys.types, keys.peers, 1, 2, "pyrogram-storage")
    assert await raw.eval(source, 3, *args) == 0  # not at version 1: nothing done
    assert await raw.exists(keys.types) == 0
    await raw.hset(keys.schema, "version", 1)
    assert await raw.eval(source, 3, *args) == 1
    assert await raw.hget(keys.types, "x") == b"7"
    assert await raw.hget(keys.schema, "version") == b"2"
    assert await raw.eval(source, 3, *args) == 0  # already migrated (by another process)
    for bad in ('{"keys": ["nope"], "lua": ""}', '{"lua": ""}', "not json"):
        with pytest.raises(MigrationError):
            schema._script(Migration(3, "bad", bad))
    await raw.delete(*keys.all)


# -- read-only ---------------------------------------------------------------------------------


async def _writes_so_far(raw: Any) -> int:
    return int((await raw.info("persistence"))["rdb_changes_since_last_save"])


async def test_read_only_writes_nothing_at_all(redis_server: RedisServer, raw: Any) -> None:
    """The server's own write counter does not move, not even for a session that is missing."""
    name = unique()
    async with RedisStorage.from_url(redis_server.url, name=name) as writer:
        await writer.update_session(dc_id=4, auth_key=KEY)
        await writer.upsert_peers([user(1, "one", phone="1")])
    before = await _writes_so_far(raw)
    async with RedisStorage.from_url(redis_server.url, name=name, read_only=True) as reader:
        assert (await reader.peer_by_username("one")).id == 1
        assert (await reader.peer_by_phone("1")).id == 1
        assert [p.id async for p in reader.iter_peers()] == [1]
        assert await reader.count_peers_by_type() == {PeerType.USER: 1}
        assert (await reader.get_session()).auth_key == KEY
        await reader.save()
        with pytest.raises(ReadOnlyError):
            await reader.upsert_peers([user(2)])
    missing = RedisStorage.from_url(redis_server.url, name=unique("missing"), read_only=True)
    with pytest.raises(SessionNotFoundError):
        await missing.open()
    assert await _writes_so_far(raw) == before


async def test_read_only_reads_an_older_layout_without_migrating_it(
    redis_server: RedisServer, raw: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A session of layout version 1 (a library before 0.2 wrote it): read as it is,
    nothing written; the first open for writing migrates it."""
    name = unique()
    async with RedisStorage.from_url(redis_server.url, name=name) as writer:
        await writer.update_session(dc_id=4, auth_key=KEY)
        await writer.upsert_peers([user(1, "one", phone="1")])
    schema_key = Keys.of("pyrogram_storage", name).schema
    await raw.hset(schema_key, "version", 1)  # version 2 changed no data, only the scripts
    before = await _writes_so_far(raw)
    async with RedisStorage.from_url(redis_server.url, name=name, read_only=True) as reader:
        assert (await reader.peer_by_id(1)).usernames == ("one",)
        assert (await reader.peer_by_username("one")).id == 1
        assert (await reader.get_session()).auth_key == KEY
    assert await _writes_so_far(raw) == before
    assert await raw.hget(schema_key, "version") == b"1"
    async with RedisStorage.from_url(redis_server.url, name=name) as writer:
        assert (await writer.peer_by_phone("1")).id == 1
    assert await raw.hget(schema_key, "version") == str(schema.latest()).encode()
    # A later layout that changes the data is read only once migrated: clear words.
    monkeypatch.setattr(schema, "READABLE_FROM", schema.latest())
    await raw.hset(schema_key, "version", 1)
    with pytest.raises(MigrationError, match="open it once without read_only"):
        await RedisStorage.from_url(redis_server.url, name=name, read_only=True).open()
    assert await raw.hget(schema_key, "version") == b"1"


# -- shared and sole writers ---------------------------------------------------------------------


async def test_shared_writers_see_each_others_stored_writes(redis_server: RedisServer) -> None:
    """The default: what another writer stored is seen by the next lookup; what is
    cached is what the server holds (the server says what the other changed)."""
    name = unique()
    one = RedisStorage.from_url(redis_server.url, name=name, commit_interval=0)
    two = RedisStorage.from_url(redis_server.url, name=name, commit_interval=0)
    async with one, two:
        await one.upsert_peers([user(1, "first")])
        assert (await two.peer_by_id(1)).access_hash == 7
        await two.upsert_peers([Peer(1, 99, PeerType.BOT, ("moved",))])
        peer = await one.peer_by_id(1)
        assert (peer.access_hash, peer.type, peer.usernames) == (99, PeerType.BOT, ("moved",))
        assert one.cached_peer(1) == peer
        await two.upsert_peers([Peer(1, 98, PeerType.USER, ("back",))])
        assert one.cached_peer(1) is None
        assert (await one.peer_by_id(1, with_usernames=False)).access_hash == 98
        with pytest.raises(PeerNotFound):
            await one.peer_by_username("first")
        await two.update_session(dc_id=5)
        assert (await one.get_session()).dc_id == 5
        await one.delete_peers([1])
        with pytest.raises(PeerNotFound):
            await two.peer_by_id(1)


async def _not_found(lookup: Any) -> None:
    with pytest.raises(PeerNotFound):
        await lookup


async def test_a_sole_writer_answers_known_ids_without_asking_the_server(
    redis_server: RedisServer, raw: Any
) -> None:
    storage = RedisStorage.from_url(redis_server.url, name=unique(), sole_writer=True)
    async with storage:
        await storage.upsert_peers([user(1, "one")])
        await storage.flush()

        async def lookups() -> None:
            for _ in range(5):
                assert (await storage.peer_by_id(1)).usernames == ("one",)
                await storage.upsert_peers([user(1, "one")])  # unchanged: no write
            await storage.get_session()
            await storage.flush()

        assert await _commands_of(redis_server.url, lookups) == []
        assert storage.cached_peer(1) is not None
    shared = RedisStorage.from_url(redis_server.url, name=storage.name)
    async with shared:
        # Shared: memory fills with the stored peers too, but a miss asks the server
        # (another writer may have added the peer).
        with pytest.raises(PeerNotFound):
            await shared.peer_by_id(2, with_usernames=False)
        assert await _commands_of(
            redis_server.url, lambda: _not_found(shared.peer_by_id(2, with_usernames=False))
        ) == ["HGET"]
        for _ in range(100):
            if shared.cached_peer(1) is not None:
                break
            await asyncio.sleep(0.05)
        assert shared.cached_peer(1) is not None


# -- clients, drivers, locations ------------------------------------------------------------------


@pytest.mark.parametrize("driver", ["redis", "valkey"])
@pytest.mark.parametrize("cluster", [False, True], ids=["single", "cluster"])
async def test_a_given_client_is_used_and_left_open(
    request: pytest.FixtureRequest, driver: str, cluster: bool
) -> None:
    server = request.getfixturevalue("redis_cluster" if cluster else "redis_server")
    if driver == "redis":
        import redis.asyncio as module
    else:
        import valkey.asyncio as module
    kind = {
        ("redis", False): "Redis",
        ("redis", True): "RedisCluster",
        ("valkey", False): "Valkey",
        ("valkey", True): "ValkeyCluster",
    }[driver, cluster]
    client = getattr(module, kind).from_url(server.url)
    name = unique()
    try:
        async with RedisStorage(name, client, username_ttl=None) as storage:
            assert storage.driver == driver and storage.location is None
            await storage.update_session(auth_key=KEY, dc_id=3)
            await storage.upsert_peers([user(1, "one")])
            assert await storage.health() is True
        assert await client.ping()  # still the caller's, still open
        async with RedisStorage(name, client, username_ttl=None) as again:
            assert (await again.peer_by_username("one")).id == 1
            assert (await again.get_session()).auth_key == KEY
        await RedisStorage(name, client).delete()
    finally:
        await client.aclose()


def test_clients_that_cannot_work_are_refused() -> None:
    import redis
    import redis.asyncio
    import valkey

    for sync in (redis.Redis(), valkey.Valkey()):
        with pytest.raises(TypeError, match="synchronous") as error:
            RedisStorage("me", sync)
        assert isinstance(error.value, InvalidTypeError)
    with pytest.raises(TypeError, match="redis-py or valkey"):
        RedisStorage("me", object())
    client = redis.asyncio.Redis()
    for name, prefix in (("a{b}", "pyrogram_storage"), ("me", "x}"), ("me", "")):
        with pytest.raises(InvalidValueError):
            RedisStorage(name, client, prefix=prefix)
    with pytest.raises(TypeError):
        RedisStorage("me", client, sole_writer="yes")  # type: ignore[arg-type]


async def test_a_client_that_decodes_responses_is_refused_on_open(
    redis_server: RedisServer,
) -> None:
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(redis_server.url, decode_responses=True)
    storage = RedisStorage(unique(), client)
    with pytest.raises(TypeError, match="decode_responses"):
        await storage.open()
    await client.aclose()


def test_locations_round_trip_and_hide_the_password() -> None:
    storage = from_url("redis://user:s3cret@db.example:6380/2#my%20bot", username_ttl=None)
    assert isinstance(storage, RedisStorage)
    assert (storage.name, storage.prefix, storage.username_ttl) == (
        "my bot",
        "pyrogram_storage",
        None,
    )
    assert storage.location == "redis://user:s3cret@db.example:6380/2#my%20bot"
    assert "s3cret" not in repr(storage) and "s3cret" not in str(storage)
    other = from_url("rediss://db.example/0?prefix=bots&ssl_cert_reqs=none#me", driver="valkey")
    assert isinstance(other, RedisStorage)
    assert (other.prefix, other.driver, other.keys.peers) == ("bots", "valkey", "{bots:me}:peers")
    assert from_url(other.location or "").location == other.location
    unix = from_url("unix:///run/redis.sock?db=1#me")
    assert isinstance(unix, RedisStorage) and unix.location == "unix:///run/redis.sock?db=1#me"
    for bad in ("redis://host:6379/0", "redis://host:6379/0#"):
        with pytest.raises(InvalidValueError, match="#NAME"):
            from_url(bad)
    with pytest.raises(InvalidValueError, match="driver"):
        from_url("redis://host/0#me", driver="hiredis")
    with pytest.raises(InvalidValueError):
        RedisStorage.from_url("http://host/0", name="me")


@pytest.mark.parametrize(
    "blocked, build, extra",
    [
        (
            "redis",
            "RedisStorage.from_url('redis://127.0.0.1:1/0', name='me', driver='redis')",
            "redis",
        ),
        (
            "valkey",
            "RedisStorage.from_url('redis://127.0.0.1:1/0', name='me', driver='valkey')",
            "valkey",
        ),
        ("redis", "ps.from_url('redis://127.0.0.1:1/0#me', driver='redis')", "redis"),
    ],
)
def test_a_missing_driver_names_its_extra(blocked: str, build: str, extra: str) -> None:
    got_extra, message = missing_driver_error(
        blocked, "import pyrogram_storage as ps; from pyrogram_storage import RedisStorage", build
    )
    assert got_extra == extra
    assert f"pip install pyrogram-storage[{extra}]" in message
    assert MissingDriverError.__mro__[1].__name__ == "StorageError"


def test_no_driver_is_imported_until_a_storage_needs_one() -> None:
    code = (
        "import sys, pyrogram_storage\n"
        "cls = pyrogram_storage.registry.storage_class('redis://h/0#x')\n"
        "assert cls is pyrogram_storage.RedisStorage\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('redis', 'valkey'))\n"
        "assert not bad, bad\n"
        "pyrogram_storage.from_url('redis://h/0#x')\n"
        "assert 'redis' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)


async def test_a_unix_socket_location(tmp_path: Path) -> None:
    socket_path = tmp_path / "redis.sock"
    with RedisServer(
        tmp_path / "unix", extra_args=["--unixsocket", str(socket_path), "--unixsocketperm", "700"]
    ):
        location = f"unix://{socket_path}?db=3#me"
        async with from_url(location) as storage:
            await storage.upsert_peers([user(1, "one")])
        async with from_url(location) as again:
            assert (await again.peer_by_username("one")).id == 1
            assert again.location == location


async def test_health_and_errors_of_an_unreachable_server(tmp_path: Path) -> None:
    with RedisServer(tmp_path / "gone") as server:
        storage = RedisStorage.from_url(
            server.url, name="me", client_options={"socket_timeout": 1, "socket_connect_timeout": 1}
        )
        await storage.open()
        assert await storage.health() is True
    from pyrogram_storage import BackendError

    with pytest.raises(BackendError, match="RedisStorage failed to answer a health check"):
        await storage.health()
    with pytest.raises(BackendError):
        await storage.peer_by_id(1)
    await storage.close()  # nothing pending: closing only lets the client go
    unopened = RedisStorage.from_url(server.url, name="me")
    with pytest.raises(BackendError):
        await unopened.open()
