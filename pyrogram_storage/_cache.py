"""The bounded peer cache every storage keeps when its process is the session's only writer."""

from __future__ import annotations

from collections import OrderedDict
from typing import Final

__all__ = ["HASH", "NAMES", "PHONE", "STAMP", "TYPE", "Entry", "PeerCache"]

Entry = tuple[int, str, "tuple[str, ...] | None", "str | None", int]
"""A cached peer: access hash, type name, usernames (None: not known here), phone, last update."""

# Positions in an Entry.
HASH: Final = 0
TYPE: Final = 1
NAMES: Final = 2
PHONE: Final = 3
STAMP: Final = 4


class PeerCache:
    """Peer id to :data:`Entry`: the ``size`` peers most recently written or used.

    A least-recently-used map (C's ``OrderedDict``: a hit moves the entry to the end,
    a new entry past ``size`` drops the oldest). Entries are tuples of ints and
    strings, which the garbage collector stops tracking, so a large cache costs full
    collections little.
    """

    __slots__ = ("_entries", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[int, Entry] = OrderedDict()

    def get(self, peer_id: int) -> Entry | None:
        """Return the entry of ``peer_id`` and mark it recently used."""
        entries = self._entries
        entry = entries.get(peer_id)
        if entry is not None:
            entries.move_to_end(peer_id)
        return entry

    def peek(self, peer_id: int) -> Entry | None:
        """Return the entry of ``peer_id`` without touching its recency."""
        return self._entries.get(peer_id)

    def put(self, peer_id: int, entry: Entry) -> None:
        if self.size > 0:
            entries = self._entries
            entries[peer_id] = entry
            entries.move_to_end(peer_id)
            if len(entries) > self.size:
                entries.popitem(last=False)

    def put_old(self, peer_id: int, entry: Entry) -> None:
        """Add an entry as the least recently used (a guess, not a use: it goes first)."""
        entries = self._entries
        if self.size > 0 and peer_id not in entries and len(entries) < self.size:
            entries[peer_id] = entry
            entries.move_to_end(peer_id, last=False)

    def pop(self, peer_id: int) -> None:
        self._entries.pop(peer_id, None)

    def clear(self) -> None:
        self._entries = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)
