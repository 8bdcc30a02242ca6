"""Server-assisted client-side caching: one invalidation connection per cache.

Redis (6+) and Valkey tell a client which keys other clients change when it turns on
``CLIENT TRACKING``. A :class:`Tracker` holds one connection of its own, speaking RESP3,
in broadcasting mode (``BCAST``) for one key prefix: whatever any other client writes
under the prefix, the server pushes the names of the changed keys on that connection.
The cache it serves (a session storage, a key-value store) drops what they name.

Why a raw socket and not the driver's connection: a lookup answered from memory must
first take in every invalidation that reached this process, without waiting
(:meth:`Tracker.drain`). Redis writes the invalidation of a key to this connection
in the same turn of its event loop as it writes the writer's reply, before it reads
anything more; what the writer was told is stored is therefore, by the time anyone
hears of it, in this socket's receive buffer, and a non-blocking ``recv`` takes it. A
message still arriving in pieces makes :meth:`drain` say False: that lookup asks the
server. The driver's connections read only when the event loop runs, too late. (The
invalidation of a ``FLUSHDB``/``FLUSHALL`` is the exception: the server may send the
flusher its reply first, so it is heard moments later.)

Commands can be sent on the same connection (:meth:`Tracker.call`): with ``NOLOOP`` the
server tells this connection nothing of its own writes, and replies and invalidations
arrive in the order the server made them, so a cache that writes through it may keep
what it wrote (an invalidation of a later write by another client comes after).

When the connection drops, the cache is told it cannot trust itself (it flushes and
asks the server meanwhile: invalidations may have been lost); a background task
connects again with growing pauses, turns tracking on again, and trusts again
(flushing once more). Neither redis-py's nor valkey's asyncio client has client-side
caching of its own (redis-py has it on its synchronous client only).

On a Redis Cluster the connection goes to the primary that serves the session's slot
(all its keys share one hash tag, so one slot, so one node: :func:`address_of` with
the ``key``), and the setup checks that node still serves it (``EXISTS`` on the key:
a node that does not answers ``MOVED``, ``ASK``, ``TRYAGAIN`` or ``CLUSTERDOWN``).
A redirection in the reply to any command sent on it later means the slot moved (a
failover, a resharding): tracking there is dropped as if the connection had dropped,
and the reconnecting task asks where the slot is now (``locate``: the cluster
client's own map, refreshed by a command on the slot) before it connects again. The
caller checks, before trusting memory, that the cluster client's map still names this
node (:meth:`Tracker.lose` otherwise).

Not supported (the cache is then never trusted, and every lookup asks the server): a
TLS connection, a client whose credentials come from a provider, an event loop without
``add_reader`` (Windows' proactor), a server refusing the commands (older than 6, or
an ACL without ``CLIENT`` or ``HELLO``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import select
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = [
    "Address",
    "NotOwner",
    "Push",
    "ResponseError",
    "Tracker",
    "Unsupported",
    "address_of",
    "command",
    "command_head",
    "parse",
]

log = logging.getLogger("pyrogram_storage")

NAME = "pyrogram_storage-invalidations"
_CHUNK = 1 << 16
_RETRY_FIRST, _RETRY_MOST = 0.2, 5.0

Keys = list[bytes] | None
"""The keys one invalidation names (None: every key, a ``FLUSHALL``/``FLUSHDB``)."""


class Unsupported(Exception):
    """This connection cannot carry invalidations (TLS...): say why, in words."""


class NotOwner(ConnectionError):
    """The cluster node does not serve the tracked slot (any more): nothing was done there."""


_REDIRECTIONS = ("MOVED ", "ASK ", "TRYAGAIN", "CLUSTERDOWN")


def redirected(reply: Any) -> bool:
    """Whether a reply is a cluster's "not here" (the command was not run)."""
    return isinstance(reply, ResponseError) and str(reply).startswith(_REDIRECTIONS)


class _Incomplete(Exception):
    pass


@dataclass(frozen=True)
class Address:
    """Where and as whom to connect: a TCP host and port, or a unix socket path."""

    host: str | None
    port: int
    path: str | None
    username: str | None
    password: str | None
    timeout: float | None
    reply_timeout: float = 5.0
    db: int = 0
    owns: str | None = None  #: a cluster node: the setup checks it serves this key

    @property
    def node(self) -> tuple[str | None, int]:
        """The node's host and port (a cluster client's map names nodes so)."""
        return self.host, self.port

    def __repr__(self) -> str:  # never the password
        where = self.path if self.path is not None else f"{self.host}:{self.port}"
        return f"Address({where!r})"


