"""The upstream-dev family: Kurigram, Irenogram, Pyrotgfork.

They pass the storage as ``storage_engine=`` and keep it only if it is an instance
of ``pyrogram.storage.Storage`` (an ABC in Kurigram and Pyrotgfork, a plain class
in Irenogram). Kurigram and Irenogram send 4-tuples to ``update_peers`` and
``(id, [usernames])`` to ``update_usernames``; Pyrotgfork sends 5-tuples holding a
list of usernames. Kurigram keeps update state as ``UpdateState`` objects, the
other two as tuples.
"""

from __future__ import annotations

from ._core import ObjectUpdateStates, TupleUpdateStates

__all__ = ["IrenogramAdapter", "KurigramAdapter", "PyrotgforkAdapter"]


class KurigramAdapter(ObjectUpdateStates):
    """Kurigram: ``Client(..., storage_engine=for_client(storage))``."""

    client = "kurigram"


class IrenogramAdapter(TupleUpdateStates):
    """Irenogram: ``Client(..., storage_engine=for_client(storage))``."""

    client = "irenogram"


class PyrotgforkAdapter(TupleUpdateStates):
    """Pyrotgfork: ``Client(..., storage_engine=for_client(storage))``."""

    client = "pyrotgfork"
