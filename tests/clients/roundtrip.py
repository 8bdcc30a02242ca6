"""Drive a real client on our storage and on its own, offline, and compare them.

Runs INSIDE one client's venv (see ``tests/clientenv.py``)::

    python roundtrip.py <client> <file|memory|custom|mongo|redis|postgres> <workdir> [server-url]
    python roundtrip.py <client> batch '[{"backend": ..., "workdir": ..., "url": ...}, ...]'

The second form runs several backends one after the other in one interpreter (the
client is imported once), each with fresh checks, and prints one report per backend.

Two ``Client`` objects load the same session string (the one the client itself
exported into ``tests/fixtures/sessions/<client>.json``): ``ours`` through
``for_client`` and the client's documented storage argument, ``ref`` with the
client's built-in in-memory storage. Both get the same raw users, chats and
channels through the client's own ``fetch_peers`` and ``handle_updates``; every
``resolve_peer``, storage lookup and update-state read must give the same result.
The network is never used: ``is_connected`` is set by hand and ``invoke`` raises
:class:`Offline`, so a lookup miss that makes the client ask Telegram shows up as
``Offline`` on both sides.

Prints one JSON line per backend (the checks made) and exits 1 if any check failed.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import logging
import os
import pathlib
import sys
import textwrap
import uuid
from typing import Any

HERE = pathlib.Path(__file__).resolve().parent
FIXTURES = HERE.parent / "fixtures" / "sessions"

CLIENT = sys.argv[1]
if sys.argv[2] == "batch":
    SCENARIOS: list[dict[str, Any]] = json.loads(sys.argv[3])
else:
    url = sys.argv[4] if len(sys.argv) > 4 else None
    SCENARIOS = [{"backend": sys.argv[2], "workdir": sys.argv[3], "url": url}]
# The scenario being run (set by run_scenario):
BACKEND = ""
WORKDIR = pathlib.Path()
MONGO_URI: str | None = None  # or a Redis or PostgreSQL URL
REDIS_NAME = ""
MODULE = "hydrogram" if CLIENT == "hydrogram" else "pyrogram"

logging.basicConfig(level=logging.WARNING)
client_module = importlib.import_module(MODULE)
raw = importlib.import_module(f"{MODULE}.raw")
T = raw.types

import pyrogram_storage  # noqa: E402
from pyrogram_storage import FileStorage, MemoryStorage, for_client  # noqa: E402

MANIFEST = json.loads((FIXTURES / f"{CLIENT}.json").read_text())
SESSION_STRING = MANIFEST["session_string"]
API_ID = MANIFEST["session"]["api_id"]
API_HASH = "0123456789abcdef0123456789abcdef"
CHANNEL_OFFSET = -1000000000000
STATE_DIALECT = {
    "kurigram": "objects",
    "pyrofork": "tuples",
    "irenogram": "tuples",
    "pyrotgfork": "tuples",
    "electrogram": "tuples",
}.get(CLIENT)


class Offline(Exception):
    """Raised instead of any request to Telegram."""


class Checks:
    def __init__(self) -> None:
        self.passed: list[str] = []
        self.failed: list[str] = []

    def equal(self, name: str, ours: Any, ref: Any) -> None:
        if ours == ref:
            self.passed.append(name)
        else:
            self.failed.append(f"{name}: ours={ours!r} ref={ref!r}")

    def true(self, name: str, condition: bool, detail: Any = "") -> None:
        if condition:
            self.passed.append(name)
        else:
            self.failed.append(f"{name}: {detail}")


checks = Checks()


def build(cls: type, **fields: Any) -> Any:
    """Construct a raw TL object, dropping fields this client's layer does not have."""
    accepted = inspect.signature(cls.__init__).parameters
    return cls(**{k: v for k, v in fields.items() if k in accepted})


