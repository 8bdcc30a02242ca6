"""PostgresStorage with the tools: the command line (no password in its output), copies
through other storages, and sessions of ``pyrogram-asyncpg-storage`` moved over in one
command (written by the real library, in the Pyrogram 2.0.106 venv).
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
    InvalidValueError,
    MemoryStorage,
    Peer,
    PeerType,
    ReadOnlyError,
    UpdateState,
    copy_session,
    from_url,
)
from pyrogram_storage.postgres import PostgresStorage
from pyrogram_storage.postgres.foreign import AsyncpgStorageSource
from pyrogram_storage.tools.copy import opened

from .clientenv import run_in_env
from .servers.pgserver import PostgresServer
from .test_cli import filled_file, no_secrets, run
from .test_clients import _install
from .test_secrets import STRING, Everything, all_logs, leaks  # noqa: F401 - a fixture
from .test_tools import fill, snapshot

pytestmark = pytest.mark.postgres

KEY = bytes(range(256))


def with_password(server: PostgresServer) -> str:
    """The server's URL with a password in it (trust authentication ignores it)."""
    return f"postgresql://postgres:pw_s3cret@{server.host}:{server.port}/postgres"


async def test_the_command_line_reads_and_writes_postgres_locations(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    source = await filled_file(tmp_path)
    name = f"cli_{uuid.uuid4().hex[:12]}"
    location = f"{with_password(postgres_server)}?schema=cli_tests#{name}"
    copied = run("copy", source.path, location)
    assert copied.returncode == 0, copied.stderr
    report = json.loads(run("inspect", "--json", location).stdout)
    assert report["peers"] == 27 and report["update_states"] == 3, report
    plain = run("inspect", location)
    assert plain.returncode == 0, plain.stderr
    for output in (copied, plain):
        no_secrets(output.stdout + output.stderr)
        assert "pw_s3cret" not in output.stdout + output.stderr
    back = run("copy", location, tmp_path / "back")
    assert back.returncode == 0, back.stderr
    copy = FileStorage("back", tmp_path)
    async with opened(source), opened(copy):
        assert await snapshot(copy) == await snapshot(source)
    again = run("copy", source.path, location)
    assert again.returncode == 1 and "overwrite" in again.stderr
    missing = run("inspect", f"{with_password(postgres_server)}#missing_{uuid.uuid4().hex[:6]}")
    assert missing.returncode == 1 and "pw_s3cret" not in missing.stderr
    await from_url(location).delete()


async def test_a_session_travels_file_postgres_memory_file(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    first = FileStorage("first", tmp_path)
    shared = from_url(f"{postgres_server.url}#rt_{uuid.uuid4().hex[:12]}")
    sole = from_url(f"{postgres_server.url}?sole_writer=1#rt_{uuid.uuid4().hex[:12]}")
    memory = MemoryStorage("middle")
    async with opened(first):
        await fill(first, extra=300)
        original = await snapshot(first)
    try:
        await copy_session(first, shared, batch_size=7)
        await copy_session(shared, sole, batch_size=100)
        await copy_session(sole, memory, batch_size=11)
        for storage in (shared, sole, memory):
            async with opened(storage):
                assert await snapshot(storage) == original
    finally:
        await shared.delete()
        await sole.delete()


_WRITE_WITH_ASYNCPG_STORAGE = """
import asyncio, json, sys
import asyncpg
from pyrogram_asyncpg_storage import PostgreSQLStorage

async def main():
    url, name = sys.argv[1], sys.argv[2]
    pool = await asyncpg.create_pool(url)
    storage = PostgreSQLStorage(name, pool)
    await storage.open()
    await storage.dc_id(4)
    await storage.api_id(12345)
    await storage.test_mode(0)
    await storage.auth_key(bytes(range(256)))
    await storage.user_id(777000)
    await storage.is_bot(False)
    await storage.update_peers([
        (1000 + n, n * 11, "user" if n % 3 else "bot", f"name{n}" if n % 2 else None,
         f"1555{n}" if n % 5 == 0 else None)
        for n in range(1, 301)
    ] + [(-1001234567890, 99, "channel", "somechannel", None)])
    await storage.save()
    print(json.dumps({"ok": True}))
    await pool.close()

asyncio.run(main())
"""


@pytest.mark.clients
async def test_a_pyrogram_asyncpg_storage_session_moves_over_in_one_command(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    _install("pyrogram", "pyrogram_asyncpg_storage", "pyrogram-asyncpg-storage==0.1")
    _install("pyrogram", "asyncpg", "asyncpg>=0.29")
    name = f"old_{uuid.uuid4().hex[:8]}"
    run_in_env("pyrogram", _WRITE_WITH_ASYNCPG_STORAGE, postgres_server.url, name)
    source = f"asyncpg-storage+{with_password(postgres_server)}#{name}"
    target = f"{with_password(postgres_server)}#{name}"
    result = run("copy", source, target)
    assert result.returncode == 0, result.stderr
    assert "pw_s3cret" not in result.stdout + result.stderr
    async with from_url(target) as moved:
        session = await moved.get_session()
        assert (session.dc_id, session.api_id, session.user_id) == (4, 12345, 777000)
        assert session.auth_key == KEY and session.test_mode is False and session.is_bot is False
        counts = await moved.count_peers_by_type()
        assert counts == {PeerType.USER: 200, PeerType.BOT: 100, PeerType.CHANNEL: 1}
        assert (await moved.peer_by_username("name3")).access_hash == 33
        assert (await moved.peer_by_username("@SomeChannel")).id == -1001234567890
        assert (await moved.peer_by_phone("+1555 5")).id == 1005
        assert (await moved.peer_by_id(1002)).usernames == ()
    # The source is read, never written: its tables are as the library left them.
    import asyncpg

    conn: Any = await asyncpg.connect(postgres_server.url)
    try:
        assert await conn.fetchval(f'SELECT count(*) FROM pyrogram."{name}:peers"') == 301
        assert await conn.fetchval(f'SELECT number FROM pyrogram."{name}:version"') == 1
    finally:
        await conn.close()
    reader = from_url(source)
    assert isinstance(reader, AsyncpgStorageSource) and reader.read_only
    async with reader:
        with pytest.raises(ReadOnlyError):
            await reader.update_session(dc_id=1)
    with pytest.raises(InvalidValueError, match="never written"):
        from_url(source, read_only=False)
    await PostgresStorage.from_url(postgres_server.url, name=name).delete()


async def test_a_missing_asyncpg_storage_session_is_a_clear_error(
    postgres_server: PostgresServer,
) -> None:
    result = run("inspect", f"asyncpg-storage+{with_password(postgres_server)}#nobody_here")
    assert result.returncode == 1 and "no pyrogram-asyncpg-storage session" in result.stderr
    assert "pw_s3cret" not in result.stderr


async def test_a_postgres_lifecycle_leaks_no_key(
    all_logs: Everything,  # noqa: F811 - the fixture imported above
    postgres_server: PostgresServer,
) -> None:
    """Every record of every logger at DEBUG, asyncpg's included, through a lifecycle,
    a shared reader's invalidations, a server outage while the key is written, errors."""
    name = f"secret_{uuid.uuid4().hex[:12]}"
    url = with_password(postgres_server)
    storage = PostgresStorage.from_url(url, name=name, session_string=STRING)
    texts: list[str] = []
    async with storage, PostgresStorage.from_url(url, name=name) as reader:
        await storage.upsert_peers(
            [Peer(i, i * 3, PeerType.USER, (f"user{i}",), f"1555{i:07d}") for i in range(1, 50)]
        )
        await storage.set_update_states([UpdateState(0, 1, 2, 3, 4)])
        await storage.save()
        texts += [repr(storage), str(storage), repr(await storage.get_session())]
        texts.append(repr(await reader.peer_by_username("user5")))
        assert await reader.export_session_string() == STRING
        with pytest.raises(TypeError) as error:
            await reader.update_session(auth_key="not bytes")
        texts.append(str(error.value))
    await storage.delete()
    with PostgresServer() as own:
        doomed = PostgresStorage.from_url(
            f"postgresql://postgres:pw_s3cret@{own.host}:{own.port}/postgres",
            name=name,
            connect_timeout=1,
        )
        await doomed.open()
        own.stop()
        with pytest.raises(BackendError) as failed:
            await doomed.import_session_string(STRING)
        texts.append(str(failed.value))
        texts.append(repr(failed.value.__cause__))
        await doomed.close()
        with pytest.raises(BackendError) as unreachable:
            await doomed.open()
        texts.append(str(unreachable.value))
    assert all_logs.count > 0
    for text in texts + all_logs.texts:
        assert leaks(text) == [], text[:300]
        assert "pw_s3cret" not in text, text[:300]


@pytest.mark.clients
def test_the_benchmark_runs_the_postgres_rows(
    tmp_path: Path, postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pyrogram 2.0.106's update path on ours and on pyrogram-asyncpg-storage (no timings)."""
    from .test_benchmarks import _result, _run

    monkeypatch.setenv("PYROGRAM_STORAGE_POSTGRES_URL", postgres_server.url)
    systems = (
        "path-kurigram-file",
        "path-pyrogram-ours-postgres-sole",
        "path-pyrogram-asyncpg-storage",
    )
    data, report = _run(tmp_path, systems)
    for system in systems:
        assert _result(data, system)["metrics"]["path_us"] > 0, system
    assert "pyrogram-asyncpg-storage" in report
    assert data["servers"]["postgres"] == "$PYROGRAM_STORAGE_POSTGRES_URL"
