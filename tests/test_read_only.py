"""Sessions in read-only places: read_only=True reads them, and sources are never changed.

A real read-only mount (a tmpfs remounted read-only, as root) for the folder, and a
client's rollback-journal file for "the command line never changes a source".
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyrogram_storage import FileStorage, Peer, PeerType, ReadOnlyError

from .test_cli import run
from .test_hostile import _small_disk

MS_RDONLY, MS_REMOUNT = 1, 32
KEY = bytes(range(256))


def _remount(root: Path, read_only: bool) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    flags = MS_REMOUNT | (MS_RDONLY if read_only else 0)
    if libc.mount(b"tmpfs", os.fsencode(root), b"tmpfs", flags, b"size=4m,mode=0700") != 0:
        raise OSError(ctypes.get_errno(), "remount failed")


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.iterdir())
        if path.is_file()
    }


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder holding a session, on a mount that is then made read-only."""
    with _small_disk(tmp_path / "disk", "size=4m,mode=0700") as disk:
        yield disk.root
        with contextlib.suppress(OSError):
            _remount(disk.root, read_only=False)  # so that the test's files can go


async def _write_session(folder: Path) -> None:
    async with FileStorage("me", folder, commit_interval=0) as storage:
        await storage.update_session(
            dc_id=2, api_id=7, test_mode=False, auth_key=KEY, user_id=42, is_bot=False
        )
        await storage.upsert_peers([Peer(5, 55, PeerType.USER, ("five",), "1555")])


async def test_a_session_on_a_read_only_mount_is_read_with_read_only(
    read_only_folder: Path,
) -> None:
    await _write_session(read_only_folder)
    _remount(read_only_folder, read_only=True)
    before = _snapshot(read_only_folder)
    with pytest.raises(ReadOnlyError, match="read_only=True"):
        await FileStorage("me", read_only_folder).open()
    async with FileStorage("me", read_only_folder, read_only=True) as storage:
        assert (await storage.get_session()).user_id == 42
        assert (await storage.peer_by_username("five")).id == 5
        with pytest.raises(ReadOnlyError):
            await storage.upsert_peers([Peer(6, 1, PeerType.USER)])
    assert _snapshot(read_only_folder) == before


def test_the_command_line_reads_a_read_only_session(read_only_folder: Path) -> None:
    import asyncio

    asyncio.run(_write_session(read_only_folder))
    _remount(read_only_folder, read_only=True)
    before = _snapshot(read_only_folder)
    path = str(read_only_folder / "me.session")
    inspected = run("inspect", path)
    assert inspected.returncode == 0, inspected.stderr
    assert "user id" in inspected.stdout and "42" in inspected.stdout
    exported = run("export-string", path, "--show-secret")
    assert exported.returncode == 0, exported.stderr
    assert len(exported.stdout.strip()) == 362
    assert _snapshot(read_only_folder) == before


def _rollback_journal_file(path: Path) -> None:
    """A session file as Kurigram writes it: schema 7, rollback journal (not WAL)."""
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE sessions (dc_id INTEGER PRIMARY KEY, server_address TEXT, port INTEGER,
            api_id INTEGER, test_mode INTEGER, auth_key BLOB, date INTEGER NOT NULL,
            user_id INTEGER, is_bot INTEGER);
        CREATE TABLE peers (id INTEGER PRIMARY KEY, access_hash INTEGER, type INTEGER NOT NULL,
            phone_number TEXT, last_update_on INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE usernames (id INTEGER, username TEXT);
        CREATE TABLE update_state (id INTEGER PRIMARY KEY, pts INTEGER, qts INTEGER,
            date INTEGER, seq INTEGER);
        CREATE TABLE version (number INTEGER PRIMARY KEY);
        INSERT INTO version VALUES (7);
        """
    )
    db.execute("INSERT INTO sessions VALUES (2, '149.154.167.51', 443, 7, 0, ?, 0, 42, 0)", (KEY,))
    db.execute("INSERT INTO peers VALUES (5, 55, 'user', '1555', 0)")
    db.execute("INSERT INTO usernames VALUES (5, 'five')")
    db.commit()
    db.close()


def test_inspecting_a_client_file_changes_nothing(tmp_path: Path) -> None:
    """Before, inspect switched a rollback-journal source to WAL (a header change)."""
    path = tmp_path / "kuri.session"
    _rollback_journal_file(path)
    before = _snapshot(tmp_path)
    result = run("inspect", str(path))
    assert result.returncode == 0, result.stderr
    assert "Kurigram" in result.stdout
    assert _snapshot(tmp_path) == before
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    db.close()


async def test_read_only_reads_a_client_file_through_a_copy_in_memory(tmp_path: Path) -> None:
    path = tmp_path / "kuri.session"
    _rollback_journal_file(path)
    before = _snapshot(tmp_path)
    async with FileStorage("kuri", tmp_path, read_only=True, username_ttl=None) as storage:
        assert (await storage.get_session()).auth_key == KEY
        assert (await storage.peer_by_username("five")).access_hash == 55
    assert _snapshot(tmp_path) == before