def raw_peers() -> tuple[list[Any], list[Any], dict[str, Any]]:
    """Users and chats as Telegram sends them, and what each should resolve by."""
    photo = T.ChatPhotoEmpty()
    users = [
        build(
            T.User,
            id=1111111111,
            access_hash=-1112260925743664697,
            first_name="Alice",
            username="Alice",
            phone="15550001111",
        ),
        build(
            T.User,
            id=6222222222,
            access_hash=4222222222222222222,
            first_name="Bob",
            usernames=[
                build(T.Username, username=name, active=True) for name in ("Bob", "bobby", "Robert")
            ],
            phone="447700900222",
        ),
        build(
            T.User,
            id=333333333,
            access_hash=-3333333333333333333,
            first_name="Carol",
            phone="393330003333",
        ),
        build(
            T.User,
            id=5444444444,
            access_hash=1444444444444444444,
            bot=True,
            first_name="Helper",
            username="Fake_Helper_Bot",
        ),
        build(T.User, id=7777777, access_hash=77, min=True, first_name="Min", username="minuser"),
    ]
    chats = [
        build(
            T.Chat,
            id=4555555555,
            title="group",
            photo=photo,
            participants_count=3,
            date=1700000000,
            version=1,
        ),
        build(
            T.Channel,
            id=1666666666,
            access_hash=6666666666666666666,
            title="news",
            photo=photo,
            date=1700000000,
            broadcast=True,
            username="FakeNews",
        ),
        build(
            T.Channel,
            id=2777777777,
            access_hash=-2777777777777777777,
            title="chat",
            photo=photo,
            date=1700000000,
            megagroup=True,
            usernames=[
                build(T.Username, username=name, active=True) for name in ("fakechat", "fake_chat")
            ],
        ),
        build(
            T.Channel,
            id=3888888888,
            access_hash=3888888888888888888,
            title="forum",
            photo=photo,
            date=1700000000,
            megagroup=True,
            forum=True,
            username="fakeforum",
        ),
        build(
            T.Channel,
            id=4999999999,
            access_hash=4999999999999999999,
            title="direct",
            photo=photo,
            date=1700000000,
            monoforum=True,
        ),
        build(
            T.ChannelForbidden,
            id=5888888888,
            access_hash=5888888888888888888,
            title="gone",
            broadcast=True,
        ),
    ]
    if hasattr(T, "Community"):
        chats.append(
            build(
                T.Community,
                id=5121212121,
                access_hash=5121212121212121212,
                title="community",
                photo=photo,
                date=1700000000,
                username="fakecommunity",
            )
        )
    return users, chats, {}


def queries() -> list[Any]:
    """What users pass to resolve_peer: ids as int and str, usernames, phone numbers."""
    ids = [
        1111111111,
        6222222222,
        333333333,
        5444444444,
        -4555555555,
        -1001666666666,
        -1002777777777,
        -1003888888888,
        -1004999999999,
        -1005888888888,
        -1005121212121,
    ]
    missing = [7777777, 999, -999, -1009999999999]
    names = [
        "alice",
        "@Alice",
        "bob",
        "bobby",
        "robert",
        "fake_helper_bot",
        "fakenews",
        "fakechat",
        "fake_chat",
        "fakeforum",
        "fakecommunity",
        "minuser",
        "nobody",
    ]
    phones = ["15550001111", "+44 7700 900222", "+39-333-000-3333", "+10000000000"]
    return [*ids, *missing, *(str(i) for i in ids + missing), *names, *phones, "me"]


def describe(value: Any) -> Any:
    """A comparable form of an InputPeer (its class and TL bytes) or of a plain value."""
    if hasattr(value, "write") and hasattr(value, "QUALNAME"):
        return (value.QUALNAME, bytes(value.write()).hex())
    return value


async def outcome(call: Any) -> Any:
    try:
        return ("ok", describe(await call))
    except Exception as exc:  # the exception is the result compared
        kind = "KeyError" if isinstance(exc, KeyError) else type(exc).__name__
        return ("raise", kind, str(exc.args[0]) if exc.args else "")


def offline(client: Any) -> None:
    async def invoke(*args: Any, **kwargs: Any) -> Any:
        raise Offline

    client.invoke = invoke
    client.is_connected = True


ENCRYPTION_KEY = "roundtrip passphrase"  # the encrypted-file backend's key


