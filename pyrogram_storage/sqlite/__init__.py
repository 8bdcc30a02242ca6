"""SQLite sessions: a file every client can open (:class:`FileStorage`) or memory.

* :mod:`.engine`: :class:`SQLiteStorage`, the primitives over one SQLite database;
* :mod:`.file`: :class:`FileStorage`, a session in ``<workdir>/<name>.session``;
* :mod:`.memory`: :class:`MemoryStorage`, a session in an in-memory database;
* :mod:`.schema`: recognising, adopting, creating and migrating a database.
"""

from __future__ import annotations

from .engine import SQLiteStorage
from .file import FILE_EXTENSION, FileStorage, default_workdir
from .memory import MemoryStorage
from .schema import Layout

__all__ = [
    "FILE_EXTENSION",
    "FileStorage",
    "Layout",
    "MemoryStorage",
    "SQLiteStorage",
    "default_workdir",
]
