"""What both framework adapters share: binding to the framework's base class, lazily.

An adapter is written as a mixin that imports nothing of its framework. The first
call of ``for_<framework>()`` imports the framework's own storage base class and
derives the real class from both (``class X(Mixin, FrameworkBaseStorage)``), so the
object passes the framework's ``isinstance`` checks; the class is made once per
process. Errors get the same treatment: :func:`mixed_error` turns one of ours into an
instance of a class deriving from both ours and the framework's, so that either
``except`` catches it.
"""

from __future__ import annotations

import asyncio
import importlib
import types
from collections.abc import Callable
from typing import Any, TypeVar

from ..._binding import derive
from ...drivers import load_driver
from ...errors import StorageError
from ..base import KVStore
from ..errors import InvalidArgumentError, KVError

__all__ = ["FrameworkAdapter", "UnsupportedFrameworkError", "bind", "mixed_error"]

A = TypeVar("A", bound="FrameworkAdapter")

_bound: dict[type[Any], type[Any]] = {}
_mixed: dict[tuple[type[BaseException], type[BaseException]], type[BaseException] | None] = {}


class UnsupportedFrameworkError(KVError, ImportError):
    """The installed framework's storage base class is not the one the adapter speaks."""


class FrameworkAdapter:
    """The common part of the adapters: the store, and opening it when first needed."""

    #: ``module:Class`` of the framework's storage base class.
    base_class: str = ""
    #: The requirement and the pyrogram-storage extra named when the framework is missing.
    requirement: str = ""
    extra: str = ""
    #: What the adapter's ``__repr__`` and errors call the framework.
    framework: str = ""
    #: The name of the class ``bind()`` derives (what the framework sees).
    bound_name: str = ""

    def __init__(self, store: KVStore[Any]) -> None:
        if not isinstance(store, KVStore):
            raise InvalidArgumentError(
                f"{type(self).__name__} needs a pyrogram_storage.kv store (a KVStore), "
                f"not {type(store).__name__}"
            )
        self.store: KVStore[Any] = store
        self._opening: asyncio.Lock | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.store!r})"

    async def _open_store(self) -> None:
        """Open the store once, however many calls arrive at the same time."""
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            await self.store.open()


def _load(spec: str, requirement: str, extra: str) -> type[Any]:
    module_name, _, name = spec.partition(":")
    load_driver(module_name, requirement, extra)
    found = getattr(importlib.import_module(module_name), name, None)
    if not isinstance(found, type):
        raise UnsupportedFrameworkError(
            f"{module_name}.{name} is missing: the installed {extra} is not one "
            f"pyrogram_storage supports ({requirement})"
        )
    return found


def bind(mixin: type[A]) -> type[A]:
    """Return ``mixin`` derived from its framework's base class (made once per process).

    :raises MissingDriverError: the framework is not installed.
    :raises UnsupportedFrameworkError: its base class wants methods the mixin lacks.
    """
    bound = _bound.get(mixin)
    if bound is not None:
        return bound
    base = _load(mixin.base_class, mixin.requirement, mixin.extra)
    bound, missing = derive(mixin, base, mixin.bound_name or mixin.__name__)
    if missing:
        raise UnsupportedFrameworkError(
            f"{mixin.base_class.replace(':', '.')} requires methods the adapter does not "
            f"provide ({', '.join(missing)}); pyrogram_storage supports {mixin.requirement}"
        )
    _bound[mixin] = bound
    return bound


def mixed_error(
    exc: StorageError,
    theirs: type[BaseException],
    init: Callable[[BaseException, str], None],
) -> BaseException:
    """Return ``exc`` as an instance of a class deriving from ``type(exc)`` and ``theirs``.

    ``init(error, message)`` runs the framework's ``__init__`` part (its attributes).
    The message and our attributes (``key``, ``type_name``…) are kept. Where the two
    classes cannot be combined (incompatible builtin layouts), ``exc`` itself is returned.
    """
    ours = type(exc)
    if isinstance(exc, theirs):
        return exc
    pair = (ours, theirs)
    if pair not in _mixed:
        made: type[BaseException] | None
        try:
            made = types.new_class(ours.__name__, (ours, theirs), {})
        except TypeError:
            made = None
        else:
            made.__module__ = ours.__module__
            made.__qualname__ = ours.__qualname__
        _mixed[pair] = made
    cls = _mixed[pair]
    if cls is None:
        return exc
    message = str(exc)
    error = cls.__new__(cls, message)
    error.__dict__.update(exc.__dict__)
    init(error, message)
    error.args = exc.args
    return error
