"""Big session files in a client's own layout, for adoption tests that must stay fast.

:func:`client_file` copies a client's real fixture file (tests/fixtures/sessions) and
adds ``n`` peers to it with the statements that client's storage runs (its column
lists, its usernames rows), in plain SQL: thousands of peers in milliseconds, without
the client's virtualenv. ``benchmarks/adopt.py`` writes its files through the clients'
own code instead.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

from .fixture_files import copy_fixture

FAMILY = {
    "kurigram": "upstream",
    "irenogram": "upstream",
    "pyrotgfork": "upstream",
    "pyrofork": "pyrofork",
    "electrogram": "pyrofork",
    "pyrogram": "classic",
    "hydrogram": "classic",
}
BASE = 10_000_000_000  # beyond every fixture peer id, users and channels alike
CHANNEL = -1_000_000_000_000
STAMP = 1_700_000_000


def peer(i: int) -> tuple[int, int, str, tuple[str, ...], str | None]:
    """Peer ``i``: id, access hash, type, usernames (two; every 7th has three), phone."""
    kind = ("user", "user", "bot", "channel", "supergroup")[i % 5]
    peer_id = BASE + i if kind in ("user", "bot") else CHANNEL - BASE - i
    names: tuple[str, ...] = (f"big{i}", f"big_alias{i}")
    if i % 7 == 0:
        names += (f"big_third{i}",)
    phone = f"1999{i:07d}" if kind == "user" else None
    return peer_id, i * 7919 + 1, kind, names, phone


def index_of(peer_id: int) -> int:
    return peer_id - BASE if peer_id > 0 else CHANNEL - BASE - peer_id


def is_big(peer_id: int) -> bool:
    """Whether ``peer_id`` is one of the peers :func:`client_file` added."""
    return peer_id >= BASE or peer_id <= CHANNEL - BASE


def kept_names(client: str, names: tuple[str, ...]) -> tuple[str, ...]:
    """The usernames a client's file can hold: classic clients keep only the first."""
    return names[:1] if FAMILY[client] == "classic" else names


def peers(n: int) -> Iterator[tuple[int, int, str, tuple[str, ...], str | None]]:
    return (peer(i) for i in range(n))


def client_file(client: str, workdir: Path, n: int, name: str | None = None) -> Path:
    """Copy ``client``'s fixture into ``workdir`` and add ``n`` peers the client's way."""
    path = copy_fixture(client, workdir, name)
    family = FAMILY[client]
    db = sqlite3.connect(path)
    try:
        with db:
            rows = list(peers(n))
            if family == "upstream":
                db.executemany(
                    "INSERT INTO peers (id, access_hash, type, phone_number, last_update_on) "
                    "VALUES (?, ?, ?, ?, ?)",
                    [(p[0], p[1], p[2], p[4], STAMP) for p in rows],
                )
                db.executemany(
                    "INSERT INTO usernames (id, username) VALUES (?, ?)",
                    [(p[0], username) for p in rows for username in p[3]],
                )
            else:
                db.executemany(
                    "INSERT INTO peers (id, access_hash, type, username, phone_number, "
                    "last_update_on) VALUES (?, ?, ?, ?, ?, ?)",
                    [(p[0], p[1], p[2], p[3][0], p[4], STAMP) for p in rows],
                )
            if family == "pyrofork":
                db.executemany(
                    "INSERT INTO usernames (id, peer_id, last_update_on) VALUES (?, ?, ?)",
                    [(username, p[0], STAMP) for p in rows for username in p[3]],
                )
    finally:
        db.close()
    return path


def table_digest(path: Path) -> tuple[object, ...]:
    """Every row of the tables a client reads, rowids included, for before/after checks."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [
            row[0]
            for row in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        return tuple(
            (table, tuple(db.execute(f'SELECT rowid, * FROM "{table}" ORDER BY rowid')))
            for table in tables
        )
    finally:
        db.close()
