"""The file stores under hostile input: what holds for session files holds for bot state.

Real files on a real file system (a small tmpfs for the full disk), under umask 000
where it matters: links planted where a store writes, world-writable folders, damaged
and foreign data, scratch names with glob characters, cancelled opens, a full disk, a
table written by a newer release. Each test says what happened before.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import stat
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pyrogram_storage import kv
from pyrogram_storage.errors import (
    CorruptDataError,
    DiskFullError,
    LockedError,
    NotFoundError,
    SchemaTooNewError,
    StorageError,
)
from pyrogram_storage.kv import testing as kv_testing

from ..test_hostile import SmallDisk, _lock_fds, _small_disk, digest

FILE_STORES = ["sqlite", "json"]


def _store(kind: str, path: Path, **options: Any) -> kv.KVStore[Any]:
    if kind == "sqlite":
        return kv.SQLiteKV(path, sweep_interval=None, **options)
    return kv.JSONFileKV(path, **options)


def _path(kind: str, folder: Path) -> Path:
    return folder / ("state.db" if kind == "sqlite" else "state.json")


@contextlib.contextmanager
def _umask(mask: int) -> Iterator[None]:
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def _mode(path: Path | str) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


# -- private folders and files --------------------------------------------------------------


@pytest.mark.parametrize("kind", FILE_STORES)
@pytest.mark.parametrize("mask", [0o000, 0o022, 0o277])
async def test_folders_and_files_are_private_whatever_the_umask(
    tmp_path: Path, kind: str, mask: int
) -> None:
    """Before: Path.mkdir(mode=0o700, parents=True) made the parents 0777 under umask 000,
    so another local user could plant links below them."""
    path = _path(kind, tmp_path / "a" / "b" / "c")
    with _umask(mask):
        async with _store(kind, path) as store:
            await store.set("k", 1)
            await store.set("k", 2)  # JSON: a second write makes the .bak
    for folder in (tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "c"):
        assert _mode(folder) == 0o700, (oct(mask), folder)
    suffixes = ("", "-wal", "-shm") if kind == "sqlite" else ("", ".bak")
    for suffix in suffixes:
        name = f"{path}{suffix}"
        if os.path.exists(name):
            assert _mode(name) == 0o600, (oct(mask), name)


# -- links planted where a store writes -------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", "-wal", "-shm", "-journal"])
async def test_sqlite_refuses_a_link_in_place_of_its_files(tmp_path: Path, suffix: str) -> None:
    """Before: SQLiteKV followed a symlinked database, switched the other application's
    database to WAL and added its kv tables to it."""
    victim = tmp_path / "other_app.db"
    with sqlite3.connect(victim) as db:
        db.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY)")
    db.close()
    before = digest(victim)
    path = tmp_path / "state.db"
    if suffix:
        async with kv.SQLiteKV(path) as store:  # a real store, then a planted side file
            await store.set("k", 1)
    (tmp_path / f"state.db{suffix}").symlink_to(victim)
    with pytest.raises(StorageError, match="symbolic link"):
        await kv.SQLiteKV(path).open()
    assert digest(victim) == before
    with sqlite3.connect(victim) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("delete",)
        assert [r[0] for r in db.execute("SELECT name FROM sqlite_master")] == ["accounts"]
    db.close()


@pytest.mark.parametrize("planted", ["store", "backup", "lock", "dangling-lock"])
async def test_json_refuses_a_link_in_place_of_its_files(tmp_path: Path, planted: str) -> None:
    """Before: a dangling symlink at PATH.lock made the open create its target
    (O_CREAT without O_NOFOLLOW); a linked store file was read and replaced."""
    path = tmp_path / "state.json"
    async with kv.JSONFileKV(path) as store:
        await store.set("k", 1)
    victim = tmp_path / "victim.txt"
    names = {"store": path, "backup": Path(f"{path}.bak"), "lock": Path(f"{path}.lock")}
    if planted == "dangling-lock":
        Path(f"{path}.lock").symlink_to(victim)
    else:
        victim.write_text("precious")
        names[planted].unlink(missing_ok=True)
        names[planted].symlink_to(victim)
    with pytest.raises(StorageError, match="symbolic link"):
        await kv.JSONFileKV(path).open()
    if planted == "dangling-lock":
        assert not victim.exists()
    else:
        assert victim.read_text() == "precious"
    assert _lock_fds("state.json.lock") == []


async def test_json_refuses_a_hard_linked_lock_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    os.link(victim, f"{path}.lock")
    with pytest.raises(StorageError, match="hard links"):
        await kv.JSONFileKV(path).open()
    assert victim.read_text() == "precious"


# -- scratch files ------------------------------------------------------------------------


async def test_scratch_clean_up_takes_glob_characters_literally(tmp_path: Path) -> None:
    """Before: opening ``bot[12].json`` deleted ``bot1.json``'s temporary file (the glob
    ``.bot[12].json.tmp-*`` matched it), failing that store's write."""
    other = tmp_path / f".bot1.json.new-{os.getpid()}-abcd"
    other.write_text("in flight")
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    mine = tmp_path / f".bot[12].json.new-{dead.stdout.strip()}-dead"
    mine.write_text("left by a killed writer")
    async with kv.JSONFileKV(tmp_path / "bot[12].json") as store:
        await store.set("k", 1)
    assert other.read_text() == "in flight"
    assert not mine.exists()  # its own leftover, of a dead process, is removed


