"""Every kv backend of ``tests/kv/conftest.py``, built by name inside a framework venv.

The framework scripts (``run_kurigram_addons.py``, ``run_aiogram.py``) and the
framework benchmark run in their framework's virtualenv, outside pytest, so they
cannot use the conftest's fixtures; this module builds the same backends from the
servers' URLs the test session (or the benchmark) started. ``tests/kv/test_frameworks.py``
checks that the names here are exactly the conftest's.

``maker(name, workdir, servers, namespace)(**options)`` builds a new, unopened store;
as in the conftest, every call reaches the same data (memory: the same object unless
options are given), in ``namespace``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyrogram_storage import kv

NAMES = (
    "memory",
    "memory-bounded",
    "sqlite-file",
    "sqlite-memory",
    "json",
    "mongo-pymongo",
    "mongo-motor",
    "mongo-async-pymongo",
    "redis",
    "redis-cluster",
    "valkey",
    "valkey-cluster",
    "postgres",
    "postgres-no-cache",
)
GROUPS = {
    "local": ("memory", "memory-bounded", "sqlite-file", "sqlite-memory", "json"),
    "redis": ("redis", "redis-cluster", "valkey", "valkey-cluster"),
    "mongo": ("mongo-pymongo", "mongo-motor", "mongo-async-pymongo"),
    "postgres": ("postgres", "postgres-no-cache"),
}
"""Backends by the server they need (local: none)."""
SHARED = frozenset(
    {"sqlite-file", "mongo-pymongo", "mongo-motor", "mongo-async-pymongo", "redis",
     "redis-cluster", "valkey", "valkey-cluster", "postgres", "postgres-no-cache"}
)
"""Backends where two store objects (and processes) share the data."""
PERSISTENT = SHARED | {"json"}
"""Backends where a store reopened by a new object finds what the first one wrote."""

Maker = Callable[..., kv.KVStore[Any]]


def maker(name: str, workdir: Path, servers: dict[str, str], namespace: str) -> Maker:
    """Return ``make(**options)`` for backend ``name``; ``servers`` holds the URLs."""
    shared: dict[str, kv.KVStore[Any]] = {}

    def single(build: Callable[..., kv.KVStore[Any]]) -> Maker:
        def make(**options: Any) -> kv.KVStore[Any]:
            if options:
                return build(**options)
            if "store" not in shared:
                shared["store"] = build()
            return shared["store"]

        return make

    if name == "memory":
        return single(lambda **o: kv.MemoryKV(namespace=namespace, **o))
    if name == "memory-bounded":
        return single(lambda **o: kv.MemoryKV(10_000, namespace=namespace, **o))
    if name == "sqlite-memory":
        return single(lambda **o: kv.SQLiteKV(":memory:", namespace=namespace, **o))
    if name == "sqlite-file":
        return lambda **o: kv.SQLiteKV(workdir / "state.db", **{"namespace": namespace, **o})
    if name == "json":
        return lambda **o: kv.JSONFileKV(workdir / "state.json", **{"namespace": namespace, **o})
    if name.startswith("mongo-"):
        collection = f"kv_{uuid.uuid4().hex[:12]}"
        driver = name.removeprefix("mongo-").replace("-", "_")
        return lambda **o: kv.MongoKV.from_url(
            servers["mongo"],
            database="kv_framework_tests",
            collection=collection,
            driver=driver,
            client_options={"serverSelectionTimeoutMS": 10_000},
            **{"namespace": namespace, **o},
        )
    if name.startswith(("redis", "valkey")):
        cluster = name.endswith("-cluster")
        driver = name.removesuffix("-cluster")
        url = servers["redis-cluster" if cluster else "redis"]
        return lambda **o: kv.RedisKV.from_url(
            url, driver=driver, cluster=cluster, **{"namespace": namespace, **o}
        )
    if name.startswith("postgres"):
        pool = {"statement_cache_size": 0} if name == "postgres-no-cache" else {}
        return lambda **o: kv.PostgresKV.from_url(
            servers["postgres"], pool_options=pool, **{"namespace": namespace, **o}
        )
    raise KeyError(f"unknown backend {name!r}")
