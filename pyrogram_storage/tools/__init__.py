"""Tools built on the storage contract: copying sessions between backends, Telethon import.

Everything here uses only the public :class:`~pyrogram_storage.Storage` contract, so it
works with every backend, a subclass of your own included.
"""

from __future__ import annotations

from .copy import CopyResult, ProgressCallback, copy_session

__all__ = ["CopyResult", "ProgressCallback", "copy_session"]
