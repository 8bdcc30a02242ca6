"""What each bot-state backend promises beyond the shared contract."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import pickle
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from pyrogram_storage import kv

from ..servers.redisserver import RedisServer

# -- MemoryKV -----------------------------------------------------------------------------


async def test_memory_lru_recency_follows_get_and_set_only() -> None:
    async with kv.MemoryKV(3) as store:
        for key in "abc":
            await store.set(key, 0)
        await store.get("a")  # a is now the most recent: b is the oldest
        assert await store.has("b")  # has() is not a use
        await store.set("d", 0)
        assert [k async for k in store.keys()] == ["c", "a", "d"]  # noqa: SIM118 (an async iterator)
        await store.touch("c", 60)  # nor is touch()
        await store.set("e", 0)
        assert sorted([k async for k in store.keys()]) == ["a", "d", "e"]  # noqa: SIM118 (an async iterator)
        await store.increment("a")  # increment is a write: a use
        await store.set("f", 1)
        assert sorted([k async for k in store.keys()]) == ["a", "e", "f"]  # noqa: SIM118 (an async iterator)


async def test_memory_drops_expired_keys_without_reads() -> None:
    async with kv.MemoryKV() as store:
        for index in range(100):
            await store.set(f"k{index}", index, ttl=0.05)
        await asyncio.sleep(0.1)
        await store.set("trigger", 1, ttl=60)
        assert len(store) == 1


def test_memory_refuses_a_bad_bound() -> None:
    for bad in (0, -1, 1.5, "3"):
        with pytest.raises(kv.InvalidArgumentError):
            kv.MemoryKV(bad)  # type: ignore[arg-type]


# -- SQLiteKV -----------------------------------------------------------------------------


async def test_sqlite_files_are_private_and_in_wal_mode(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = tmp_path / "sub" / "state.db"
        async with kv.SQLiteKV(path) as store:
            await store.set("k", 1)
            for suffix in ("", "-wal", "-shm"):
                mode = os.stat(f"{path}{suffix}").st_mode & 0o777
                assert mode == 0o600, (suffix, oct(mode))
            with sqlite3.connect(path) as db:
                assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            db.close()
    finally:
        os.umask(old)


async def test_sqlite_refuses_foreign_files_and_tables(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(kv.CorruptStoreError):
        await kv.SQLiteKV(junk).open()
    assert junk.read_bytes() == b"not a database at all" * 100
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE kv (id INTEGER PRIMARY KEY, name TEXT)")
    db.close()
    with pytest.raises(kv.CorruptStoreError, match="table="):
        await kv.SQLiteKV(other).open()
    async with kv.SQLiteKV(other, table="bot_state") as store:
        await store.set("k", 1)


async def test_sqlite_sweep_removes_expired_rows(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    async with kv.SQLiteKV(path, sweep_interval=0.2) as store:
        for index in range(50):
            await store.set(f"k{index}", index, ttl=0.05)
        await store.set("kept", 1)
        await asyncio.sleep(0.6)  # the background sweep ran
        with sqlite3.connect(path) as db:
            assert db.execute("SELECT k FROM kv").fetchall() == [("kept",)]
        db.close()
    async with kv.SQLiteKV(path, sweep_interval=None) as store:
        await store.set("x", 1, ttl=0.01)
        await asyncio.sleep(0.05)
        assert await store.sweep() == 1


async def test_sqlite_write_waits_for_another_connection_off_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    async with kv.SQLiteKV(path, busy_timeout=5) as store:
        await store.set("k", 0)
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process's write lock
        released = asyncio.get_running_loop().call_later(0.3, other.execute, "COMMIT")
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        beat = asyncio.create_task(ticker())
        started = time.monotonic()
        await store.set("k", 1)  # retried on the lane, whose connection waits
        assert time.monotonic() - started >= 0.25
        assert ticks >= 10  # the loop kept running meanwhile
        beat.cancel()
        released.cancel()
        assert await store.get("k") == 1
        assert await store.increment("k") == 2
        other.close()


async def test_sqlite_lock_held_too_long_is_store_locked(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    async with kv.SQLiteKV(path, busy_timeout=0.2) as store:
        await store.set("k", 0)
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(kv.StoreLockedError):
                await store.set("k", 1)
            assert await store.get("k") == 0  # reads go on in WAL mode
        finally:
            other.execute("ROLLBACK")
            other.close()
        await store.set("k", 2)
        assert await store.get("k") == 2


async def test_sqlite_open_waits_for_a_writer_while_the_file_turns_to_wal(tmp_path: Path) -> None:
    # Another process writing the file before it is in WAL mode (as when several open
    # a new store at once): SQLite refuses the switch to WAL at once, without its busy
    # handler, so the open itself must wait, up to busy_timeout.
    path = tmp_path / "state.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE other (x)")
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO other VALUES (1)")
    released = asyncio.get_running_loop().call_later(0.3, other.execute, "COMMIT")
    started = time.monotonic()
    try:
        async with kv.SQLiteKV(path, busy_timeout=5) as store:
            assert time.monotonic() - started >= 0.25
            await store.set("k", 1)
            assert await store.get("k") == 1
    finally:
        released.cancel()
        other.close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert db.execute("SELECT x FROM other").fetchall() == [(1,)]  # theirs is kept
    db.close()


# -- JSONFileKV ---------------------------------------------------------------------------


async def test_json_file_keeps_a_backup_and_falls_back_to_it(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    async with kv.JSONFileKV(path) as store:
        await store.set("a", 1)
        await store.set("b", {2})
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert json.loads(path.read_text())["namespaces"]["default"]["b"][0] == '{"$kv":"set","v":[2]}'
    path.write_text('{"format": "pyrogram-storage-kv", "vers')  # damaged by someone else
    async with kv.JSONFileKV(path) as store:
        assert await store.get("a") == 1  # from state.json.bak (before "b" was written)
        assert await store.get("b") is None
        await store.set("c", 3)  # replaces the damaged file, keeps the good backup
    async with kv.JSONFileKV(path) as store:
        assert await store.get("c") == 3
    assert json.loads(Path(f"{path}.bak").read_text())["namespaces"]["default"]["a"] == [1, None]


async def test_json_file_unreadable_with_its_backup_is_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("garbage")
    with pytest.raises(kv.CorruptStoreError):
        await kv.JSONFileKV(path).open()
    Path(f"{path}.bak").write_text("[]")
    with pytest.raises(kv.CorruptStoreError):
        await kv.JSONFileKV(path).open()
    assert path.read_text() == "garbage"


async def test_json_file_has_one_open_store(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    async with kv.JSONFileKV(path):
        with pytest.raises(kv.StoreLockedError):
            await kv.JSONFileKV(path, namespace="other").open()
    async with kv.JSONFileKV(path, namespace="other") as store:
        await store.set("k", 1)


def test_a_json_file_left_open_by_an_ended_event_loop_lets_the_next_one_in(
    tmp_path: Path,
) -> None:
    """One asyncio.run() ends with the store open; the next one of the same process
    opens the file again, by a new object or the old one, with everything set."""
    path = tmp_path / "state.json"
    left_open: kv.JSONFileKV[Any] = kv.JSONFileKV(path)

    async def first() -> None:
        await left_open.open()
        await left_open.set("k", 1)

    async def again(store: kv.JSONFileKV[Any]) -> Any:
        async with store:
            return await store.get("k")

    asyncio.run(first())
    assert asyncio.run(again(kv.JSONFileKV(path))) == 1
    assert not left_open.is_open
    assert asyncio.run(again(left_open)) == 1


async def test_json_file_writes_made_together_share_one_write(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    async with kv.JSONFileKV(path) as store:
        writes = 0
        original = store._write

        def counting(text: bytes) -> None:
            nonlocal writes
            writes += 1
            original(text)

        store._write = counting  # type: ignore[method-assign]
        await asyncio.gather(*(store.set(f"k{i}", i) for i in range(200)))
        assert writes <= 3
    async with kv.JSONFileKV(path) as store:
        assert len([k async for k in store.keys()]) == 200  # noqa: SIM118 (an async iterator)


# -- MongoKV ------------------------------------------------------------------------------


@pytest.mark.mongo
async def test_mongo_documents_ttl_index_and_read_time_expiry(mongo_uri: str) -> None:
    import pymongo

    database = f"kv_ttl_{uuid.uuid4().hex[:12]}"
    store = kv.MongoKV.from_url(mongo_uri, database=database, collection="docs", namespace="n")
    now = time.time()
    store.clock = lambda: now  # the store's "now"; the server's TTL monitor keeps real time
    async with store:
        await store.set("k", {"a": 1}, ttl=60)
        await store.increment("c")
        client: Any = pymongo.MongoClient(mongo_uri)
        try:
            coll = client[database]["docs"]
            doc = coll.find_one({"_id": "n:k"})
            assert doc["v"] == '{"a":1}' and doc["e"] is not None
            assert coll.find_one({"_id": "n:c"})["v"] == 1
            indexes = coll.index_information()
            assert any(spec.get("expireAfterSeconds") == 0 for spec in indexes.values())
            now += 61  # past the expiry for the store, a minute before it for the server
            assert coll.find_one({"_id": "n:k"}) is not None  # the server has not swept yet
            assert await store.get("k") is None
        finally:
            client.drop_database(database)
            client.close()


# -- RedisKV ------------------------------------------------------------------------------


async def test_redis_keys_values_and_expiry_on_the_server(redis_server: RedisServer) -> None:
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(redis_server.url)
    async with kv.RedisKV(client, namespace="bot") as store:
        await store.set("state:1", "Form:name", ttl=30)
        await store.increment("hits")
        assert await client.get("bot:state:1") == b'"Form:name"'
        assert 20_000 < await client.pttl("bot:state:1") <= 30_000
        assert await client.get("bot:hits") == b"1"
        await client.set("bot:hits", "41")  # a counter written by someone else
        assert await store.increment("hits") == 42
        await store.clear()
    await client.aclose()


# -- serializers --------------------------------------------------------------------------


class PickleText:
    """A custom serializer (pickle is never the default, but can be chosen)."""

    def dumps(self, value: Any) -> str:
        return base64.b64encode(pickle.dumps(value)).decode()

    def loads(self, text: str) -> Any:
        return pickle.loads(base64.b64decode(text))


class Point:
    def __init__(self, x: int) -> None:
        self.x = x

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and other.x == self.x


async def test_a_custom_serializer_is_used(tmp_path: Path) -> None:
    async with kv.SQLiteKV(tmp_path / "s.db", serializer=PickleText()) as store:
        await store.set("p", Point(3))
        assert await store.get("p") == Point(3)
        assert await store.compare_and_set("p", Point(4), expected=Point(3))
        assert await store.increment("n") == 1  # integers stay integers
    async with kv.SQLiteKV(tmp_path / "s.db") as plain:
        with pytest.raises(kv.CorruptValueError):
            await plain.get("p")  # JSON cannot read it; reported, not a crash
        assert await plain.get("n") == 1


async def test_a_serializer_writing_integer_literals_is_refused() -> None:
    class Str:
        def dumps(self, value: Any) -> str:
            return str(value)

        def loads(self, text: str) -> Any:
            return text

    async with kv.MemoryKV(serializer=Str()) as store:
        await store.set("a", "abc")
        with pytest.raises(kv.KVSerializationError):
            await store.set("b", "123")  # would read back as the integer 123
    with pytest.raises(kv.InvalidArgumentError):
        kv.MemoryKV(serializer=object())  # type: ignore[arg-type]


def test_pickle_is_not_the_default() -> None:
    assert kv.MemoryKV().serializer is kv.JSON
    with pytest.raises(kv.KVSerializationError):
        kv.MemoryKV()._encode("k", Point(1))


@pytest.mark.parametrize("namespace", ["", "a:b", "a b", "x" * 65, 5, "bot*"])
def test_bad_namespaces_are_refused(namespace: Any, tmp_path: Path) -> None:
    with pytest.raises(kv.InvalidArgumentError):
        kv.SQLiteKV(tmp_path / "s.db", namespace=namespace)


def test_from_url_locations(tmp_path: Path) -> None:
    store = kv.from_url(f"sqlite:{tmp_path / 's.db'}#fsm")
    assert isinstance(store, kv.SQLiteKV) and store.namespace == "fsm"
    store = kv.from_url(f"json:{tmp_path / 's.json'}")
    assert isinstance(store, kv.JSONFileKV) and store.namespace == "default"
    mongo = kv.from_url("mongodb://127.0.0.1:1/bots#states/fsm")
    assert (mongo.database, mongo.collection, mongo.namespace) == ("bots", "states", "fsm")  # type: ignore[attr-defined]
    assert isinstance(kv.from_url("memory:"), kv.MemoryKV)
    assert isinstance(kv.from_url("bot.db"), kv.SQLiteKV)  # a bare path, as for sessions
    for bad in ("ftp://x", "sqlite:", "json:", "memory:x"):
        with pytest.raises(kv.InvalidArgumentError):
            kv.from_url(bad)


async def test_redis_outage_is_a_backend_error_and_aof_keeps_the_data(tmp_path: Path) -> None:
    with RedisServer(tmp_path / "aof", appendonly=True) as server:
        async with kv.RedisKV.from_url(server.url, namespace="aof") as store:
            await store.set("k", {"kept": True})
            await store.increment("n", 5)
            server.stop()
            with pytest.raises(kv.BackendError):
                await store.get("k")
            with pytest.raises(kv.BackendError):
                await store.health()
            server.start()
            assert await store.get("k") == {"kept": True}  # the client reconnects
            assert await store.increment("n") == 6


@pytest.mark.parametrize("driver", ["redis", "valkey"])
async def test_redis_command_connection_lost_and_back(
    redis_server: RedisServer, driver: str
) -> None:
    """One-key commands go over a connection of the store's own; killed (CLIENT KILL),
    the driver's client serves every call until it is back, and nothing is lost."""
    import redis.asyncio

    from pyrogram_storage.kv.redisdb import LANE_NAME

    namespace = f"lane{uuid.uuid4().hex[:12]}"
    admin = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        async with kv.RedisKV.from_url(
            redis_server.url, namespace=namespace, driver=driver
        ) as store:
            lane = store._lane
            assert lane is not None and lane.live and lane.client_id is not None
            await store.set("k", {"a": 1}, ttl=600)
            assert await store.merge("k", {"b": 2}) == {"a": 1, "b": 2}
            names = {c["id"]: c["name"] for c in await admin.client_list()}
            assert names[str(lane.client_id)] == LANE_NAME
            assert await admin.client_kill_filter(_id=lane.client_id) == 1
            for _ in range(100):  # the loss is heard when the loop reads the socket
                if not lane.live:
                    break
                await asyncio.sleep(0.01)
            assert not lane.live
            assert await store.get("k") == {"a": 1, "b": 2}
            assert await store.merge("k", {"c": 3}, ttl=600) == {"a": 1, "b": 2, "c": 3}
            assert await store.increment("n", 2) == 2
            assert await store.compare_and_set("n", 5, expected=2)
            assert await store.delete("n")
            for _ in range(300):
                if lane.live:
                    break
                await asyncio.sleep(0.1)
            assert lane.live
            assert await store.get("k") == {"a": 1, "b": 2, "c": 3}
            assert await store.increment("n") == 1
            assert 0 < await admin.pttl(f"{namespace}:k") <= 600_000
    finally:
        await admin.aclose()


