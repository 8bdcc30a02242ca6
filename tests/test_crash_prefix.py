"""Write-behind crash safety: after a SIGKILL, what is stored is a prefix of the writes.

Peer and update-state writes are stored in batches within ``commit_interval``
(tests/test_crash.py covers ``commit_interval=0``, where nothing acknowledged is
lost). Here the writer (tests/prefix_writer.py) runs with the default interval and is
killed at random points; after every kill the file must hold exactly operations
``1..K`` for some K (no hole, nothing reordered, nothing half-applied), every
operation that a durable call (a session write, ``flush()``) covered, and pass
``integrity_check``. How far K lags behind the last acknowledged operation is
reported, not asserted: it depends on the machine's load.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pyrogram_storage import FileStorage, PeerNotFound

from . import prefix_writer

FULL = os.environ.get("PYROGRAM_STORAGE_FULL") == "1"
KILLS = int(os.environ.get("PYROGRAM_STORAGE_PREFIX_KILLS", 200 if FULL else 20))
WRITER = Path(prefix_writer.__file__)
NAME = "prefix"
STARTUP_LIMIT = 60.0


def _run_and_kill(workdir: Path, first: int, rng: random.Random) -> list[str]:
    """Start a writer at operation ``first``, kill it at a random point, return its lines."""
    proc = subprocess.Popen(
        [sys.executable, str(WRITER), str(workdir), NAME, str(first)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    buffer = b""
    target = rng.choice([0, 1, 5, 30, 100, 300])
    deadline = time.monotonic() + STARTUP_LIMIT
    while buffer.count(b"\n") < target + 1:  # "ready", then the operations
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            _, err = proc.communicate()
            raise AssertionError(f"writer stopped or hung: {err.decode(errors='replace')}")
        time.sleep(0.0005)
        buffer += proc.stdout.read() or b""
    time.sleep(rng.uniform(0.0, 0.08))
    proc.send_signal(signal.SIGKILL)
    rest, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, err.decode(errors="replace")
    buffer += rest or b""
    return [line.decode() for line in buffer.split(b"\n")[:-1]]


async def _stored_prefix(workdir: Path) -> int:
    """Return K such that exactly operations 1..K are stored; fail if it is no prefix."""
    async with FileStorage(NAME, workdir, username_ttl=None) as storage:
        users: dict[int, int] = {}
        groups: dict[int, int] = {}
        async for batch in storage.iter_peer_batches(5000):
            for peer in batch:
                (users if peer.id > 0 else groups)[peer.id] = peer.access_hash
        prefix = max(users, default=0)
        assert sorted(users) == list(range(1, prefix + 1)), "a hole among the operations"
        assert all(users[op] == op for op in users)
        for group in range(1, prefix_writer.GROUPS + 1):
            ops = [op for op in range(1, prefix + 1) if prefix_writer.group_of(op) == -group]
            assert groups.get(-group) == (max(ops) if ops else None), "a rewrite out of order"
        states = await storage.get_update_states()
        assert [(s.id, s.pts) for s in states] == ([(0, prefix)] if prefix else [])
        user_id = (await storage.get_session()).user_id
        assert user_id is None or user_id <= prefix
        if prefix:
            assert (await storage.peer_by_username(f"p{prefix}")).id == prefix
        with pytest.raises(PeerNotFound):
            await storage.peer_by_id(prefix + 1)
    with sqlite3.connect(workdir / f"{NAME}.session") as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    db.close()
    return prefix


@pytest.mark.slow
async def test_sigkill_leaves_a_prefix_of_the_writes(tmp_path: Path) -> None:
    seed = int(os.environ.get("PYROGRAM_STORAGE_CRASH_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    prefix = 0
    lags: list[int] = []
    for kill in range(KILLS):
        lines = _run_and_kill(tmp_path, prefix + 1, rng)
        acked = [int(line.split()[1]) for line in lines if line.startswith("op ")]
        durable = [
            int(line.split()[1]) for line in lines if line.split()[0] in ("session", "flush")
        ]
        try:
            stored = await _stored_prefix(tmp_path)
        except BaseException as exc:
            raise AssertionError(f"kill {kill}, seed {seed}") from exc
        assert stored >= prefix, f"kill {kill}, seed {seed}: stored writes went back"
        if durable:
            assert stored >= max(durable), f"kill {kill}, seed {seed}: a durable write was lost"
        if acked:
            assert stored <= max(acked) + 1  # at most the operation in flight, unprinted
            lags.append(max(acked) - stored)
        prefix = stored
    lags.sort()
    median = lags[len(lags) // 2] if lags else 0
    print(
        f"\nprefix: {KILLS} SIGKILLs (seed {seed}), {prefix} operations stored in the end; "
        f"acknowledged but not yet stored at the kill: median {median}, "
        f"max {max(lags, default=0)} operations"
    )
    assert prefix > 0