# -- a cancelled open ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", FILE_STORES)
async def test_a_cancelled_open_releases_what_it_took(tmp_path: Path, kind: str) -> None:
    """Before: an open cancelled while its work ran on the worker thread left the JSON lock
    held (LockedError naming our own pid) and SQLite's connections open."""
    path = _path(kind, tmp_path)
    outcomes: Counter[str] = Counter()
    for step in range(40):
        store = _store(kind, path)
        opening = asyncio.ensure_future(store.open())
        for _ in range(step % 10):
            await asyncio.sleep(0)
        if step >= 30:
            await asyncio.sleep(0.0002 * (step - 29))
        opening.cancel()
        try:
            await opening
        except asyncio.CancelledError:
            outcomes["cancelled"] += 1
        else:
            outcomes["opened"] += 1
            await store.close()
        await asyncio.sleep(0.01)  # the undo runs after the work, on the same lane
        assert _lock_fds(path.name) == [], step
        async with _store(kind, path) as other:  # another object opens at once
            await other.set("k", step)
        await store.open()  # and so does the same one
        await store.close()
    print(f"\ncancelled opens: {dict(outcomes)}")
    assert outcomes["cancelled"] >= 5


# -- damaged and foreign data ----------------------------------------------------------------


async def test_json_nested_too_deeply_is_corrupt_data(tmp_path: Path) -> None:
    """Before: a JSON store of 100,000 nested arrays raised RecursionError on open."""
    path = tmp_path / "state.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    before = digest(path)
    with pytest.raises(CorruptDataError, match="nested too deeply"):
        await kv.JSONFileKV(path).open()
    assert digest(path) == before


@pytest.mark.parametrize(
    "value, expiry",
    [(b"blob", None), (2.5, None), (None, None), ('"text"', "soon"), ('"text"', b"\x01")],
    ids=["blob", "real", "null", "text-expiry", "blob-expiry"],
)
async def test_sqlite_rows_of_the_wrong_type_are_corrupt_values(
    tmp_path: Path, value: object, expiry: object
) -> None:
    """Before: AttributeError from get/compare_and_set for a BLOB, REAL or NULL value,
    TypeError for a text or blob expiry. Reads report it and change nothing; delete()
    removes it, the way to get rid of it."""
    path = tmp_path / "state.db"
    async with kv.SQLiteKV(path) as store:
        await store.set("good", 1)
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO kv VALUES ('default', 'bad', ?, ?)", (value, expiry))
    db.close()
    async with kv.SQLiteKV(path, sweep_interval=None) as store:
        reads: list[Any] = [store.get("bad")]
        if value is not None:  # a NULL value reads as a key removed meanwhile: skipped
            reads.append(kv_testing.collect(store.items(), 10))
        if expiry is None:
            reads += [store.compare_and_set("bad", 1, expected="text")]
            with pytest.raises(kv.NotACounterError):
                await store.increment("bad")
        else:
            reads += [store.has("bad"), kv_testing.collect(store.keys(), 10)]
        for read in reads:
            with pytest.raises(kv.CorruptValueError):
                await read
        assert await store.get("good") == 1
        with sqlite3.connect(path) as db:
            assert db.execute("SELECT v, e FROM kv WHERE k = 'bad'").fetchone() == (value, expiry)
        db.close()
        assert await store.delete("bad") is True
        assert await store.get("bad") is None


