"""The peer id snapshot: what an id lookup needs, kept in the file between two sessions.

A FileStorage that is its file's only writer reads every stored peer in the background
after ``open()``; until then an id lookup is a point query. A large session takes a
while to read (70 ms of CPU for 100,000 peers), and a program that looks peers up right
after opening gets little from it. So at ``close()`` the stored ids, access hashes and
types go into ``peer_ids_snapshot`` (sorted int64 ids, int64 hashes, a type code a
peer: 17 bytes a peer, in parts of 65,536 peers), and the next ``open()`` checks its
header (one statement); then id lookups read it back a part per lookup (1–2 ms each,
on the event loop's thread: no worker thread to wait for, however busy the machine)
into the engine's id table (:class:`~pyrogram_storage._index.IdTable`), and answer
from the parts read.

Never a wrong answer: the rows are written with triggers (``migrations/sqlite/snapshot/``)
that delete them on any write to ``peers``, by any program, while the storage is
closed; the storage that opens the file drops the triggers in its first transaction
(its own writes then cost nothing more, and a snapshot without its triggers is never
used: a crash leaves none to trust). At close it writes the snapshot anew, or, when it
wrote no peer, only puts the triggers back. A snapshot is used only if its format is
known, the triggers are all there as we make them and the peers table has its first
and last ids; each part only if its checksum matches and its ids follow the last
part's; the parts must add up to the header's count. Anything else (damage, a file
changed by a program that disabled triggers, rows not ours) is ignored, and the peers
are read as before.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
import sys
import zlib
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from .. import _migrations
from .._index import Columns, IdTable

__all__ = ["MIN_PEERS", "Plan", "Reader", "rearm", "save", "take"]

log = logging.getLogger("pyrogram_storage")

MIN_PEERS: Final = 5_000
"""Sessions with fewer stored peers keep no snapshot: they are read in milliseconds."""

FORMAT: Final = 2
"""The layout of the rows: a header (part 0: the number of peers, and of parts in
``checksum``), then the parts in id order, each its little-endian int64 ids and hashes,
uint8 type codes, and a checksum of the three."""

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


_PART: Final = 65_536
"""Peers a row of the snapshot holds (1.1 MB, read in 1–2 ms on the event loop)."""


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
    done = part = 0
    after: int | None = None
    while done < peers:
        columns = read(after, _PART)
        if columns is None or columns.odd_types or not columns.ids:
            raise ValueError("peers the snapshot cannot hold")  # undone with the rest
        data = (_little(columns.ids), _little(columns.hashes), columns.kinds.tobytes())
        part += 1
        db.execute(
            f"INSERT INTO {_TABLE} (part, checksum, ids, hashes, kinds) VALUES (?, ?, ?, ?, ?)",
            (part, _checksum(*data), *data),
        )
        done += len(columns.ids)
        after = columns.ids[-1]
    if done != peers:
        raise ValueError("more peers than counted")
    db.execute(
        f"INSERT INTO {_TABLE} (part, format, peers, checksum) VALUES (0, ?, ?, ?)",
        (FORMAT, peers, part),
    )
    db.execute("COMMIT")
    return True


def _checksum(ids: bytes, hashes: bytes, kinds: bytes) -> int:
    return zlib.crc32(ids) << 31 ^ zlib.crc32(hashes) << 15 ^ zlib.crc32(kinds)


@dataclass(frozen=True)
class Plan:
    """What the header of a snapshot found trustworthy at open promises."""

    parts: int
    peers: int
    first: int
    last: int


def take(db: sqlite3.Connection) -> Plan | None:
    """Check the snapshot in the file and take it, in the write transaction ``db`` holds
    (committed with the storage's next write): its triggers are dropped, so the
    storage's own writes never fire them, and an unusable snapshot with them. A usable
    one stays, to be read part by part (:class:`Reader`) and, should the storage write
    no peer, kept (:func:`rearm`). One statement to check, a fraction of a millisecond.
    """
    try:
        plan = _plan(db)
    except (sqlite3.DatabaseError, TypeError, ValueError) as exc:
        log.debug("the peer id snapshot is not usable: %s", exc)  # none, or damage
        plan = None
    for name in _TRIGGERS:
        db.execute(f"DROP TRIGGER IF EXISTS {name}")
    if plan is None:
        db.execute(f"DROP TABLE IF EXISTS {_TABLE}")
    return plan


def rearm(db: sqlite3.Connection) -> None:
    """Make the snapshot :func:`take` left in the file valid again, its peers unchanged
    since (the storage wrote none): its triggers back, committed."""
    for statement in _script():
        db.execute(statement)
    db.execute("COMMIT")


def _plan(db: sqlite3.Connection) -> Plan | None:
    header = db.execute(_HEADER_SQL, _TRIGGERS).fetchone()  # no such table: raises
    if header is None:
        return None  # a write deleted it
    form, peers, parts, triggers, first, last = header
    if (
        type(triggers) is not str
        or {_normalized(sql) for sql in triggers.split("\0")} != _expected_triggers()
    ):
        return None  # a trigger gone or changed: a write may have left the rows in place
    if form != FORMAT or type(peers) is not int or peers < MIN_PEERS:
        return None
    if type(parts) is not int or not 0 < parts <= peers or type(first) is not int:
        return None
    return Plan(parts, peers, first, last)


class Reader:
    """Reads a taken snapshot a part at a time (:data:`_PART` peers, 1–2 ms), on any
    connection to the file: the rows do not change while the storage is open (only
    its ``close()`` writes them, and the triggers that would delete them are gone)."""

    __slots__ = ("_last", "_next", "_peers", "plan")

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self._next = 1
        self._peers = 0
        self._last: int | None = None

    def next(self, db: sqlite3.Connection) -> IdTable | bool | None:
        """The id table of the next part; True once every part is read (and they add
        up); None: a part is missing or damaged (stop: the parts read were each
        checked, and hold what they say)."""
        plan = self.plan
        if self._next > plan.parts:
            return True
        try:
            row = _read_part(db, self._next)
            table = None if row is None else self._table(*row)
        except (sqlite3.DatabaseError, TypeError, ValueError) as exc:
            log.debug("the peer id snapshot is damaged: %s", exc)
            table = None
        if table is None:
            self._next = plan.parts + 1
            return None
        self._next += 1
        return table

    def _table(
        self, checksum: object, ids: object, hashes: object, kinds: object
    ) -> IdTable | None:
        if not (type(ids) is bytes and type(hashes) is bytes and type(kinds) is bytes):
            return None
        if checksum != _checksum(ids, hashes, kinds):
            return None
        if sys.byteorder == "big":
            ids, hashes = _native("q", ids).tobytes(), _native("q", hashes).tobytes()
        table = IdTable()
        table.extend_raw(ids, hashes, kinds)  # raises where ids do not increase
        bounds = table.bounds()
        plan = self.plan
        if bounds is None or (self._last is None and bounds[0] != plan.first):
            return None
        if self._last is not None and bounds[0] <= self._last:
            return None
        self._last = bounds[1]
        self._peers += len(table)
        if self._next == plan.parts and (self._peers != plan.peers or self._last != plan.last):
            return None
        return table


_HEADER_SQL: Final = (
    "SELECT format, peers, checksum, (SELECT group_concat(sql, char(0)) FROM sqlite_master "
    "WHERE type = 'trigger' AND tbl_name = 'peers' AND name IN (?, ?, ?)), "
    f"(SELECT min(id) FROM peers), (SELECT max(id) FROM peers) FROM {_TABLE} WHERE part = 0"
)
_PART_SQL: Final = f"SELECT checksum, ids, hashes, kinds FROM {_TABLE} WHERE part = ?"
_CHECKSUM_SQL: Final = f"SELECT checksum FROM {_TABLE} WHERE part = ?"


def _read_part(db: sqlite3.Connection, part: int) -> tuple[object, ...] | None:
    """The checksum and the three columns of a part (None: no such row).

    The columns are read as blobs: ``sqlite3_blob_read`` copies straight from the pages,
    where a ``SELECT`` first assembles each value in a buffer of its own (17 MB of a
    1M-peer snapshot in ~8 ms, against 15–20 ms).
    """
    if sys.version_info >= (3, 11):
        row = db.execute(_CHECKSUM_SQL, (part,)).fetchone()
        if row is None:
            return None
        columns = []
        for column in ("ids", "hashes", "kinds"):
            with db.blobopen(_TABLE, column, part, readonly=True) as blob:
                columns.append(blob.read())
        return (row[0], *columns)
    return db.execute(_PART_SQL, (part,)).fetchone()  # type: ignore[no-any-return]


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
