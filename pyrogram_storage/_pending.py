"""Writes that returned but are not stored yet: coalesced per key, overlaid on every read.

Peer, username and update-state writes go into the *pending* layer of a
:class:`Journal`. A flush moves it to the *older* layer, hands it to the backend as
one :class:`Changes` batch, and drops it once stored (a batch that failed stays there,
to go first again). Both layers answer reads meanwhile, so a write is visible the
moment its call returns. Each key keeps only its last change (several writes of one
peer or one update state between two flushes cost one row), and batches are stored
in call order, each holding every write up to some point, so what is stored is always
a prefix of the writes.

:class:`PendingWrites` owns the journal and decides when to store: at once
(``commit_interval=0``), within ``commit_interval`` seconds, or as soon as a batch
is full, one batch in flight at a time, retrying a failed one before newer writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from .errors import BackendError, StorageClosedError
from .types import Peer, PeerType, SessionData, UpdateState

__all__ = [
    "DELETED",
    "FULL",
    "MERGE",
    "NAMES",
    "PARTIAL",
    "REPLACE",
    "Changes",
    "Journal",
    "PeerChange",
    "PeerRow",
    "PendingWrites",
    "StateChange",
    "apply_change",
    "make_peer",
]

log = logging.getLogger("pyrogram_storage")

PENDING_LIMIT = 1000
"""Keys in the pending batch past which a write hands it over at once (it flushes)."""

# Kinds of peer change.
FULL: Final = 0  # every field, usernames included
PARTIAL: Final = 1  # every field but the usernames, which stay as stored
NAMES: Final = 2  # only the usernames; the peer's row is not touched (and may not exist)
DELETED: Final = 3

PeerChange = tuple[int, int, str, "tuple[str, ...] | None", "str | None", int]
"""kind, access hash, type name, usernames, phone, last update."""

# Kinds of update-state change.
MERGE: Final = 0  # None fields keep the stored values
REPLACE: Final = 1
STATE_DELETED: Final = 2

StateChange = tuple[int, "int | None", "int | None", "int | None", "int | None"]
"""kind, pts, qts, date, seq."""

_KIND: Final = 0
_HASH: Final = 1
_TYPE: Final = 2
_NAMES: Final = 3
_PHONE: Final = 4
_STAMP: Final = 5


class PeerRow(NamedTuple):
    """A peer as a batch of :class:`Changes` carries it: the fields of :class:`Peer`.

    A tuple, built once per stored write; read it like a :class:`Peer`
    (``row.id``, ``row.usernames``...) or by position.
    """

    id: int
    access_hash: int
    type: PeerType
    usernames: tuple[str, ...] | None
    phone_number: str | None
    last_update_on: int

    @property
    def username(self) -> str | None:
        """The primary username, if any."""
        return self.usernames[0] if self.usernames else None

    def replace(self, **changes: Any) -> PeerRow:
        """Return a copy with ``changes`` applied (as :meth:`Peer.replace`)."""
        return self._replace(**changes)


@dataclass(eq=False)
class Changes:
    """One batch of writes for a backend to store atomically, in this order.

    1. ``deleted_peers``: remove these peers and their usernames;
    2. ``peers``: insert or replace (:class:`~pyrogram_storage._pending.PeerRow`); a
       peer whose ``usernames`` is None keeps the usernames stored for it (or gets
       none, if it is new);
    3. ``usernames``: replace the usernames of these ids (rows stamped ``stamp``),
       without touching the rest of their peers; an id that is not stored is ignored;
    4. ``deleted_states``, then ``states`` (stored whole) and ``merged_states``
       (a None field keeps the stored value);
    5. ``session``: when not None, the whole session; ``session_fields`` names the
       fields that changed.

    Peers' usernames are lowercased, without ``@``; phones hold digits only; every
    peer has its ``last_update_on``. A key appears in one list of each kind only.
    ``new_peers`` names peers of ``peers`` the writer knows are not stored yet (it
    keeps an index of every stored peer): a backend may insert them without looking
    for an old row or old usernames first.
    """

    deleted_peers: list[int] = field(default_factory=list)
    peers: list[PeerRow] = field(default_factory=list)
    usernames: list[tuple[int, tuple[str, ...]]] = field(default_factory=list)
    deleted_states: list[int] = field(default_factory=list)
    states: list[UpdateState] = field(default_factory=list)
    merged_states: list[UpdateState] = field(default_factory=list)
    session: SessionData | None = None
    session_fields: frozenset[str] = frozenset()
    stamp: int = 0
    new_peers: frozenset[int] = frozenset()

    def __bool__(self) -> bool:
        return bool(
            self.deleted_peers
            or self.peers
            or self.usernames
            or self.deleted_states
            or self.states
            or self.merged_states
            or self.session is not None
        )


def make_peer(peer_id: int, change: PeerChange, usernames: tuple[str, ...] | None) -> Peer:
    return Peer(
        peer_id,
        change[_HASH],
        PeerType.of(change[_TYPE]),
        usernames,
        change[_PHONE],
        change[_STAMP],
    )


def _row(peer_id: int, change: PeerChange, usernames: tuple[str, ...] | None) -> PeerRow:
    kind = _TYPES.get(change[_TYPE]) or PeerType.of(change[_TYPE])
    fields = (peer_id, change[_HASH], kind, usernames)
    return _new_row(PeerRow, (*fields, change[_PHONE], change[_STAMP]))


_TYPES = {kind.value: kind for kind in PeerType}


_new_row = tuple.__new__


def coalesce(old: PeerChange | None, new: PeerChange) -> PeerChange | None:
    """The one change that has the effect of ``old`` followed by ``new``.

    None when no single change has it: usernames set for a peer whose storage is not
    known, then the peer written keeping its usernames (whether they were kept depends
    on whether the peer was stored already). The caller stores ``old`` first.
    """
    if old is None:
        return new
    kind = new[_KIND]
    if kind in (FULL, DELETED):
        return new
    previous = old[_KIND]
    if kind == PARTIAL:
        if previous == PARTIAL:
            return new
        if previous == NAMES:
            return None
        names = () if previous == DELETED else old[_NAMES]
        return (FULL, new[_HASH], new[_TYPE], names, new[_PHONE], new[_STAMP])
    # NAMES: ignored for a peer that is not stored, kept for one that is
    if previous == NAMES:
        return new
    if previous == DELETED:
        return old
    return (FULL, old[_HASH], old[_TYPE], new[_NAMES], old[_PHONE], old[_STAMP])


def apply_change(peer_id: int, stored: Peer | None, change: PeerChange) -> Peer | None:
    """Return what a reader sees once ``change`` applies on top of ``stored``."""
    kind = change[_KIND]
    if kind == FULL:
        return make_peer(peer_id, change, change[_NAMES])
    if kind == PARTIAL:
        return make_peer(peer_id, change, () if stored is None else stored.usernames)
    if kind == NAMES and stored is not None:
        return stored.replace(usernames=change[_NAMES])
    return None


def _coalesce_state(old: StateChange | None, new: StateChange) -> StateChange:
    if old is None or new[0] != MERGE:
        return new
    if old[0] == STATE_DELETED:
        return (REPLACE, new[1], new[2], new[3], new[4])
    return (
        old[0],
        old[1] if new[1] is None else new[1],
        old[2] if new[2] is None else new[2],
        old[3] if new[3] is None else new[3],
        old[4] if new[4] is None else new[4],
    )


def _index_keys(change: PeerChange) -> tuple[Sequence[str], str | None]:
    """The usernames and the phone a change gives its peer, as a layer indexes them."""
    kind = change[_KIND]
    names = (change[_NAMES] or ()) if kind in (FULL, NAMES) else ()
    phone = change[_PHONE] if kind in (FULL, PARTIAL) else None
    return names, (phone or None)


def _drop(index: dict[str, list[int]], key: str, peer_id: int) -> None:
    ids = [known for known in index.get(key, ()) if known != peer_id]
    if ids:
        index[key] = ids
    else:
        index.pop(key, None)


class _Layer:
    __slots__ = ("_indexed", "_names", "_phones", "fresh", "partial_stamp", "peers", "states")

    def __init__(self, indexed: bool = True) -> None:
        self.peers: dict[int, PeerChange] = {}
        self.fresh: set[int] = set()  # peers known not to be stored when first written here
        self.states: dict[int, StateChange] = {}
        # username / phone -> peer ids: built when a lookup needs them, not on every
        # write (the clients' writes far outnumber their username lookups)
        self._names: dict[str, list[int]] = {}
        self._phones: dict[str, list[int]] = {}
        self._indexed = indexed  # else built by the first lookup that needs it
        self.partial_stamp = -(2**63)  # newest write that kept a peer's usernames

    def __len__(self) -> int:
        return len(self.peers) + len(self.states)

    def add_peer(self, peer_id: int, change: PeerChange, fresh: bool = False) -> bool:
        """Add ``change``; False (and nothing added) when it cannot join this layer.

        ``fresh``: the writer knows the peer is not stored (nor written in an older layer).
        """
        peers = self.peers
        old = peers.get(peer_id)
        if old is None:
            peers[peer_id] = change
            if fresh:
                self.fresh.add(peer_id)
            if self._indexed:  # a new key comes last, as a rebuild would put it
                names, phone = _index_keys(change)
                for name in names:
                    self._names.setdefault(name, []).append(peer_id)
                if phone:
                    self._phones.setdefault(phone, []).append(peer_id)
        else:
            joined = coalesce(old, change)
            if joined is None:
                return False
            peers[peer_id] = joined
            if self._indexed:
                self._reindex(peer_id, old, joined)
        if change[_KIND] == PARTIAL and change[_STAMP] > self.partial_stamp:
            self.partial_stamp = change[_STAMP]
        return True

    def _reindex(self, peer_id: int, old: PeerChange, new: PeerChange) -> None:
        """Keep the built index as a rebuild would make it: each key's peers in write order."""
        old_names, old_phone = _index_keys(old)
        new_names, new_phone = _index_keys(new)
        if old_names == new_names and old_phone == new_phone:
            return
        if len(set(new_names)) != len(new_names) or len(set(old_names)) != len(old_names):
            self._indexed = False  # a repeated name: rebuilt when a lookup needs it
            return
        for name in old_names:
            if name not in new_names:
                _drop(self._names, name, peer_id)
        for name in new_names:
            if name not in old_names:
                self._insert(self._names, name, peer_id)
        if old_phone != new_phone:
            if old_phone:
                _drop(self._phones, old_phone, peer_id)
            if new_phone:
                self._insert(self._phones, new_phone, peer_id)

    def _insert(self, index: dict[str, list[int]], key: str, peer_id: int) -> None:
        ids = index.setdefault(key, [])
        ids.append(peer_id)
        if len(ids) > 1:  # seldom: two pending peers share a username or a phone
            order = {known: k for k, known in enumerate(self.peers)}
            ids.sort(key=order.__getitem__)

    def index(self, which: str) -> dict[str, list[int]]:
        """The peers this layer gives each username (``"names"``) or phone (``"phones"``)."""
        if not self._indexed:
            names: dict[str, list[int]] = {}
            phones: dict[str, list[int]] = {}
            for peer_id, change in self.peers.items():
                held, phone = _index_keys(change)
                for name in held:
                    names.setdefault(name, []).append(peer_id)
                if phone:
                    phones.setdefault(phone, []).append(peer_id)
            self._names, self._phones, self._indexed = names, phones, True
        return self._names if which == "names" else self._phones

    def add_state(self, state_id: int, change: StateChange) -> None:
        self.states[state_id] = _coalesce_state(self.states.get(state_id), change)

    def to_changes(self, stamp: int) -> Changes:
        changes = Changes(stamp=stamp, new_peers=frozenset(self.fresh))
        rows = changes.peers
        types, new_row = _TYPES, _new_row
        for peer_id, change in self.peers.items():  # _row(), inlined: once a peer a flush
            kind, access_hash, type_name, names, phone, last = change
            if kind <= PARTIAL:  # FULL or PARTIAL
                peer_type = types.get(type_name) or PeerType.of(type_name)
                if kind:  # PARTIAL: the stored usernames stay
                    names = None
                rows.append(new_row(PeerRow, (peer_id, access_hash, peer_type, names, phone, last)))
            elif kind == DELETED:
                changes.deleted_peers.append(peer_id)
            else:
                changes.usernames.append((peer_id, names or ()))
        for state_id, (kind, *values) in self.states.items():
            if kind == STATE_DELETED:
                changes.deleted_states.append(state_id)
            elif kind == REPLACE:
                changes.states.append(UpdateState(state_id, *values))
            else:
                changes.merged_states.append(UpdateState(state_id, *values))
        return changes


