"""aiogram 3's FSM over every kv backend, through ``kv.for_aiogram``.

Runs INSIDE the aiogram venv (``tests/clientenv.py``)::

    python run_aiogram.py '{"backends": [...], "workdir": DIR, "servers": {...}}'
    python SCRIPT '{"groups": [[...], ...], "readme": PATH, "workdir": DIR, "servers": {...}}'

For each backend: the storage semantics aiogram's own storages have (states, data,
``set_data({})``, ``DataNotDictLikeError``, ``update_data``, keys as
``DefaultKeyBuilder`` builds them with each of its options, TTLs), the same random
call sequence on aiogram's own MemoryStorage giving the same answers, ``update_data``
that loses no concurrent update, and a two-state conversation run by a real
``Dispatcher`` fed ``Update`` objects, its bot's session replaced by one that records
the requests and answers them itself (nothing reaches the network). Backends run
concurrently; ``"groups"`` run one after another, the backends of each concurrently.
``"readme": PATH`` runs the README's aiogram block too.
Prints one JSON line: ``{"results": {backend: {"passed", "failed", "seconds"}}}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import decimal
import json
import os
import random
import re
import sys
import textwrap
import uuid
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any, TypedDict

from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.session.base import BaseSession
from aiogram.exceptions import DataNotDictLikeError
from aiogram.filters import CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.fsm.storage.base import BaseStorage, DefaultKeyBuilder, StorageKey
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.methods import GetMe, SendMessage, TelegramMethod
from aiogram.types import Chat, Message, Update, User
from framework_backends import PERSISTENT, maker
from framework_checks import Checks

from pyrogram_storage import StorageError, kv

TTL = 1.5
CONFIG: dict[str, Any] = json.loads(sys.argv[1])
WORKDIR = Path(CONFIG["workdir"])
BOT_ID = 42


class Form(StatesGroup):
    name = State()
    age = State()


class OfflineSession(BaseSession):
    """A bot session that answers sendMessage and getMe itself and records them."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[TelegramMethod[Any]] = []

    async def close(self) -> None:
        return None

    async def make_request(
        self, bot: Bot, method: TelegramMethod[Any], timeout: int | None = None
    ) -> Any:
        self.sent.append(method)
        if isinstance(method, SendMessage):
            chat = Chat(id=int(method.chat_id), type="private")
            return Message(
                message_id=len(self.sent), date=datetime.datetime.now(), chat=chat, text=method.text
            )
        if isinstance(method, GetMe):
            return User(id=BOT_ID, is_bot=True, first_name="Bot", username="test_bot")
        raise AssertionError(f"the test bot does not answer {type(method).__name__}")

    async def stream_content(self, *args: Any, **kwargs: Any) -> AsyncGenerator[bytes, None]:
        raise AssertionError("no downloads in these tests")
        yield b""

    def texts(self) -> list[str]:
        return [m.text for m in self.sent if isinstance(m, SendMessage)]


def update(number: int, user_id: int, text: str) -> Update:
    user = User(id=user_id, is_bot=False, first_name=f"user{user_id}")
    chat = Chat(id=user_id, type="private")
    message = Message(
        message_id=number, date=datetime.datetime.now(), chat=chat, from_user=user, text=text
    )
    return Update(update_id=number, message=message)


def conversation_router() -> Router:
    """The two-state conversation (name, then age) of the tests."""
    router = Router()

    @router.message(CommandStart())
    async def start(message: Message, state: FSMContext) -> None:
        await state.set_state(Form.name)
        await message.answer("What is your name?")

    @router.message(Form.name, F.text)
    async def name(message: Message, state: FSMContext) -> None:
        await state.update_data(name=message.text)
        await state.set_state(Form.age)
        await message.answer("How old are you?")

    @router.message(Form.age, F.text.isdigit())
    async def age(message: Message, state: FSMContext) -> None:
        data = await state.update_data(age=int(message.text))
        await state.clear()
        await message.answer(f"{data['name']} is {data['age']}")

    @router.message(Form.age)
    async def not_a_number(message: Message) -> None:
        await message.answer("A number, please")

    return router