async def test_redis_command_connection_only_where_the_client_says_where(
    redis_server: RedisServer,
) -> None:
    """A client whose connections are of a class of its own (Sentinel's, a user's) may
    go elsewhere than its options say: no command connection, the client serves all."""
    import redis.asyncio

    class Counted(redis.asyncio.Connection):
        sent = 0

        async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            Counted.sent += 1
            await super().send_packed_command(command, check_health)

    plain = redis.asyncio.Redis.from_url(redis_server.url)
    custom = redis.asyncio.Redis.from_url(redis_server.url, connection_class=Counted)
    try:
        async with kv.RedisKV(plain, namespace=f"own{uuid.uuid4().hex[:8]}") as store:
            assert store._lane is not None
        for cache in (False, True):
            store = kv.RedisKV(custom, namespace=f"own{uuid.uuid4().hex[:8]}", client_cache=cache)
            async with store:
                assert store._lane is None and store._tracker is None
                before = Counted.sent
                await store.set("k", {"a": 1})
                assert await store.get("k") == {"a": 1}
                assert Counted.sent - before == 2
    finally:
        await plain.aclose()
        await custom.aclose()


@pytest.mark.parametrize("operation", ["get", "set", "merge", "compare_and_set"])
async def test_redis_client_cache_keeps_no_reply_overtaken_by_an_invalidation(
    redis_server: RedisServer, operation: str
) -> None:
    """A reply and the invalidation of another client's later write can arrive in one
    read of the tracking connection: the reply is then not kept (it was, and the next
    get returned the overtaken value)."""
    namespace = f"cco{uuid.uuid4().hex[:12]}"
    one = kv.RedisKV.from_url(redis_server.url, namespace=namespace, client_cache=True)
    two = kv.RedisKV.from_url(redis_server.url, namespace=namespace, client_cache=True)
    async with one, two:
        await two.set("k", {"n": -1})

        async def racing() -> Any:
            if operation == "get":
                return await one.get("k")
            if operation == "set":
                return await one.set("k", {"n": -2})
            if operation == "merge":
                return await one.merge("k", {"n": -3})
            return await one.compare_and_set("k", {"n": -4}, expected=await one.get("k"))

        for step in range(300):
            await asyncio.gather(racing(), two.set("k", {"n": step}))
            assert await two.get("k") == await one.get("k"), step


