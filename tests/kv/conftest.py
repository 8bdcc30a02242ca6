"""Fixtures of the bot-state tests: every backend, reached through ``kv.from_url``.

``make_kv(**options)`` builds a new, unopened store of the parametrized backend (see
``framework_backends.NAMES``: memory bounded and not, SQLite file and ``:memory:``,
JSON, MongoDB over three drivers, Redis and Valkey single and cluster) plus the
README's own ``DictKV``; every call within one test reaches the same data (the same
file, collection or server) in a namespace of its own. A backend's marks come from
its class: ``requires = "mongodb"`` marks its tests ``mongo``, ``requires = "redis"``
``redis``. Servers are the root conftest's ``mongo_uri``, ``redis_server`` and
``redis_cluster``, started once per test session on 127.0.0.1 and stopped by PID.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from pyrogram_storage import kv

from .framework_backends import NAMES, maker, store_class

KVMaker = Callable[..., kv.KVStore[Any]]

BACKENDS = list(NAMES)
"""The registry's stores as the tests reach them (one name per parametrized run)."""
USER_BACKENDS = ["readme"]
"""Stores outside the registry: the README's ``DictKV``."""
ALL_BACKENDS = [*BACKENDS, *USER_BACKENDS]

_MARK_OF_SERVER = {
    "mongodb": pytest.mark.mongo,
    "redis": pytest.mark.redis,
    "postgresql": pytest.mark.postgres,
}


def marks(name: str) -> list[pytest.MarkDecorator]:
    """The marks of a backend's tests, from the server its class requires."""
    if name not in BACKENDS:
        return []
    mark = _MARK_OF_SERVER.get(store_class(name).requires or "")
    return [] if mark is None else [mark]


def _servers(request: pytest.FixtureRequest, name: str) -> dict[str, str]:
    if name.startswith("mongo-"):
        return {"mongo": request.getfixturevalue("mongo_uri")}
    if name.startswith(("redis", "valkey")):
        fixture = "redis_cluster" if name.endswith("-cluster") else "redis_server"
        server = request.getfixturevalue(fixture)
        return {"redis-cluster" if name.endswith("-cluster") else "redis": server.url}
    if name.startswith("postgres"):
        return {"postgres": request.getfixturevalue("postgres_server").url}
    return {}


def make_kv_of(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> KVMaker:
    """Return the ``make_store`` of backend ``name`` for one test."""
    namespace = f"t{uuid.uuid4().hex[:12]}"
    if name == "readme":
        from ..readme_backend import dict_kv

        cls = dict_kv()
        return lambda **options: cls(**{"namespace": namespace, **options})  # type: ignore[no-any-return]
    return maker(name, tmp_path, _servers(request, name), namespace)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "race_backend" in metafunc.fixturenames:  # test_atomicity*.py
        metafunc.parametrize("race_backend", metafunc.module.RACE_BACKENDS)
    if "kv_backend" in metafunc.fixturenames:
        # A module may run its tests over a share of the backends (KV_BACKENDS): the
        # contract suite is split over modules so that parallel workers share it.
        names = getattr(metafunc.module, "KV_BACKENDS", ALL_BACKENDS)
        metafunc.parametrize(
            "kv_backend", [pytest.param(name, marks=marks(name)) for name in names]
        )


@pytest.fixture
def make_kv(request: pytest.FixtureRequest, kv_backend: str, tmp_path: Path) -> KVMaker:
    """Build stores of the parametrized backend sharing one namespace of this test."""
    return make_kv_of(kv_backend, request, tmp_path)


@pytest.fixture
async def store(make_kv: KVMaker) -> AsyncIterator[kv.KVStore[Any]]:
    """An open store of each backend; closed afterwards."""
    opened = make_kv()
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()