def keys_of(store: kv.KVStore[Any]) -> Any:
    async def listed() -> list[str]:
        return sorted([key async for key in store.keys()])  # noqa: SIM118

    return listed()


async def contract(c: Checks, storage: Any, side: Any) -> None:
    store = storage.store
    key = StorageKey(bot_id=BOT_ID, chat_id=-100, user_id=7)
    c.true("is an aiogram BaseStorage", isinstance(storage, BaseStorage))
    names = [cls.__name__ for cls in type(storage).__mro__]
    c.eq("its class is AiogramStorage", names[0], "AiogramStorage")
    c.eq("no class name twice in its MRO", sorted(set(names)), sorted(names))
    c.true("is kv.frameworks.AiogramStorage", isinstance(storage, kv.frameworks.AiogramStorage))
    c.eq("first call opens the store", await storage.get_state(key), None)
    await storage.set_state(key, "state")
    c.eq("set_state str", await storage.get_state(key), "state")
    await storage.set_state(key, Form.name)
    c.eq("set_state State", await storage.get_state(key), "Form:name")
    c.eq("keys as DefaultKeyBuilder builds them", await keys_of(store), ["fsm:-100:7:state"])
    await storage.set_state(key, None)
    c.eq("set_state None", await storage.get_state(key), None)
    c.eq("set_state None removes the key", await keys_of(store), [])

    c.eq("no data", await storage.get_data(key), {})
    c.eq("get_value absent", await storage.get_value(key, "foo"), None)
    c.eq("get_value default", await storage.get_value(key, "foo", "baz"), "baz")
    await storage.set_data(key, {"foo": "bar"})
    c.eq("set_data", await storage.get_data(key), {"foo": "bar"})
    c.eq("get_value", await storage.get_value(key, "foo", "baz"), "bar")
    c.eq("data key", await keys_of(store), ["fsm:-100:7:data"])
    await storage.set_data(key, {})
    c.eq("set_data({})", await storage.get_data(key), {})
    c.eq("set_data({}) removes the key", await keys_of(store), [])

    class Profile(TypedDict, total=False):
        foo: str
        bar: str

    await storage.set_data(key, Profile(foo="bar", bar="baz"))
    c.eq("a TypedDict", await storage.get_data(key), {"foo": "bar", "bar": "baz"})
    for bad in ((), ["a"], "text", None):
        await c.raises(
            f"set_data({bad!r})",
            storage.set_data(key, bad),
            DataNotDictLikeError,
            kv.InvalidArgumentError,
            TypeError,
        )
    c.eq(
        "a refused set_data changed nothing",
        await storage.get_data(key),
        {"foo": "bar", "bar": "baz"},
    )

    await storage.set_data(key, {})
    c.eq("update_data", await storage.update_data(key, {"foo": "bar"}), {"foo": "bar"})
    c.eq("update_data({})", await storage.update_data(key, {}), {"foo": "bar"})
    c.eq(
        "update_data adds",
        await storage.update_data(key, {"baz": "spam"}),
        {"foo": "bar", "baz": "spam"},
    )
    c.eq(
        "update_data replaces",
        await storage.update_data(key, {"baz": "test"}),
        {"foo": "bar", "baz": "test"},
    )
    c.eq("after update_data", await storage.get_data(key), {"foo": "bar", "baz": "test"})
    returned = await storage.update_data(key, {"n": 1})
    returned["n"] = 2
    fetched = await storage.get_data(key)
    fetched["n"] = 3
    c.eq("returned dicts are copies", await storage.get_value(key, "n"), 1)
    await storage.set_data(key, {})
    c.eq("update_data({}) on nothing", await storage.update_data(key, {}), {})
    c.eq("...stores nothing", await keys_of(store), [])

    await store.set("fsm:-100:7:data", "written by something else")
    c.eq("get_data of a value that is not a dict", await storage.get_data(key), {})
    c.eq("update_data replaces it", await storage.update_data(key, {"a": 1}), {"a": 1})
    c.eq("...and stores a dict", await store.get("fsm:-100:7:data"), {"a": 1})
    await storage.set_data(key, {})

    rich = {
        "when": datetime.datetime(2026, 1, 2, 3, 4, 5),
        "tags": {"vip"},
        "price": decimal.Decimal("9.99"),
        "pair": (1, 2),
    }
    await storage.set_data(key, rich)
    c.eq("values keep their types", await storage.get_data(key), rich)
    await c.raises(
        "unserializable data",
        storage.set_data(key, {"x": object()}),
        kv.KVSerializationError,
        TypeError,
    )
    c.eq("nothing stored by a failed set_data", await storage.get_data(key), rich)
    await storage.set_data(key, {})

    # Key builder options, as aiogram's DefaultKeyBuilder has them.
    full = StorageKey(
        bot_id=BOT_ID,
        chat_id=-100,
        user_id=7,
        thread_id=5,
        business_connection_id="bc1",
        destiny="scene",
    )
    options = kv.for_aiogram(
        store,
        prefix="bot",
        separator="|",
        with_bot_id=True,
        with_business_connection_id=True,
        with_destiny=True,
    )
    await options.set_state(full, "s")
    await options.set_data(full, {"a": 1})
    c.eq(
        "every option",
        await keys_of(store),
        ["bot|42|bc1|-100|5|7|scene|data", "bot|42|bc1|-100|5|7|scene|state"],
    )
    await options.set_state(full, None)
    await options.set_data(full, {})
    builder = kv.for_aiogram(store, key_builder=DefaultKeyBuilder(prefix="custom"))
    await builder.set_state(key, "s")
    c.eq("a key_builder", await keys_of(store), ["custom:-100:7:state"])
    await builder.set_state(key, None)
    await c.raises("destiny without with_destiny", storage.set_state(full, "s"), ValueError)

    async def both() -> Any:
        return kv.for_aiogram(store, key_builder=DefaultKeyBuilder(), prefix="x")

    await c.raises("key_builder and options", both(), kv.InvalidArgumentError)

    async def a_path() -> Any:
        return kv.for_aiogram("fsm.db")  # type: ignore[arg-type]

    await c.raises("not a KVStore", a_path(), TypeError, StorageError)

    # TTLs, as aiogram's Redis storage has them.
    timed = kv.for_aiogram(store, state_ttl=TTL, data_ttl=datetime.timedelta(seconds=TTL))
    await timed.set_state(key, "soon")
    await timed.set_data(key, {"soon": True})
    c.eq("state with a TTL", await timed.get_state(key), "soon")
    c.eq("data with a TTL", await timed.get_data(key), {"soon": True})
    await asyncio.sleep(TTL + 0.3)
    c.eq("state expired", await timed.get_state(key), None)
    c.eq("data expired", await timed.get_data(key), {})
    await c.raises("bad TTL", _build(store, state_ttl=-1), kv.InvalidTTLError)

    # close() closes the store; aiogram's storages keep working after it, so do we.
    await storage.set_state(key, "kept")
    await storage.close()
    c.eq("closed", store.is_open, False)
    c.eq(
        "a call after close opens again",
        await storage.get_state(key),
        "kept" if side.persistent else None,
    )
    await storage.set_state(key, None)


