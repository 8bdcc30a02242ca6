"""The real client's update path, offline: what the storage costs a bot per incoming message.

Runs in a client's own virtualenv (Kurigram 2.2.26, Pyrofork 2.3.69 or Pyrogram 2.0.106)
and drives that client's real ``Client``, never connected:

1. a first ``Client`` fills its storage with the N workload peers through the client's
   own storage dialect (batches of 100, as ``fetch_peers`` would), sets the session
   fields a logged-in bot has, saves and closes;
2. a second ``Client`` over the same data opens its storage as ``start()`` does
   (``load_session()``, timed as ``open_ms``), then is marked connected, so that
   ``resolve_peer`` answers from the storage;
3. each update is a ``raw.types.Updates`` holding one ``UpdateNewMessage`` with a
   ``pts``, and its sender (a ``raw.types.User``): 90% of senders are peers already
   stored, unchanged, drawn from the N (``params["stream"]``: ``uniform``; ``zipf``,
   s = 1.1, a busy group; ``new``: every sender new, a bot in a big public group); the
   rest are new users. The client
   handles it (``handle_updates``: ``fetch_peers`` and the update-state writes) and a
   bot replying resolves the chat twice (``send_message`` resolves ``chat_id`` and the
   ``reply_parameters``' chat).

Nothing reaches the network: ``Client.invoke`` and the authorisation that
``load_session`` would start on an empty session are replaced by functions that fail
the run. ``handle_updates`` only invokes ``GetDifference`` for short updates and
``GetChannelDifference`` for channel messages with min peers; these updates are
neither.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import workload as w
from backends import OPTIONS, commit_interval, our_storage, our_versions, version
from systems import System

API_ID = 123456
API_HASH = "0123456789abcdef0123456789abcdef"
NOT_GIVEN: Any = object  # the clients' "read, do not write" sentinel: the class itself


class NetworkUsed(RuntimeError):
    """The client tried to reach Telegram: the benchmark must stay offline."""


async def _offline_invoke(*args: Any, **kwargs: Any) -> Any:
    raise NetworkUsed(f"the client invoked {type(args[0]).__name__ if args else '?'}")


class _OfflineAuth:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise NetworkUsed("load_session() found an empty session and started authorising")


# -- the ceiling: the client's own work, with plain dicts for storage --------------------------

_DICT_DATA: dict[str, dict[str, Any]] = {}  # survives the Client objects, like a file


def _dict_state(name: str) -> dict[str, Any]:
    return _DICT_DATA.setdefault(
        name,
        {"session": {"dc_id": 2, "date": 0}, "peers": {}, "usernames": {}, "phones": {}},
    )


def dict_storage(family: str, name: str) -> Any:
    """A storage keeping everything in dicts, built on the client's own storage base class."""
    from pyrogram import storage as client_storage
    from pyrogram.storage.sqlite_storage import get_input_peer

    def field(key: str) -> Any:
        async def accessor(self: Any, value: Any = NOT_GIVEN) -> Any:
            session = self.state["session"]
            if value is NOT_GIVEN:
                return session.get(key)
            session[key] = value
            return None

        accessor.__name__ = key
        return accessor

    class DictStorage(client_storage.Storage):  # type: ignore[misc, valid-type]
        def __init__(self, name: str) -> None:
            self.name = name
            self.state = _dict_state(name)
            self.peers = self.state["peers"]
            self.usernames = self.state["usernames"]
            self.phones = self.state["phones"]
            self.states: dict[int, tuple[Any, ...]] = {}

        async def open(self) -> None:
            pass

        async def save(self) -> None:
            pass

        async def close(self) -> None:
            pass

        async def delete(self) -> None:
            _DICT_DATA.pop(self.name, None)

        async def update_peers(self, peers: Any) -> None:
            now = int(time.time())
            for peer in peers:
                peer_id, access_hash, kind = peer[0], peer[1], peer[2]
                phone = peer[-1]
                self.peers[peer_id] = (peer_id, access_hash, kind, now)
                if phone:
                    self.phones[phone] = peer_id
                if len(peer) == 5 and peer[3]:
                    self.usernames[peer[3]] = peer_id

        async def update_usernames(self, usernames: Any) -> None:
            for peer_id, names in usernames:
                for username in [names] if isinstance(names, str) else names:
                    if username:
                        self.usernames[username] = peer_id

        async def get_peer_by_id(self, peer_id: int) -> Any:
            row = self.peers.get(peer_id)
            if row is None:
                raise KeyError(f"ID not found: {peer_id}")
            return get_input_peer(*row[:3])

        async def get_peer_by_username(self, username: str) -> Any:
            return await self.get_peer_by_id(self.usernames[username])

        async def get_peer_by_phone_number(self, phone_number: str) -> Any:
            return await self.get_peer_by_id(self.phones[phone_number])

        # Kurigram's update-state API
        async def get_update_states(self, ids: Any = None) -> list[Any]:
            return list(self.states.values())

        async def set_update_state(self, update_state: Any) -> None:
            states = [update_state] if hasattr(update_state, "id") else update_state
            for state in states:
                old = self.states.get(state.id)
                if old is not None:
                    state = type(state)(
                        *(
                            new if new is not None else was
                            for new, was in zip(
                                (state.id, state.pts, state.qts, state.date, state.seq),
                                (old.id, old.pts, old.qts, old.date, old.seq),
                                strict=True,
                            )
                        )
                    )
                self.states[state.id] = state

        async def delete_update_state(self, state_id: Any) -> None:
            for key in [state_id] if isinstance(state_id, int) else list(state_id):
                self.states.pop(key, None)

        # Pyrofork's update-state API
        async def update_state(self, value: Any = NOT_GIVEN) -> Any:
            if value is NOT_GIVEN:
                return list(self.states.values())
            if isinstance(value, int):
                self.states.pop(value, None)
            else:
                self.states[value[0]] = tuple(value)
            return None

        async def remove_state(self, chat_id: int) -> None:
            self.states.pop(chat_id, None)

        async def export_session_string(self) -> str:
            return ""

        dc_id = field("dc_id")
        api_id = field("api_id")
        server_address = field("server_address")
        port = field("port")
        test_mode = field("test_mode")
        auth_key = field("auth_key")
        date = field("date")
        user_id = field("user_id")
        is_bot = field("is_bot")

    missing = sorted(getattr(DictStorage, "__abstractmethods__", ()))
    if missing:
        raise SystemExit(f"the {family} dict storage lacks {', '.join(missing)}")
    return DictStorage(name)


