"""Tools built on the storage contract: copying sessions between backends, Telethon import,
telling what a session file is (:func:`identify`) and copying one (:func:`backup`).

Everything here uses only the public :class:`~pyrogram_storage.Storage` contract, so it
works with every backend, a subclass of your own included. The Telethon reader lives in
:mod:`pyrogram_storage.tools.telethon` (it needs no Telethon installed);
:mod:`pyrogram_storage.tools.encryption` encrypts, decrypts and rekeys a stored session.
"""

from __future__ import annotations

from .copy import CopyResult, ProgressCallback, copy_session, is_empty, opened
from .files import FileIdentity, backup, identify

__all__ = [
    "CopyResult",
    "FileIdentity",
    "ProgressCallback",
    "backup",
    "copy_session",
    "identify",
    "is_empty",
    "opened",
]
