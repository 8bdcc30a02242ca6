"""The Redis and Valkey session storage, on one server or a Redis Cluster.

A session is a handful of keys under one hash tag (see
:mod:`~pyrogram_storage.redisdb.layout`); every batch of writes is one Lua script
(:mod:`.scripts`), stored whole or not at all; every lookup is one command. No driver
is imported until a client is built or checked.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, unquote, urlencode

from .._pending import Changes
from ..base import Storage
from ..errors import (
    BackendError,
    CorruptSessionError,
    DiskFullError,
    InvalidTypeError,
    InvalidValueError,
    MigrationError,
    SessionNotFoundError,
    StorageClosedError,
    UnknownSchemaError,
)
from ..types import Peer, SessionData, UpdateState
from . import client as redisdb
from . import layout, schema, scripts, tracking
from .layout import Keys

__all__ = ["DEFAULT_CLIENT_OPTIONS", "DEFAULT_PREFIX", "RedisStorage"]

T = TypeVar("T")

log = logging.getLogger("pyrogram_storage")

DEFAULT_PREFIX = "pyrogram_storage"
"""The first part of every key's hash tag: ``{pyrogram_storage:NAME}:peers``..."""

DEFAULT_CLIENT_OPTIONS = redisdb.DEFAULT_CLIENT_OPTIONS

_LOCATION_OPTIONS = ("prefix", "driver")
"""Query parameters of a location that are ours, not the driver's."""
_INDEX_KEYS = frozenset({b"peers", b"names", b"usernames", b"phones", b"ids", b"types"})
"""Keys every change of which names its peers by a ``changed:<id>`` key too."""
_READ_CHUNK = 1000  # update state ids per HMGET
_DELETE_CHUNK = 500  # keys per UNLINK