class Journal:
    """The pending layer and the older one (in flight, or failed and to be retried)."""

    __slots__ = ("_older", "_older_in_flight", "_pending", "indexed")

    def __init__(self) -> None:
        self.indexed = False
        """Whether new layers keep their username and phone index from their first write;
        else (always, today) the first lookup that asks builds it, and the writes after
        it keep it: a bulk write (an ingest) between two lookups by username costs no
        index work, and the peer engine's complete memory never asks."""
        self._pending = _Layer(False)
        self._older: _Layer | None = None
        self._older_in_flight = False

    def __len__(self) -> int:
        """Keys waiting in the pending layer."""
        return len(self._pending)

    @property
    def full(self) -> bool:
        """Whether the pending batch holds :data:`PENDING_LIMIT` keys or more."""
        pending = self._pending
        return len(pending.peers) + len(pending.states) >= PENDING_LIMIT

    @property
    def waiting(self) -> bool:
        """Whether a batch waits to be stored (pending, or failed before)."""
        return bool(self._pending) or (self._older is not None and not self._older_in_flight)

    @property
    def busy_older(self) -> bool:
        """Whether a batch is in flight or waits for a retry (the pending one goes next)."""
        return self._older is not None

    @property
    def busy(self) -> bool:
        """Whether anything is pending, in flight or waiting for a retry."""
        return bool(self._pending) or self._older is not None

    # -- writing ---------------------------------------------------------------------------

    def can_add(self, peer_id: int, change: PeerChange) -> bool:
        """Whether ``change`` joins the pending batch (else store that batch first)."""
        old = self._pending.peers.get(peer_id)
        return not (old is not None and old[_KIND] == NAMES and change[_KIND] == PARTIAL)

    def add_peer(self, peer_id: int, change: PeerChange, fresh: bool = False) -> bool:
        """Add a write; False (nothing added) when the pending batch must be stored first.

        ``fresh``: the writer knows the peer is stored nowhere yet, not even pending.
        """
        return self._pending.add_peer(peer_id, change, fresh)

    def add_state(self, state_id: int, change: StateChange) -> None:
        self._pending.add_state(state_id, change)

    def merge_state(
        self, state_id: int, pts: int | None, qts: int | None, date: int | None, seq: int | None
    ) -> None:
        """``add_state(state_id, (MERGE, pts, qts, date, seq))`` of checked values: a
        client writes its state twice an update, so this is one slot assignment."""
        states = self._pending.states
        old = states.get(state_id)
        if old is None:
            states[state_id] = (MERGE, pts, qts, date, seq)
        elif old[0] == STATE_DELETED:
            states[state_id] = (REPLACE, pts, qts, date, seq)
        else:
            states[state_id] = (
                old[0],
                old[1] if pts is None else pts,
                old[2] if qts is None else qts,
                old[3] if date is None else date,
                old[4] if seq is None else seq,
            )

    def take(self, stamp: int) -> Changes:
        """Move the next batch in flight and return it: a failed one first, else the pending."""
        if self._older_in_flight:
            raise RuntimeError("a batch is already in flight")
        if self._older is None:
            self._older, self._pending = self._pending, _Layer(self.indexed)
        self._older_in_flight = True
        return self._older.to_changes(stamp)

    def stored(self) -> None:
        """The batch in flight is stored: forget it."""
        self._older = None
        self._older_in_flight = False

    def failed(self) -> None:
        """The batch in flight could not be stored: it goes first again, before the pending."""
        self._older_in_flight = False

    def clear(self) -> None:
        self._pending = _Layer(self.indexed)
        self._older = None
        self._older_in_flight = False

    # -- reading ---------------------------------------------------------------------------

    def peer(self, peer_id: int) -> PeerChange | None:
        """The one change readers apply on top of the stored peer, if it is one change.

        When it is not (usernames then a write keeping them, across the two layers),
        this is the pending change alone, never FULL or DELETED: readers then ask the
        backend and :meth:`apply` both in turn.
        """
        pending = self._pending.peers.get(peer_id)
        older_layer = self._older
        if older_layer is None:
            return pending
        older = older_layer.peers.get(peer_id)
        if older is None:
            return pending
        if pending is None:
            return older
        joined = coalesce(older, pending)
        return pending if joined is None else joined

    def apply(self, peer_id: int, stored: Peer | None) -> Peer | None:
        """What a reader sees of ``peer_id``, given what the backend has stored."""
        older_layer = self._older
        if older_layer is not None:
            older = older_layer.peers.get(peer_id)
            if older is not None:
                stored = apply_change(peer_id, stored, older)
        pending = self._pending.peers.get(peer_id)
        return stored if pending is None else apply_change(peer_id, stored, pending)

    def state(self, state_id: int) -> StateChange | None:
        pending = self._pending.states.get(state_id)
        older_layer = self._older
        older = None if older_layer is None else older_layer.states.get(state_id)
        if older is None:
            return pending
        return older if pending is None else _coalesce_state(older, pending)

    def peer_ids(self) -> set[int]:
        """The peers a pending or in-flight write names."""
        ids = set(self._pending.peers)
        if self._older is not None:
            ids.update(self._older.peers)
        return ids

    def state_ids(self) -> set[int]:
        ids = set(self._pending.states)
        if self._older is not None:
            ids.update(self._older.states)
        return ids

    def state_changes(self, wanted: Collection[int] | None) -> dict[int, StateChange]:
        """The pending and in-flight changes of the update states (those of ``wanted``),
        as they are now: a reader takes them before it reads the stored states, since a
        write that commits during the read leaves the journal before the read returns."""
        ids = self.state_ids()
        if wanted is not None:
            ids &= set(wanted)
        changes = {}
        for state_id in ids:
            change = self.state(state_id)
            if change is not None:
                changes[state_id] = change
        return changes

    @staticmethod
    def states_seen(
        stored: dict[int, UpdateState],
        wanted: Collection[int] | None,
        changes: dict[int, StateChange],
    ) -> dict[int, UpdateState]:
        """The update states readers see: ``stored`` (those of ``wanted``) with the
        ``changes`` (from :meth:`state_changes`, taken before the read) on top."""
        if wanted is not None:
            stored = {key: value for key, value in stored.items() if key in wanted}
        for state_id, change in changes.items():
            kind, *values = change
            if kind == STATE_DELETED:
                stored.pop(state_id, None)
            elif kind == REPLACE or state_id not in stored:
                stored[state_id] = UpdateState(state_id, *values)
            else:
                old = stored[state_id]
                pts, qts, date, seq = (
                    o if n is None else n
                    for n, o in zip(values, (old.pts, old.qts, old.date, old.seq), strict=True)
                )
                stored[state_id] = UpdateState(state_id, pts, qts, date, seq)
        return stored

    def holders(self, key: str, index: str) -> list[int]:
        """Peers a pending or in-flight write gave this username (``index="names"``) or
        phone (``"phones"``); readers check each against what they see of it."""
        found = list(self._pending.index(index).get(key, ()))
        if self._older is not None:
            found.extend(self._older.index(index).get(key, ()))
        return found

    def keeps_usernames_since(self, stamp: int | None) -> bool:
        """Whether a pending or in-flight write newer than ``stamp`` kept its peer's usernames."""
        floor = stamp if stamp is not None else -(2**63)
        return any(
            layer is not None and layer.partial_stamp > floor
            for layer in (self._older, self._pending)
        )

    def kept_usernames_since(
        self, stamp: int | None, among: Collection[int] | None = None
    ) -> list[int]:
        """Peers whose pending or in-flight write newer than ``stamp`` kept their usernames.

        Such a write makes its peer the newest holder of usernames this journal does
        not know it has: a lookup by username must check those peers too. ``among``:
        only these peers are asked about (the stored holders of a name, a few), in the
        order of the writes, as without it.
        """
        floor = stamp if stamp is not None else -(2**63)
        found: list[int] = []
        for layer in (self._older, self._pending):
            if layer is None or layer.partial_stamp <= floor:
                continue
            peers = layer.peers
            if among is None:
                found.extend(
                    peer_id
                    for peer_id, change in peers.items()
                    if change[_KIND] == PARTIAL and change[_STAMP] > floor
                )
                continue
            kept = [
                peer_id
                for peer_id in among
                if (change := peers.get(peer_id)) is not None
                and change[_KIND] == PARTIAL
                and change[_STAMP] > floor
            ]
            if len(kept) > 1:
                order = {peer_id: k for k, peer_id in enumerate(peers)}
                kept.sort(key=order.__getitem__)
            found.extend(kept)
        return found

    def replaces(self, peer_id: int, what: str) -> bool:
        """Whether a pending or in-flight write replaced the peer's usernames or phone."""
        change = self.peer(peer_id)
        if change is None:
            return False
        kind = change[_KIND]
        if kind in (DELETED, FULL):
            return True
        return (kind == NAMES) if what == "names" else (kind == PARTIAL)


