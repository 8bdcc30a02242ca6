"""copy_session between every pair of backends, a user's own subclass included."""

from __future__ import annotations

import os
import stat
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

import pyrogram_storage
from pyrogram_storage import (
    FileStorage,
    MemoryStorage,
    Peer,
    PeerNotFound,
    PeerType,
    SessionData,
    Storage,
    StorageClosedError,
    TargetNotEmptyError,
    UpdateState,
    copy_session,
)
from pyrogram_storage.tools.copy import opened

from .conftest import ALL_BACKENDS, make_storage_of, marks

KEY = bytes(range(256))
OLD = int(time.time()) - 30 * 24 * 3600


def make(request: pytest.FixtureRequest, backend: str, tmp_path: Path, side: str) -> Storage:
    folder = tmp_path / side
    folder.mkdir()
    return make_storage_of(backend, request, folder)()


SOURCE_SESSION = SessionData(
    dc_id=4,
    api_id=123456,
    test_mode=False,
    auth_key=KEY,
    date=1_700_000_000,
    user_id=2**40 + 5,
    is_bot=False,
    server_address="149.154.167.91",
    port=443,
)


def sample_peers(count: int = 0) -> list[Peer]:
    peers = [
        Peer(1001, -5, PeerType.USER, ("alice", "alice_alt"), "15551234567", OLD),
        Peer(1002, 7, PeerType.BOT, ("helper_bot",), None, None),
        Peer(-4321, 0, PeerType.GROUP, (), None, 1_600_000_000),
        Peer(-1001234567890, 2**62, PeerType.SUPERGROUP, ("chat_one",), None, None),
        Peer(-1009876543210, -(2**62), PeerType.CHANNEL, ("news", "news2", "news3"), None, OLD),
        Peer(-1005555555555, 11, PeerType.FORUM, (), None, None),
        Peer(-1006666666666, 12, PeerType("future_kind"), ("odd",), None, None),
    ]
    peers += [
        Peer(10_000 + i, i * 31, PeerType.USER, (f"user{i}",), f"4470000{i:05d}", None)
        for i in range(count)
    ]
    return peers


STATES = [
    UpdateState(0, pts=100, qts=5, date=1_700_000_100, seq=7),
    UpdateState(-1001234567890, pts=55, qts=None, date=1_700_000_050, seq=None),
    UpdateState(-1009876543210, pts=9, qts=0, date=None, seq=0),
]


async def fill(storage: Storage, session: SessionData = SOURCE_SESSION, extra: int = 0) -> None:
    await storage.update_session(
        **{f: getattr(session, f) for f in pyrogram_storage.types.SESSION_FIELDS}
    )
    await storage.upsert_peers(sample_peers(extra))
    await storage.set_update_states(STATES, merge=False)


async def snapshot(storage: Storage) -> tuple[SessionData, list[Peer], list[UpdateState]]:
    peers = [peer async for batch in storage.iter_peer_batches(2) for peer in batch]
    return await storage.get_session(), peers, await storage.get_update_states()


def _pairs() -> list[Any]:
    pairs = [(name, "memory") for name in ALL_BACKENDS]
    pairs += [("memory", name) for name in ALL_BACKENDS if name != "memory"]
    pairs += [("readme", "file"), ("file", "readme")]
    return [pytest.param(a, b, id=f"{a}-to-{b}", marks=[*marks(a), *marks(b)]) for a, b in pairs]


@pytest.mark.parametrize(("source_backend", "target_backend"), _pairs())
async def test_copy_makes_the_target_equal_to_the_source(
    request: pytest.FixtureRequest, tmp_path: Path, source_backend: str, target_backend: str
) -> None:
    source = make(request, source_backend, tmp_path, "source")
    target = make(request, target_backend, tmp_path, "target")
    async with source, target:
        await fill(source, extra=25)
        before = await snapshot(source)
        calls: list[tuple[int, int]] = []
        result = await copy_session(
            source, target, batch_size=10, progress=lambda done, total: calls.append((done, total))
        )
        after = await snapshot(target)
        assert after == before
        assert await snapshot(source) == before
    total = len(sample_peers(25))
    assert (result.peers, result.update_states) == (total, len(STATES))
    assert calls == [(0, total), (10, total), (20, total), (30, total), (total, total)]
    assert after[0].date == SOURCE_SESSION.date
    # Every username came along, and expired ones stay expired in the copy.
    async with target:
        assert (await target.peer_by_username("@Chat_One")).id == -1001234567890
        assert (await target.peer_by_phone("+1 555 123 4567")).id == 1001


