"""Two processes, or two storage objects in one process, on the same session file.

``lock="exclusive"`` (the default): the second opener gets :class:`SessionLocked`
at once, naming the holder's pid and host; the lock dies with its process.
``lock="shared"``: every opener works; writes are serialised by SQLite, each sees
the others' writes, and a wait longer than ``busy_timeout`` is :class:`SessionLocked`.
Never a raw ``sqlite3.OperationalError: database is locked``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pyrogram_storage import (
    CorruptSessionError,
    FileStorage,
    Peer,
    PeerNotFound,
    PeerType,
    SessionLocked,
    StorageError,
    UpdateState,
)
from pyrogram_storage.sqlite import schema as sqlite_schema

from . import lock_holder
from .fixture_files import copy_fixture, manifest

HOLDER = Path(lock_holder.__file__)


class Holder:
    """A second process that has the session open."""

    def __init__(self, workdir: Path, name: str, lock: str, mode: str, *args: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HOLDER), str(workdir), name, lock, mode, *map(str, args)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._first_line: str | None = None

    @property
    def first_line(self) -> str:
        """The line it printed once open (or refused); read lazily so several start at once."""
        if self._first_line is None:
            assert self.proc.stdout is not None
            self._first_line = self.proc.stdout.readline().strip()
        return self._first_line

    @property
    def ready(self) -> bool:
        return self.first_line.startswith("ready ")

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def finish(self) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=120)
        return self.proc.returncode, out, err

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.communicate()


@pytest.fixture
def holders() -> Iterator[list[Holder]]:
    started: list[Holder] = []
    yield started
    for holder in started:
        if holder.proc.poll() is None:
            holder.kill()


async def _session_file(workdir: Path, name: str = "s") -> None:
    async with FileStorage(name, workdir, username_ttl=None) as storage:
        await storage.upsert_peers([Peer(1, 11, PeerType.USER, ("one",))])


# -- exclusive (the default) -----------------------------------------------------------------


async def test_second_object_in_one_process_is_refused_at_once(tmp_path: Path) -> None:
    first = FileStorage("s", tmp_path)
    await first.open()
    try:
        second = FileStorage("s", tmp_path)
        with pytest.raises(SessionLocked) as error:
            await second.open()
        message = str(error.value)
        assert f"pid {os.getpid()}" in message and socket.gethostname() in message
        assert not isinstance(error.value, sqlite3.Error)
        # The refused object holds nothing: the holder keeps working.
        await first.upsert_peers([Peer(2, 22, PeerType.USER)])
        with pytest.raises(SessionLocked):
            await FileStorage("s", tmp_path, lock="shared").open()
    finally:
        await first.close()
    # Once the holder closed, the other object opens and sees its writes.
    async with second:
        assert (await second.peer_by_id(2)).access_hash == 22


async def test_the_refusal_names_the_open_object_of_this_process(tmp_path: Path) -> None:
    async with FileStorage("s", tmp_path) as first:
        with pytest.raises(SessionLocked) as error:
            await FileStorage("s", tmp_path).open()
        assert f"{first!r}, still open in this process; close() it first" in str(error.value)


def test_a_storage_left_open_by_an_ended_event_loop_lets_the_next_one_in(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """One asyncio.run() ends with the storage open (a script that forgot close());
    the next asyncio.run() of the same process opens the session again, by a new
    object or the old one. Everything written in the first is there."""
    left_open = FileStorage("s", tmp_path, commit_interval=3600)

    async def first() -> None:
        await left_open.open()
        await left_open.update_session(dc_id=4)
        await left_open.upsert_peers([Peer(2, 22, PeerType.USER, ("kept",))])

    async def again(storage: FileStorage) -> tuple[int, int]:
        async with storage:
            session = await storage.get_session()
            return session.dc_id, (await storage.peer_by_username("kept")).access_hash

    asyncio.run(first())
    assert left_open.is_open  # nobody closed it
    with caplog.at_level("WARNING", logger="pyrogram_storage"):
        assert asyncio.run(again(FileStorage("s", tmp_path))) == (4, 22)
    assert "left open by an event loop that has ended" in caplog.text
    assert not left_open.is_open  # closed when the new object took the lock over
    assert asyncio.run(again(left_open)) == (4, 22)  # and it opens again itself
    assert sorted(path.name for path in tmp_path.iterdir()) == ["s.session"]


async def test_a_storage_of_a_live_event_loop_in_another_thread_is_not_taken_over(
    tmp_path: Path,
) -> None:
    """Only a store whose event loop has ended lets go: one open in another thread's
    running loop keeps its lock."""
    opened, release = asyncio.Event(), threading.Event()
    holder = FileStorage("s", tmp_path)
    loop = asyncio.get_running_loop()

    def other_thread() -> None:
        async def hold() -> None:
            await holder.open()
            loop.call_soon_threadsafe(opened.set)
            await asyncio.to_thread(release.wait)
            await holder.close()

        asyncio.run(hold())

    done = loop.run_in_executor(None, other_thread)
    await opened.wait()
    try:
        with pytest.raises(SessionLocked, match="still open in this process"):
            await FileStorage("s", tmp_path).open()
        assert holder.is_open
    finally:
        release.set()
        await done
    async with FileStorage("s", tmp_path):
        pass


async def test_second_process_is_refused_naming_the_holder(
    tmp_path: Path, holders: list[Holder]
) -> None:
    await _session_file(tmp_path)
    holder = Holder(tmp_path, "s", "exclusive", "hold")
    holders.append(holder)
    assert holder.ready, holder.first_line
    pid = holder.proc.pid
    for lock in ("exclusive", "shared"):
        with pytest.raises(SessionLocked) as error:
            await FileStorage("s", tmp_path, lock=lock).open()
        assert f"pid {pid}" in str(error.value), str(error.value)
        assert socket.gethostname() in str(error.value)
    lock_file = tmp_path / "s.session.lock"
    assert stat.S_IMODE(lock_file.stat().st_mode) == 0o600
    # And the other way round: our process holds it, a new process is refused.
    holder.kill()
    async with FileStorage("s", tmp_path):
        refused = Holder(tmp_path, "s", "exclusive", "hold")
        holders.append(refused)
        assert refused.first_line.startswith("error LockedError"), refused.first_line
        assert f"pid {os.getpid()}" in refused.first_line
        assert refused.finish()[0] == 1


async def test_a_killed_holder_leaves_no_lock_behind(tmp_path: Path, holders: list[Holder]) -> None:
    await _session_file(tmp_path)
    holder = Holder(tmp_path, "s", "exclusive", "hold")
    holders.append(holder)
    assert holder.ready
    holder.kill()  # no close(): the lock file (with the dead pid in it) stays behind
    async with FileStorage("s", tmp_path, username_ttl=None) as storage:
        assert (await storage.peer_by_username("one")).id == 1
    assert not (tmp_path / "s.session.lock").exists()  # the last holder removes it


async def test_a_failed_open_does_not_keep_the_lock(tmp_path: Path) -> None:
    (tmp_path / "s.session").write_bytes(b"garbage" * 100)
    for _ in range(2):
        with pytest.raises(CorruptSessionError):
            await FileStorage("s", tmp_path).open()  # not SessionLocked the second time
    (tmp_path / "s.session").unlink()
    async with FileStorage("s", tmp_path) as storage:
        assert (await storage.get_session()).dc_id == 2


async def test_closed_and_deleted_sessions_release_the_lock(tmp_path: Path) -> None:
    storage = FileStorage("s", tmp_path)
    for _ in range(3):
        await storage.open()
        await storage.close()
        async with FileStorage("s", tmp_path):  # another object may open it now
            pass
    await storage.open()
    await storage.delete()
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    async with FileStorage("s", tmp_path) as fresh:
        assert (await fresh.get_session()).is_empty


# -- shared ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fresh", [True, False], ids=["new-file", "existing-file"])
async def test_two_processes_write_at_once_in_shared_mode(
    tmp_path: Path, holders: list[Holder], fresh: bool
) -> None:
    if not fresh:
        await _session_file(tmp_path)
    count = 150
    writers = [Holder(tmp_path, "s", "shared", "write", first, count) for first in (1000, 5000)]
    holders.extend(writers)
    assert all(w.ready for w in writers), [w.first_line for w in writers]
    for writer in writers:
        writer.go()
    for writer in writers:
        code, out, err = writer.finish()
        assert code == 0 and out.strip() == "done", (out, err[-2000:])
    async with FileStorage("s", tmp_path, username_ttl=None) as storage:
        for first in (1000, 5000):
            for peer_id in range(first, first + count):
                assert (await storage.peer_by_username(f"u{peer_id}")).access_hash == peer_id * 3
        states = {s.id: s.pts for s in await storage.get_update_states()}
        assert states == {1000: 1000 + count - 1, 5000: 5000 + count - 1}
        assert (await storage.get_session()).api_id in (1000 + count - 1, 5000 + count - 1)
    with sqlite3.connect(tmp_path / "s.session") as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    db.close()


async def test_two_processes_adopt_a_client_file_at_once(
    tmp_path: Path, holders: list[Holder]
) -> None:
    """Both find an old client's file needing migrations; neither may trip on the other."""
    copy_fixture("pyrogram", tmp_path, name="s")
    writers = [Holder(tmp_path, "s", "shared", "write", first, 5) for first in (1000, 5000, 9000)]
    holders.extend(writers)
    for writer in writers:
        assert writer.ready, (writer.first_line, writer.finish())
        writer.go()
    for writer in writers:
        code, out, err = writer.finish()
        assert code == 0, (out, err[-2000:])