async def test_redis_first_calls_after_a_restart_succeed(tmp_path: Path) -> None:
    """A server restarted while the loop did not run: the command connection is dead
    without knowing it yet; the call it fails is sent again with the driver's client
    (as the driver retries after a lost connection of its own), and succeeds."""
    with RedisServer(tmp_path / "restart", appendonly=True) as server:
        async with kv.RedisKV.from_url(server.url, namespace="restart") as store:
            await store.set("k", {"kept": True})
            assert await store.increment("n", 5) == 5
            for call, expected in (
                (lambda: store.get("k"), {"kept": True}),
                (lambda: store.merge("k", {"more": 1}), {"kept": True, "more": 1}),
                (lambda: store.increment("n"), 6),
            ):
                lane = store._lane
                assert lane is not None and lane.live
                server.stop()
                server.start()
                assert await call() == expected
                for _ in range(300):  # back in the background
                    if lane.live:
                        break
                    await asyncio.sleep(0.05)


async def test_redis_client_cache_merges_are_seen_by_both_stores(
    redis_server: RedisServer,
) -> None:
    """client_cache: merges run on the tracking connection; two stores merging in turn
    never read a stale dict, and a merge into what is not a dict is refused."""
    namespace = f"ccm{uuid.uuid4().hex[:12]}"
    one = kv.RedisKV.from_url(redis_server.url, namespace=namespace, client_cache=True)
    two = kv.RedisKV.from_url(redis_server.url, namespace=namespace, client_cache=True)
    async with one, two:
        assert one._tracker is not None and two._tracker is not None
        for step in range(200):
            writer, reader = (one, two) if step % 2 else (two, one)
            merged = await writer.merge("k", {"step": step, f"by{step % 2}": step}, ttl=600)
            assert merged["step"] == step
            assert await writer.get("k") == merged
            assert await reader.get("k") == merged, step
            assert await writer.get("k") == merged  # held now (read), and still right
        await one.set("k", 7)
        with pytest.raises(kv.NotADictError):
            await two.merge("k", {"a": 1})
        assert await two.get("k") == 7
        await two.set("k", {"a": 1})
        assert await one.merge("k", {"b": 2}) == {"a": 1, "b": 2}
        assert (await two.records("k").__anext__()).expires is None  # merge without ttl
        assert await two.get("k") == {"a": 1, "b": 2}