def address_of(client: Any, key: str | None = None) -> Address:
    """Where a redis-py or valkey asyncio client connects; for a cluster client, the
    primary its map says serves ``key`` (the session's slot).

    :raises Unsupported: TLS, a credential provider, or a cluster client without ``key``.
    """
    pool = getattr(client, "connection_pool", None)
    if pool is None:
        return _node_address(client, key)
    kwargs = dict(getattr(pool, "connection_kwargs", {}))
    kind = getattr(pool, "connection_class", type(None)).__name__
    if "SSL" in kind or kwargs.get("ssl"):
        raise Unsupported("a TLS connection")
    if kwargs.get("credential_provider") is not None:
        raise Unsupported("credentials from a provider")
    timeout = kwargs.get("socket_connect_timeout") or kwargs.get("socket_timeout") or 5.0
    return Address(
        kwargs.get("host") if kwargs.get("path") is None else None,
        int(kwargs.get("port") or 6379),
        kwargs.get("path"),
        kwargs.get("username"),
        kwargs.get("password"),
        float(timeout),
        float(kwargs.get("socket_timeout") or 5.0),
        int(kwargs.get("db") or 0),
    )


def owner_of(client: Any, slot: int) -> tuple[str | None, int]:
    """The host and port of the primary a cluster client's map says serves ``slot``
    (dictionary look-ups, no I/O)."""
    node = client.nodes_manager.get_node_from_slot(slot)
    return node.host, int(node.port)


def _node_address(client: Any, key: str | None) -> Address:
    if getattr(client, "nodes_manager", None) is None:
        raise Unsupported("a client that is neither a single-server nor a cluster client")
    if key is None:
        raise Unsupported("a cluster client, for keys that spread over slots (no one node)")
    kwargs = dict(client.get_connection_kwargs())
    kind = getattr(kwargs.get("connection_class"), "__name__", "")
    if "SSL" in kind or kwargs.get("ssl"):
        raise Unsupported("a TLS connection")
    if kwargs.get("credential_provider") is not None:
        raise Unsupported("credentials from a provider")
    try:
        host, port = owner_of(client, client.keyslot(key))
    except Exception as exc:  # the driver's SlotNotCoveredError: the cluster is in flux
        raise NotOwner(f"no node serves the session's slot: {exc}") from exc
    timeout = kwargs.get("socket_connect_timeout") or kwargs.get("socket_timeout") or 5.0
    return Address(
        host,
        port,
        None,
        kwargs.get("username"),
        kwargs.get("password"),
        float(timeout),
        float(kwargs.get("socket_timeout") or 5.0),
        int(kwargs.get("db") or 0),
        key,
    )