class PendingWrites:
    """The journal, and when its batches are stored.

    After writes enter :attr:`journal`, :meth:`written` stores them at once
    (``commit_interval`` 0), or starts a timer that stores them within
    ``commit_interval`` seconds, or, once the pending batch is full, hands it over at
    once. One batch is stored at a time, under the store lock; one that failed is
    retried first, every second, and :attr:`failure` says why meanwhile.

    :param store: stores one batch (the backend's ``_apply``, errors translated).
    :param lock: the store lock of the running event loop.
    :param is_open: whether the owner is open (a timer firing after close stores nothing).
    :param changed: called when :attr:`failure` is set or cleared.
    :param owner: the owner's repr, for log lines.
    """

    __slots__ = (
        "_changed",
        "_is_open",
        "_lock",
        "_owner",
        "_store",
        "_task",
        "_wake",
        "commit_interval",
        "failure",
        "journal",
    )

    def __init__(
        self,
        store: Callable[[Changes], Awaitable[None]],
        commit_interval: float,
        *,
        lock: Callable[[], asyncio.Lock],
        is_open: Callable[[], bool],
        changed: Callable[[], None],
        owner: Callable[[], str],
    ) -> None:
        self.journal = Journal()
        self.commit_interval = commit_interval
        self.failure: BaseException | None = None
        self._store = store
        self._lock = lock
        self._is_open = is_open
        self._changed = changed
        self._owner = owner
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Future[None] | None = None

    async def written(self) -> None:
        """Writes entered the journal: store them now, soon, or once the batch is full."""
        if self.commit_interval == 0:
            await self.store()
        elif self.journal.full:
            task = self._task
            if task is None:
                self._start(0)  # and go on writing the next batch meanwhile
                return
            self._wake_up()
            if self.journal.busy_older:
                await asyncio.wait([task])  # the writer waits: two batches at most, never more
            else:
                await asyncio.sleep(0)  # the timer takes the batch; we write the next meanwhile
        elif self._task is None:
            self._start(self.commit_interval)

    def soon(self) -> bool:
        """Whether the next write may enter the journal and return without awaiting
        anything (:meth:`written` would not wait): the timer is then running. False
        when ``commit_interval`` is 0 or the pending batch is full: call
        :meth:`written` after the write."""
        if self.commit_interval == 0:
            return False
        pending = self.journal._pending
        if len(pending.peers) + len(pending.states) >= PENDING_LIMIT:
            return False
        if self._task is None:
            self._start(self.commit_interval)
        return True

    def room(self, keys: int) -> bool:
        """Whether a batch of writes of up to ``keys`` keys may enter the journal and
        return without awaiting anything, as :meth:`written` would after them: the
        pending batch has room for them, or no other batch is in flight (then
        :meth:`handed` hands a full one over at once). False when ``commit_interval``
        is 0, or a batch is in flight and this one would fill the pending one: write
        through the awaiting path. Starts the timer."""
        if self.commit_interval == 0:
            return False
        journal = self.journal
        pending = journal._pending
        if len(pending.peers) + len(pending.states) + keys > PENDING_LIMIT and (journal.busy_older):
            return False
        if self._task is None:
            self._start(self.commit_interval)
        return True

    def handed(self) -> None:
        """After writes :meth:`room` let in: a full pending batch goes to be stored now
        (what :meth:`written` does without waiting, no other batch being in flight)."""
        if self.journal.full:
            if self._task is None:
                self._start(0)
            else:
                self._wake_up()

    async def store(
        self,
        session: Callable[[], tuple[SessionData, frozenset[str]]] | None = None,
        *,
        explain: bool = True,
    ) -> tuple[SessionData, frozenset[str]] | None:
        """Store every batch waiting, in order.

        With ``explain``, a :class:`BackendError` raised says what was not stored and
        that the writes stay pending to be retried (the caller's error); without, it is
        the backend's own (the timer's, and close()'s, which says they are lost).

        :param session: called under the store lock; the session it returns is stored
            with the last batch (and returned once stored).
        """
        async with self._lock():
            fields = None if session is None else session()
            try:
                await self._store_waiting(fields)
            except BackendError as exc:
                if not explain:
                    raise
                raise self._not_stored(exc, fields is not None) from (exc.__cause__ or exc)
            return fields

    async def stop(self) -> None:
        """Let the timer's batch be stored (close() stores the rest after it)."""
        task = self._task
        if task is None:
            return
        self._wake_up()
        await asyncio.wait([task])

    def clear(self) -> None:
        self.journal.clear()
        self.failure = None

    def failed_error(self) -> BackendError:
        """The error a write raises while an earlier batch cannot be stored."""
        return BackendError(
            f"{self._owner()}: earlier writes could not be stored ({self.failure}); they "
            "stay pending and are retried by the next flush(), save() or write"
        )

    def _not_stored(self, exc: BackendError, session: bool) -> BackendError:
        """``exc`` (same class), saying what was not stored and what becomes of it."""
        told = []
        if session:
            told.append("the session change is not known to be stored (make it again)")
        if self.journal.busy:
            told.append(
                "the peer, username and update-state writes made so far are not stored "
                "yet: they stay pending and are retried by the next write, flush(), save() "
                "or close()"
            )
        if not told:
            return exc
        return type(exc)(f"{exc}; " + "; ".join(told))

    # -- the timer ----------------------------------------------------------------------------

    def _start(self, delay: float) -> None:
        loop = asyncio.get_running_loop()
        wake = self._wake = loop.create_future()
        task = loop.create_task(self._later(delay, wake))
        task.add_done_callback(self._done)
        self._task = task

    def _wake_up(self) -> None:
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    async def _later(self, delay: float, wake: asyncio.Future[None]) -> None:
        """Store the pending batch after ``delay`` seconds, or once woken."""
        try:
            if delay > 0 and not wake.done():
                await asyncio.wait([wake], timeout=delay)
        except asyncio.CancelledError:
            # The event loop is shutting down (asyncio.run ending with the storage still
            # open): store what is pending before going.
            if self._is_open():
                with contextlib.suppress(Exception):
                    await self.store()
            raise
        try:
            await self.store(explain=False)
        except StorageClosedError:
            pass
        except Exception as exc:
            if self.failure is None:
                log.warning(
                    "%s: could not store pending writes, will retry: %s", self._owner(), exc
                )
            self.failure = exc
            self._changed()

    def _done(self, task: asyncio.Task[None]) -> None:
        if self._task is task:
            self._task = self._wake = None
        if task.cancelled() or not self._is_open() or not self.journal.busy:
            return
        if self._task is None:
            retry = self.failure is not None
            self._start(max(1.0, self.commit_interval) if retry else self.commit_interval)

    # -- storing ------------------------------------------------------------------------------

    async def _store_waiting(self, session: tuple[SessionData, frozenset[str]] | None) -> None:
        """Store the waiting batches in order, ``session`` with the last (store lock held)."""
        journal = self.journal
        while True:
            now = int(time.time())
            took = journal.waiting
            batch = journal.take(now) if took else Changes(stamp=now)
            last = not journal.waiting
            if last and session is not None:
                batch.session, batch.session_fields = session
            if not batch:
                if took:
                    journal.stored()
                return
            try:
                await self._store(batch)
            except BaseException:
                if took:
                    journal.failed()
                raise
            if took:
                journal.stored()
            if self.failure is not None:
                self.failure = None
                self._changed()
            if last:
                return