async def test_queued_writes_survive_an_outage_and_are_stored_after_it(tmp_path: Path) -> None:
    """commit_interval: a batch the server cannot take stays pending, visible to reads;
    flush and writes say so until the server is back, then it is stored."""
    with RedisServer(tmp_path / "queue", appendonly=True) as server:
        store = kv.RedisKV.from_url(server.url, namespace="q", sole_writer=True, commit_interval=60)
        async with store:
            await store.set("a", 1)
            await store.set("b", {"x": 1}, ttl=600)
            server.stop()
            with pytest.raises(kv.BackendError, match="stay pending"):
                await store.flush()
            assert await store.get("a") == 1 and await store.get("b") == {"x": 1}
            with pytest.raises(kv.BackendError, match="could not be stored"):
                await store.set("c", 3)
            server.start()
            await store.flush()
            await store.set("c", 3)
        async with kv.RedisKV.from_url(server.url, namespace="q") as other:
            assert [await other.get(key) for key in "abc"] == [1, {"x": 1}, 3]
            assert (await other.records("b").__anext__()).expires is not None


@pytest.mark.postgres
async def test_postgres_queued_batch_survives_an_outage(tmp_path: Path) -> None:
    """PostgresKV writes a batch in one transaction: one the server refuses stays
    pending, whole, and is stored once the server is back."""
    from ..servers.pgserver import PostgresServer

    with PostgresServer() as server:
        url = server.url + ("&" if "?" in server.url else "?")
        store = kv.PostgresKV.from_url(
            url + "sole_writer=true&commit_interval=60", namespace="q", connect_timeout=2
        )
        async with store:
            await store.set("a", 1)
            await store.set("b", {"x": 1}, ttl=600)
            await store.flush()
            await store.set("a", 2)
            assert await store.delete("b")
            await store.set("c", [3])
            server.stop()
            with pytest.raises(kv.BackendError, match="stay pending"):
                await store.flush()
            assert [await store.get(key) for key in "abc"] == [2, None, [3]]
            server.start()
            await store.flush()
        async with kv.PostgresKV.from_url(server.url, namespace="q") as other:
            assert [await other.get(key) for key in "abc"] == [2, None, [3]]


