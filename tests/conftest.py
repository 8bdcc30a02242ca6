"""Shared fixtures. The ``storage`` fixture runs the contract suite on every backend.

Backends register a factory in ``BACKENDS``: given pytest's ``request`` and a
per-test key, it returns a callable that builds a new, unopened storage; every
call for the same test points at the same stored data (the same file, database),
so tests can reopen a session through a second object.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pyrogram_storage import FileStorage, MemoryStorage, Storage

from .mongoserver import MongoServer, mongo_uri_from_env

StorageMaker = Callable[..., Storage]


def _file_backend(request: pytest.FixtureRequest, tmp_path: Path) -> StorageMaker:
    def make(**options: Any) -> Storage:
        return FileStorage("session", tmp_path, **options)

    return make


def _memory_backend(request: pytest.FixtureRequest, tmp_path: Path) -> StorageMaker:
    def make(**options: Any) -> Storage:
        return MemoryStorage("session", **options)

    return make


@pytest.fixture(scope="session")
def mongo_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A MongoDB URI: ``$PYROGRAM_STORAGE_MONGO_URI``, else a SecantusDB server for the run."""
    uri = mongo_uri_from_env()
    if uri is not None:
        yield uri
        return
    with MongoServer(tmp_path_factory.mktemp("mongo")) as server:
        yield server.uri


def _readme_backend(request: pytest.FixtureRequest, tmp_path: Path) -> StorageMaker:
    from .readme_backend import dict_storage

    cls = dict_storage()

    def make(**options: Any) -> Storage:
        return cls("session", **options)  # type: ignore[no-any-return]

    return make


def _mongo_backend(driver: str) -> Callable[[pytest.FixtureRequest, Path], StorageMaker]:
    def backend(request: pytest.FixtureRequest, tmp_path: Path) -> StorageMaker:
        from pyrogram_storage.mongo import MongoStorage

        uri = request.getfixturevalue("mongo_uri")
        database = f"t_{uuid.uuid4().hex[:16]}"  # a fresh database for every test
        request.addfinalizer(lambda: _drop_database(uri, database))

        def make(**options: Any) -> Storage:
            return MongoStorage.from_url(
                uri,
                name=database,
                driver=driver,
                client_options={"serverSelectionTimeoutMS": 10_000},
                **options,
            )

        return make

    return backend


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


BACKENDS: dict[str, Callable[[pytest.FixtureRequest, Path], StorageMaker]] = {
    "file": _file_backend,
    "memory": _memory_backend,
    "readme": _readme_backend,
    "mongo-pymongo": _mongo_backend("pymongo"),
    "mongo-motor": _mongo_backend("motor"),
    "mongo-async-pymongo": _mongo_backend("async_pymongo"),
}
PERSISTENT = {"file", "mongo-pymongo", "mongo-motor", "mongo-async-pymongo"}
"""Backends where a second object with the same name sees the first one's data."""
MARKS: dict[str, list[pytest.MarkDecorator]] = {
    name: [pytest.mark.mongo] for name in BACKENDS if name.startswith("mongo-")
}
"""Marks of each backend's tests, so e.g. ``-m "not mongo"`` leaves the server out."""


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize(
            "backend", [pytest.param(name, marks=MARKS.get(name, [])) for name in BACKENDS]
        )


@pytest.fixture
def make_storage(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> StorageMaker:
    """Build storages of the parametrized backend that share one session."""
    return BACKENDS[backend](request, tmp_path)


@pytest.fixture
async def storage(make_storage: StorageMaker) -> AsyncIterator[Storage]:
    """An open storage of each backend; closed (not deleted) afterwards."""
    store = make_storage()
    await store.open()
    try:
        yield store
    finally:
        await store.close()
