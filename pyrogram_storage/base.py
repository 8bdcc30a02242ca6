"""The storage contract: :class:`Storage` owns every rule, backends implement primitives.

The public coroutines (what clients and tools call) check and normalise their
arguments, keep the open/closed state, apply ``session_string=``, judge username
freshness, overlay writes that are not stored yet, keep the peer cache and translate
backend failures. A backend implements the protected primitives below (``_open``,
``_apply``, ``_find_peer``...) and nothing else; a subclass of your own gets every rule
for free, and :mod:`pyrogram_storage.testing` checks it against the whole contract.

Writes of peers, usernames and update states are *visible* to every read the moment
the call returns and *stored* within ``commit_interval`` seconds (at once when it is
0), at :meth:`Storage.flush`, :meth:`Storage.save` and :meth:`Storage.close`. They are
stored in call order, batch by batch, so after a crash what is stored is always a
prefix of the writes. Session fields are stored before the call returns.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any, ClassVar, TypeVar

from . import _pending as journal
from ._cache import HASH, NAMES, PHONE, STAMP, TYPE, Entry, PeerCache
from ._lifecycle import _OPEN, Lifecycle
from ._pending import Changes, Journal
from .crypto import Key, Sealer
from .errors import (
    BackendError,
    InvalidTypeError,
    InvalidValueError,
    PeerNotFound,
    ReadOnlyError,
    StorageClosedError,
)
from .session_string import decode_session_string, encode_session_string
from .types import Peer, PeerType, SessionData, UpdateState
from .validation import (
    KNOWN_TYPES,
    checked_session_changes,
    clean_usernames,
    count,
    int64,
    interval,
    normalize_phone,
    normalize_username,
    optional_int64,
    peer_type,
    stored_peer,
    stored_session,
    stored_state,
)

__all__ = [
    "DEFAULT_PEER_CACHE_SIZE",
    "USERNAME_TTL",
    "Changes",
    "Storage",
    "normalize_phone",
    "normalize_username",
]

log = logging.getLogger("pyrogram_storage")

T = TypeVar("T")

USERNAME_TTL = 8 * 60 * 60
"""Seconds after its peer's last write that a username stops resolving (the clients' rule)."""

DEFAULT_PEER_CACHE_SIZE = 100_000
"""Peers a storage keeps in memory for lookups by id, when it is the session's only writer."""

_WARM_BATCH = 2000
"""Peers per trip to the backend while the cache warms up after open()."""

_WARM_MOST = 10_000
"""Peers one storage reads into its cache after open(): the most recently written."""


class _WarmBudget:
    """Peers the storages of one process may have read in by warm-ups at once.

    A host of a thousand sessions must not read every session's peers into memory on
    open: the first storages to open warm up, the others fill their caches as they
    are used. A storage gives its share back when it closes.
    """

    left = 100_000

_PROBE_BATCH = 8
"""Writes of at most this many peers (a client's per-update batches) are probed."""

_STAMP_REFRESH = 3600.0
"""An unchanged peer is written again (to refresh ``last_update_on``) at most this often,
and at most every eighth of ``username_ttl``: a username then resolves for at least
seven eighths of the TTL after its peer was last seen."""