async def test_close_says_when_queued_writes_are_lost(tmp_path: Path) -> None:
    with RedisServer(tmp_path / "lost") as server:
        store = kv.RedisKV.from_url(server.url, namespace="q", sole_writer=True, commit_interval=60)
        await store.open()
        await store.set("a", 1)
        server.stop()
        with pytest.raises(kv.BackendError, match="lost"):
            await store.close()
        assert not store.is_open


@pytest.mark.parametrize("driver", ["redis", "valkey"])
async def test_redis_silent_server_is_a_backend_error_within_two_timeouts(
    tmp_path: Path, driver: str
) -> None:
    """The client from_url builds does not time each reply (a timer per call cost a
    fifth of a GET); the store's watchdog keeps the bound: a server that stops
    answering (CLIENT PAUSE) fails the call within two socket_timeout periods, and the
    store works again once it answers."""
    import redis.asyncio

    with RedisServer(tmp_path / "silent") as server:
        store = kv.RedisKV.from_url(
            server.url,
            namespace="silent",
            driver=driver,
            client_options={"socket_timeout": 1.0},
        )
        async with store:
            await store.set("k", 1)
            assert store._client.connection_pool.connection_kwargs.get("socket_timeout") is None
            admin = redis.asyncio.Redis.from_url(server.url)
            try:
                pause = asyncio.create_task(admin.execute_command("CLIENT", "PAUSE", "6000", "ALL"))
                await asyncio.sleep(0.3)
                with pytest.raises(kv.BackendError):  # not the value, 6 s later
                    await store.get("k")
                await admin.execute_command("CLIENT", "UNPAUSE")
                await pause
                assert await store.get("k") == 1
                assert await store.increment("k") == 2
            finally:
                await admin.aclose()


