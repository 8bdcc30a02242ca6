"""Fixtures of the bot-state tests: every backend, and the servers they need.

``make_kv(**options)`` builds a new, unopened store of the parametrized backend; every
call within one test reaches the same data (same file, same collection, same Redis),
in a namespace of its own, so a test can reopen it or put a second namespace beside it.
Servers are started once per test session, on 127.0.0.1, and stopped by PID: they are
the root conftest's ``mongo_uri``, ``redis_server`` and ``redis_cluster``, shared with
the session tests.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from pyrogram_storage import kv

KVMaker = Callable[..., kv.KVStore[Any]]


Factory = Callable[[pytest.FixtureRequest, Path, str], KVMaker]


def _memory(bounded: bool) -> Factory:
    def factory(request: pytest.FixtureRequest, tmp_path: Path, namespace: str) -> KVMaker:
        shared: dict[str, Any] = {}

        def make(**options: Any) -> kv.KVStore[Any]:
            # Memory has no shared data: a second object of a test is the same object.
            if "store" not in shared or options:
                store = kv.MemoryKV(10_000 if bounded else None, namespace=namespace, **options)
                if options:
                    return store
                shared["store"] = store
            return shared["store"]  # type: ignore[no-any-return]

        return make

    return factory


def _sqlite(memory: bool) -> Factory:
    def factory(request: pytest.FixtureRequest, tmp_path: Path, namespace: str) -> KVMaker:
        shared: dict[str, Any] = {}

        def make(**options: Any) -> kv.KVStore[Any]:
            if memory:
                if "store" not in shared or options:
                    store = kv.SQLiteKV(":memory:", namespace=namespace, **options)
                    if options:
                        return store
                    shared["store"] = store
                return shared["store"]  # type: ignore[no-any-return]
            options.setdefault("namespace", namespace)
            return kv.SQLiteKV(tmp_path / "state.db", **options)

        return make

    return factory


def _json(request: pytest.FixtureRequest, tmp_path: Path, namespace: str) -> KVMaker:
    def make(**options: Any) -> kv.KVStore[Any]:
        options.setdefault("namespace", namespace)
        return kv.JSONFileKV(tmp_path / "state.json", **options)

    return make


def _mongo(driver: str) -> Factory:
    def factory(request: pytest.FixtureRequest, tmp_path: Path, namespace: str) -> KVMaker:
        uri = request.getfixturevalue("mongo_uri")
        collection = f"kv_{uuid.uuid4().hex[:12]}"

        def make(**options: Any) -> kv.KVStore[Any]:
            options.setdefault("namespace", namespace)
            return kv.MongoKV.from_url(
                uri,
                database="kv_tests",
                collection=collection,
                driver=driver,
                client_options={"serverSelectionTimeoutMS": 10_000},
                **options,
            )

        return make

    return factory


def _redis(driver: str, cluster: bool) -> Factory:
    def factory(request: pytest.FixtureRequest, tmp_path: Path, namespace: str) -> KVMaker:
        server = request.getfixturevalue("redis_cluster" if cluster else "redis_server")

        def make(**options: Any) -> kv.KVStore[Any]:
            options.setdefault("namespace", namespace)
            return kv.RedisKV.from_url(server.url, driver=driver, cluster=cluster, **options)

        return make

    return factory


def _postgres(statement_cache_size: int | None) -> Factory:
    def factory(request: pytest.FixtureRequest, tmp_path: Path, namespace: str) -> KVMaker:
        server = request.getfixturevalue("postgres_server")

        def make(**options: Any) -> kv.KVStore[Any]:
            options.setdefault("namespace", namespace)
            if statement_cache_size is not None:
                options.setdefault("pool_options", {"statement_cache_size": statement_cache_size})
            return kv.PostgresKV.from_url(server.url, **options)

        return make

    return factory


BACKENDS: dict[str, Factory] = {
    "memory": _memory(False),
    "memory-bounded": _memory(True),
    "sqlite-file": _sqlite(False),
    "sqlite-memory": _sqlite(True),
    "json": _json,
    "mongo-pymongo": _mongo("pymongo"),
    "mongo-motor": _mongo("motor"),
    "mongo-async-pymongo": _mongo("async_pymongo"),
    "redis": _redis("redis", False),
    "redis-cluster": _redis("redis", True),
    "valkey": _redis("valkey", False),
    "valkey-cluster": _redis("valkey", True),
    "postgres": _postgres(None),
    "postgres-no-cache": _postgres(0),
}
SHARED = {"sqlite-file", "mongo-pymongo", "mongo-motor", "mongo-async-pymongo", "redis",
          "redis-cluster", "valkey", "valkey-cluster", "postgres", "postgres-no-cache"}
"""Backends where several objects (and processes) share one store."""
PERSISTENT = SHARED | {"json"}
"""Backends where a store reopened by a new object finds what the first one wrote."""
MARKS: dict[str, list[pytest.MarkDecorator]] = {
    **{name: [pytest.mark.mongo] for name in BACKENDS if name.startswith("mongo-")},
    **{name: [pytest.mark.postgres] for name in BACKENDS if name.startswith("postgres")},
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "kv_backend" in metafunc.fixturenames:
        metafunc.parametrize(
            "kv_backend",
            [pytest.param(name, marks=MARKS.get(name, [])) for name in BACKENDS],
        )


@pytest.fixture
def make_kv(request: pytest.FixtureRequest, kv_backend: str, tmp_path: Path) -> KVMaker:
    """Build stores of the parametrized backend sharing one namespace of this test."""
    namespace = f"t{uuid.uuid4().hex[:12]}"
    return BACKENDS[kv_backend](request, tmp_path, namespace)


@pytest.fixture
async def store(make_kv: KVMaker) -> AsyncIterator[kv.KVStore[Any]]:
    """An open store of each backend; closed afterwards."""
    opened = make_kv()
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()
