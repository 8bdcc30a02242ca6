"""MongoStorage specifics, against a real wire-protocol server (SecantusDB, or mongod).

The contract suite runs on MongoStorage through ``conftest.BACKENDS``; this module covers
what only MongoDB has: drivers, the server going away, indexes, schema documents,
``delete()``, and Pyrofork's own MongoStorage writing and reading the same database.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pymongo
import pytest
from pymongo import monitoring

from pyrogram_storage import (
    BackendError,
    InvalidTypeError,
    MissingDriverError,
    Peer,
    PeerNotFound,
    PeerType,
    SchemaTooNewError,
    SessionData,
    StorageClosedError,
    UnknownSchemaError,
    UpdateState,
    _migrations,
)
from pyrogram_storage.mongo import ClientRecipe, MongoStorage
from pyrogram_storage.types import SESSION_FIELDS

from .missing_driver import missing_driver_error
from .servers.mongoserver import MongoServer

pytestmark = pytest.mark.mongo

KEY = bytes(range(256))
CHANNEL = -1001234567890
REPO_ROOT = Path(__file__).resolve().parent.parent


def fresh_name() -> str:
    return f"t_{uuid.uuid4().hex[:16]}"


def sync_client(uri: str) -> pymongo.MongoClient[dict[str, Any]]:
    return pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000)


def dump_database(uri: str, database: str) -> dict[str, Any]:
    """Every document and index of a database, to compare before and after."""
    client = sync_client(uri)
    try:
        db = client[database]
        return {
            name: {
                "docs": sorted(db[name].find(), key=repr),
                "indexes": sorted(db[name].index_information()),
            }
            for name in sorted(db.list_collection_names())
        }
    finally:
        client.close()


def make_client(driver: str, uri: str) -> Any:
    if driver == "pymongo":
        return pymongo.AsyncMongoClient(uri, serverSelectionTimeoutMS=5000)
    if driver == "motor":
        import motor.motor_asyncio

        return motor.motor_asyncio.AsyncIOMotorClient(uri, serverSelectionTimeoutMS=5000)
    import async_pymongo

    return async_pymongo.AsyncClient(uri, serverSelectionTimeoutMS=5000)


async def close_client(client: Any) -> None:
    result = client.close()
    if result is not None:
        await result


SESSION = SessionData(
    dc_id=4,
    api_id=12345,
    test_mode=False,
    auth_key=KEY,
    date=1_700_000_000,
    user_id=777000123,
    is_bot=False,
    server_address="149.154.167.91",
    port=443,
)


async def write_sample(storage: MongoStorage) -> None:
    await storage.update_session(**{f: getattr(SESSION, f) for f in SESSION_FIELDS})
    await storage.upsert_peers(
        [
            Peer(1, 11, PeerType.USER, ("alice", "alice_alt"), "15550001"),
            Peer(2, 22, PeerType.BOT, ("robot",)),
            Peer(CHANNEL, 33, PeerType.CHANNEL, ("news",)),
        ]
    )
    await storage.set_update_states([UpdateState(0, 10, 20, 1_700_000_100, 30)])


async def check_sample(storage: MongoStorage) -> None:
    session = await storage.get_session()
    assert session.date >= SESSION.date  # save() on leaving `async with` sets it to now
    assert session.replace(date=SESSION.date) == SESSION
    assert await storage.peer_by_id(1) == Peer(
        1,
        11,
        PeerType.USER,
        ("alice", "alice_alt"),
        "15550001",
        (await storage.peer_by_id(1)).last_update_on,
    )
    assert (await storage.peer_by_username("@Alice_Alt")).id == 1
    assert (await storage.peer_by_phone("+1 555 0001")).id == 1
    assert (await storage.peer_by_id(CHANNEL)).usernames == ("news",)
    assert await storage.get_update_states([0]) == [UpdateState(0, 10, 20, 1_700_000_100, 30)]


def driver_error(exc: BaseException) -> BaseException | None:
    """The driver's exception behind one of ours (a failed batch may be a cause's cause)."""
    cause = exc.__cause__
    while isinstance(cause, BackendError):
        cause = cause.__cause__
    return cause


# -- a server of our own, for the tests that stop it ----------------------------------------


@pytest.fixture(scope="module")
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MongoServer]:
    """A SecantusDB server these tests may stop and restart (never the shared one)."""
    with MongoServer(tmp_path_factory.mktemp("own-mongo"), sync_on_commit=True) as server:
        yield server


@pytest.fixture
def server(own_server: MongoServer) -> MongoServer:
    own_server.start()  # a failed test may have left it stopped
    return own_server


# -- drivers --------------------------------------------------------------------------------


@pytest.mark.parametrize("driver", ["pymongo", "motor", "async_pymongo"])
async def test_a_client_passed_in_is_used_and_left_open(mongo_uri: str, driver: str) -> None:
    client = make_client(driver, mongo_uri)
    name = fresh_name()
    try:
        storage = MongoStorage(name, client)
        async with storage:
            await write_sample(storage)
        again = MongoStorage(name, client)
        async with again:
            await check_sample(again)
        # close() left the caller's client usable
        assert (await client[name]["session"].find_one({"_id": 0}))["user_id"] == SESSION.user_id
        await again.delete()
        assert name not in await client.list_database_names()
    finally:
        await close_client(client)


def test_a_synchronous_client_is_refused(mongo_uri: str) -> None:
    client = pymongo.MongoClient(mongo_uri, connect=False)
    try:
        with pytest.raises(TypeError, match=r"synchronous.*AsyncMongoClient"):
            MongoStorage("me", client)  # type: ignore[arg-type]
    finally:
        client.close()


async def test_a_database_or_other_object_is_refused(mongo_uri: str) -> None:
    client = pymongo.AsyncMongoClient(mongo_uri)
    try:
        with pytest.raises(TypeError, match="asynchronous MongoDB client"):
            MongoStorage("me", client["me"])  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="asynchronous MongoDB client"):
            MongoStorage("me", "mongodb://localhost")  # type: ignore[arg-type]
    finally:
        await client.close()


@pytest.mark.parametrize("driver", ["pymongo", "motor", "async_pymongo", "async-pymongo"])
async def test_from_url_builds_and_closes_its_own_client(mongo_uri: str, driver: str) -> None:
    name = fresh_name()
    storage = MongoStorage.from_url(mongo_uri, name=name, driver=driver)
    assert "mongodb://" not in repr(storage)
    async with storage:
        await write_sample(storage)
        assert await storage.health() is True
    assert storage._client is None  # the client it built is closed and dropped
    reopened = MongoStorage.from_url(mongo_uri, name=name, driver=driver)
    async with reopened:
        await check_sample(reopened)
    await reopened.delete()


async def test_a_client_recipe_is_public_and_never_shows_the_url(mongo_uri: str) -> None:
    recipe = ClientRecipe("mongodb://me:s3cret@db.example.com/", "async-pymongo", {"tls": True})
    assert recipe.driver == "async_pymongo"
    assert "s3cret" not in repr(recipe) and "tls" not in repr(recipe)
    name = fresh_name()
    storage = MongoStorage(name, ClientRecipe(mongo_uri))  # what from_url builds
    async with storage:
        await write_sample(storage)
    assert storage._client is None
    async with MongoStorage.from_url(mongo_uri, name=name) as again:
        await check_sample(again)
    await again.delete()


def test_from_url_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown driver 'mongoengine'"):
        MongoStorage.from_url("mongodb://127.0.0.1", name="me", driver="mongoengine")
    with pytest.raises(ValueError, match="mongodb://"):
        MongoStorage.from_url("postgres://127.0.0.1", name="me")
    with pytest.raises(ValueError, match="cannot be a MongoDB database name"):
        MongoStorage.from_url("mongodb://127.0.0.1", name="my.session")
    with pytest.raises(ValueError, match="cannot start a MongoDB collection name"):
        MongoStorage.from_url("mongodb://127.0.0.1", name="me", database="bots", prefix="a$")
    # ...unless the database is given: the name then only prefixes the collections
    storage = MongoStorage.from_url("mongodb://127.0.0.1", name="my.session", database="bots")
    assert (storage.database, storage.prefix) == ("bots", "my.session.")


@pytest.mark.parametrize("driver", ["pymongo", "motor", "async_pymongo"])
async def test_a_bad_client_option_is_a_backend_error_on_open(driver: str) -> None:
    storage = MongoStorage.from_url(
        "mongodb://127.0.0.1:1", name="me", driver=driver, client_options={"socketTimeoutMS": -5}
    )
    with pytest.raises(BackendError, match="socketTimeoutMS") as info:
        await storage.open()
    assert isinstance(info.value.__cause__, ValueError)
    with pytest.raises(StorageClosedError):
        await storage.get_session()


@pytest.mark.parametrize(
    ("driver", "blocked", "extra"),
    [
        ("pymongo", "pymongo", "mongo"),
        ("motor", "motor", "motor"),
        ("async_pymongo", "async_pymongo", "async-pymongo"),
    ],
)
def test_a_missing_driver_names_the_extra(driver: str, blocked: str, extra: str) -> None:
    got_extra, message = missing_driver_error(
        blocked,
        "from pyrogram_storage import MongoStorage",
        f"MongoStorage.from_url('mongodb://127.0.0.1', name='me', driver={driver!r})",
    )
    assert got_extra == extra
    assert f"pip install pyrogram-storage[{extra}]" in message


def test_importing_the_package_loads_no_driver() -> None:
    code = (
        "import sys, pyrogram_storage, pyrogram_storage.mongo\n"
        "loaded = [m for m in ('pymongo', 'motor', 'async_pymongo', 'bson') if m in sys.modules]\n"
        "print(loaded)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT
    )
    assert result.stdout.strip() == "[]"
    assert issubclass(MissingDriverError, ImportError)


# -- what is created ------------------------------------------------------------------------


async def test_collections_indexes_and_schema_document(mongo_uri: str) -> None:
    name = fresh_name()
    async with MongoStorage.from_url(mongo_uri, name=name) as storage:
        await write_sample(storage)
    layout = dump_database(mongo_uri, name)
    assert sorted(layout) == ["peers", "session", "update_state", "usernames"]
    assert layout["peers"]["indexes"] == ["_id_", "phone_number", "username", "usernames"]
    assert layout["usernames"]["indexes"] == ["_id_", "peer_id"]
    session_docs = {doc["_id"]: doc for doc in layout["session"]["docs"]}
    assert set(session_docs) == {0, "schema"}
    assert session_docs["schema"]["version"] == _migrations.latest("mongo")
    assert session_docs[0]["auth_key"] == KEY
    # as in Pyrofork: the collection lists the usernames of peers that have several
    usernames = {doc["_id"]: doc["peer_id"] for doc in layout["usernames"]["docs"]}
    assert usernames == {"alice": 1, "alice_alt": 1}
    alice = next(doc for doc in layout["peers"]["docs"] if doc["_id"] == 1)
    assert (alice["username"], alice["usernames"]) == ("alice", ["alice", "alice_alt"])
    async with MongoStorage.from_url(mongo_uri, name=name) as storage:
        await storage.upsert_peers([Peer(1, 11, PeerType.USER, ("alice",))])
        await storage.set_usernames([(2, ["robot", "droid"])])
    usernames = {
        doc["_id"]: doc["peer_id"] for doc in dump_database(mongo_uri, name)["usernames"]["docs"]
    }
    assert usernames == {"robot": 2, "droid": 2}


async def test_a_shared_database_with_prefixes(mongo_uri: str) -> None:
    database = fresh_name()
    first = MongoStorage.from_url(mongo_uri, name="first", database=database)
    second = MongoStorage.from_url(mongo_uri, name="second", database=database)
    async with first, second:
        await write_sample(first)
        await second.upsert_peers([Peer(5, 5, PeerType.USER, ("other",))])
        with pytest.raises(PeerNotFound):
            await second.peer_by_id(1)
        assert (await second.get_session()).is_empty
    # update_state appears with the first update state written
    assert sorted(dump_database(mongo_uri, database)) == [
        "first.peers",
        "first.session",
        "first.update_state",
        "first.usernames",
        "second.peers",
        "second.session",
        "second.usernames",
    ]
    await first.delete()
    assert sorted(dump_database(mongo_uri, database)) == [
        "second.peers",
        "second.session",
        "second.usernames",
    ]
    await second.delete()


class CommandCounter(monitoring.CommandListener):
    """Records each command the client sends: (command name, collection)."""

    def __init__(self) -> None:
        self.commands: list[tuple[str, str]] = []
        self.filters: list[tuple[str, dict[str, Any]]] = []  # (collection, filter) of finds

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in ("hello", "isMaster", "ismaster", "endSessions"):
            return  # the driver's own monitoring
        collection = event.command.get(event.command_name)
        self.commands.append((event.command_name, str(collection)))
        if event.command_name == "find":
            self.filters.append((str(collection), dict(event.command.get("filter", {}))))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def clear(self) -> None:
        self.commands.clear()
        self.filters.clear()


@pytest.fixture
async def counted(mongo_uri: str) -> AsyncIterator[tuple[Any, CommandCounter]]:
    """A PyMongo client whose commands are recorded."""
    counter = CommandCounter()
    client = pymongo.AsyncMongoClient(mongo_uri, event_listeners=[counter])
    try:
        yield client, counter
    finally:
        await client.close()


async def test_bulk_upsert_is_a_few_commands_not_one_per_peer(
    counted: tuple[Any, CommandCounter],
) -> None:
    client, counter = counted
    async with MongoStorage(fresh_name(), client) as storage:
        counter.clear()
        await storage.upsert_peers(
            Peer(i, i, PeerType.USER, (f"user{i}", f"alt{i}")) for i in range(1, 301)
        )
        await storage.flush()
        writes = list(counter.commands)
        counter.clear()
        await storage.upsert_peers(Peer(i, i, PeerType.USER) for i in range(1, 301))
        await storage.flush()
        keep_writes = list(counter.commands)
        assert (await storage.peer_by_username("alt300")).id == 300
    await storage.delete()
    # one query for which peers exist, one bulk_write for the peers (new ones arrive as an
    # "insert" command) and one for the usernames ("delete" + "update"), whatever the count
    assert sorted(writes) == [
        ("delete", "usernames"),
        ("find", "peers"),
        ("insert", "peers"),
        ("update", "usernames"),
    ]
    assert keep_writes == [("find", "peers"), ("update", "peers")]


async def test_a_clients_writes_within_the_interval_are_one_bulk_write_per_collection(
    counted: tuple[Any, CommandCounter],
) -> None:
    client, counter = counted
    assert MongoStorage(fresh_name(), client).commit_interval == 0.05
    async with MongoStorage(fresh_name(), client, commit_interval=3600) as storage:
        counter.clear()
        for i in range(1, 51):  # what a client stores for each incoming update
            await storage.upsert_peers([Peer(i, i, PeerType.USER, (f"u{i}",))])
            await storage.set_usernames([(i, [f"u{i}", f"alt{i}"])])
            await storage.set_update_states([UpdateState(0, pts=i, date=i)])
        assert counter.commands == []  # nothing sent yet, and yet every write is visible:
        assert (await storage.peer_by_username("ALT50")).usernames == ("u50", "alt50")
        assert await storage.get_update_states([0]) == [UpdateState(0, 50, None, 50, None)]
        counter.clear()
        await storage.flush()
        assert sorted(counter.commands) == [
            ("delete", "usernames"),
            ("find", "peers"),
            ("insert", "peers"),
            ("update", "update_state"),
            ("update", "usernames"),
        ]
    await storage.delete()
    # commit_interval=0: each call is stored (and acknowledged) before it returns
    async with MongoStorage(fresh_name(), client, commit_interval=0) as storage:
        counter.clear()
        await storage.set_update_states([UpdateState(0, pts=1)])
        assert counter.commands == [("update", "update_state")]
    await storage.delete()


async def test_sole_writer_caches_peers_and_skips_unchanged_writes(
    counted: tuple[Any, CommandCounter],
) -> None:
    client, counter = counted
    name = fresh_name()
    peers = [Peer(i, i, PeerType.USER, (f"u{i}",)) for i in range(1, 21)]
    with pytest.raises(InvalidTypeError, match="sole_writer must be a bool"):
        MongoStorage(name, client, sole_writer="yes")  # type: ignore[arg-type]
    async with MongoStorage(name, client, sole_writer=True) as sole:
        await sole.upsert_peers(peers)
        await sole.update_session(api_id=1)
        await sole.flush()
        counter.clear()
        await sole.upsert_peers(peers)  # the clients re-send the same peers all the time
        await sole.flush()
        for peer in peers:
            assert (await sole.peer_by_id(peer.id)).access_hash == peer.id
        assert (await sole.get_session()).api_id == 1
        assert counter.commands == []  # no write, no read
    # By default nothing is cached: what another process writes is seen at once.
    shared = MongoStorage(name, client)
    other = MongoStorage(name, client, commit_interval=0)
    async with shared, other:
        counter.clear()
        await shared.upsert_peers(peers)
        await shared.flush()
        assert ("update", "peers") in counter.commands  # written again, unchanged or not
        assert (await shared.peer_by_id(1)).access_hash == 1
        await other.upsert_peers([Peer(1, 999, PeerType.USER, ("u1",))])
        await other.update_session(api_id=2)
        assert (await shared.peer_by_id(1)).access_hash == 999
        assert (await shared.get_session()).api_id == 2
    await shared.delete()


SHARED_ROUNDS = 200


async def test_shared_storages_on_two_clients_read_every_acknowledged_write(
    mongo_uri: str, counted: tuple[Any, CommandCounter]
) -> None:
    """Shared mode keeps no memory (SecantusDB has change streams, but an event reaches
    the other process after the writer's acknowledgement, not with it: memory would
    need a round trip per lookup to be known current). So each lookup, of a peer, a
    session field or an update state, reads the server and sees what the other client
    stored before it started; alternating writers never read a stale value."""
    reader_client, counter = counted
    writer_client: Any = pymongo.AsyncMongoClient(mongo_uri)
    name = fresh_name()
    one = MongoStorage(name, writer_client, commit_interval=0)
    two = MongoStorage(name, reader_client, commit_interval=0)
    assert not MongoStorage.delivers_invalidations
    try:
        async with one, two:
            await one.upsert_peers([Peer(1, 0, PeerType.USER, ("x",))])
            for step in range(1, SHARED_ROUNDS + 1):
                for writer, reader, value in ((one, two, 2 * step), (two, one, 2 * step + 1)):
                    await writer.upsert_peers([Peer(1, value, PeerType.USER, ("x",))])
                    await writer.update_session(api_id=value)
                    await writer.set_update_states([UpdateState(1, pts=value)])
                    counter.clear()
                    assert (await reader.peer_by_id(1)).access_hash == value, step
                    assert (await reader.get_session()).api_id == value, step
                    states = await reader.get_update_states([1])
                    assert [state.pts for state in states] == [value], step
                    assert reader.cached_peer(1) is None
                    if reader is two:  # the counted client: three reads on the server
                        reads = [c for c in counter.commands if c[0] in ("find", "aggregate")]
                        assert len(reads) >= 3, counter.commands
        await one.delete()
    finally:
        await writer_client.close()


class Interloper(monitoring.CommandListener):
    """Inserts the peers another process would, right after our storage looked for them."""

    def __init__(self, uri: str, database: str, ids: list[int]) -> None:
        self.client = sync_client(uri)
        self.database, self.ids, self.done = database, ids, False
        self.probing = False

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        # our question "which of these peers exist?"
        self.probing = event.command_name == "find" and event.command.get("find") == "peers"

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        if self.probing and not self.done:
            self.done = True
            self.client[self.database]["peers"].insert_many(
                {"_id": i, "access_hash": -1, "type": "bot", "last_update_on": 0} for i in self.ids
            )

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_new_peers_inserted_meanwhile_by_another_writer_are_updated(mongo_uri: str) -> None:
    name = fresh_name()
    interloper = Interloper(mongo_uri, name, [2, 3])
    client = pymongo.AsyncMongoClient(mongo_uri, event_listeners=[interloper])
    try:
        async with MongoStorage(name, client) as storage:
            await storage.upsert_peers(
                [Peer(i, 10 * i, PeerType.USER, (f"u{i}",)) for i in range(1, 11)]
            )
            await storage.flush()
            assert interloper.done
            for i in range(1, 11):  # ours won: the duplicate inserts were retried as upserts
                peer = await storage.peer_by_id(i)
                assert (peer.access_hash, peer.type, peer.usernames) == (
                    10 * i,
                    PeerType.USER,
                    (f"u{i}",),
                )
        await storage.delete()
    finally:
        interloper.client.close()
        await client.close()


# -- peers Pyrofork writes after the switch, and what open() costs -----------------------------


def write_like_pyrofork(uri: str, database: str, ids: range) -> None:
    """Peers and usernames as Pyrofork's MongoStorage writes them (no usernames array)."""
    client = sync_client(uri)
    try:
        db = client[database]
        now = int(time.time())
        db["peers"].insert_many(
            {
                "_id": i,
                "access_hash": i,
                "type": "user",
                "username": f"p{i}",
                "phone_number": None,
                "last_update_on": now,
            }
            for i in ids
        )
        db["usernames"].insert_many(
            {"_id": name, "peer_id": i, "last_update_on": now}
            for i in ids
            for name in (f"p{i}", f"p{i}_alt")
        )
    finally:
        client.close()


