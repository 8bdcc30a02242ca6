"""The bot frameworks' FSM storages over any :class:`~pyrogram_storage.kv.KVStore`.

:func:`for_kurigram_addons` gives kurigram-addons' ``pyrogram_patch.fsm.BaseStorage``
(``KurigramClient(..., storage=...)``), :func:`for_aiogram` aiogram 3's
``BaseStorage`` (``Dispatcher(storage=...)``). Each returns an instance of a class
derived from the framework's own base class when first called, so importing this
package imports no framework.
"""

from __future__ import annotations

from ._bind import UnsupportedFrameworkError
from .state_documents import KurigramAddonsAdapter, KurigramAddonsStorage, for_kurigram_addons
from .state_keys import AiogramAdapter, AiogramStorage, UpdateConflictError, for_aiogram

__all__ = [
    "AiogramAdapter",
    "AiogramStorage",
    "KurigramAddonsAdapter",
    "KurigramAddonsStorage",
    "UnsupportedFrameworkError",
    "UpdateConflictError",
    "for_aiogram",
    "for_kurigram_addons",
]
