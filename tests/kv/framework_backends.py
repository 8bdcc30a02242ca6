"""Every kv backend the tests run, by name: a location for ``kv.from_url`` and options.

``tests/kv/conftest.py`` feeds the shipped contract suite from here, and the framework
scripts (``run_kurigram_addons.py``, ``run_aiogram.py``) and the framework benchmark,
which run in their framework's virtualenv outside pytest, build the same stores from
the servers' URLs the test session (or the benchmark) started.

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
    "redis-client-cache",
    "postgres",
    "postgres-no-cache",
)
GROUPS = {
    "local": ("memory", "memory-bounded", "sqlite-file", "sqlite-memory", "json"),
    "redis": ("redis", "redis-cluster", "valkey", "valkey-cluster", "redis-client-cache"),
    "mongo": ("mongo-pymongo", "mongo-motor", "mongo-async-pymongo"),
    "postgres": ("postgres", "postgres-no-cache"),
}
"""Backends by the server they need (local: none)."""
SHARED = frozenset(
    {
        "sqlite-file",
        "mongo-pymongo",
        "mongo-motor",
        "mongo-async-pymongo",
        "redis",
        "redis-cluster",
        "valkey",
        "valkey-cluster",
        "redis-client-cache",
        "postgres",
        "postgres-no-cache",
    }
)
"""Backends where two store objects (and processes) share the data."""
PERSISTENT = SHARED | {"json"}
"""Backends where a store reopened by a new object finds what the first one wrote."""

Maker = Callable[..., kv.KVStore[Any]]

EXAMPLE_SERVERS = {
    "mongo": "mongodb://127.0.0.1:27017/",
    "redis": "redis://127.0.0.1:6379/0",
    "redis-cluster": "redis://127.0.0.1:7000/0",
    "postgres": "postgresql://postgres@127.0.0.1:5432/postgres",
}
"""Server URLs of the right kinds, for what a backend is without its servers (its class)."""


def spec(name: str, workdir: Path, servers: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """The location of backend ``name`` for :func:`kv.from_url`, and its options."""
    if name == "memory":
        return "memory:", {}
    if name == "memory-bounded":
        return "memory:", {"max_entries": 10_000}
    if name == "sqlite-memory":
        return "sqlite::memory:", {}
    if name == "sqlite-file":
        return f"sqlite:{workdir / 'state.db'}", {}
    if name == "json":
        return f"json:{workdir / 'state.json'}", {}
    if name.startswith("mongo-"):
        return servers["mongo"], {
            "database": "kv_tests",
            "collection": f"kv_{uuid.uuid4().hex[:12]}",  # a collection of its own per maker
            "driver": name.removeprefix("mongo-").replace("-", "_"),
            "client_options": {"serverSelectionTimeoutMS": 10_000},
        }
    if name == "redis-client-cache":
        return servers["redis"], {"driver": "redis", "cluster": False, "client_cache": True}
    if name.startswith(("redis", "valkey")):
        cluster = name.endswith("-cluster")
        url = servers["redis-cluster" if cluster else "redis"]
        return url, {"driver": name.removesuffix("-cluster"), "cluster": cluster}
    if name.startswith("postgres"):
        # Behind a transaction-mode pooler prepared statements do not survive: the
        # second runs the contract that way.
        pool = {"statement_cache_size": 0} if name == "postgres-no-cache" else {}
        return servers["postgres"], {"pool_options": pool}
    raise KeyError(f"unknown backend {name!r}")


def store_class(name: str) -> type[kv.KVStore[Any]]:
    """The class backend ``name`` builds (its ``requires`` says which server it needs)."""
    from pyrogram_storage.registry import store_class as of

    return of(spec(name, Path("."), EXAMPLE_SERVERS)[0])


def maker(name: str, workdir: Path, servers: dict[str, str], namespace: str) -> Maker:
    """Return ``make(**options)`` for backend ``name``; ``servers`` holds the URLs.

    Stores of memory backends are one object unless options are given, so that every
    call reaches the same data there too.
    """
    location, fixed = spec(name, workdir, servers)

    def build(**options: Any) -> kv.KVStore[Any]:
        return kv.from_url(location, **{"namespace": namespace, **fixed, **options})

    if name not in ("memory", "memory-bounded", "sqlite-memory"):
        return build
    shared: dict[str, kv.KVStore[Any]] = {}

    def single(**options: Any) -> kv.KVStore[Any]:
        if options:
            return build(**options)
        if "store" not in shared:
            shared["store"] = build()
        return shared["store"]

    return single