async def test_an_adoption_committed_during_another_openers_checks_does_not_trip_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checks of an opener read one snapshot: another opener adopting the file between
    two of them must not make it mix the old file's schema version with the new file's
    version table (which once raised a false "upgrade pyrogram-storage" error)."""
    path = copy_fixture("pyrogram", tmp_path, name="s")
    with contextlib.closing(sqlite3.connect(path)) as db:  # WAL: the other may commit meanwhile
        db.execute("PRAGMA journal_mode = WAL").fetchall()
    detect = sqlite_schema._detect_family
    raced: list[bool] = []

    def detect_while_another_adopts(db: sqlite3.Connection, tables: set[str]) -> Any:
        if not raced:
            raced.append(True)
            with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as other:
                sqlite_schema.prepare(other, str(path), sqlite_schema.Layout.UPSTREAM)
        return detect(db, tables)

    monkeypatch.setattr(sqlite_schema, "_detect_family", detect_while_another_adopts)
    async with FileStorage("s", tmp_path) as storage:
        assert (await storage.get_session()).user_id == manifest("pyrogram")["session"]["user_id"]
        assert await storage.count_peers() == len(manifest("pyrogram")["peers"])
    assert raced


async def test_two_objects_in_one_process_share_and_see_each_others_writes(
    tmp_path: Path,
) -> None:
    a = FileStorage("s", tmp_path, lock="shared", username_ttl=None)
    b = FileStorage("s", tmp_path, lock="shared", username_ttl=None)
    async with a, b:
        await a.update_session(dc_id=4, user_id=42)
        assert (await b.get_session()).user_id == 42
        await b.update_session(user_id=43)
        assert (await a.get_session()).user_id == 43
        await a.upsert_peers([Peer(1, 1, PeerType.USER, ("first",))])
        assert (await b.peer_by_id(1)).usernames == ("first",)
        await b.upsert_peers([Peer(1, 2, PeerType.USER, ("second",))])
        assert (await a.peer_by_id(1)).access_hash == 2  # not a stale cached copy
        assert (await a.peer_by_username("second")).id == 1
        # What the client glue asks, with its faster paths: never stale either.
        assert (a.cached_access(1) or await a._access_by_id(1)) == (2, "user")
        assert await a._access_by_username("second") == (1, 2, "user")
        await b.upsert_peers([Peer(1, 3, PeerType.BOT, ("third",))])
        assert (a.cached_access(1) or await a._access_by_id(1)) == (3, "bot")
        assert await a._access_by_username("third") == (1, 3, "bot")
        with pytest.raises(PeerNotFound):
            await a._access_by_username("second")
        await b.set_update_states([UpdateState(0, pts=5)])
        assert await a.get_update_states() == [UpdateState(0, pts=5)]

        async def hammer(storage: FileStorage, base: int) -> None:
            for i in range(60):
                await storage.upsert_peers([Peer(base + i, i, PeerType.USER, (f"h{base + i}",))])
                await storage.update_session(api_id=base + i)

        await asyncio.gather(hammer(a, 10_000), hammer(b, 20_000))
        assert await a.count_peers() == 121
        assert (await b.peer_by_username("h10059")).id == 10_059


async def test_a_long_write_lock_is_session_locked_after_busy_timeout(tmp_path: Path) -> None:
    """A write lock held longer than busy_timeout elsewhere: our error, not sqlite3's."""
    await _session_file(tmp_path)
    storage = FileStorage("s", tmp_path, lock="shared", busy_timeout=0.3, username_ttl=None)
    await storage.open()
    blocker = sqlite3.connect(tmp_path / "s.session", isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        blocker.execute("INSERT INTO peers (id, access_hash, type) VALUES (77, 7, 'user')")
        for write in (
            storage.upsert_peers([Peer(2, 2, PeerType.USER)]),
            storage.update_session(user_id=9),
            storage.set_update_states([UpdateState(0, pts=1)]),
            storage.save(),
        ):
            with pytest.raises(SessionLocked) as error:
                await write
            assert "locked" in str(error.value)
            assert isinstance(error.value.__cause__, sqlite3.OperationalError)
        # Reads go on during another's write (WAL): the committed state.
        assert (await storage.peer_by_username("one")).id == 1
        blocker.execute("COMMIT")
        await storage.upsert_peers([Peer(2, 2, PeerType.USER)])
        assert (await storage.peer_by_id(77)).access_hash == 7
    finally:
        blocker.close()
        await storage.close()


async def test_no_raw_sqlite_error_under_contention(tmp_path: Path) -> None:
    """Four shared objects with a tiny busy_timeout: each call succeeds or is SessionLocked."""
    stores = [
        FileStorage("s", tmp_path, lock="shared", busy_timeout=0.001, username_ttl=None)
        for _ in range(4)
    ]
    for store in stores:
        await store.open()
    outcomes = {"ok": 0, "locked": 0}

    async def churn(n: int, store: FileStorage) -> None:
        for i in range(80):
            try:
                await store.upsert_peers([Peer(n * 1000 + i, i, PeerType.USER, (f"c{n}_{i}",))])
                await store.update_session(api_id=i + 1)
                await store.get_session()
                outcomes["ok"] += 1
            except SessionLocked:
                outcomes["locked"] += 1
            except StorageError as exc:  # pragma: no cover - the failure this test is for
                raise AssertionError(f"not SessionLocked: {exc!r}") from exc

    try:
        await asyncio.gather(*(churn(n, store) for n, store in enumerate(stores)))
    finally:
        for store in stores:
            await store.close()
    assert outcomes["ok"] > 0


async def test_delete_refuses_while_another_storage_has_the_session_open(
    tmp_path: Path, holders: list[Holder]
) -> None:
    """Deleting under an open storage would send its later writes into an unlinked file."""
    holder_in_process = FileStorage("s", tmp_path, username_ttl=None)
    await holder_in_process.open()
    try:
        with pytest.raises(SessionLocked):
            await FileStorage("s", tmp_path).delete()
        await holder_in_process.upsert_peers([Peer(3, 33, PeerType.USER, ("three",))])
    finally:
        await holder_in_process.close()
    holder = Holder(tmp_path, "s", "exclusive", "hold")
    holders.append(holder)
    assert holder.ready
    with pytest.raises(SessionLocked) as error:
        await FileStorage("s", tmp_path).delete()
    assert f"pid {holder.proc.pid}" in str(error.value)
    holder.kill()
    async with FileStorage("s", tmp_path, username_ttl=None) as storage:
        assert (await storage.peer_by_username("three")).id == 3
    await FileStorage("s", tmp_path).delete()  # nobody holds it now
    assert list(tmp_path.iterdir()) == []


async def test_two_clients_in_one_process_through_the_client_glue(tmp_path: Path) -> None:
    """What a second Client(...) on the same session name meets in start()."""
    from pyrogram_storage.clients import ADAPTERS

    first = ADAPTERS["kurigram"](FileStorage("me", tmp_path))
    second = ADAPTERS["kurigram"](FileStorage("me", tmp_path))
    await first.open()
    try:
        with pytest.raises(SessionLocked, match=f"pid {os.getpid()}"):
            await second.open()
        await first.dc_id(4)
    finally:
        await first.close()
    await second.open()
    try:
        assert await second.dc_id() == 4
    finally:
        await second.close()
    shared = [ADAPTERS["pyrofork"](FileStorage("s", tmp_path, lock="shared")) for _ in range(2)]
    for adapter in shared:
        await adapter.open()
    try:
        await shared[0].update_peers([(5, 55, "user", "alice", None)])
        assert (await shared[1].storage.peer_by_username("alice")).access_hash == 55
    finally:
        for adapter in shared:
            await adapter.close()