def test_postgres_url_takes_sole_writer() -> None:
    url = "postgresql://u@127.0.0.1:1/db"
    assert kv.from_url(url + "?sole_writer=true&schema=s#ns").sole_writer is True
    store = kv.from_url(url + "?sole_writer=false")
    assert store.sole_writer is False and kv.from_url(url).sole_writer is False
    store = kv.from_url(url + "?sole_writer=true&commit_interval=0.05")
    assert store.commit_interval == 0.05 and kv.from_url(url).commit_interval == 0
    with pytest.raises(kv.InvalidArgumentError, match="sole_writer=True"):
        kv.from_url(url + "?commit_interval=0.05")
    for bad in ("soon", "-1", "nan"):
        with pytest.raises(kv.InvalidArgumentError):
            kv.from_url(url + "?sole_writer=true&commit_interval=" + bad)
    with pytest.raises(kv.InvalidArgumentError):
        kv.from_url(url + "?sole_writer=maybe")


# -- stored data of the wrong type (issue 20, item 7) ------------------------------------------


@pytest.mark.mongo
async def test_mongo_documents_of_the_wrong_type_are_corrupt_values(mongo_uri: str) -> None:
    """Before: a foreign document's value came back as str(value), a text expiry raised
    ValueError from float(); now reads say the data is damaged and change nothing."""
    import pymongo

    collection = f"bad_{uuid.uuid4().hex[:8]}"
    client: Any = pymongo.MongoClient(mongo_uri)
    coll = client["kv_tests"][collection]
    coll.insert_many(
        [
            {"_id": "n:document", "v": {"a": 1}, "e": None},
            {"_id": "n:float", "v": 2.5, "e": None},
            {"_id": "n:text-expiry", "v": '"x"', "e": "soon"},
        ]
    )
    try:
        async with kv.MongoKV.from_url(
            mongo_uri, database="kv_tests", collection=collection, namespace="n"
        ) as store:
            for key in ("document", "float", "text-expiry"):
                with pytest.raises(kv.CorruptValueError):
                    await store.get(key)
            with pytest.raises(kv.CorruptValueError):
                await store.has("text-expiry")
            assert coll.count_documents({}) == 3
            assert await store.delete("document") is True  # the way to get rid of it
            assert coll.count_documents({}) == 2
    finally:
        client.drop_database("kv_tests")
        client.close()