def make_storage() -> Any:
    if BACKEND == "file":
        return FileStorage("ours", WORKDIR, session_string=SESSION_STRING)
    if BACKEND == "file-encrypted":
        return FileStorage(
            "ours", WORKDIR, session_string=SESSION_STRING, encryption_key=ENCRYPTION_KEY
        )
    if BACKEND == "memory":
        return MemoryStorage("ours", session_string=SESSION_STRING)
    if BACKEND == "mongo":
        return pyrogram_storage.MongoStorage.from_url(
            MONGO_URI,
            name=f"roundtrip_{CLIENT}_{uuid.uuid4().hex[:12]}",
            client_options={"serverSelectionTimeoutMS": 10_000},
            session_string=SESSION_STRING,
        )
    if BACKEND == "redis":
        return pyrogram_storage.RedisStorage.from_url(
            MONGO_URI, name=REDIS_NAME, session_string=SESSION_STRING
        )
    if BACKEND == "postgres":
        return pyrogram_storage.from_url(f"{MONGO_URI}#{REDIS_NAME}", session_string=SESSION_STRING)
    if BACKEND == "custom":
        return USER_STORAGE["DictStorage"]("ours", session_string=SESSION_STRING)
    raise SystemExit(f"unknown backend {BACKEND}")


def decode_session_string_(text: str) -> bytes:
    key = pyrogram_storage.decode_session_string(text).auth_key
    assert key is not None
    return key


USER_STORAGE: dict[str, Any] = {}


def load_readme_backend() -> None:
    """Define the documented "write your own backend" class, running its block as written.

    It lives on a page of the site (docs/guides/custom-backend.rst) or in README.rst.
    """
    root = HERE.parent.parent
    pages = [root / "README.rst", *sorted((root / "docs").rglob("*.rst"))]
    for page in pages:
        if "_build" in page.parts:
            continue
        for block in page.read_text().split(".. code-block:: python")[1:]:
            lines = block.split("\n")[1:]
            code = []
            for line in lines:
                if line.strip() and not line.startswith(" "):
                    break
                code.append(line)
            source = textwrap.dedent("\n".join(code))
            if "class DictStorage(Storage)" in source:
                exec(compile(source, page.name, "exec"), USER_STORAGE)  # its asyncio.run too
                return
    raise SystemExit("no page documents the DictStorage example")


def make_client(storage: Any, name: str = "ours", workdir: pathlib.Path | None = None) -> Any:
    """Build the Client with our storage: the documented line of each client."""
    Client = client_module.Client
    folder = str(WORKDIR if workdir is None else workdir)
    common: dict[str, Any] = {"api_id": API_ID, "api_hash": API_HASH, "workdir": folder}
    if "skip_updates" in inspect.signature(Client.__init__).parameters:
        common["skip_updates"] = False
    engine = for_client(storage)
    if CLIENT in ("kurigram", "irenogram", "pyrotgfork"):
        client = Client(name, storage_engine=engine, **common)
    elif CLIENT in ("pyrofork", "electrogram"):
        client = Client(name, storage=engine, **common)
    elif CLIENT == "hydrogram":
        client = Client(name, session_storage_engine=engine, **common)
    else:
        client = Client(name, **common)
        client.storage = engine
    checks.true("client keeps our storage", client.storage is engine, type(client.storage))
    return client


def make_reference() -> Any:
    Client = client_module.Client
    extra: dict[str, Any] = {}
    if "skip_updates" in inspect.signature(Client.__init__).parameters:
        extra["skip_updates"] = False
    return Client(
        "ref",
        api_id=API_ID,
        api_hash=API_HASH,
        session_string=SESSION_STRING,
        in_memory=True,
        workdir=str(WORKDIR),
        **extra,
    )


def updates_batch(users: list[Any], chats: list[Any], date: int, seq: int) -> Any:
    return T.Updates(
        updates=[
            T.UpdateDeleteMessages(messages=[1, 2], pts=1001, pts_count=2),
            T.UpdateDeleteChannelMessages(
                channel_id=2777777777, messages=[5], pts=4243, pts_count=1
            ),
            T.UpdateDeleteChannelMessages(channel_id=1666666666, messages=[9], pts=78, pts_count=1),
        ],
        users=users,
        chats=chats,
        date=date,
        seq=seq,
    )


async def read_states(client: Any) -> Any:
    if STATE_DIALECT == "objects":
        states = await client.storage.get_update_states()
        return [(s.id, s.pts, s.qts, s.date, s.seq, type(s).__qualname__) for s in states]
    if STATE_DIALECT == "tuples":
        # Pyrofork's own storage returns them unordered; compare as sorted tuples.
        return sorted(tuple(s) for s in (await client.storage.update_state() or []))
    return None


