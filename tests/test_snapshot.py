"""The peer id snapshot a FileStorage keeps in its file between sessions.

A sole writer's ``close()`` writes every stored peer's id, access hash and type to the
file, with triggers that delete it on any write to ``peers``; the next ``open()`` takes
it and answers id lookups from it at once. Whatever happened to the file meanwhile (a
client wrote it, a tool dropped the triggers, bytes were damaged), a lookup never
returns what the file no longer holds.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import sqlite3
import stat
from pathlib import Path

import pytest

from pyrogram_storage import FileStorage, Peer, PeerNotFound, PeerType, Storage, for_client
from pyrogram_storage.sqlite import _snapshot as snapshot

N = snapshot.MIN_PEERS + 1000
ADOPTED = "answering id lookups from the snapshot"


def _peer(i: int, rnd: int = 0) -> Peer:
    kind = PeerType.USER if i % 3 else PeerType.CHANNEL
    return Peer(1000 + i, i * 7919 + rnd, kind, (), None)


async def _filled(folder: Path, count: int = N) -> Path:
    storage = FileStorage("s", folder)
    await storage.open()
    await storage.upsert_peers([_peer(i) for i in range(count)])
    await storage.close()
    return folder / "s.session"


def _objects(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {name for (name,) in db.execute("SELECT name FROM sqlite_master")}


async def _access(storage: Storage, peer_id: int) -> tuple[int, str] | None:
    """What the client glue asks, as a client asks it right after open (no loop turn)."""
    try:
        return storage.cached_access(peer_id) or await storage._access_by_id(peer_id)
    except PeerNotFound:
        return None


async def _loaded(storage: Storage) -> None:
    """Wait until the engine has read the stored peers (the snapshot taken by then)."""
    task = storage._peer_engine._loading
    if task is not None:
        await asyncio.wait([task])


async def _lookups(folder: Path, ids: list[int]) -> tuple[list[object], bool]:
    """Open, look ``ids`` up without yielding to the loop first, then once the peers
    are read; close. The answers, and whether the file holds a snapshot again."""
    storage = FileStorage("s", folder)
    await storage.open()
    try:
        answers: list[object] = [await _access(storage, i) for i in ids]
        await _loaded(storage)
        answers += [await _access(storage, i) for i in ids]
        for i in ids[:3]:
            try:
                peer = await storage.peer_by_id(i, with_usernames=False)
                answers.append((peer.access_hash, peer.type.value))
            except PeerNotFound:
                answers.append(None)
    finally:
        await storage.close()
    with sqlite3.connect(folder / "s.session") as db:
        kept = db.execute("SELECT count(*) FROM peer_ids_snapshot WHERE part = 0").fetchone()
    return answers, kept == (1,)


@pytest.fixture(params=["one part", "parts"], autouse=True)
def parts(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The snapshot in one part, or in six (what a session of 350,000 peers has)."""
    if request.param == "parts":
        monkeypatch.setattr(snapshot, "_PART", 1000)


@pytest.fixture
def adopted(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="pyrogram_storage")
    return caplog