async def test_open_reads_no_peer_whatever_their_number(
    mongo_uri: str, counted: tuple[Any, CommandCounter]
) -> None:
    client, counter = counted
    name = fresh_name()
    async with MongoStorage(name, client) as storage:
        await storage.upsert_peers([Peer(1, 1, PeerType.USER, ("ours", "ours_alt"))])

    async def commands_of_open() -> list[tuple[str, str]]:
        counter.clear()
        storage = MongoStorage(name, client)
        await storage.open()
        sent = list(counter.commands)
        await storage.close()
        return sent

    few = await commands_of_open()
    assert few == [("find", "session")]
    # Pyrofork, run again on the adopted database, writes 2000 peers without the array
    write_like_pyrofork(mongo_uri, name, range(10, 2010))
    assert await commands_of_open() == few
    async with MongoStorage(name, client, username_ttl=None) as storage:
        counter.clear()
        peer = await storage.peer_by_username("P2009_ALT")
        assert (peer.id, peer.usernames) == (2009, ("p2009", "p2009_alt"))
        assert (await storage.peer_by_username("p10")).id == 10
        assert (await storage.peer_by_id(11)).usernames == ("p11", "p11_alt")
        assert (await storage.peer_by_username("ours_alt")).id == 1
        filters = list(counter.filters)
    # ...and every query those lookups sent went through an index
    sync = sync_client(mongo_uri)
    try:
        for collection, query in filters:
            plan = sync[name].command(
                "explain", {"find": collection, "filter": query}, verbosity="executionStats"
            )
            assert plan["executionStats"]["totalDocsExamined"] <= 2, (collection, query)
    finally:
        sync.close()
    await MongoStorage(name, client).delete()


