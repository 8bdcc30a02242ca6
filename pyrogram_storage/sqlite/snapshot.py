"""The peer id snapshot: what an id lookup needs, kept in the file between two sessions.

A FileStorage that is its file's only writer reads every stored peer in the background
after ``open()``; until then an id lookup is a point query. A large session takes a
while to read (70 ms of CPU for 100,000 peers), and a program that looks peers up right
after opening gets little from it. So at ``close()`` the stored ids, access hashes and
types go into one row of ``peer_ids_snapshot`` (sorted int64 ids, int64 hashes, a type
code a peer: 17 bytes a peer, three blobs), and the next ``open()`` takes that row back
on the storage's lane, off the event loop, in a few milliseconds, as the engine's id
table (:class:`~pyrogram_storage._index.IdTable`).

Never a wrong answer: the rows are written with triggers (``migrations/sqlite/snapshot/``)
that delete them on any write to ``peers``, by any program, while the storage is
closed; the storage that opens the file takes them, then drops the triggers in its
first transaction (its own writes then cost nothing more, and a snapshot without its
triggers is never used: a crash leaves none to trust). At close it writes the snapshot
anew, or, when it wrote no peer, only puts the triggers back. A row is used only if its
format is known, its checksum matches, the triggers are all there as we make them, and
the peers table holds as many peers, with the same first and last ids; anything else
(damage, a file changed by a program that disabled triggers, a row not ours) is
ignored, and the peers are read as before.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
import sys
import zlib
from array import array
from collections.abc import Callable
from typing import Final

from .. import _migrations
from .._index import Columns, IdTable

__all__ = ["MIN_PEERS", "save", "take"]

log = logging.getLogger("pyrogram_storage")

MIN_PEERS: Final = 5_000
"""Sessions with fewer stored peers keep no snapshot: they are read in milliseconds."""

FORMAT: Final = 1
"""The layout of the row: little-endian int64 ids and hashes, uint8 type codes."""

_TABLE: Final = "peer_ids_snapshot"
_TRIGGERS: Final = (
    "trg_peer_ids_snapshot_insert",
    "trg_peer_ids_snapshot_update",
    "trg_peer_ids_snapshot_delete",
)


def _script() -> list[str]:
    return _migrations.statements(_migrations._expand("sqlite", "snapshot/peer_ids.sql", ()))


def _little(values: array[int]) -> bytes:
    if sys.byteorder == "big" and values.itemsize > 1:
        values = array(values.typecode, values)
        values.byteswap()
    return values.tobytes()


def _native(code: str, data: bytes) -> array[int]:
    values = array(code)
    values.frombytes(data)
    if sys.byteorder == "big" and values.itemsize > 1:
        values.byteswap()
    return values


_PART: Final = 262_144
"""Peers a row of the snapshot holds (4.5 MB): few rows to read, no copy of it whole."""


def save(db: sqlite3.Connection, read: Callable[[int | None, int], Columns | None]) -> bool:
    """Write the snapshot of every stored peer (``read(after, limit)``: a batch of them,
    in id order) and its triggers, in the transaction ``db`` holds, and commit; whether
    it was written.

    Nothing is written for a small session, or one with a type or hash the row cannot
    hold (the lookups that meet it read the store).
    """
    peers = db.execute("SELECT count(*) FROM peers").fetchone()[0]
    if peers < MIN_PEERS:
        return False
    for statement in _script():
        db.execute(statement)
    db.execute(f"DELETE FROM {_TABLE}")
    sums = [0, 0, 0]
    done = part = 0
    after: int | None = None
    while done < peers:
        columns = read(after, _PART)
        if columns is None or columns.odd_types or not columns.ids:
            raise ValueError("peers the snapshot cannot hold")  # undone with the rest
        parts = (_little(columns.ids), _little(columns.hashes), columns.kinds.tobytes())
        for k, data in enumerate(parts):
            sums[k] = zlib.crc32(data, sums[k])
        part += 1
        db.execute(
            f"INSERT INTO {_TABLE} (part, ids, hashes, kinds) VALUES (?, ?, ?, ?)", (part, *parts)
        )
        done += len(columns.ids)
        after = columns.ids[-1]
    if done != peers:
        raise ValueError("more peers than counted")
    db.execute(
        f"INSERT INTO {_TABLE} (part, format, peers, checksum) VALUES (0, ?, ?, ?)",
        (FORMAT, peers, _checksum(*sums)),
    )
    db.execute("COMMIT")
    return True


def _checksum(ids: int, hashes: int, kinds: int) -> int:
    return ((ids << 30) ^ (hashes << 15) ^ kinds) & (2**62 - 1)


def take(db: sqlite3.Connection, publish: Callable[[IdTable | None], None]) -> bool:
    """Take the snapshot out of the file, in the write transaction ``db`` holds (it is
    committed with the storage's next write): ``publish`` gets the id table of every
    stored peer, or None (there is none, or it cannot be trusted). Then its triggers
    are dropped, so the storage's own writes never fire them, and an unusable snapshot
    with them; a usable one stays, for :func:`rearm` should nothing change it. Whether
    it stays.

    Few statements, each one step: the thread running this takes the GIL back after
    each (up to a switch interval, 5 ms, while the event loop's thread is busy).
    """
    try:
        table = _read(db)
    except (sqlite3.DatabaseError, TypeError, ValueError, OverflowError) as exc:
        log.debug("the peer id snapshot is not usable: %s", exc)  # none, or damage
        table = None
    publish(table)
    for name in _TRIGGERS:
        db.execute(f"DROP TRIGGER IF EXISTS {name}")
    if table is None:
        db.execute(f"DROP TABLE IF EXISTS {_TABLE}")
    return table is not None


def rearm(db: sqlite3.Connection) -> None:
    """Make the snapshot :func:`take` left in the file valid again, its peers unchanged
    since (the storage wrote none): its triggers back, committed."""
    for statement in _script():
        db.execute(statement)
    db.execute("COMMIT")


def _read(db: sqlite3.Connection) -> IdTable | None:
    header = db.execute(_HEADER_SQL, _TRIGGERS).fetchone()  # no such table: raises
    if header is None:
        return None  # a write deleted it
    form, peers, checksum, triggers, first, last = header
    if (
        type(triggers) is not str
        or {_normalized(sql) for sql in triggers.split("\0")} != _expected_triggers()
    ):
        return None  # a trigger gone or changed: a write may have left the row in place
    if form != FORMAT or type(peers) is not int or peers < MIN_PEERS:
        return None
    table = IdTable()
    sums = [0, 0, 0]
    for ids, hashes, kinds in db.execute(_PARTS_SQL):
        if not (type(ids) is bytes and type(hashes) is bytes and type(kinds) is bytes):
            return None
        for k, data in enumerate((ids, hashes, kinds)):
            sums[k] = zlib.crc32(data, sums[k])
        if sys.byteorder == "big":
            ids, hashes = _native("q", ids).tobytes(), _native("q", hashes).tobytes()
        # Raises ValueError for columns of different lengths, or ids that do not increase
        # from one chunk to the next.
        table.extend_raw(ids, hashes, kinds)
    if checksum != _checksum(*sums) or len(table) != peers or table.bounds() != (first, last):
        return None
    return table


_HEADER_SQL: Final = (
    "SELECT format, peers, checksum, (SELECT group_concat(sql, char(0)) FROM sqlite_master "
    "WHERE type = 'trigger' AND tbl_name = 'peers' AND name IN (?, ?, ?)), "
    f"(SELECT min(id) FROM peers), (SELECT max(id) FROM peers) FROM {_TABLE} WHERE part = 0"
)
_PARTS_SQL: Final = f"SELECT ids, hashes, kinds FROM {_TABLE} WHERE part > 0 ORDER BY part"


def _normalized(sql: str) -> str:
    text = " ".join(sql.split()).rstrip(";").rstrip()
    return text.replace("CREATE TRIGGER IF NOT EXISTS ", "CREATE TRIGGER ", 1)


@functools.cache
def _expected_triggers() -> frozenset[str]:
    return frozenset(
        _normalized(statement)
        for statement in _script()
        if statement.upper().startswith("CREATE TRIGGER")
    )