async def test_expired_usernames_stay_expired(tmp_path: Path) -> None:
    source = FileStorage("source", tmp_path)
    target = FileStorage("target", tmp_path)
    async with source:
        await fill(source)
    await copy_session(source, target)
    async with target:
        with pytest.raises(PeerNotFound, match="expired"):
            await target.peer_by_username("alice_alt")
        assert (await target.peer_by_username("helper_bot")).id == 1002


@pytest.mark.parametrize(
    "what", ["auth_key", "peer", "update_state"], ids=["auth-key", "peer", "update-state"]
)
async def test_a_non_empty_target_is_refused_and_left_untouched(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, what: str
) -> None:
    source = MemoryStorage("source")
    await source.open()
    await fill(source)
    target = make(request, backend, tmp_path, "target")
    await target.open()
    if what == "auth_key":
        await target.update_session(auth_key=b"\x01" * 256, dc_id=1)
    elif what == "peer":
        await target.upsert_peers([Peer(77, 1, PeerType.USER, ("kept",), None, None)])
    else:
        await target.set_update_states([UpdateState(0, 1, 2, 3, 4)])
    before = await snapshot(target)
    with pytest.raises(TargetNotEmptyError, match="overwrite"):
        await copy_session(source, target)
    assert isinstance(TargetNotEmptyError("x"), pyrogram_storage.StorageError)
    assert await snapshot(target) == before
    await target.close()
    await source.close()


