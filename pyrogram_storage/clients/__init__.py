"""Plug a pyrogram_storage storage into any Pyrogram-family client.

:func:`for_client` wraps a :class:`~pyrogram_storage.Storage` (File, Memory, Mongo
or your own subclass) in an object that speaks the installed client's storage
dialect and passes its type check::

    Client("me", storage_engine=for_client(FileStorage("me")))          # Kurigram,
                                                                        # Irenogram, Pyrotgfork
    Client("me", storage=for_client(FileStorage("me")))                 # Pyrofork, Electrogram
    Client("me", session_storage_engine=for_client(FileStorage("me")))  # Hydrogram
    app = Client("me"); app.storage = for_client(FileStorage("me"))     # Pyrogram 2.0.106

The wrapper only translates: tuples and the client's ``raw`` objects at the edge,
the :class:`~pyrogram_storage.Storage` contract underneath. Three dialect families
cover the seven clients (:mod:`.upstream`, :mod:`.pyrofork`, :mod:`.classic`).

Give a session string to the storage (``MemoryStorage(session_string=...)`` or
``FileStorage(..., session_string=...)``), never to the ``Client`` together with the
engine: Kurigram, Irenogram and Hydrogram then silently use their own storage.

After ``close()`` (the client's ``stop()``), update handlers still running may
write. Those writes (``update_peers``, ``update_usernames``, the update-state
setters) are dropped with a DEBUG log on the ``pyrogram_storage.clients`` logger,
and so is any :class:`~pyrogram_storage.StorageError` of such a write still in
flight when ``close()`` ran: the data is a cache the client refills from Telegram,
and raising would only crash a handler during shutdown. Reads after close (peer
lookups, session fields, ``update_state()``, ``get_update_states()``) and
session-field writes raise :class:`~pyrogram_storage.StorageClosedError`;
``remove_state()`` never raises.
A write before the storage was ever opened raises too.

Deliberate differences from the clients' own storages: username lookups are
case-insensitive (Telegram's usernames are), peer types a client does not know
(``forum``, ``direct``, ``community``) resolve to ``InputPeerChannel`` instead of
raising ``ValueError``, ``test_mode``/``is_bot`` read back as bools, and
``server_address``/``port`` fall back to the data center's well-known address.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import logging
import sys

from .._binding import derive
from ..base import Storage
from ..errors import StorageError
from ._core import ClientStorage
from .classic import HydrogramAdapter, PyrogramAdapter
from .pyrofork import ElectrogramAdapter, PyroforkAdapter
from .upstream import IrenogramAdapter, KurigramAdapter, PyrotgforkAdapter

__all__ = ["ADAPTERS", "ClientDetectionError", "ClientStorage", "detect_client", "for_client"]

log = logging.getLogger(__name__)

ADAPTERS: dict[str, type[ClientStorage]] = {
    adapter.client: adapter
    for adapter in (
        KurigramAdapter,
        PyroforkAdapter,
        PyrogramAdapter,
        IrenogramAdapter,
        HydrogramAdapter,
        PyrotgforkAdapter,
        ElectrogramAdapter,
    )
}
"""Client name (its PyPI distribution, lowercased) to adapter class."""

_MODULES = ("pyrogram", "hydrogram")
_bound: dict[str, type[ClientStorage]] = {}


class ClientDetectionError(StorageError, LookupError):
    """No single supported client could be identified, or the named one cannot be loaded."""


def for_client(storage: Storage, client: str | None = None) -> ClientStorage:
    """Return ``storage`` wrapped for the installed Pyrogram-family client.

    :param storage: any :class:`~pyrogram_storage.Storage`; it is opened and closed by
        the client.
    :param client: force a client instead of detecting it: one of ``kurigram``,
        ``pyrofork``, ``pyrogram``, ``irenogram``, ``hydrogram``, ``pyrotgfork``,
        ``electrogram``.
    :raises ClientDetectionError: no supported client is installed, several are and
        none was imported yet, or the named client cannot be imported.
    :raises TypeError: ``storage`` is not a pyrogram_storage ``Storage``.
    """
    name = detect_client() if client is None else _known(client)
    return _bind(name)(storage)


def detect_client() -> str:
    """Return the name of the installed client (see :data:`ADAPTERS`).

    When several are installed (say Kurigram and Hydrogram), the one already
    imported wins. What is installed is looked up once per process.

    :raises ClientDetectionError: none, or no single one, can be identified.
    """
    found = dict(_installed_clients())
    if len(found) > 1:
        imported = {name: module for name, module in found.items() if module in sys.modules}
        if len(imported) == 1 and len(set(found.values())) == len(found):
            found = imported
    if len(found) == 1:
        return next(iter(found))
    supported = ", ".join(ADAPTERS)
    if found:
        raise ClientDetectionError(
            f"several Pyrogram-family clients are installed ({', '.join(sorted(found))}); "
            "pass client=... to for_client() to choose one"
        )
    foreign = _foreign_clients()
    if foreign:
        raise ClientDetectionError(
            f"{', '.join(foreign)} is not a client pyrogram_storage knows; "
            f"pass client=... (one of {supported}) if it speaks one of their dialects"
        )
    raise ClientDetectionError(
        f"no Pyrogram-family client is installed; install one of {supported}"
    )


@functools.cache
def _installed_clients() -> tuple[tuple[str, str], ...]:
    """(client, module) for every supported client whose distribution is installed.

    One metadata lookup per known client, not a scan of every installed distribution.
    """
    found = []
    for name, adapter in ADAPTERS.items():
        try:
            distribution = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        # "pyrogram" also finds a folder named pyrogram-ultra-1.0.dist-info: check the name.
        installed = str(distribution.metadata["Name"] or "").lower().replace("_", "-")
        if installed == name:
            found.append((name, adapter.raw_module))
    return tuple(found)


def _foreign_clients() -> list[str]:
    """Installed distributions that provide a client module but are not ones we know."""
    distributions = importlib.metadata.packages_distributions()
    foreign = []
    for module in _MODULES:
        for distribution in dict.fromkeys(distributions.get(module, ())):
            if distribution.lower().replace("_", "-") not in ADAPTERS:
                foreign.append(f"{distribution} (module {module!r})")
    return foreign


def _known(client: str) -> str:
    name = client.lower().replace("_", "-")
    if name not in ADAPTERS:
        raise ClientDetectionError(
            f"unknown client {client!r}; choose one of {', '.join(ADAPTERS)}"
        )
    return name


def _bind(name: str) -> type[ClientStorage]:
    """Derive the adapter from the client's own storage base class, once per client."""
    bound = _bound.get(name)
    if bound is not None:
        return bound
    adapter = ADAPTERS[name]
    module_name, _, class_name = adapter.base_class.partition(":")
    try:
        base = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise ClientDetectionError(
            f"cannot load {name}'s storage base class {adapter.base_class} ({exc}); "
            f"is {name} installed in this environment?"
        ) from exc
    bound, missing = derive(adapter, base, adapter.__name__)
    if missing:
        raise ClientDetectionError(
            f"{module_name}.{class_name} requires storage methods the {name} dialect "
            f"does not provide ({', '.join(missing)}); is {name} the installed client?"
        )
    _bound[name] = bound
    log.debug("bound %s to %s.%s", adapter.__name__, module_name, class_name)
    return bound