async def test_sqlite_text_that_is_not_utf8_is_a_corrupt_value(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    async with kv.SQLiteKV(path) as store:
        await store.set("good", 1)
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO kv VALUES ('default', 'bad', CAST(X'22FF22' AS TEXT), NULL)")
    db.close()
    async with kv.SQLiteKV(path) as store:
        with pytest.raises(kv.CorruptValueError):
            await store.get("bad")
        assert await store.get("good") == 1


# -- schema versions --------------------------------------------------------------------------


async def test_sqlite_table_of_a_newer_release_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    async with kv.SQLiteKV(path) as store:
        await store.set("k", 1)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT * FROM pyrogram_storage_kv").fetchall() == [("kv", 1)]
        db.execute("UPDATE pyrogram_storage_kv SET version = 99")
    db.close()
    before = digest(path)
    with pytest.raises(SchemaTooNewError, match="upgrade pyrogram-storage"):
        await kv.SQLiteKV(path).open()
    assert digest(path) == before
    async with kv.SQLiteKV(path, table="other") as store:  # another table of the file is fine
        await store.set("k", 2)


async def test_sqlite_table_of_an_unversioned_release_is_adopted(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with sqlite3.connect(path) as db:  # what releases before the schema version wrote
        db.execute(
            'CREATE TABLE "kv" (ns TEXT NOT NULL, k TEXT NOT NULL, v, e REAL, '
            "PRIMARY KEY (ns, k)) WITHOUT ROWID"
        )
        db.execute("INSERT INTO kv VALUES ('default', 'old', 41, NULL)")
    db.close()
    async with kv.SQLiteKV(path) as store:
        assert await store.increment("old") == 42
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT version FROM pyrogram_storage_kv").fetchone() == (1,)
        assert db.execute("SELECT name FROM sqlite_master WHERE name = 'kv_expiry'").fetchone()
    db.close()


# -- reading only what exists ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", FILE_STORES)
async def test_create_false_opens_only_a_store_that_exists(tmp_path: Path, kind: str) -> None:
    path = _path(kind, tmp_path / "missing")
    with pytest.raises(NotFoundError):
        await _store(kind, path, create=False).open()
    assert not (tmp_path / "missing").exists()  # no folder, file or lock made
    async with _store(kind, path) as store:
        await store.set("k", 1)
    async with _store(kind, path, create=False) as store:
        assert await store.get("k") == 1


# -- a full disk: a real, small tmpfs -----------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    with _small_disk(tmp_path / "disk", "size=1m,mode=0700") as disk:
        yield disk


@pytest.mark.parametrize("kind", FILE_STORES)
async def test_a_full_disk_is_disk_full_error_and_the_store_goes_on(
    small_disk: SmallDisk, kind: str
) -> None:
    """At every amount of free space a store opens and writes, or fails with DiskFullError;
    what was stored stays, and the same object works again once there is room."""
    root = small_disk.root
    path = _path(kind, root)
    async with _store(kind, path) as store:
        await store.set("kept", {"value": 1})
    outcomes: Counter[str] = Counter()
    for pages in range(0, 24):
        small_disk.fill(leave=pages * 4096)
        store = _store(kind, path)
        try:
            await store.open()
            await store.set(f"new{pages}", "x" * 20_000)
        except DiskFullError as exc:
            assert "disk is full" in str(exc)
            outcomes["DiskFullError"] += 1
        else:
            outcomes["written"] += 1
        finally:
            with contextlib.suppress(StorageError):
                await store.close()
        assert _lock_fds(path.name) == []
        small_disk.empty()
        async with _store(kind, path) as again:
            assert await again.get("kept") == {"value": 1}
            await again.set("after", pages)
    print(f"\n{kind} on a full disk: {dict(outcomes)}")
    assert outcomes["DiskFullError"] >= 3


async def test_a_failing_json_write_fails_its_waiters_and_the_store_goes_on(
    small_disk: SmallDisk,
) -> None:
    """Before: a writer task that died (a lone surrogate in the snapshot) left every
    waiting set() hanging for ever; now a failed write fails each of its waiters."""
    path = small_disk.root / "state.json"
    async with kv.JSONFileKV(path) as store:
        await store.set("kept", 1)
        small_disk.fill()
        results = await asyncio.wait_for(
            asyncio.gather(
                *(store.set(f"k{i}", "x" * 5000) for i in range(20)), return_exceptions=True
            ),
            30,
        )
        assert results and all(isinstance(r, DiskFullError) for r in results), results
        small_disk.empty()
        await asyncio.wait_for(store.set("after", 2), 30)
        assert await store.get("after") == 2 and await store.get("kept") == 1
    async with kv.JSONFileKV(path) as store:
        assert await store.get("after") == 2
        assert await store.get("k0") is None  # not stored, and not pretending to be


def test_lock_error_names_the_holder(tmp_path: Path) -> None:
    path = tmp_path / "state.json"

    async def main() -> None:
        async with kv.JSONFileKV(path):
            with pytest.raises(LockedError) as caught:
                await kv.JSONFileKV(path).open()
            assert f"pid {os.getpid()}" in str(caught.value)
            assert isinstance(caught.value, kv.StoreLockedError)

    asyncio.run(main())