async def test_a_peer_pyrofork_rewrote_is_read_the_way_pyrofork_reads_it(mongo_uri: str) -> None:
    name = fresh_name()
    async with MongoStorage.from_url(mongo_uri, name=name, username_ttl=None) as storage:
        await storage.upsert_peers([Peer(7, 7, PeerType.USER, ("old", "old_alt"))])
    sync = sync_client(mongo_uri)
    try:  # Pyrofork's update_peers and update_usernames after a rename (the array goes stale)
        db = sync[name]
        now = int(time.time())
        db["peers"].update_one(
            {"_id": 7}, {"$set": {"username": "new", "access_hash": 8, "last_update_on": now}}
        )
        db["usernames"].delete_many({"peer_id": 7})
        db["usernames"].insert_many(
            [{"_id": n, "peer_id": 7, "last_update_on": now} for n in ("new", "new_alt")]
        )
    finally:
        sync.close()
    async with MongoStorage.from_url(mongo_uri, name=name, username_ttl=None) as storage:
        assert (await storage.peer_by_id(7)).usernames == ("new", "new_alt")
        assert (await storage.peer_by_username("new_alt")).access_hash == 8
        assert (await storage.peer_by_username("new")).id == 7
        with pytest.raises(PeerNotFound):
            await storage.peer_by_username("old_alt")
        # and our next write of the peer makes the array current again
        await storage.upsert_peers([Peer(7, 9, PeerType.USER, ("newest",))])
        await storage.flush()
        assert (await storage.peer_by_username("newest")).access_hash == 9
        with pytest.raises(PeerNotFound):
            await storage.peer_by_username("new_alt")
    await storage.delete()


