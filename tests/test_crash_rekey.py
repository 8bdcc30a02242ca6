"""Changing the encryption key under SIGKILL: the session always opens with the old or new key.

``tests/rekey_writer.py`` rekeys a session file in a loop (and converts it from clear
on its first open); the ``pyrogram-storage rekey`` command does one rekey per process.
Each is killed at a random point; afterwards exactly one of the two keys around the
kill must open the file, and the auth key must be the one stored at the start.
"""

from __future__ import annotations

import asyncio
import os
import random
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pyrogram_storage import EncryptionKeyError, FileStorage

from . import rekey_writer
from .test_crash import FULL

CYCLES = int(os.environ.get("PYROGRAM_STORAGE_CRASH_CYCLES", 200 if FULL else 25))
WRITER = Path(rekey_writer.__file__)
AUTH_KEY = bytes(range(256))
NAME = "rekey"


async def _opening_key(workdir: Path, candidates: list[int | None]) -> int | None:
    """The one candidate (a key number, None: clear) that opens the session."""
    opened = []
    for number in candidates:
        key = None if number is None else rekey_writer.key(number)
        try:
            async with FileStorage(NAME, workdir, encryption_key=key) as storage:
                assert (await storage.get_session()).auth_key == AUTH_KEY
        except EncryptionKeyError:
            continue
        opened.append(number)
    assert len(opened) == 1, (candidates, opened)
    return opened[0]


def _kill_writer(workdir: Path, first: str, rng: random.Random) -> int | None:
    """Run the writer, SIGKILL it at a random point; return the newest key it printed."""
    proc = subprocess.Popen(
        [sys.executable, str(WRITER), str(workdir), NAME, first],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    buffer = b""
    wanted = rng.choice([0, 0, 1, 1, 2, 5, 20])  # lines to see first; 0: kill during open
    deadline = time.monotonic() + 60
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if wanted == 0:
            time.sleep(rng.uniform(0.0, 0.8))
        while buffer.count(b"\n") < wanted:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            if selector.select(timeout=0.5):
                buffer += proc.stdout.read() or b""
        time.sleep(rng.uniform(0.0, 0.01))
    proc.send_signal(signal.SIGKILL)
    rest, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, err.decode(errors="replace")
    lines = (buffer + (rest or b"")).split(b"\n")[:-1]
    return int(lines[-1].split()[1]) if lines else None


def _kill_cli(workdir: Path, current: int, rng: random.Random) -> None:
    """Run `pyrogram-storage rekey` from key ``current`` to ``current + 1``; kill it."""
    env = {
        **os.environ,
        "PYROGRAM_STORAGE_KEY": "hex:" + rekey_writer.key(current).hex(),
        "PYROGRAM_STORAGE_NEW_KEY": "hex:" + rekey_writer.key(current + 1).hex(),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "pyrogram_storage", "rekey", str(workdir / f"{NAME}.session")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        proc.wait(timeout=rng.uniform(0.05, 1.5))
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    assert proc.returncode in (0, -signal.SIGKILL), err.decode(errors="replace")


@pytest.mark.slow
async def test_sigkill_while_rekeying_leaves_the_old_key_or_the_new(tmp_path: Path) -> None:
    seed = int(os.environ.get("PYROGRAM_STORAGE_CRASH_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    async with FileStorage(NAME, tmp_path) as storage:  # a session stored in clear
        await storage.update_session(auth_key=AUTH_KEY, user_id=1, api_id=2)
    current: int | None = None  # None: in clear
    figures = {"writer": 0, "cli": 0, "rekeys": 0}
    for cycle in range(CYCLES):
        try:
            if current is not None and cycle % 3 == 2:
                _kill_cli(tmp_path, current, rng)
                figures["cli"] += 1
                current = await _opening_key(tmp_path, [current, current + 1])
            else:
                start = "clear" if current is None else str(current)
                acked = _kill_writer(tmp_path, start, rng)
                figures["writer"] += 1
                if acked is None:  # killed before it said which key: the one it began with
                    candidates = [None, 0] if current is None else [current, current + 1]
                else:  # the printed key, or the next one (its write may have committed)
                    candidates = [acked, acked + 1]
                    figures["rekeys"] += acked - (current or 0)
                current = await _opening_key(tmp_path, candidates)
        except BaseException as exc:
            raise AssertionError(f"cycle {cycle}, seed {seed}") from exc
    print(
        f"\nrekey crash: {CYCLES} SIGKILLs (seed {seed}; {figures['writer']} writers, "
        f"{figures['cli']} CLI rekeys), {figures['rekeys']} acknowledged rekeys; the "
        "session opened with exactly one of the two keys each time"
    )
    assert current is not None and current > 0
    # Nothing is left behind that holds the auth key in clear.
    for path in tmp_path.iterdir():
        if path.is_file():
            assert AUTH_KEY not in path.read_bytes(), path


if __name__ == "__main__":  # pragma: no cover
    asyncio.run(test_sigkill_while_rekeying_leaves_the_old_key_or_the_new(Path(sys.argv[1])))
