"""What a ``sole_writer=True`` store remembers: the records it wrote or read, by key.

The store's promise (no other object or process writes its keys) makes a record it
wrote, or read and has not written since, the stored one, so a read can be answered
without the server. Memory holds records (the value as stored and its absolute
expiry), never decoded values: a read still hides an expired key and returns a new
object every time. ``None`` remembers a key known to be absent.

Writes of one key may run concurrently (on a pool, the server may apply them in either
order), so what a write leaves behind is kept only if no other write of the key (or
``clear``) overlapped it; a read's answer only if no write of any key started while it
ran (a counter, :attr:`Remembered.news`). Whatever is unsure is forgotten: the next
read asks the server.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from .base import Record

__all__ = ["UNKNOWN", "Remembered"]


class _Unknown:
    """The type of :data:`UNKNOWN`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Final = _Unknown()
"""Not remembered (or, for a finished write, an outcome memory cannot know)."""


class Remembered:
    """Key to record (None: absent), least recently used first, at most ``size`` keys."""

    __slots__ = ("_clearing", "_records", "_writing", "news", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self._records: OrderedDict[str, Record | None] = OrderedDict()
        # Keys being written: [writes in flight, whether another write overlapped].
        self._writing: dict[str, list[int]] = {}
        self._clearing = 0
        self.news = 0
        """Bumped when a write starts or ends, and when memory is cleared."""

    def __len__(self) -> int:
        return len(self._records)

    def recall(self, key: str) -> Record | _Unknown | None:
        """The remembered record of ``key`` (marked recently used), or :data:`UNKNOWN`."""
        records = self._records
        found = records.get(key, UNKNOWN)
        if found is not UNKNOWN:
            records.move_to_end(key)
        return found

    def peek(self, key: str) -> Record | _Unknown | None:
        """:meth:`recall` without touching the order."""
        return self._records.get(key, UNKNOWN)

    def read(self, key: str, news: int, record: Record | None) -> None:
        """Keep what a read of ``key`` that began at ``news`` found, if nothing raced it."""
        if news == self.news and key not in self._writing:
            self._keep(key, record)

    def _keep(self, key: str, record: Record | None) -> None:
        records = self._records
        records[key] = record
        records.move_to_end(key)
        if len(records) > self.size:
            records.popitem(last=False)

    def start(self, key: str) -> None:
        """A write of ``key`` begins: forget it until the write ends."""
        self.news += 1
        self._records.pop(key, None)
        writing = self._writing.get(key)
        if writing is None:
            self._writing[key] = [1, self._clearing]
        else:
            writing[0] += 1
            writing[1] = 1

    def finish(self, key: str, record: Record | _Unknown | None) -> None:
        """A write of ``key`` ended, leaving ``record`` (:data:`UNKNOWN`: not known)."""
        self.news += 1
        writing = self._writing[key]
        writing[0] -= 1
        if writing[0]:
            return
        del self._writing[key]
        if record is not UNKNOWN and not writing[1]:
            self._keep(key, record)  # type: ignore[arg-type]

    def start_clear(self) -> None:
        """``clear`` begins: nothing written meanwhile is kept."""
        self.news += 1
        self._clearing += 1
        self._records.clear()
        for writing in self._writing.values():
            writing[1] = 1

    def finish_clear(self) -> None:
        self.news += 1
        self._clearing -= 1
        self._records.clear()

    def forget(self) -> None:
        """Forget every record (on open and close)."""
        self.news += 1
        self._records.clear()