class RedisStorage(Storage):
    """A session kept in Redis or Valkey, on one server or a Redis Cluster.

    Session fields are stored before their call returns. Peer, username and
    update-state writes are visible to this object at once and stored within
    ``commit_interval`` (50 ms by default; 0 stores each before its call returns),
    each batch by one Lua script: atomic, one round trip whatever its size. Other
    processes see them once stored.

    :param name: the session name (no ``{`` or ``}``: it goes inside the keys' hash tag).
    :param client: an asyncio client: redis-py's ``redis.asyncio.Redis`` or
        ``RedisCluster``, valkey's ``valkey.asyncio.Valkey`` or ``ValkeyCluster``
        (with ``decode_responses=False``, the default). It stays the caller's:
        :meth:`close` does not close it. Or a
        :class:`~pyrogram_storage.redisdb.client.ClientRecipe`: the storage then builds
        its own client on :meth:`open` and closes it on :meth:`close` (what
        :meth:`from_url` does).
    :param prefix: the first part of the keys' hash tag, ``{prefix:name}``.
    :param sole_writer: promise that while this object is open no other object or
        process writes this session. It then keeps peers in memory
        (``peer_cache_size``), answers lookups by id from there, does not write again
        a peer that did not change, and serves the session fields from memory.
        Leave it False (the default) when several processes share the session: peers
        looked up are then kept in memory too (``peer_cache_size``), and the server
        says what the others change (``CLIENT TRACKING`` on a connection of the
        storage's own, see :mod:`pyrogram_storage.redisdb.tracking`): a lookup made
        after another process's write was acknowledged sees it; on a cluster that
        connection goes to the node serving the session's slot, and moves with it.
        While that connection is down (or the slot moving), and over TLS, every lookup
        asks the server.
    :param options: ``username_ttl``, ``session_string``, ``peer_cache_size``,
        ``commit_interval``, ``read_only`` (see :class:`~pyrogram_storage.Storage`).
    :raises InvalidTypeError: ``client`` is not an asyncio redis-py or valkey client (a
        synchronous one included); on :meth:`open`, a client built with
        ``decode_responses=True``.
    :raises InvalidValueError: ``name`` or ``prefix`` holds a brace, or ``prefix`` a ``:``.
    """

    requires = "redis"
    default_commit_interval = 0.05
    delivers_invalidations = True

    def __init__(
        self,
        name: str,
        client: Any,
        *,
        prefix: str = DEFAULT_PREFIX,
        sole_writer: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(name, **options)
        if not isinstance(prefix, str) or not prefix:
            raise InvalidValueError("prefix must be a non-empty string")
        for what, text in (("session name", name), ("prefix", prefix)):
            if "{" in text or "}" in text:
                raise InvalidValueError(
                    f"a Redis {what} cannot hold '{{' or '}}': it goes inside the keys' hash tag"
                )
        if ":" in prefix:
            # {prefix:name} must name one (prefix, name) pair only: with a ':' in the
            # prefix, prefix="p:a" name="b" and prefix="p" name="a:b" would share keys.
            raise InvalidValueError(
                f"a Redis prefix cannot hold ':', not {prefix!r}: it separates the prefix "
                "from the session name in the keys"
            )
        if not isinstance(sole_writer, bool):
            raise InvalidTypeError(f"sole_writer must be a bool, not {type(sole_writer).__name__}")
        self.prefix = prefix
        self.sole_writer = sole_writer
        self.keys = Keys.of(prefix, name)
        self._recipe: redisdb.ClientRecipe | None = None
        self._client: Any = None
        if isinstance(client, redisdb.ClientRecipe):
            self._recipe = client
            self.driver = client.driver
        else:
            self.driver = _checked_client(client)
            self._client = client
        self._load_errors()
        self._open_client: Any = None  # the client in use while open
        self._url: str | None = None  # where from_url() connects
        self._calls = 0  # driver calls in flight
        self._idle: asyncio.Event | None = None  # set when the last of them ends
        self._version = 0
        self._tracker: tracking.Tracker | None = None
        self._cluster = False  # tracking on the node serving the session's slot
        self._slot = 0  # on a cluster: that slot
        self._tag = (self.keys.tag + ":").encode()
        self._writer = secrets.token_hex(6)  # names this object in its changed-peer keys
        self._hget_peer = tracking.command_head(3, "HGET", self.keys.peers)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        name: str,
        driver: str | None = None,
        cluster: bool | None = None,
        client_options: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> RedisStorage:
        """Build a storage whose client is made from ``url`` on :meth:`open`.

        The storage owns that client: :meth:`close` closes it. Nothing connects before
        :meth:`open`.

        :param url: ``redis://[[user]:password@]host[:port][/db]``, ``rediss://`` (TLS)
            or ``unix:///path/to/socket?db=0``.
        :param name: the session name.
        :param driver: ``"redis"`` (redis-py) or ``"valkey"``; by default redis-py if
            it is installed, else valkey.
        :param cluster: True for a Redis Cluster (``url`` names any node); None (the
            default) asks the server on the first :meth:`open`.
        :param client_options: keyword arguments for the client (``socket_timeout``...;
            :data:`DEFAULT_CLIENT_OPTIONS` otherwise).
        :param options: the other arguments of :class:`RedisStorage`.
        :raises MissingDriverError: the driver is not installed (the message names the extra).
        :raises InvalidValueError: a bad URL or driver name, or an option in the URL the
            driver does not know.
        """
        chosen = redisdb.default_driver() if driver is None else driver
        if cluster is not None and not isinstance(cluster, bool):
            raise InvalidTypeError(f"cluster must be a bool or None, not {type(cluster).__name__}")
        try:
            recipe = redisdb.ClientRecipe(url, chosen, cluster)  # checks the URL and driver
        except ValueError as exc:
            raise InvalidValueError(str(exc)) from None
        redisdb.import_driver(chosen)
        try:
            redisdb.check_url_options(url, chosen)
        except ValueError as exc:
            raise InvalidValueError(str(exc)) from None
        recipe.options = redisdb.client_options(chosen, client_options, cluster)
        storage = cls(name, recipe, **options)
        storage._url = url
        return storage

    @classmethod
    def from_location(cls, location: str, **options: Any) -> RedisStorage:
        """Build the storage of ``redis://HOST:PORT/DB#NAME`` (also ``rediss://``, ``unix://``).

        ``?prefix=`` and ``?driver=`` in the query are this class's options; the rest
        of the URL goes to the driver.

        :raises InvalidValueError: no ``#NAME``, or a bad URL.
        """
        base, _, fragment = location.partition("#")
        name = unquote(fragment)
        if not name:
            raise InvalidValueError(
                "a Redis location names its session after '#': redis://HOST:PORT/DB#NAME"
            )
        head, _, text = base.partition("?")
        query = parse_qsl(text, keep_blank_values=True)
        ours = {key: value for key, value in query if key in _LOCATION_OPTIONS}
        rest = [(key, value) for key, value in query if key not in _LOCATION_OPTIONS]
        url = f"{head}?{urlencode(rest)}" if rest else head
        return cls.from_url(url, name=name, **{**ours, **options})

    @property
    def location(self) -> str | None:
        url = self._url
        if url is None:
            return None  # built on a client of the caller's: its URL is not known here
        extra = [("prefix", self.prefix)] if self.prefix != DEFAULT_PREFIX else []
        if extra:
            url += ("&" if "?" in url else "?") + urlencode(extra)
        return f"{url}#{quote(self.name, safe='')}"

    def __repr__(self) -> str:
        # Never the URL: it may carry a password.
        return f"{type(self).__name__}(name={self.name!r}, prefix={self.prefix!r})"

    def _sole_writer(self) -> bool:
        return self.sole_writer and not self.read_only

    def _load_errors(self) -> None:
        self._no_script = redisdb.no_script_error(self.driver)
        self._response_error = redisdb.response_error(self.driver)

    @property
    def _where(self) -> str:
        return f"Redis session {self.name!r} ({self.keys.tag})"

    def _bound(self) -> Any:
        client = self._open_client
        if client is None:
            raise StorageClosedError(f"{self!r} is closed")
        return client

    async def _run(self, operation: Awaitable[T]) -> T:
        """Await a driver call; a server that refuses to write says why."""
        self._calls += 1
        try:
            return await operation
        except self._response_error as exc:
            # redis-py and valkey drop the reply's code (OOM, READONLY) into the class name.
            message, kind = str(exc), type(exc).__name__
            if "not pyrogram-storage data" in message:
                raise CorruptSessionError(
                    f"{self._where}: {_first_line(message)[len('WRONGTYPE ') :]}; another "
                    "program wrote under this session's hash tag (nothing was stored)"
                ) from exc
            if "MISCONF" in message:
                raise DiskFullError(
                    f"the Redis server cannot write to its disk ({_first_line(message)}); "
                    "free space in its data directory (nothing stored was changed)"
                ) from exc
            if kind == "OutOfMemoryError" or "maxmemory" in message:
                raise BackendError(
                    "the Redis server is out of memory (used memory > maxmemory); raise its "
                    "maxmemory or free memory (nothing stored was changed)"
                ) from exc
            if kind == "ReadOnlyError" or "read only replica" in message:
                raise BackendError(
                    "the Redis server is a read-only replica; connect to the primary"
                ) from exc
            raise
        finally:
            self._calls -= 1
            if not self._calls and self._idle is not None:
                self._idle.set()

    async def _script(
        self, script: redisdb.Script, keys: Sequence[str], args: Sequence[Any]
    ) -> Any:
        return await self._run(script.run(self._bound(), keys, args, self._no_script))

    # -- lifecycle -----------------------------------------------------------------------------

    async def _open(self) -> SessionData:
        owned = self._client is None
        client = self._client
        if owned:
            assert self._recipe is not None
            client = await self._recipe.build()
        try:
            if redisdb.decodes_responses(client):
                raise InvalidTypeError(
                    "the Redis client decodes responses (decode_responses=True); RedisStorage "
                    "needs bytes back (the auth key is binary): build it without that option"
                )
            self._open_client = client
            keys = self.keys
            version, writer, stored, fields = await self._script(
                scripts.OPEN, (keys.schema, keys.session, keys.peers, keys.states), ()
            )
            number = schema.check_version(version, writer, self._where)
            if number == 0 and stored:
                raise UnknownSchemaError(
                    f"{self._where} holds data but no schema hash; it was not written by "
                    "pyrogram-storage and was left untouched"
                )
            if number == 0 and self.read_only:
                raise SessionNotFoundError(f"no {self._where} on this server")
            if number < schema.latest() and not self.read_only:
                await self._run(schema.upgrade(client, keys, number, self._where))
            elif number < schema.READABLE_FROM:
                raise MigrationError(
                    f"{self._where} has layout version {number}, which this pyrogram-storage "
                    f"reads only once migrated: open it once without read_only to bring it "
                    f"to version {schema.latest()}"
                )
            # read-only: the stored version is read as it is (it takes no writes)
            self._version = number if self.read_only else schema.latest()
            if not self._sole_writer():
                await self._track(client)
            return layout.decode_session(dict(layout.pairs(fields)), self._where)
        except BaseException:
            self._open_client = None
            await self._untrack()
            if owned:
                await client.aclose()
            raise

    async def _track(self, client: Any) -> None:
        """Start hearing of other writers' changes (nothing where that cannot be had).

        On a cluster, on the primary serving the session's slot (its keys share one
        hash tag): :mod:`.tracking` says how a move of the slot is noticed.
        """
        cluster = redisdb.is_cluster(client)
        try:
            address = tracking.address_of(client, self.keys.schema)
        except tracking.NotOwner:
            address = None  # the cluster's map is in flux: found by the background task
        except tracking.Unsupported as exc:
            log.debug("%r: no invalidated cache, every lookup asks the server: %s", self, exc)
            return
        tracker = tracking.Tracker(
            address or tracking.Address(None, 0, None, None, None, None),
            self._tag,
            self._invalidated,
            self._tracking_changed,
            self._locate if cluster else None,
        )
        self._cluster = cluster
        if cluster:
            self._slot = client.keyslot(self.keys.schema)
        try:
            if address is None:
                raise tracking.NotOwner("no node serves the session's slot")
            await tracker.start()
        except tracking.NotOwner as exc:
            log.info("%r: tracking waits for the cluster to settle: %s", self, exc)
            tracker.start_later()
        except tracking.Unsupported as exc:
            log.warning("%r: no invalidated cache, every lookup asks the server: %s", self, exc)
            return
        except (OSError, asyncio.TimeoutError) as exc:
            raise BackendError(
                f"{self!r}: could not open the connection that hears of other writers' "
                f"changes: {exc}"
            ) from exc
        self._tracker = tracker

    async def _locate(self) -> tracking.Address:
        """Where the session's slot is served now: a command on the slot first, which
        makes the cluster client follow a move and refresh its map."""
        client = self._bound()
        await client.exists(self.keys.schema)
        return tracking.address_of(client, self.keys.schema)

    async def _untrack(self) -> None:
        tracker, self._tracker = self._tracker, None
        if tracker is not None:
            await tracker.stop()

    async def _opened(self) -> None:
        await super()._opened()
        tracker = self._tracker
        if not self._sole_writer():
            # Trusted only with tracking on (the connection may have dropped meanwhile).
            self._set_cache_trusted(tracker is not None and tracker.live)

    def _catch_up(self) -> bool:
        tracker = self._tracker
        if tracker is None:
            return False
        if self._cluster and tracker.live and not self._owner_tracked(tracker):
            return False
        return tracker.drain()

    def _owner_tracked(self, tracker: tracking.Tracker) -> bool:
        """Whether the cluster client's map still names the tracked node for the slot
        (it follows a ``MOVED`` one of its commands met); if not, tracking is set up
        on the new owner and memory is not trusted until then."""
        client = self._open_client
        try:
            owner = tracking.owner_of(client, self._slot)
        except Exception:  # the driver's SlotNotCoveredError: no owner known
            owner = None
        if owner == tracker.address.node:
            return True
        tracker.lose(f"the cluster client's map moved the session's slot to {owner}")
        return False

    def _tracking_changed(self, trusted: bool) -> None:
        if trusted:
            self._invalidate(None, session=True, states=True)
        self._set_cache_trusted(trusted)

    def _invalidated(self, keys: list[bytes] | None) -> None:
        """The server says these keys changed (None: every key)."""
        if keys is None:
            self._invalidate(None, session=True, states=True)
            return
        tag, size, mine = self._tag, len(self._tag), self._writer.encode()
        peers: set[int] = set()
        session = states = everything = indexes = marked = False
        for key in keys:
            rest = key[size:] if key.startswith(tag) else b""
            if rest.startswith(b"changed:"):
                marked = True
                peer, _, writer = rest[8:].partition(b":")
                if writer == mine:
                    continue  # this storage's own write: memory holds what it wrote
                try:
                    peers.add(int(peer))
                except ValueError:
                    everything = True
            elif rest == b"session":
                session = True
            elif rest == b"states":
                states = True
            elif rest in _INDEX_KEYS:
                indexes = True
            else:
                everything = True  # the schema (a delete, a migration) or not ours
        if indexes and not marked:
            everything = True  # peers changed by no script of ours (evicted...)
        if everything:
            self._invalidate(None, session=True, states=True)
        elif peers or session or states:
            self._invalidate(frozenset(peers), session=session, states=states)

    async def _close(self) -> None:
        await self._untrack()
        client, self._open_client = self._open_client, None
        if client is not None and self._client is None:
            # Calls still in flight end first: a cluster client closed under one of them
            # would connect again, and be left open.
            while self._calls:
                self._idle = asyncio.Event()
                await self._idle.wait()
            self._idle = None
            await client.aclose()

    async def _delete(self) -> None:
        """Unlink every key under the session's hash tag (``SCAN``, then ``UNLINK``).

        The schema hash goes last: a delete cut short leaves a session that still
        opens, and the next delete finishes it.
        """
        client = self._open_client or self._client
        owned = client is None
        if owned:
            assert self._recipe is not None
            client = await self._recipe.build()
        try:
            keys = self.keys
            found = [
                name
                async for name in redisdb.scan_slot(client, keys.pattern, keys.schema)
                if layout.belongs(name, keys)
            ]
            last = keys.schema.encode()
            rest = [name for name in found if name != last]
            for start in range(0, len(rest), _DELETE_CHUNK):
                await self._run(client.unlink(*rest[start : start + _DELETE_CHUNK]))
            await self._run(client.unlink(keys.schema))
        finally:
            if owned:
                await client.aclose()

    async def _ping(self) -> None:
        await self._run(self._bound().exists(self.keys.schema))

    # -- writes --------------------------------------------------------------------------------

    async def _apply(self, changes: Changes) -> None:
        args = layout.apply_args(changes, self._version, self._writer)
        tracker = self._tracker
        if tracker is not None and tracker.live:
            # On the tracking connection (NOLOOP): the server does not tell this storage
            # of its own writes, so memory keeps what it wrote; what others write after
            # is told after the reply, on the same connection.
            try:
                await self._run(self._tracked_script(tracker, scripts.APPLY, self.keys.all, args))
                return
            except tracking.NotOwner:
                pass  # a cluster node no longer serving the slot ran nothing: the driver
        await self._script(scripts.APPLY, self.keys.all, args)

    async def _tracked_script(
        self,
        tracker: tracking.Tracker,
        script: redisdb.Script,
        keys: Sequence[str],
        args: Sequence[Any],
    ) -> Any:
        (reply,) = await tracker.execute(("EVALSHA", script.sha, len(keys), *keys, *args))
        if isinstance(reply, tracking.ResponseError) and str(reply).startswith("NOSCRIPT"):
            (reply,) = await tracker.execute(("EVAL", script.source, len(keys), *keys, *args))
        if isinstance(reply, tracking.ResponseError):
            raise self._response_error(str(reply))
        return reply

    # -- reads ---------------------------------------------------------------------------------

    async def _peer_value(self, peer_id: int) -> Any:
        """``HGET`` of a peer on the tracking connection while it is up (a fifth of the
        driver's CPU time a round trip: the lookups that memory cannot answer), else the
        driver's."""
        tracker = self._tracker
        if tracker is not None and tracker.live:
            field = b"%d" % peer_id
            data = self._hget_peer + b"$%d\r\n%s\r\n" % (len(field), field)
            try:
                return await self._run(self._tracked_encoded(tracker, data))
            except OSError:
                pass  # the connection dropped meanwhile: the driver's own connection asks
        return await self._run(self._bound().hget(self.keys.peers, peer_id))

    async def _read_script(
        self, script: redisdb.Script, keys: Sequence[str], args: Sequence[Any]
    ) -> Any:
        """A read whose answer memory may keep. On a cluster, on the tracking connection
        while it is up: a slot half moved answers ``ASK`` there (memory is then dropped
        until tracking is on the slot's new node), where the driver would follow it to
        the new node unseen and memory keep what later writes there make stale."""
        tracker = self._tracker
        if self._cluster and tracker is not None and tracker.live:
            try:
                return await self._run(self._tracked_script(tracker, script, keys, args))
            except OSError:
                pass  # dropped, or not the slot's node: the driver asks (memory untrusted)
        return await self._script(script, keys, args)

    async def _tracked(self, tracker: tracking.Tracker, command: tuple[Any, ...]) -> Any:
        (reply,) = await tracker.execute(command)
        if isinstance(reply, tracking.ResponseError):
            raise self._response_error(str(reply))
        return reply

    async def _tracked_encoded(self, tracker: tracking.Tracker, data: bytes) -> Any:
        """:meth:`_tracked` of one command already in RESP."""
        (reply,) = await tracker.execute_encoded(data, 1)
        if isinstance(reply, tracking.ResponseError):
            raise self._response_error(str(reply))
        return reply

    async def _read_session(self) -> SessionData | None:
        tracker = self._tracker
        if self._cluster and tracker is not None and tracker.live:  # see _read_script
            try:
                found = await self._run(self._tracked(tracker, ("HGETALL", self.keys.session)))
                return layout.decode_session(dict(layout.pairs(found)), self._where)
            except OSError:
                pass
        fields = await self._run(self._bound().hgetall(self.keys.session))
        return layout.decode_session(fields, self._where)

    async def _find_peer(self, peer_id: int, usernames: bool) -> Peer | None:
        keys = self.keys
        if not usernames:
            value = await self._peer_value(peer_id)
            names = None
        else:
            value, names = await self._read_script(
                scripts.FIND_PEER, (keys.peers, keys.names), (peer_id,)
            )
        if value is None:
            return None
        return layout.decode_peer(peer_id, value, names, usernames, self._where)

    async def _find_by_username(self, username: str, usernames: bool) -> Peer | None:
        return await self._find_holder(self.keys.usernames, username, usernames)

    async def _find_by_phone(self, phone: str, usernames: bool) -> Peer | None:
        return await self._find_holder(self.keys.phones, phone, usernames)

    async def _find_holder(self, index: str, key: str, usernames: bool) -> Peer | None:
        """The newest peer the index gives ``key`` (one holder, nearly always)."""
        keys = self.keys
        found = await self._read_script(
            scripts.FIND_HOLDERS, (index, keys.peers, keys.names), (key, "1" if usernames else "0")
        )
        newest: Peer | None = None
        for index_id, value, names in zip(found[::3], found[1::3], found[2::3], strict=True):
            if value is None:
                continue  # a holder deleted meanwhile
            peer = layout.decode_peer(int(index_id), value, names, usernames, self._where)
            if newest is None or (peer.last_update_on or 0, peer.id) > (
                newest.last_update_on or 0,
                newest.id,
            ):
                newest = peer
        return newest

    async def _read_peers(self, after: int | None, limit: int) -> list[Peer]:
        keys = self.keys
        start = "-" if after is None else "(" + layout.order_member(after)
        found = await self._read_script(
            scripts.READ_PEERS, (keys.ids, keys.peers, keys.names), (start, limit)
        )
        peers = []
        for peer_id, value, names in zip(found[::3], found[1::3], found[2::3], strict=True):
            if value is None:
                raise layout.damaged(self._where, f"a peer id ({int(peer_id)}) without its peer")
            peers.append(layout.decode_peer(int(peer_id), value, names, True, self._where))
        return peers

    async def _count_peers(self) -> dict[str, int]:
        counts = await self._run(self._bound().hgetall(self.keys.types))
        try:
            return {layout.text(kind): int(number) for kind, number in counts.items()}
        except (ValueError, UnicodeError):
            raise layout.damaged(self._where, "a peer count") from None

    async def _read_states(self, ids: Sequence[int] | None) -> list[UpdateState]:
        client, key, where = self._bound(), self.keys.states, self._where
        if ids is None:
            stored = await self._run(client.hgetall(key))
            return [
                layout.decode_state(int(state_id), value, where)
                for state_id, value in stored.items()
            ]
        states: list[UpdateState] = []
        for start in range(0, len(ids), _READ_CHUNK):
            chunk = ids[start : start + _READ_CHUNK]
            values = await self._run(client.hmget(key, chunk))
            states.extend(
                layout.decode_state(state_id, value, where)
                for state_id, value in zip(chunk, values, strict=True)
                if value is not None
            )
        return states


def _checked_client(client: Any) -> str:
    """Refuse what is not an asyncio redis-py or valkey client; return its driver's name."""
    try:
        return redisdb.check_async_client(client)
    except TypeError as exc:
        raise InvalidTypeError(str(exc)) from None


def _first_line(message: str) -> str:
    return message.strip().splitlines()[0] if message.strip() else message