FIXED = {"electrogram": ("fake_chat",)}
"""Lookups our storage answers and the client's own does not (client bugs we work around).

Electrogram files a channel's extra usernames under the raw positive channel id, so its
own storage never finds them; ours files them under the ``-100…`` id.
"""

SESSION_FIELDS = ("dc_id", "api_id", "test_mode", "auth_key", "user_id", "is_bot")


async def session_fields(client: Any) -> dict[str, Any]:
    values = {}
    for name in SESSION_FIELDS:
        value = await getattr(client.storage, name)()
        values[name] = bool(value) if name in ("test_mode", "is_bot") else value
    return values


async def compare_lookups(ours: Any, ref: Any, label: str) -> None:
    for query in queries():
        got = await outcome(ours.resolve_peer(query))
        want = await outcome(ref.resolve_peer(query))
        if query in FIXED.get(CLIENT, ()):
            checks.true(f"{label} resolve_peer({query!r}) fixed", got[0] == "ok", got)
            checks.equal(
                f"{label} resolve_peer({query!r}) misses in the client's own",
                want,
                ("raise", "Offline", ""),
            )
        else:
            checks.equal(f"{label} resolve_peer({query!r})", got, want)
    misses = [
        ("get_peer_by_id", 123),
        ("get_peer_by_id", "durov"),
        ("get_peer_by_id", "999"),
        ("get_peer_by_username", "nobody"),
        ("get_peer_by_phone_number", "10000000000"),
    ]
    for method, key in misses:
        got = await outcome(getattr(ours.storage, method)(key))
        want = await outcome(getattr(ref.storage, method)(key))
        checks.equal(f"{label} storage.{method}({key!r})", got, want)


async def main() -> None:
    from pyrogram_storage.clients import ClientDetectionError, detect_client

    checks.equal("detect_client", detect_client(), CLIENT)
    if CLIENT in ("kurigram", "pyrotgfork", "electrogram"):  # ABCs that need more methods
        try:
            for_client(MemoryStorage(), client="pyrogram")
        except ClientDetectionError as exc:
            checks.true("a forced wrong dialect is refused", "installed client" in str(exc), exc)
        else:
            checks.failed.append("a forced wrong dialect was accepted")
    storage = make_storage()
    ours = make_client(storage)
    ref = make_reference()
    for client in (ours, ref):
        await client.load_session()
        offline(client)
    checks.equal("session fields", await session_fields(ours), await session_fields(ref))
    if CLIENT in ("kurigram", "irenogram"):
        address = pyrogram_storage.types.dc_address(MANIFEST["session"]["dc_id"])
        got = (await ours.storage.server_address(), await ours.storage.port())
        checks.equal("server address of the dc", got, address)
        if CLIENT == "kurigram":  # Irenogram's own import keeps DC 2's address
            want = (await ref.storage.server_address(), await ref.storage.port())
            checks.equal("server address as Kurigram", got, want)

    users, chats, _ = raw_peers()
    for client in (ours, ref):
        checks.equal(
            f"fetch_peers users is_min ({client.name})", await client.fetch_peers(users), True
        )
        checks.equal(
            f"fetch_peers chats is_min ({client.name})", await client.fetch_peers(chats), False
        )
    await compare_lookups(ours, ref, "fetched")
    for query in (
        1111111111,
        "alice",
        "bobby",
        "+1 555 000 1111",
        -1002777777777,
        "fake_chat",
        -4555555555,
        "fakenews",
    ):
        if CLIENT in ("pyrogram", "hydrogram") and query in ("bobby", "fake_chat"):
            continue  # these clients keep one username per peer
        result = await outcome(ours.resolve_peer(query))
        checks.true(
            f"resolves {query!r}", result[0] == "ok" and "InputPeer" in result[1][0], result
        )

    # A second batch through handle_updates: renamed peers and update state.
    renamed = [
        build(
            T.User,
            id=1111111111,
            access_hash=-1112260925743664697,
            first_name="Alice",
            username="alice_new",
            phone="15550001111",
        )
    ]
    batch = updates_batch(renamed, chats[1:3], date=1700000500, seq=301)
    short = T.UpdateShortMessage(
        id=10, user_id=1111111111, message="hi", pts=1002, pts_count=1, date=1700000600
    )
    for client in (ours, ref):
        await client.handle_updates(batch)
        checks.equal(
            f"short message asks Telegram ({client.name})",
            await outcome(client.handle_updates(short)),
            ("raise", "Offline", ""),
        )
    await compare_lookups(ours, ref, "updated")
    checks.equal(
        "update state after handle_updates", await read_states(ours), await read_states(ref)
    )
    await drive_state_dialect(ours, ref)

    exported = await ours.export_session_string()
    checks.equal("export_session_string round trip", exported, SESSION_STRING)
    checks.equal(
        "export_session_string as the client's own", exported, await ref.export_session_string()
    )

    await lifecycle(ours, ref, users, chats)
    if BACKEND == "file":
        await workdir_checks()