async def _build(store: Any, **options: Any) -> Any:
    return kv.for_aiogram(store, **options)


async def same_as_theirs(c: Checks, storage: Any) -> None:
    """One random call sequence on ours and on aiogram's MemoryStorage."""
    rng = random.Random(15)
    keys = [StorageKey(bot_id=BOT_ID, chat_id=i, user_id=i) for i in (1, 2, 3)]
    states: list[Any] = [None, "a", "b", Form.name, Form.age]
    plan = []
    for step in range(150):
        op = rng.choice(
            ["set_state", "get_state", "set_data", "get_data", "update_data", "get_value"]
        )
        data = {rng.choice("xyz"): step for _ in range(rng.randint(0, 2))}
        plan.append((op, rng.choice(keys), rng.choice(states), data, rng.choice("xyz")))

    async def run(target: Any) -> list[Any]:
        out = []
        for op, key, state, data, name in plan:
            if op == "set_state":
                out.append(await target.set_state(key, state))
            elif op in ("set_data", "update_data"):
                out.append(await getattr(target, op)(key, data))
            elif op == "get_value":
                out.append(await target.get_value(key, name, "default"))
            else:
                out.append(await getattr(target, op)(key))
        return out

    theirs = await run(MemoryStorage())
    ours = await run(storage)
    c.eq("same answers as aiogram's MemoryStorage", ours, theirs)
    for key in keys:
        await storage.set_state(key, None)
        await storage.set_data(key, {})