async def test_a_version_1_database_gets_the_username_index(mongo_uri: str) -> None:
    name = fresh_name()
    async with MongoStorage.from_url(mongo_uri, name=name) as storage:
        await write_sample(storage)
    sync = sync_client(mongo_uri)
    try:
        sync[name]["peers"].drop_index("username")
        sync[name]["session"].update_one({"_id": "schema"}, {"$set": {"version": 1}})
        read_only = MongoStorage.from_url(mongo_uri, name=name, read_only=True)
        async with read_only:  # reads it as it is, migrates nothing
            await check_sample(read_only)
        assert "username" not in sync[name]["peers"].index_information()
        async with MongoStorage.from_url(mongo_uri, name=name) as storage:
            await check_sample(storage)
        assert "username" in sync[name]["peers"].index_information()
        schema = sync[name]["session"].find_one({"_id": "schema"})
        assert schema is not None and schema["version"] == 2 == _migrations.latest("mongo")
    finally:
        sync.close()
    await storage.delete()


# -- schema ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "error"), [(999, SchemaTooNewError), ("two", UnknownSchemaError)]
)
async def test_a_newer_or_foreign_schema_is_refused_and_left_untouched(
    mongo_uri: str, version: object, error: type[Exception]
) -> None:
    name = fresh_name()
    async with MongoStorage.from_url(mongo_uri, name=name) as storage:
        await write_sample(storage)
    client = sync_client(mongo_uri)
    try:
        client[name]["session"].update_one({"_id": "schema"}, {"$set": {"version": version}})
        client[name]["peers"].drop_index("usernames")
    finally:
        client.close()
    before = dump_database(mongo_uri, name)
    storage = MongoStorage.from_url(mongo_uri, name=name, session_string=None)
    with pytest.raises(error, match="left untouched"):
        await storage.open()
    with pytest.raises(StorageClosedError):
        await storage.get_session()
    assert dump_database(mongo_uri, name) == before
    assert storage._client is None  # the client built for open() was closed again


