"""Optional database drivers, imported only when a backend needs one."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingDriverError

__all__ = ["load_driver"]


def load_driver(module: str, package: str, extra: str, *, needs: str | None = None) -> ModuleType:
    """Import ``module`` of an optional driver, or say which extra installs it.

    :param package: the PyPI requirement to name in the error (e.g. ``"pymongo>=4.9"``).
    :param extra: the ``pyrogram-storage[extra]`` that installs it.
    :param needs: an attribute the module must have (a class only newer releases ship).
    :raises MissingDriverError: the module is missing, or too old to have ``needs``.
    """
    try:
        loaded = importlib.import_module(module)
    except ImportError as exc:
        raise MissingDriverError(package, extra) from exc
    if needs is not None and not hasattr(loaded, needs):
        raise MissingDriverError(package, extra)
    return loaded
