"""The storage contract: :class:`Storage` owns every rule, backends implement primitives.

The public coroutines (what clients and tools call) check and normalise their
arguments, keep the open/closed state, apply ``session_string=``, judge username
freshness and translate backend failures. A backend implements the protected
primitives below (``_open``, ``_apply``, ``_find_peer``...) and nothing else; a
subclass of your own gets every rule for free, and :mod:`pyrogram_storage.testing`
checks it against the whole contract. How it is made fast lives in the engine
(:mod:`._engine`); the session fields and their sealing in :mod:`._authorization`.

Writes of peers, usernames and update states are *visible* to every read the moment
the call returns and *stored* within ``commit_interval`` seconds (at once when it is
0), at :meth:`Storage.flush`, :meth:`Storage.save` and :meth:`Storage.close`. They are
stored in call order, batch by batch, so after a crash what is stored is always a
prefix of the writes. Session fields are stored before the call returns.
"""

from __future__ import annotations

import abc
import logging
import time
import warnings
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any, ClassVar, overload

from ._authorization import Authorization
from ._engine import Engine, EngineHooks, count_by_reading, each_peer
from ._pending import Changes
from .crypto import Key
from .errors import InvalidTypeError, InvalidValueError, PeerNotFound, ReadOnlyError
from .session_string import decode_session_string, encode_session_string
from .types import Peer, PeerCount, PeerType, SessionData, UpdateState
from .validation import (
    count,
    int64s,
    interval,
    iterable,
    normalize_phone,
    normalize_username,
    peer_change,
    peer_counts,
    username_pairs,
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

USERNAME_TTL = 8 * 60 * 60
"""Seconds after its peer's last write that a username stops resolving (the clients' rule)."""

DEFAULT_PEER_CACHE_SIZE = 100_000
"""Peers a storage keeps in memory for lookups by id, when it is the session's only writer."""


class Storage(EngineHooks, abc.ABC):
    """A session store: authorization data, the peer cache and the update state.

    A storage is constructed without I/O and without an event loop; :meth:`open` does
    the work. To hand one to a client, wrap it with :func:`pyrogram_storage.for_client`.

    :param name: the session name (a file name, a database name).
    :param username_ttl: seconds a username stays resolvable after its peer was last
        written; ``None`` keeps usernames forever.
    :param session_string: a session string to store on the first :meth:`open`,
        replacing the stored authorization.
    :param peer_cache_size: peers kept in memory for lookups by id (0 disables the
        cache) when the session is too large to be held whole. Used only while this
        object is the session's only writer.
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
        self._auth = Authorization(
            self,
            read=lambda: self._call("read the session", self._read_session()),
            store=lambda session: self._pending_writes.store(session),
            is_open=lambda: self.is_open,
            session_string=session_string,
            encryption_key=encryption_key,
            fernet_key=fernet_key,
            encrypt_existing=encrypt_existing,
            read_only=read_only,
        )
        self._engine = Engine(self, count(peer_cache_size, "peer_cache_size"))
        self._pending_writes, self._peer_engine = self._engine.pending, self._engine.peers

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
        """The location :func:`pyrogram_storage.from_url` reaches this session by (it may
        hold a password, for a server URL: never log it)."""
        return None

    # == primitives: what a backend implements ===============================================

    @abc.abstractmethod
    async def _open(self) -> SessionData:
        """Connect, create or migrate the stored data, and return the stored session
        (``SessionData()`` for a new one). Called by :meth:`open` only when the storage
        is not open; :meth:`_close` is called on every later failure."""

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
        """Return the peer holding ``username`` (normalised) written last: the greatest
        ``last_update_on``, and of a tie the greatest id."""

    @abc.abstractmethod
    async def _find_by_phone(self, phone: str, usernames: bool) -> Peer | None:
        """Return the peer with ``phone`` (digits only) written last (as for usernames)."""

    @abc.abstractmethod
    async def _read_peers(self, after: int | None, limit: int) -> list[Peer]:
        """Return up to ``limit`` stored peers with ids above ``after``, ordered by id,
        with their usernames."""

    async def _count_peers(self) -> dict[str, int]:
        """Return how many peers of each type name are stored."""
        return await count_by_reading(self._read_peers, self)

    @abc.abstractmethod
    async def _read_states(self, ids: Sequence[int] | None) -> list[UpdateState]:
        """Return the stored update states (all of them, or those of ``ids``)."""

    async def _read_session(self) -> SessionData | None:
        """Return the stored session as another writer may have left it (None: not
        supported); :meth:`get_session` calls it when this object is not the only writer."""
        return None

    async def _ping(self) -> None:
        """Raise if the store does not answer a trivial query."""

    def _sole_writer(self) -> bool:
        """Whether, once open, no other object or process writes this session: only then
        does the engine hold peers in memory and skip unchanged writes."""
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

    async def close(self) -> None:
        """Store what is pending and release connections.

        Idempotent; the storage can be opened again. Calls made after ``close()``
        began raise :class:`StorageClosedError`.

        :raises BackendError: pending writes could not be stored (the storage is
            closed anyway; they are lost).
        """
        await super().close()

    async def delete(self) -> None:
        """Remove the session for good, closing the storage first. Works on a closed
        storage: clients call it from ``log_out()``, after ``close()``."""
        if self.read_only:
            raise ReadOnlyError(f"{self!r} is read-only; delete() would remove the session")
        if self.is_open:
            self._pending_writes.clear()  # going away with the session; nothing to store
            await self.close()
        await self._call("delete the session", self._delete())
        log.debug("deleted %r", self)

    async def save(self) -> None:
        """Store every write so far, set ``date`` to now and make it all durable (clients
        call it from ``stop()`` and after recovering update gaps)."""
        self._check_open()
        if self.read_only:
            return
        await self._auth.store({"date": int(time.time())})
        await self._call("save the session", self._save())

    async def flush(self) -> None:
        """Store every peer, username and update-state write made so far.

        :raises BackendError: they could not be stored yet (the message says so); they
            stay pending, in order, and the next write, ``flush()``, ``save()`` or
            ``close()`` stores them.
        """
        self._check_open()
        await self._pending_writes.store()

    # == authorization ========================================================================

    async def get_session(self) -> SessionData:
        """Return the stored authorization fields.

        :raises StorageClosedError: the storage is not open.
        """
        session = self._auth.session
        if session is None:
            raise self._closed_error()
        if not self._engine.exclusive and self._engine.session_stale():  # sole writer: no read
            session = await self._auth.read_again(session)
        return session

    async def update_session(self, **changes: Any) -> None:
        """Store the given fields of :class:`SessionData` (``None`` is a value, not "skip").

        Stored before the call returns, together with every earlier pending write.

        :raises InvalidTypeError: a name is not a session field, or a value has the wrong type.
        :raises InvalidValueError: a value is out of range (an auth key not of 256 bytes).
        """
        self._check_writable()
        await self._auth.store(changes)

    async def set_encryption_key(self, encryption_key: Key | None) -> None:
        """Store the auth key sealed with ``encryption_key`` from now on (None: in clear).

        One write of the auth key, atomic in every backend: the stored session opens with the
        old key until it returns, with the new one after. Later opens of this object use the
        new key. The command line's ``encrypt``, ``decrypt`` and ``rekey`` call it.

        :raises InvalidTypeError: a key of the wrong type.
        :raises InvalidValueError: a raw key not of 32 bytes.
        """
        self._check_writable()
        await self._auth.rekey(encryption_key, self.get_session)

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
        await self._auth.store(decode_session_string(session_string).fields())

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
            peers = iterable(peers, "peers")
        changes = [peer_change(peer, now, tuples=False) for peer in peers]
        if changes:
            await self._peer_engine.upsert(changes, now)

    async def set_usernames(self, usernames: Iterable[tuple[int, Sequence[str]]]) -> None:
        """Replace the usernames of each given peer id; ids not stored are ignored.

        :raises InvalidTypeError: the usernames of a peer are one ``str``, not a sequence.
        """
        if not self._writable:
            self._check_writable()
        engine = self._peer_engine
        if type(usernames) is list and len(usernames) == 1 and engine.holds_names(usernames[0]):
            return  # changes nothing (and passes every check, being what is held)
        merged = username_pairs(usernames)
        if merged:
            await engine.set_names(merged, int(time.time()))

    async def delete_peers(self, peer_ids: Iterable[int]) -> None:
        """Forget these peers and their usernames; unknown ids are ignored."""
        self._check_writable()
        ids = int64s(peer_ids, "peer id", "peer_ids")
        if ids:
            await self._peer_engine.delete(ids)

    async def peer_by_id(self, peer_id: int, *, with_usernames: bool = True) -> Peer:
        """Return the peer with this id.

        :param with_usernames: False when the caller needs no usernames: the peer may
            then come back with ``usernames=None``, from a cheaper query.
        :raises PeerNotFound: no such peer (also for anything that is not an int).
        """
        self._check_open()
        peer = None
        if type(peer_id) is int and -(2**63) <= peer_id < 2**63:
            peer = await self._peer_engine.by_id(peer_id, with_usernames)
        if peer is None:
            raise PeerNotFound(f"ID not found: {peer_id!r}", peer_id)
        return peer

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
        peer = await self._peer_engine.lookup("names", key, with_usernames) if key else None
        if peer is None:
            raise PeerNotFound(f"Username not found: {key}", username)
        ttl, stamp = self.username_ttl, peer.last_update_on
        if ttl is not None and stamp is not None and time.time() - stamp > ttl:
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
        peer = await self._peer_engine.lookup("phones", key, with_usernames) if key else None
        if peer is None:
            raise PeerNotFound(f"Phone number not found: {key}", phone_number)
        return peer

    @overload
    def iter_peers(self) -> AsyncIterator[Peer]: ...

    @overload
    def iter_peers(self, batch_size: int) -> AsyncIterator[list[Peer]]: ...

    def iter_peers(self, batch_size: int | None = None) -> AsyncIterator[Any]:
        """Yield every stored peer, with its usernames, in id order, read in batches of
        1,000 (:meth:`iter_peer_batches` hands the batches over as they are).

        :param batch_size: deprecated: given, this yields lists of up to ``batch_size``
            peers, as ``iter_peers()`` did before 0.2, with a ``DeprecationWarning``; use
            :meth:`iter_peer_batches`.
        :raises InvalidValueError: ``batch_size`` is below 1.
        """
        if batch_size is not None:
            warnings.warn(
                "iter_peers(batch_size) yields lists of peers as before, for this release "
                "only: use iter_peer_batches(batch_size) for batches, iter_peers() for "
                "peers one by one",
                DeprecationWarning,
                stacklevel=2,
            )
            return self.iter_peer_batches(batch_size)
        return each_peer(self.iter_peer_batches())

    async def iter_peer_batches(self, batch_size: int = 1000) -> AsyncIterator[list[Peer]]:
        """Yield every stored peer, with its usernames, in lists of up to ``batch_size``
        ordered by id (what copies and exports use: one backend read a list).

        :raises InvalidValueError: ``batch_size`` is below 1.
        """
        batch_size = count(batch_size, "batch_size", minimum=1)
        self._check_open()
        async for batch in self._engine.batches(batch_size, self):
            yield batch

    async def count_peers(self) -> PeerCount:
        """Return how many peers are stored (an ``int``; see :class:`PeerCount`)."""
        return PeerCount(await self.count_peers_by_type())

    async def count_peers_by_type(self) -> dict[PeerType, int]:
        """Return how many peers of each type are stored (types with none are left out)."""
        self._check_open()
        await self._pending_writes.store()
        counts = await self._call("count peers", self._count_peers())
        return peer_counts(counts, self)

    # == update state =========================================================================

    async def get_update_states(self, ids: Iterable[int] | None = None) -> list[UpdateState]:
        """Return the stored update states (all, or those of ``ids``), oldest ``date`` first."""
        self._check_open()
        wanted = None if ids is None else sorted(int64s(ids, "update state id", "ids"))
        if wanted == []:
            return []
        return await self._engine.states(wanted)

    async def set_update_states(self, states: Iterable[UpdateState], *, merge: bool = True) -> None:
        """Store update states. With ``merge``, a ``None`` field keeps the stored value."""
        if not self._writable:
            self._check_writable()
        if type(states) is not list:
            states = iterable(states, "states")
        await self._set_state_tuples(states, merge=merge, tuples=False)

    async def delete_update_states(self, ids: Iterable[int]) -> None:
        """Delete the update states of ``ids``; unknown ids are ignored."""
        self._check_writable()
        wanted = int64s(ids, "update state id", "ids")
        if wanted:
            await self._engine.delete_states(wanted)
