"""Writes that returned but are not stored yet: coalesced per key, overlaid on every read.

Peer, username and update-state writes go into the *pending* layer of a
:class:`Journal`. A flush moves it to the *in-flight* layer, hands it to the backend
as one :class:`~pyrogram_storage.base.Changes` batch, and drops it once stored. Both
layers answer reads in the meantime, so a write is visible the moment its call
returns. Each key keeps only its last change (several writes of one peer or one
update state between two flushes cost one row), and a batch always holds every
write up to some point in call order, so what is stored is a prefix of the writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

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
    "StateChange",
    "apply_change",
    "make_peer",
]

# Kinds of peer change.
FULL: Final = 0  # every field, usernames included
PARTIAL: Final = 1  # every field but the usernames, which stay as stored
NAMES: Final = 2  # only the usernames; the peer's row is not touched (and may not exist)
DELETED: Final = 3

PeerChange = tuple[int, int, str, "tuple[str, ...] | None", "str | None", int, bool]
"""kind, access hash, type name, usernames, phone, last update, delete first."""

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
_DELETE_FIRST: Final = 6
_KNOWN_TYPES = {kind.value: kind for kind in PeerType}


@dataclass(eq=False)
class Changes:
    """One batch of writes for a backend to store atomically, in this order.

    1. ``deleted_peers``: remove these peers and their usernames;
    2. ``peers``: insert or replace; a peer whose ``usernames`` is None keeps the
       usernames stored for it (or gets none, if it is new);
    3. ``usernames``: replace the usernames of these ids (rows stamped ``stamp``),
       without touching their peers (which may not exist);
    4. ``deleted_states``, then ``states`` (stored whole) and ``merged_states``
       (a None field keeps the stored value);
    5. ``session``: when not None, the whole session; ``session_fields`` names the
       fields that changed.

    Peers' usernames are lowercased, without ``@``; phones hold digits only; every
    peer has its ``last_update_on``. A key appears in one list of each kind only.
    """

    deleted_peers: list[int] = field(default_factory=list)
    peers: list[Peer] = field(default_factory=list)
    usernames: list[tuple[int, tuple[str, ...]]] = field(default_factory=list)
    deleted_states: list[int] = field(default_factory=list)
    states: list[UpdateState] = field(default_factory=list)
    merged_states: list[UpdateState] = field(default_factory=list)
    session: SessionData | None = None
    session_fields: frozenset[str] = frozenset()
    stamp: int = 0

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
    kind = change[_TYPE]
    return Peer(
        peer_id,
        change[_HASH],
        _KNOWN_TYPES.get(kind) or PeerType(kind),
        usernames,
        change[_PHONE],
        change[_STAMP],
    )


def coalesce(old: PeerChange | None, new: PeerChange) -> PeerChange:
    """The one change that has the effect of ``old`` followed by ``new``."""
    if old is None:
        return new
    kind = new[_KIND]
    if kind in (FULL, DELETED):
        return new
    previous = old[_KIND]
    if kind == PARTIAL:
        if previous == PARTIAL:
            return new
        names = () if previous == DELETED else old[_NAMES]
        return (FULL, *new[_HASH:_NAMES], names, *new[_PHONE:_DELETE_FIRST], False)
    # NAMES
    if previous == NAMES:
        return (*new[:_DELETE_FIRST], old[_DELETE_FIRST])
    if previous == DELETED:
        return (*new[:_DELETE_FIRST], True)
    return (FULL, *old[_HASH:_NAMES], new[_NAMES], *old[_PHONE:_DELETE_FIRST], False)


def apply_change(peer_id: int, stored: Peer | None, change: PeerChange) -> Peer | None:
    """Return what a reader sees once ``change`` applies on top of ``stored``."""
    kind = change[_KIND]
    if kind == FULL:
        return make_peer(peer_id, change, change[_NAMES])
    if kind == PARTIAL:
        return make_peer(peer_id, change, () if stored is None else stored.usernames)
    if kind == NAMES and stored is not None and not change[_DELETE_FIRST]:
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


class _Layer:
    __slots__ = ("_indexed", "_names", "_phones", "peers", "states")

    def __init__(self) -> None:
        self.peers: dict[int, PeerChange] = {}
        self.states: dict[int, StateChange] = {}
        # username / phone -> (peer id, stamp): built when a lookup needs them, not on
        # every write (the clients' writes far outnumber their username lookups)
        self._names: dict[str, tuple[int, int]] = {}
        self._phones: dict[str, tuple[int, int]] = {}
        self._indexed = True

    def __len__(self) -> int:
        return len(self.peers) + len(self.states)

    def add_peer(self, peer_id: int, change: PeerChange) -> None:
        peers = self.peers
        old = peers.get(peer_id)
        peers[peer_id] = change if old is None else coalesce(old, change)
        self._indexed = False

    def index(self, which: str) -> dict[str, tuple[int, int]]:
        """The username (``"names"``) or phone index of this layer's peer changes."""
        if not self._indexed:
            names: dict[str, tuple[int, int]] = {}
            phones: dict[str, tuple[int, int]] = {}
            for peer_id, change in self.peers.items():
                kind, stamp = change[_KIND], change[_STAMP]
                if kind in (FULL, NAMES):
                    for name in change[_NAMES] or ():
                        holder = names.get(name)
                        if holder is None or holder[1] <= stamp:
                            names[name] = (peer_id, stamp)
                phone = change[_PHONE]
                if kind in (FULL, PARTIAL) and phone:
                    holder = phones.get(phone)
                    if holder is None or holder[1] <= stamp:
                        phones[phone] = (peer_id, stamp)
            self._names, self._phones, self._indexed = names, phones, True
        return self._names if which == "names" else self._phones

    def add_state(self, state_id: int, change: StateChange) -> None:
        self.states[state_id] = _coalesce_state(self.states.get(state_id), change)

    def absorb(self, newer: _Layer) -> None:
        """Put ``newer``'s changes on top of this layer's."""
        for peer_id, change in newer.peers.items():
            self.add_peer(peer_id, change)
        for state_id, state in newer.states.items():
            self.add_state(state_id, state)

    def to_changes(self, stamp: int) -> Changes:
        changes = Changes(stamp=stamp)
        for peer_id, change in self.peers.items():
            kind = change[_KIND]
            if kind == FULL:
                changes.peers.append(make_peer(peer_id, change, change[_NAMES]))
            elif kind == PARTIAL:
                changes.peers.append(make_peer(peer_id, change, None))
            elif kind == DELETED:
                changes.deleted_peers.append(peer_id)
            else:
                if change[_DELETE_FIRST]:
                    changes.deleted_peers.append(peer_id)
                changes.usernames.append((peer_id, change[_NAMES] or ()))
        for state_id, (kind, *values) in self.states.items():
            if kind == STATE_DELETED:
                changes.deleted_states.append(state_id)
            elif kind == REPLACE:
                changes.states.append(UpdateState(state_id, *values))
            else:
                changes.merged_states.append(UpdateState(state_id, *values))
        return changes


