"""Adopting big client files: linear, faithful to the triggers, off the event loop.

Costs are counted in SQLite virtual-machine instructions (``set_progress_handler``),
which do not depend on the machine or its load: a step that scans a table per row
shows up as a quadratic count. Timings live in ``benchmarks/adopt.py``.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from pyrogram_storage import FileStorage, Peer, PeerType
from pyrogram_storage.sqlite.schema import Layout, create_schema, prepare

from . import big_files
from .big_files import FAMILY, client_file, kept_names

CLIENTS = sorted(FAMILY)


def _instructions(db: sqlite3.Connection) -> list[int]:
    """Start counting the VM instructions ``db`` runs; read the count from the list."""
    count = [0]

    def tick() -> int:
        count[0] += 1
        return 0

    db.set_progress_handler(tick, 100)
    return count


def _adoption_cost(client: str, workdir: Path, n: int) -> int:
    path = client_file(client, workdir, n, name=f"{client}-{n}")
    db = sqlite3.connect(path, isolation_level=None)
    try:
        count = _instructions(db)
        prepare(db, str(path), Layout.UPSTREAM)
        return count[0]
    finally:
        db.close()


@pytest.mark.parametrize("client", ["kurigram", "pyrotgfork", "pyrofork", "pyrogram"])
def test_adoption_cost_grows_linearly_with_the_peers(client: str, tmp_path: Path) -> None:
    small = _adoption_cost(client, tmp_path, 2_000)
    big = _adoption_cost(client, tmp_path, 8_000)
    # Four times the peers: four times the work, give or take the fixture's constant part;
    # a scan per row (quadratic) would be sixteen times.
    assert big / small < 5, (small, big)


def _names_cost(statements: list[tuple[str, list[tuple[object, ...]]]]) -> int:
    db = sqlite3.connect(":memory:", isolation_level=None)
    try:
        create_schema(db, Layout.UPSTREAM)
        db.execute("INSERT INTO peers (id, access_hash, type) VALUES (1, 1, 'user')")
        count = _instructions(db)
        for sql, rows in statements:
            db.executemany(sql, rows)
        return count[0]
    finally:
        db.close()


def _many_names(n: int) -> list[tuple[str, list[tuple[object, ...]]]]:
    names = [f"name{i}" for i in range(n)]
    renamed = [f"other{i}" for i in range(n)]
    now = 1_700_000_000
    return [
        # Our engine and the upstream-dev clients: (peer id, username) rows, then a rename.
        ("INSERT INTO usernames (id, username, last_update_on) VALUES (?, ?, ?)",
         [(1, name, now) for name in names]),
        ("DELETE FROM usernames WHERE id = ?1 OR peer_id = ?1", [(1,)]),
        ("INSERT INTO usernames (id, username, last_update_on) VALUES (?, ?, ?)",
         [(1, name, now) for name in renamed]),
        # Pyrofork and Electrogram: delete by peer, then (username, peer id) rows.
        ("DELETE FROM usernames WHERE peer_id = ?", [(1,)]),
        ("REPLACE INTO usernames (peer_id, id) VALUES (?, ?)", [(1, name) for name in names]),
    ]  # fmt: skip


def test_many_usernames_on_one_peer_cost_n_log_n() -> None:
    """The mirror triggers do one index search per name, not a scan of the peer's names."""
    small = _names_cost(_many_names(1_000))
    big = _names_cost(_many_names(4_000))
    assert big / small < 5, (small, big)


def _add_corner_cases(path: Path) -> None:
    """Rows a client file can hold besides the plain ones of :func:`client_file`."""
    db = sqlite3.connect(path)
    with db:
        # A name that moved from one peer to another, a name repeated on one peer, a name the
        # INTEGER id column must not mirror, a row whose peer is gone, a NULL name first.
        db.executemany(
            "INSERT INTO usernames (id, username) VALUES (?, ?)",
            [
                (big_files.peer(5)[0], "big_alias6"),
                (big_files.peer(8)[0], "big_alias8"),
                (big_files.peer(9)[0], "007agent"),
                (424242, "orphan_name"),
                (424243, None),
                (424243, "after_null"),
            ],
        )
        db.execute(
            "INSERT INTO peers (id, access_hash, type, last_update_on) "
            "VALUES (424243, 1, 'user', 1)"
        )
    db.close()


@pytest.mark.parametrize("client", ["kurigram", "pyrotgfork"])
def test_adoption_keeps_the_clients_rows_and_gives_each_peer_its_first_username(
    client: str, tmp_path: Path
) -> None:
    path = client_file(client, tmp_path, 3_000)
    _add_corner_cases(path)
    db = sqlite3.connect(path, isolation_level=None)
    try:
        names = db.execute("SELECT rowid, id, username FROM usernames ORDER BY rowid").fetchall()
        peers = db.execute(
            "SELECT id, access_hash, type, phone_number, last_update_on FROM peers ORDER BY id"
        ).fetchall()
        first: dict[int, str] = {}
        for _, peer_id, username in names:
            if username is not None:
                first.setdefault(peer_id, username)
        prepare(db, str(path), Layout.UPSTREAM)
        # Every row the client wrote is where it was, rowid included; nothing was added.
        assert (
            db.execute("SELECT rowid, id, username FROM usernames ORDER BY rowid").fetchall()
            == names
        )
        assert (
            db.execute(
                "SELECT id, access_hash, type, phone_number, last_update_on FROM peers ORDER BY id"
            ).fetchall()
            == peers
        )
        assert dict(db.execute("SELECT id, username FROM peers")) == {
            row[0]: first.get(row[0]) for row in peers
        }
    finally:
        db.close()