async def test_overwrite_replaces_everything_and_drops_what_the_source_lacks(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    source = make(request, backend, tmp_path, "source")
    target = FileStorage("target", tmp_path)
    async with source, target:
        await fill(source)
        await fill(
            target,
            SessionData(
                dc_id=1,
                api_id=9,
                test_mode=True,
                auth_key=b"\x02" * 256,
                user_id=5,
                is_bot=True,
                date=5,
            ),
            extra=40,
        )
        await target.set_update_states([UpdateState(-1000000000777, pts=1)])
        result = await copy_session(source, target, overwrite=True)
        assert await snapshot(target) == await snapshot(source)
    assert result.peers == len(sample_peers())


async def test_closed_storages_are_opened_and_closed_again_open_ones_stay_open(
    tmp_path: Path,
) -> None:
    source = FileStorage("source", tmp_path)
    async with source:
        await fill(source)
    target = MemoryStorage("target")
    await copy_session(source, target)
    for storage in (source, target):
        with pytest.raises(StorageClosedError):
            await storage.get_session()
    other = FileStorage("other", tmp_path)
    await other.open()
    await source.open()
    await copy_session(source, other)
    assert (await other.get_session()).auth_key == KEY
    assert (await source.get_session()).auth_key == KEY
    expected = await source.get_session()
    await other.close()
    await source.close()
    await target.open()
    assert await target.get_session() == expected
    await target.close()


async def test_an_empty_source_copies_to_an_empty_target(tmp_path: Path) -> None:
    source = FileStorage("empty", tmp_path)
    target = MemoryStorage()
    calls: list[tuple[int, int]] = []
    result = await copy_session(source, target, progress=lambda *args: calls.append(args))
    assert (result.peers, result.update_states) == (0, 0)
    assert calls == [(0, 0)]
    async with source, target:
        assert await snapshot(target) == await snapshot(source)


async def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    storage = MemoryStorage()
    with pytest.raises(ValueError, match="itself"):
        await copy_session(storage, storage)
    with pytest.raises(ValueError, match="batch_size"):
        await copy_session(storage, MemoryStorage(), batch_size=0)


async def test_copying_onto_a_session_string_round_trips(tmp_path: Path) -> None:
    source = FileStorage("source", tmp_path)
    async with source:
        await fill(source)
        text = await source.export_session_string()
    target = FileStorage("target", tmp_path, session_string=text)
    async with target:
        session = await target.get_session()
    carried = ("dc_id", "api_id", "test_mode", "auth_key", "user_id", "is_bot")
    assert {f: getattr(session, f) for f in carried} == {
        f: getattr(SOURCE_SESSION, f) for f in carried
    }


@pytest.mark.mongo
async def test_round_trip_file_mongo_memory_string_file(tmp_path: Path, mongo_uri: str) -> None:
    from pyrogram_storage import MongoStorage

    first = FileStorage("first", tmp_path)
    mongo = MongoStorage.from_url(mongo_uri, name=f"rt_{uuid.uuid4().hex[:12]}")
    memory = MemoryStorage("middle")
    await first.open()
    await fill(first, extra=30)
    original = await snapshot(first)
    try:
        await copy_session(first, mongo, batch_size=7)
        await copy_session(mongo, memory, batch_size=11)
        async with opened(mongo):
            assert await snapshot(mongo) == original
        async with opened(memory):
            assert await snapshot(memory) == original
            text = await memory.export_session_string()
        last = FileStorage("last", tmp_path, session_string=text)
        async with opened(last):
            session = await last.get_session()
        # A session string carries the authorization only; everything in it survived.
        carried = ("dc_id", "api_id", "test_mode", "auth_key", "user_id", "is_bot")
        assert {f: getattr(session, f) for f in carried} == {
            f: getattr(original[0], f) for f in carried
        }
        # The peers and the rest travel by copy: the memory copy back into a file is whole.
        again = FileStorage("again", tmp_path)
        await copy_session(memory, again)
        async with opened(again):
            assert await snapshot(again) == original
    finally:
        await first.close()
        await mongo.delete()


# -- what a session file is ------------------------------------------------------------------


async def test_identify_tells_every_kind_of_file_and_leaves_nothing(tmp_path: Path) -> None:
    """What the command line used to probe itself, as one public function."""
    from pyrogram_storage.errors import NotFoundError
    from pyrogram_storage.tools import identify

    from .fixture_files import copy_fixture
    from .test_telethon import telethon_file

    ours = FileStorage("ours", tmp_path)
    async with ours:
        pass
    copy_fixture("pyrofork", tmp_path, "theirs")
    tele = await telethon_file(tmp_path / "tele")
    (tmp_path / "empty.session").write_bytes(b"")
    (tmp_path / "script.py").write_text("print(1)\n")
    before = sorted(os.listdir(tmp_path))
    found = {
        "ours": identify(tmp_path / "ours"),  # the suffix may be left out
        "theirs": identify(f"file:{tmp_path / 'theirs.session'}"),
        "tele": identify(tele),
        "empty": identify(tmp_path / "empty.session"),
        "script": identify(f"sqlite:{tmp_path / 'script.py'}"),
    }
    assert found["ours"].kind == "pyrogram-storage"
    assert found["ours"].schema_version == found["ours"].latest == 2
    assert not found["ours"].needs_migration and found["ours"].is_session
    assert (found["theirs"].kind, found["theirs"].family) == ("client", "pyrofork")
    assert "Pyrofork" in (found["theirs"].clients or "") and found["theirs"].needs_migration
    assert found["tele"].telethon and not found["tele"].is_session
    assert found["empty"].kind == "empty" and found["script"].kind == "not-sqlite"
    with pytest.raises(NotFoundError, match="no such session file"):
        identify(tmp_path / "missing")
    assert sorted(os.listdir(tmp_path)) == before  # no -wal, -shm or lock left behind


async def test_backup_copies_a_live_file_privately(tmp_path: Path) -> None:
    from pyrogram_storage.tools import backup, identify

    storage = FileStorage("me", tmp_path)
    async with storage:
        await fill(storage)
        copy = backup(storage.path)  # while it is open, its WAL included
    assert copy.name.startswith("me.session.bak-") and stat.S_IMODE(copy.stat().st_mode) == 0o600
    assert identify(copy).kind == "pyrogram-storage"
    with pytest.raises(FileExistsError):
        backup(storage.path, copy)
