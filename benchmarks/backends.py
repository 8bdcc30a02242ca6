"""Our storages as the benchmarks build them, shared by every suite's code.

``worker.py`` (the cells and the dispatch), ``client_path.py`` (the update path) and
``host.py`` (many sessions) all build our storages and report versions through this
module, which imports none of them: the suites form no import cycle.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable
from pathlib import Path
from typing import Any

OPTIONS: dict[str, Any] = {}
"""Extra keyword arguments for our storages' constructors (``params["storage_options"]``),
set once by the worker before a suite runs."""


def version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def our_versions() -> dict[str, str | None]:
    return {"pyrogram_storage": version("pyrogram-storage"), "aiosqlite": version("aiosqlite")}


# -- our backends: one factory each; add a backend here (see systems.py) ---------------------


def _file(ps: Any, name: str, workdir: Path, uri: str | None, options: dict[str, Any]) -> Any:
    return ps.FileStorage(name, workdir, **options)


def _memory(ps: Any, name: str, workdir: Path, uri: str | None, options: dict[str, Any]) -> Any:
    return ps.MemoryStorage(name, **options)


def _mongo(ps: Any, name: str, workdir: Path, uri: str | None, options: dict[str, Any]) -> Any:
    from pymongo import AsyncMongoClient

    assert uri, "a MongoStorage needs --server-uri"
    return ps.MongoStorage(name, AsyncMongoClient(uri), **options)


def _redis(sole_writer: bool) -> Callable[[Any, str, Path, str | None, dict[str, Any]], Any]:
    def factory(ps: Any, name: str, workdir: Path, uri: str | None, options: dict[str, Any]) -> Any:
        assert uri, "a RedisStorage needs --server-uri"
        return ps.RedisStorage.from_url(
            uri, name=name, driver="redis", **{"sole_writer": sole_writer, **options}
        )

    return factory


def _postgres(sole_writer: bool) -> Callable[[Any, str, Path, str | None, dict[str, Any]], Any]:
    def factory(ps: Any, name: str, workdir: Path, uri: str | None, options: dict[str, Any]) -> Any:
        assert uri, "a PostgresStorage needs --server-uri"
        return ps.PostgresStorage.from_url(
            uri, name=name, **{"sole_writer": sole_writer, **options}
        )

    return factory


BENCH_KEY = bytes(range(32))
"""The raw key of the encrypted-file rows (``file-key``)."""
BENCH_PASSPHRASE = "benchmark passphrase"
"""The passphrase of ``file-passphrase`` (Argon2id with the default parameters)."""


def _encrypted_file(key: Any) -> Callable[[Any, str, Path, str | None, dict[str, Any]], Any]:
    def factory(ps: Any, name: str, workdir: Path, uri: str | None, options: dict[str, Any]) -> Any:
        return ps.FileStorage(name, workdir, **{"encryption_key": key, **options})

    return factory


OUR_BACKENDS: dict[str, Callable[[Any, str, Path, str | None, dict[str, Any]], Any]] = {
    "file": _file,
    "file-key": _encrypted_file(BENCH_KEY),
    "file-passphrase": _encrypted_file(BENCH_PASSPHRASE),
    "memory": _memory,
    "mongo": _mongo,
    "redis": _redis(sole_writer=False),
    "redis-sole": _redis(sole_writer=True),
    "postgres": _postgres(sole_writer=False),
    "postgres-sole": _postgres(sole_writer=True),
}
"""Backend key (``System.backend``) to ``factory(pyrogram_storage, name, workdir, uri,
options)`` returning a fresh, unopened storage."""

FILE_BACKENDS = ("file", "file-key", "file-passphrase")  # data in the workdir (size, reopen)
# whose data a new object sees
PERSISTENT_BACKENDS = (*FILE_BACKENDS, "mongo", "redis", "redis-sole", "postgres", "postgres-sole")


def our_storage(
    backend: str, name: str, workdir: Path, uri: str | None, options: dict[str, Any]
) -> Any:
    import pyrogram_storage as ps

    return OUR_BACKENDS[backend](ps, name, workdir, uri, options)


def commit_interval(storage: Any) -> Any:
    """The storage's ``commit_interval`` (the new engine has one; today's code has not)."""
    return getattr(storage, "commit_interval", None)