@pytest.mark.parametrize("client", ["kurigram", "pyrotgfork"])
def test_names_written_after_adoption_are_mirrored_as_in_a_new_file(
    client: str, tmp_path: Path
) -> None:
    """Whichever family writes after adoption, both kinds of rows follow, as in a new file."""
    path = client_file(client, tmp_path, 300)
    adopted = sqlite3.connect(path, isolation_level=None)
    new = sqlite3.connect(":memory:", isolation_level=None)
    try:
        prepare(adopted, str(path), Layout.UPSTREAM)
        create_schema(new, Layout.UPSTREAM)
        new.execute("INSERT INTO peers (id, access_hash, type) VALUES (77, 1, 'user')")
        stamp = 1_700_000_000
        for db in (adopted, new):
            # An upstream-dev client renames peer 77, then Pyrofork adds a name of its own.
            db.execute("REPLACE INTO peers (id, access_hash, type) VALUES (77, 1, 'user')")
            db.execute("DELETE FROM usernames WHERE id = 77")
            db.executemany(
                "INSERT INTO usernames (id, username) VALUES (?, ?)",
                [(77, "first"), (77, "second"), (77, "third")],
            )
            db.execute("REPLACE INTO usernames (peer_id, id) VALUES (77, 'fourth')")
            # Our engine writes another peer with its primary name in peers.username.
            db.execute(
                "REPLACE INTO peers (id, access_hash, type, username, last_update_on) "
                "VALUES (78, 1, 'user', 'one', ?)",
                (stamp,),
            )
            db.executemany(
                "INSERT INTO usernames (id, username, last_update_on) VALUES (?, ?, ?)",
                [(78, "one", stamp), (78, "two", stamp)],
            )
        # Pyrofork reads the stamp of the rows with a peer_id; nothing reads the others'.
        query = (
            "SELECT id, username, peer_id, peer_id IS NULL OR last_update_on IS NOT NULL "
            "FROM usernames WHERE id IN (77, 78) OR peer_id IN (77, 78) ORDER BY rowid"
        )
        assert adopted.execute(query).fetchall() == new.execute(query).fetchall()
        assert adopted.execute("SELECT count(*) FROM usernames WHERE peer_id = 77").fetchone() == (
            4,
        )
    finally:
        adopted.close()
        new.close()


@pytest.mark.parametrize("client", CLIENTS)
async def test_adopting_a_big_file_keeps_every_peer_username_and_phone(
    client: str, tmp_path: Path
) -> None:
    n = 5_000
    client_file(client, tmp_path, n)
    async with FileStorage(client, tmp_path, username_ttl=None) as storage:
        seen = 0
        async for batch in storage.iter_peer_batches(1_000):
            for got in batch:
                if not big_files.is_big(got.id):
                    continue  # the fixture's own peers (tests/test_client_files.py)
                peer_id, access_hash, kind, names, phone = big_files.peer(
                    big_files.index_of(got.id)
                )
                assert (got.id, got.access_hash, got.type.value, got.phone_number) == (
                    peer_id,
                    access_hash,
                    kind,
                    phone,
                )
                assert got.usernames == kept_names(client, names)
                seen += 1
        assert seen == n
        for i in (0, 1, n // 2, n - 1):
            peer_id, _, _, names, phone = big_files.peer(i)
            for name in kept_names(client, names):
                assert (await storage.peer_by_username(name)).id == peer_id
            if phone:
                assert (await storage.peer_by_phone(phone)).id == peer_id
        # The adopted file takes our writes like a new one.
        await storage.upsert_peers([Peer(7, 7, PeerType.USER, ("seven", "sept"))])
        assert (await storage.peer_by_username("sept")).id == 7


async def test_first_open_of_a_big_file_leaves_the_event_loop_free(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Adoption runs on the storage's worker thread: a 2 ms ticker keeps ticking."""
    n = 100_000
    client_file("kurigram", tmp_path, n)
    loop = asyncio.get_running_loop()
    gaps: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        last = loop.time()
        while not stop.is_set():
            await asyncio.sleep(0.002)
            now = loop.time()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.02)
    gaps.clear()
    storage = FileStorage("kurigram", tmp_path)
    caplog.set_level(logging.INFO, logger="pyrogram_storage.sqlite")
    started = time.perf_counter()
    await storage.open()
    took = time.perf_counter() - started
    stop.set()
    await task
    try:
        assert (await storage.peer_by_id(big_files.peer(n - 1)[0])).access_hash
    finally:
        await storage.close()
    (adopted,) = [r for r in caplog.records if r.getMessage().startswith("adopted")]
    assert adopted.thread != threading.get_ident()  # not the event loop's thread
    # Work done on the loop would show as one gap as long as the open itself.
    assert len(gaps) >= 5, (took, gaps)
    assert max(gaps) < took * 0.8, (took, max(gaps))