async def sole_writer(c: Checks, make: Any, shared: bool) -> None:
    """``for_aiogram(..., sole_writer=True)``: the same answers, and the conversation."""
    store = make()
    c.eq("sole_writer off by default", kv.for_aiogram(store).store.sole_writer, False)
    sole = kv.for_aiogram(store, sole_writer=True)
    c.eq("sole_writer=True reaches the store", store.sole_writer, True)
    try:
        await same_as_theirs(c, sole)
        await conversation(c, sole, None)
    finally:
        await sole.close()
    await c.raises("sole_writer not a bool", _build(make(), sole_writer=1), kv.InvalidArgumentError)
    # commit_interval: writes stored a moment later; the restart finds what close() stored.
    queuing = kv.for_aiogram(make(), sole_writer=True, commit_interval=0.05)
    c.eq("commit_interval reaches the store", queuing.store.commit_interval, 0.05)
    again = None
    if shared:

        def again() -> Any:
            return kv.for_aiogram(make(), sole_writer=True, commit_interval=0.05)

    try:
        await same_as_theirs(c, queuing)
        await conversation(c, queuing, again)
    finally:
        await queuing.close()
    queuing.store.commit_interval = 0  # make() may give this object again (no other)
    queuing.store.sole_writer = False
    await c.raises(
        "commit_interval without sole_writer",
        _build(make(), commit_interval=0.05),
        kv.InvalidArgumentError,
    )


async def concurrent_updates(c: Checks, storage: Any, second: Any) -> None:
    """Handlers of one conversation updating its data at once, through two store objects."""
    key = StorageKey(bot_id=BOT_ID, chat_id=5, user_id=5)
    await asyncio.gather(
        *((storage if i % 2 else second).update_data(key, {f"k{i}": i}) for i in range(20))
    )
    data = await storage.get_data(key)
    c.eq("no concurrent update_data is lost", sorted(data), sorted(f"k{i}" for i in range(20)))
    await storage.set_data(key, {})


async def conversation(c: Checks, storage: Any, again: Any) -> None:
    """Two users through the two-state conversation; the bot restarts halfway."""
    session = OfflineSession()
    bot = Bot("42:TEST", session=session)
    dp = Dispatcher(storage=storage)
    dp.include_router(conversation_router())
    ctx = FSMContext(storage, StorageKey(bot_id=BOT_ID, chat_id=7, user_id=7))

    await dp.feed_update(bot, update(1, 7, "/start"))
    c.eq("after /start", await ctx.get_state(), "Form:name")
    await dp.feed_update(bot, update(2, 8, "/start"))
    await dp.feed_update(bot, update(3, 7, "Ann"))
    c.eq("after the name", await ctx.get_state(), "Form:age")
    c.eq("data after the name", await ctx.get_data(), {"name": "Ann"})
    await dp.feed_update(bot, update(4, 8, "Bob"))
    await dp.feed_update(bot, update(5, 7, "thirty"))
    c.eq("a refused answer keeps the state", await ctx.get_state(), "Form:age")

    if again is not None:  # the bot restarts: a new dispatcher over a new store object
        await dp.fsm.close()
        storage = again()
        dp = Dispatcher(storage=storage)
        dp.include_router(conversation_router())
    await dp.feed_update(bot, update(6, 7, "30"))
    await dp.feed_update(bot, update(7, 8, "41"))
    c.eq(
        "replies",
        session.texts(),
        [
            "What is your name?",
            "What is your name?",
            "How old are you?",
            "How old are you?",
            "A number, please",
            "Ann is 30",
            "Bob is 41",
        ],
    )
    c.eq("requests were only these", len(session.sent), 7)
    user7 = FSMContext(storage, StorageKey(bot_id=BOT_ID, chat_id=7, user_id=7))
    c.eq("finished: no state", await user7.get_state(), None)
    c.eq("finished: no data", await user7.get_data(), {})
    c.eq("finished: nothing left in the store", await keys_of(storage.store), [])
    await dp.fsm.close()
    await bot.session.close()


