"""Deriving an adapter from a base class that is imported only when the adapter is used.

The client glue (:mod:`pyrogram_storage.clients`) and the bot framework adapters
(:mod:`pyrogram_storage.kv.frameworks`) are written as mixins that import nothing of
their client or framework; the first use derives the real class from the mixin and the
library's own base class, so the object passes that library's ``isinstance`` checks.
"""

from __future__ import annotations

import types
from typing import TypeVar

__all__ = ["derive"]

A = TypeVar("A")


def derive(mixin: type[A], base: type, name: str) -> tuple[type[A], list[str]]:
    """Return ``class name(mixin, base)`` and the abstract methods it still lacks.

    The class lives in ``mixin``'s module and has its docstring; give it a ``name`` of
    its own (the mixin's name would stand twice in its MRO).
    """
    bound = types.new_class(name, (mixin, base), {})
    bound.__module__ = mixin.__module__
    bound.__qualname__ = name
    bound.__doc__ = mixin.__doc__
    return bound, sorted(getattr(bound, "__abstractmethods__", ()))