# -- delete ---------------------------------------------------------------------------------


async def test_delete_keeps_the_peers_only_when_asked(mongo_uri: str) -> None:
    name = fresh_name()
    keeper = MongoStorage.from_url(mongo_uri, name=name, remove_peers=False)
    async with keeper:
        await write_sample(keeper)
    await keeper.delete()  # after close(), as the clients' log_out() does
    left = dump_database(mongo_uri, name)
    assert sorted(left) == ["peers", "session", "usernames"]
    assert [doc["_id"] for doc in left["session"]["docs"]] == ["schema"]
    assert len(left["peers"]["docs"]) == 3
    async with MongoStorage.from_url(mongo_uri, name=name) as storage:
        assert (await storage.get_session()).is_empty
        assert (await storage.peer_by_username("robot")).id == 2
        assert await storage.get_update_states() == []
    await storage.delete()  # remove_peers defaults to True: everything goes
    assert dump_database(mongo_uri, name) == {}
    client = sync_client(mongo_uri)
    try:
        assert name not in client.list_database_names()
    finally:
        client.close()


# -- the server going away ------------------------------------------------------------------


async def test_a_session_survives_a_server_restart(server: MongoServer) -> None:
    name = fresh_name()
    async with MongoStorage.from_url(server.uri, name=name) as storage:
        await write_sample(storage)
    server.restart()
    async with MongoStorage.from_url(server.uri, name=name) as storage:
        await check_sample(storage)
    await storage.delete()