# -- building the client -------------------------------------------------------------------


def build_client(system: System, name: str, workdir: Path, uri: str | None) -> Any:
    """A ``Client`` with the system's storage, as a user would write it."""
    from pyrogram import Client

    family = system.venv
    keyword = "storage_engine" if family == "kurigram" else "storage"
    common: dict[str, Any] = {
        "api_id": API_ID,
        "api_hash": API_HASH,
        "workdir": str(workdir),
    }
    if system.kind == "own":
        return Client(name, **common)
    if family == "pyrogram":
        # Pyrogram 2.0.106 takes no storage argument: the storage is assigned before start().
        client = Client(name, **common)
        client.storage = _pyrogram_storage(system, name, workdir, uri)
        return client
    if system.kind == "own-mongo":
        from motor.motor_asyncio import AsyncIOMotorClient

        return Client(
            name, **common, mongodb={"connection": AsyncIOMotorClient(uri), "remove_peers": False}
        )
    if system.kind == "dict":
        return Client(name, **common, **{keyword: dict_storage(str(family), name)})
    if system.kind == "ours":
        import pyrogram_storage

        assert system.backend is not None
        storage = our_storage(system.backend, name, workdir, uri, OPTIONS)
        return Client(name, **common, **{keyword: pyrogram_storage.for_client(storage)})
    raise SystemExit(f"{system.name}: unknown path kind {system.kind!r}")


def _pyrogram_storage(system: System, name: str, workdir: Path, uri: str | None) -> Any:
    if system.kind == "asyncpg-storage":
        import asyncpg
        from pyrogram_asyncpg_storage import PostgreSQLStorage

        class Pooled(PostgreSQLStorage):  # type: ignore[misc]
            """Its pool made on open (an asyncpg pool is made inside the running loop)."""

            def __init__(self) -> None:
                super().__init__(name, None)

            async def open(self) -> None:
                if self.pool is None:
                    self.pool = await asyncpg.create_pool(uri, min_size=1, max_size=4)
                await super().open()

            async def close(self) -> None:
                if self.pool is not None:
                    await self.pool.close()
                    self.pool = None

        return Pooled()
    if system.kind == "ours":
        import pyrogram_storage

        assert system.backend is not None
        storage = our_storage(system.backend, name, workdir, uri, OPTIONS)
        return pyrogram_storage.for_client(storage)
    raise SystemExit(f"{system.name}: unknown path kind {system.kind!r}")


