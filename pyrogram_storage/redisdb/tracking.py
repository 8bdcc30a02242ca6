"""Server-assisted client-side caching: one invalidation connection per cache.

Redis (6+) and Valkey tell a client which keys other clients change when it turns on
``CLIENT TRACKING``. A :class:`Tracker` holds one connection of its own, in
broadcasting mode (``BCAST``) for one key prefix and redirected to itself, subscribed
to ``__redis__:invalidate``: whatever any client writes under the prefix, the server
sends the names of the changed keys on that connection. The cache it serves (a
session storage, a key-value store) drops what they name.

Why a raw socket and not the driver's connection: a lookup answered from memory must
first take in every invalidation that reached this process, without waiting
(:meth:`Tracker.drain`). Redis writes the invalidation of a key to this connection
in the same turn of its event loop as it writes the writer's reply, before it reads
anything more; what the writer was told is stored is therefore, by the time anyone
hears of it, in this socket's receive buffer, and a non-blocking ``recv`` takes it. A
message still arriving in pieces makes :meth:`drain` say False: that lookup asks the
server. The driver's connections read only when the event loop runs, too late.

When the connection drops, the cache is told it cannot trust itself (it flushes and
asks the server meanwhile: invalidations may have been lost); a background task
connects again with growing pauses, turns tracking on again, flushes the cache once
more and trusts it again. Neither redis-py's nor valkey's asyncio client has client-side
caching of its own (redis-py has it on its synchronous client, RESP3 only).

Not supported (the cache is then never trusted, and every lookup asks the server): a
TLS connection, a client whose credentials come from a provider, a cluster client, an
event loop without ``add_reader`` (Windows' proactor), a server refusing the commands
(older than 6, or an ACL without ``CLIENT``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Address", "Tracker", "address_of", "parse"]

log = logging.getLogger("pyrogram_storage")

CHANNEL = b"__redis__:invalidate"
NAME = "pyrogram_storage-invalidations"
_CHUNK = 1 << 16
_RETRY_FIRST, _RETRY_MOST = 0.2, 5.0

Keys = list[bytes] | None
"""The keys one invalidation names (None: every key, a ``FLUSHALL``/``FLUSHDB``)."""


class Unsupported(Exception):
    """This connection cannot carry invalidations (TLS, a cluster...): say why, in words."""


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

    def __repr__(self) -> str:  # never the password
        where = self.path if self.path is not None else f"{self.host}:{self.port}"
        return f"Address({where!r})"


def address_of(client: Any) -> Address:
    """Where a (single-server) redis-py or valkey asyncio client connects.

    :raises Unsupported: a cluster, TLS, or a credential provider.
    """
    pool = getattr(client, "connection_pool", None)
    if pool is None:
        raise Unsupported("a cluster client (tracking per node is not implemented)")
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
    )


def command(*parts: bytes | str | int) -> bytes:
    """One command in RESP."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        data = part if isinstance(part, bytes) else str(part).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def parse(buffer: bytes | bytearray, at: int = 0) -> tuple[Any, int]:
    """One RESP2 value from ``buffer[at:]`` and where the next starts; errors come back
    as :class:`ResponseError` values.

    :raises _Incomplete: the value has not arrived whole yet.
    """
    end = buffer.find(b"\r\n", at)
    if end < 0:
        raise _Incomplete
    kind, line = buffer[at : at + 1], bytes(buffer[at + 1 : end])
    at = end + 2
    if kind == b"+":
        return line, at
    if kind == b"-":
        return ResponseError(line.decode("utf-8", "replace")), at
    if kind == b":":
        return int(line), at
    if kind == b"$":
        size = int(line)
        if size < 0:
            return None, at
        if len(buffer) < at + size + 2:
            raise _Incomplete
        return bytes(buffer[at : at + size]), at + size + 2
    if kind == b"*":
        size = int(line)
        if size < 0:
            return None, at
        items = []
        for _ in range(size):
            item, at = parse(buffer, at)
            items.append(item)
        return items, at
    raise ValueError(f"not RESP2: {bytes(buffer[at - len(line) - 3 : at])!r}")


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
    """

    def __init__(
        self,
        address: Address,
        prefix: bytes,
        invalidated: Callable[[Keys], None],
        trusted: Callable[[bool], None],
    ) -> None:
        self.address = address
        self.prefix = prefix
        self._invalidated = invalidated
        self._trusted = trusted
        self._sock: socket.socket | None = None
        self._buffer = bytearray()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reconnecting: asyncio.Task[None] | None = None
        self._stopped = False
        self.live = False  # tracking is on and the connection up: invalidations come
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
        self._sock = sock
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

    async def _handshake(
        self, loop: asyncio.AbstractEventLoop, sock: socket.socket, target: Any
    ) -> None:
        address = self.address
        await loop.sock_connect(sock, target)
        setup = []
        if address.password is not None:
            if address.username:
                setup.append(command("AUTH", address.username, address.password))
            else:
                setup.append(command("AUTH", address.password))
        setup += [command("CLIENT", "SETNAME", NAME), command("CLIENT", "ID")]
        await loop.sock_sendall(sock, b"".join(setup))
        replies = await self._replies(loop, sock, len(setup))
        for reply in replies:
            if isinstance(reply, ResponseError):
                raise Unsupported(f"the server refused the setup: {reply}")
        self.client_id = int(replies[-1])
        track = command(
            "CLIENT", "TRACKING", "ON", "REDIRECT", self.client_id,
            "BCAST", "PREFIX", self.prefix,
        )  # fmt: skip
        await loop.sock_sendall(sock, track + command("SUBSCRIBE", CHANNEL))
        tracking, subscribed = await self._replies(loop, sock, 2)
        if isinstance(tracking, ResponseError):
            raise Unsupported(f"the server refused CLIENT TRACKING: {tracking}")
        if not (isinstance(subscribed, list) and subscribed[:1] == [b"subscribe"]):
            raise Unsupported(f"the server did not subscribe: {subscribed!r}")

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
        self.live = False
        if sock is not None:
            sock.close()

    def _close(self) -> None:
        sock, self._sock = self._sock, None
        self.live = False
        self._buffer.clear()
        if sock is not None:
            loop = self._loop
            if loop is not None and not loop.is_closed():
                with contextlib.suppress(Exception):
                    loop.remove_reader(sock.fileno())
            sock.close()

    # -- invalidations --------------------------------------------------------------------

    def drain(self) -> bool:
        """Take in every invalidation this socket holds, without waiting; True if
        tracking is live and no message is still arriving (else the caller asks the server).
        """
        sock = self._sock
        if sock is None:
            return False
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
        if (
            isinstance(message, list)
            and len(message) == 3
            and message[0] == b"message"
            and message[1] == CHANNEL
        ):
            keys = message[2]
            self._invalidated(keys if isinstance(keys, list) else None)
        # subscribe confirmations and pongs carry no news

    def _lost(self, why: str) -> None:
        if self._sock is None:
            return
        self._close()
        if self._stopped:
            return
        log.warning("the Redis invalidation connection dropped (%s); connecting again", why)
        self._trusted(False)
        loop = self._loop
        if self._reconnecting is None and loop is not None and not loop.is_closed():
            self._reconnecting = loop.create_task(self._reconnect())

    async def _reconnect(self) -> None:
        delay = _RETRY_FIRST
        try:
            while not self._stopped:
                await asyncio.sleep(delay)
                try:
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