@pytest.mark.parametrize(
    ("driver", "interval"),
    [("pymongo", 0), ("pymongo", None), ("motor", None), ("async_pymongo", None)],
)
async def test_driver_errors_are_backend_errors_and_recover(
    server: MongoServer, driver: str, interval: float | None
) -> None:
    name = fresh_name()
    options: dict[str, Any] = {} if interval is None else {"commit_interval": interval}
    storage = MongoStorage.from_url(
        server.uri,
        name=name,
        driver=driver,
        client_options={"serverSelectionTimeoutMS": 300},
        **options,
    )
    await storage.open()
    try:
        await write_sample(storage)
        await storage.flush()
        server.stop()
        calls = [
            storage.health(),
            storage.get_session(),  # read again: another process may have changed it
            storage.peer_by_id(1),
            storage.peer_by_username("alice"),
            storage.update_session(user_id=1),
        ]
        writes = [
            storage.upsert_peers([Peer(9, 9, PeerType.USER, ("nine",))]),
            storage.set_update_states([UpdateState(CHANNEL, pts=99)]),
        ]
        if interval == 0:  # each write is stored before its call returns: it fails at once
            calls += writes
        else:  # accepted and visible at once; storing them fails
            for write in writes:
                await write
            assert (await storage.peer_by_id(9)).usernames == ("nine",)
            calls.append(storage.flush())
        for call in calls:
            with pytest.raises(BackendError) as info:
                await call
            assert isinstance(driver_error(info.value), pymongo.errors.PyMongoError)
        server.start()
        assert await storage.health() is True
        # the failed session write changed nothing
        assert (await storage.get_session()).user_id == SESSION.user_id
        await storage.flush()
        await check_sample(storage)  # every acknowledged write is there
        # ...and the writes that could not be stored stayed pending until the server was back
        again = MongoStorage.from_url(server.uri, name=name, driver=driver)
        async with again:
            assert (await again.peer_by_username("nine")).id == 9
            assert (await again.get_update_states([CHANNEL]))[0].pts == 99
        await storage.delete()
    finally:
        await storage.close()


async def test_delete_while_the_server_is_down_fails_loudly_then_works(
    server: MongoServer,
) -> None:
    name = fresh_name()
    storage = MongoStorage.from_url(
        server.uri, name=name, client_options={"serverSelectionTimeoutMS": 300}
    )
    async with storage:
        await write_sample(storage)
    server.stop()
    try:
        with pytest.raises(BackendError) as info:
            await storage.delete()  # after close(), as log_out() does: it reconnects for it
        assert isinstance(info.value.__cause__, pymongo.errors.PyMongoError)
    finally:
        server.start()
    assert "session" in dump_database(server.uri, name)  # nothing was removed
    await storage.delete()
    assert dump_database(server.uri, name) == {}


