"""Invalidations across processes: the writers' ``NOTIFY`` and one ``LISTEN`` per pool.

Each flush of a shared (not sole-writer) session sends, inside its transaction, a
notification on the session's channel: it reaches the listeners only if the
transaction commits, and in commit order. Its payload is ``<writer> <items>``: the
writing storage's token (a storage ignores its own), then ``*`` (anything may have
changed), ``S`` (session fields), ``U`` (update states) and the ids of the changed
peers, space-separated; past :data:`PAYLOAD_LIMIT` bytes the ids give way to ``*``.

Every storage open on one pool shares that pool's :class:`Listener`: one connection
taken from the pool for as long as a storage listens, ``LISTEN`` on each open
session's channel. When the connection drops (a server restart, a network cut, a
terminated backend) every storage is told its cache cannot be trusted; the listener
takes a new connection, listens again, tells them to drop everything, and trusts again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any, Protocol

from .client import usable

__all__ = ["PAYLOAD_LIMIT", "Listener", "Subscriber", "channel_of", "listener_of", "payload"]

log = logging.getLogger("pyrogram_storage")

PAYLOAD_LIMIT = 7900
"""Bytes of a payload (PostgreSQL refuses more than 8000)."""

_RETRY_FIRST, _RETRY_MOST = 0.2, 5.0


class Subscriber(Protocol):
    """What a listener calls on a storage."""

    token: str

    def _invalidate(
        self, peer_ids: frozenset[int] | None, *, session: bool = False, states: bool = False
    ) -> None: ...

    def _set_cache_trusted(self, trusted: bool) -> None: ...


def channel_of(schema_key: str, sid: int) -> str:
    """The channel of session ``sid``: ASCII letters, digits and ``_`` only (and short)."""
    return f"pyrogram_storage_{schema_key}_{sid}"


def payload(token: str, peers: Iterable[int], session: bool, states: bool) -> str:
    """The text of a ``NOTIFY``: the writer's token, then what its batch changed."""
    items = [token]
    if session:
        items.append("S")
    if states:
        items.append("U")
    size = sum(len(item) + 1 for item in items)
    for peer_id in peers:
        text = str(peer_id)
        size += len(text) + 1
        if size > PAYLOAD_LIMIT:
            return f"{token} * " + " ".join(items[1:])
        items.append(text)
    return " ".join(items)


def deliver(subscriber: Subscriber, text: str) -> None:
    """Hand one payload to a storage (nothing when it wrote it itself)."""
    token, _, rest = text.partition(" ")
    if token == subscriber.token:
        return
    peers: set[int] = set()
    everything = session = states = False
    for item in rest.split():
        if item == "*":
            everything = True
        elif item == "S":
            session = True
        elif item == "U":
            states = True
        else:
            try:
                peers.add(int(item))
            except ValueError:
                everything = True  # not ours: believe nothing cached
    subscriber._invalidate(
        None if everything else frozenset(peers),
        session=session or everything,
        states=states or everything,
    )


class Listener:
    """One listening connection taken from a pool, shared by the storages using it."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.channels: dict[str, set[Subscriber]] = {}
        self.connection: Any = None
        self._connecting: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    @property
    def listening(self) -> bool:
        """True while the listening connection is up."""
        connection = self.connection
        return connection is not None and usable(connection)

    async def subscribe(self, channel: str, subscriber: Subscriber) -> None:
        """Listen on ``channel`` for ``subscriber``; raise if no connection can be had."""
        async with self._lock:
            if self.connection is None:
                await self._connect()
            subscribers = self.channels.setdefault(channel, set())
            if not subscribers:
                await self.connection.add_listener(channel, self._notified)
            subscribers.add(subscriber)
        subscriber._set_cache_trusted(True)

    async def unsubscribe(self, channel: str, subscriber: Subscriber) -> None:
        """Stop telling ``subscriber`` of ``channel``; the last one leaves it (``UNLISTEN``)."""
        async with self._lock:
            subscribers = self.channels.get(channel)
            if subscribers is None:
                return
            subscribers.discard(subscriber)
            if subscribers:
                return
            del self.channels[channel]
            if self.listening:
                with contextlib.suppress(Exception):
                    await self.connection.remove_listener(channel, self._notified)
            if not self.channels:
                await self._release()

    async def _connect(self) -> None:
        connection = await self.pool.acquire()
        connection.add_termination_listener(self._lost)
        self.connection = connection

    async def _release(self) -> None:
        _LISTENERS.pop(id(self.pool), None)
        self._closed = True
        task, self._connecting = self._connecting, None
        if task is not None:
            task.cancel()
        connection, self.connection = self.connection, None
        if connection is not None:
            with contextlib.suppress(Exception):  # a lost one is the pool's already
                connection.remove_termination_listener(self._lost)
                await self.pool.release(connection)

    def _notified(self, connection: Any, pid: int, channel: str, text: str) -> None:
        for subscriber in list(self.channels.get(channel, ())):
            deliver(subscriber, text)

    def _lost(self, connection: Any) -> None:
        if connection is not self.connection or self._closed:
            return
        log.warning("the PostgreSQL listening connection dropped; listening again")
        for subscribers in self.channels.values():
            for subscriber in subscribers:
                subscriber._set_cache_trusted(False)
        if self._connecting is None:
            self._connecting = asyncio.get_running_loop().create_task(self._reconnect(connection))

    def _stopped(self) -> bool:
        return self._closed

    async def _reconnect(self, lost: Any) -> None:
        delay = _RETRY_FIRST
        with contextlib.suppress(Exception):
            await self.pool.release(lost)
        while not self._stopped():
            try:
                async with self._lock:
                    if self._stopped():
                        return
                    self.connection = None
                    await self._connect()
                    for channel in self.channels:
                        await self.connection.add_listener(channel, self._notified)
                    # Whatever was written while nobody listened is unknown.
                    for subscribers in self.channels.values():
                        for subscriber in subscribers:
                            subscriber._invalidate(None, session=True, states=True)
                            subscriber._set_cache_trusted(True)
                self._connecting = None
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("listening again failed (%s); retrying in %.1f s", exc, delay)
                connection, self.connection = self.connection, None
                if connection is not None:
                    with contextlib.suppress(Exception):
                        connection.remove_termination_listener(self._lost)
                        await self.pool.release(connection)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MOST)


_LISTENERS: dict[int, Listener] = {}


def listener_of(pool: Any) -> Listener:
    """The listener of ``pool``, made on first use."""
    listener = _LISTENERS.get(id(pool))
    if listener is None or listener.pool is not pool or listener._closed:
        listener = _LISTENERS[id(pool)] = Listener(pool)
    return listener
