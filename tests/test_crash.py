"""Crash safety: SIGKILL a writer process at random points, then check the file and its data.

The writer (tests/crash_writer.py) prints a line after each call returned; every
line the test read before the kill is a write the storage acknowledged, and must be
in the file afterwards. ``PYROGRAM_STORAGE_FULL=1`` runs the full 200+ cycles
(``make test-full``); the default is a CI-sized run.
"""

from __future__ import annotations

import os
import random
import selectors
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pyrogram_storage import FileStorage, Peer, _migrations

from . import big_files, crash_writer
from .fixture_files import CLIENT_NAMES, copy_fixture, manifest

FULL = os.environ.get("PYROGRAM_STORAGE_FULL") == "1"
CYCLES = int(os.environ.get("PYROGRAM_STORAGE_CRASH_CYCLES", 220 if FULL else 25))
WRITER = Path(crash_writer.__file__)
NAME = "crash"
STARTUP_LIMIT = 60.0  # seconds a writer may take to print anything; a hang, not a timing test


@dataclass
class Acknowledged:
    """What the writers reported as done, across every killed process."""

    peers: dict[int, int] = field(default_factory=dict)  # peer id -> newest acked cycle
    session: int | None = None  # newest acked user_id
    saves: int = 0
    lines: int = 0
    highest_cycle: int = -1

    def record(self, line: str) -> None:
        kind, _, number = line.partition(" ")
        if kind == "ready":
            return
        cycle = int(number)
        self.lines += 1
        self.highest_cycle = max(self.highest_cycle, cycle)
        if kind == "peers":
            for peer_id in crash_writer.peer_ids(cycle):
                self.peers[peer_id] = max(self.peers.get(peer_id, -1), cycle)
        elif kind == "session":
            self.session = cycle if self.session is None else max(self.session, cycle)
        elif kind == "save":
            self.saves += 1
        else:  # pragma: no cover - the writer only prints these
            raise AssertionError(f"unexpected writer output {line!r}")


