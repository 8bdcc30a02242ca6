"""Optional drivers stay optional; Redis and Mongo clients are checked before use."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pyrogram_storage import kv
from pyrogram_storage.redisdb import client as redisdb

from ..missing_driver import missing_driver_error
from ..servers.redisserver import RedisCluster, RedisServer

ROOT = Path(__file__).resolve().parent.parent.parent
DRIVERS = "{'pymongo', 'motor', 'async_pymongo', 'bson', 'redis', 'valkey', 'asyncpg'}"


def test_import_kv_loads_no_driver() -> None:
    code = (
        "import sys\n"
        "import pyrogram_storage.kv as kv\n"
        "from pyrogram_storage.kv import MemoryKV, SQLiteKV, JSONFileKV, MongoKV, RedisKV\n"
        "from pyrogram_storage.kv import PostgresKV\n"
        "import pyrogram_storage.redisdb\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {DRIVERS})\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


@pytest.mark.parametrize(
    "blocked, build, extra",
    [
        ("redis", "kv.RedisKV.from_url('redis://127.0.0.1:1/0')", "redis"),
        ("valkey", "kv.RedisKV.from_url('redis://127.0.0.1:1/0', driver='valkey')", "valkey"),
        ("pymongo", "kv.MongoKV.from_url('mongodb://127.0.0.1:1/')", "mongo"),
        ("motor", "kv.MongoKV.from_url('mongodb://127.0.0.1:1/', driver='motor')", "motor"),
        ("redis", "kv.from_url('redis://127.0.0.1:1/0#bot')", "redis"),
        ("asyncpg", "kv.from_url('postgresql://127.0.0.1:1/db#bot')", "postgres"),
    ],
)
def test_a_missing_driver_names_its_extra(blocked: str, build: str, extra: str) -> None:
    got_extra, message = missing_driver_error(blocked, "from pyrogram_storage import kv", build)
    assert got_extra == extra
    assert f"pip install pyrogram-storage[{extra}]" in message


@pytest.mark.parametrize("driver", ["redis", "valkey"])
def test_synchronous_redis_clients_are_refused(driver: str, redis_server: RedisServer) -> None:
    module = __import__(driver)
    sync = (
        module.from_url(redis_server.url)
        if driver == "redis"
        else module.Valkey.from_url(redis_server.url)
    )
    try:
        with pytest.raises(TypeError, match="synchronous"):
            kv.RedisKV(sync)
    finally:
        sync.close()
    with pytest.raises(TypeError, match="redis-py or valkey"):
        kv.RedisKV(object())
    with pytest.raises(TypeError, match="from_url"):
        kv.RedisKV(None)
    with pytest.raises(TypeError, match="from_url"):
        kv.MongoKV(None)


async def test_given_clients_are_used_and_left_open(
    redis_server: RedisServer, redis_cluster: RedisCluster
) -> None:
    import redis.asyncio
    import valkey.asyncio

    clients: list[Any] = [
        redis.asyncio.Redis.from_url(redis_server.url),
        redis.asyncio.RedisCluster.from_url(redis_cluster.url),
        valkey.asyncio.Valkey.from_url(redis_server.url),
        valkey.asyncio.ValkeyCluster.from_url(redis_cluster.url),
    ]
    for client, cluster in zip(clients, [False, True, False, True], strict=True):
        assert redisdb.is_cluster(client) is cluster
        async with kv.RedisKV(client, namespace="given") as store:
            await store.set("k", 1)
            assert await store.increment("k") == 2
            assert await store.clear() == 1
        assert await client.ping()  # still usable: the caller owns it
        await client.aclose()


async def test_from_url_tells_a_cluster_from_a_single_server(
    redis_server: RedisServer, redis_cluster: RedisCluster
) -> None:
    for url, cluster in ((redis_server.url, False), (redis_cluster.url, True)):
        store = kv.RedisKV.from_url(url, namespace="probe")
        async with store:
            assert redisdb.is_cluster(store._client) is cluster
            assert repr(store).endswith(f"mode={'cluster' if cluster else 'single'!r})")


@pytest.mark.parametrize("url", ["http://x", "mongodb://x", 5, "redis-cluster://x"])
def test_bad_redis_urls_are_refused(url: Any) -> None:
    with pytest.raises(kv.InvalidArgumentError):
        kv.RedisKV.from_url(url)
    with pytest.raises(ValueError):
        redisdb.build_client(url)


async def test_an_unreachable_server_is_a_backend_error() -> None:
    store = kv.RedisKV.from_url(
        "redis://127.0.0.1:1/0", cluster=False, client_options={"socket_connect_timeout": 1}
    )
    with pytest.raises(kv.BackendError):
        await store.open()
    assert not store.is_open


def test_password_stays_out_of_repr() -> None:
    store = kv.RedisKV.from_url("redis://:hunter2@127.0.0.1:1/0")
    assert "hunter2" not in repr(store)
    mongo = kv.MongoKV.from_url("mongodb://u:hunter2@127.0.0.1:1/")
    assert "hunter2" not in repr(mongo)


def test_synchronous_mongo_client_is_refused() -> None:
    import pymongo

    client: Any = pymongo.MongoClient("mongodb://127.0.0.1:1/", connect=False)
    try:
        with pytest.raises(TypeError, match="synchronous"):
            kv.MongoKV(client)
    finally:
        client.close()
