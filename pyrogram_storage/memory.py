"""A session held in memory, optionally started from a session string."""

from __future__ import annotations

import sqlite3
import sys

from .base import USERNAME_TTL
from .sqlite import DEFAULT_PEER_CACHE_SIZE, Layout, SQLiteStorage

__all__ = ["MemoryStorage"]


class MemoryStorage(SQLiteStorage):
    """A session in an in-memory SQLite database (the same schema and migrations as a file).

    Unlike the clients' memory storages, closing keeps the data: a client that
    restarts (close, then open on the same object) finds its session and peers
    again. :meth:`delete` forgets everything.

    :param session_string: import this session string on the first open.
    """

    def __init__(
        self,
        name: str = "memory",
        session_string: str | None = None,
        *,
        layout: Layout | str = Layout.UPSTREAM,
        peer_cache_size: int = DEFAULT_PEER_CACHE_SIZE,
        username_ttl: float | None = USERNAME_TTL,
    ) -> None:
        super().__init__(
            name,
            ":memory:",
            layout=layout,
            peer_cache_size=peer_cache_size,
            username_ttl=username_ttl,
            session_string=session_string,
        )
        self._snapshot: bytes | str | None = None

    def _restore(self, conn: sqlite3.Connection) -> None:
        snapshot, self._snapshot = self._snapshot, None
        if isinstance(snapshot, bytes):
            if sys.version_info >= (3, 11):
                conn.deserialize(snapshot)
        elif snapshot is not None:  # Python 3.10 has no deserialize()
            conn.executescript(snapshot)

    async def close(self) -> None:
        conn = self._conn
        if conn is not None:
            # Detached first: later calls fail, calls already queued run before the snapshot,
            # so every write that returned is in it.
            self._conn = None
            try:
                self._snapshot = await conn._execute(lambda: _snapshot(conn._conn))  # type: ignore[no-untyped-call]
            finally:
                self._conn = conn  # no await before super().close() detaches it again
        await super().close()

    async def delete(self) -> None:
        """Close and forget the session."""
        await self.close()
        self._snapshot = None


def _snapshot(db: sqlite3.Connection) -> bytes | str:
    if sys.version_info >= (3, 11):
        return db.serialize()
    version = db.execute("PRAGMA user_version").fetchone()[0]
    return "\n".join(db.iterdump()) + f"\nPRAGMA user_version = {int(version)};"