def go_offline(client: Any) -> None:
    """Make any attempt to reach Telegram fail the run."""
    import pyrogram.client

    client.invoke = _offline_invoke
    pyrogram.client.Auth = _OfflineAuth  # type: ignore[attr-defined]


async def set_session(storage: Any) -> None:
    """Write the session fields of a logged-in bot through the client's accessors."""
    for field, value in {**w.SESSION, "is_bot": True, "date": 0}.items():
        await getattr(storage, field)(value)


async def populate(storage: Any, family: str, n: int) -> None:
    """Write the N workload peers as the client's ``fetch_peers`` would, 100 at a time."""
    for batch in w.batches(range(n)):
        if family == "kurigram":
            await storage.update_peers(
                [(w.peer_id(i), w.access_hash(i), w.TYPES[i % 10], w.phone(i)) for i in batch]
            )
            names = [(w.peer_id(i), [w.username(i, 0)]) for i in batch if w.username(i, 0)]
            if names:
                await storage.update_usernames(names)
        elif family == "pyrogram":
            await storage.update_peers(
                [
                    (w.peer_id(i), w.access_hash(i), w.TYPES[i % 10], w.username(i, 0), w.phone(i))
                    for i in batch
                ]
            )
        else:
            await storage.update_peers(
                [
                    (w.peer_id(i), w.access_hash(i), w.TYPES[i % 10], w.username(i, 0), w.phone(i))
                    for i in batch
                ]
            )
            await storage.update_usernames([])
        await asyncio.sleep(0)


def make_updates(senders: list[tuple[int, bool]], first_pts: int) -> list[tuple[Any, int]]:
    """One ``Updates`` per sender: a private message with a ``pts``, and the sender."""
    from pyrogram import raw

    date = int(time.time())
    out = []
    for k, (i, _known) in enumerate(senders):
        pid = w.peer_id(i)
        user = raw.types.User(
            id=pid,
            access_hash=w.access_hash(i),
            first_name="Peer",
            username=w.username(i, 0),
            phone=w.phone(i),
            bot=w.TYPES[i % 10] == "bot",
        )
        chat = raw.types.PeerUser(user_id=pid)
        message = raw.types.Message(
            id=first_pts + k, peer_id=chat, from_id=chat, date=date, message="hello"
        )
        update = raw.types.UpdateNewMessage(message=message, pts=first_pts + k, pts_count=1)
        out.append(
            (raw.types.Updates(updates=[update], users=[user], chats=[], date=date, seq=0), pid)
        )
    return out


async def drive(client: Any, updates: list[tuple[Any, int]], pause: bool = False) -> None:
    """Hand each update to the client, then resolve its chat twice, as a reply would.

    ``pause``: give the loop a turn after each update, as waiting for the next one
    from the network would (the ticker can only measure stalls between turns).
    """
    handle, resolve = client.handle_updates, client.resolve_peer
    queue = client.dispatcher.updates_queue
    for k, (update, chat_id) in enumerate(updates):
        await handle(update)
        await resolve(chat_id)
        await resolve(chat_id)
        if pause:
            await asyncio.sleep(0)
        if k % 1000 == 999:
            while not queue.empty():  # no dispatcher runs: drop what it would handle
                queue.get_nowait()
    while not queue.empty():
        queue.get_nowait()


