"""increment, compare_and_set and merge stay atomic with several processes on one store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from pyrogram_storage import kv

from . import atomic_worker

WORKER = Path(atomic_worker.__file__)
FULL = os.environ.get("PYROGRAM_STORAGE_FULL") == "1"
PROCESSES, TASKS, INCREMENTS = 4, 25, 200
ROUNDS = 60
SLOW_SERVER_INCREMENTS = INCREMENTS if FULL else 20
"""SecantusDB (the test MongoDB) takes ~200 s for the 20,000; the full run does them."""


def _location(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    namespace = f"race{uuid.uuid4().hex[:10]}"
    if backend == "sqlite":
        return f"sqlite:{tmp_path / 'race.db'}#{namespace}"
    if backend == "mongo":
        uri = request.getfixturevalue("mongo_uri")
        base, _, query = uri.partition("?")
        return f"{base.rstrip('/')}/kv_tests?{query}#race/{namespace}"
    if backend == "postgres":
        return f"{request.getfixturevalue('postgres_server').url}#{namespace}"
    fixture = "redis_cluster" if backend == "redis-cluster" else "redis_server"
    server = request.getfixturevalue(fixture)
    return f"{server.url}#{namespace}"


def _race(location: str, mode: str, count: int, tasks: int = TASKS) -> list[dict[str, list[Any]]]:
    start = time.time() + 3.0  # every process is open and waiting by then
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), location, mode, str(tasks), str(count), str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=400)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    return results


BACKENDS = [
    pytest.param("sqlite"),
    pytest.param("mongo", marks=pytest.mark.mongo),
    pytest.param("redis"),
    pytest.param("redis-cluster"),
    pytest.param("postgres", marks=pytest.mark.postgres),
]


async def _read(location: str, *keys: str) -> list[Any]:
    async with kv.from_url(location) as store:
        values = [await store.get(key) for key in keys]
        await store.clear()
    return values


@pytest.mark.parametrize("race_backend", BACKENDS)
async def test_increments_from_four_processes_add_up(
    race_backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    location = _location(race_backend, request, tmp_path)
    count = SLOW_SERVER_INCREMENTS if race_backend == "mongo" else INCREMENTS
    results = _race(location, "increment", count)
    returned = sorted(value for result in results for value in result["returned"])
    total = PROCESSES * TASKS * count
    assert returned == list(range(1, total + 1))  # every increment saw its own value
    assert await _read(location, "counter") == [total]


@pytest.mark.parametrize("race_backend", BACKENDS)
async def test_racing_compare_and_set_has_one_winner_per_round(
    race_backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    location = _location(race_backend, request, tmp_path)
    results = _race(location, "cas", ROUNDS)
    rounds = sorted(round_ for result in results for round_ in result["rounds"])
    tokens = sorted(token for result in results for token in result["tokens"])
    assert rounds == list(range(ROUNDS))
    assert tokens == list(range(ROUNDS))
    assert await _read(location, "token") == [ROUNDS]


@pytest.mark.parametrize("race_backend", BACKENDS)
async def test_merges_from_four_processes_all_land(
    race_backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    location = _location(race_backend, request, tmp_path)
    count = 20 if FULL else 5  # each merge rewrites the whole dict: it grows to 500 keys
    # MongoKV merges by compare-and-set, retried: 100 writers of one key starve some of
    # them (MergeConflictError) on the slow test server; 20 still race.
    tasks = 5 if race_backend == "mongo" else TASKS
    results = _race(location, "merge", count, tasks)
    merged = sorted(name for result in results for name in result["merged"])
    assert len(merged) == PROCESSES * tasks * count
    [stored] = await _read(location, "dict")
    assert sorted(stored) == merged
    assert all(stored[name] == int(name.rsplit(":", 1)[1]) for name in merged)
