"""aiogram 3's FSM storage (``aiogram.fsm.storage.base.BaseStorage``) over any KVStore.

aiogram addresses a conversation by a ``StorageKey`` (bot, chat, user, thread,
business connection, destiny) and keeps a state (a ``str``) and a data ``dict`` for
it. A key builder turns the ``StorageKey`` into strings: by default aiogram's own
``DefaultKeyBuilder``, so keys read as in aiogram's Redis storage
(``fsm:<chat>:<user>:state`` and ``...:data``), with its options (``prefix``,
``separator``, ``with_bot_id``, ``with_business_connection_id``, ``with_destiny``);
any ``KeyBuilder`` may be given instead. The state is the value of the ``state`` key,
the data the value of the ``data`` key.

Semantics, as aiogram's own storages define them:

* ``set_state(key, None)`` removes the state; a ``State`` is stored as its
  ``.state`` name, anything else as ``str(state)`` (as aiogram's Mongo storage does).
* ``set_data`` replaces the data and refuses what is not a ``dict`` with
  ``DataNotDictLikeError``; ``set_data(key, {})`` removes it. ``get_data`` returns a
  new ``dict`` every time (``{}`` when there is none).
* ``update_data`` merges into the data and returns the result. Unlike aiogram's
  default (read, then write), it is atomic: the store's ``merge``, one round trip
  where the backend merges natively (PostgreSQL, Redis, SQLite), so two handlers
  updating one conversation at once (in one process or several) both land. An empty
  update writes nothing (unless a TTL is to be renewed).
* ``state_ttl``/``data_ttl`` (seconds or ``timedelta``) expire states and data, as in
  aiogram's Redis storage; None means the store's ``default_ttl``.
* aiogram has no ``start`` hook: the first call opens the store. ``close()`` (the
  dispatcher's shutdown) closes it; a later call opens it again, as aiogram's own
  storages reconnect.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from ..base import MISSING, KVStore, check_ttl
from ..errors import InvalidArgumentError, MergeConflictError, NotADictError
from ._bind import FrameworkAdapter, bind, mixed_error

__all__ = ["AiogramStorage", "for_aiogram"]

_UPDATE_ATTEMPTS = 100


UpdateConflictError = MergeConflictError
"""``update_data`` lost the race for the same data to other writers too many times."""


class AiogramAdapter(FrameworkAdapter):
    """An aiogram FSM storage over a :class:`~pyrogram_storage.kv.KVStore`.

    :func:`for_aiogram` returns an ``AiogramStorage``, derived from this class and
    aiogram's ``BaseStorage``.
    The store is reachable as :attr:`store`, the key builder as ``key_builder``.
    """

    base_class = "aiogram.fsm.storage.base:BaseStorage"
    requirement = "aiogram>=3.4"
    extra = "aiogram"
    framework = "aiogram"
    bound_name = "AiogramStorage"
    _state_class: type[Any] = type("_NoStateClass", (), {})  # aiogram's State, once bound
    _not_dict_error: type[BaseException] | None = None

    def __init__(
        self,
        store: KVStore[Any],
        key_builder: Any,
        *,
        state_ttl: float | datetime.timedelta | None = None,
        data_ttl: float | datetime.timedelta | None = None,
    ) -> None:
        super().__init__(store)
        if not callable(getattr(key_builder, "build", None)):
            raise InvalidArgumentError(
                f"key_builder must be an aiogram KeyBuilder, not {type(key_builder).__name__}"
            )
        self.key_builder = key_builder
        self.state_ttl = _seconds(state_ttl, "state_ttl")
        self.data_ttl = _seconds(data_ttl, "data_ttl")
        self._renews = self.data_ttl is not None or store.default_ttl is not None

    # -- state ------------------------------------------------------------------------

    async def set_state(self, key: Any, state: Any = None) -> None:
        """Store the state of ``key`` (a ``State``, its name, or None to remove it)."""
        store = self.store
        if not store.is_open:
            await self._open_store()
        name = state.state if isinstance(state, self._state_class) else state
        state_key = self.key_builder.build(key, "state")
        if name is None:
            await store.delete(state_key)
        else:
            await store.set(state_key, name if type(name) is str else str(name), ttl=self.state_ttl)

    async def get_state(self, key: Any) -> str | None:
        """Return the state of ``key``, or None."""
        store = self.store
        if not store.is_open:
            await self._open_store()
        state: str | None = await store.get(self.key_builder.build(key, "state"))
        return state

    # -- data -------------------------------------------------------------------------

    async def set_data(self, key: Any, data: Mapping[str, Any]) -> None:
        """Replace the data of ``key``; an empty dict removes it.

        :raises aiogram.exceptions.DataNotDictLikeError: ``data`` is not a ``dict`` (also an
            :class:`~pyrogram_storage.kv.InvalidArgumentError`).
        :raises KVSerializationError: a value the store's serializer cannot write.
        """
        if not isinstance(data, dict):
            raise self._not_dict(data)
        store = self.store
        if not store.is_open:
            await self._open_store()
        data_key = self.key_builder.build(key, "data")
        if data:
            await store.set(data_key, data, ttl=self.data_ttl)
        else:
            await store.delete(data_key)

    async def get_data(self, key: Any) -> dict[str, Any]:
        """Return a new dict holding the data of ``key`` (``{}`` if it has none)."""
        store = self.store
        if not store.is_open:
            await self._open_store()
        data = await store.get(self.key_builder.build(key, "data"))
        return data if type(data) is dict else {}

    async def update_data(self, key: Any, data: Mapping[str, Any]) -> dict[str, Any]:
        """Merge ``data`` into the data of ``key``, atomically; return the merged dict.

        One :meth:`KVStore.merge <pyrogram_storage.kv.KVStore.merge>`: one round trip
        on PostgreSQL, Redis and SQLite.

        :raises aiogram.exceptions.DataNotDictLikeError: ``data`` is not a mapping.
        :raises UpdateConflictError: other writers changed the data 100 times in a row
            (only on a store without a native merge).
        """
        if not isinstance(data, Mapping):
            raise self._not_dict(data)
        store = self.store
        if not store.is_open:
            await self._open_store()
        data_key = self.key_builder.build(key, "data")
        if not data:
            current = await self.get_data(key)
            if not (current and self._renews):
                return current  # nothing to write
        try:
            return await store.merge(data_key, data, ttl=self.data_ttl)
        except NotADictError:
            pass
        # The data key holds something else (not written by this adapter): get_data
        # reads it as {}, so the update replaces it, unless it changed meanwhile.
        for _ in range(_UPDATE_ATTEMPTS):
            stored = await store.get(data_key, MISSING)
            if type(stored) is dict:
                return await store.merge(data_key, data, ttl=self.data_ttl)
            merged = dict(data)
            if await store.compare_and_set(data_key, merged, expected=stored, ttl=self.data_ttl):
                return dict(merged)
        raise UpdateConflictError(
            f"update_data: the data under {data_key!r} changed {_UPDATE_ATTEMPTS} times while "
            "this update was being applied"
        )

    async def close(self) -> None:
        """Close the store (the dispatcher's shutdown calls this)."""
        await self.store.close()

    def _not_dict(self, data: object) -> BaseException:
        error = InvalidArgumentError(
            f"Data must be a dict or dict-like object, got {type(data).__name__}"
        )
        base = type(self)._not_dict_error
        if base is None:
            return error
        return mixed_error(error, base, _detailed_init(base))


def _detailed_init(base: type[BaseException]) -> Any:
    def init(error: BaseException, message: str) -> None:
        base.__init__(error, message)

    return init


def _seconds(ttl: float | datetime.timedelta | None, name: str) -> float | None:
    if ttl is None:
        return None
    if isinstance(ttl, datetime.timedelta):
        return check_ttl(ttl.total_seconds(), name)
    return check_ttl(ttl, name)


def for_aiogram(
    store: KVStore[Any],
    *,
    key_builder: Any = None,
    state_ttl: float | datetime.timedelta | None = None,
    data_ttl: float | datetime.timedelta | None = None,
    prefix: str = "fsm",
    separator: str = ":",
    with_bot_id: bool = False,
    with_business_connection_id: bool = False,
    with_destiny: bool = False,
    sole_writer: bool | None = None,
    commit_interval: float | None = None,
) -> AiogramStorage:
    """Return ``store`` as an aiogram FSM storage (``aiogram.fsm.storage.base.BaseStorage``).

    ``Dispatcher(storage=kv.for_aiogram(kv.SQLiteKV("fsm.db")))``. Keys are built by
    aiogram's ``DefaultKeyBuilder`` with the options given here, or by ``key_builder``.

    :param store: any :class:`~pyrogram_storage.kv.KVStore`, open or not (the first
        call opens it; the dispatcher's shutdown closes it).
    :param key_builder: an aiogram ``KeyBuilder`` instead of the options below.
    :param state_ttl: seconds (or a ``timedelta``) after which a state expires.
    :param data_ttl: the same for data.
    :param prefix: ``DefaultKeyBuilder``'s prefix (``"fsm"``).
    :param separator: its separator (``":"``).
    :param with_bot_id: put the bot's id in the keys (several bots on one store).
    :param with_business_connection_id: put the business connection's id in them.
    :param with_destiny: put the destiny in them (aiogram's scenes need it).
    :param sole_writer: set the store's ``sole_writer`` (None: leave it as built).
        True promises that this dispatcher is the only writer of the store's keys
        (one bot process): states and data it wrote or read are then read from
        memory, the writes still go to the store. See :class:`~pyrogram_storage.kv.KVStore`.
    :param commit_interval: set the store's ``commit_interval`` (None: leave it as
        built): with ``sole_writer=True``, ``set_state``/``set_data``/``update_data``
        return once memory has them and are stored within this many seconds (a
        crash loses at most that much).
    :raises InvalidArgumentError: ``store`` is not a KVStore, ``key_builder`` given
        together with options, a bad TTL, ``sole_writer`` not a bool, or a bad
        ``commit_interval`` (above 0 without ``sole_writer``).
    :raises MissingDriverError: aiogram is not installed.
    """
    cls = bind(AiogramAdapter)
    if cls._not_dict_error is None:
        from aiogram.exceptions import DataNotDictLikeError  # type: ignore[import-not-found]
        from aiogram.fsm.state import State  # type: ignore[import-not-found]

        cls._state_class, cls._not_dict_error = State, DataNotDictLikeError
    options = {
        "prefix": prefix,
        "separator": separator,
        "with_bot_id": with_bot_id,
        "with_business_connection_id": with_business_connection_id,
        "with_destiny": with_destiny,
    }
    if key_builder is None:
        from aiogram.fsm.storage.base import (  # type: ignore[import-not-found]
            DefaultKeyBuilder,
        )

        key_builder = DefaultKeyBuilder(**options)
    elif options != _DEFAULT_OPTIONS:
        raise InvalidArgumentError(
            "give either key_builder= or DefaultKeyBuilder's options, not both"
        )
    adapter = cls(store, key_builder, state_ttl=state_ttl, data_ttl=data_ttl)
    if sole_writer is not None:
        store.sole_writer = sole_writer
    if commit_interval is not None:
        store.commit_interval = commit_interval
    return adapter


_DEFAULT_OPTIONS: dict[str, object] = {
    "prefix": "fsm",
    "separator": ":",
    "with_bot_id": False,
    "with_business_connection_id": False,
    "with_destiny": False,
}


AiogramStorage = AiogramAdapter
"""What :func:`for_aiogram` returns is an instance of this class (aiogram's part added);
the name of earlier releases."""