def run_scenario(scenario: dict[str, Any]) -> bool:
    """Run one backend's round trip with fresh checks; print its report; True if it passed."""
    global BACKEND, WORKDIR, MONGO_URI, REDIS_NAME, checks
    BACKEND, WORKDIR = scenario["backend"], pathlib.Path(scenario["workdir"])
    MONGO_URI = scenario.get("url")
    REDIS_NAME = f"roundtrip_{CLIENT}_{uuid.uuid4().hex[:12]}"
    checks = Checks()
    try:
        if BACKEND == "custom" and not USER_STORAGE:
            load_readme_backend()
        asyncio.run(main())
    except Exception:  # the next backend still runs; this one's report says why
        import traceback

        checks.failed.append(f"raised:\n{traceback.format_exc()}")
    print(
        json.dumps(
            {
                "client": CLIENT,
                "backend": BACKEND,
                "passed": len(checks.passed),
                "failed": checks.failed,
            }
        ),
        flush=True,
    )
    return not checks.failed


async def workdir_checks() -> None:
    """A FileStorage given no workdir keeps its file in the client's workdir; one whose
    file would be a new session beside the client's own existing file says so."""
    script = WORKDIR / "script"  # where a FileStorage without workdir would go otherwise
    argv0, sys.argv[0] = sys.argv[0], str(script / "bot.py")
    try:
        followed = FileStorage("acct", session_string=SESSION_STRING)
    finally:
        sys.argv[0] = argv0
    sessions = WORKDIR / "sessions_dir"
    client = make_client(followed, "acct", sessions)
    await client.load_session()
    checks.equal("the client's workdir is followed", followed.path, sessions / "acct.session")
    checks.true("nothing next to the script", not script.exists(), script)
    await client.storage.close()

    elsewhere = FileStorage("acct", WORKDIR / "elsewhere", session_string=SESSION_STRING)
    seen: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("pyrogram_storage").addHandler(handler)
    try:
        moved = make_client(elsewhere, "acct", sessions)
        await moved.load_session()
    finally:
        logging.getLogger("pyrogram_storage").removeHandler(handler)
    said = " ".join(seen)
    checks.true(
        "a new session beside the client's own file is a warning",
        "a new login" in said and str(sessions / "acct.session") in said,
        seen,
    )
    await moved.storage.close()