async def test_open_while_the_server_is_down_is_a_backend_error(server: MongoServer) -> None:
    storage = MongoStorage.from_url(
        server.uri, name=fresh_name(), client_options={"serverSelectionTimeoutMS": 300}
    )
    server.stop()
    try:
        with pytest.raises(BackendError) as info:
            await storage.open()
        assert isinstance(info.value.__cause__, pymongo.errors.ServerSelectionTimeoutError)
    finally:
        server.start()
    # The client finds the server again within a heartbeat or two (300 ms to select one
    # is short on a loaded machine): open again until it does.
    for _ in range(100):
        try:
            await storage.open()
            break
        except BackendError:
            await asyncio.sleep(0.1)
    try:
        assert (await storage.get_session()).is_empty
    finally:
        await storage.close()
    await storage.delete()


# -- Pyrofork's own MongoStorage on the same server ------------------------------------------


@pytest.fixture(scope="module")
def pyrofork_python() -> Path:
    """Pyrofork's venv, with the MongoDB drivers its MongoStorage needs."""
    from .clientenv import ensure_env

    python = ensure_env("pyrofork")
    probe = subprocess.run(
        [str(python), "-c", "import motor, pymongo"], capture_output=True, check=False
    )
    if probe.returncode != 0:
        pins = [
            f"{package}=={importlib.metadata.version(package)}" for package in ("pymongo", "motor")
        ]
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *pins],
            capture_output=True,
            text=True,
            check=True,
        )
    return python


PYROFORK_WRITER = """
import asyncio, json, sys
from motor.motor_asyncio import AsyncIOMotorClient
from pyrogram.storage import MongoStorage

async def main(uri, name, key_hex):
    client = AsyncIOMotorClient(uri, serverSelectionTimeoutMS=5000)
    storage = MongoStorage(name, connection=client)
    await storage.open()
    await storage.dc_id(4)
    await storage.api_id(12345)
    await storage.test_mode(False)
    await storage.auth_key(bytes.fromhex(key_hex))
    await storage.date(1700000000)
    await storage.user_id(777000123)
    await storage.is_bot(False)
    await storage.update_peers([
        (1, 11, "user", "alice", "15550001"),
        (2, 22, "bot", "robot", None),
        (-1001234567890, 33, "channel", "news", None),
    ])
    await storage.update_usernames([(1, "alice"), (1, "alice_alt")])
    await storage.update_state((0, 10, 20, 1700000100, 30))
    await storage.update_state((-1001234567890, 5, None, 1700000050, None))
    await storage.save()
    await storage.close()

asyncio.run(main(*sys.argv[1:]))
"""

PYROFORK_LATE = """
import asyncio, sys
from motor.motor_asyncio import AsyncIOMotorClient
from pyrogram.storage import MongoStorage

async def main(uri, name):
    storage = MongoStorage(name, connection=AsyncIOMotorClient(uri))
    await storage.open()
    await storage.update_peers([(50, 55, "user", "late", None)])
    await storage.update_usernames([(50, "late"), (50, "late_alt")])

asyncio.run(main(*sys.argv[1:]))
"""

PYROFORK_READER = """
import asyncio, json, sys
from motor.motor_asyncio import AsyncIOMotorClient
from pyrogram.storage import MongoStorage

async def main(uri, name):
    client = AsyncIOMotorClient(uri, serverSelectionTimeoutMS=5000)
    storage = MongoStorage(name, connection=client)
    await storage.open()
    out = {f: await getattr(storage, f)() for f in
           ("dc_id", "api_id", "test_mode", "date", "user_id", "is_bot")}
    out["auth_key"] = (await storage.auth_key()).hex()
    peers = {}
    for how, key in (("id", 1), ("id", -1001234567890), ("username", "alice_alt"),
                     ("username", "robot"), ("phone", "15550001")):
        lookup = {"id": storage.get_peer_by_id, "username": storage.get_peer_by_username,
                  "phone": storage.get_peer_by_phone_number}[how]
        peer = await lookup(key)
        peers[f"{how}:{key}"] = [type(peer).__name__] + sorted(
            (k, getattr(peer, k)) for k in ("user_id", "channel_id", "access_hash")
            if hasattr(peer, k))
    out["peers"] = peers
    out["states"] = await storage.update_state()
    print(json.dumps(out))

asyncio.run(main(*sys.argv[1:]))
"""


