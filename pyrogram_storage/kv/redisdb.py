"""Bot state in Redis or Valkey (single server or cluster), over redis-py or valkey.

Every operation is one round trip: ``GET``, ``SET ... PX``, ``DEL``, ``EXISTS``,
``SET ... NX`` for "set if absent", and a Lua script (one key, so any cluster node can
run it) for compare-and-set, for a merge and for ``INCRBY`` with its ``PEXPIRE``. Redis
expires keys itself, to the millisecond. Listing uses ``SCAN`` (on every primary of a
cluster), never ``KEYS``; ``clear()`` is ``SCAN`` + ``UNLINK``.

On a single server (not TLS) the one-key commands go over one connection of the
store's own (:class:`_Lane`): commands pipelined on a plain socket, replies taken in
order, half the client time of the driver's call (its pool, retry wrapper and stream
reader cost more than the server's work). The driver's client serves the rest
(listing, ``clear``, health) and every command while that connection is down.

With ``client_cache=True`` a ``get`` is answered from memory when it can: the values
read are kept, and the server says which keys of the namespace any client changes
(``CLIENT TRACKING``, the machinery of :mod:`pyrogram_storage.redisdb.tracking` that
the session storage uses too).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import hashlib
import logging
import math
import re
from collections.abc import AsyncIterator, Awaitable, Mapping
from typing import Any, Literal, TypeVar

from ..errors import BackendError, StorageError
from ..redisdb import client as redisdb
from ..redisdb import tracking
from .base import (
    INT64_MAX,
    INT64_MIN,
    KEEP,
    SOLE_WRITER_KEYS,
    KVStore,
    Merging,
    Raw,
    Record,
    V,
    _Keep,
    split_location,
)
from .errors import InvalidArgumentError, NotACounterError
from .pattern import Pattern
from .serializer import Serializer

__all__ = ["RedisKV"]

log = logging.getLogger("pyrogram_storage")

T = TypeVar("T")

CLIENT_CACHE_SIZE = 10_000
"""Keys a ``client_cache=True`` store keeps in memory (the oldest read goes first)."""

_INT = re.compile(r"-?[0-9]+")

_CAS = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[3] == 'keep' then redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
elseif ARGV[3] == '' then redis.call('SET', KEYS[1], ARGV[2])
else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
return 1
"""

_INCREMENT = """
local created = redis.call('EXISTS', KEYS[1]) == 0
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if ARGV[2] ~= '' and (created or ARGV[3] == '1') then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return value
"""

