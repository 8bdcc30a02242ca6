"""Deprecated: moved to :mod:`pyrogram_storage.sqlite.schema` in 0.2.

Importing from here still works for this release, with a ``DeprecationWarning``.
"""

from .registry import moved as _moved

__getattr__ = _moved(__name__, "pyrogram_storage.sqlite.schema")