def command(*parts: bytes | str | int) -> bytes:
    """One command in RESP."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        data = part if isinstance(part, bytes) else str(part).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def command_head(count: int, *parts: bytes | str | int) -> bytes:
    """The start of a command of ``count`` parts in RESP, its first ``parts`` encoded
    once (a command sent for every lookup then costs the encoding of its last part)."""
    return b"*%d\r\n" % count + command(*parts)[len(b"*%d\r\n" % len(parts)) :]


def parse(buffer: bytes | bytearray, at: int = 0) -> tuple[Any, int]:
    """One RESP3 (or RESP2) value from ``buffer[at:]`` and where the next starts. Errors
    come back as :class:`ResponseError` values, pushes as :class:`Push`, maps as lists.

    :raises _Incomplete: the value has not arrived whole yet.
    """
    end = buffer.find(b"\r\n", at)
    if end < 0:
        raise _Incomplete
    kind, line = buffer[at : at + 1], bytes(buffer[at + 1 : end])
    at = end + 2
    if kind in (b"$", b"=", b"!"):
        size = int(line)
        if size < 0:
            return None, at
        if len(buffer) < at + size + 2:
            raise _Incomplete
        data = bytes(buffer[at : at + size])
        at += size + 2
        if kind == b"!":
            return ResponseError(data.decode("utf-8", "replace")), at
        return (data[4:] if kind == b"=" else data), at
    if kind in (b"*", b">", b"~", b"%", b"|"):
        size = int(line)
        if size < 0:
            return None, at
        items = []
        for _ in range(2 * size if kind in (b"%", b"|") else size):
            item, at = parse(buffer, at)
            items.append(item)
        if kind == b"|":  # attributes: what follows is the value
            return parse(buffer, at)
        return (Push(items) if kind == b">" else items), at
    if kind == b"+":
        return line, at
    if kind == b"-":
        return ResponseError(line.decode("utf-8", "replace")), at
    if kind in (b":", b"("):
        return int(line), at
    if kind == b"_":
        return None, at
    if kind == b"#":
        return line == b"t", at
    if kind == b",":
        return float(line), at
    raise ValueError(f"not RESP: {bytes(buffer[at - len(line) - 3 : at])!r}")


class Push(list[Any]):
    """A RESP3 push (out-of-band data: here, invalidations)."""


class ResponseError(Exception):
    """The server refused a command."""


class Tracker:
    """One invalidation connection: ``CLIENT TRACKING`` for ``prefix``, redirected to itself.

    :param address: where to connect (:func:`address_of`).
    :param prefix: the key prefix to hear of (``BCAST PREFIX``).
    :param invalidated: called with the keys each invalidation names (None: all keys).
    :param trusted: called with False when the connection is lost, True once it is
        back (after which everything cached before must be dropped: the caller's
        ``trusted(True)`` does that).
    :param locate: where to connect again after a loss (a cluster: the node serving
        the slot now); by default ``address`` again.
    """

    name: ClassVar[str] = NAME
    """The connection's ``CLIENT SETNAME``."""

    def __init__(
        self,
        address: Address,
        prefix: bytes,
        invalidated: Callable[[Keys], None],
        trusted: Callable[[bool], None],
        locate: Callable[[], Awaitable[Address]] | None = None,
    ) -> None:
        self.address = address
        self._locate = locate
        self.prefix = prefix
        self._invalidated = invalidated
        self._trusted = trusted
        self._sock: socket.socket | None = None
        self._poll: Any = None  # asks, without a read, whether the socket holds data
        self._buffer = bytearray()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reconnecting: asyncio.Task[None] | None = None
        # The futures awaiting replies, in the order sent, each with its deadline.
        self._waiting: collections.deque[tuple[asyncio.Future[Any], float]] = collections.deque()
        self._watchdog: asyncio.TimerHandle | None = None  # fails the oldest once late
        self._out = bytearray()  # commands the socket has not taken yet
        self._stopped = False
        self.live = False  #: tracking is on and the connection up: invalidations come
        self.client_id: int | None = None

    @property
    def stopped(self) -> bool:
        """Whether :meth:`stop` was called (reconnecting stops)."""
        return self._stopped

    def __repr__(self) -> str:
        return f"Tracker({self.address!r}, prefix={self.prefix!r}, live={self.live})"

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect and turn tracking on; :attr:`live` from then on.

        :raises Unsupported: the event loop cannot watch a socket, or the server
            refuses the commands.
        :raises OSError: the server cannot be reached.
        """
        self._stopped = False
        self._loop = loop = asyncio.get_running_loop()
        sock = await self._connect(loop)
        try:
            loop.add_reader(sock.fileno(), self._readable)
        except NotImplementedError:
            sock.close()
            raise Unsupported("an event loop that cannot watch a socket (add_reader)") from None
        poller = select.poll() if hasattr(select, "poll") else None
        if poller is not None:
            poller.register(sock.fileno(), select.POLLIN)
        self._sock, self._poll = sock, poller
        self.live = True

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> socket.socket:
        address = self.address
        if address.path is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            target: Any = address.path
        else:
            infos = await loop.getaddrinfo(
                address.host, address.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
            )
            family, kind, proto, _, target = infos[0]
            sock = socket.socket(family, kind, proto)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(self._handshake(loop, sock, target), address.timeout)
        except BaseException:
            sock.close()
            raise
        return sock

    def _tracking_setup(self) -> list[bytes]:
        """The commands that turn tracking on, sent after the connection's setup."""
        track: list[bytes | str | int] = [
            "CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", self.prefix, "NOLOOP"
        ]  # fmt: skip
        setup = [command(*track)]
        if self.address.owns is not None:
            # After tracking is on: a node that serves the key now hears of its changes.
            setup.append(command("EXISTS", self.address.owns))
        return setup

    async def _handshake(
        self, loop: asyncio.AbstractEventLoop, sock: socket.socket, target: Any
    ) -> None:
        address = self.address
        await loop.sock_connect(sock, target)
        hello: list[bytes | str | int] = ["HELLO", 3]
        if address.password is not None:
            hello += ["AUTH", address.username or "default", address.password]
        setup = [
            command(*hello, "SETNAME", self.name),
            command("SELECT", address.db),  # the commands sent here go to the client's db
            command("CLIENT", "ID"),
            *self._tracking_setup(),
        ]
        await loop.sock_sendall(sock, b"".join(setup))
        replies = await self._replies(loop, sock, len(setup))
        client_id = replies[2]
        for reply in replies:
            if redirected(reply):
                raise NotOwner(f"{address!r} does not serve the session's slot: {reply}")
            if isinstance(reply, ResponseError):
                raise Unsupported(f"the server refused the setup: {reply}")
        self.client_id = int(client_id)

    async def _replies(
        self, loop: asyncio.AbstractEventLoop, sock: socket.socket, count: int
    ) -> list[Any]:
        replies: list[Any] = []
        buffer = bytearray()
        while len(replies) < count:
            chunk = await loop.sock_recv(sock, _CHUNK)
            if not chunk:
                raise ConnectionError("the server closed the invalidation connection")
            buffer += chunk
            at = 0
            while len(replies) < count:
                try:
                    reply, at = parse(buffer, at)
                except _Incomplete:
                    break
                replies.append(reply)
            del buffer[:at]
        self._buffer = buffer  # anything after the replies: invalidations already
        return replies

    async def stop(self) -> None:
        """Close the connection and stop reconnecting."""
        self._stopped = True
        task, self._reconnecting = self._reconnecting, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        self._close()

    def close_now(self) -> None:
        """Close at once, from any thread (the event loop may have ended)."""
        self._stopped = True
        task, self._reconnecting = self._reconnecting, None
        if task is not None and self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(task.cancel)
        sock, self._sock = self._sock, None
        self._poll = None
        self.live = False
        if sock is not None:
            sock.close()

    def _close(
        self, why: str = "the connection was closed", error: type[Exception] = ConnectionError
    ) -> None:
        sock, self._sock = self._sock, None
        self._poll = None
        self.live = False
        self._buffer.clear()
        self._out.clear()
        if sock is not None:
            loop = self._loop
            if loop is not None and not loop.is_closed():
                with contextlib.suppress(Exception):
                    loop.remove_reader(sock.fileno())
                    loop.remove_writer(sock.fileno())
            sock.close()
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None:
            watchdog.cancel()
        waiting, self._waiting = self._waiting, collections.deque()
        for future, _ in waiting:
            if not future.done():
                future.set_exception(error(f"no reply from the Redis server: {why}"))

    # -- commands -------------------------------------------------------------------------

    async def execute(self, *commands: tuple[bytes | str | int, ...]) -> list[Any]:
        """Send commands on this connection at once and return their replies, in order (a
        refused one as a :class:`ResponseError` value, not raised).

        :raises NotOwner: a cluster node answered that it does not serve the slot (the
            commands were not run; tracking there is dropped, to be set up on the node
            that does).
        :raises ConnectionError: the connection is down, or dropped before the replies.
        """
        return await self.execute_encoded(
            b"".join(command(*parts) for parts in commands), len(commands)
        )

    async def execute_encoded(self, data: bytes, count: int) -> list[Any]:
        """:meth:`execute` of ``count`` commands already in RESP (:func:`command`)."""
        loop = self._loop
        if self._sock is None or loop is None:
            raise ConnectionError("the Redis tracking connection is down")
        deadline = loop.time() + self.address.reply_timeout
        futures = [loop.create_future() for _ in range(count)]
        self._waiting.extend((future, deadline) for future in futures)
        self._send(data)
        last = futures[-1]
        if self._poll is not None:
            # The server often runs while send() hands it the command (the woken process
            # takes the core), so its reply may be here already: taking it at once costs
            # no turn of the event loop and no wake-up of this task.
            self.drain()
            if last.done():
                return self._checked([future.result() for future in futures])
        if self._watchdog is None and self._sock is not None:
            self._watchdog = loop.call_at(deadline, self._check_late)
        try:
            replies = [await future for future in futures]
        except BaseException:
            for future in futures:  # the connection failed them all: their errors are told
                if future.done() and not future.cancelled():
                    future.exception()
            raise
        return self._checked(replies)

    def _checked(self, replies: list[Any]) -> list[Any]:
        for reply in replies:
            if redirected(reply):
                self.lose(f"the cluster moved the session's slot ({reply})")
                raise NotOwner(f"{self.address!r} does not serve the session's slot: {reply}")
        return replies

    def lose(self, why: str) -> None:
        """Drop tracking here as if the connection had dropped (the caller learnt that
        this node no longer serves the slot): untrusted, and set up again elsewhere."""
        if self._sock is not None:
            self._lost(why)
        elif self._reconnecting is None and not self._stopped:
            self._retry_later()

    def _check_late(self) -> None:
        """One timer for every reply awaited (not one a command): the oldest is late,
        or the timer waits for its deadline."""
        self._watchdog = None
        loop = self._loop
        if not self._waiting or loop is None or self._sock is None:
            return
        deadline = self._waiting[0][1]
        if loop.time() >= deadline:
            self._lost(f"no reply within {self.address.reply_timeout} s", TimeoutError)
            return
        self._watchdog = loop.call_at(deadline, self._check_late)

    def _send(self, data: bytes) -> None:
        sock = self._sock
        assert sock is not None
        if self._out:
            self._out += data
            return
        try:
            sent = sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            self._lost(str(exc))
            return
        if sent < len(data):
            self._out += data[sent:]
            assert self._loop is not None
            self._loop.add_writer(sock.fileno(), self._writable)

    def _writable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        try:
            sent = sock.send(self._out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._lost(str(exc))
            return
        del self._out[:sent]
        if not self._out and self._loop is not None:
            self._loop.remove_writer(sock.fileno())

    # -- invalidations --------------------------------------------------------------------

    def drain(self) -> bool:
        """Take in every invalidation this socket holds, without waiting; True if
        tracking is live and no message is still arriving (else the caller asks the server).
        """
        sock = self._sock
        if sock is None:
            return False
        poller = self._poll
        if poller is not None and not poller.poll(0):
            # Nothing to read (a hang-up or an error would be an event): a quarter of
            # what a read that finds nothing costs, on every lookup answered from memory.
            return self.live and not self._buffer
        try:
            while True:
                chunk = sock.recv(_CHUNK)
                if not chunk:
                    self._lost("the server closed it")
                    return False
                self._feed(chunk)
                if len(chunk) < _CHUNK:
                    break
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as exc:
            self._lost(str(exc))
            return False
        return self.live and not self._buffer

    def _readable(self) -> None:
        self.drain()

    def _feed(self, chunk: bytes) -> None:
        buffer = self._buffer
        buffer += chunk
        at = 0
        try:
            while at < len(buffer):
                message, at = parse(buffer, at)
                self._take(message)
        except _Incomplete:
            pass
        except ValueError as exc:
            del buffer[:]
            self._lost(f"unreadable data ({exc})")
            return
        del buffer[:at]

    def _take(self, message: Any) -> None:
        if type(message) is Push:
            if len(message) >= 2 and message[0] == b"invalidate":
                keys = message[1]
                self._invalidated(keys if isinstance(keys, list) else None)
            return  # other pushes carry no news for us
        if not self._waiting:
            self._lost("a reply nobody asked for")
            return
        future, _ = self._waiting.popleft()
        if not future.done():
            future.set_result(message)

    def _lost(self, why: str, error: type[Exception] = ConnectionError) -> None:
        if self._sock is None:
            return
        self._close(why, error)
        if self._stopped:
            return
        log.warning("the Redis invalidation connection dropped (%s); connecting again", why)
        self._trusted(False)
        self._retry_later()

    def _retry_later(self) -> None:
        loop = self._loop
        if self._reconnecting is None and loop is not None and not loop.is_closed():
            self._reconnecting = loop.create_task(self._reconnect())

    def start_later(self) -> None:
        """Set up tracking in the background (not trusted meanwhile): :meth:`start` found
        the cluster in flux."""
        self._stopped = False
        self._loop = asyncio.get_running_loop()
        self._retry_later()

    async def _reconnect(self) -> None:
        delay = _RETRY_FIRST
        try:
            while not self._stopped:
                await asyncio.sleep(delay)
                try:
                    if self._locate is not None:
                        self.address = await self._locate()
                    await self.start()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.debug("tracking again failed (%s); retrying in %.1f s", exc, delay)
                    delay = min(delay * 2, _RETRY_MOST)
                    continue
                if self.stopped:
                    self._close()
                    return
                # Whatever was written while nobody listened is unknown: trusting again
                # drops everything cached.
                self._reconnecting = None
                self._trusted(True)
                return
        finally:
            if self._reconnecting is asyncio.current_task():
                self._reconnecting = None
