"""RedisStorage with the tools: the command line, copies through every kind of storage,
and secrets (no auth key in any log record of any logger, the drivers' DEBUG ones
included, nor in any repr or message).

``copy_session`` between Redis and every other backend runs in tests/test_tools.py.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from pyrogram_storage import (
    BackendError,
    FileStorage,
    MemoryStorage,
    Peer,
    PeerType,
    UpdateState,
    copy_session,
)
from pyrogram_storage.redisdb.storage import RedisStorage
from pyrogram_storage.tools.copy import opened

from .servers.redisserver import RedisCluster, RedisServer
from .test_cli import filled_file, no_secrets, run
from .test_redis import _writes_so_far, raw  # noqa: F401 - a fixture
from .test_secrets import STRING, Everything, all_logs, leaks  # noqa: F401 - a fixture
from .test_tools import fill, snapshot

pytestmark = pytest.mark.redis


def location_of(server: RedisServer | RedisCluster, name: str) -> str:
    return f"{server.url}#{name}"


@pytest.mark.parametrize("cluster", [False, True], ids=["single", "cluster"])
async def test_the_command_line_reads_and_writes_redis_locations(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    raw: Any,  # noqa: F811 - the fixture imported above
    cluster: bool,
) -> None:
    server = request.getfixturevalue("redis_cluster" if cluster else "redis_server")
    source = await filled_file(tmp_path)
    name = f"cli_{uuid.uuid4().hex[:12]}"
    location = location_of(server, name)
    copied = run("copy", source.path, location)
    assert copied.returncode == 0, copied.stderr
    before = await _writes_so_far(raw)
    report = json.loads(run("inspect", "--json", location).stdout)
    assert report["kind"] == "redis" and report["peers"] == 27 and report["update_states"] == 3
    plain = run("inspect", location)
    assert plain.returncode == 0 and f"#{name} (redis)" in plain.stdout, plain.stdout
    no_secrets(plain.stdout + plain.stderr)
    back = run("copy", location, tmp_path / "back")
    assert back.returncode == 0, back.stderr
    hidden = run("export-string", location)
    assert hidden.returncode != 0 or STRING not in hidden.stdout
    text = run("export-string", location, "--show-secret").stdout.strip()
    if not cluster:
        assert await _writes_so_far(raw) == before  # sources are read-only: not one write
    copy = FileStorage("back", tmp_path)
    async with opened(source), opened(copy):
        original = await snapshot(source)
        assert await snapshot(copy) == original
        assert text == await source.export_session_string()
    again = run("copy", source.path, location)
    assert again.returncode == 1 and "overwrite" in again.stderr
    missing = run("inspect", location_of(server, f"missing_{uuid.uuid4().hex[:8]}"))
    assert missing.returncode == 1 and "no Redis session" in missing.stderr, missing.stderr
    no_name = run("inspect", server.url)
    assert no_name.returncode == 2 and "#NAME" in no_name.stderr
    await RedisStorage.from_url(server.url, name=name).delete()


async def test_a_session_travels_file_redis_cluster_memory_string_file(
    tmp_path: Path, redis_server: RedisServer, redis_cluster: RedisCluster
) -> None:
    first = FileStorage("first", tmp_path)
    single = RedisStorage.from_url(redis_server.url, name=f"rt_{uuid.uuid4().hex[:12]}")
    spread = RedisStorage.from_url(redis_cluster.url, name=f"rt_{uuid.uuid4().hex[:12]}")
    memory = MemoryStorage("middle")
    async with opened(first):
        await fill(first, extra=300)
        original = await snapshot(first)
    try:
        await copy_session(first, single, batch_size=7)
        await copy_session(single, spread, batch_size=100)
        await copy_session(spread, memory, batch_size=11)
        for storage in (single, spread, memory):
            async with opened(storage):
                assert await snapshot(storage) == original
        async with opened(memory):
            text = await memory.export_session_string()
        last = FileStorage("last", tmp_path, session_string=text)
        async with opened(last):
            session = await last.get_session()
        carried = ("dc_id", "api_id", "test_mode", "auth_key", "user_id", "is_bot")
        assert {f: getattr(session, f) for f in carried} == {
            f: getattr(original[0], f) for f in carried
        }
    finally:
        await single.delete()
        await spread.delete()


@pytest.mark.parametrize("driver", ["redis", "valkey"])
@pytest.mark.parametrize("cluster", [False, True], ids=["single", "cluster"])
async def test_a_redis_lifecycle_leaks_no_key(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    all_logs: Everything,  # noqa: F811 - the fixture imported above
    driver: str,
    cluster: bool,
) -> None:
    """Every record of every logger at DEBUG, the drivers' included, through a whole
    lifecycle, a server outage while the key is being written, and the errors."""
    server = request.getfixturevalue("redis_cluster" if cluster else "redis_server")
    name = f"secret_{uuid.uuid4().hex[:12]}"
    storage = RedisStorage.from_url(
        server.url, name=name, driver=driver, cluster=cluster, session_string=STRING
    )
    texts: list[str] = []
    async with storage:
        await storage.upsert_peers(
            [Peer(i, i * 3, PeerType.USER, (f"user{i}",), f"1555{i:07d}") for i in range(1, 50)]
        )
        await storage.set_update_states([UpdateState(0, 1, 2, 3, 4)])
        await storage.save()
        texts += [repr(storage), str(storage), repr(await storage.get_session())]
        texts.append(repr(await storage.peer_by_username("user5")))
    async with RedisStorage.from_url(server.url, name=name, driver=driver) as again:
        assert await again.export_session_string() == STRING
        with pytest.raises(TypeError) as error:
            await again.update_session(auth_key="not bytes")
        texts.append(str(error.value))
    await storage.delete()
    with RedisServer(tmp_path / "outage") as own:
        doomed = RedisStorage.from_url(
            own.url,
            name=name,
            driver=driver,
            client_options={"socket_timeout": 1, "socket_connect_timeout": 1},
        )
        await doomed.open()
        own.stop()
        with pytest.raises(BackendError) as failed:
            await doomed.import_session_string(STRING)
        texts.append(str(failed.value))
        texts.append(repr(failed.value.__cause__))
        await doomed.close()
    assert all_logs.count > 0
    for text in texts + all_logs.texts:
        assert leaks(text) == [], text[:300]


@pytest.mark.clients
def test_the_benchmark_runs_the_redis_rows(
    tmp_path: Path, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cells and Kurigram's update path on RedisStorage, beside the anchors (no timings)."""
    from .test_benchmarks import _result, _run

    monkeypatch.setenv("PYROGRAM_STORAGE_REDIS_URL", redis_server.url)
    systems = (
        "kurigram-file",
        "ours-file",
        "ours-redis",
        "ours-redis-sole",
        "path-kurigram-file",
        "path-kurigram-ours-redis",
    )
    data, report = _run(tmp_path, systems)
    for system in ("ours-redis", "ours-redis-sole"):
        metrics = _result(data, system)["metrics"]
        for metric in ("ingest_100_us", "id_cached_us", "id_uncached_us", "username_us"):
            assert metrics[metric] > 0, (system, metric)
    path = _result(data, "path-kurigram-ours-redis")
    assert path["metrics"]["path_us"] > 0 and path["counts"]["pts_stored"] > 0
    assert "ours RedisStorage (shared: no peer cache) vs Kurigram file" in report
    assert "ours RedisStorage (sole_writer=True) vs ours FileStorage" in report
    assert data["servers"]["redis"] == "$PYROGRAM_STORAGE_REDIS_URL"