_PERSIST = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('PERSIST', KEYS[1])
return 1
"""


# Merges into a stored dict's text without decoding a value: the stored members are
# split at the top level and kept as they are written, those the merge replaces are
# dropped, and each new one (ARGV[3..], three each: the key, the key as JSON, the value
# as JSON, sorted by key) goes where a binary search of the stored keys puts it. The
# serializer writes keys sorted by code point; comparing UTF-8 bytewise is the same
# order (Lua's "<" follows the server's locale, so it is not used). False, writing
# nothing, for a value that is not a plain JSON object (an integer, a tagged value,
# damaged text): the caller then merges in Python. ARGV[1]: PX milliseconds ('' for
# none); ARGV[2]: the mapping's own text, for an absent key.
_MERGE = r"""
local text = redis.call('GET', KEYS[1])
local out = ARGV[2]
if text then
  local find, byte, sub = string.find, string.byte, string.sub
  if byte(text, 1) ~= 123 or not pcall(cjson.decode, text) then return false end
  local function closing(p)
    while true do
      local q = find(text, '["\\]', p)
      if byte(text, q) == 92 then p = q + 2 else return q end
    end
  end
  local function less(x, y)
    for i = 1, math.min(#x, #y) do
      local u, v = byte(x, i), byte(y, i)
      if u ~= v then return u < v end
    end
    return #x < #y
  end
  local new = {}
  for j = 3, #ARGV, 3 do new[ARGV[j]] = true end
  local keys, pieces, pos = {}, {}, 2
  if byte(text, 2) ~= 125 then
    while true do
      local close = closing(pos + 1)
      local name = sub(text, pos, close)
      local key = sub(name, 2, -2)
      if find(name, '\\', 1, true) then key = cjson.decode(name) end
      if key == '$kv' then return false end
      local depth, p, last = 0, close + 2, false
      while true do
        local q = find(text, '[{}%[%]",]', p)
        local c = byte(text, q)
        if c == 34 then p = closing(q + 1) + 1
        elseif c == 123 or c == 91 then depth = depth + 1; p = q + 1
        elseif c == 125 or c == 93 then
          if depth == 0 then last = true; p = q; break end
          depth = depth - 1; p = q + 1
        elseif depth == 0 then p = q; break
        else p = q + 1 end
      end
      if not new[key] then
        keys[#keys + 1] = key
        pieces[#pieces + 1] = sub(text, pos, p - 1)
      end
      if last then break end
      pos = p + 1
    end
  end
  local parts, i, n = {}, 1, #keys
  for j = 3, #ARGV, 3 do
    local lo, hi = i, n + 1
    while lo < hi do
      local mid = math.floor((lo + hi) / 2)
      if less(keys[mid], ARGV[j]) then lo = mid + 1 else hi = mid end
    end
    for x = i, lo - 1 do parts[#parts + 1] = pieces[x] end
    parts[#parts + 1] = ARGV[j + 1] .. ':' .. ARGV[j + 2]
    i = lo
  end
  for x = i, n do parts[#parts + 1] = pieces[x] end
  out = '{' .. table.concat(parts, ',') .. '}'
end
if ARGV[1] == '' then redis.call('SET', KEYS[1], out)
else redis.call('SET', KEYS[1], out, 'PX', ARGV[1]) end
return out
"""


class _Script:
    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()


_CAS_SCRIPT, _INCREMENT_SCRIPT, _PERSIST_SCRIPT = (
    _Script(_CAS),
    _Script(_INCREMENT),
    _Script(_PERSIST),
)


_MERGE_SCRIPT = _Script(_MERGE)


def _millis(expires: float, now: float) -> int:
    """Milliseconds from ``now`` until ``expires``, rounded up (at least 1)."""
    return max(1, math.ceil((expires - now) * 1000))


def _text(data: bytes | str) -> str:
    return data.decode("utf-8", "replace") if type(data) is bytes else data  # type: ignore[return-value]


def _raw(data: bytes | str) -> Any:
    """A stored value as the base class reads it; bytes that are not UTF-8 are returned as
    they are, for the base class to report as damaged data."""
    if type(data) is bytes:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return data
    else:
        text = data  # type: ignore[assignment]
    if text and (text[0].isdigit() or text[0] == "-") and _INT.fullmatch(text):
        number = int(text)
        if INT64_MIN <= number <= INT64_MAX:
            return number
    return text


def _expiry(before: float, ttl: Any) -> float | None:
    """When a key read at ``before`` with this ``PTTL`` expires (None: never); early
    rather than late (the time the reply took is not added)."""
    return None if ttl is None or ttl < 0 else before + ttl / 1000


def _merged(reply: Any) -> Raw | None:
    """The merge script's reply as stored; None for its "not a plain JSON object"
    (RESP3 says false, RESP2 nil)."""
    return None if reply is None or reply is False else _raw(reply)


def _wire(raw: Raw) -> str:
    return str(raw) if type(raw) is int else raw  # type: ignore[return-value]


LANE_NAME = "pyrogram_storage-kv"
"""The ``CLIENT SETNAME`` of a store's own command connection."""


class _Lane(tracking.Tracker):
    """The store's command connection: a :class:`~pyrogram_storage.redisdb.tracking.Tracker`
    without tracking (nothing is cached, the server pushes nothing), for its replies'
    machinery: RESP3 on a non-blocking socket, pipelined, each reply timed, reconnecting
    in the background after a loss (the store uses its driver's client meanwhile)."""

    name = LANE_NAME

    def __init__(self, address: tracking.Address) -> None:
        super().__init__(address, b"", _nothing, _nothing)

    def _tracking_setup(self) -> list[bytes]:
        return []  # no tracking on this one


class _Tracker(tracking.Tracker):
    """The tracking connection of a ``client_cache`` store, counting the replies it
    took: an invalidation read after a command's reply is of a later write (the reply
    is stale), one read before it of an earlier write (the reply is not). Valkey also
    tells a connection of the writes of its own scripts, NOLOOP or not, before the
    script's reply."""

    answered = 0

    def _take(self, message: Any) -> None:
        if type(message) is not tracking.Push:
            self.answered += 1
        super()._take(message)

    def next_reply(self) -> int:
        """What :attr:`answered` will be once the next command sent is answered."""
        return self.answered + len(self._waiting) + 1


def _nothing(_: object) -> None:
    pass


def _check_plain(client: Any, address: tracking.Address) -> None:
    """Refuse a client whose connections go elsewhere than its pool's arguments say
    (Sentinel's, or a connection class of the user's own): a connection made from
    them could reach another server.

    :raises tracking.Unsupported: such a client.
    """
    kind = getattr(client.connection_pool, "connection_class", type(None)).__name__
    if kind not in ("Connection", "UnixDomainSocketConnection"):
        raise tracking.Unsupported(f"connections of class {kind}")
    if address.host is None and address.path is None:
        raise tracking.Unsupported("no host or socket path in the client's options")


class _Down(enum.Enum):
    DOWN = "down"


_DOWN = _Down.DOWN
"""The command connection is down, or was lost under the call: ask the driver's client."""


class RedisKV(KVStore[V]):
    """Bot state in Redis or Valkey: shared by every process and machine using the server.

    Keys are stored as ``<namespace>:<key>`` strings. Give a ready asyncio client
    (redis-py's ``redis.asyncio.Redis`` or ``RedisCluster``, valkey's ``Valkey`` or
    ``ValkeyCluster``), which you close yourself, or use :meth:`from_url`.

    :param client: the asyncio client (a synchronous one raises ``TypeError``).
    :param scan_count: the ``COUNT`` hint of each ``SCAN`` (keys per batch).
    :param client_cache: keep the values ``get`` read (up to :data:`CLIENT_CACHE_SIZE`
        keys) and answer from memory while the server says no client changed them
        (``CLIENT TRACKING`` on a connection of the store's own). A ``get`` started
        after any client's write was acknowledged sees it. While that connection is
        down, and on a cluster or over TLS, every ``get`` asks the server.
    :raises TypeError: not an asyncio redis-py or valkey client.

    Keys expire by the server's clock (``PX``, ``PEXPIRE``), to the millisecond.
    """

    requires = "redis"
    expires_by_server_clock = True

    def __init__(
        self,
        client: Any,
        *,
        namespace: str | None = None,
        default_ttl: float | None = None,
        serializer: Serializer | None = None,
        sole_writer: bool = False,
        sole_writer_keys: int = SOLE_WRITER_KEYS,
        commit_interval: float = 0.0,
        scan_count: int = 500,
        client_cache: bool = False,
        _from_url: bool = False,
    ) -> None:
        super().__init__(
            namespace=namespace,
            default_ttl=default_ttl,
            serializer=serializer,
            sole_writer=sole_writer,
            sole_writer_keys=sole_writer_keys,
            commit_interval=commit_interval,
        )
        if type(scan_count) is not int or scan_count < 1:
            raise InvalidArgumentError(f"scan_count must be a positive int, not {scan_count!r}")
        if type(client_cache) is not bool:
            raise InvalidArgumentError(f"client_cache must be a bool, not {client_cache!r}")
        self.client_cache = client_cache
        self._tracker: _Tracker | None = None  # client_cache: the tracking connection
        self._lane: tracking.Tracker | None = None  # the command connection (the tracker's)
        self._held: dict[str, Record | None] = {}  # client_cache: key -> record (None: absent)
        self._news = 0  # bumped by every invalidation: a read racing one is not kept
        # key -> the replies (numbered as _Tracker.answered counts them) of its commands
        # in flight on the tracking connection; and the keys invalidated after one of them
        self._flight: dict[str, list[int]] = {}
        self._spoiled: set[str] = set()
        self.scan_count = scan_count
        self._prefix = self.namespace + ":"
        self._url: str | None = None
        self._driver = "redis"
        self._cluster: bool | None = None
        self._options: dict[str, Any] = {}
        self._client: Any = None
        # A client we build is timed here, not by the driver (see _open).
        self._watchdog: asyncio.Task[None] | None = None
        self._silence: float | None = None
        if client is None and not _from_url:
            raise InvalidArgumentError(
                "RedisKV needs an asyncio client; or use RedisKV.from_url(url)"
            )
        if client is not None:
            self._driver = redisdb.check_async_client(client)
            self._client = client
            self._cluster = redisdb.is_cluster(client)
        self._given = client
        self._load_errors()

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        namespace: str | None = None,
        driver: str = "redis",
        cluster: bool | None = None,
        client_options: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> RedisKV[Any]:
        """Build a store whose client is made from ``url`` on :meth:`open` (and closed by close).

        :param url: ``redis://[[user]:password@]host[:port][/db]``, ``rediss://`` (TLS)
            or ``unix:///path/to/socket?db=0``.
        :param driver: ``"redis"`` (redis-py) or ``"valkey"``.
        :param cluster: True for a Redis Cluster (``url`` names any node); None (default)
            asks the server on open.
        :param client_options: keyword arguments for the client (``socket_timeout``...);
            :data:`~pyrogram_storage.redisdb.client.DEFAULT_CLIENT_OPTIONS` otherwise.
            On a single server the store enforces ``socket_timeout`` itself (calls
            waiting on a silent server fail within two of it) and the driver does not
            time each reply, which cost a timer per call.
        :param options: the other arguments of :class:`RedisKV`.
        :raises InvalidArgumentError: a bad URL or driver, or an option in the URL the
            driver does not know.
        :raises MissingDriverError: the driver is not installed (the message names the extra).
        """
        if driver not in redisdb.DRIVERS:
            raise InvalidArgumentError(
                f"unknown driver {driver!r}; choose from {', '.join(redisdb.DRIVERS)}"
            )
        try:
            redisdb.check_url(url)
            redisdb.import_driver(driver)
            redisdb.check_url_options(url, driver)
        except ValueError as exc:
            raise InvalidArgumentError(str(exc)) from None
        store: RedisKV[Any] = cls(None, namespace=namespace, _from_url=True, **options)
        store._url, store._driver, store._cluster = url, driver, cluster
        store._options = redisdb.client_options(driver, client_options, cluster)
        store._load_errors()
        return store

    @classmethod
    def from_location(cls, location: str, **options: Any) -> RedisKV[Any]:
        """Build the store of ``redis://HOST[:PORT][/DB][?OPTIONS][#NAMESPACE]`` (also
        ``rediss://`` and ``unix://``)."""
        url, options = split_location(location, options)
        return cls.from_url(url, **options)

    def __repr__(self) -> str:
        # Never the URL: it may carry a password.
        kind = "cluster" if self._cluster else "single" if self._cluster is False else "auto"
        return f"RedisKV(namespace={self.namespace!r}, driver={self._driver!r}, mode={kind!r})"

    def _load_errors(self) -> None:
        if self._given is None and self._url is None:
            return
        self._response_error = redisdb.response_error(self._driver)
        self._no_script = redisdb.no_script_error(self._driver)

    def _translate(self, what: str, exc: Exception) -> StorageError:
        return BackendError(f"RedisKV failed to {what}: {type(exc).__name__}: {exc}")

    # -- lifecycle ------------------------------------------------------------------

    async def _open(self) -> None:
        if self._given is not None:
            await self._client.ping()
            await self._track()
            return
        assert self._url is not None
        try:
            if self._cluster is None:
                probe = redisdb.build_client(self._url, driver=self._driver, options=self._options)
                try:
                    self._cluster = await redisdb.detect_cluster(probe)
                finally:
                    await probe.aclose()
            options, silence = self._options, None
            timeout = options.get("socket_timeout")
            if not self._cluster and timeout:
                # The driver times every read of a reply with socket_timeout (a timer set
                # and cancelled per call, a fifth of a GET's time here); the watchdog
                # below enforces the same bound once for the whole store.
                silence = float(timeout)
                options = {"socket_connect_timeout": timeout, **options, "socket_timeout": None}
            self._client = redisdb.build_client(
                self._url, driver=self._driver, cluster=self._cluster, options=options
            )
        except (ValueError, TypeError) as exc:
            raise BackendError(f"cannot create the {self._driver} client: {exc}") from exc
        self._silence = silence
        if silence is not None:
            self._watchdog = asyncio.get_running_loop().create_task(self._watch(silence / 2))
        await self._client.ping()
        await self._track()

    async def _watch(self, period: float) -> None:
        """Every ``period`` seconds: if calls were waiting a period ago and none has
        ended since, the server is silent: drop the connections, so that the waiting
        calls fail (a retried one on a new connection, then an error, as with the
        driver's ``socket_timeout``: within two timeouts)."""
        waiting, ended = False, self._ended
        while True:
            await asyncio.sleep(period)
            if waiting and self._waiting and self._ended == ended:
                log.warning("%r: no reply for %.1f s, dropping the connections", self, period)
                with contextlib.suppress(Exception):
                    await self._client.connection_pool.disconnect()
            waiting, ended = self._waiting > 0, self._ended

    async def _track(self) -> None:
        """Open the command connection: with ``client_cache``, the tracking one."""
        try:
            address = tracking.address_of(self._client)
            _check_plain(self._client, address)
            if self._silence is not None:  # the client's own is off (see _open)
                address = dataclasses.replace(address, reply_timeout=self._silence)
            tracker = None
            if self.client_cache:
                tracker = _Tracker(address, self._prefix.encode(), self._invalidated, self._trust)
            lane = _Lane(address) if tracker is None else tracker
            await lane.start()
        except tracking.Unsupported as exc:
            if self.client_cache:
                log.warning("%r: no client cache, every get asks the server: %s", self, exc)
            return
        self._lane, self._tracker = lane, tracker

    def _invalidated(self, keys: list[bytes] | None) -> None:
        self._news += 1
        held = self._held
        if keys is None:
            held.clear()
            self._spoiled.update(self._flight)
            return
        cut, flight = len(self._prefix), self._flight
        for name in keys:
            key = name[cut:].decode("utf-8", "replace")
            held.pop(key, None)
            replies = flight.get(key)
            if replies and self._tracker is not None and self._tracker.answered >= min(replies):
                self._spoiled.add(key)

    def _trust(self, trusted: bool) -> None:
        self._news += 1
        self._held.clear()
        self._spoiled.update(self._flight)

    async def _watched(
        self, tracker: _Tracker, key: str, operation: Awaitable[T]
    ) -> tuple[T, bool]:
        """Await commands about ``key`` that ``operation`` sends on the tracking
        connection at once; also whether memory may keep what their replies say: not if
        an invalidation of the key was read after the first reply. Read in the same
        chunk, it is taken in before this coroutine resumes and would be overtaken."""
        reply = tracker.next_reply()
        replies = self._flight.setdefault(key, [])
        replies.append(reply)
        try:
            result = await operation
            return result, key not in self._spoiled
        finally:
            replies.remove(reply)
            if not replies:
                del self._flight[key]
                self._spoiled.discard(key)

    async def _writing(self, key: str, operation: Awaitable[T]) -> T:
        """Run a write of ``key``: memory forgets the key before and after it (a read
        racing the write is not kept)."""
        self._news += 1
        self._held.pop(key, None)
        try:
            return await operation
        finally:
            self._news += 1
            self._held.pop(key, None)

    async def _close(self) -> None:
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
        lane, self._lane, self._tracker = self._lane, None, None
        self._held.clear()
        if lane is not None:
            await lane.stop()
        client = self._client
        if self._given is None:
            self._client = None
            if client is not None:
                await client.aclose()

    # -- helpers --------------------------------------------------------------------

    async def _script(self, script: _Script, key: str, *args: Any) -> Any:
        client = self._client
        try:
            return await client.evalsha(script.sha, 1, key, *args)
        except self._no_script:
            return await client.eval(script.source, 1, key, *args)

    def _ttl_arg(self, expires: float | None) -> str:
        return "" if expires is None else str(_millis(expires, self.clock()))

    # -- primitives -----------------------------------------------------------------

    def _get_now(self, key: str) -> Record | Literal[_Keep.KEEP] | None:
        tracker = self._tracker
        if tracker is None or not tracker.drain():
            return KEEP
        return self._held.get(key, KEEP)

    async def _get(self, key: str) -> Record | None:
        tracker = self._tracker
        if tracker is None:
            name = self._prefix + key
            replies = await self._sent(("GET", name))
            data = await self._client.get(name) if replies is _DOWN else replies[0]
            return None if data is None else (_raw(data), None)
        name, before = self._prefix + key, self.clock()
        if tracker.live:
            # On the tracking connection: an invalidation of a later write comes after
            # the reply, so what the reply says may be kept (unless one came with it).
            (data, ttl), keep = await self._watched(
                tracker, key, self._tracked(tracker, ("GET", name), ("PTTL", name))
            )
            record = None if data is None else (_raw(data), _expiry(before, ttl))
            if keep:
                self._hold(key, record)
            return record
        news = self._news
        pipe = self._client.pipeline(transaction=False)
        pipe.get(name)
        pipe.pttl(name)
        data, ttl = await pipe.execute()
        record = None if data is None else (_raw(data), _expiry(before, ttl))
        if news == self._news and self._live() is not None:
            self._hold(key, record)
        return record

    async def _get_exact(self, key: str) -> Record | None:
        if self._tracker is not None:
            return await self._get(key)
        name, before = self._prefix + key, self.clock()
        replies = await self._sent(("GET", name), ("PTTL", name))
        if replies is not _DOWN:
            data, ttl = replies
        else:
            pipe = self._client.pipeline(transaction=False)
            pipe.get(name)
            pipe.pttl(name)
            data, ttl = await pipe.execute()
        return None if data is None else (_raw(data), _expiry(before, ttl))

    def _hold(self, key: str, record: Record | None) -> None:
        held = self._held
        if len(held) >= CLIENT_CACHE_SIZE and key not in held:
            del held[next(iter(held))]
        held[key] = record

    async def _tracked(
        self, tracker: tracking.Tracker, *commands: tuple[bytes | str | int, ...]
    ) -> list[Any]:
        """Run commands on the tracking connection; a refused one raises the driver's error."""
        replies = await tracker.execute(*commands)
        for reply in replies:
            if isinstance(reply, tracking.ResponseError):
                raise self._response_error(str(reply))
        return replies

    async def _tracked_script(self, tracker: tracking.Tracker, script: _Script, *args: Any) -> Any:
        (reply,) = await tracker.execute(("EVALSHA", script.sha, 1, *args))
        if isinstance(reply, tracking.ResponseError) and str(reply).startswith("NOSCRIPT"):
            (reply,) = await tracker.execute(("EVAL", script.source, 1, *args))
        if isinstance(reply, tracking.ResponseError):
            raise self._response_error(str(reply))
        return reply

    def _live(self) -> _Tracker | None:
        tracker = self._tracker
        return tracker if tracker is not None and tracker.live else None

    async def _sent(self, *commands: tuple[bytes | str | int, ...]) -> list[Any] | _Down:
        """The replies of ``commands`` sent at once on the command connection; ``_DOWN``
        if it is down or was lost under the call: the caller then sends them with the
        driver's client (which, as for its own lost connections, is a retry)."""
        lane = self._lane
        if lane is None or not lane.live:
            return _DOWN
        try:
            return await self._tracked(lane, *commands)
        except ConnectionError:
            return _DOWN

    async def _sent_script(self, script: _Script, *args: Any) -> Any:
        """A script's reply over the command connection; ``_DOWN`` as in :meth:`_sent`."""
        lane = self._lane
        if lane is None or not lane.live:
            return _DOWN
        try:
            return await self._tracked_script(lane, script, *args)
        except ConnectionError:
            return _DOWN

    async def _script_anyhow(self, script: _Script, key: str, *args: Any) -> Any:
        """A script's reply, over the command connection or else the driver's client."""
        reply = await self._sent_script(script, key, *args)
        return await self._script(script, key, *args) if reply is _DOWN else reply

    async def _forgetting(self, key: str, operation: Awaitable[T]) -> T:
        """Run a write of ``key`` whose outcome memory cannot know: it forgets the key."""
        try:
            return await operation
        finally:
            self._news += 1
            self._held.pop(key, None)

    async def _peek(self, key: str) -> Record | None:
        name = self._prefix + key
        replies = await self._sent(("EXISTS", name))
        found = await self._client.exists(name) if replies is _DOWN else replies[0]
        return ("", None) if found else None

    async def _set(self, key: str, raw: Raw, expires: float | None) -> None:
        tracker = self._live()
        if tracker is not None:
            name, wire = self._prefix + key, _wire(raw)
            command: tuple[str | int, ...] = ("SET", name, wire)
            if expires is not None:
                command += ("PX", _millis(expires, self.clock()))
            _, keep = await self._forgetting(
                key, self._watched(tracker, key, self._tracked(tracker, command))
            )
            if keep:
                self._hold(key, (raw, expires))  # NOLOOP: no news of our own write
            return None
        if self._tracker is not None:
            return await self._writing(key, self._set_on_server(key, raw, expires))
        return await self._set_on_server(key, raw, expires)

    async def _set_on_server(self, key: str, raw: Raw, expires: float | None) -> None:
        name, wire = self._prefix + key, _wire(raw)
        if expires is None:
            if await self._sent(("SET", name, wire)) is _DOWN:
                await self._client.set(name, wire)
        else:
            millis = _millis(expires, self.clock())
            if await self._sent(("SET", name, wire, "PX", millis)) is _DOWN:
                await self._client.set(name, wire, px=millis)

    async def _delete(self, key: str) -> Record | None:
        tracker = self._live()
        if tracker is not None:
            (removed,), keep = await self._forgetting(
                key,
                self._watched(tracker, key, self._tracked(tracker, ("DEL", self._prefix + key))),
            )
            if keep:
                self._hold(key, None)
            return ("", None) if removed else None
        if self._tracker is not None:
            return await self._writing(key, self._delete_on_server(key))
        return await self._delete_on_server(key)

    async def _delete_on_server(self, key: str) -> Record | None:
        name = self._prefix + key
        replies = await self._sent(("DEL", name))
        removed = await self._client.delete(name) if replies is _DOWN else replies[0]
        return ("", None) if removed else None

    async def _touch(self, key: str, expires: float | None, now: float) -> bool:
        tracker = self._live()
        if tracker is not None:
            name = self._prefix + key
            if expires is None:
                done = self._tracked_script(tracker, _PERSIST_SCRIPT, name)
            else:
                done = self._tracked(tracker, ("PEXPIRE", name, _millis(expires, now)))
            found = await self._forgetting(key, done)
            return bool(found if expires is None else found[0])
        if self._tracker is not None:
            return await self._writing(key, self._touch_on_server(key, expires, now))
        return await self._touch_on_server(key, expires, now)

    async def _touch_on_server(self, key: str, expires: float | None, now: float) -> bool:
        name = self._prefix + key
        if expires is None:
            return bool(await self._script_anyhow(_PERSIST_SCRIPT, name))
        millis = _millis(expires, now)
        replies = await self._sent(("PEXPIRE", name, millis))
        return bool(await self._client.pexpire(name, millis) if replies is _DOWN else replies[0])

    async def _cas(
        self,
        key: str,
        expected: Raw | None,
        raw: Raw,
        expires: float | Literal[_Keep.KEEP] | None,
        now: float,
    ) -> bool:
        tracker = self._live()
        if tracker is not None:
            name, wire = self._prefix + key, _wire(raw)
            if expected is None:
                ttl: tuple[str | int, ...] = ()
                if isinstance(expires, float):
                    ttl = ("PX", _millis(expires, now))
                command = ("SET", name, wire, "NX", *ttl)
                (reply,), keep = await self._forgetting(
                    key, self._watched(tracker, key, self._tracked(tracker, command))
                )
                done = reply is not None
            else:
                same = isinstance(expires, _Keep)
                ttl_arg = "keep" if same else self._ttl_arg(expires)  # type: ignore[arg-type]
                script = self._tracked_script(
                    tracker, _CAS_SCRIPT, name, _wire(expected), wire, ttl_arg
                )
                reply, keep = await self._forgetting(key, self._watched(tracker, key, script))
                done = bool(reply)
            if done and keep and not isinstance(expires, _Keep):
                self._hold(key, (raw, expires))
            return done
        if self._tracker is not None:
            return await self._writing(key, self._cas_on_server(key, expected, raw, expires, now))
        return await self._cas_on_server(key, expected, raw, expires, now)

    async def _cas_on_server(
        self,
        key: str,
        expected: Raw | None,
        raw: Raw,
        expires: float | Literal[_Keep.KEEP] | None,
        now: float,
    ) -> bool:
        name = self._prefix + key
        if expected is None:
            millis = _millis(expires, now) if isinstance(expires, float) else None
            ttl: tuple[str | int, ...] = () if millis is None else ("PX", millis)
            replies = await self._sent(("SET", name, _wire(raw), "NX", *ttl))
            if replies is not _DOWN:
                return replies[0] is not None
            if millis is not None:
                done = await self._client.set(name, _wire(raw), nx=True, px=millis)
            else:
                done = await self._client.set(name, _wire(raw), nx=True)
            return bool(done)
        ttl_arg = "keep" if isinstance(expires, _Keep) else self._ttl_arg(expires)
        return bool(
            await self._script_anyhow(_CAS_SCRIPT, name, _wire(expected), _wire(raw), ttl_arg)
        )

    async def _increment(
        self, key: str, amount: int, expires: float | None, reset: bool, now: float
    ) -> int:
        if self._tracker is not None:
            operation = self._increment_on_server(key, amount, expires, reset, now)
            return await self._writing(key, operation)
        return await self._increment_on_server(key, amount, expires, reset, now)

    async def _increment_on_server(
        self, key: str, amount: int, expires: float | None, reset: bool, now: float
    ) -> int:
        args = (amount, self._ttl_arg(expires), "1" if reset else "0")
        try:
            value = await self._script_anyhow(_INCREMENT_SCRIPT, self._prefix + key, *args)
        except self._response_error as exc:
            message = str(exc)
            if "not an integer" in message or "overflow" in message:
                raise NotACounterError(
                    f"increment: the value of key {key!r} is not an integer, or the sum "
                    "would leave the 64-bit integer range"
                ) from None
            raise
        return int(value)

    async def _merge(self, key: str, merging: Merging, expires: float | None, now: float) -> Raw:
        if self._tracker is not None:
            # client_cache: memory forgets the key around it. The script runs on the
            # tracking connection if it is up, but its reply is not kept: the server
            # tells that connection of its own scripts' writes (NOLOOP or not), after
            # the reply, as it would of another client's later write.
            return await self._writing(key, self._merge_on_server(key, merging, expires, now))
        return await self._merge_on_server(key, merging, expires, now)

    def _merge_args(self, merging: Merging, expires: float | None, now: float) -> list[Any]:
        members = merging.members
        assert members is not None
        ttl = "" if expires is None else str(_millis(expires, now))
        return [ttl, _wire(merging.text), *(part for member in members for part in member)]

    async def _merge_on_server(
        self, key: str, merging: Merging, expires: float | None, now: float
    ) -> Raw:
        if merging.members is not None:
            args = self._merge_args(merging, expires, now)
            merged = _merged(await self._script_anyhow(_MERGE_SCRIPT, self._prefix + key, *args))
            if merged is not None:
                return merged
        # Not a plain JSON object (nothing was written), or no JSON members: merged in
        # Python, or refused.
        return await super()._merge(key, merging, expires, now)

    async def _scan(
        self, pattern: Pattern, values: bool, now: float
    ) -> AsyncIterator[list[tuple[str, Raw | None, float | None]]]:
        client, prefix, size = self._client, self._prefix, self.scan_count
        match = prefix + pattern.redis
        names: list[Any] = []
        async for name in client.scan_iter(match=match, count=size):
            names.append(name)
            if len(names) >= size:
                yield await self._fetch(names, values)
                names = []
        if names:
            yield await self._fetch(names, values)

    async def _fetch(
        self, names: list[Any], values: bool
    ) -> list[tuple[str, Raw | None, float | None]]:
        cut = len(self._prefix)
        keys = [_text(name)[cut:] for name in names]
        if not values:
            return [(key, None, None) for key in keys]
        pipe = self._client.pipeline(transaction=False)
        for name in names:
            pipe.get(name)
            pipe.pttl(name)
        replies = await pipe.execute()
        now = self.clock()
        batch: list[tuple[str, Raw | None, float | None]] = []
        for index, key in enumerate(keys):
            data, ttl = replies[2 * index], replies[2 * index + 1]
            if data is None:
                continue
            expires = None if ttl is None or ttl < 0 else now + ttl / 1000
            batch.append((key, _raw(data), expires))
        return batch

    async def _clear(self, now: float) -> int:
        self._trust(True)
        client, size = self._client, self.scan_count
        removed = 0
        names: list[Any] = []
        async for name in client.scan_iter(match=self._prefix + "*", count=size):
            names.append(name)
            if len(names) >= size:
                removed += int(await client.unlink(*names))
                names = []
        if names:
            removed += int(await client.unlink(*names))
        return removed

    async def _ping(self) -> None:
        await self._client.ping()
