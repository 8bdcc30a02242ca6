"""SIGKILL a writer of JSONFileKV / SQLiteKV at random points: no acknowledged write is lost.

``PYROGRAM_STORAGE_FULL=1`` runs 100 kills per backend (``make test-full``); the default
is a CI-sized run. ``PYROGRAM_STORAGE_KV_KILLS`` sets the count.
"""

from __future__ import annotations

import os
import random
import selectors
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pyrogram_storage import kv

from . import kill_writer

FULL = os.environ.get("PYROGRAM_STORAGE_FULL") == "1"
KILLS = int(os.environ.get("PYROGRAM_STORAGE_KV_KILLS", 100 if FULL else 12))
WRITER = Path(kill_writer.__file__)


def _run_and_kill(kind: str, path: Path, first: int, rng: random.Random) -> tuple[set[int], int]:
    """Start a writer, kill it after a random number of writes; return the acked sets and incs."""
    proc = subprocess.Popen(
        [sys.executable, str(WRITER), kind, str(path), str(first)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    target = rng.randint(0, 30)
    buffer = b""
    deadline = time.monotonic() + 60
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while buffer.count(b"\n") < target:
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()  # type: ignore[union-attr]
            if selector.select(timeout=0.5):
                buffer += proc.stdout.read() or b""
        time.sleep(rng.uniform(0.0, 0.02))
    proc.send_signal(signal.SIGKILL)
    rest, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, err.decode(errors="replace")
    buffer += rest or b""
    sets: set[int] = set()
    incs = 0
    for line in buffer.split(b"\n")[:-1]:
        kind_, _, number = line.decode().partition(" ")
        if kind_ == "set":
            sets.add(int(number))
        elif kind_ == "inc":
            incs += 1
    return sets, incs


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["json", "sqlite"])
async def test_sigkill_loses_no_acknowledged_write(kind: str, tmp_path: Path) -> None:
    seed = int(os.environ.get("PYROGRAM_STORAGE_CRASH_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    path = tmp_path / ("state.json" if kind == "json" else "state.db")
    acked: set[int] = set()
    increments = 0
    first = 0
    for _ in range(KILLS):
        sets, incs = _run_and_kill(kind, path, first, rng)
        acked |= sets
        increments += incs
        first += 1000  # each writer writes its own keys
        # Opens every time (the main file or, for JSON, its .bak) and holds every ack.
        store: kv.KVStore[object] = kv.JSONFileKV(path) if kind == "json" else kv.SQLiteKV(path)
        async with store:
            for n in acked:
                assert await store.get(f"k{n}") == {"n": n, "pad": "x" * (n % 50)}, (n, seed)
            writes = await store.get("writes", 0)
            # A call killed in flight may have committed without its line being read.
            assert isinstance(writes, int) and writes >= increments, (writes, increments, seed)
            increments = writes
    if kind == "sqlite":
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        db.close()
    assert oct(path.stat().st_mode & 0o777) == "0o600"