class Side:
    """Stores of one backend beside the main one (other files or namespaces)."""

    def __init__(self, name: str, workdir: Path, namespace: str) -> None:
        self.name, self.workdir, self.namespace = name, workdir, namespace
        self.persistent = name in PERSISTENT or name.startswith(("memory", "sqlite-memory"))


async def backend(name: str) -> dict[str, Any]:
    c = Checks(name)
    namespace = f"a{uuid.uuid4().hex[:12]}"
    workdir = WORKDIR / name
    workdir.mkdir(parents=True, exist_ok=True)
    make = maker(name, workdir, CONFIG["servers"], namespace)
    storage = kv.for_aiogram(make())
    side = Side(name, workdir, namespace)
    try:
        await contract(c, storage, side)
        await same_as_theirs(c, storage)
        shared = name in PERSISTENT and name != "json"
        second = kv.for_aiogram(make()) if shared else storage
        await concurrent_updates(c, storage, second)
        if second is not storage:
            await second.close()
        await conversation(c, storage, (lambda: kv.for_aiogram(make())) if shared else None)
        await sole_writer(c, make, shared)
    except Exception as exc:
        c.crashed(exc)
    finally:
        with contextlib.suppress(Exception):
            await storage.store.open()
            await storage.store.clear()
        await storage.close()
    return c.report()


async def readme(path: Path) -> dict[str, Any]:
    """Run the README's aiogram block as written; feed its dispatcher a conversation."""
    c = Checks("readme")
    text = path.read_text()
    pattern = (
        r"^\.\. readme-test: skip \(framework aiogram.*\n\n"
        r"\.\. code-block:: python\n\n((?:[ \t]+.*\n|\n)+)"
    )
    blocks = [textwrap.dedent(m.group(1)) for m in re.finditer(pattern, text, re.MULTILINE)]
    c.eq("one aiogram block", len(blocks), 1)
    folder = WORKDIR / "readme"  # beside the backends' folders
    folder.mkdir(parents=True, exist_ok=True)
    os.chdir(folder)
    for code in blocks:
        namespace: dict[str, Any] = {"__name__": "__readme__"}
        exec(compile(code, f"{path.name}:aiogram", "exec"), namespace)
        dp = namespace.get("dp")
        c.true("the block defines dp, a Dispatcher", isinstance(dp, Dispatcher))
        storage = dp.storage
        c.true(
            "its storage is ours over SQLiteKV",
            isinstance(storage, BaseStorage)
            and isinstance(getattr(storage, "store", None), kv.SQLiteKV),
        )
        session = OfflineSession()
        bot = Bot("42:TEST", session=session)
        await dp.feed_update(bot, update(1, 7, "/start"))
        await dp.feed_update(bot, update(2, 7, "Ann"))
        await dp.fsm.close()
        # A new process would find the conversation in the file.
        reopened = kv.for_aiogram(kv.SQLiteKV(storage.store.path))
        key = StorageKey(bot_id=BOT_ID, chat_id=7, user_id=7)
        c.eq("state in the file", await reopened.get_state(key), "Form:age")
        c.eq("data in the file", await reopened.get_data(key), {"name": "Ann"})
        await reopened.close()
        await dp.feed_update(bot, update(3, 7, "30"))
        c.eq(
            "replies",
            session.texts(),
            ["What is your name?", "How old are you?", "Nice to meet you, Ann (30)"],
        )
        await dp.fsm.close()
        await bot.session.close()
    return c.report()


async def main() -> None:
    results: dict[str, Any] = {}
    for group in CONFIG.get("groups", [CONFIG.get("backends", [])]):
        reports = await asyncio.gather(*(backend(name) for name in group))
        results.update(zip(group, reports, strict=True))
    if CONFIG.get("readme"):
        results["readme"] = await readme(Path(CONFIG["readme"]))
    print(json.dumps({"results": results}))


if __name__ == "__main__":
    asyncio.run(main())