def run_pyrofork(python: Path, script: str, *args: str) -> str:
    result = subprocess.run(
        [str(python), "-c", script, *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.clients
async def test_a_pyrofork_database_opens_in_place(pyrofork_python: Path, mongo_uri: str) -> None:
    name = fresh_name()
    run_pyrofork(pyrofork_python, PYROFORK_WRITER, mongo_uri, name, KEY.hex())
    assert "schema" not in [doc["_id"] for doc in dump_database(mongo_uri, name)["session"]["docs"]]
    async with MongoStorage.from_url(mongo_uri, name=name, driver="motor") as storage:
        assert await storage.get_session() == SessionData(
            4, 12345, False, KEY, 1700000000, 777000123, False
        )
        alice = await storage.peer_by_id(1)
        assert (alice.access_hash, alice.type, alice.usernames, alice.phone_number) == (
            11,
            PeerType.USER,
            ("alice", "alice_alt"),
            "15550001",
        )
        assert (await storage.peer_by_username("ALICE_ALT")).id == 1
        assert (await storage.peer_by_username("news")).type is PeerType.CHANNEL
        assert (await storage.peer_by_phone("+1 555 0001")).id == 1
        assert (await storage.peer_by_id(2)).usernames == ("robot",)
        assert await storage.count_peers_by_type() == {
            PeerType.USER: 1,
            PeerType.BOT: 1,
            PeerType.CHANNEL: 1,
        }
        ids = [peer.id async for batch in storage.iter_peer_batches(2) for peer in batch]
        assert ids == [CHANNEL, 1, 2]
        assert await storage.get_update_states() == [
            UpdateState(CHANNEL, 5, None, 1700000050, None),
            UpdateState(0, 10, 20, 1700000100, 30),
        ]
        exported = await storage.export_session_string()
        # our writes on top of Pyrofork's documents
        await storage.upsert_peers([Peer(3, 44, PeerType.USER, ("carol",), "15550003")])
        await storage.update_session(dc_id=2)
    layout = dump_database(mongo_uri, name)
    assert layout["peers"]["indexes"] == ["_id_", "phone_number", "username", "usernames"]
    # Pyrofork writes again after the switch; the next open picks its peers up
    run_pyrofork(pyrofork_python, PYROFORK_LATE, mongo_uri, name)
    async with MongoStorage.from_url(mongo_uri, name=name) as storage:
        late = await storage.peer_by_username("LATE_ALT")
        assert (late.id, late.access_hash, late.usernames) == (50, 55, ("late", "late_alt"))
        assert (await storage.peer_by_id(1)).usernames == ("alice", "alice_alt")
    # ...and Pyrofork still reads the adopted database, our writes included
    seen = json.loads(run_pyrofork(pyrofork_python, PYROFORK_READER, mongo_uri, name))
    assert seen["dc_id"] == 2 and seen["user_id"] == 777000123 and seen["auth_key"] == KEY.hex()
    assert seen["peers"]["username:alice_alt"] == [
        "InputPeerUser",
        ["access_hash", 11],
        ["user_id", 1],
    ]
    assert seen["peers"]["id:-1001234567890"] == [
        "InputPeerChannel",
        ["access_hash", 33],
        ["channel_id", 1234567890],
    ]
    assert seen["peers"]["phone:15550001"][0] == "InputPeerUser"
    async with MongoStorage.from_url(mongo_uri, name=name) as storage:
        assert await storage.export_session_string() != exported  # dc changed to 2
    await storage.delete()


@pytest.mark.clients
async def test_pyrofork_reads_a_database_we_wrote(pyrofork_python: Path, mongo_uri: str) -> None:
    name = fresh_name()
    async with MongoStorage.from_url(mongo_uri, name=name) as storage:
        await write_sample(storage)
        await storage.set_update_states([UpdateState(CHANNEL, 5, None, 1_700_000_050, None)])
    seen = json.loads(run_pyrofork(pyrofork_python, PYROFORK_READER, mongo_uri, name))
    assert {k: seen[k] for k in ("dc_id", "api_id", "test_mode", "user_id", "is_bot")} == {
        "dc_id": 4,
        "api_id": 12345,
        "test_mode": False,
        "user_id": 777000123,
        "is_bot": False,
    }
    assert seen["auth_key"] == KEY.hex()
    assert seen["peers"] == {
        "id:1": ["InputPeerUser", ["access_hash", 11], ["user_id", 1]],
        "id:-1001234567890": ["InputPeerChannel", ["access_hash", 33], ["channel_id", 1234567890]],
        "username:alice_alt": ["InputPeerUser", ["access_hash", 11], ["user_id", 1]],
        "username:robot": ["InputPeerUser", ["access_hash", 22], ["user_id", 2]],
        "phone:15550001": ["InputPeerUser", ["access_hash", 11], ["user_id", 1]],
    }
    assert sorted(map(tuple, seen["states"])) == [
        (CHANNEL, 5, None, 1_700_000_050, None),
        (0, 10, 20, 1_700_000_100, 30),
    ]
    await MongoStorage.from_url(mongo_uri, name=name).delete()


async def test_username_ttl_uses_the_peers_last_write(mongo_uri: str) -> None:
    stale = int(time.time()) - 9 * 3600
    async with MongoStorage.from_url(mongo_uri, name=fresh_name()) as storage:
        await storage.upsert_peers([Peer(1, 1, PeerType.USER, ("old",), None, stale)])
        await storage.set_usernames([(1, ["old", "renamed"])])  # not a write of the peer
        with pytest.raises(PeerNotFound, match="Username expired: renamed"):
            await storage.peer_by_username("renamed")
    await storage.delete()


@pytest.fixture
async def opened(mongo_uri: str) -> AsyncIterator[MongoStorage]:
    storage = MongoStorage.from_url(mongo_uri, name=fresh_name())
    async with storage:
        yield storage
    await storage.delete()


async def test_out_of_range_ids_are_refused_before_the_server(opened: MongoStorage) -> None:
    with pytest.raises(PeerNotFound, match="ID not found"):
        await opened.peer_by_id(2**70)
    with pytest.raises(ValueError, match="64 bits"):
        await opened.set_update_states([UpdateState(2**64, 1)])
    assert await opened.get_update_states() == []
