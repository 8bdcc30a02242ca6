"""A session held in memory, optionally started from a session string."""

from __future__ import annotations

import sqlite3
import threading
from typing import Any

from ..errors import InvalidValueError
from . import schema as sqlite_schema
from .engine import SQLiteStorage
from .schema import Layout

__all__ = ["MemoryStorage"]


class MemoryStorage(SQLiteStorage):
    """A session in an in-memory SQLite database (the same schema and migrations as a file).

    Everything runs on the event loop: there is no disk to wait for. Unlike the
    clients' memory storages, closing keeps the data: a client that restarts (close,
    then open on the same object) finds its session and peers again. :meth:`delete`
    forgets everything.

    :param session_string: import this session string on the first open.
    :param options: ``layout``, ``username_ttl``, ``peer_cache_size`` and the other
        options of :class:`~pyrogram_storage.Storage`.
    """

    persistent = False
    _threaded = False

    def __init__(
        self,
        name: str = "memory",
        session_string: str | None = None,
        *,
        layout: Layout | str = Layout.UPSTREAM,
        **options: Any,
    ) -> None:
        super().__init__(name, ":memory:", layout=layout, session_string=session_string, **options)
        self._kept: sqlite3.Connection | None = None
        self._fresh = False  # the connection _connect() made is a new, empty database

    @classmethod
    def from_location(cls, location: str, **options: Any) -> MemoryStorage:
        """Build a new in-memory session from ``memory:`` or ``memory:NAME``."""
        scheme, _, name = location.partition(":")
        if scheme.lower() != "memory":
            raise InvalidValueError(f"{location!r} is not a memory: location")
        return cls(name or "memory", **options)

    @property
    def location(self) -> str:
        return f"memory:{self.name}"

    def _connect(self) -> sqlite3.Connection:
        kept, self._kept = self._kept, None
        self._fresh = kept is None
        return kept if kept is not None else super()._connect()

    def _prepare_schema(self, db: sqlite3.Connection) -> sqlite3.Connection:
        fresh, self._fresh = self._fresh, False
        if not fresh:
            return super()._prepare_schema(db)
        # A new database: a copy of one made by the migrations, once per process and
        # layout (running the dozens of schema statements again is most of the cost
        # of a new memory session, as a session-string round trip makes).
        # Its layout is self.layout: the template was made in it, and checked (no need
        # to read it back from the copy: one PRAGMA, ~10 us of a ~390 us round trip).
        _template(self.layout).backup(db)
        return db

    def _disconnect(self, db: sqlite3.Connection) -> None:
        # Everything written has been stored by now: keep the database for the next
        # open() (no copy: a million peers would stall the event loop being copied).
        self._kept = db

    async def _delete(self) -> None:
        kept, self._kept = self._kept, None
        if kept is not None:
            kept.close()


_templates: dict[Layout, sqlite3.Connection] = {}
_templates_lock = threading.Lock()


def _template(layout: Layout) -> sqlite3.Connection:
    """An empty database at the latest schema in ``layout``, made by the migrations."""
    with _templates_lock:
        template = _templates.get(layout)
        if template is None:
            template = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            sqlite_schema.secure(template)
            if sqlite_schema.prepare(template, ":memory:", layout) is not layout:
                raise AssertionError(f"a new database came out in another layout than {layout}")
            _templates[layout] = template
        return template
