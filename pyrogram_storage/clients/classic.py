"""The classic family: Pyrogram 2.0.106 and Hydrogram.

Both send ``(id, access_hash, type, username, phone)`` to ``update_peers`` and keep
no update state. Pyrogram 2.0.106 has no constructor argument for a storage: assign
``client.storage`` before ``start()``. Hydrogram takes ``session_storage_engine=``
and checks it against its ``BaseStorage`` ABC; its lookups build ``hydrogram.raw``
objects.
"""

from __future__ import annotations

from ._core import ClientStorage

__all__ = ["HydrogramAdapter", "PyrogramAdapter"]


class PyrogramAdapter(ClientStorage):
    """Pyrogram 2.0.106: ``client.storage = for_client(storage)`` after construction."""

    client = "pyrogram"


class HydrogramAdapter(ClientStorage):
    """Hydrogram: ``Client(..., session_storage_engine=for_client(storage))``."""

    client = "hydrogram"
    raw_module = "hydrogram"
    base_class = "hydrogram.storage:BaseStorage"
