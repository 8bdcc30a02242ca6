"""The engine one storage composes: its pending writes, its peers and shared mode.

:class:`Engine` builds the pending writes (:mod:`._pending`) and the peer engine
(:mod:`._peers`) from its storage's primitives, and keeps what shared mode needs to
know: whether the storage is the session's only writer, and whether the backend is
telling it what the other writers change. It is handed its storage as a
:class:`Backend` (what it calls of it), so it imports nothing of the contract.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from typing import Any, Protocol, TypeVar

from ._peers import Peers, Primitives
from ._pending import STATE_DELETED, Changes, PendingWrites
from .errors import BackendError
from .types import Peer
from .validation import stored_peer

__all__ = ["Backend", "Engine", "count_by_reading"]

T = TypeVar("T")


class Backend(Protocol):
    """What the engine uses of its storage: primitives, called through its error
    translation (:meth:`_call`) and after its open check (:meth:`_check_open`)."""

    @property
    def is_open(self) -> bool: ...

    async def _call(self, what: str, operation: Awaitable[T]) -> T: ...

    def _check_open(self) -> None: ...

    def _lock_pair(self) -> tuple[asyncio.Lock, asyncio.Lock]: ...

    def _set_writable(self) -> None: ...

    def _catch_up(self) -> bool: ...

    async def _apply(self, changes: Changes) -> None: ...

    async def _find_peer(self, peer_id: int, usernames: bool) -> Peer | None: ...

    async def _find_by_username(self, username: str, usernames: bool) -> Peer | None: ...

    async def _find_by_phone(self, phone: str, usernames: bool) -> Peer | None: ...

    async def _read_peers(self, after: int | None, limit: int) -> list[Peer]: ...

    async def _username_holders(self, username: str) -> set[int] | None: ...

    async def _peer_rows(
        self, after: int | None = None, limit: int | None = None
    ) -> list[tuple[Any, ...]] | None: ...

    async def count_peers(self) -> int: ...


class Engine:
    """The pending writes and the peer engine of one storage, and its shared-mode state.

    :param storage: the storage whose primitives it calls.
    :param commit_interval: seconds within which writes are stored (0: at once).
    :param cache_size: peers kept by the bounded cache (0: none).
    :param probes: whether point reads are cheap enough to read a peer before writing it.
    """

    __slots__ = ("_catch_up", "exclusive", "peers", "pending", "session_known", "trusted")

    def __init__(
        self, storage: Backend, commit_interval: float, cache_size: int, *, probes: bool
    ) -> None:
        self.exclusive = False  # open, and the session's only writer
        self.trusted = False  # shared mode: the backend delivers invalidations right now
        self.session_known = False  # shared mode: no other writer changed the session since
        self._catch_up = storage._catch_up
        self.pending = PendingWrites(
            lambda changes: storage._call("store writes", storage._apply(changes)),
            commit_interval,
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
            ),
            self.pending,
            cache_size,
            probes=probes,
        )

    # -- lifecycle ------------------------------------------------------------------------

    def opened(self, sole_writer: bool, told: bool) -> None:
        """The storage opened: whether it is the only writer, and whether the backend
        delivers invalidations (``told``)."""
        self.exclusive = sole_writer
        self.trusted = told
        self.session_known = False
        self.pending.failure = None

    async def stop(self, store: Callable[[], bool]) -> BaseException | None:
        """The storage closes: stop the peers and the timer, store what is pending (if
        ``store()`` says so, then) and forget it; return what storing raised."""
        await self.peers.stop()
        await self.pending.stop()
        failure: BaseException | None = None
        if store():
            try:
                await self.pending.store(explain=False)
            except Exception as exc:
                failure = exc
        self.pending.clear()
        return failure

    def abandon(self, let_go: Callable[[], bool]) -> bool:
        """The storage's event loop has ended: forget everything, awaiting nothing, once
        ``let_go`` released the backend; False (nothing changed) while work is under way."""
        if self.pending.journal.busy or not let_go():
            return False
        self.pending.clear()
        self.peers.abandon()
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