async def test_written_at_close_taken_at_open(
    tmp_path: Path, adopted: pytest.LogCaptureFixture
) -> None:
    path = await _filled(tmp_path)
    assert {"peer_ids_snapshot", "trg_peer_ids_snapshot_insert"} <= _objects(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    storage = FileStorage("s", tmp_path)
    await storage.open()
    ids = [1000 + i for i in (0, 1, 2, N // 2, N - 1)]
    got = [await _access(storage, i) for i in ids]
    assert got == [(_peer(i - 1000).access_hash, _peer(i - 1000).type.value) for i in ids]
    assert await _access(storage, 999) is None
    assert await _access(storage, 1000 + N) is None
    await _loaded(storage)
    assert ADOPTED in adopted.text
    # Taken: while this storage is open the file holds no trigger of it (no write of
    # ours fires one; a snapshot without them is never used).
    await storage.flush()
    await storage.save()
    assert not {o for o in _objects(path) if o.startswith("trg_peer_ids")}
    await storage.close()
    assert {"peer_ids_snapshot", "trg_peer_ids_snapshot_delete"} <= _objects(path)


async def test_unchanged_session_rearms_it(
    tmp_path: Path, adopted: pytest.LogCaptureFixture
) -> None:
    """A session that wrote no peer puts the triggers back: the next open uses it."""
    await _filled(tmp_path)
    for _ in range(2):
        adopted.clear()
        answers, kept = await _lookups(tmp_path, [1001, 1002])
        assert answers[:2] == [(_peer(1).access_hash, "user"), (_peer(2).access_hash, "user")]
        assert kept and ADOPTED in adopted.text


async def test_small_sessions_keep_none(tmp_path: Path) -> None:
    path = await _filled(tmp_path, snapshot.MIN_PEERS - 1)
    assert not {o for o in _objects(path) if "snapshot" in o}


async def test_writes_right_after_open_win(tmp_path: Path) -> None:
    await _filled(tmp_path)
    storage = FileStorage("s", tmp_path)
    await storage.open()
    # Before the loop turns, before the snapshot is taken: written, deleted, then asked.
    await storage.upsert_peers([Peer(1005, 42, PeerType.BOT, (), None)])
    await storage.delete_peers([1006])
    assert await _access(storage, 1005) == (42, "bot")
    assert await _access(storage, 1006) is None
    await _loaded(storage)
    assert await _access(storage, 1005) == (42, "bot")
    assert await _access(storage, 1006) is None
    await storage.close()
    answers, kept = await _lookups(tmp_path, [1005, 1006, 1007])
    assert answers[:3] == [(42, "bot"), None, (_peer(7).access_hash, "user")]
    assert kept


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE peers SET access_hash = -5 WHERE id = 1003",
        "INSERT OR REPLACE INTO peers (id, access_hash, type, username, phone_number, "
        "last_update_on) VALUES (1003, -5, 'user', NULL, NULL, 0)",
        "DELETE FROM peers WHERE id = 1003",
    ],
    ids=["update", "replace", "delete"],
)
async def test_another_writer_makes_it_stale(tmp_path: Path, statement: str) -> None:
    """A client (any program) writing peers while we are closed: the snapshot goes."""
    path = await _filled(tmp_path)
    with sqlite3.connect(path) as db:
        db.execute(statement)
    assert "peer_ids_snapshot" in _objects(path)
    answers, _ = await _lookups(tmp_path, [1003, 1004])
    expected = {"U": (-5, "channel"), "I": (-5, "user"), "D": None}[statement[0]]
    assert answers[0] == expected and answers[2] == expected
    assert answers[1] == answers[3] == (_peer(4).access_hash, "user")


async def test_triggers_dropped_by_another_program(tmp_path: Path) -> None:
    path = await _filled(tmp_path)
    with sqlite3.connect(path) as db:
        db.execute("DROP TRIGGER trg_peer_ids_snapshot_update")
        db.execute("UPDATE peers SET access_hash = -9 WHERE id = 1010")
    answers, _ = await _lookups(tmp_path, [1010])
    assert answers[0] == answers[1] == (-9, "user")


@pytest.mark.parametrize(
    "damage",
    [
        "UPDATE peer_ids_snapshot SET hashes = zeroblob(length(hashes)) WHERE part = 1",
        "UPDATE peer_ids_snapshot SET ids = substr(ids, 9) || substr(ids, 1, 8) WHERE part = 1",
        "UPDATE peer_ids_snapshot SET kinds = substr(kinds, 2) WHERE part = 1",
        "UPDATE peer_ids_snapshot SET ids = 'text' WHERE part = 1",
        "UPDATE peer_ids_snapshot SET peers = peers - 1 WHERE part = 0",
        "UPDATE peer_ids_snapshot SET format = 99 WHERE part = 0",
        "DELETE FROM peer_ids_snapshot WHERE part = 1",
        "DELETE FROM peer_ids_snapshot WHERE part = 0",
        "UPDATE peer_ids_snapshot SET checksum = checksum + 1 WHERE part = 0",
        "DELETE FROM peer_ids_snapshot WHERE part = (SELECT max(part) FROM peer_ids_snapshot)",
        "UPDATE peer_ids_snapshot SET ids = (SELECT ids FROM peer_ids_snapshot WHERE part = 1), "
        "hashes = (SELECT hashes FROM peer_ids_snapshot WHERE part = 1), "
        "kinds = (SELECT kinds FROM peer_ids_snapshot WHERE part = 1), "
        "checksum = (SELECT checksum FROM peer_ids_snapshot WHERE part = 1) "
        "WHERE part = (SELECT max(part) FROM peer_ids_snapshot)",
    ],
    ids=[
        "hashes",
        "ids",
        "kinds",
        "type",
        "count",
        "format",
        "part",
        "header",
        "parts",
        "last part",
        "repeated part",
    ],
)
async def test_damaged_or_foreign_is_ignored(tmp_path: Path, damage: str) -> None:
    """Bytes changed in the snapshot itself (not through peers): checked, then ignored."""
    path = await _filled(tmp_path)
    with sqlite3.connect(path) as db:
        db.execute(damage)
    ids = [1000, 1001, 1002, 1000 + N // 2, 1000 + N - 1]
    answers, _ = await _lookups(tmp_path, ids)
    expected = [(_peer(i - 1000).access_hash, _peer(i - 1000).type.value) for i in ids]
    assert answers[: len(ids)] == expected
    assert answers[len(ids) : 2 * len(ids)] == expected
    # Rebuilt at that close, and right again.
    answers, kept = await _lookups(tmp_path, ids)
    assert answers[: len(ids)] == expected and kept


async def test_a_crash_after_writes_leaves_no_stale_snapshot(tmp_path: Path) -> None:
    """The snapshot is taken out in the transaction of the first write: a copy of the
    file made while the storage is open (what a crash leaves) holds the write, not the
    snapshot."""
    await _filled(tmp_path)
    storage = FileStorage("s", tmp_path)
    await storage.open()
    await storage.upsert_peers([Peer(1020, 77, PeerType.USER, (), None)])
    await storage.flush()
    crashed = tmp_path / "crashed"
    crashed.mkdir(mode=0o700)
    for suffix in (".session", ".session-wal"):
        if (tmp_path / f"s{suffix}").exists():
            shutil.copy(tmp_path / f"s{suffix}", crashed / f"s{suffix}")
    await storage.close()
    assert not {o for o in _objects(crashed / "s.session") if o.startswith("trg_peer_ids")}
    answers, _ = await _lookups(crashed, [1020, 1021])
    assert answers[:2] == [(77, "user"), (_peer(21).access_hash, "channel")]


async def test_shared_and_read_only_leave_it_alone(tmp_path: Path) -> None:
    path = await _filled(tmp_path)
    reader = FileStorage("s", tmp_path, read_only=True)
    await reader.open()
    assert (await reader.peer_by_id(1001)).access_hash == _peer(1).access_hash
    await reader.close()
    assert "peer_ids_snapshot" in _objects(path)
    shared = FileStorage("s", tmp_path, lock="shared")
    await shared.open()
    await shared.upsert_peers([Peer(1001, 5, PeerType.USER, (), None)])
    await shared.close()
    assert "peer_ids_snapshot" in _objects(path)  # the table stays, emptied by the trigger
    answers, _ = await _lookups(tmp_path, [1001])
    assert answers[0] == (5, "user")


async def test_through_the_client_glue(tmp_path: Path) -> None:
    await _filled(tmp_path)
    pytest.importorskip("pyrogram")
    glue = for_client(FileStorage("s", tmp_path))
    await glue.open()
    try:
        peer = await glue.get_peer_by_id(1001)
        assert peer.access_hash == _peer(1).access_hash
    finally:
        await glue.close()


async def test_writes_between_parts_win(tmp_path: Path) -> None:
    """A peer written after the first parts were read, in a part read later."""
    await _filled(tmp_path)
    storage = FileStorage("s", tmp_path)
    await storage.open()
    late = 1000 + N - 10
    for _ in range(10):  # point queries first, then a part read by each lookup
        assert await _access(storage, 1001) == (_peer(1).access_hash, "user")
    await storage.upsert_peers([Peer(late, 43, PeerType.GROUP, (), None)])
    await storage.delete_peers([late + 1])
    for _ in range(8):
        assert await _access(storage, late) == (43, "group")
        assert await _access(storage, late + 1) is None
    await _loaded(storage)
    assert await _access(storage, late) == (43, "group")
    assert await _access(storage, late + 1) is None
    await storage.close()


async def test_a_session_left_bounded_never_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the process's peer memory spent on other sessions, memory stays bounded: a
    part read would be thrown away, so lookups ask the store and read no part (in a host
    of a thousand sessions, each one's transient read left ~0.2 MB of heap behind)."""
    from pyrogram_storage import _peers

    await _filled(tmp_path)
    monkeypatch.setattr(_peers._Budget, "left", 0)
    reads = []
    monkeypatch.setattr(
        snapshot.Reader, "next", lambda self, db: reads.append(1) or None, raising=True
    )
    storage = FileStorage("s", tmp_path)
    await storage.open()
    try:
        await _loaded(storage)
        assert not storage._peer_engine.complete and storage._peer_engine.index is None
        ids = [1000 + i for i in range(0, N, N // 20)]
        got = [await _access(storage, i) for i in ids]
        assert got == [(_peer(i - 1000).access_hash, _peer(i - 1000).type.value) for i in ids]
        assert reads == []
    finally:
        await storage.close()
