"""The bounded peer cache every storage keeps when its process is the session's only writer."""

from __future__ import annotations

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
    """Peer id to :data:`Entry`, bounded: two generations of plain dicts.

    Written and used entries go to the young generation; when it holds half of
    ``size`` entries it becomes the old one and the previous old one is dropped, so at
    most ``size`` entries are kept and at least the ``size / 2`` most recent ones: an
    LRU approximation in O(1). Entries are tuples of ints and strings, which the
    garbage collector stops tracking, so a large cache costs full collections nothing.
    """

    __slots__ = ("_generation", "_old", "_young", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self._generation = max(1, size // 2)
        self._young: dict[int, Entry] = {}
        self._old: dict[int, Entry] = {}

    def get(self, peer_id: int) -> Entry | None:
        """Return the entry of ``peer_id`` and mark it recently used."""
        entry = self._young.get(peer_id)
        if entry is None:
            entry = self._old.pop(peer_id, None)
            if entry is not None:
                self._store(peer_id, entry)
        return entry

    def peek(self, peer_id: int) -> Entry | None:
        """Return the entry of ``peer_id`` without touching its recency."""
        entry = self._young.get(peer_id)
        return self._old.get(peer_id) if entry is None else entry

    def put(self, peer_id: int, entry: Entry) -> None:
        if self.size > 0:
            self._old.pop(peer_id, None)
            self._store(peer_id, entry)

    def _store(self, peer_id: int, entry: Entry) -> None:
        young = self._young
        young[peer_id] = entry
        if len(young) >= self._generation:
            self._old = young
            self._young = {}

    def pop(self, peer_id: int) -> None:
        self._young.pop(peer_id, None)
        self._old.pop(peer_id, None)

    def clear(self) -> None:
        self._young = {}
        self._old = {}

    def __len__(self) -> int:
        return len(self._young) + len(self._old)