async def drive_state_dialect(ours: Any, ref: Any) -> None:
    """Call the update-state API the client's own code calls, on both storages."""
    if STATE_DIALECT == "objects":
        UpdateState = importlib.import_module(f"{MODULE}.storage").UpdateState
        steps = [
            ("set_update_state", UpdateState(0, None, 25, None, None)),
            (
                "set_update_state",
                [
                    UpdateState(-1003888888888, 10, None, 1700000700, None),
                    UpdateState(-1001666666666, 80, None, None, None),
                ],
            ),
            ("delete_update_state", -1002777777777),
            ("delete_update_state", [-1003888888888, 42]),
        ]
        for method, argument in steps:
            for client in (ours, ref):
                await getattr(client.storage, method)(argument)
            checks.equal(f"after {method}", await read_states(ours), await read_states(ref))
        for ids in (0, [0, -1001666666666], None):
            got = [tuple(vars(s).values()) for s in await ours.storage.get_update_states(ids)]
            want = [tuple(vars(s).values()) for s in await ref.storage.get_update_states(ids)]
            checks.equal(f"get_update_states({ids!r})", got, want)
    elif STATE_DIALECT == "tuples":
        steps: list[Any] = [
            (0, 1003, None, 1700000800, None),
            -1002777777777,
            (-1003888888888, 11, 3, 1700000900, 5),
            4242,
        ]
        for step in steps:
            for client in (ours, ref):
                await client.storage.update_state(step)
            checks.equal(
                f"after update_state({step!r})", await read_states(ours), await read_states(ref)
            )
        got = await ours.storage.update_state()
        checks.equal("update_state() oldest first", [s[3] for s in got], sorted(s[3] for s in got))
        for chat_id in ("fakenews", -1001666666666, None):
            got = await outcome(ours.storage.remove_state(chat_id))
            checks.equal(f"remove_state({chat_id!r}) never raises", got, ("ok", None))
            if hasattr(ref.storage, "remove_state"):  # Electrogram's own storage lacks it
                want = await outcome(ref.storage.remove_state(chat_id))
                checks.equal(f"remove_state({chat_id!r})", got, want)
        if not hasattr(ref.storage, "remove_state"):
            await ref.storage.update_state(-1001666666666)
        checks.equal("after remove_state", await read_states(ours), await read_states(ref))


async def lifecycle(ours: Any, ref: Any, users: list[Any], chats: list[Any]) -> None:
    """stop() order: save, close; late handler writes; restart; log_out's delete."""
    await ours.storage.save()
    await ours.storage.close()
    await ours.storage.close()
    late = updates_batch(users[:1], chats[1:2], date=1700001000, seq=302)
    checks.equal(
        "late handle_updates after close is dropped",
        await outcome(ours.handle_updates(late)),
        ("ok", None),
    )
    checks.equal(
        "late fetch_peers after close is dropped",
        await outcome(ours.fetch_peers(users)),
        ("ok", True),
    )
    got = await outcome(ours.storage.get_peer_by_id(1111111111))
    checks.equal("lookup after close raises", got[:2], ("raise", "StorageClosedError"))
    got = await outcome(ours.resolve_peer(1111111111))
    checks.equal("resolve_peer after close raises", got[:2], ("raise", "StorageClosedError"))

    # restart(): the same object is opened again and keeps everything.
    await ours.load_session()
    await compare_lookups(ours, ref, "restarted")
    checks.equal("update state after restart", await read_states(ours), await read_states(ref))
    checks.equal("export after restart", await ours.export_session_string(), SESSION_STRING)
    await ours.storage.save()
    await ours.storage.close()
    if BACKEND == "file-encrypted":
        stored = (WORKDIR / "ours.session").read_bytes()
        auth_key = decode_session_string_(SESSION_STRING)
        checks.true(
            "the file never holds the auth key",
            auth_key not in stored and auth_key.hex().encode() not in stored,
            "auth key found in the file",
        )
        try:
            await FileStorage("ours", WORKDIR).open()
        except pyrogram_storage.EncryptionKeyError as exc:
            checks.equal("no key: refused", exc.reason, "no key")
        else:
            checks.true("no key: refused", False, "opened without the key")
    if BACKEND in ("file", "redis", "postgres", "file-encrypted"):
        again = (
            FileStorage("ours", WORKDIR)
            if BACKEND == "file"
            else FileStorage("ours", WORKDIR, encryption_key=ENCRYPTION_KEY)
            if BACKEND == "file-encrypted"
            else pyrogram_storage.RedisStorage.from_url(MONGO_URI, name=REDIS_NAME)
            if BACKEND == "redis"
            else pyrogram_storage.from_url(f"{MONGO_URI}#{REDIS_NAME}")
        )
        reopened = make_client(again)
        await reopened.load_session()
        offline(reopened)
        await compare_lookups(reopened, ref, f"reopened {BACKEND}")
        await reopened.storage.close()
    await ours.storage.delete()  # log_out(): delete after close
    if BACKEND in ("file", "file-encrypted"):
        checks.true(
            "delete removed the file", not (WORKDIR / "ours.session").exists(), os.listdir(WORKDIR)
        )
    await ref.storage.close()


if __name__ == "__main__":
    results = [run_scenario(scenario) for scenario in SCENARIOS]
    sys.exit(0 if all(results) else 1)
