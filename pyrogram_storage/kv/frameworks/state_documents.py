"""kurigram-addons' FSM storage (``pyrogram_patch.fsm.BaseStorage``) over any KVStore.

kurigram-addons keeps one state document per identifier (``{"name": ..., "data": ...}``
under ``"chat:42"`` or ``"user:7"``) and counters beside them. Here a document is the
value of key ``state:<identifier>`` and a counter the integer at
``counter:<identifier>``, so counters never collide with states (as in kurigram-addons'
memory and SQLite storages), ``list_keys`` lists states only and ``clear_namespace``
removes states only. Everything else is the store's: atomic ``compare_and_set`` and
``increment`` across processes, expiry to the millisecond, every backend.

Semantics, as kurigram-addons' own storages define them:

* ``ttl``: seconds (``float`` allowed); ``None`` means the store's ``default_ttl``
  (``None``: never), ``0`` or less means never.
* ``compare_and_set(..., expected_state=None)`` sets only if the identifier holds no
  live state; otherwise the stored document must equal ``expected_state`` (dict
  equality). An expired state is absent everywhere.
* ``increment`` returns the new value; a missing or expired counter counts as 0; a
  ``ttl`` restarts the counter's expiry, none keeps it (a new counter gets the store's
  ``default_ttl``).
* ``delete_state`` says whether a live state was removed; ``clear_namespace`` how many.
* Errors are ours (``StorageError`` subclasses, with their ``TypeError``/``ValueError``
  mix-ins) and kurigram-addons' ``FSMContextError`` at once: its base class promises a
  ``PyrogramPatchError`` on failure, and an ``except StorageError`` catches them too.
* ``start()`` opens the store (``KurigramClient`` calls it), and so does the first call
  made before it; after ``stop()`` calls raise ``StorageClosedError`` until ``start()``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ...errors import StorageClosedError, StorageError
from ..base import MISSING, Entry, KVStore
from ..errors import InvalidKeyError, InvalidPatternError, InvalidTTLError
from ._bind import FrameworkAdapter, bind, mixed_error

__all__ = ["KurigramAddonsStorage", "for_kurigram_addons"]

STATE = "state:"
COUNTER = "counter:"
_NEVER = -1.0  # a ttl meaning "no expiry, whatever the store's default_ttl"
_CLEAR_BATCH = 100


class KurigramAddonsAdapter(FrameworkAdapter):
    """A kurigram-addons FSM storage over a :class:`~pyrogram_storage.kv.KVStore`.

    :func:`for_kurigram_addons` returns a ``KurigramAddonsStorage``, derived from this
    class and ``pyrogram_patch.fsm.BaseStorage``. The store is reachable as :attr:`store`.
    """

    # kurigram_addons re-exports pyrogram_patch.fsm.BaseStorage; importing it from there
    # avoids the DeprecationWarning a direct "import pyrogram_patch" gives.
    base_class = "kurigram_addons:BaseStorage"
    requirement = "kurigram-addons>=0.5.1"
    extra = "kurigram-addons"
    framework = "kurigram-addons"
    bound_name = "KurigramAddonsStorage"
    _error_base: type[BaseException] | None = None

    def __init__(self, store: KVStore[Any]) -> None:
        super().__init__(store)
        self._stopped = False

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store (``KurigramClient.start()`` calls this)."""
        self._stopped = False
        try:
            await self._open_store()
        except StorageError as exc:
            raise self._error(exc) from exc

    async def stop(self) -> None:
        """Close the store; later calls raise ``StorageClosedError`` until :meth:`start`."""
        self._stopped = True
        try:
            await self.store.close()
        except StorageError as exc:
            raise self._error(exc) from exc

    async def health(self) -> bool:
        """Return whether the store is open and its backend answers; never raises.

        kurigram-addons' rule for ``health()``; the store's own raises the reason.
        """
        try:
            return await self.store.health()
        except StorageError:
            return False

    async def _ready(self) -> None:
        if self._stopped:
            raise StorageClosedError(f"{self!r} was stopped; call start() before using it again")
        await self._open_store()

    # -- states -----------------------------------------------------------------------

    async def get_state(self, identifier: str) -> dict[str, Any] | None:
        """Return the state document of ``identifier``, or None if it has none."""
        store = self.store
        try:
            if not store.is_open:
                await self._ready()
            state: dict[str, Any] | None = await store.get(_key(STATE, identifier))
            return state
        except StorageError as exc:
            raise self._error(exc) from exc

    async def set_state(
        self, identifier: str, state: dict[str, Any], *, ttl: float | None = None
    ) -> None:
        """Store the state document of ``identifier`` (``ttl`` 0: no expiry)."""
        store = self.store
        try:
            if not store.is_open:
                await self._ready()
            key = _key(STATE, identifier)
            seconds = _ttl(ttl)
            if seconds is _NEVER and store.default_ttl is not None:
                await store.put(Entry(key, state, None))  # "never", past default_ttl
            else:
                await store.set(key, state, ttl=None if seconds is _NEVER else seconds)
        except StorageError as exc:
            raise self._error(exc) from exc

    async def delete_state(self, identifier: str) -> bool:
        """Remove the state of ``identifier``; return whether it had a live one."""
        store = self.store
        try:
            if not store.is_open:
                await self._ready()
            return await store.delete(_key(STATE, identifier))
        except StorageError as exc:
            raise self._error(exc) from exc

    async def compare_and_set(
        self,
        identifier: str,
        new_state: dict[str, Any],
        *,
        expected_state: dict[str, Any] | None = None,
        ttl: float | None = None,
    ) -> bool:
        """Store ``new_state`` only if the current state equals ``expected_state``; atomic.

        ``expected_state=None``: only if ``identifier`` has no live state.
        Return whether it was stored.
        """
        store = self.store
        try:
            if not store.is_open:
                await self._ready()
            key = _key(STATE, identifier)
            expected = MISSING if expected_state is None else expected_state
            seconds = _ttl(ttl)
            if seconds is _NEVER and store.default_ttl is not None:
                store._check(key)
                return await store._compare_and_set(key, new_state, expected, None)
            return await store.compare_and_set(
                key, new_state, expected=expected, ttl=None if seconds is _NEVER else seconds
            )
        except StorageError as exc:
            raise self._error(exc) from exc

    async def list_keys(self, pattern: str = "*") -> list[str]:
        """Return the identifiers with a live state matching the glob ``pattern``."""
        store = self.store
        try:
            if not store.is_open:
                await self._ready()
            if type(pattern) is not str:
                raise InvalidPatternError(f"patterns are str, not {type(pattern).__name__}")
            return [key[len(STATE) :] async for key in store.keys(STATE + pattern)]
        except StorageError as exc:
            raise self._error(exc) from exc

    async def clear_namespace(self) -> int:
        """Remove every state (counters stay); return how many live ones there were."""
        store = self.store
        try:
            if not store.is_open:
                await self._ready()
            keys = [key async for key in store.keys(STATE + "*")]
            removed = 0
            for start in range(0, len(keys), _CLEAR_BATCH):
                batch = keys[start : start + _CLEAR_BATCH]
                removed += sum(await asyncio.gather(*(store.delete(key) for key in batch)))
            return removed
        except StorageError as exc:
            raise self._error(exc) from exc

    # -- counters ---------------------------------------------------------------------

    async def increment(self, identifier: str, amount: int = 1, *, ttl: float | None = None) -> int:
        """Add ``amount`` to the counter of ``identifier`` (missing: 0); return the new value.

        A ``ttl`` restarts the counter's expiry; without one it keeps its expiry.
        """
        store = self.store
        try:
            if not store.is_open:
                await self._ready()
            seconds = _ttl(ttl)
            return await store.increment(
                _key(COUNTER, identifier), amount, ttl=None if seconds is _NEVER else seconds
            )
        except StorageError as exc:
            raise self._error(exc) from exc

    # -- errors -----------------------------------------------------------------------

    def _error(self, exc: StorageError) -> BaseException:
        base = type(self)._error_base
        if base is None:
            return exc
        return mixed_error(exc, base, _fsm_error_init(base, exc))