class Storage(Lifecycle, abc.ABC):
    """A session store: authorization data, the peer cache and the update state.

    A storage is constructed without I/O and without an event loop; :meth:`open` does
    the work. To hand one to a client, wrap it with :func:`pyrogram_storage.for_client`.

    :param name: the session name (a file name, a database name).
    :param username_ttl: seconds a username stays resolvable after its peer was last
        written; ``None`` keeps usernames forever.
    :param session_string: a session string to store on the first :meth:`open`,
        replacing the stored authorization.
    :param peer_cache_size: peers kept in memory for lookups by id (0 disables the
        cache). Used only while this object is the session's only writer.
    :param commit_interval: seconds within which peer, username and update-state writes
        are stored (they are visible at once); 0 stores each before its call returns.
        Defaults to the backend's :attr:`default_commit_interval`.
    :param read_only: refuse every write with :class:`ReadOnlyError` (and, where the
        backend can, open the data without any lock or write).
    :param encryption_key: seal the auth key at rest with this key: 32 random bytes, or
        a passphrase ``str`` (stretched with Argon2id on each open, off the event loop).
        Needs ``pip install pyrogram-storage[crypto]``. See :mod:`pyrogram_storage.crypto`.
    :param fernet_key: open an auth key stored as a Fernet token by Kurigram's example
        ``EncryptedFernetStorage`` (written back as one, unless ``encryption_key`` is given).
    :param encrypt_existing: on open, seal an auth key stored in clear (or as a Fernet
        token) with ``encryption_key``; without it such a session is refused.
    :raises SessionStringError: ``session_string`` cannot be decoded.
    :raises InvalidValueError: an option is out of range.
    :raises MissingDriverError: a key was given and ``cryptography`` is not installed.
    """

    persistent: ClassVar[bool] = True
    """Whether a second object with the same name and location sees this one's data."""
    probes_writes: ClassVar[bool] = False
    """Whether point reads are cheap enough (no round trip) to read a peer before
    writing it, so that rewriting an unchanged peer costs no write."""
    requires: ClassVar[str | None] = None
    """The kind of server the backend needs ("mongodb", "redis"), or None: tests start one."""
    default_commit_interval: ClassVar[float] = 0.0
    """The ``commit_interval`` of a storage built without one."""

    def __init__(
        self,
        name: str,
        *,
        username_ttl: float | None = USERNAME_TTL,
        session_string: str | None = None,
        peer_cache_size: int = DEFAULT_PEER_CACHE_SIZE,
        commit_interval: float | None = None,
        read_only: bool = False,
        encryption_key: Key | None = None,
        fernet_key: bytes | str | None = None,
        encrypt_existing: bool = False,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise InvalidValueError("a session name must be a non-empty string")
        super().__init__()
        self.name = name
        self.username_ttl = None if username_ttl is None else interval(username_ttl, "username_ttl")
        self.commit_interval = (
            self.default_commit_interval
            if commit_interval is None
            else interval(commit_interval, "commit_interval")
        )
        if not isinstance(read_only, bool):
            raise InvalidTypeError(f"read_only must be a bool, not {type(read_only).__name__}")
        self.read_only = read_only
        if read_only and session_string is not None:
            raise InvalidValueError("a read-only storage cannot store a session_string")
        if read_only and encrypt_existing:
            raise InvalidValueError("a read-only storage cannot encrypt_existing")
        self._sealer = Sealer(
            encryption_key,
            fernet_key=fernet_key,
            encrypt_existing=encrypt_existing,
            read_only=read_only,
        )
        self._pending_session: SessionData | None = (
            decode_session_string(session_string) if session_string is not None else None
        )
        self._cache = PeerCache(count(peer_cache_size, "peer_cache_size"))
        self._caching = False  # the cache is used only while we are the only writer
        self._exclusive = False
        self._journal = Journal()
        self._writable = False  # open, not read-only, and no store failing: the fast check
        self._session: SessionData | None = None
        self._peer_writes = 0  # bumped by every peer write: a read racing one is not cached
        self._probes = 0
        self._probe_hits = 1.0  # recent share of probed peers found stored
        self._failure: BaseException | None = None  # why the last background store failed
        self._flush_task: asyncio.Task[None] | None = None
        self._flush_wake: asyncio.Future[None] | None = None
        self._warming: asyncio.Task[None] | None = None
        self._warm_share = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    @classmethod
    def from_location(cls, location: str, **options: Any) -> Storage:
        """Build the storage a location names (see :func:`pyrogram_storage.from_url`).

        :raises InvalidValueError: ``location`` is not one of this backend's.
        """
        raise InvalidValueError(f"{cls.__name__} cannot be built from a location")

    @property
    def location(self) -> str | None:
        """The location :func:`pyrogram_storage.from_url` reaches this session by.

        It may hold a password (a server URL): never log it.
        """
        return None

    # == primitives: what a backend implements ===============================================

    @abc.abstractmethod
    async def _open(self) -> SessionData:
        """Connect, create or migrate the stored data, and return the stored session.

        Return ``SessionData()`` for a new session. Called by :meth:`open` only when
        the storage is not open; :meth:`_close` is called on every later failure.
        """

    async def _close(self) -> None:
        """Release connections. Everything written has been stored already."""

    @abc.abstractmethod
    async def _delete(self) -> None:
        """Remove every trace of the session. The storage is closed (maybe never opened)."""

    @abc.abstractmethod
    async def _apply(self, changes: Changes) -> None:
        """Store one batch of changes, atomically where the backend can (see :class:`Changes`)."""

    async def _save(self) -> None:
        """Make everything stored durable against power loss (a checkpoint...)."""

    @abc.abstractmethod
    async def _find_peer(self, peer_id: int, usernames: bool) -> Peer | None:
        """Return the stored peer with this id, or None.

        :param usernames: whether the caller needs the usernames; when False, a
            backend may return the peer with ``usernames=None`` (not loaded).
        """

    @abc.abstractmethod
    async def _find_by_username(self, username: str, usernames: bool) -> Peer | None:
        """Return the peer holding ``username`` (normalised), the newest written first."""

    @abc.abstractmethod
    async def _find_by_phone(self, phone: str, usernames: bool) -> Peer | None:
        """Return the peer with ``phone`` (digits only), the newest written first."""

    @abc.abstractmethod
    async def _read_peers(self, after: int | None, limit: int) -> list[Peer]:
        """Return up to ``limit`` stored peers with ids above ``after``, ordered by id."""

    async def _count_peers(self) -> dict[str, int]:
        """Return how many peers of each type name are stored."""
        counts: dict[str, int] = {}
        after: int | None = None
        while True:
            batch = await self._read_peers(after, 1000)
            for peer in batch:
                counts[peer.type.value] = counts.get(peer.type.value, 0) + 1
            if len(batch) < 1000:
                return counts
            after = batch[-1].id

    @abc.abstractmethod
    async def _read_states(self, ids: Sequence[int] | None) -> list[UpdateState]:
        """Return the stored update states (all of them, or those of ``ids``)."""

    async def _recent_peers(self, limit: int) -> list[int]:
        """Return the ids of up to ``limit`` peers most worth caching, the most recent first.

        A storage that caches peers loads them in the background after :meth:`open`, so
        that a restarted client does not read each active peer again. Default: none.
        """
        return []

    async def _find_peers(self, peer_ids: Sequence[int]) -> list[Peer]:
        """Return the stored peers among ``peer_ids`` (with usernames), in any order."""
        found = []
        for peer_id in peer_ids:
            peer = await self._find_peer(peer_id, True)
            if peer is not None:
                found.append(peer)
        return found

    async def _username_holders(self, username: str) -> set[int] | None:
        """Return the ids of every stored peer holding ``username`` (None: not supported).

        Lets a lookup by username skip, without reading them, the peers whose pending
        writes kept their usernames but do not hold this one. Default: not supported,
        and each such peer is read.
        """
        return None

    async def _read_session(self) -> SessionData | None:
        """Return the stored session as another writer may have left it (None: not supported).

        Called by :meth:`get_session` when this object is not the only writer.
        """
        return None

    async def _ping(self) -> None:
        """Raise if the store does not answer a trivial query."""

    def _sole_writer(self) -> bool:
        """Whether, once open, no other object or process writes this session.

        Only then is the peer cache used and an unchanged peer not written again.
        """
        return True

    # == lifecycle ============================================================================

    async def open(self) -> None:
        """Open the store, creating or migrating it as needed.

        Clients call it from ``start()``, and again on the same object after
        ``close()`` when they restart. Opening an open storage does nothing.

        :raises MigrationError: the stored schema is newer than this library, or foreign.
        :raises CorruptSessionError: the stored data is damaged.
        :raises BackendError: the database cannot be reached.
        """
        await super().open()
        log.debug("opened %r", self)

    async def _opening(self) -> None:
        session = await self._call("open the session", self._open())
        session = await self._sealer.open(session, repr(self), first=True)
        session = stored_session(session, self)
        self._exclusive = bool(self._sole_writer())
        self._caching = self._exclusive and self._cache.size > 0
        self._session = session
        self._failure = None

    async def _opened(self) -> None:
        self._set_writable()
        if self._pending_session is not None:
            await self._store_session(self._pending_session.fields())
            self._pending_session = None
        elif self._sealer.converting and self._session is not None:
            # encrypt_existing: one write of the auth key, atomic in every backend
            await self._store_session({"auth_key": self._session.auth_key})
        if self._caching:
            self._warming = asyncio.get_running_loop().create_task(self._warm_cache())

    async def close(self) -> None:
        """Store what is pending and release connections.

        Idempotent; the storage can be opened again. Calls made after ``close()``
        began raise :class:`StorageClosedError`.

        :raises BackendError: pending writes could not be stored (the storage is
            closed anyway; they are lost).
        """
        await super().close()

    async def _closing(self) -> None:
        self._set_writable()
        self._caching = False
        self._cache.clear()
        warming, self._warming = self._warming, None
        if warming is not None and not warming.done():
            warming.cancel()
            await asyncio.wait([warming])
        _WarmBudget.left += self._warm_share
        self._warm_share = 0
        await self._stop_flushing()
        failure: BaseException | None = None
        if self._session is not None:
            try:
                await self._store_pending()
            except Exception as exc:
                failure = exc
        self._journal.clear()
        self._session = None
        self._sealer.close()
        try:
            await self._call("close the session", self._close())
        finally:
            log.debug("closed %r", self)
        if failure is not None:
            raise BackendError(
                f"{self!r}: writes made before close() could not be stored: {failure}"
            ) from failure

    async def delete(self) -> None:
        """Remove the session for good, closing the storage first.

        Works on a closed storage: clients call it from ``log_out()``, after ``close()``.
        """
        if self.read_only:
            raise ReadOnlyError(f"{self!r} is read-only; delete() would remove the session")
        if self._state == _OPEN:
            self._journal.clear()  # going away with the session; nothing to store
            await self.close()
        await self._call("delete the session", self._delete())
        log.debug("deleted %r", self)

    async def save(self) -> None:
        """Store every write so far, set ``date`` to now and make it all durable.

        Clients call it from ``stop()`` and after recovering update gaps.
        """
        self._check_open()
        if self.read_only:
            return
        await self._store_session({"date": int(time.time())})
        await self._call("save the session", self._save())

    async def flush(self) -> None:
        """Store every peer, username and update-state write made so far.

        :raises BackendError: they could not be stored; they stay pending, and the
            next write, flush or save tries again.
        """
        self._check_open()
        await self._store_pending()

    async def _clean_exit(self) -> None:
        await self.save()

    # == authorization ========================================================================

    async def get_session(self) -> SessionData:
        """Return the stored authorization fields.

        :raises StorageClosedError: the storage is not open.
        """
        session = self._session
        if session is None:
            raise StorageClosedError(f"{self!r} is closed; call open() first")
        if not self._exclusive:
            fresh = await self._call("read the session", self._read_session())
            if fresh is not None and self._session is not None:
                fresh = await self._sealer.open(fresh, repr(self), first=False)
                session = self._session = stored_session(fresh, self)
        return session

    async def update_session(self, **changes: Any) -> None:
        """Store the given fields of :class:`SessionData` (``None`` is a value, not "skip").

        Stored before the call returns, together with every earlier pending write.

        :raises InvalidTypeError: a name is not a session field, or a value has the wrong type.
        :raises InvalidValueError: a value is out of range (an auth key not of 256 bytes).
        """
        self._check_writable()
        await self._store_session(changes)

    async def set_encryption_key(self, encryption_key: Key | None) -> None:
        """Store the auth key sealed with ``encryption_key`` from now on (None: in clear).

        One write of the auth key, atomic in every backend: the stored session opens
        with the old key until it returns, with the new one after. Later opens of this
        object use the new key. The command line's ``encrypt``, ``decrypt`` and
        ``rekey`` call it.

        :raises InvalidTypeError: a key of the wrong type.
        :raises InvalidValueError: a raw key not of 32 bytes.
        """
        self._check_writable()
        sealer = self._sealer.with_key(encryption_key)
        await sealer.prepare()  # a passphrase is stretched off the event loop
        session = await self.get_session()
        old, self._sealer = self._sealer, sealer
        try:
            await self._store_session({"auth_key": session.auth_key})
        except BaseException:
            self._sealer = old
            raise
        old.close()

    async def export_session_string(self) -> str:
        """Return the session as the 362-character string every client imports.

        The string is as secret as an unencrypted session file: it holds the auth key
        in clear, whatever ``encryption_key`` the storage seals it with.

        :raises SessionStringError: the session has no auth key, user or api id yet.
        """
        return encode_session_string(await self.get_session())

    async def import_session_string(self, session_string: str) -> None:
        """Replace the stored authorization with the one in ``session_string``.

        :raises SessionStringError: the string cannot be decoded.
        """
        self._check_writable()
        await self._store_session(decode_session_string(session_string).fields())

    # == peers ================================================================================

    async def upsert_peers(self, peers: Iterable[Peer]) -> None:
        """Insert or replace peers.

        A peer whose ``usernames`` is ``None`` keeps the usernames already stored.
        Clients call it (through their ``update_peers``) on nearly every update; a
        peer that did not change since this object last wrote it costs no I/O.

        :raises InvalidTypeError: an item is not a :class:`Peer`, or a field has the wrong type.
        :raises InvalidValueError: an id or access hash does not fit in 64 bits.
        """
        if not self._writable:
            self._check_writable()
        now = int(time.time())
        if type(peers) is not list:
            peers = _iterate(peers, "peers")
        changes = [self._peer_change(peer, now) for peer in peers]
        if not changes:
            return
        cache = self._cache if self._caching else None
        if cache is not None:
            peek = cache.peek
            if self.probes_writes and len(changes) <= _PROBE_BATCH:
                for peer_id, _, _ in changes:
                    if peek(peer_id) is None:
                        await self._probe([peer_id for peer_id, _, _ in changes])
                        break
            refresh = self._refresh_window()
            kept = []
            for item in changes:
                cached = peek(item[0])
                if cached is None or not _unchanged(cached, item[1], item[2], now, refresh):
                    kept.append(item)
            if not kept:
                return
            changes = kept
        journal_ = self._journal
        for peer_id, change, _ in changes:
            if not journal_.can_add(peer_id, change):
                # Usernames set, then a write keeping them: whether they are kept depends
                # on what is stored, so store the first before taking the second (and
                # before changing anything, should storing fail).
                await self._store_pending()
                break
        for peer_id, change, _ in changes:
            journal_.add_peer(peer_id, change)
            if cache is not None:
                names = change[3]
                if names is None:
                    cached = cache.peek(peer_id)
                    names = None if cached is None else cached[NAMES]
                cache.put(peer_id, (change[1], change[2], names, change[4], change[5]))
        self._peer_writes += 1
        if self.commit_interval == 0 or journal_.full:
            await self._written()
        elif self._flush_task is None:
            self._start_flush(self.commit_interval)

    async def set_usernames(self, usernames: Iterable[tuple[int, Sequence[str]]]) -> None:
        """Replace the usernames of each given peer id; ids not stored are ignored.

        :raises InvalidTypeError: the usernames of a peer are one ``str``, not a sequence.
        """
        if not self._writable:
            self._check_writable()
        now = int(time.time())
        merged: dict[int, tuple[str, ...]] = {}
        if type(usernames) is not list:
            usernames = _iterate(usernames, "usernames")
        for item in usernames:
            try:
                peer_id, names = item
            except (TypeError, ValueError):
                raise InvalidTypeError(
                    f"set_usernames() takes (peer id, usernames) pairs, not {type(item).__name__}"
                ) from None
            if type(peer_id) is not int or not _MIN64 <= peer_id <= _MAX64:
                peer_id = int64(peer_id, "peer id")
            merged[peer_id] = clean_usernames(names)
        if not merged:
            return
        cache = self._cache if self._caching else None
        if cache is not None and self.probes_writes and len(merged) <= _PROBE_BATCH:
            for peer_id in merged:
                if cache.peek(peer_id) is None:
                    await self._probe(list(merged))
                    break
        written = 0
        for peer_id, names in merged.items():
            if cache is not None:
                cached = cache.peek(peer_id)
                if cached is not None:
                    if cached[NAMES] == names:
                        continue
                    cache.put(peer_id, (*cached[:NAMES], names, *cached[PHONE:]))
            self._journal.add_peer(peer_id, (journal.NAMES, 0, "", names, None, now))
            written += 1
        if written:
            self._peer_writes += 1
            if self.commit_interval == 0 or self._journal.full:
                await self._written()
            elif self._flush_task is None:
                self._start_flush(self.commit_interval)

    async def delete_peers(self, peer_ids: Iterable[int]) -> None:
        """Forget these peers and their usernames; unknown ids are ignored."""
        self._check_writable()
        ids = {int64(peer_id, "peer id") for peer_id in _iterate(peer_ids, "peer_ids")}
        if not ids:
            return
        for peer_id in ids:
            self._cache.pop(peer_id)
            self._journal.add_peer(peer_id, (journal.DELETED, 0, "", None, None, 0))
        self._peer_writes += 1
        await self._written()

    def cached_peer(self, peer_id: int) -> Peer | None:
        """Return the peer with this id if it is in memory (cache hit), else None; no I/O.

        Its usernames may be ``None`` (not loaded). Client glue calls it before
        :meth:`peer_by_id` to answer a hit without awaiting anything.
        """
        entry = self._cache.get(peer_id) if type(peer_id) is int else None
        return None if entry is None else _entry_peer(peer_id, entry)

    def cached_access(self, peer_id: int) -> tuple[int, str] | None:
        """Return ``(access_hash, type name)`` of a peer in memory, else None; no I/O.

        What a client needs to build its ``InputPeer`` for a cache hit, without
        making a :class:`Peer`. Client glue calls it before :meth:`peer_by_id`.
        """
        entry = self._cache.get(peer_id) if type(peer_id) is int else None
        return None if entry is None else (entry[HASH], entry[TYPE])

    async def peer_by_id(self, peer_id: int, *, with_usernames: bool = True) -> Peer:
        """Return the peer with this id.

        :param with_usernames: False when the caller needs no usernames: the peer may
            then come back with ``usernames=None``, from a cheaper query.
        :raises PeerNotFound: no such peer (also for anything that is not an int).
        """
        if type(peer_id) is int:
            entry = self._cache.get(peer_id)
            if entry is not None and (entry[NAMES] is not None or not with_usernames):
                return _entry_peer(peer_id, entry)
        return await self._peer_by_id(peer_id, with_usernames)

    async def peer_by_username(self, username: str, *, with_usernames: bool = True) -> Peer:
        """Return the peer holding this username (case-insensitive, ``@`` optional).

        :raises PeerNotFound: no such username, or its peer was last written more
            than ``username_ttl`` seconds ago (``Username expired: …``).
        :raises InvalidTypeError: ``username`` is not a str.
        """
        self._check_open()
        if not isinstance(username, str):
            raise InvalidTypeError(f"a username must be a str, not {type(username).__name__}")
        key = normalize_username(username)
        peer = await self._lookup("names", key, username, with_usernames) if key else None
        if peer is None:
            raise PeerNotFound(f"Username not found: {key}", username)
        if not self._is_fresh(peer):
            raise PeerNotFound(f"Username expired: {key}", username)
        return peer

    async def peer_by_phone(self, phone_number: str, *, with_usernames: bool = True) -> Peer:
        """Return the user with this phone number (``+``, spaces and dashes ignored).

        :raises PeerNotFound: no such phone number.
        :raises InvalidTypeError: ``phone_number`` is not a str.
        """
        self._check_open()
        if not isinstance(phone_number, str):
            raise InvalidTypeError(
                f"a phone number must be a str, not {type(phone_number).__name__}"
            )
        key = normalize_phone(phone_number)
        peer = await self._lookup("phones", key, phone_number, with_usernames) if key else None
        if peer is None:
            raise PeerNotFound(f"Phone number not found: {key}", phone_number)
        return peer

    async def iter_peers(self, batch_size: int = 1000) -> AsyncIterator[list[Peer]]:
        """Yield every stored peer, with its usernames, in batches ordered by id.

        :raises InvalidValueError: ``batch_size`` is below 1.
        """
        batch_size = count(batch_size, "batch_size", minimum=1)
        self._check_open()
        await self._store_pending()
        after: int | None = None
        where = self
        while True:
            batch = await self._call("read peers", self._read_peers(after, batch_size))
            if not batch:
                return
            yield [stored_peer(peer, where) for peer in batch]
            if len(batch) < batch_size:
                return
            after = batch[-1].id

    async def count_peers(self) -> dict[PeerType, int]:
        """Return how many peers of each type are stored."""
        self._check_open()
        await self._store_pending()
        counts = await self._call("count peers", self._count_peers())
        result: dict[PeerType, int] = {}
        for kind, number in counts.items():
            if not isinstance(number, int) or isinstance(number, bool):
                raise BackendError(f"{self!r} counted {type(number).__name__}, not int")
            key = peer_type(kind)
            result[key] = result.get(key, 0) + number
        return result

    # == update state =========================================================================

    async def get_update_states(self, ids: Iterable[int] | None = None) -> list[UpdateState]:
        """Return the stored update states (all, or those of ``ids``), oldest ``date`` first."""
        self._check_open()
        wanted = (
            None
            if ids is None
            else sorted({int64(i, "update state id") for i in _iterate(ids, "ids")})
        )
        if wanted == []:
            return []
        where = self
        states = await self._call("read update states", self._read_states(wanted))
        by_id = {state.id: stored_state(state, where) for state in states}
        pending = self._journal.state_ids()
        if wanted is not None:
            pending &= set(wanted)
            by_id = {key: value for key, value in by_id.items() if key in wanted}
        for state_id in pending:
            change = self._journal.state(state_id)
            if change is None:
                continue
            kind, *values = change
            if kind == journal.STATE_DELETED:
                by_id.pop(state_id, None)
            elif kind == journal.REPLACE or state_id not in by_id:
                by_id[state_id] = UpdateState(state_id, *values)
            else:
                old = by_id[state_id]
                pts, qts, date, seq = (
                    o if n is None else n
                    for n, o in zip(values, (old.pts, old.qts, old.date, old.seq), strict=True)
                )
                by_id[state_id] = UpdateState(state_id, pts, qts, date, seq)
        return sorted(by_id.values(), key=lambda s: (s.date is not None, s.date or 0, s.id))

    async def set_update_states(self, states: Iterable[UpdateState], *, merge: bool = True) -> None:
        """Store update states. With ``merge``, a ``None`` field keeps the stored value."""
        if not self._writable:
            self._check_writable()
        kind = journal.MERGE if merge else journal.REPLACE
        if type(states) is not list:
            states = _iterate(states, "states")
        rows = [_state_change(state, kind) for state in states]
        if not rows:
            return
        add = self._journal.add_state
        for state_id, change in rows:
            add(state_id, change)
        if self.commit_interval == 0 or self._journal.full:
            await self._written()
        elif self._flush_task is None:
            self._start_flush(self.commit_interval)

    async def delete_update_states(self, ids: Iterable[int]) -> None:
        """Delete the update states of ``ids``; unknown ids are ignored."""
        self._check_writable()
        wanted = {int64(i, "update state id") for i in _iterate(ids, "ids")}
        for state_id in wanted:
            self._journal.add_state(state_id, (journal.STATE_DELETED, None, None, None, None))
        if wanted:
            await self._written()

    # == the machinery ========================================================================

    def _set_writable(self) -> None:
        self._writable = self._state == _OPEN and not self.read_only and self._failure is None

    def _check_writable(self) -> None:
        if self._state != _OPEN:
            raise StorageClosedError(f"{self!r} is closed; call open() first")
        if self.read_only:
            raise ReadOnlyError(f"{self!r} was opened read-only; it takes no writes")
        if self._failure is not None:
            raise BackendError(
                f"{self!r}: earlier writes could not be stored ({self._failure}); "
                "call flush() to try again"
            ) from self._failure

    def _peer_change(self, peer: Any, now: int) -> tuple[int, journal.PeerChange, bool]:
        """Check a peer to store; return its id, its journal change and whether it is stamped."""
        if type(peer) is not Peer and not isinstance(peer, Peer):
            raise InvalidTypeError(f"expected Peer, got {type(peer).__name__}")
        peer_id = peer.id
        if type(peer_id) is not int or not _MIN64 <= peer_id <= _MAX64:
            peer_id = int64(peer_id, "peer id")
        access_hash = peer.access_hash
        if type(access_hash) is not int or not _MIN64 <= access_hash <= _MAX64:
            access_hash = int64(access_hash or 0, "access hash")
        kind = peer.type
        kind_name = kind._value_ if type(kind) is PeerType else peer_type(kind).value
        names = peer.usernames
        if names is not None:
            names = clean_usernames(names)
        phone = peer.phone_number
        if phone is not None:
            if not isinstance(phone, str):
                raise InvalidTypeError(f"a phone number must be a str, not {type(phone).__name__}")
            phone = normalize_phone(phone) or None
        stamp = peer.last_update_on
        explicit = stamp is not None
        stamp = int64(stamp, "last_update_on") if explicit else now
        kind_code = journal.PARTIAL if names is None else journal.FULL
        return peer_id, (kind_code, access_hash, kind_name, names, phone, stamp), explicit

    def _refresh_window(self) -> float:
        ttl = self.username_ttl
        return _STAMP_REFRESH if ttl is None else min(_STAMP_REFRESH, ttl / 8)

    def _is_fresh(self, peer: Peer) -> bool:
        if self.username_ttl is None or peer.last_update_on is None:
            return True
        return time.time() - peer.last_update_on <= self.username_ttl

    async def _peer_by_id(self, peer_id: Any, with_usernames: bool) -> Peer:
        self._check_open()
        if type(peer_id) is not int or not _MIN64 <= peer_id <= _MAX64:
            raise PeerNotFound(f"ID not found: {peer_id!r}", peer_id)
        change = self._journal.peer(peer_id)
        if change is not None and change[0] == journal.FULL:
            return journal.make_peer(peer_id, change, change[3])
        if change is not None and change[0] == journal.DELETED:
            raise PeerNotFound(f"ID not found: {peer_id}", peer_id)
        writes = self._peer_writes
        stored = await self._call("look up a peer", self._find_peer(peer_id, with_usernames))
        if stored is not None:
            stored = stored_peer(stored, self)
        peer = self._journal.apply(peer_id, stored)
        if peer is None:
            raise PeerNotFound(f"ID not found: {peer_id}", peer_id)
        if self._caching and writes == self._peer_writes:
            self._remember(peer)
        return peer

    async def _lookup(self, index: str, key: str, given: str, with_usernames: bool) -> Peer | None:
        """Find the newest peer holding a username or phone, pending writes included.

        The candidates: the peer the newest pending write gave the key, the peer the
        backend finds (with pending writes on top), and peers whose pending writes kept
        their usernames but made them newer. Only when a pending write took the key
        from the backend's peer (an older holder may hide behind it) is everything
        stored first and the backend asked again: usernames seldom move that fast.
        """
        journal = self._journal
        holders = journal.holders(key, index)  # newest writes first: they win ties of stamps
        candidates: list[Peer] = []
        for holder in dict.fromkeys(holders):
            written = await self._overlaid(holder)
            if written is not None and _holds(written, index, key):
                candidates.append(written)
        find = self._find_by_username if index == "names" else self._find_by_phone
        what = "look up a username" if index == "names" else "look up a phone number"
        writes = self._peer_writes
        stored = await self._call(what, find(key, with_usernames))
        if stored is not None:
            stored = stored_peer(stored, self)
            if journal.replaces(stored.id, index):
                await self._store_pending()
                writes = self._peer_writes
                stored = await self._call(what, find(key, with_usernames))
                stored = None if stored is None else stored_peer(stored, self)
        if stored is not None:
            peer = journal.apply(stored.id, stored)
            # The backend found it by this key: it holds it, unless a pending write says not.
            held = peer is stored or (
                index == "names" and peer is not None and peer.usernames is None
            )
            if peer is not None and (held or _holds(peer, index, key)) and stored.id not in holders:
                if peer is stored and self._caching and writes == self._peer_writes:
                    self._remember(peer)
                candidates.append(peer)
            if index == "names" and journal.keeps_usernames_since(stored.last_update_on):
                # Only a stored holder of the name can have been made its newest holder:
                # where the backend lists them (one indexed query), only those are read.
                holding = await self._call("look up a username", self._username_holders(key))
                for peer_id in journal.kept_usernames_since(stored.last_update_on, holding):
                    if peer_id != stored.id and peer_id not in holders:
                        newer = await self._overlaid(peer_id)
                        if newer is not None and _holds(newer, index, key):
                            candidates.append(newer)
        if not candidates:
            return None
        if len(candidates) == 1:
            return candidates[0]
        return max(candidates, key=lambda peer: peer.last_update_on or 0)

    async def _warm_cache(self) -> None:
        """Fill the peer cache with the peers most recently written, in the background.

        At most ``_WARM_MOST`` of them, within what the process's budget has left; a
        few thousand per trip to the backend, so the event loop is never held long; a
        peer written or cached meanwhile keeps what it has.
        """
        epoch = self._epoch
        share = min(self._cache.size, _WARM_MOST, _WarmBudget.left)
        if share <= 0:
            return
        _WarmBudget.left -= share
        self._warm_share = share
        try:
            ids = await self._recent_peers(share)
            _WarmBudget.left += share - len(ids)  # what this session does not have
            self._warm_share = len(ids)
            where = self
            for start in range(0, len(ids), _WARM_BATCH):  # the most recent first
                peers = await self._find_peers(ids[start : start + _WARM_BATCH])
                if self._epoch != epoch or not self._caching:
                    return
                by_id = {peer.id: peer for peer in peers}
                cache, journal_ = self._cache, self._journal
                for peer_id in ids[start : start + _WARM_BATCH]:
                    peer = by_id.get(peer_id)
                    if peer is not None and journal_.peer(peer_id) is None:
                        # Behind everything used meanwhile, and never evicting it.
                        cache.put_old(peer_id, _entry(stored_peer(peer, where)))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a cache left cold is slower, never wrong
            log.debug("%r: warming the peer cache stopped: %s", self, exc)

    async def _overlaid(self, peer_id: int) -> Peer | None:
        """The peer as readers see it (pending writes on top), usernames included."""
        try:
            return await self._peer_by_id(peer_id, True)
        except PeerNotFound:
            return None

    async def _probe(self, peer_ids: list[int]) -> None:
        """Read the stored peers a small write names, so that unchanged ones cost no write.

        Only where point reads are cheap (:attr:`probes_writes`), and only while they
        keep finding the peers: a stream of new peers (an import) is not probed, except
        one write in 16, to notice when it ends.
        """
        cache = self._cache
        for peer_id in peer_ids:
            if cache.peek(peer_id) is not None or self._journal.peer(peer_id) is not None:
                continue
            self._probes += 1
            if self._probe_hits < 0.25 and self._probes % 16:
                continue
            writes = self._peer_writes
            stored = await self._call("look up a peer", self._find_peer(peer_id, True))
            self._probe_hits = 0.9 * self._probe_hits + (0.1 if stored is not None else 0.0)
            if stored is not None and writes == self._peer_writes and self._caching:
                self._remember(stored_peer(stored, self))

    def _remember(self, peer: Peer) -> None:
        if peer.usernames is None:
            cached = self._cache.peek(peer.id)
            if cached is not None and cached[HASH] == peer.access_hash:
                return  # what we know is better
        self._cache.put(peer.id, _entry(peer))

    async def _written(self) -> None:
        """After a write entered the journal: store it now, soon, or once the batch is full."""
        if self.commit_interval == 0:
            await self._store_pending()
        elif self._journal.full:
            await self._hand_over()
        elif self._flush_task is None:
            self._start_flush(self.commit_interval)

    async def _hand_over(self) -> None:
        """The pending batch is full: store it now, after the batch in flight if any."""
        task = self._flush_task
        if task is None:
            self._start_flush(0)  # and go on writing the next batch meanwhile
            return
        self._wake_flush()
        await asyncio.wait([task])  # the writer waits: two batches at most, never more

    def _start_flush(self, delay: float) -> None:
        loop = asyncio.get_running_loop()
        wake = self._flush_wake = loop.create_future()
        task = loop.create_task(self._flush_later(delay, wake))
        task.add_done_callback(self._flush_done)
        self._flush_task = task

    def _wake_flush(self) -> None:
        wake = self._flush_wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    async def _flush_later(self, delay: float, wake: asyncio.Future[None]) -> None:
        """Store the pending batch after ``delay`` seconds, or once woken."""
        try:
            if delay > 0 and not wake.done():
                await asyncio.wait([wake], timeout=delay)
        except asyncio.CancelledError:
            # The event loop is shutting down (asyncio.run ending with the storage still
            # open): store what is pending before going.
            if self._state == _OPEN:
                with contextlib.suppress(Exception):
                    await self._store_pending()
            raise
        try:
            await self._store_pending()
        except StorageClosedError:
            pass
        except Exception as exc:
            if self._failure is None:
                log.warning("%r: could not store pending writes, will retry: %s", self, exc)
            self._failure = exc
            self._set_writable()
        else:
            self._failure = None
            self._set_writable()

    def _flush_done(self, task: asyncio.Task[None]) -> None:
        if self._flush_task is task:
            self._flush_task = self._flush_wake = None
        if task.cancelled() or self._state != _OPEN or not self._journal.busy:
            return
        if self._flush_task is None:
            retry = self._failure is not None
            self._start_flush(max(1.0, self.commit_interval) if retry else self.commit_interval)

    async def _stop_flushing(self) -> None:
        """Let the flush task end (storing what it holds) before close() stores the rest."""
        task = self._flush_task
        if task is None:
            return
        self._wake_flush()
        await asyncio.wait([task])

    async def _store_pending(self) -> None:
        """Store every batch waiting, in order; raise what storing raises."""
        _, store = self._lock_pair()
        async with store:
            await self._store_waiting(None)

    async def _store_session(self, changes: dict[str, Any]) -> None:
        """Store session fields, after everything pending, before returning."""
        current = self._session
        if current is None:
            raise StorageClosedError(f"{self!r} is closed; call open() first")
        checked_session_changes(current, changes)  # refuse bad input before waiting
        if not changes:
            return
        _, store = self._lock_pair()
        async with store:
            current = self._session
            if current is None or self._state != _OPEN:
                raise StorageClosedError(f"{self!r} was closed during the call")
            session = checked_session_changes(current, changes)
            await self._store_waiting((session, frozenset(changes)))
            self._session = session

    async def _store_waiting(self, session: tuple[SessionData, frozenset[str]] | None) -> None:
        """Store the waiting batches in order, ``session`` with the last (store lock held)."""
        while True:
            now = int(time.time())
            took = self._journal.waiting
            batch = self._journal.take(now) if took else Changes(stamp=now)
            last = not self._journal.waiting
            if last and session is not None:
                batch.session, batch.session_fields = self._sealer.seal(*session), session[1]
            if not batch:
                if took:
                    self._journal.stored()
                return
            try:
                await self._call("store writes", self._apply(batch))
            except BaseException:
                if took:
                    self._journal.failed()
                raise
            if took:
                self._journal.stored()
            if self._failure is not None:
                self._failure = None
                self._set_writable()
            if last:
                return


def _entry(peer: Peer) -> Entry:
    stamp = peer.last_update_on
    return (
        peer.access_hash,
        peer.type.value,
        peer.usernames,
        peer.phone_number,
        stamp if stamp is not None else 0,
    )


def _entry_peer(peer_id: int, entry: Entry) -> Peer:
    kind = entry[TYPE]
    return Peer(
        peer_id,
        entry[HASH],
        KNOWN_TYPES.get(kind) or PeerType(kind),
        entry[NAMES],
        entry[PHONE],
        entry[STAMP],
    )


def _iterate(values: Any, what: str) -> Iterable[Any]:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise InvalidTypeError(f"{what} must be an iterable, not {type(values).__name__}")
    return values  # type: ignore[no-any-return]


def _state_change(state: Any, kind: int) -> tuple[int, journal.StateChange]:
    """Check an update state to store; return its id and journal change."""
    if type(state) is not UpdateState and not isinstance(state, UpdateState):
        raise InvalidTypeError(f"expected UpdateState, got {type(state).__name__}")
    values = (state.id, state.pts, state.qts, state.date, state.seq)
    for value in values:
        if value is not None and (type(value) is not int or not _MIN64 <= value <= _MAX64):
            break
    else:
        if values[0] is not None:
            return values[0], (kind, *values[1:])
    return int64(state.id, "update state id"), (
        kind,
        optional_int64(state.pts, "pts"),
        optional_int64(state.qts, "qts"),
        optional_int64(state.date, "date"),
        optional_int64(state.seq, "seq"),
    )


_MIN64, _MAX64 = -(2**63), 2**63 - 1


def _unchanged(
    cached: Entry, change: journal.PeerChange, explicit: bool, now: int, refresh: float
) -> bool:
    """Whether writing ``change`` would store what ``cached`` says is stored already."""
    if cached[HASH] != change[1] or cached[TYPE] != change[2] or cached[PHONE] != change[4]:
        return False
    names = change[3]
    if names is not None and names != cached[NAMES]:
        return False
    if explicit:
        return cached[STAMP] == change[5]
    return now - cached[STAMP] < refresh


def _holds(peer: Peer, index: str, key: str) -> bool:
    if index == "names":
        return peer.usernames is not None and key in peer.usernames
    return peer.phone_number == key