def _run_and_kill(workdir: Path, first: int, rng: random.Random, acked: Acknowledged) -> str:
    """Start a writer, SIGKILL it at a random point, record the lines it acknowledged.

    Return where it was killed ("startup" or "writing") for the figures.
    """
    proc = subprocess.Popen(
        [sys.executable, str(WRITER), str(workdir), NAME, str(first)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    os.set_blocking(proc.stdout.fileno(), False)
    buffer = b""
    # One cycle in ten dies before or while it opens the file (migrations, WAL setup).
    during_startup = rng.random() < 0.1
    target = 0 if during_startup else rng.randint(1, 40)
    seen = 0
    deadline = time.monotonic() + STARTUP_LIMIT
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if during_startup:
            time.sleep(rng.uniform(0.0, 0.6))
        while seen < target:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                _, err = proc.communicate()
                raise AssertionError(f"writer stopped or hung: {err.decode(errors='replace')}")
            if selector.select(timeout=0.5):
                chunk = proc.stdout.read() or b""
                buffer += chunk
                seen = buffer.count(b"\n")
        if not during_startup:
            time.sleep(rng.uniform(0.0, 0.03))
    proc.send_signal(signal.SIGKILL)
    rest, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, err.decode(errors="replace")
    buffer += rest or b""
    # A line is acknowledged only if it was written whole before the kill.
    for line in buffer.split(b"\n")[:-1]:
        acked.record(line.decode())
    return "startup" if during_startup else "writing"


async def _check(workdir: Path, acked: Acknowledged) -> None:
    """The file opens, holds every acknowledged write, and passes integrity_check."""
    path = workdir / f"{NAME}.session"
    if not path.exists():
        assert acked.lines == 0
        return
    async with FileStorage(NAME, workdir, username_ttl=None) as storage:
        session = await storage.get_session()
        if acked.session is not None:
            assert session.user_id is not None and session.user_id >= acked.session
            assert session.api_id == session.user_id + 1
            assert session.auth_key == bytes(256)
        stored: dict[int, Peer] = {}
        async for batch in storage.iter_peer_batches(5000):
            stored.update((peer.id, peer) for peer in batch)
        for peer_id, cycle in acked.peers.items():
            peer = stored.get(peer_id)
            assert peer is not None, f"acknowledged peer {peer_id} (cycle {cycle}) was lost"
            stored_cycle, rest = divmod(peer.access_hash - peer_id, 1_000_003)
            assert rest == 0
            # A cycle killed in flight may have committed after its last acknowledgement.
            assert stored_cycle >= cycle, (peer_id, stored_cycle, cycle)
            assert peer.usernames == (
                crash_writer.username(peer_id),
                f"alt_{peer_id}_{stored_cycle}",
            )
        if acked.peers:
            newest = max(acked.peers)
            found = await storage.peer_by_username(crash_writer.username(newest))
            assert found.id == newest
            assert (await storage.peer_by_phone(f"+1555{newest:07d}")).id == newest
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    db.close()


@pytest.mark.slow
async def test_sigkill_at_random_points_loses_no_acknowledged_write(tmp_path: Path) -> None:
    seed = int(os.environ.get("PYROGRAM_STORAGE_CRASH_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    acked = Acknowledged()
    where: dict[str, int] = {"startup": 0, "writing": 0}
    for cycle in range(CYCLES):
        point = _run_and_kill(tmp_path, acked.highest_cycle + 1, rng, acked)
        where[point] += 1
        try:
            await _check(tmp_path, acked)
        except BaseException as exc:
            where_ = f"crash cycle {cycle}, seed {seed}, killed during {point}"
            raise AssertionError(where_) from exc
    # The figures for the report: `pytest -s` shows them.
    print(
        f"\ncrash: {CYCLES} SIGKILLs (seed {seed}; {where['startup']} during startup, "
        f"{where['writing']} while writing), {acked.lines} acknowledged writes "
        f"({acked.saves} saves, {len(acked.peers)} distinct peers), none lost"
    )
    assert acked.saves > 0 and where["writing"] > 0


CREATION_KILLS = int(os.environ.get("PYROGRAM_STORAGE_CREATION_KILLS", 200 if FULL else 20))


@pytest.mark.slow
async def test_sigkill_while_creating_a_new_session_leaves_a_file_that_opens(
    tmp_path: Path,
) -> None:
    """A process killed while it creates the file (schema, WAL switch) leaves no dead file."""
    seed = int(os.environ.get("PYROGRAM_STORAGE_CRASH_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    outcomes: dict[str, int] = {}
    for attempt in range(CREATION_KILLS):
        workdir = tmp_path / f"run{attempt}"
        workdir.mkdir()
        path = workdir / f"{NAME}.session"
        proc = subprocess.Popen(
            [sys.executable, str(WRITER), str(workdir), NAME, "0"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + STARTUP_LIMIT
        # Aim at the moment the first file (the lock, the file being built) appears:
        # creation, the schema and the switch to WAL follow it.
        while not any(workdir.iterdir()):
            assert proc.poll() is None and time.monotonic() < deadline, "writer died or hung"
            time.sleep(0.0002)
        time.sleep(rng.uniform(0.0, 0.1))
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        state = "session file in place" if path.exists() else "no session file yet"
        outcomes[state] = outcomes.get(state, 0) + 1
        size = path.stat().st_size if path.exists() else None
        if any(p.name.startswith(f".{NAME}.session.new-") for p in workdir.iterdir()):
            outcomes["a half-built file left aside"] = (
                outcomes.get("a half-built file left aside", 0) + 1
            )
        try:
            async with FileStorage(NAME, workdir) as storage:
                assert (await storage.get_session()).dc_id == 2
            # What the killed process left aside is cleaned up by the next opener.
            left = sorted(p.name for p in workdir.iterdir() if ".new-" in p.name)
            assert left == []
            with sqlite3.connect(path) as db:
                assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            db.close()
        except BaseException as exc:
            message = f"attempt {attempt}, seed {seed}: killed with the file {size} bytes"
            raise AssertionError(message) from exc
    print(f"\ncreation kills: {CREATION_KILLS} (seed {seed}), at the kill: {outcomes}")


ADOPTION_KILLS = int(os.environ.get("PYROGRAM_STORAGE_ADOPTION_KILLS", 15 if FULL else 3))


@pytest.mark.slow
@pytest.mark.parametrize("client", CLIENT_NAMES)
async def test_sigkill_while_adopting_a_client_file_keeps_its_session(
    client: str, tmp_path: Path
) -> None:
    """Opening a client's file runs migrations; a kill in the middle loses nothing."""
    seed = int(os.environ.get("PYROGRAM_STORAGE_CRASH_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    expected = manifest(client)
    holder = Path(__file__).with_name("lock_holder.py")
    probe = copy_fixture(client, tmp_path, name="original")
    original = probe.read_bytes()
    untouched = sorted(p.name.replace("original", NAME) for p in tmp_path.glob("original*"))
    states = {False: 0, True: 0}  # killed before / after the file was first changed
    for attempt in range(ADOPTION_KILLS):
        workdir = tmp_path / f"run{attempt}"
        workdir.mkdir()
        copy_fixture(client, workdir, name=NAME)
        proc = subprocess.Popen(
            [sys.executable, str(holder), str(workdir), NAME, "exclusive", "hold"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + STARTUP_LIMIT
        while not Path(f"{workdir / NAME}.session.lock").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "holder died or hung"
            time.sleep(0.0002)
        time.sleep(rng.uniform(0.0, 0.05))
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        files = sorted(p.name for p in workdir.iterdir() if not p.name.endswith(".lock"))
        changed = (workdir / f"{NAME}.session").read_bytes() != original or files != untouched
        states[changed] += 1
        try:
            async with FileStorage(NAME, workdir, username_ttl=None) as storage:
                session = await storage.get_session()
                assert session.auth_key == bytes.fromhex(expected["session"]["auth_key"])
                assert session.user_id == expected["session"]["user_id"]
                for peer in expected["peers"]:
                    assert (await storage.peer_by_id(peer["id"])).access_hash == peer["access_hash"]
            with sqlite3.connect(workdir / f"{NAME}.session") as db:
                assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            db.close()
        except BaseException as exc:
            message = f"{client}, attempt {attempt}, seed {seed}"
            raise AssertionError(message) from exc
    print(f"\n{client}: {ADOPTION_KILLS} kills, {states[True]} after adoption had begun")


BIG_ADOPTION_PEERS = int(
    os.environ.get("PYROGRAM_STORAGE_BIG_ADOPTION_PEERS", 200_000 if FULL else 30_000)
)
BIG_ADOPTION_KILLS = int(os.environ.get("PYROGRAM_STORAGE_BIG_ADOPTION_KILLS", 12 if FULL else 3))


def _settle(path: Path) -> int:
    """Open the file as any SQLite client would (rolling back what a kill left); its version."""
    db = sqlite3.connect(path)
    try:
        return int(db.execute("PRAGMA user_version").fetchone()[0])
    finally:
        db.close()


async def _check_big_file(client: str, workdir: Path, n: int) -> None:
    """Every peer, username and phone of the client's file, and its session, through us."""
    expected = manifest(client)
    async with FileStorage(NAME, workdir, username_ttl=None) as storage:
        session = await storage.get_session()
        assert session.auth_key == bytes.fromhex(expected["session"]["auth_key"])
        assert session.user_id == expected["session"]["user_id"]
        for peer in expected["peers"]:
            assert (await storage.peer_by_id(peer["id"])).access_hash == peer["access_hash"]
        seen = 0
        async for batch in storage.iter_peer_batches(10_000):
            for got in batch:
                if not big_files.is_big(got.id):
                    continue
                peer_id, access_hash, kind, names, phone = big_files.peer(
                    big_files.index_of(got.id)
                )
                assert (got.id, got.access_hash, got.type.value, got.phone_number) == (
                    peer_id,
                    access_hash,
                    kind,
                    phone,
                )
                assert got.usernames == big_files.kept_names(client, names)
                seen += 1
        assert seen == n
        last = big_files.peer(n - 1)
        name = big_files.kept_names(client, last[3])[-1]
        assert (await storage.peer_by_username(name)).id == last[0]


@pytest.mark.slow
@pytest.mark.parametrize("client", ["kurigram", "pyrotgfork", "pyrofork", "pyrogram"])
async def test_sigkill_during_a_big_adoption_leaves_the_client_file_or_the_adopted_one(
    client: str, tmp_path: Path
) -> None:
    """A kill at any point of a long adoption loses nothing: SQLite rolls it back whole.

    After each kill the file is first opened the way the client would open it: either
    the adoption had committed (schema version 1 or later), or every row of every table is as
    the client wrote it. Then our FileStorage opens it and finds everything.
    """
    seed = int(os.environ.get("PYROGRAM_STORAGE_CRASH_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    n = BIG_ADOPTION_PEERS
    (tmp_path / "source").mkdir()
    source = big_files.client_file(client, tmp_path / "source", n, name=NAME)
    original = big_files.table_digest(source)
    holder = Path(__file__).with_name("lock_holder.py")

    def start(workdir: Path) -> tuple[subprocess.Popen[bytes], float]:
        """Start an opener on a fresh copy; return it and when its lock appeared."""
        workdir.mkdir()
        shutil.copyfile(source, workdir / f"{NAME}.session")
        proc = subprocess.Popen(
            [sys.executable, str(holder), str(workdir), NAME, "exclusive", "hold"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + STARTUP_LIMIT
        while not Path(f"{workdir / NAME}.session.lock").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "opener died or hung"
            time.sleep(0.0005)
        return proc, time.monotonic()

    # How long the adoption takes on this machine, lock to "ready": the kills land in it.
    proc, locked = start(tmp_path / "timing")
    assert proc.stdout is not None
    assert proc.stdout.readline().startswith(b"ready")
    adoption = time.monotonic() - locked
    proc.communicate(b"")
    outcomes = {"rolled back": 0, "adopted": 0}
    for attempt in range(BIG_ADOPTION_KILLS):
        workdir = tmp_path / f"run{attempt}"
        proc, locked = start(workdir)
        time.sleep(max(0.0, locked + rng.uniform(0.0, adoption) - time.monotonic()))
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        path = workdir / f"{NAME}.session"
        try:
            version = _settle(path)
            if version == 0:
                assert big_files.table_digest(path) == original
                outcomes["rolled back"] += 1
            else:
                # Adopted (schema 1), and maybe migrated on (each step one transaction).
                assert 1 <= version <= _migrations.latest("sqlite")
                outcomes["adopted"] += 1
            await _check_big_file(client, workdir, n)
            with sqlite3.connect(path) as db:
                assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            db.close()
        except BaseException as exc:
            raise AssertionError(f"{client}, attempt {attempt}, seed {seed}") from exc
        shutil.rmtree(workdir)
    print(
        f"\n{client}: {n} peers, adoption {adoption:.2f}s, {BIG_ADOPTION_KILLS} kills "
        f"(seed {seed}): {outcomes}"
    )
