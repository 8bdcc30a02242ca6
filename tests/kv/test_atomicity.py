"""increment, compare_and_set and merge stay atomic with several processes on one store."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pyrogram_storage import kv

from . import atomic_worker

WORKER = Path(atomic_worker.__file__)
FULL = os.environ.get("PYROGRAM_STORAGE_FULL") == "1"
PROCESSES, TASKS, INCREMENTS = 4, 25, 200
ROUNDS = 60
SLOW_SERVER_INCREMENTS = INCREMENTS if FULL else 100
"""SecantusDB (the test MongoDB) takes ~200 s for the 20,000; the full run does them
(the default run's 20 tasks make 2,000, as 100 tasks of 20 did)."""
SLOW_SERVER_ROUNDS = ROUNDS if FULL else 20
"""Every round, all 100 tasks read the token and try to advance it: 60 rounds are
~25,000 requests, a minute of SecantusDB's CPU; the full run does them."""
SLOW_SERVER_TASKS = TASKS if FULL else 5
"""100 writers of one document, started together, keep SecantusDB from answering its
drivers' heartbeats on a loaded machine (the drivers then drop their connections); 20
still race. The full run has the 100."""


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


class Racers:
    """``PROCESSES`` worker processes (``atomic_worker.py``) that serve every race of the
    module: the interpreter and the drivers load once, not once per race. They start each
    race together, when all of them have the store open."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.procs: list[subprocess.Popen[str]] = []

    def _spawn(self, index: int) -> subprocess.Popen[str]:
        with open(self.folder / f"racer{index}.err", "ab") as errors:
            return subprocess.Popen(
                [sys.executable, str(WORKER)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
                text=True,
                bufsize=1,
            )

    def _line(self, index: int, deadline: float) -> str:
        proc = self.procs[index]
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        line = proc.stdout.readline() if ready else ""
        if not line:
            error = (self.folder / f"racer{index}.err").read_text(errors="replace")
            raise AssertionError(f"racer {index} stopped or timed out:\n{error[-4000:]}")
        return line.strip()

    def race(self, location: str, mode: str, count: int, tasks: int) -> list[dict[str, list[Any]]]:
        try:
            return self._race(location, mode, count, tasks)
        except BaseException:
            self._kill()  # the next race starts from fresh processes, no stale line between
            raise

    def _race(self, location: str, mode: str, count: int, tasks: int) -> list[dict[str, list[Any]]]:
        while len(self.procs) < PROCESSES:
            self.procs.append(self._spawn(len(self.procs)))
        job = json.dumps({"location": location, "mode": mode, "tasks": tasks, "count": count})
        deadline = time.monotonic() + 400
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write(job + "\n")
            proc.stdin.flush()
        for index in range(PROCESSES):
            assert self._line(index, deadline) == "ready"
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        return [json.loads(self._line(index, deadline)) for index in range(PROCESSES)]

    def _kill(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait()
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()
        self.procs = []

    def close(self) -> None:
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.close()
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def racers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Racers]:
    pool = Racers(tmp_path_factory.mktemp("racers"))
    try:
        yield pool
    finally:
        pool.close()


RACE_BACKENDS = [
    pytest.param("sqlite"),
    pytest.param("redis"),
    pytest.param("redis-cluster"),
    pytest.param("postgres", marks=pytest.mark.postgres),
]
"""The stores these races run on here; MongoDB's run in ``test_atomicity_mongo.py`` (the
slowest: a module of its own, for another parallel worker). ``conftest`` parametrizes
``race_backend`` with the list of the module a test is collected in."""


async def _read(location: str, *keys: str) -> list[Any]:
    async with kv.from_url(location) as store:
        values = [await store.get(key) for key in keys]
        await store.clear()
    return values


async def test_increments_from_four_processes_add_up(
    race_backend: str, racers: Racers, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    location = _location(race_backend, request, tmp_path)
    count = SLOW_SERVER_INCREMENTS if race_backend == "mongo" else INCREMENTS
    tasks = SLOW_SERVER_TASKS if race_backend == "mongo" else TASKS
    results = racers.race(location, "increment", count, tasks)
    returned = sorted(value for result in results for value in result["returned"])
    total = PROCESSES * tasks * count
    assert returned == list(range(1, total + 1))  # every increment saw its own value
    assert await _read(location, "counter") == [total]


async def test_racing_compare_and_set_has_one_winner_per_round(
    race_backend: str, racers: Racers, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    location = _location(race_backend, request, tmp_path)
    rounds_ = SLOW_SERVER_ROUNDS if race_backend == "mongo" else ROUNDS
    tasks = SLOW_SERVER_TASKS if race_backend == "mongo" else TASKS
    results = racers.race(location, "cas", rounds_, tasks)
    rounds = sorted(round_ for result in results for round_ in result["rounds"])
    tokens = sorted(token for result in results for token in result["tokens"])
    assert rounds == list(range(rounds_))
    assert tokens == list(range(rounds_))
    assert await _read(location, "token") == [rounds_]


async def test_merges_from_four_processes_all_land(
    race_backend: str, racers: Racers, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    location = _location(race_backend, request, tmp_path)
    count = 20 if FULL else 5  # each merge rewrites the whole dict: it grows to 500 keys
    # MongoKV merges by compare-and-set, retried: 100 writers of one key starve some of
    # them (MergeConflictError) on the slow test server; 20 still race.
    tasks = 5 if race_backend == "mongo" else TASKS
    results = racers.race(location, "merge", count, tasks)
    merged = sorted(name for result in results for name in result["merged"])
    assert len(merged) == PROCESSES * tasks * count
    [stored] = await _read(location, "dict")
    assert sorted(stored) == merged
    assert all(stored[name] == int(name.rsplit(":", 1)[1]) for name in merged)
