"""The peers a storage holds in memory while its process is the session's only writer."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Final

from ._pending import PeerChange

__all__ = ["HASH", "KIND", "NAMES", "PHONE", "STAMP", "TYPE", "PeerCache"]

# Positions in a held peer: the pending change tuple of _pending.
KIND: Final = 0  # FULL: usernames known; PARTIAL: usernames not known here
HASH: Final = 1
TYPE: Final = 2
NAMES: Final = 3
PHONE: Final = 4
STAMP: Final = 5


class PeerCache:
    """Peer id to its change tuple: bounded (the ``size`` peers most recently written
    or used) or, once :meth:`fill` has loaded every stored peer, complete.

    Bounded, it is a least-recently-used map (C's ``OrderedDict``: a hit moves the
    entry to the end, a new entry past ``size`` drops the oldest); complete, a plain
    dict that never drops anything. Entries are tuples of ints and strings, which the
    garbage collector stops tracking, so a large cache costs full collections little.
    """

    __slots__ = ("_entries", "complete", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self.complete = False
        self._entries: dict[int, PeerChange] = OrderedDict()

    def get(self, peer_id: int) -> PeerChange | None:
        """Return the entry of ``peer_id`` and mark it recently used."""
        entries = self._entries
        entry = entries.get(peer_id)
        if entry is not None and not self.complete:
            entries.move_to_end(peer_id)  # type: ignore[attr-defined]
        return entry

    def peek(self, peer_id: int) -> PeerChange | None:
        """Return the entry of ``peer_id`` without touching its recency."""
        return self._entries.get(peer_id)

    def put(self, peer_id: int, entry: PeerChange) -> None:
        entries = self._entries
        if self.complete:
            entries[peer_id] = entry
        elif self.size > 0:
            entries[peer_id] = entry
            entries.move_to_end(peer_id)  # type: ignore[attr-defined]
            if len(entries) > self.size:
                entries.popitem(last=False)  # type: ignore[call-arg]

    def pop(self, peer_id: int) -> None:
        self._entries.pop(peer_id, None)

    def fill(self, entries: dict[int, PeerChange]) -> None:
        """Hold exactly ``entries``, every stored peer: complete from now on.

        The dict is taken as it is, not copied (a copy of a large one holds the event
        loop for milliseconds): the caller hands it over.
        """
        self._entries = entries
        self.complete = True

    def resize(self, size: int) -> None:
        """Keep at most ``size`` entries from now on, dropping the least recently used."""
        self.size = size
        entries = self._entries
        if not self.complete:
            while len(entries) > size:
                entries.popitem(last=False)  # type: ignore[call-arg]

    def clear(self) -> Mapping[int, PeerChange]:
        """Forget everything; bounded again. Returns what was held, for the caller to
        let go of where freeing it does not hold the event loop (a complete memory
        is a dict of a hundred thousand tuples)."""
        entries, self._entries = self._entries, OrderedDict()
        self.complete = False
        return entries

    def items(self) -> Iterator[tuple[int, PeerChange]]:
        return iter(list(self._entries.items()))

    def __len__(self) -> int:
        return len(self._entries)