async def run(
    system: System, n: int, workdir: Path, params: dict[str, Any], uri: str | None
) -> dict[str, Any]:
    family = str(system.venv)
    name = f"path_{system.name.replace('-', '_')}_{n}"
    idle_ms = await w.idle_stall(float(params["idle_s"]))
    m: dict[str, Any] = {}
    loop: dict[str, Any] = {}

    first = build_client(system, name, workdir, uri)
    go_offline(first)
    await first.storage.open()
    await set_session(first.storage)
    start = time.perf_counter()
    await populate(first.storage, family, n)
    await first.storage.save()
    m["populate_us"] = (time.perf_counter() - start) / n * 1e6
    await first.storage.close()

    known = float(params["known"])
    stream = str(params.get("stream", "uniform"))
    counts = {
        "n": n,
        "updates": int(params["updates"]),
        "warmup": int(params["warmup"]),
        "metered_updates": int(params["metered_updates"]),
        "known": 0.0 if stream == "new" else known,
        "stream": stream,
    }
    fresh = 3 * n
    warm = make_updates(w.update_senders(n, counts["warmup"], known, w.SEED + 30, fresh, stream), 1)
    fresh += 10 * counts["warmup"] + 10
    timed = make_updates(
        w.update_senders(n, counts["updates"], known, w.SEED + 31, fresh, stream), 1 + len(warm)
    )
    fresh += 10 * counts["updates"] + 10
    metered = make_updates(
        w.update_senders(n, counts["metered_updates"], known, w.SEED + 32, fresh, stream),
        1 + len(warm) + len(timed),
    )
    del first
    w.settle()  # the prepared updates are the harness's: keep them out of the GC pauses
    rss_base = w.current_rss_mb()

    client = build_client(system, name, workdir, uri)
    go_offline(client)
    start = time.perf_counter()
    await client.load_session()  # what start() does before it connects
    opened_at = time.perf_counter()
    m["open_ms"] = (opened_at - start) * 1000
    client.is_connected = True  # resolve_peer refuses a client that never connected

    # Ours: the wrapped Storage; its flush() (write-behind engines) is timed on its own.
    flush = getattr(getattr(client.storage, "storage", None), "flush", None)
    await drive(client, warm)
    # Ours loads the stored peers into memory in the background after open: whether
    # that was still going on when the timed updates began (1) or done (0).
    engine = getattr(getattr(client.storage, "storage", None), "_peer_engine", None)
    loading = getattr(engine, "_loading", None)
    if engine is not None:
        m["peers_loading_at_start"] = float(loading is not None and not loading.done())
        if params.get("settle_memory") and loading is not None:
            # Steady state (a bot runs for hours): the timed updates start once memory
            # has filled; how long that took after open is reported on its own.
            await loading
            m["peers_loading_at_start"] = 0.0
        m["memory_filled_ms"] = (time.perf_counter() - opened_at) * 1000
    cpu, loop_cpu = w.process_cpu(), time.thread_time()
    start = time.perf_counter()
    await drive(client, timed)
    looped = time.perf_counter()
    if flush is not None:
        await flush()
    flushed = time.perf_counter()
    await client.storage.save()
    end = time.perf_counter()
    # CPU time, every thread of the process: what the update costs the machine, which
    # the wait for a core on a loaded machine does not inflate (nor an fsync's wait).
    m["path_cpu_us"] = (w.process_cpu() - cpu) / len(timed) * 1e6
    m["path_loop_cpu_us"] = (time.thread_time() - loop_cpu) / len(timed) * 1e6
    m["path_us"] = (end - start) / len(timed) * 1e6
    m["path_loop_us"] = (looped - start) / len(timed) * 1e6
    if flush is not None:
        m["path_flush_ms"] = (flushed - looped) * 1000
    m["path_save_ms"] = (end - flushed) * 1000

    async with w.LoopWatch(client.storage) as watcher:
        await drive(client, metered, pause=True)
        await client.storage.save()
    loop["path"] = watcher.result
    if metered:
        m["storage_calls_per_update"] = watcher.result["calls"] / len(metered)

    states = await _update_states(client.storage, family)
    await client.storage.close()
    m["rss_peak_mb"] = w.peak_rss_mb()
    m["rss_growth_mb"] = m["rss_peak_mb"] - rss_base
    counts["pts_stored"] = states
    config: dict[str, Any] = {"dialect": type(client.storage).__name__}
    neutral = getattr(client.storage, "storage", None)  # ours: the wrapped Storage
    if system.kind == "ours":
        config.update(commit_interval=commit_interval(neutral), options=OPTIONS)
    return {
        "metrics": m,
        "loop": loop,
        "idle_ms": idle_ms,
        "counts": counts,
        "config": config,
        "rss_base_mb": rss_base,
        "versions": _versions(system, family),
    }


async def _update_states(storage: Any, family: str) -> Any:
    """The stored pts of the common state (id 0): proof the updates went through."""
    if family == "kurigram":
        states = await storage.get_update_states()
        return next((s.pts for s in states if s.id == 0), None)
    if family == "pyrogram":
        return None  # Pyrogram 2.0.106 keeps no update state
    states = await storage.update_state()
    return next((s[1] for s in states if s[0] == 0), None)


def _versions(system: System, family: str) -> dict[str, str | None]:
    found: dict[str, str | None] = {family: version(family)}
    if system.kind == "ours":
        found.update(our_versions())
    if system.server == "mongo":
        found.update(pymongo=version("pymongo"), motor=version("motor"))
    if system.server == "postgres":
        found.update(asyncpg=version("asyncpg"))
        if system.kind == "asyncpg-storage":
            found.update({"pyrogram-asyncpg-storage": version("pyrogram-asyncpg-storage")})
    return found