async def test_redis_bytes_that_are_not_utf8_are_corrupt_values(
    redis_server: RedisServer,
) -> None:
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(redis_server.url)
    await client.set("bin:bad", b"\xff\xfe")
    try:
        async with kv.RedisKV(client, namespace="bin") as store:
            with pytest.raises(kv.CorruptValueError):
                await store.get("bad")
            assert await client.get("bin:bad") == b"\xff\xfe"
            assert await store.delete("bad") is True
    finally:
        await client.aclose()


@pytest.mark.postgres
async def test_postgres_rows_of_the_wrong_shape_are_corrupt_values(postgres_server: Any) -> None:
    """A NaN expiry (double precision takes one) was live to the server's increment and
    expired to has(): every operation now refuses it as damaged and changes nothing."""
    import asyncpg

    table = f"bad_{uuid.uuid4().hex[:8]}"
    async with kv.PostgresKV.from_url(postgres_server.url, table=table, namespace="n") as store:
        await store.set("seed", 1)
        conn = await asyncpg.connect(postgres_server.url)
        try:
            rows = [("n", "nan-expiry", 1, None, float("nan")), ("n", "null", None, None, None)]
            await conn.executemany(
                f"INSERT INTO pyrogram_storage.{table} (ns, k, i, t, e) "
                "VALUES ($1, $2, $3, $4, $5)",
                rows,
            )
            for call in (store.get, store.has, store.increment):
                with pytest.raises(kv.CorruptValueError):
                    await call("nan-expiry")
            with pytest.raises(kv.CorruptValueError):
                await store.merge("nan-expiry", {"a": 1})
            with pytest.raises(kv.CorruptValueError):
                await store.get("null")
            select = f"SELECT k, i FROM pyrogram_storage.{table} ORDER BY k"
            expected = [("nan-expiry", 1), ("null", None), ("seed", 1)]
            assert [tuple(row) for row in await conn.fetch(select)] == expected
            assert await store.delete("nan-expiry") is True  # the way to get rid of it
            assert [tuple(row) for row in await conn.fetch(select)] == expected[1:]
        finally:
            await conn.execute(f"DROP TABLE pyrogram_storage.{table}")
            await conn.close()
