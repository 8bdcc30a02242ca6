"""The engine one storage composes: its pending writes, its peers and shared mode.

:class:`Engine` builds the pending writes (:mod:`._pending`) and the peer engine
(:mod:`._peers`) from its storage's primitives, opens and closes them with the storage
(and its :class:`~._authorization.Authorization`), and keeps what shared mode needs to
know: whether the storage is the session's only writer, and whether the backend is
telling it what the other writers change. It is handed its storage as a
:class:`Backend` (what it calls of it), so it imports nothing of the contract.

The peer engine holds a small session whole in memory once it has read it after
``open()`` (a large one in a compact index and a bounded cache), but only while the
storage is the only writer or the backend delivers what the others change
(:class:`EngineHooks`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable, Sequence
from typing import Any, ClassVar, Protocol, TypeVar

from . import _pending
from ._authorization import Authorization
from ._index import Columns, IdTable
from ._lifecycle import Lifecycle
from ._peers import Peers, Primitives, peer_of
from ._pending import STATE_DELETED, Changes, PendingWrites
from .errors import BackendError, PeerNotFound, ReadOnlyError
from .types import Peer, PeerType, SessionData, UpdateState
from .validation import (
    _MAX64,
    _MIN64,
    KNOWN_TYPES,
    normalize_phone,
    normalize_username,
    peer_change,
    plain_peer,
    plain_state,
    plain_usernames,
    state_change,
    stored_peer,
    stored_state,
)

__all__ = ["Backend", "Engine", "EngineHooks", "count_by_reading", "each_peer"]

T = TypeVar("T")

log = logging.getLogger("pyrogram_storage")


class Backend(Protocol):
    """What the engine uses of its storage: primitives, called through its error
    translation (:meth:`_call`) and after its open check (:meth:`_check_open`)."""

    @property
    def is_open(self) -> bool: ...

    @property
    def delivers_invalidations(self) -> bool: ...

    @property
    def username_ttl(self) -> float | None: ...

    @property
    def commit_interval(self) -> float: ...

    @property
    def probes_writes(self) -> bool: ...

    async def _call(self, what: str, operation: Awaitable[T]) -> T: ...

    def _check_open(self) -> None: ...

    def _lock_pair(self) -> tuple[asyncio.Lock, asyncio.Lock]: ...

    def _set_writable(self) -> None: ...

    def _catch_up(self) -> bool: ...

    async def _open(self) -> SessionData: ...

    async def _close(self) -> None: ...

    def _sole_writer(self) -> bool: ...

    def _let_go(self) -> bool: ...

    def _id_snapshot(self) -> IdTable | bool | None: ...

    async def _apply(self, changes: Changes) -> None: ...

    async def _find_peer(self, peer_id: int, usernames: bool) -> Peer | None: ...

    async def _read_states(self, ids: Sequence[int] | None) -> list[UpdateState]: ...

    async def _find_by_username(self, username: str, usernames: bool) -> Peer | None: ...

    async def _find_by_phone(self, phone: str, usernames: bool) -> Peer | None: ...

    async def _read_peers(self, after: int | None, limit: int) -> list[Peer]: ...

    async def _username_holders(self, username: str) -> set[int] | None: ...

    async def _peer_rows(
        self, after: int | None = None, limit: int | None = None
    ) -> list[tuple[Any, ...]] | None: ...

    async def _peer_columns(self, after: int | None, limit: int) -> Columns | None: ...

    async def _find_access(self, peer_id: int) -> tuple[Any, Any] | None: ...

    async def count_peers(self) -> int: ...


class Engine:
    """The pending writes and the peer engine of one storage, and its shared-mode state.

    :param storage: the storage whose primitives it calls (and whose ``commit_interval``
        and ``probes_writes`` it takes).
    :param cache_size: peers kept by the bounded cache (0: none).
    """

    __slots__ = (
        "_catch_up",
        "_storage",
        "exclusive",
        "peers",
        "pending",
        "session_known",
        "trusted",
    )

    def __init__(self, storage: Backend, cache_size: int) -> None:
        self.exclusive = False  # open, and the session's only writer
        self.trusted = False  # shared mode: the backend delivers invalidations right now
        self.session_known = False  # shared mode: no other writer changed the session since
        self._storage = storage
        self._catch_up = storage._catch_up
        self.pending = PendingWrites(
            lambda changes: storage._call("store writes", storage._apply(changes)),
            storage.commit_interval,
            lock=lambda: storage._lock_pair()[1],
            is_open=lambda: storage.is_open,
            changed=storage._set_writable,
            owner=lambda: repr(storage),
        )
        # The engine's reads of the backend: each checks, when it starts, that the storage
        # is still open (a lookup awaits several), and what it finds.
        call, check_open, where = storage._call, storage._check_open, storage

        async def find_peer(peer_id: int, usernames: bool) -> Peer | None:
            check_open()
            found = await call("look up a peer", storage._find_peer(peer_id, usernames))
            return None if found is None else stored_peer(found, where)

        async def find_by(key: str, usernames: bool, phone: bool = False) -> Peer | None:
            check_open()
            find = storage._find_by_phone if phone else storage._find_by_username
            what = "look up a phone number" if phone else "look up a username"
            found = await call(what, find(key, usernames))
            return None if found is None else stored_peer(found, where)

        async def read_peers(after: int | None, limit: int) -> list[Peer]:
            check_open()
            batch = await call("read peers", storage._read_peers(after, limit))
            return [stored_peer(peer, where) for peer in batch]

        async def holders(key: str) -> set[int] | None:
            check_open()
            return await call("look up a username", storage._username_holders(key))

        async def count_peers() -> int:
            return int(await storage.count_peers())

        async def peer_rows(
            after: int | None = None, limit: int | None = None
        ) -> list[tuple[Any, ...]] | None:
            check_open()
            return await call("read peers", storage._peer_rows(after, limit))

        async def peer_columns(after: int | None, limit: int) -> Columns | None:
            check_open()
            return await call("read peers", storage._peer_columns(after, limit))

        async def find_access(peer_id: int) -> tuple[Any, Any] | None:
            check_open()
            return await call("look up a peer", storage._find_access(peer_id))

        self.peers = Peers(
            Primitives(
                find_peer,
                find_by,
                lambda key, usernames: find_by(key, usernames, phone=True),
                holders,
                read_peers,
                count_peers,
                peer_rows,
                storage._catch_up,
                peer_columns,
                find_access,
                storage._id_snapshot,
            ),
            self.pending,
            cache_size,
            probes=storage.probes_writes,
        )

    # -- lifecycle ------------------------------------------------------------------------

    async def open(self, auth: Authorization) -> None:
        """The storage opens (``Lifecycle._opening``): the backend reads the stored
        session, ``auth`` opens its auth key; then learn whether the storage is the only
        writer, and whether the backend delivers invalidations."""
        storage = self._storage
        session = await storage._call("open the session", storage._open())
        await auth.open(session)
        self.exclusive = bool(storage._sole_writer())
        self.trusted = storage.delivers_invalidations
        self.session_known = False
        self.pending.failure = None

    async def start(self, auth: Authorization) -> None:
        """The storage is open (``Lifecycle._opened``): store what ``auth`` has waiting,
        then start the peer engine (reading the session's peers)."""
        storage = self._storage
        storage._set_writable()
        await auth.opened()
        self.peers.start(self.exclusive, storage.username_ttl, storage.delivers_invalidations)

    async def close(self, auth: Authorization) -> None:
        """The storage closes (``Lifecycle._closing``): stop the peers and the timer,
        store what is pending (if the session was opened), forget it and the session,
        and let the backend release its connections.

        :raises BackendError: the pending writes could not be stored (they are lost).
        """
        storage = self._storage
        storage._set_writable()
        await self.peers.stop()
        await self.pending.stop()
        failure: BaseException | None = None
        if auth.held():
            try:
                await self.pending.store(explain=False)
            except Exception as exc:
                failure = exc
        self.pending.clear()
        auth.close()
        try:
            await storage._call("close the session", storage._close())
        finally:
            log.debug("closed %r", storage)
        if failure is not None:
            raise BackendError(
                f"{storage!r}: writes made before close() could not be stored and are lost "
                f"(the storage is closed): {failure}"
            ) from failure

    def abandon(self, auth: Authorization) -> bool:
        """The storage's event loop has ended (``Lifecycle._abandon``): forget
        everything, awaiting nothing, once the backend let go of what it holds
        (``_let_go``); False (nothing changed) while work is under way."""
        storage = self._storage
        if self.pending.journal.busy or not storage._let_go():
            return False
        self.pending.clear()
        self.peers.abandon()
        auth.close()
        storage._set_writable()
        return True

    # -- shared mode ----------------------------------------------------------------------

    def invalidate(self, peer_ids: Collection[int] | None, session: bool) -> None:
        """Another writer changed these peers (None: any), and the session if ``session``."""
        self.peers.invalidate(peer_ids)
        if session:
            self.session_known = False

    def trust(self, trusted: bool) -> None:
        """Whether the backend delivers invalidations now."""
        self.trusted = trusted
        self.session_known = False
        self.peers.trust(trusted)

    def session_stale(self) -> bool:
        """Whether the session must be read again: another writer may have changed it.

        Once read, it is known until the news of a change comes (when news is delivered).
        """
        if self.exclusive or (self.trusted and self._catch_up() and self.session_known):
            return False
        self.session_known = self.trusted
        return True

    # -- writes and reads -----------------------------------------------------------------

    async def delete_states(self, ids: Collection[int]) -> None:
        """Delete the update states of ``ids`` (not empty)."""
        add = self.pending.journal.add_state
        for state_id in ids:
            add(state_id, (STATE_DELETED, None, None, None, None))
        await self.pending.written()

    async def states(self, wanted: list[int] | None) -> list[UpdateState]:
        """The update states readers see (all, or those of ``wanted``), oldest ``date``
        first: the stored ones, with the pending changes on top."""
        storage, journal = self._storage, self.pending.journal
        changes = journal.state_changes(wanted)  # before the read: see state_changes
        states = await storage._call("read update states", storage._read_states(wanted))
        stored = {state.id: stored_state(state, storage) for state in states}
        seen = journal.states_seen(stored, wanted, changes)
        return sorted(seen.values(), key=lambda s: (s.date is not None, s.date or 0, s.id))

    async def batches(self, batch_size: int, owner: object) -> AsyncIterator[list[Peer]]:
        """Every stored peer in lists of up to ``batch_size``, ordered by id, once what
        is pending is stored."""
        await self.pending.store()
        read_peers = self.peers.primitives.read_peers
        after: int | None = None
        while True:
            batch = await read_peers(after, batch_size)
            if not batch:
                return
            yield batch
            if len(batch) < batch_size:
                return
            if after is not None and batch[-1].id <= after:
                raise BackendError(f"{owner!r}: _read_peers() made no progress past {after}")
            after = batch[-1].id


class EngineHooks(Lifecycle):
    """What backends and the client glue call on a storage beside its public methods.

    The lifecycle's hooks open and close the :class:`Engine` with the storage's
    :class:`~._authorization.Authorization`. A backend may override the optional reads
    below to make the engine faster (each has a default that works); backends that
    :attr:`delivers_invalidations` call (or override) the shared-mode hooks; the client
    glue calls the fast paths, which keep the rules of the public methods they stand
    for (``upsert_peers``, ``set_usernames``, ``set_update_states``) on the tuples the
    clients hand in.
    """

    _auth: Authorization
    _engine: Engine
    _peer_engine: Peers
    _pending_writes: PendingWrites
    _writable = False  # open, not read-only, and no store failing: the fast check
    username_ttl: float | None
    read_only: bool

    probes_writes: ClassVar[bool] = False
    """Whether point reads are cheap enough (no round trip) to read a peer before
    writing it, so that rewriting an unchanged peer costs no write."""
    delivers_invalidations: ClassVar[bool] = False
    """Whether the backend calls :meth:`_invalidate` when another writer changes the
    session (and :meth:`_set_cache_trusted` as that delivery comes and goes)."""

    async def save(self) -> None:
        raise NotImplementedError  # the contract's: what ``async with`` does on a clean exit

    # The contract's lookups, which the glue's fast paths fall back on.
    async def peer_by_id(self, peer_id: int, *, with_usernames: bool = True) -> Peer:
        raise NotImplementedError

    async def peer_by_username(self, username: str, *, with_usernames: bool = True) -> Peer:
        raise NotImplementedError

    async def peer_by_phone(self, phone_number: str, *, with_usernames: bool = True) -> Peer:
        raise NotImplementedError

    async def _find_peer(self, peer_id: int, usernames: bool) -> Peer | None:
        raise NotImplementedError  # the contract's primitive

    # -- the lifecycle's hooks ----------------------------------------------------------

    async def _opening(self) -> None:
        await self._engine.open(self._auth)

    async def _opened(self) -> None:
        await self._engine.start(self._auth)

    async def _closing(self) -> None:
        await self._engine.close(self._auth)

    def _abandon(self) -> bool:
        return self._engine.abandon(self._auth)

    async def _clean_exit(self) -> None:
        await self.save()

    # -- optional reads: what a backend may override to make the engine faster ---------

    async def _peer_rows(
        self, after: int | None = None, limit: int | None = None
    ) -> list[tuple[Any, ...]] | None:
        """Return stored peers as ``(id, access_hash, type name, usernames, phone,
        last_update_on)`` tuples (usernames a tuple), or None when not supported.

        Every peer (in any order) when ``limit`` is None; else up to ``limit`` with ids
        above ``after``, ordered by id. The engine holds the session in memory after
        :meth:`open`; tuples cost it far less than :meth:`_read_peers`, which it uses
        otherwise.
        """
        return None

    async def _peer_columns(self, after: int | None, limit: int) -> Columns | None:
        """Return up to ``limit`` stored peers with ids above ``after`` (all when None),
        ordered by id, as columns (:class:`~pyrogram_storage._index.Columns`: ids, access
        hashes, type codes), or None when not supported or a row is damaged.

        Optional: what the engine answers id lookups from right after :meth:`open`, while
        it reads the rest; a backend that can read columns in bulk, without a Python
        object per row, makes those lookups fast sooner.
        """
        return None

    async def _find_access(self, peer_id: int) -> tuple[Any, Any] | None:
        """Return ``(access_hash, type name)`` of the stored peer with this id, or None.

        What an id lookup of the client glue needs, where point reads are cheap
        (:attr:`probes_writes`: elsewhere the engine keeps the peers it reads). Default:
        from :meth:`_find_peer`; override with a read of the two alone. Values are
        checked by the engine (a damaged row is read again by :meth:`_find_peer`).
        """
        peer = await self._find_peer(peer_id, False)
        if peer is None:
            return None
        kind = peer.type
        return peer.access_hash, kind._value_ if isinstance(kind, PeerType) else kind

    async def _username_holders(self, username: str) -> set[int] | None:
        """Return the ids of every stored peer holding ``username`` (None: not supported).

        Lets a lookup by username skip, without reading them, the peers whose pending
        writes kept their usernames but do not hold this one. Default: not supported,
        and each such peer is read.
        """
        return None

    def _let_go(self) -> bool:
        """Release connections and locks synchronously, from any thread (the event loop
        that opened the storage has ended); False if it cannot be done now."""
        return False

    # -- shared mode ----------------------------------------------------------------------

    def _invalidate(
        self, peer_ids: frozenset[int] | None, *, session: bool = False, states: bool = False
    ) -> None:
        """For a backend that :attr:`delivers_invalidations`: another writer stored changes.

        ``peer_ids`` are the peers it changed (None: any may have changed), ``session``
        and ``states`` whether it changed session fields or update states. Call it as
        soon as the news arrives (from the event loop's thread): memory drops what it held.
        """
        self._engine.invalidate(peer_ids, session)

    def _catch_up(self) -> bool:
        """For a backend that :attr:`delivers_invalidations`: take in, without waiting,
        every invalidation that has reached this process, and return True; or return
        False when that cannot be known (memory is not used for that call).

        Called before memory answers a lookup or skips a write in shared mode: a
        lookup started after another process's write was acknowledged must not return
        what it replaced. Default: False.
        """
        return False

    def _id_snapshot(self) -> IdTable | bool | None:
        """The next part of the id table of the peers stored at ``open()``, from a
        snapshot the backend keeps of them (ids in increasing order, after the last
        part's): called on the event loop by id lookups and the peer loader, a part a
        call, until it returns True (every part was read) or None (there is none, or no
        more). A part should take a millisecond or two to read. Default: None.
        """
        return None

    def _set_cache_trusted(self, trusted: bool) -> None:
        """For a backend that :attr:`delivers_invalidations`: whether they are delivered.

        False when the channel they come by is lost (writes of others may go unnoticed:
        every read asks the backend meanwhile), True once it is back.
        """
        self._engine.trust(trusted)

    # -- the client glue's fast paths --------------------------------------------------

    def cached_peer(self, peer_id: int) -> Peer | None:
        """Return the peer with this id if it is in memory, else None; no I/O.

        Its usernames may be ``None`` (not loaded). Client glue calls it before
        :meth:`peer_by_id` to answer a hit without awaiting anything.
        """
        entry = self._peer_engine.cached(peer_id) if type(peer_id) is int else None
        return None if entry is None else peer_of(peer_id, entry)

    def cached_access(self, peer_id: int) -> tuple[int, str] | None:
        """Return ``(access_hash, type name)`` of a peer in memory, else None; no I/O.

        What a client needs to build its ``InputPeer`` for a hit, without making a
        :class:`Peer`. Client glue calls it before :meth:`peer_by_id`.
        """
        engine = self._peer_engine
        if type(peer_id) is not int:
            return None
        if engine.complete:
            entry = engine.cache._entries.get(peer_id)
        elif engine._shared:
            entry = engine.cached(peer_id)  # memory answers only once caught up
            if entry is None:
                return None
        else:  # engine.cached() and cache.get(), inlined: the hot path of a lookup
            cache = engine.cache
            entry = cache._entries.get(peer_id)
            if entry is None:
                return engine.access(peer_id)  # the compact index, if there is one
            if not cache.complete:
                cache._entries.move_to_end(peer_id)  # type: ignore[attr-defined]
        return None if entry is None else (entry[1], entry[2])

    def _check_writable(self) -> None:
        """Refuse a write: the storage is closed, read-only, or failing to store."""
        self._check_open()
        if self.read_only:
            raise ReadOnlyError(f"{self!r} was opened read-only; it takes no writes")
        if self._pending_writes.failure is not None:
            raise self._pending_writes.failed_error() from self._pending_writes.failure

    def _set_writable(self) -> None:
        """Keep :attr:`_writable`, the fast paths' check, true to the contract's rule."""
        failing = self._pending_writes.failure is not None
        self._writable = self.is_open and not self.read_only and not failing

    def _put_peer(self, peer_id: Any, access_hash: Any, kind: Any, phone: Any) -> bool:
        """:meth:`upsert_peers` of one peer keeping its usernames (an update's sender)
        when its fields need no normalising and nothing needs awaiting: True once
        written, or found unchanged, in one synchronous step. False, with nothing done:
        call :meth:`_upsert_tuples`, which says what is wrong."""
        return (
            self._writable
            and plain_peer(peer_id, access_hash, kind, phone)
            and self._peer_engine.put(peer_id, access_hash, kind, phone, int(time.time()))
        )

    def _put_peers(self, peers: list[Any]) -> int:
        """:meth:`_put_peer` of each ``(id, access_hash, type name, phone)`` tuple, in
        order, if every one is plain (else none, so that bad input changes nothing): how
        many were written before one needed :meth:`_upsert_tuples` (for the rest)."""
        if not self._writable:
            return 0
        plain = []
        known = KNOWN_TYPES
        for item in peers:  # plain_peer(), inlined: a batch of a hundred is checked first
            if type(item) is not tuple or len(item) != 4:
                return 0
            peer_id, access_hash, kind, phone = item
            if access_hash is None:
                access_hash = 0
            if not phone:
                phone = None
            if not (
                type(peer_id) is int
                and _MIN64 <= peer_id <= _MAX64
                and type(access_hash) is int
                and _MIN64 <= access_hash <= _MAX64
                and type(kind) is str
                and kind in known
                and (phone is None or (type(phone) is str and phone.isdigit()))
            ):
                return 0
            plain.append((peer_id, access_hash, kind, phone))
        return self._peer_engine.put_many(plain, int(time.time()))

    def _put_names(self, peer_id: Any, names: list[Any]) -> bool:
        """:meth:`set_usernames` of one peer (an update's sender) when nothing needs
        awaiting: True once done, found unchanged or ignored (not stored). False, with
        nothing done: call that method, which says what is wrong."""
        return (
            self._writable
            and type(peer_id) is int
            and _MIN64 <= peer_id <= _MAX64
            and self._peer_engine.put_names(peer_id, tuple(names), int(time.time()))
        )

    def _put_names_of(self, usernames: list[Any]) -> int:
        """:meth:`_put_names` of each ``(id, [names])`` pair, in order, if every one is
        plain (else none): how many were done before one needed :meth:`set_usernames`."""
        if not self._writable:
            return 0
        plain = []
        for item in usernames:
            if type(item) is not tuple or len(item) != 2:
                return 0
            peer_id, names = item
            if not (type(peer_id) is int and _MIN64 <= peer_id <= _MAX64 and type(names) is list):
                return 0
            wanted = tuple(names)
            if len(wanted) == 1:  # plain_usernames() of the common case, inlined
                name = wanted[0]
                if not (type(name) is str and name.islower() and name.isidentifier()):
                    return 0
            elif not plain_usernames(wanted):
                return 0
            plain.append((peer_id, wanted))
        return self._peer_engine.put_names_many(plain, int(time.time()))

    def _merge_state(self, state_id: Any, pts: Any, qts: Any, date: Any, seq: Any) -> bool:
        """:meth:`set_update_states` of one state, merged (a client writes its state twice
        an update), when its fields need no checking and nothing needs awaiting: True
        once done, in one slot assignment. False, with nothing done: call
        :meth:`_set_state_tuples`, which says what is wrong."""
        if (
            self._writable
            and plain_state(state_id, pts, qts, date, seq)
            and self._pending_writes.soon()
        ):
            self._pending_writes.journal.merge_state(state_id, pts, qts, date, seq)
            return True
        return False

    async def _upsert_tuples(self, peers: list[tuple[Any, ...]]) -> None:
        """:meth:`upsert_peers` for the client glue, with the rules of that method, on
        tuples of a peer's fields (``id, access_hash, type name, usernames, phone``):
        the clients hand tuples in, and building a :class:`Peer` of each costs more than
        the rest of the write."""
        if not self._writable:
            self._check_writable()
        now = int(time.time())
        if len(peers) == 1 and self._peer_engine.holds(peers[0], now):
            return  # changes nothing (and passes every check, being what is held)
        changes = [peer_change(peer, now, tuples=True) for peer in peers]
        if changes:
            await self._peer_engine.upsert(changes, now)

    async def _access_by_id(self, peer_id: int) -> tuple[int, str]:
        """:meth:`peer_by_id` for the client glue (``peer_id`` an int), with its rules:
        ``(access hash, type name)``, without a :class:`Peer` to build where it can.

        :raises PeerNotFound: no such peer.
        """
        if self.is_open and -(2**63) <= peer_id < 2**63:
            found = await self._peer_engine.read_access(peer_id)
            if found is not None:
                if found is False:
                    raise PeerNotFound(f"ID not found: {peer_id!r}", peer_id)
                return found  # type: ignore[return-value]
        peer = await self.peer_by_id(peer_id, with_usernames=False)
        return peer.access_hash, peer.type._value_

    async def _access_by_username(self, username: Any) -> tuple[int, int, str]:
        """:meth:`peer_by_username` for the client glue, with its rules: ``(id, access
        hash, type name)`` of the holder, from memory when it knows (no :class:`Peer`
        to build, no query); else from :meth:`peer_by_username`, which raises."""
        if type(username) is str and self.is_open:
            key = normalize_username(username)
            found = self._peer_engine.holder("names", key) if key else None
            if found is not None:
                ttl = self.username_ttl
                if ttl is None or time.time() - found[3] <= ttl:
                    return found[0], found[1], found[2]
        peer = await self.peer_by_username(username, with_usernames=False)
        return peer.id, peer.access_hash, peer.type._value_

    async def _access_by_phone(self, phone_number: Any) -> tuple[int, int, str]:
        """:meth:`peer_by_phone` for the client glue, as :meth:`_access_by_username`."""
        if type(phone_number) is str and self.is_open:
            key = normalize_phone(phone_number)
            found = self._peer_engine.holder("phones", key) if key else None
            if found is not None:
                return found[0], found[1], found[2]
        peer = await self.peer_by_phone(phone_number, with_usernames=False)
        return peer.id, peer.access_hash, peer.type._value_

    async def _set_state_tuples(
        self, states: Iterable[Any], *, merge: bool = True, tuples: bool = True
    ) -> None:
        """:meth:`set_update_states` for the client glue, with its rules, on
        ``(id, pts, qts, date, seq)`` tuples (no :class:`UpdateState` to build)."""
        if not self._writable:
            self._check_writable()
        kind = _pending.MERGE if merge else _pending.REPLACE
        rows = [state_change(state, kind, tuples=tuples) for state in states]
        if rows:
            add = self._pending_writes.journal.add_state
            for state_id, change in rows:
                add(state_id, change)
            await self._pending_writes.written()


async def each_peer(batches: AsyncIterator[list[Peer]]) -> AsyncIterator[Peer]:
    """The peers of ``batches``, one by one."""
    async for batch in batches:
        for peer in batch:
            yield peer


async def count_by_reading(
    read_peers: Callable[[int | None, int], Awaitable[list[Peer]]], owner: object
) -> dict[str, int]:
    """How many peers of each type name are stored, read a thousand at a time."""
    counts: dict[str, int] = {}
    after: int | None = None
    while True:
        batch = await read_peers(after, 1000)
        for peer in batch:
            counts[peer.type.value] = counts.get(peer.type.value, 0) + 1
        if len(batch) < 1000:
            return counts
        if after is not None and batch[-1].id <= after:
            raise BackendError(f"{owner!r}: _read_peers() made no progress past {after}")
        after = batch[-1].id
