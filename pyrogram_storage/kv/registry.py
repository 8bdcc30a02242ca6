"""Deprecated: the kv scheme table moved to :mod:`pyrogram_storage.registry` in 0.2
(``from_url`` is :func:`pyrogram_storage.kv.from_url`).

Importing from here still works for this release, with a ``DeprecationWarning``.
"""

from ..registry import moved as _moved

__getattr__ = _moved(__name__, "pyrogram_storage.registry", {"from_url": "kv_from_url"})
