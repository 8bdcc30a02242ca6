"""How peers are written and found: pending writes first, then memory, then the backend.

:class:`Peers` is the engine behind the contract's peer methods. It keeps a peer in
one shape, the pending change tuple ``(kind, access hash, type name, usernames,
phone, last write)`` of :mod:`._pending`: the journal holds it, the cache holds the
very same tuple, and stored peers are turned into it once.

While this process is the session's only writer it remembers peers:

* **complete**: every stored peer is in memory (a dict, loaded in the background
  after ``open()``), with maps from usernames and phone numbers to ids. A lookup
  never reaches the backend, a miss is an answer, and a write that changes nothing
  costs nothing. For sessions up to :data:`COMPLETE_LIMIT` peers, within a budget
  per process (a host of a thousand sessions must not hold them all).
* **indexed**: a larger session is held in the compact arrays of
  :class:`~._index.PeerIndex` (about 20 bytes a peer, and some for usernames and phones):
  lookups by id and phone, and the check that a write changes nothing, need no query;
  a lookup by username, or one that needs a peer's usernames, asks the backend. A
  small LRU cache keeps the peers last used whole.
* **bounded**: the peers most recently used or written (an LRU cache); a miss asks
  the backend, and a small write reads its peers first where point reads are cheap,
  so that an unchanged peer costs no write. While memory fills after ``open()``.

Another writer (shared mode) turns both off, unless the backend tells the engine what
the others change (:meth:`Peers.invalidate`): then the bounded memory is kept, a peer
changed elsewhere is dropped from it, and while the backend cannot tell (its channel
is down, :meth:`Peers.trust`) every read asks the backend. Where the backend can also
say so at once (:attr:`Primitives.catch_up`), memory is filled in the background with
the stored peers (up to its size) as soon as it is trusted: a peer changed meanwhile
is left out, and a miss still asks the backend (another writer may have added it).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import math
from array import array
from collections.abc import Awaitable, Callable, Collection, Coroutine
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from . import _pending as pending_
from ._cache import HASH, KIND, NAMES, PHONE, STAMP, TYPE, PeerCache
from ._index import (
    NO_NAMES,
    Columns,
    IdTable,
    PeerIndex,
    holder_key,
    name_key,
    names_fingerprint,
    phone_key,
)
from ._pending import DELETED, FULL, PARTIAL, PeerChange, PendingWrites
from ._worker import Lane
from .types import Peer, PeerType
from .validation import plain_usernames

__all__ = ["COMPLETE_LIMIT", "Peers", "Primitives"]

log = logging.getLogger("pyrogram_storage")

COMPLETE_LIMIT: Final = 150_000
"""Sessions of at most this many stored peers at open are held in memory whole (a dict);
larger ones in the compact index."""

_GROWTH: Final = 1.5
"""A session held whole may grow to this many times its size at open (at least
:data:`_SMALL` peers) before it moves to the compact index, which holds a peer in a
tenth of the memory: a session being filled from nothing is heading for big."""

_SMALL: Final = 10_000
"""What a memory held whole, some 300 bytes a peer, stays within while the session fills
from nothing: what it held stays in the process's memory after the move (the allocator
keeps the partly used pages), and it is the most of the RSS growth of an import of a
million peers that is not the index (50,000 left 20 MB; 20,000 left 3.8 MB more than
10,000 after an import of 300k, and 2,000 no less than 10,000: ``profile_memory.py``).
A bot of a few thousand peers still grows within it held whole."""

_INDEXED_CACHE: Final = 10_000
"""Peers the LRU cache keeps whole beside the compact index."""

_LOAD_BATCH: Final = 2000
"""Peers per trip to the backend while memory fills after open()."""

_INDEX_BATCH: Final = 2000
"""Peers per trip to the backend while the compact index is built."""

_HOT: Final = 4096
"""Answers of the compact index (or id table) to id lookups kept at hand, at most; all
dropped when full."""

_SNAPSHOT_AFTER: Final = 8
"""Id lookups after open that are point queries before the next starts reading the
backend's id snapshot (a part, 1-2 ms, per lookup): reading it costs as much as a
hundred of them, worth it for a program that looks many peers up, not for one."""

_EARLY_BATCH: Final = 65_536
"""Peers per trip to the backend while the id table of the first moments is read."""


_LOAD_ROUNDS: Final = 4
"""Rounds of reading again the peers written while memory filled."""

_HEADROOM: Final = 1000
"""Peers a complete memory takes from the budget beyond what is stored, to grow into."""

_PROBE_BATCH: Final = 8
"""Writes of at most this many peers (a client's per-update batches) are probed."""

_STAMP_REFRESH: Final = 3600.0
"""An unchanged peer is written again (to refresh ``last_update_on``) at most this often,
and at most every eighth of ``username_ttl``: a username then resolves for at least
seven eighths of the TTL after its peer was last seen."""

_MIN64: Final = -(2**63)

_STEP: Final = 2000
"""Entries dropped, or peers read back, per turn of the event loop when memory is let go
of or settled in the background: a few hundred microseconds, never a stall."""

_READS_PER_TURN: Final = 64
"""Peers read back on the event loop (point reads of some 15 µs) between two turns."""

UNKNOWN_NAMES: Final = -1
"""The usernames fingerprint of an indexed peer whose usernames are not known here (a
write kept them while the index was being built): never equal to a real one (``hash()``
never returns -1), so a write that gives usernames is never skipped as unchanged."""

_dropping: set[asyncio.Task[None]] = set()


_WHOLE_BYTES: Final = 300
"""Memory a peer takes held whole (a dict of tuples, its usernames and phone)."""

_INDEXED_BYTES: Final = 40
"""Memory a peer takes in the compact index (its arrays, as the allocator grows them)."""


class _Budget:
    """Bytes the peer memories of one process may take at once, held whole or indexed,
    every session's together. One session of :data:`COMPLETE_LIMIT` peers held whole
    fits, or one of a million in the index; a host of a thousand sessions holds a dozen
    whole and leaves the others bounded (their misses ask the backend), where separate
    budgets for each kind of memory held thirty whole and a hundred and eighty indexed:
    610 MB for a thousand sessions of 10k peers, against the 500 asked."""

    left = 48 * 2**20


@dataclass(frozen=True, slots=True)
class Primitives:
    """The backend's reads, errors translated and results checked by the contract."""

    find_peer: Callable[[int, bool], Awaitable[Peer | None]]
    find_by_username: Callable[[str, bool], Awaitable[Peer | None]]
    find_by_phone: Callable[[str, bool], Awaitable[Peer | None]]
    username_holders: Callable[[str], Awaitable[set[int] | None]]
    read_peers: Callable[[int | None, int], Awaitable[list[Peer]]]
    count_peers: Callable[[], Awaitable[int]]
    peer_rows: Callable[[int | None, int | None], Awaitable[list[tuple[Any, ...]] | None]]
    catch_up: Callable[[], bool]
    """Shared mode: take in every change others made that reached us, then whether
    memory may answer (False: ask the backend)."""
    peer_columns: Callable[[int | None, int], Awaitable[Columns | None]]
    find_access: Callable[[int], Awaitable[tuple[Any, Any] | None]]
    id_snapshot: Callable[[], IdTable | bool | None] = lambda: None
    """The next part of the stored peers' id table, from a snapshot the backend keeps
    (read on the event loop, a millisecond or two); True: every part was read; None:
    there is none (or no more)."""


def entry_of(peer: Peer) -> PeerChange:
    """A stored peer as the engine holds it."""
    stamp = peer.last_update_on
    return (
        PARTIAL if peer.usernames is None else FULL,
        peer.access_hash,
        peer.type._value_,
        peer.usernames,
        peer.phone_number,
        stamp if stamp is not None else 0,
    )


def _peer_or_none(peer_id: int, entry: PeerChange | None) -> Peer | None:
    return None if entry is None else peer_of(peer_id, entry)


def peer_of(peer_id: int, entry: PeerChange) -> Peer:
    """The public form of a held peer."""
    return Peer(
        peer_id,
        entry[HASH],
        PeerType.of(entry[TYPE]),
        entry[NAMES] if entry[KIND] == FULL else None,
        entry[PHONE],
        entry[STAMP],
    )


class Peers:
    """The peer engine of one storage (see the module's docs).

    :param primitives: the backend's reads.
    :param pending: the storage's pending writes.
    :param cache_size: peers kept by the bounded cache (0: none).
    :param probes: whether point reads are cheap enough to read a peer before writing it.
    """

    def __init__(
        self,
        primitives: Primitives,
        pending: PendingWrites,
        cache_size: int,
        *,
        probes: bool,
    ) -> None:
        self.primitives = primitives
        self.pending = pending
        self.cache = PeerCache(cache_size)
        self.probes = probes
        self.caching = False  # memory is used only while we are the only writer
        self._shared = False  # others write too: memory only as the backend tells
        self.complete = False  # every stored peer is in memory (a miss is an answer)
        self.index: PeerIndex | None = None  # every stored peer, compact (indexed mode)
        # While memory fills after open(): the stored peers' access hashes and types, read
        # in bulk first, less those written since (they are asked for elsewhere).
        self._early: IdTable | None = None
        self._early_written: set[int] | None = None  # peers written while a batch is read
        # While the index is built: the part built so far (every stored peer up to id
        # _partial_last) answers id lookups in the id table's place, less the peers in
        # _skip (pending when their batch was read, or written since the build began).
        self._partial: PeerIndex | None = None
        self._partial_last = 0
        self._skip: set[int] | None = None
        self._snapshot = False  # the backend may hand over an id table (id_snapshot)
        self._snapshot_read = False  # every part of it was: no need to read the ids
        self._snapshot_asks = 0  # id lookups that found parts of it not read yet
        # Peer id -> (access hash, type name) the index or the id table last answered: a
        # dict hit costs less than their bisects. Every write of a peer takes it out.
        self._hot: dict[int, tuple[int, str]] = {}
        self._limit = 0  # complete: peers it may hold before it moves to the index
        self._cache_size = cache_size
        self.refresh = _STAMP_REFRESH
        self.writes = 0  # bumped by every write: a read racing one is not remembered
        self._names: _Holders = {}  # complete: username -> ids, oldest first
        self._phones: _Holders = {}  # complete: phone -> ids, oldest first
        self._loading: asyncio.Task[None] | None = None
        self._warming: set[int] | None = None  # shared: ids invalidated while memory fills
        self._generation = 0  # bumped when memory is dropped whole
        self._touched: set[int] | None = None  # peers written while memory fills
        self._moving: set[int] | None = None  # peers written while whole moves to the index
        self._share = 0
        self._index_share = 0
        self._settling: asyncio.Event | None = None  # writers wait while peers are read back
        self._probes = 0
        self._probe_hits = 1.0  # recent share of probed peers found stored

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, sole_writer: bool, username_ttl: float | None, told: bool = False) -> None:
        """The storage opened: remember peers if we are its only writer, or if the backend
        tells us what other writers change (``told``; memory stays bounded then)."""
        self._shared = not sole_writer
        self.caching = (sole_writer or told) and self.cache.size > 0
        ttl = username_ttl
        self.refresh = _STAMP_REFRESH if ttl is None else min(_STAMP_REFRESH, ttl / 8)
        if self.caching and sole_writer:
            self._touched = set()  # from now on: the load must not miss a write
            self._snapshot = True
            self._snapshot_read = False
            self._snapshot_asks = 0
            self._loading = asyncio.get_running_loop().create_task(self._load())
        elif self.caching:
            self._warm()

    async def stop(self) -> None:
        """The storage closes: forget everything."""
        self.caching = False
        loading, self._loading = self._loading, None
        if loading is not None and not loading.done():
            loading.cancel()
            if inspect.getcoroutinestate(loading.get_coro()) != inspect.CORO_CREATED:  # type: ignore[arg-type]
                await asyncio.wait([loading])  # under way: let it end (never run: nothing to)
        self._forget()

    def abandon(self) -> None:
        """The storage's event loop has ended: forget everything, awaiting nothing."""
        self.caching = False
        self._loading = None
        self._forget()

    def invalidate(self, peer_ids: Collection[int] | None) -> None:
        """Another writer changed these peers (None: any): memory drops what it held.

        A read under way when this is called does not remember what it found.
        """
        self.writes += 1
        if self._warming is not None and peer_ids is not None:
            self._warming.update(peer_ids)
        if peer_ids is None or self.complete or self.index is not None:
            self._forget()
            if not self._shared and self.caching and self._touched is None:
                self._touched = set()  # the only writer again: fill memory anew
                self._loading = asyncio.get_running_loop().create_task(self._load())
            return
        pop = self.cache.pop
        for peer_id in peer_ids:
            pop(peer_id)

    def trust(self, trusted: bool) -> None:
        """Shared mode: whether the backend is telling what other writers change."""
        if not self._shared:
            return
        self.writes += 1
        self._forget()
        self.caching = trusted and self.cache.size > 0
        if self.caching:
            self._warm()

    def _warm(self) -> None:
        """Shared mode, memory trusted: fill it with stored peers in the background, where
        the backend can say at once that it heard every change (else memory fills on
        demand: a fill could not tell which of the peers it read are stale)."""
        if not self.primitives.catch_up():
            return
        if self._loading is not None and not self._loading.done():
            self._loading.cancel()
        self._warming = set()
        self._loading = asyncio.get_running_loop().create_task(self._fill_shared())

    async def _fill_shared(self) -> None:
        """Put stored peers in memory, batch by batch, until it is full; leave out those
        invalidated since the fill began and those memory holds already (newer)."""
        generation, warming = self._generation, self._warming
        cache, journal = self.cache, self.pending.journal
        after: int | None = None
        retries = 0
        try:
            while warming is not None and len(cache) < cache.size:
                rows = await self.primitives.peer_rows(after, _LOAD_BATCH)
                if rows is None:
                    batch = await self.primitives.read_peers(after, _LOAD_BATCH)
                    rows = [_row_of(peer) for peer in batch]
                if generation != self._generation or not self.caching or not self._shared:
                    return
                if not self.primitives.catch_up():
                    retries += 1
                    if retries > 100:
                        return  # the news keeps not being known: memory fills on demand
                    await asyncio.sleep(0.01)  # news still arriving: read this batch again
                    continue
                for peer_id, access_hash, kind, names, phone, stamp in rows:
                    if (
                        peer_id in warming
                        or cache.peek(peer_id) is not None
                        or journal.peer(peer_id) is not None
                        or len(cache) >= cache.size
                    ):
                        continue
                    cache.put(peer_id, (FULL, access_hash, kind, tuple(names), phone, stamp))
                if len(rows) < _LOAD_BATCH:
                    return
                after = rows[-1][0]
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # memory left to fill on demand is slower, never wrong
            log.debug("filling memory with the stored peers stopped: %s", exc)
        finally:
            if self._warming is warming:
                self._warming = None

    def _forget(self) -> None:
        self._generation += 1
        self._moving = None
        self.complete = False
        self.index = None
        self._early = None
        self._early_written = None
        self._partial = self._skip = None
        self._snapshot = self._snapshot_read = False
        self._hot.clear()
        self.pending.journal.indexed = False  # built by the first lookup that asks
        held = self.cache.clear()
        self.cache.size = self._cache_size
        _let_go([held, self._names, self._phones])
        self._names = {}
        self._phones = {}
        _Budget.left += self._share * _WHOLE_BYTES + self._index_share * _INDEXED_BYTES
        self._share = 0
        self._index_share = 0

    # -- writing ------------------------------------------------------------------------------

    def holds(self, peer: tuple[Any, ...], now: float) -> bool:
        """Whether memory holds ``(id, access_hash, type name, usernames or None, phone)``
        as it is, written recently enough: writing it would change nothing (memory holding
        every stored peer, or shared mode's, told of every change the others made). Checked
        before anything else for a client's per-update write; only values equal to
        checked ones pass (so nothing unchecked is let through)."""
        if self.complete:
            held = self.cache._entries.get(peer[0])
        elif self._shared and self.caching:
            # Shared mode: memory holds what is stored of the peers it holds, once every
            # change the others made is taken in (else the write goes ahead).
            cache = self.memory()
            held = None if cache is None else cache.peek(peer[0])
            if held is not None and peer[3] is not None and held[KIND] != FULL:
                return False  # its usernames are not known here
        else:
            return False
        _, access_hash, kind, names, phone = peer
        return (
            held is not None
            and type(access_hash) is int
            and held[HASH] == access_hash
            and held[TYPE] == kind
            and held[PHONE] == phone
            and (names is None or held[NAMES] == names)
            and now - held[STAMP] < self.refresh
        )

    def holds_names(self, pair: Any) -> bool:
        """Whether ``pair`` is ``(peer_id, [names])`` and memory holds ``peer_id`` with
        exactly these usernames (as written: lowercase), or, holding every stored peer,
        does not hold it (the write is ignored)."""
        if type(pair) is not tuple or len(pair) != 2 or type(pair[1]) is not list:
            return False
        peer_id, names = pair
        if type(peer_id) is not int:
            return False
        if self.complete:
            held = self.cache._entries.get(peer_id)
            if held is None:
                return -(2**63) <= peer_id < 2**63
        elif self._shared and self.caching:
            # Shared mode: a peer not held may be stored (the write goes ahead).
            cache = self.memory()
            held = None if cache is None else cache.peek(peer_id)
            if held is None or held[KIND] != FULL:
                return False
        else:
            return False
        return held[NAMES] == tuple(names)  # only strs equal the strs held

    def put(self, peer_id: int, access_hash: int, kind: str, phone: str | None, now: int) -> bool:
        """Write one checked peer keeping its usernames (a client's update brings its
        sender) when memory holds every peer (whole or in the index) and nothing needs
        awaiting: True once written, or found unchanged. False, with nothing done: call
        :meth:`upsert`."""
        if self._touched is not None or self._early is not None or self._early_written is not None:
            return False
        self._hot.pop(peer_id, None)  # answers kept from the index: this write may change it
        if self.complete:
            held = self.cache._entries
            old = held.get(peer_id)
            if (
                old is not None
                and old[HASH] == access_hash
                and old[TYPE] == kind
                and old[PHONE] == phone
                and now - old[STAMP] < self.refresh
            ):
                return True
            pending = self.pending
            if not pending.soon():
                return False
            layer = pending.journal._pending
            change = (PARTIAL, access_hash, kind, None, phone, now)
            if layer._indexed or peer_id in layer.peers:
                if not layer.add_peer(peer_id, change, old is None):
                    return False
            else:  # add_peer() of a key new to the layer, inlined (an update's new sender)
                layer.peers[peer_id] = change
                if old is None:
                    layer.fresh.add(peer_id)
                if now > layer.partial_stamp:
                    layer.partial_stamp = now
            entry = (FULL, access_hash, kind, () if old is None else old[NAMES], phone, now)
            held[peer_id] = entry
            if self._moving is not None:
                self._moving.add(peer_id)
            if old is None:
                if phone:
                    _add(self._phones, phone, peer_id)
            elif old[PHONE] != phone:
                _reindex(self._names, self._phones, peer_id, old, entry)
            self.writes += 1
            if len(held) > self._share or len(held) > self._limit:
                self._grown()
            return True
        index = self.index
        if index is None or self._shared:
            return False
        cache = self.cache
        old = cache.peek(peer_id)
        change = (PARTIAL, access_hash, kind, None, phone, now)
        if old is None:
            layer = self.pending.journal._pending
            if not layer._indexed and peer_id not in layer.peers and self.pending.soon():
                # The layer takes it whatever it is: the index writes it first (or finds
                # it unchanged), with one search.
                since = math.floor(now - self.refresh)
                wrote_as = index.write(peer_id, access_hash, kind, now, phone_key(phone), since)
                if type(wrote_as) is tuple:  # unchanged: nothing written
                    if wrote_as[4] >= 0 and wrote_as[2] >= 0:  # its phone and stamp known
                        cache.put(peer_id, _entry_of_found(wrote_as))
                    return True
                layer.add_peer(peer_id, change, not wrote_as)
                cache.put(
                    peer_id, change if wrote_as else (FULL, access_hash, kind, (), phone, now)
                )
                self.writes += 1
                return True
        fresh = False
        if old is not None:
            if _unchanged(old, change, False, now, self.refresh):
                return True
        else:
            found = index.get(peer_id)
            if found is None:
                fresh = True
            elif _found_unchanged(found, change, False, now, self.refresh):
                if found[4] >= 0 and found[2] >= 0:  # its phone and stamp known here: hold it
                    cache.put(peer_id, _entry_of_found(found))
                return True
        if not self.pending.soon() or not self.pending.journal.add_peer(peer_id, change, fresh):
            return False
        index.put(peer_id, access_hash, kind, now, None, phone_key(phone))
        if fresh:
            cache.put(peer_id, (FULL, access_hash, kind, (), phone, now))
        elif old is not None and old[KIND] == FULL:
            cache.put(peer_id, (FULL, access_hash, kind, old[NAMES], phone, now))
        else:
            cache.put(peer_id, change)
        self.writes += 1
        return True

    def put_names(self, peer_id: int, names: tuple[Any, ...], now: int) -> bool:
        """Replace one peer's usernames (a client's update brings its sender's) when memory
        holds every peer (whole or in the index) and nothing needs awaiting: True once
        done, found unchanged, or ignored (not stored). False, with nothing done: call
        :meth:`set_names`."""
        if self._touched is not None:
            return False
        if self.complete:
            held = self.cache._entries
            old = held.get(peer_id)
            if old is None:
                return True  # not stored: ignored, as the backend would
            if old[NAMES] == names:
                return True  # only strs equal the strs held
            if not plain_usernames(names) or not self._join_names(peer_id, names, now):
                return False
            held[peer_id] = (FULL, old[HASH], old[TYPE], names, old[PHONE], old[STAMP])
            if self._moving is not None:
                self._moving.add(peer_id)
            names_map = self._names
            for name in old[NAMES] or ():
                _drop(names_map, name, peer_id)
            for name in names:
                _add(names_map, name, peer_id)
            self.writes += 1
            return True
        index = self.index
        if index is None or self._shared:
            return False
        cache = self.cache
        held_ = cache.peek(peer_id)
        fingerprint = names_fingerprint(names)
        if held_ is not None and held_[KIND] == FULL:
            if held_[NAMES] == names:
                return True
        else:
            found = index.get(peer_id)
            if found is None:
                return True  # not stored: ignored, as the backend would
            if found[3] == fingerprint:  # unchanged: now known whole
                if held_ is not None:
                    cache.put(peer_id, (FULL, *held_[HASH:NAMES], names, *held_[PHONE:]))
                return True
        if not plain_usernames(names) or not self._join_names(peer_id, names, now):
            return False
        index.rename(peer_id, fingerprint, names)  # lookups by username find it too
        if held_ is not None:
            cache.put(peer_id, (FULL, *held_[HASH:NAMES], names, *held_[PHONE:]))
        self.writes += 1
        return True

    def _join_names(self, peer_id: int, names: tuple[str, ...], now: int) -> bool:
        """Put a usernames change in the pending layer if it may return without awaiting
        (:meth:`PendingWrites.soon`): joined to the peer's pending row in place, the
        common case, or as :meth:`Journal.add_peer` adds it."""
        pending = self.pending
        if not pending.soon():
            return False
        layer = pending.journal._pending
        return _add_names(layer.peers, layer.add_peer, layer._indexed, peer_id, names, now)

    def put_many(self, peers: list[tuple[int, int, str, str | None]], now: int) -> int:
        """:meth:`put` of each checked ``(id, access_hash, type name, phone)`` tuple, in
        order: how many were done before one needed :meth:`upsert` (for the rest).

        A client's batch (a hundred peers a call): one loop, the journal's pending layer
        written directly, where :meth:`put` costs a dozen calls a peer.
        """
        pending = self.pending
        layer = pending.journal._pending
        if (
            self._touched is not None
            or self._early is not None
            or self._early_written is not None
            or (not self.complete and (self.index is None or self._shared))
            or not pending.room(len(peers))
        ):
            put = self.put
            for done, (peer_id, access_hash, kind, phone) in enumerate(peers):
                if not put(peer_id, access_hash, kind, phone, now):
                    return done
            return len(peers)
        hot_pop = self._hot.pop
        refresh = self.refresh
        held_layer, fresh_layer = layer.peers, layer.fresh
        slow = layer._indexed  # the layer keeps a username index: its add_peer keeps it
        add = layer.add_peer
        done = 0
        wrote = False
        try:
            if self.complete:
                held = self.cache._entries
                moving = self._moving
                phones = self._phones
                for peer_id, access_hash, kind, phone in peers:
                    hot_pop(peer_id, None)
                    old = held.get(peer_id)
                    if (
                        old is not None
                        and old[HASH] == access_hash
                        and old[TYPE] == kind
                        and old[PHONE] == phone
                        and now - old[STAMP] < refresh
                    ):
                        done += 1
                        continue
                    change = (PARTIAL, access_hash, kind, None, phone, now)
                    if slow or peer_id in held_layer:
                        if not add(peer_id, change, old is None):
                            return done
                    else:
                        held_layer[peer_id] = change
                        if old is None:
                            fresh_layer.add(peer_id)
                    wrote = True
                    entry = (FULL, access_hash, kind, () if old is None else old[NAMES], phone, now)
                    held[peer_id] = entry
                    if moving is not None:
                        moving.add(peer_id)
                    if old is None:
                        if phone:
                            _add(phones, phone, peer_id)
                    elif old[PHONE] != phone:
                        _reindex(self._names, phones, peer_id, old, entry)
                    done += 1
                return done
            index = self.index
            assert index is not None
            cache = self.cache
            entries, room = cache._entries, cache.size
            lru = room > 0 and not cache.complete  # bounded: a new key goes last by itself
            peek, cache_put = entries.get, cache.put
            index_get, index_put, index_write = index.get, index.put, index.write
            since = math.floor(now - refresh)  # stamps are ints: held > since as before
            # A batch (a dialog list, an ingest), not an update's senders: its new peers
            # stay out of the LRU cache, where they would push out the peers in use.
            bulk = len(peers) > _PROBE_BATCH
            for peer_id, access_hash, kind, phone in peers:
                hot_pop(peer_id, None)
                old = peek(peer_id)
                if old is None and not slow and peer_id not in held_layer:
                    # The common case, an ingest's new or re-sent peer: the layer takes
                    # it whatever it is, so the index writes it (or finds it unchanged)
                    # first, with one search.
                    wrote_as = index_write(
                        peer_id, access_hash, kind, now, phone_key(phone) if phone else 0, since
                    )
                    if type(wrote_as) is tuple:  # unchanged: nothing written
                        if not bulk and wrote_as[4] >= 0 and wrote_as[2] >= 0:
                            cache_put(peer_id, _entry_of_found(wrote_as))
                        done += 1
                        continue
                    change = (PARTIAL, access_hash, kind, None, phone, now)
                    held_layer[peer_id] = change
                    wrote = True
                    if wrote_as:
                        cache_put(peer_id, change)
                    else:
                        fresh_layer.add(peer_id)
                        if bulk:
                            pass  # the layer holds it whole until stored (see put_names_many)
                        elif lru:  # cache.put() of a new key, inlined
                            entries[peer_id] = (FULL, access_hash, kind, (), phone, now)
                            if len(entries) > room:
                                entries.popitem(last=False)  # type: ignore[call-arg]
                        else:
                            cache_put(peer_id, (FULL, access_hash, kind, (), phone, now))
                    done += 1
                    continue
                fresh = False
                if old is not None:
                    if (
                        old[HASH] == access_hash
                        and old[TYPE] == kind
                        and old[PHONE] == phone
                        and now - old[STAMP] < refresh
                    ):
                        done += 1
                        continue
                else:
                    found = index_get(peer_id)
                    if found is None:
                        fresh = True
                    elif _found_unchanged(
                        found, (PARTIAL, access_hash, kind, None, phone, now), False, now, refresh
                    ):
                        if found[4] >= 0 and found[2] >= 0:
                            cache_put(peer_id, _entry_of_found(found))
                        done += 1
                        continue
                change = (PARTIAL, access_hash, kind, None, phone, now)
                if slow or peer_id in held_layer:
                    if not add(peer_id, change, fresh):
                        return done
                else:
                    held_layer[peer_id] = change
                    if fresh:
                        fresh_layer.add(peer_id)
                wrote = True
                index_put(peer_id, access_hash, kind, now, None, phone_key(phone))
                if fresh:
                    cache_put(peer_id, (FULL, access_hash, kind, (), phone, now))
                elif old is not None and old[KIND] == FULL:
                    cache_put(peer_id, (FULL, access_hash, kind, old[NAMES], phone, now))
                else:
                    cache_put(peer_id, change)
                done += 1
            return done
        finally:
            if wrote:
                if now > layer.partial_stamp:
                    layer.partial_stamp = now
                self.writes += 1
                pending.handed()
                if self.complete:
                    size = len(self.cache._entries)
                    if size > self._share or size > self._limit:
                        self._grown()

    def put_names_many(self, pairs: list[tuple[int, tuple[str, ...]]], now: int) -> int:
        """:meth:`put_names` of each ``(id, usernames)`` pair, ids checked and usernames
        plain (:func:`~pyrogram_storage.validation.plain_usernames`), in order: how many
        were done before one needed :meth:`set_names`. One loop, as :meth:`put_many`."""
        pending = self.pending
        layer = pending.journal._pending
        if (
            self._touched is not None
            or (not self.complete and (self.index is None or self._shared))
            or not pending.room(len(pairs))
        ):
            put = self.put_names
            for done, (peer_id, names) in enumerate(pairs):
                if not put(peer_id, names, now):
                    return done
            return len(pairs)
        held_layer = layer.peers
        slow = layer._indexed
        add = layer.add_peer
        done = 0
        wrote = False
        try:
            if self.complete:
                held = self.cache._entries
                moving = self._moving
                names_map = self._names
                for peer_id, names in pairs:
                    old = held.get(peer_id)
                    if old is None or old[NAMES] == names:
                        done += 1  # not stored (ignored, as the backend would), or unchanged
                        continue
                    if not _add_names(held_layer, add, slow, peer_id, names, now):
                        return done
                    wrote = True
                    held[peer_id] = (FULL, old[HASH], old[TYPE], names, old[PHONE], old[STAMP])
                    if moving is not None:
                        moving.add(peer_id)
                    for name in old[NAMES] or ():
                        _drop(names_map, name, peer_id)
                    for name in names:
                        _add(names_map, name, peer_id)
                    done += 1
                return done
            index = self.index
            assert index is not None
            cache = self.cache
            peek, cache_put = cache._entries.get, cache.put
            rename = index.rename
            fresh_layer = layer.fresh
            for peer_id, names in pairs:
                held_ = peek(peer_id)
                fingerprint = names_fingerprint(names)
                pending_old = None if slow else held_layer.get(peer_id)
                if held_ is not None and held_[KIND] == FULL:
                    if held_[NAMES] == names:
                        done += 1
                        continue
                elif pending_old is not None and (
                    pending_old[KIND] == FULL
                    or (pending_old[KIND] == PARTIAL and peer_id in fresh_layer)
                ):
                    # Its usernames are the pending ones (a new peer's: none, as the index
                    # says), with no search of the index.
                    if (() if pending_old[KIND] == PARTIAL else pending_old[NAMES]) == names:
                        done += 1
                        continue
                else:
                    # One search renames it in the index, if stored and changed: a
                    # usernames change always joins the pending layer (coalesce()).
                    renamed = rename(peer_id, fingerprint, names)
                    if not renamed:
                        if renamed is not None and held_ is not None:  # now known whole
                            cache_put(peer_id, (FULL, *held_[HASH:NAMES], names, *held_[PHONE:]))
                        done += 1  # unchanged, or not stored: ignored, as the backend would
                        continue
                    if not _add_names(held_layer, add, slow, peer_id, names, now):
                        raise AssertionError("a usernames change always joins the layer")
                    wrote = True
                    if held_ is not None:
                        cache_put(peer_id, (FULL, held_[HASH], held_[TYPE], names, *held_[PHONE:]))
                    done += 1
                    continue
                # _add_names(), inlined: the peer's row pending (an ingest's peer), or nothing
                if pending_old is not None and pending_old[KIND] <= PARTIAL:
                    held_layer[peer_id] = (
                        FULL,
                        pending_old[HASH],
                        pending_old[TYPE],
                        names,
                        pending_old[PHONE],
                        pending_old[STAMP],
                    )
                elif not _add_names(held_layer, add, slow, peer_id, names, now):
                    return done
                wrote = True
                rename(peer_id, fingerprint, names)
                if held_ is not None:
                    cache_put(peer_id, (FULL, held_[HASH], held_[TYPE], names, *held_[PHONE:]))
                done += 1
            return done
        finally:
            if wrote:
                self.writes += 1
                pending.handed()

    def memory(self) -> PeerCache | None:
        """The cache, if it may answer now: we are the only writer, or the backend has
        told us of every change the others made."""
        if not self.caching or (self._shared and not self.primitives.catch_up()):
            return None
        return self.cache

    async def upsert(self, changes: list[tuple[int, PeerChange, bool]], now: int) -> None:
        """Write checked peers ``(id, change, stamped)``; unchanged ones cost nothing."""
        while self._settling is not None:
            await self._settling.wait()
        cache = self.cache if self.caching and not self._shared else self.memory()
        if cache is not None:
            peek = cache.peek
            if len(changes) == 1 and self.complete:  # an update's sender, held in memory
                item = changes[0]
                cached = peek(item[0])
                if cached is not None and _unchanged(cached, item[1], item[2], now, self.refresh):
                    return
            elif self.index is not None:
                changes = self._changed(changes, now)
                if not changes:
                    return
            elif not self.complete and self.probes and len(changes) <= _PROBE_BATCH:  # bounded
                for peer_id, _, _ in changes:
                    if peek(peer_id) is None:
                        await self._probe([peer_id for peer_id, _, _ in changes])
                        break
            refresh = self.refresh
            kept = []
            for item in changes:
                cached = peek(item[0])
                if cached is None or not _unchanged(cached, item[1], item[2], now, refresh):
                    kept.append(item)
            if not kept:
                return
            changes = kept
        journal = self.pending.journal
        for peer_id, change, _ in changes:
            if not journal.can_add(peer_id, change):
                # Usernames set, then a write keeping them: whether they are kept depends
                # on what is stored, so store the first before taking the second (and
                # before changing anything, should storing fail).
                await self.pending.store()
                break
        complete = self.complete
        touched = self._touched
        early = self._early
        skip = self._skip
        if early is not None or self._hot or self._early_written is not None or skip is not None:
            hot, written = self._hot, self._early_written
            for peer_id, _, _ in changes:
                hot.pop(peer_id, None)
                if early is not None:
                    early.remove(peer_id)
                if written is not None:
                    written.add(peer_id)
                if skip is not None:
                    skip.add(peer_id)
        if complete and touched is None:  # memory holds every peer: a plain dict
            held = self.cache._entries
            add = journal.add_peer
            names_map, phones_map = self._names, self._phones
            if self._moving is not None:
                self._moving.update(peer_id for peer_id, _, _ in changes)
            for peer_id, change, _ in changes:
                old = held.get(peer_id)
                add(peer_id, change, old is None)
                if change[KIND] == PARTIAL:  # the usernames kept: those held (a new peer: none)
                    names = () if old is None else old[NAMES]
                    change = (FULL, change[HASH], change[TYPE], names, change[PHONE], change[STAMP])
                held[peer_id] = change
                if old is None or old[NAMES] != change[NAMES] or old[PHONE] != change[PHONE]:
                    _reindex(names_map, phones_map, peer_id, old, change)
        else:
            index = self.index
            for peer_id, change, _ in changes:
                if touched is not None:
                    touched.add(peer_id)
                old = cache.peek(peer_id) if cache is not None else None
                fresh = index is not None and peer_id not in index
                journal.add_peer(peer_id, change, fresh)
                if index is not None:
                    names = change[NAMES]
                    index.put(
                        peer_id,
                        change[HASH],
                        change[TYPE],
                        change[STAMP],
                        None if names is None else names_fingerprint(names),
                        phone_key(change[PHONE]),
                    )
                    if names:
                        index.add_names(peer_id, names)
                    if fresh and names is None:
                        change = (FULL, change[HASH], change[TYPE], (), *change[PHONE:])
                if cache is None:
                    continue
                if change[KIND] == PARTIAL and old is not None and old[KIND] == FULL:
                    names = old[NAMES]  # the usernames kept are the ones held
                    change = (FULL, change[HASH], change[TYPE], names, change[PHONE], change[STAMP])
                cache.put(peer_id, change)
        self.writes += 1
        if complete and len(self.cache) > min(self._share, self._limit):
            self._grown()
        await self.pending.written()

    def _changed(
        self, changes: list[tuple[int, PeerChange, bool]], now: int
    ) -> list[tuple[int, PeerChange, bool]]:
        """Indexed mode: the changes that would change something (the others are dropped)."""
        index, cache, refresh = self.index, self.cache, self.refresh
        assert index is not None
        kept = []
        for item in changes:
            peer_id, change, explicit = item
            held = cache.peek(peer_id)
            if held is not None:
                if not _unchanged(held, change, explicit, now, refresh):
                    kept.append(item)
                continue
            found = index.get(peer_id)
            if found is None or not _found_unchanged(found, change, explicit, now, refresh):
                kept.append(item)
            elif found[4] >= 0 and found[2] >= 0:  # its phone and stamp known here: hold it
                cache.put(peer_id, _entry_of_found(found))
        return kept

    async def set_names(self, merged: dict[int, tuple[str, ...]], now: int) -> None:
        """Replace the usernames of these ids; ids not stored are ignored."""
        while self._settling is not None:
            await self._settling.wait()
        cache = self.cache if self.caching and not self._shared else self.memory()
        if cache is not None and len(merged) == 1 and self.complete:  # an update's sender
            for peer_id, names in merged.items():
                cached = cache.peek(peer_id)
                if cached is None or cached[NAMES] == names:
                    return  # not stored (ignored), or unchanged
        complete = self.complete
        probing = not complete and self.index is None and self.probes
        if cache is not None and probing and len(merged) <= _PROBE_BATCH:
            for peer_id in merged:
                if cache.peek(peer_id) is None:
                    await self._probe(list(merged))
                    break
        written = 0
        journal = self.pending.journal
        touched = self._touched
        index = self.index if cache is not None else None
        if complete and self._moving is not None:
            self._moving.update(merged)
        for peer_id, names in merged.items():
            if touched is not None:
                touched.add(peer_id)
            if index is not None and cache is not None:
                fingerprint = names_fingerprint(names)
                held = cache.peek(peer_id)
                if held is not None and held[KIND] == FULL:
                    if held[NAMES] == names:
                        continue
                else:
                    found = index.get(peer_id)
                    if found is None:
                        continue  # not stored: ignored, as the backend would
                    if found[3] == fingerprint:  # unchanged: now known whole
                        if held is not None:
                            cache.put(peer_id, (FULL, *held[HASH:NAMES], names, *held[PHONE:]))
                        continue
                index.rename(peer_id, fingerprint, names)
            if cache is not None:
                cached = cache.peek(peer_id)
                if cached is not None:
                    if cached[KIND] == FULL and cached[NAMES] == names:
                        continue
                    entry = (FULL, *cached[HASH:NAMES], names, *cached[PHONE:])
                    cache.put(peer_id, entry)
                    if complete:
                        _reindex(self._names, self._phones, peer_id, cached, entry)
                elif complete:
                    continue  # not stored: ignored, as the backend would
            journal.add_peer(peer_id, (pending_.NAMES, 0, "", names, None, now))
            written += 1
        if written:
            self.writes += 1
            await self.pending.written()

    async def delete(self, ids: Collection[int]) -> None:
        while self._settling is not None:
            await self._settling.wait()
        journal = self.pending.journal
        complete = self.complete
        if self._touched is not None:
            self._touched.update(ids)
        if self._moving is not None:
            self._moving.update(ids)
        index = self.index
        early = self._early
        for peer_id in ids:
            old = self.cache.peek(peer_id)
            self.cache.pop(peer_id)
            self._hot.pop(peer_id, None)
            if index is not None:
                index.remove(peer_id)
            if early is not None:
                early.remove(peer_id)
            if self._early_written is not None:
                self._early_written.add(peer_id)
            if self._skip is not None:
                self._skip.add(peer_id)
            if complete and old is not None:
                _reindex(self._names, self._phones, peer_id, old, None)
            journal.add_peer(peer_id, (DELETED, 0, "", None, None, 0))
        self.writes += 1
        await self.pending.written()

    # -- reading ------------------------------------------------------------------------------

    def cached(self, peer_id: int) -> PeerChange | None:
        """The held entry of ``peer_id`` (a cache hit), or None; no I/O."""
        if self._shared:
            cache = self.memory()
            return None if cache is None else cache.get(peer_id)
        return self.cache.get(peer_id)

    def access(self, peer_id: int) -> tuple[int, str] | None:
        """``(access hash, type name)`` of ``peer_id`` from the compact index (or the id
        table read right after open), or None: not there, or ask elsewhere. No I/O."""
        if not self.caching or self._shared:
            return None
        hot = self._hot
        found = hot.get(peer_id)
        if found is not None:
            return found
        index = self.index
        if index is not None:
            found = index.access(peer_id)
        elif self._partial is not None and peer_id <= self._partial_last:
            skip = self._skip
            found = None if skip is None or peer_id in skip else self._partial.access(peer_id)
        else:
            early = self._early
            if self._snapshot:
                # A few lookups (a program's first, open + one lookup) cost a point query
                # each; from then on each reads a part until the snapshot is read whole.
                self._snapshot_asks += 1
                if self._snapshot_asks >= _SNAPSHOT_AFTER:
                    early = self._adopt_snapshot()
            if early is not None:
                found = early.access(peer_id)
        if found is not None:
            if len(hot) >= _HOT:
                hot.clear()
            hot[peer_id] = found
        return found

    def holder(self, which: str, key: str) -> tuple[int, int, str, int] | None:
        """The newest holder of a username (``which="names"``) or phone, from memory:
        ``(id, access hash, type name, last write)``; None: not known here (ask
        :meth:`lookup`, which also answers that nobody holds it). No I/O."""
        if self.complete:
            held = (self._names if which == "names" else self._phones).get(key)
            if held is None:
                return None
            peek = self.cache.peek
            best: tuple[int, int, str, int] | None = None
            for peer_id in (held,) if type(held) is int else held:  # type: ignore[union-attr]
                entry = peek(peer_id)
                if entry is not None and (
                    best is None or (entry[STAMP], peer_id) > (best[3], best[0])
                ):
                    best = (peer_id, entry[HASH], entry[TYPE], entry[STAMP])
            return best
        index = self.index
        if index is None or not self.caching or self._shared:
            return None
        names = which == "names"
        wanted = name_key(key) if names else phone_key(key)
        candidates = index.by_name(wanted) if names else index.by_phone(wanted)
        best = None
        for peer_id in candidates:
            found = index.get(peer_id)
            if found is None:
                continue  # deleted
            key_held = found[3] if names else found[4]  # usernames fingerprint, phone key
            if key_held != wanted:
                if names and key_held & 1:
                    return None  # holds several names: ask the store
                continue  # no longer holds it
            stamp = found[2]
            if stamp < 0:
                return None  # its last write is not known here
            if best is None or (stamp, peer_id) > (best[3], best[0]):
                best = (peer_id, found[0], found[1], stamp)
        return best

    async def read_access(self, peer_id: int) -> tuple[int, str] | bool | None:
        """An id lookup memory did not answer (:meth:`access`), for the client glue:
        ``(access hash, type name)`` from pending writes or a point read of the store;
        False: not stored; None: ask :meth:`by_id` (memory, or the peer's usernames
        pending, or a damaged row)."""
        if not self.probes or self.complete or self.index is not None:
            return None  # point reads are round trips (bounded memory keeps what by_id reads)
        find = self.primitives.find_access
        change = self.pending.journal.peer(peer_id)
        if change is not None:
            if change[KIND] == FULL or change[KIND] == PARTIAL:
                return change[HASH], change[TYPE]
            return None
        found = await find(peer_id)
        if self.pending.journal.peer(peer_id) is not None:
            return None  # written while the store was read (it was busy)
        if found is None:
            return False
        access_hash, kind = found
        if access_hash is None:
            access_hash = 0
        if type(access_hash) is not int or type(kind) is not str or not kind:
            return None
        return access_hash, kind

    async def by_id(self, peer_id: int, usernames: bool) -> Peer | None:
        """The peer as readers see it (pending writes on top), or None."""
        cache = self.memory()
        entry = None if cache is None else cache.get(peer_id)
        if entry is not None and (entry[KIND] == FULL or not usernames):
            return peer_of(peer_id, entry)
        if self.complete and entry is None:
            return None
        index = self.index if cache is not None else None
        if index is not None and entry is None:
            found = index.get(peer_id)  # what pending writes made of it too
            if found is None:
                return None
            if not usernames and found[4] >= 0 and found[2] >= 0:
                held = _entry_of_found(found)
                cache.put(peer_id, held)  # type: ignore[union-attr]
                return peer_of(peer_id, held)
        journal = self.pending.journal
        change = journal.peer(peer_id)
        if change is not None and change[KIND] == FULL:
            return pending_.make_peer(peer_id, change, change[NAMES])
        if change is not None and change[KIND] == DELETED:
            return None
        writes = self.writes
        stored = await self.primitives.find_peer(peer_id, usernames)
        peer = journal.apply(peer_id, stored)
        if peer is not None and self.caching and writes == self.writes:
            self._remember(peer)
        return peer

    async def lookup(self, index: str, key: str, usernames: bool) -> Peer | None:
        """The newest peer holding a username (``index="names"``) or phone, or None."""
        if self.complete:
            held = (self._names if index == "names" else self._phones).get(key)
            if held is None:
                return None
            peek = self.cache.peek
            newest: tuple[int, int] | None = None
            for peer_id in (held,) if type(held) is int else held:  # type: ignore[union-attr]
                entry = peek(peer_id)
                if entry is not None and (newest is None or (entry[STAMP], peer_id) > newest):
                    newest = (entry[STAMP], peer_id)
            return None if newest is None else peer_of(newest[1], peek(newest[1]))  # type: ignore[arg-type]
        found = self.index if index == "phones" and self.memory() is not None else None
        if found is not None:
            holder: tuple[int, int] | None = None
            wanted = phone_key(key)
            for peer_id in found.by_phone(wanted):
                seen = found.get(peer_id)
                if seen is None or seen[4] != wanted:
                    continue  # deleted, or another phone filed with it
                if holder is None or (seen[2], peer_id) > holder:
                    holder = (seen[2], peer_id)
            if holder is None:
                return None
            if holder[0] >= 0:  # its stamp is known here: it is the holder holder
                peer = await self.by_id(holder[1], usernames)
                if peer is not None and peer.phone_number == key:
                    return peer
        return await self._lookup(index, key, usernames)

    async def _lookup(self, index: str, key: str, usernames: bool) -> Peer | None:
        """Find the newest holder of a username or phone, pending writes included.

        The candidates: the peer the newest pending write gave the key, the peer the
        backend finds (with pending writes on top), and peers whose pending writes kept
        their usernames but made them newer. Only when a pending write took the key
        from the backend's peer (an older holder may hide behind it) is everything
        stored first and the backend asked again: usernames seldom move that fast.
        """
        journal = self.pending.journal
        holders = journal.holders(key, index)
        candidates: list[Peer] = []
        for holder in dict.fromkeys(holders):
            written = await self.by_id(holder, True)
            if written is not None and _holds(written, index, key):
                candidates.append(written)
        primitives = self.primitives
        find = primitives.find_by_username if index == "names" else primitives.find_by_phone
        writes = self.writes
        stored = await find(key, usernames)
        if stored is not None and journal.replaces(stored.id, index):
            await self.pending.store()
            writes = self.writes
            stored = await find(key, usernames)
        if stored is not None:
            peer = journal.apply(stored.id, stored)
            # The backend found it by this key: it holds it, unless a pending write says not.
            held = peer is stored or (
                index == "names" and peer is not None and peer.usernames is None
            )
            if peer is not None and (held or _holds(peer, index, key)) and stored.id not in holders:
                if peer is stored and self.caching and writes == self.writes:
                    self._remember(peer)
                candidates.append(peer)
            if index == "names" and journal.keeps_usernames_since(stored.last_update_on):
                # Only a stored holder of the name can have been made its newest holder:
                # where the backend lists them (one indexed query), only those are read.
                holding = await primitives.username_holders(key)
                for peer_id in journal.kept_usernames_since(stored.last_update_on, holding):
                    if peer_id != stored.id and peer_id not in holders:
                        newer = await self.by_id(peer_id, True)
                        if newer is not None and _holds(newer, index, key):
                            candidates.append(newer)
        if not candidates:
            return None
        if len(candidates) == 1:
            return candidates[0]
        return max(candidates, key=lambda peer: (peer.last_update_on or 0, peer.id))

    # -- memory -------------------------------------------------------------------------------

    def _remember(self, peer: Peer) -> None:
        if peer.usernames is None:
            cached = self.cache.peek(peer.id)
            if cached is not None and cached[HASH] == peer.access_hash:
                return  # what we know is better
        self.cache.put(peer.id, entry_of(peer))

    async def _probe(self, peer_ids: list[int]) -> None:
        """Read the stored peers a small write names, so that unchanged ones cost no write.

        Only where point reads are cheap (``probes``), and only while they keep finding
        the peers: a stream of new peers (an import) is not probed, except one write
        in 16, to notice when it ends.
        """
        cache = self.cache
        journal = self.pending.journal
        for peer_id in peer_ids:
            if cache.peek(peer_id) is not None or journal.peer(peer_id) is not None:
                continue
            self._probes += 1
            if self._probe_hits < 0.25 and self._probes % 16:
                continue
            writes = self.writes
            stored = await self.primitives.find_peer(peer_id, True)
            self._probe_hits = 0.9 * self._probe_hits + (0.1 if stored is not None else 0.0)
            if stored is not None and writes == self.writes and self.caching:
                self._remember(stored)

    async def _load(self) -> None:
        """Hold every stored peer in memory: whole (a small session) or in the compact
        index; then answer from memory.

        A session of at most :data:`COMPLETE_LIMIT` peers that fits in what the process's
        budget has left is held whole; a larger one (or one that no longer fits) in the
        index. The stored peers are read and turned into memory off the event loop;
        writes made before are laid on top. A peer written meanwhile is taken from the
        cache if it holds it whole, else read again once its writes are stored, until a
        round needs no read: a writer that never pauses leaves memory bounded.
        """
        touched = self._touched
        try:
            if touched is None:
                return
            stored = await self.primitives.count_peers()
            whole = stored <= COMPLETE_LIMIT and self._take(stored + _HEADROOM)
            built: _Built | None
            if not whole and not self._take(stored + _HEADROOM, index=True):
                return  # bounded: the process's memories are spent on other sessions
            while self._snapshot:  # the parts not read yet by lookups, one per loop turn
                self._adopt_snapshot()
                if self._snapshot:
                    await asyncio.sleep(0)
            if not self._snapshot_read:
                await self._read_early()
            if whole:
                rows = await self.primitives.peer_rows(None, None)
                if rows is None:
                    rows = await self._read_batches()
                given = rows
                built = await Lane().run(lambda: _build(given))
            else:
                built = await self._build_index(stored)
            if built is None:
                return  # stored data of the wrong types: the lookups that meet it say so
            await self._settle(built, touched)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # memory left bounded is slower, never wrong
            log.debug("loading the peers into memory stopped: %s", exc)
        finally:
            self._touched = None
            self._early = None
            self._snapshot = False  # a part read now would be thrown away (no _touched)
            self._partial = self._skip = None
            self._resume_writers()

    def _adopt_snapshot(self) -> IdTable | None:
        """Take one more part of the id snapshot the backend reads (a millisecond or two):
        the peers stored when the storage opened, less every one written since
        (``_touched`` holds them all until memory is filled). The id table in use now.
        """
        got = self.primitives.id_snapshot()
        early = self._early
        if got is True:
            self._snapshot = False
            self._snapshot_read = True  # every part: no need to read the peers' ids
            return early
        touched = self._touched
        if not isinstance(got, IdTable) or touched is None or not self.caching or self._shared:
            self._snapshot = False
            return early
        bounds = got.bounds()
        if bounds is not None:
            low, high = bounds
            for peer_id in touched:
                if low <= peer_id <= high:
                    got.remove(peer_id)
            for peer_id in self.pending.journal.peer_ids():
                if low <= peer_id <= high:
                    got.remove(peer_id)
        if early is None:
            self._early = early = got
        else:
            early.append(got)
        if len(early) == len(got):
            log.debug("answering id lookups from the snapshot, a part at a time")
        return early

    async def _read_early(self) -> None:
        """Read every stored peer's access hash and type in bulk, where the backend can
        (a few columns, no Python object per peer): id lookups answer from it at once,
        while memory fills (which reads far more, and builds far more, per peer).

        A peer written since memory began to fill, or with a write pending, is left out
        (and from now on each one written): the table holds only what is stored.
        """
        generation = self._generation
        early = IdTable()
        after: int | None = None
        try:
            while True:
                # A peer pending now, or written while the batch is read, may be read as
                # it was: left out. (One written later is taken out by its write.)
                written = self._early_written = self.pending.journal.peer_ids()
                columns = await self.primitives.peer_columns(after, _EARLY_BATCH)
                self._early_written = None
                if columns is None or generation != self._generation or not self.caching:
                    return
                early.extend(columns)
                for peer_id in written:
                    early.remove(peer_id)
                self._early = early
                if len(columns.ids) < _EARLY_BATCH:
                    return
                after = columns.ids[-1]
        finally:
            self._early_written = None

    async def _settle(self, built: _Built, touched: set[int]) -> None:
        """Lay the writes made before and during the load on ``built``, then use it."""
        journal, cache = self.pending.journal, self.cache
        whole = not isinstance(built, PeerIndex)
        if whole:
            loaded, names, phones = built  # type: ignore[misc]

            def lay(peer_id: int, entry: PeerChange | None) -> None:
                old = loaded.pop(peer_id, None)
                if entry is not None:
                    loaded[peer_id] = entry
                _reindex(names, phones, peer_id, old, entry)

        else:
            index: PeerIndex = built  # type: ignore[assignment]

            def lay(peer_id: int, entry: PeerChange | None) -> None:
                self._hot.pop(peer_id, None)
                if entry is None:
                    index.remove(peer_id)
                elif entry[KIND] == FULL:
                    index.put(peer_id, *_index_fields(entry))
                    if entry[NAMES]:
                        index.add_names(peer_id, entry[NAMES])
                else:  # usernames kept as stored: which, a write made meanwhile may hide
                    access_hash, kind, stamp, _, phone = _index_fields(entry)
                    index.put(peer_id, access_hash, kind, stamp, UNKNOWN_NAMES, phone)

        reads = 0
        for peer_id in journal.peer_ids():  # written before the load began
            if whole:
                stored = _peer_or_none(peer_id, loaded.get(peer_id))
            elif peer_id in touched:
                continue  # laid with the others written during the load, below
            else:
                reads += 1
                if reads % _READS_PER_TURN == 0:
                    await asyncio.sleep(0)  # a write meanwhile is in touched: laid below
                stored = await self.primitives.find_peer(peer_id, True)
            seen = journal.apply(peer_id, stored)
            lay(peer_id, None if seen is None else entry_of(seen))
        try:
            for _ in range(_LOAD_ROUNDS):
                again = []
                for peer_id in touched:
                    entry = cache.peek(peer_id)
                    # The cache holds what every write since it took the peer made of it;
                    # the index takes one whose usernames it does not know as unknown.
                    if entry is not None and (entry[KIND] == FULL or not whole):
                        lay(peer_id, entry)
                    else:
                        again.append(peer_id)
                touched.clear()
                if not again:
                    break  # and no await since the loop above: nothing written in between
                # Writers wait until memory is settled while these are read back (a step
                # per loop turn): a writer that never pauses would otherwise touch peers
                # faster than they are read. Only writes under way go on meanwhile.
                self._pause_writers()
                await self.pending.store()
                for k, peer_id in enumerate(again):
                    if k and k % _READS_PER_TURN == 0:
                        await asyncio.sleep(0)
                    seen = journal.apply(peer_id, await self.primitives.find_peer(peer_id, True))
                    lay(peer_id, None if seen is None else entry_of(seen))
            else:
                return
        finally:
            self._resume_writers()
        if not self.caching:
            return
        self._early = None
        self._partial = self._skip = None
        self._hot.clear()
        if whole:
            self.cache.fill(loaded)
            self._names, self._phones = names, phones
            self._limit = max(_SMALL, int(len(loaded) * _GROWTH))
            self.complete = True
            journal.indexed = False  # lookups ask memory now, never the journal
            log.debug("holding all %d peers in memory", len(loaded))
        else:
            index.complete = True
            self.index = index
            self._trim(min(self._cache_size, _INDEXED_CACHE))
            log.debug("holding all %d peers in the compact index", len(index))

    async def _build_index(self, expected: int) -> PeerIndex | None:
        """The compact index of every stored peer, read a batch at a time.

        Peers written meanwhile are read too, where the reading has not passed them: a
        writer adding peers past the last one read faster than batches are read would
        keep it going, so past the ``expected`` stored peers (and a batch more) writers
        wait until the index is settled.
        """
        index = PeerIndex()
        lane = Lane()
        holders = _holder_buckets()
        after: int | None = None
        read = 0
        generation = self._generation
        self._skip = skip = set()
        while True:
            # A peer pending now may be read as it was: the part built does not answer
            # for it (nor for one written from now on: its write adds it).
            skip |= self.pending.journal.peer_ids()
            rows = await self.primitives.peer_rows(after, _INDEX_BATCH)
            if rows is None:
                read_back = await self.primitives.read_peers(after, _INDEX_BATCH)
                rows = [_row_of(peer) for peer in read_back]
            if not self.caching or generation != self._generation:
                return None
            batch = await lane.run(functools.partial(_index_batch, rows))
            if batch is None:
                return None
            # Copied on this thread, where memory the id table gives up is reused.
            part, names = batch
            index.append(part)
            for k, (keys, ids) in enumerate(names):
                if keys:
                    holders[k][0].extend(keys)
                    holders[k][1].extend(ids)
            del batch, part, names
            if rows:
                self._partial, self._partial_last = index, rows[-1][0]
                if self._early is not None:
                    self._early.drop_through(rows[-1][0])
            if len(rows) < _INDEX_BATCH:
                await _sort_holders(index, holders, lane)
                return index
            after = rows[-1][0]
            read += len(rows)
            if read > expected + _INDEX_BATCH:
                self._pause_writers()

    def _to_index(self) -> None:
        """Memory held whole has outgrown its limit: move to the compact index, built
        off the event loop from what memory holds (every peer, as readers see it), while
        memory keeps answering whole; the writes made meanwhile are laid on it at once
        when it is done. No read of the backend: a writer that never pauses (an ingest)
        cannot keep the move from finishing."""
        if self._moving is not None:
            return  # under way
        held = len(self.cache)  # every stored peer and every one written since
        if self._take(held + _HEADROOM, index=True):
            log.debug("memory held whole outgrew %d peers: moving to the compact index", held)
            self._moving = set()
            snapshot = dict(self.cache._entries)
            self._loading = asyncio.get_running_loop().create_task(
                self._move_to_index(snapshot, self._generation)
            )
            return
        self._forget()
        self.cache.size = min(self._cache_size, _INDEXED_CACHE)
        self._touched = set()
        self._loading = asyncio.get_running_loop().create_task(self._load_index_later(held))

    async def _move_to_index(self, held: dict[int, PeerChange], generation: int) -> None:
        """Build the index of ``held`` off the loop, lay on it what was written since, use it."""
        try:
            index: PeerIndex | None = await Lane().run(functools.partial(_index_of, held))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # memory left whole (past its limit) is never wrong
            log.debug("building the compact index stopped: %s", exc)
            index = None
        moving = self._moving
        if generation != self._generation or not self.complete or moving is None:
            return  # memory was dropped meanwhile (and the index budget given back)
        self._moving = None
        if index is None:
            self._forget()
            self.cache.size = min(self._cache_size, _INDEXED_CACHE)
            return
        entries = self.cache._entries
        for peer_id in moving:
            entry = entries.get(peer_id)
            if entry is None:
                index.remove(peer_id)
            else:
                index.put(peer_id, *_index_fields(entry))
        self._generation += 1
        self.complete = False
        _let_go([self.cache.clear(), self._names, self._phones])
        self.cache.size = min(self._cache_size, _INDEXED_CACHE)
        self._names = {}
        self._phones = {}
        _Budget.left += self._share * _WHOLE_BYTES
        self._share = 0
        index.complete = True
        self.index = index
        log.debug("holding all %d peers in the compact index", len(index))

    async def _load_index_later(self, peers: int) -> None:
        touched = self._touched
        try:
            if touched is None:
                return
            # What is pending now is stored before the backend is read (writes from now
            # on are in touched): the read, in id order, would miss what it passed.
            await self.pending.store()
            if not self._take(peers + _HEADROOM, index=True):
                return  # bounded: the process's indexes are spent on other sessions
            built = await self._build_index(peers)
            if built is not None:
                await self._settle(built, touched)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # memory left bounded is slower, never wrong
            log.debug("building the compact index stopped: %s", exc)
        finally:
            self._touched = None
            self._partial = self._skip = None
            self._resume_writers()

    async def _read_batches(self) -> list[tuple[Any, ...]]:
        """Every stored peer as a row, from a backend that has no faster way."""
        rows: list[tuple[Any, ...]] = []
        after: int | None = None
        while True:
            batch = await self.primitives.read_peers(after, _LOAD_BATCH)
            rows.extend(_row_of(peer) for peer in batch)
            if len(batch) < _LOAD_BATCH:
                return rows
            after = batch[-1].id

    def _pause_writers(self) -> None:
        """Make writes wait until :meth:`_resume_writers` (memory is being settled)."""
        if self._settling is None:
            self._settling = asyncio.Event()

    def _resume_writers(self) -> None:
        settling, self._settling = self._settling, None
        if settling is not None:
            settling.set()

    def _trim(self, size: int) -> None:
        """Make the cache keep at most ``size`` peers; a large surplus is dropped a step per
        turn of the event loop (dropping a hundred thousand entries takes milliseconds)."""
        cache = self.cache
        if len(cache) <= size + _STEP:
            cache.resize(size)
            return
        generation = self._generation

        async def trim() -> None:
            while generation == self._generation and len(cache) > size + _STEP:
                cache.resize(len(cache) - _STEP)
                await asyncio.sleep(0)
            if generation == self._generation:
                cache.resize(size)

        cache.resize(len(cache))  # meanwhile a new entry drops the oldest
        _spawn(trim())

    def _take(self, peers: int, index: bool = False) -> bool:
        """Take room for ``peers`` more peers from the process's budget, held whole or
        (``index``) in the compact index."""
        cost = peers * (_INDEXED_BYTES if index else _WHOLE_BYTES)
        if cost > _Budget.left:
            return False
        _Budget.left -= cost
        if index:
            self._index_share += peers
        else:
            self._share += peers
        return True

    def _grown(self) -> None:
        """Memory held whole holds more peers than its share: take more from the budget,
        or (past its limit, or the budget spent) move to the compact index."""
        if len(self.cache) > self._limit or not self._take(max(_HEADROOM, len(self.cache) // 8)):
            self._to_index()


def _add_names(
    held: dict[int, PeerChange],
    add: Callable[[int, PeerChange], bool],
    slow: bool,
    peer_id: int,
    names: tuple[str, ...],
    now: int,
) -> bool:
    """Put a usernames change of ``peer_id`` in the pending layer whose peers are ``held``
    (``add``: its ``add_peer``, which ``slow`` asks for): what ``add`` would do, without
    its calls for the common case (the peer's row pending, or nothing)."""
    if not slow:
        old = held.get(peer_id)
        if old is None:
            held[peer_id] = (pending_.NAMES, 0, "", names, None, now)
            return True
        if old[KIND] <= PARTIAL:  # FULL or PARTIAL, joined as coalesce() joins them
            held[peer_id] = (FULL, old[HASH], old[TYPE], names, old[PHONE], old[STAMP])
            return True
    return add(peer_id, (pending_.NAMES, 0, "", names, None, now))


def _spawn(work: Coroutine[Any, Any, None]) -> None:
    task = asyncio.get_running_loop().create_task(work)
    _dropping.add(task)
    task.add_done_callback(_dropping.discard)


def _let_go(held: list[Any]) -> None:
    """Free these dicts a step per turn of the event loop, in the background (freeing a
    memory held whole, some hundred thousand tuples, takes milliseconds); at once when
    they are small or no loop runs."""
    if sum(len(mapping) for mapping in held) <= _STEP:
        return
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return

    async def drop() -> None:
        for mapping in held:
            while mapping:
                for _ in range(min(_STEP, len(mapping))):
                    mapping.popitem()
                await asyncio.sleep(0)

    _spawn(drop())


_Holders = dict[str, "int | list[int]"]
"""A username or phone to its holder, or (seldom) holders, oldest first: one int, not a
list of one, for most keys (a list is 72 bytes and an object the collector tracks)."""

_Whole = tuple[dict[int, PeerChange], _Holders, _Holders]
_Built = _Whole | PeerIndex


def _row_of(peer: Peer) -> tuple[Any, ...]:
    stamp = peer.last_update_on
    names = peer.usernames or ()
    return (peer.id, peer.access_hash, peer.type._value_, names, peer.phone_number, stamp or 0)


_Buckets: TypeAlias = "list[tuple[array[int], array[int]]]"
"""Usernames' (holder keys, holder ids) while the index is built, by the top byte of the
key: 12 bytes a holder, where a list of (key, id) held two Python ints (some 80 bytes,
and as much again to sort them: 1M holders took 130 MB at open)."""


def _holder_buckets() -> _Buckets:
    return [(array("i"), array("q")) for _ in range(256)]


_HOLDER_STEP: Final = 16
"""Buckets of holders sorted a thread hop at a time."""


async def _sort_holders(index: PeerIndex, holders: _Buckets, lane: Lane) -> None:
    """Give the index the holders of each username, sorted off the event loop a few
    buckets at a time, each copied into the index on the event loop's thread (see
    :meth:`PeerIndex.append`) once its bucket is let go of."""
    for start in range(0, len(holders), _HOLDER_STEP):
        step = holders[start : start + _HOLDER_STEP]
        holders[start : start + _HOLDER_STEP] = [(array("i"), array("q"))] * len(step)
        ordered = await lane.run(functools.partial(_sorted_buckets, step))
        del step
        for keys, ids in ordered:
            index.append_holders(keys, ids)


def _sorted_buckets(
    buckets: list[tuple[array[int], array[int]]],
) -> list[tuple[array[int], array[int]]]:
    ordered = []
    for k, (keys, ids) in enumerate(buckets):
        buckets[k] = (array("i"), array("q"))
        order = sorted(range(len(keys)), key=keys.__getitem__)  # stable: ids in order
        ordered.append((array("i", [keys[i] for i in order]), array("q", [ids[i] for i in order])))
    return ordered


def _index_batch(rows: list[tuple[Any, ...]]) -> tuple[PeerIndex, _Buckets] | None:
    """A batch of stored rows (in id order) as an index of its own, and the (name key, id)
    of each of their usernames by bucket; None for a row of the wrong types."""
    index = PeerIndex()
    holders = _holder_buckets()
    return (index, holders) if _load_index(index, rows, holders) else None


def _load_index(index: PeerIndex, rows: list[tuple[Any, ...]], holders: _Buckets) -> bool:
    """Append stored rows (in id order) to the index, and the (name key, id) of each of
    their usernames to ``holders``; False for a row of the wrong types."""
    out = []
    for peer_id, access_hash, kind, held, phone, stamp in rows:
        if not (
            type(peer_id) is int
            and type(access_hash) is int
            and type(kind) is str
            and type(stamp) is int
            and type(held) is tuple
            and (phone is None or type(phone) is str)
        ):
            return False
        if held:
            for name in held:
                if type(name) is not str:
                    return False
                key = holder_key(name_key(name))
                keys, ids = holders[(key >> 24) + 128]
                keys.append(key)
                ids.append(peer_id)
            fingerprint = names_fingerprint(held)
        else:
            fingerprint = NO_NAMES
        out.append((peer_id, access_hash, kind, stamp, fingerprint, phone_key(phone)))
    index.load(out)
    return True


def _index_of(held: dict[int, PeerChange]) -> PeerIndex:
    """The compact index of a memory held whole (every entry FULL). Runs off the loop."""
    rows = []
    for peer_id in sorted(held):
        _, access_hash, kind, names, phone, stamp = held[peer_id]
        rows.append(
            (peer_id, access_hash, kind, stamp, names_fingerprint(names or ()), phone_key(phone))
        )
    index = PeerIndex()
    index.load(rows)
    return index


def _index_fields(entry: PeerChange) -> tuple[int, str, int, int | None, int]:
    """What :meth:`PeerIndex.put` takes for an entry (names None: not known, kept)."""
    names = entry[NAMES] if entry[KIND] == FULL else None
    fingerprint = None if names is None else names_fingerprint(names)
    return entry[HASH], entry[TYPE], entry[STAMP], fingerprint, phone_key(entry[PHONE])


def _found_unchanged(
    found: tuple[int, str, int, int, int],
    change: PeerChange,
    explicit: bool,
    now: int,
    refresh: float,
) -> bool:
    """Whether writing ``change`` would store what the index says is stored already."""
    access_hash, kind, stamp, names, phone = found
    if access_hash != change[HASH] or kind != change[TYPE] or phone != phone_key(change[PHONE]):
        return False
    if change[NAMES] is not None and names != names_fingerprint(change[NAMES]):
        return False
    if explicit:
        return bool(stamp == change[STAMP])
    return stamp >= 0 and now - stamp < refresh


def _entry_of_found(found: tuple[int, str, int, int, int]) -> PeerChange:
    """A cache entry for a peer the index holds (usernames not known here)."""
    access_hash, kind, stamp, _, key = found
    return (PARTIAL, access_hash, kind, None, str(key)[1:] if key else None, stamp)


def _build(rows: list[tuple[Any, ...]]) -> _Whole | None:
    """Memory from stored rows: the peers, and the holders of each username and phone.

    Runs off the event loop. None if a row holds a value of the wrong type (a damaged
    file: the lookup that meets it says what is wrong).
    """
    loaded: dict[int, PeerChange] = {}
    names: _Holders = {}
    phones: _Holders = {}
    for peer_id, access_hash, kind, held, phone, stamp in rows:
        if not (
            type(peer_id) is int
            and type(access_hash) is int
            and type(kind) is str
            and type(stamp) is int
            and type(held) is tuple
        ):
            return None
        loaded[peer_id] = (FULL, access_hash, kind, held, phone, stamp)
        for name in held:
            if type(name) is not str:
                return None
            _add(names, name, peer_id)
        if phone is not None:
            if type(phone) is not str:
                return None
            _add(phones, phone, peer_id)
    return loaded, names, phones


def _reindex(
    names: _Holders,
    phones: _Holders,
    peer_id: int,
    old: PeerChange | None,
    new: PeerChange | None,
) -> None:
    """Keep the username and phone maps of a complete memory in step with one peer."""
    if old is not None:
        for name in old[NAMES] or ():
            _drop(names, name, peer_id)
        if old[PHONE]:
            _drop(phones, old[PHONE], peer_id)
    if new is not None:
        for name in new[NAMES] or ():
            _add(names, name, peer_id)
        if new[PHONE]:
            _add(phones, new[PHONE], peer_id)


def _add(index: _Holders, key: str, peer_id: int) -> None:
    """Make ``peer_id`` the newest holder of ``key``."""
    ids = index.get(key)
    if ids is None:
        index[key] = peer_id
    elif type(ids) is int:
        index[key] = [ids, peer_id]
    else:
        ids.append(peer_id)  # type: ignore[union-attr]


def _drop(index: _Holders, key: str, peer_id: int) -> None:
    ids = index.get(key)
    if ids is None:
        return
    if type(ids) is int:
        if ids == peer_id:
            del index[key]
        return
    assert isinstance(ids, list)
    if peer_id in ids:
        ids.remove(peer_id)
    if len(ids) == 1:
        index[key] = ids[0]
    elif not ids:
        del index[key]


def _unchanged(
    cached: PeerChange, change: PeerChange, explicit: bool, now: int, refresh: float
) -> bool:
    """Whether writing ``change`` would store what ``cached`` says is stored already."""
    if cached[HASH] != change[HASH] or cached[TYPE] != change[TYPE]:
        return False
    if cached[PHONE] != change[PHONE]:
        return False
    names = change[NAMES]
    if names is not None and (cached[KIND] != FULL or names != cached[NAMES]):
        return False
    if explicit:
        return bool(cached[STAMP] == change[STAMP])
    return now - cached[STAMP] < refresh


def _holds(peer: Peer, index: str, key: str) -> bool:
    if index == "names":
        return peer.usernames is not None and key in peer.usernames
    return peer.phone_number == key