def _fsm_error_init(base: type[BaseException], cause: StorageError) -> Any:
    def init(error: BaseException, message: str) -> None:
        base.__init__(error, message, cause=cause)  # type: ignore[call-arg]

    return init


def _key(prefix: str, identifier: object) -> str:
    if type(identifier) is not str:
        raise InvalidKeyError(f"identifiers are str, not {type(identifier).__name__}")
    return prefix + identifier


def _ttl(ttl: object) -> float | None:
    """Map kurigram-addons' ``ttl`` to the store's: None (default), seconds, or _NEVER."""
    if ttl is None:
        return None
    if not isinstance(ttl, (int, float)) or type(ttl) is bool:
        raise InvalidTTLError(f"ttl is a number of seconds, not {type(ttl).__name__}")
    if ttl <= 0:
        return _NEVER
    return float(ttl)


def for_kurigram_addons(
    store: KVStore[Any],
    *,
    sole_writer: bool | None = None,
    commit_interval: float | None = None,
) -> KurigramAddonsStorage:
    """Return ``store`` as a kurigram-addons FSM storage (``pyrogram_patch.fsm.BaseStorage``).

    ``KurigramClient("bot", storage=kv.for_kurigram_addons(kv.SQLiteKV("fsm.db")))``.
    The client's ``start()``/``stop()`` open and close the store.

    :param store: any :class:`~pyrogram_storage.kv.KVStore`, open or not.
    :param sole_writer: set the store's ``sole_writer`` (None: leave it as built):
        True promises this client is the only writer of the store's keys, whose reads
        are then answered from memory where it can (see :class:`~pyrogram_storage.kv.KVStore`).
    :param commit_interval: set the store's ``commit_interval`` (None: leave it as
        built); above 0 it needs ``sole_writer``. kurigram-addons writes by
        compare-and-set, which stores what is pending first: it gains nothing here.
    :raises InvalidArgumentError: ``store`` is not a KVStore, ``sole_writer`` not a
        bool, or a bad ``commit_interval``.
    :raises MissingDriverError: kurigram-addons is not installed.
    :raises UnsupportedFrameworkError: the installed kurigram-addons' ``BaseStorage``
        wants methods this adapter does not know.
    """
    cls = bind(KurigramAddonsAdapter)
    if cls._error_base is None:
        from pyrogram_patch.errors import FSMContextError  # type: ignore[import-not-found]

        cls._error_base = FSMContextError
    adapter = cls(store)
    if sole_writer is not None:
        store.sole_writer = sole_writer
    if commit_interval is not None:
        store.commit_interval = commit_interval
    return adapter


KurigramAddonsStorage = KurigramAddonsAdapter
"""What :func:`for_kurigram_addons` returns is an instance of this class (its framework's
part added); the name of earlier releases."""
