"""Shared fixtures. The ``storage`` fixture runs the contract suite on every backend.

Backends register a factory in ``BACKENDS``: given pytest's ``request`` and a
per-test key, it returns a callable that builds a new, unopened storage; every
call for the same test points at the same stored data (the same file, database),
so tests can reopen a session through a second object.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from pyrogram_storage import FileStorage, MemoryStorage, Storage

StorageMaker = Callable[..., Storage]


def _file_backend(request: pytest.FixtureRequest, tmp_path: Path) -> StorageMaker:
    def make(**options: Any) -> Storage:
        return FileStorage("session", tmp_path, **options)

    return make


def _memory_backend(request: pytest.FixtureRequest, tmp_path: Path) -> StorageMaker:
    def make(**options: Any) -> Storage:
        return MemoryStorage("session", **options)

    return make


BACKENDS: dict[str, Callable[[pytest.FixtureRequest, Path], StorageMaker]] = {
    "file": _file_backend,
    "memory": _memory_backend,
}
PERSISTENT = {"file"}
"""Backends where a second object with the same name sees the first one's data."""


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", list(BACKENDS))


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