class Journal:
    """The pending and in-flight layers of one storage (see the module's docstring)."""

    __slots__ = ("_inflight", "_pending")

    def __init__(self) -> None:
        self._pending = _Layer()
        self._inflight: _Layer | None = None

    def __len__(self) -> int:
        """Keys waiting in the pending layer."""
        return len(self._pending)

    @property
    def busy(self) -> bool:
        """Whether anything is pending or in flight."""
        return bool(self._pending) or self._inflight is not None

    # -- writing ---------------------------------------------------------------------------

    def add_peer(self, peer_id: int, change: PeerChange) -> None:
        self._pending.add_peer(peer_id, change)

    def add_state(self, state_id: int, change: StateChange) -> None:
        self._pending.add_state(state_id, change)

    def take(self, stamp: int) -> Changes:
        """Move the pending layer in flight and return it as one batch."""
        if self._inflight is not None:
            raise RuntimeError("a batch is already in flight")
        layer, self._pending = self._pending, _Layer()
        self._inflight = layer
        return layer.to_changes(stamp)

    def stored(self) -> None:
        """The batch in flight is stored: forget it."""
        self._inflight = None

    def failed(self) -> None:
        """The batch in flight could not be stored: keep it, under what came since."""
        layer, self._inflight = self._inflight, None
        if layer is not None:
            layer.absorb(self._pending)
            self._pending = layer

    def clear(self) -> None:
        self._pending = _Layer()
        self._inflight = None

    # -- reading ---------------------------------------------------------------------------

    def peer(self, peer_id: int) -> PeerChange | None:
        """The change readers must apply on top of the stored peer, if any."""
        pending = self._pending.peers.get(peer_id)
        inflight = self._inflight
        if inflight is None:
            return pending
        older = inflight.peers.get(peer_id)
        if older is None:
            return pending
        return older if pending is None else coalesce(older, pending)

    def state(self, state_id: int) -> StateChange | None:
        pending = self._pending.states.get(state_id)
        inflight = self._inflight
        older = None if inflight is None else inflight.states.get(state_id)
        if older is None:
            return pending
        return older if pending is None else _coalesce_state(older, pending)

    def state_ids(self) -> set[int]:
        ids = set(self._pending.states)
        if self._inflight is not None:
            ids.update(self._inflight.states)
        return ids

    def username_holder(self, username: str) -> int | None:
        """The id of the peer a pending or in-flight write gave ``username`` (newest first)."""
        return self._holder(username, "names")

    def phone_holder(self, phone: str) -> int | None:
        return self._holder(phone, "phones")

    def _holder(self, key: str, index: str) -> int | None:
        found = self._pending.index(index).get(key)
        inflight = self._inflight
        if inflight is not None:
            older = inflight.index(index).get(key)
            if older is not None and (found is None or older[1] > found[1]):
                # Still true unless a pending write replaced that peer's usernames or phone.
                change = self._pending.peers.get(older[0])
                if (
                    change is None
                    or (index == "phones" and change[_KIND] == NAMES)
                    or (index == "names" and change[_KIND] == PARTIAL)
                ):
                    found = older
        return None if found is None else found[0]

    def replaces(self, peer_id: int, what: str) -> bool:
        """Whether a pending or in-flight write replaced the peer's usernames or phone."""
        change = self.peer(peer_id)
        if change is None:
            return False
        kind = change[_KIND]
        if kind in (DELETED, FULL):
            return True
        return (kind == NAMES) if what == "names" else (kind == PARTIAL)
