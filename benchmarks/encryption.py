"""Benchmark what sealing the auth key costs (issue 24): opening, and sealing per write.

Usage, from the repository root, with the python that has pyrogram_storage[crypto]::

    python benchmarks/encryption.py                  # 15 rounds
    python benchmarks/encryption.py --rounds 5 --out /tmp/enc

In one process, round robin, ``--rounds`` times: ``open()`` then ``close()`` of a
logged-in session file of 1,000 peers, (a) stored in clear, opened without a key;
(b) sealed with a raw 32-byte key; (c) sealed with a passphrase (Argon2id, the default
parameters of :data:`pyrogram_storage.crypto.DEFAULT_KDF`). Each open runs with a 1 ms
ticker task, whose longest wait is how long the event loop was held. Then the cost of
one seal and one open of an envelope with a raw key (what a session write and a
shared-mode re-read add), and of one passphrase stretch alone.

Targets: an open with a passphrase within 250 ms, with a raw key within 5 ms (the
raw-key figure is the open's extra time over a clear open: the open itself is SQLite's).
Writes ``benchmarks/results/encryption.md`` and ``encryption.json``. The update path
with an encrypted file is measured by ``run.py`` (``path-kurigram-ours-encrypted``).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from pyrogram_storage import FileStorage, Peer, PeerType, __version__, crypto

ROOT = Path(__file__).resolve().parent.parent
RAW_KEY = bytes(range(32))
PASSPHRASE = "benchmark passphrase"
TARGETS = {"passphrase": 250.0, "raw key (over clear)": 5.0}


async def _prepare(workdir: Path, name: str, key: bytes | str | None) -> None:
    async with FileStorage(name, workdir, encryption_key=key) as storage:
        await storage.update_session(
            dc_id=2, api_id=1, test_mode=False, auth_key=os.urandom(256), user_id=1, is_bot=False
        )
        await storage.upsert_peers(
            [Peer(i, i, PeerType.USER, (f"user{i}",)) for i in range(1, 1001)]
        )


async def _timed_open(workdir: Path, name: str, key: bytes | str | None) -> tuple[float, float]:
    """Milliseconds for open() (wall) and the longest the event loop waited meanwhile."""
    longest = 0.0
    running = True

    async def ticker() -> None:
        nonlocal longest
        last = time.perf_counter()
        while running:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            longest = max(longest, now - last - 0.001)
            last = now

    task = asyncio.get_running_loop().create_task(ticker())
    await asyncio.sleep(0.002)
    storage = FileStorage(name, workdir, encryption_key=key)
    start = time.perf_counter()
    await storage.open()
    elapsed = time.perf_counter() - start
    running = False
    await task
    session = await storage.get_session()
    assert session.auth_key is not None and len(session.auth_key) == 256
    await storage.close()
    return elapsed * 1000, longest * 1000


def _micro(repeat: int = 20_000) -> dict[str, float]:
    sealer = crypto.Cipher(RAW_KEY)
    payload = os.urandom(256)
    envelope = sealer.seal(payload)
    start = time.perf_counter()
    for _ in range(repeat):
        sealer.seal(payload)
    seal_us = (time.perf_counter() - start) / repeat * 1e6
    start = time.perf_counter()
    for _ in range(repeat):
        sealer.open(envelope)
    open_us = (time.perf_counter() - start) / repeat * 1e6
    stretches = []
    for _ in range(5):
        start = time.perf_counter()
        crypto.seal(PASSPHRASE, payload)
        stretches.append((time.perf_counter() - start) * 1000)
    return {
        "seal_us": seal_us,
        "open_us": open_us,
        "stretch_ms": statistics.median(stretches),
    }


def _load() -> float:
    return os.getloadavg()[0]


async def main(rounds: int) -> dict[str, Any]:
    kinds: dict[str, bytes | str | None] = {
        "clear": None,
        "raw key": RAW_KEY,
        "passphrase": PASSPHRASE,
    }
    results: dict[str, dict[str, list[float]]] = {
        kind: {"open_ms": [], "loop_ms": []} for kind in kinds
    }
    loads = [_load()]
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        for kind, key in kinds.items():
            await _prepare(workdir, kind.replace(" ", "_"), key)
        for _ in range(rounds):
            for kind, key in kinds.items():
                opened, held = await _timed_open(workdir, kind.replace(" ", "_"), key)
                results[kind]["open_ms"].append(opened)
                results[kind]["loop_ms"].append(held)
            loads.append(_load())
    return {"opens": results, "micro": _micro(), "load": [min(loads), max(loads)]}


def _code() -> str:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def report(data: dict[str, Any], rounds: int) -> str:
    opens = data["opens"]
    median = {kind: statistics.median(values["open_ms"]) for kind, values in opens.items()}
    extra = median["raw key"] - median["clear"]
    kdf, memory, iterations, lanes = crypto.DEFAULT_KDF
    now = datetime.datetime.now(datetime.timezone.utc)
    python = platform.python_version()
    lines = [
        f"# Encryption at rest: costs ({now:%Y-%m-%d %H:%M} UTC)",
        "",
        f"- Machine: {os.cpu_count()} cores, {platform.platform()}, Python {python}",
        f"- pyrogram_storage {__version__}, code `{_code()}`, cryptography "
        f"{__import__('cryptography').__version__}",
        f"- Command: `python benchmarks/encryption.py --rounds {rounds}`",
        f"- Default passphrase KDF: Argon2id, {memory // 1024} MiB, {iterations} iteration(s), "
        f"{lanes} lane (KDF id {kdf})",
        f"- 1-minute load average during the run: {data['load'][0]:.1f} to {data['load'][1]:.1f}",
        "",
        "## Targets",
        "",
        "| target | result | met? |",
        "|---|---|---|",
        f"| open with a passphrase ≤ 250 ms | {median['passphrase']:.0f} ms (median of "
        f"{rounds}; max {max(opens['passphrase']['open_ms']):.0f} ms) | "
        f"{'**met**' if median['passphrase'] <= 250 else 'NOT MET'} |",
        f"| open with a raw key ≤ 5 ms (over a clear open) | +{extra:.2f} ms "
        f"({median['raw key']:.1f} ms against {median['clear']:.1f} ms) | "
        f"{'**met**' if extra <= 5 else 'NOT MET'} |",
        "",
        "## open() of a logged-in file of 1,000 peers",
        "",
        "| auth key | open, median (ms) | p90 (ms) | event loop held, max (ms) |",
        "|---|---|---|---|",
    ]
    for kind, values in opens.items():
        ordered = sorted(values["open_ms"])
        p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
        lines.append(
            f"| {kind} | {statistics.median(ordered):.1f} | {p90:.1f} | "
            f"{max(values['loop_ms']):.1f} |"
        )
    micro = data["micro"]
    lines += [
        "",
        "## Per operation",
        "",
        f"- seal one auth key (raw key; each new auth key written): {micro['seal_us']:.1f} µs",
        f"- open one envelope (raw key; each open, each shared-mode re-read): "
        f"{micro['open_us']:.1f} µs",
        f"- stretch a passphrase (Argon2id, default parameters; once per open, in a thread): "
        f"{micro['stretch_ms']:.0f} ms",
        "",
        "A session write that leaves the auth key as it is reuses the stored envelope: no "
        "sealing on the update path. The update path itself: `run.py --suites path` rows "
        "`path-kurigram-ours-encrypted` and `-passphrase` against `path-kurigram-ours`.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    options = parser.parse_args()
    data = asyncio.run(main(options.rounds))
    options.out.mkdir(parents=True, exist_ok=True)
    (options.out / "encryption.json").write_text(json.dumps(data, indent=1) + "\n")
    text = report(data, options.rounds)
    (options.out / "encryption.md").write_text(text)
    print(text)
