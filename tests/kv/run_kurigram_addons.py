"""kurigram-addons' FSM over every kv backend, through ``kv.for_kurigram_addons``.

Runs INSIDE the kurigram-addons venv (``tests/clientenv.py``)::

    python run_kurigram_addons.py '{"backends": [...], "workdir": DIR, "servers": {...}}'
    python SCRIPT '{"groups": [[...], ...], "readme": PATH, "workdir": DIR, "servers": {...}}'

For each backend: the storage contract as kurigram-addons' own storages define it
(return values, TTL, ``expected_state=None``, counters beside states, errors that are
both ours and ``FSMContextError``), the same call sequence on kurigram-addons' own
MemoryStorage and SQLiteStorage giving the same answers, and a conversation driven by
kurigram-addons' ``FSMContextManager``/``FSMContext`` and its ``RateLimitMiddleware``
on real Pyrogram ``Message`` objects. Backends run concurrently (their TTL waits
overlap); ``"groups"`` run one after another, the backends of each concurrently.
``"readme": PATH`` runs the README's kurigram-addons block too.
Prints one JSON line: ``{"results": {backend: {"passed", "failed", "seconds"}}}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import kurigram_addons
from framework_backends import PERSISTENT, maker
from framework_checks import Checks
from pyrogram import enums, types
from pyrogram_patch.errors import FSMContextError, FSMTransitionError, PyrogramPatchError
from pyrogram_patch.fsm import BaseStorage, FSMContext
from pyrogram_patch.fsm.context_manager import FSMContextManager
from pyrogram_patch.fsm.states import State, StatesGroup
from pyrogram_patch.fsm.storages.memory_storage import MemoryStorage
from pyrogram_patch.fsm.storages.sqlite_storage import SQLiteStorage
from pyrogram_patch.middlewares.rate_limit import RateLimitMiddleware
from pyrogram_patch.patch_helper import PatchHelper

from pyrogram_storage import StorageError, kv

TTL = 1.5  # long enough to be seen before it expires on a loaded machine
CONFIG: dict[str, Any] = json.loads(sys.argv[1])
WORKDIR = Path(CONFIG["workdir"])


class Registration(StatesGroup):
    name = State()
    age = State()
    done = State()


def message(chat_id: int, user_id: int, text: str) -> types.Message:
    chat = types.Chat(id=chat_id, type=enums.ChatType.PRIVATE)
    return types.Message(id=1, chat=chat, from_user=types.User(id=user_id), text=text)


async def contract(c: Checks, storage: Any, side: Any, reopens: bool) -> None:
    """The storage contract; ``side`` makes stores of the backend in other files/namespaces.

    ``reopens``: the store finds its data again after close and open (every store does).
    """
    c.true("is a pyrogram_patch BaseStorage", isinstance(storage, BaseStorage))
    c.true("is kurigram_addons.BaseStorage", isinstance(storage, kurigram_addons.BaseStorage))
    names = [cls.__name__ for cls in type(storage).__mro__]
    c.eq("its class is KurigramAddonsStorage", names[0], "KurigramAddonsStorage")
    c.eq("no class name twice in its MRO", sorted(set(names)), sorted(names))
    c.true(
        "is kv.frameworks.KurigramAddonsStorage",
        isinstance(storage, kv.frameworks.KurigramAddonsStorage),
    )
    c.eq("get before start opens the store", await storage.get_state("chat:1"), None)
    await storage.start()
    c.eq("health", await storage.health(), True)

    doc = {"name": "Registration:name", "data": {"n": 1, "f": 1.5, "l": [1, "x"], "z": None}}
    c.eq("set_state returns None", await storage.set_state("chat:1", doc), None)
    got = await storage.get_state("chat:1")
    c.eq("get_state", got, doc)
    got["data"]["n"] = 99
    c.eq("get_state returns a copy", await storage.get_state("chat:1"), doc)

    new = {"name": "Registration:age", "data": {"n": 2}}
    c.eq(
        "CAS expected None on a present key",
        await storage.compare_and_set("chat:1", new, expected_state=None),
        False,
    )
    c.eq(
        "CAS with a stale expectation",
        await storage.compare_and_set("chat:1", new, expected_state={"name": "x", "data": {}}),
        False,
    )
    reordered = {"data": {"z": None, "l": [1, "x"], "f": 1.5, "n": 1}, "name": doc["name"]}
    c.eq(
        "CAS compares documents as dicts",
        await storage.compare_and_set("chat:1", new, expected_state=reordered),
        True,
    )
    c.eq("CAS stored", await storage.get_state("chat:1"), new)
    c.eq(
        "CAS expected None on an absent key",
        await storage.compare_and_set("chat:2", new, expected_state=None),
        True,
    )
    c.eq(
        "CAS expecting a value on an absent key",
        await storage.compare_and_set("chat:3", new, expected_state=new),
        False,
    )
    c.eq("absent stays absent", await storage.get_state("chat:3"), None)

    c.eq("delete_state of a present key", await storage.delete_state("chat:2"), True)
    c.eq("delete_state of an absent key", await storage.delete_state("chat:2"), False)

    # Counters live beside states: same identifier, separate values.
    c.eq("increment creates at amount", await storage.increment("chat:1"), 1)
    c.eq("increment by 5", await storage.increment("chat:1", 5), 6)
    c.eq("increment by -2", await storage.increment("chat:1", -2), 4)
    c.eq("the state of the same identifier is untouched", await storage.get_state("chat:1"), new)

    await storage.set_state("user:7", new)
    await storage.set_state("user:77", new)
    c.eq("list_keys *", sorted(await storage.list_keys()), ["chat:1", "user:7", "user:77"])
    c.eq("list_keys user:*", sorted(await storage.list_keys("user:*")), ["user:7", "user:77"])
    c.eq("list_keys user:?", await storage.list_keys("user:?"), ["user:7"])
    c.eq("list_keys no match", await storage.list_keys("group:*"), [])

    # TTLs: seconds, expired is absent everywhere; 0 means no expiry.
    await storage.set_state("chat:ttl", new, ttl=TTL)
    await storage.set_state("chat:ttl0", new, ttl=0)
    await storage.set_state("chat:cas-later", new, ttl=TTL)
    c.eq("a state with a TTL is there", await storage.get_state("chat:ttl"), new)
    c.eq("a counter with a TTL", await storage.increment("hits", ttl=TTL), 1)
    c.eq("increment without ttl keeps the expiry", await storage.increment("hits"), 2)
    await asyncio.sleep(TTL + 0.3)
    c.eq("expired state is gone", await storage.get_state("chat:ttl"), None)
    c.eq("ttl=0 never expires", await storage.get_state("chat:ttl0"), new)
    c.eq("expired state is not listed", "chat:ttl" in await storage.list_keys(), False)
    c.eq("delete of an expired state", await storage.delete_state("chat:ttl"), False)
    c.eq(
        "CAS expected None on an expired state",
        await storage.compare_and_set("chat:cas-later", doc, expected_state=None),
        True,
    )
    c.eq("an expired counter restarts", await storage.increment("hits"), 1)

    # A store with a default TTL: ttl=None takes it, ttl=0 opts out.
    defaulted = kv.for_kurigram_addons(side("default")(default_ttl=TTL))
    await defaulted.start()
    await defaulted.set_state("chat:default", new)
    await defaulted.set_state("chat:forever", new, ttl=0)
    await defaulted.compare_and_set("chat:forever-cas", new, ttl=0)
    await asyncio.sleep(TTL + 0.3)
    c.eq("ttl=None takes the store's default_ttl", await defaulted.get_state("chat:default"), None)
    c.eq("ttl=0 opts out of default_ttl", await defaulted.get_state("chat:forever"), new)
    c.eq("CAS ttl=0 opts out", await defaulted.get_state("chat:forever-cas"), new)
    await defaulted.stop()

    # Errors: ours and kurigram-addons' at once; nothing stored.
    for label, call in (
        ("non-str identifier", storage.get_state(5)),
        ("unserializable state", storage.set_state("chat:bad", {"data": {"x": object()}})),
        ("float amount", storage.increment("hits", 1.5)),
        ("bad ttl", storage.set_state("chat:bad", new, ttl="10")),
        ("bad pattern", storage.list_keys("user:[")),
    ):
        await c.raises(label, call, StorageError, FSMContextError, PyrogramPatchError)
    c.eq("nothing stored by failed calls", await storage.get_state("chat:bad"), None)
    error = await c.raises("key too long", storage.set_state("x" * 600, new), TypeError)
    c.true("the error keeps our class name", type(error).__name__ == "InvalidKeyError")
    c.true(
        "the error carries kurigram's code",
        getattr(error, "error_code", None) == "FSM_CONTEXT_ERROR",
    )

    async def wrap_a_path() -> Any:
        return kv.for_kurigram_addons("fsm.db")  # type: ignore[arg-type]

    await c.raises("not a KVStore", wrap_a_path(), TypeError, StorageError)

    # clear_namespace: live states only; counters survive (as in kurigram's memory/SQLite).
    live = len(await storage.list_keys())
    c.eq("clear_namespace counts live states", await storage.clear_namespace(), live)
    c.eq("states are gone", await storage.list_keys(), [])
    c.eq("counters survive clear_namespace", await storage.increment("chat:1"), 5)

    # stop(): closed until start(); start() again finds the data.
    await storage.set_state("chat:keep", new)
    await storage.stop()
    c.eq("health after stop", await storage.health(), False)
    await c.raises(
        "a call after stop", storage.get_state("chat:keep"), kv.StorageClosedError, FSMContextError
    )
    await storage.start()
    c.eq("start again", await storage.get_state("chat:keep"), new if reopens else None)


async def same_as_theirs(c: Checks, side: Any) -> None:
    """One call sequence on ours and on kurigram-addons' Memory and SQLite storages."""

    async def run(storage: Any) -> list[Any]:
        await storage.start()
        doc = {"name": "S:a", "data": {"x": 1}}
        other = {"name": "S:b", "data": {}}
        out = [
            await storage.get_state("a"),
            await storage.set_state("a", doc),
            await storage.get_state("a"),
            await storage.compare_and_set("a", other, expected_state=None),
            await storage.compare_and_set("a", other, expected_state=other),
            await storage.compare_and_set("a", other, expected_state=doc),
            await storage.get_state("a"),
            await storage.compare_and_set("b", doc, expected_state=None),
            await storage.compare_and_set("c", doc, expected_state=doc),
            await storage.compare_and_set("d", doc, ttl=0),
            sorted(await storage.list_keys()),
            sorted(await storage.list_keys("b*")),
            await storage.delete_state("a"),
            await storage.delete_state("a"),
            await storage.increment("k"),
            await storage.increment("k", 5),
            await storage.increment("k", -2),
            await storage.increment("b"),
            await storage.get_state("b"),
            sorted(await storage.list_keys()),
            await storage.clear_namespace(),
            await storage.get_state("b"),
            await storage.increment("k"),
            await storage.health(),
        ]
        await storage.stop()
        return out

    ours = await run(kv.for_kurigram_addons(side("diff")()))
    theirs_memory = await run(MemoryStorage())
    theirs_sqlite = await run(SQLiteStorage(str(WORKDIR / f"theirs-{uuid.uuid4().hex}.db")))
    c.eq("same answers as kurigram-addons' MemoryStorage", ours, theirs_memory)
    c.eq("same answers as kurigram-addons' SQLiteStorage", ours, theirs_sqlite)


async def conversation(c: Checks, storage: Any, make: Any, shared: bool) -> None:
    """A registration conversation through kurigram-addons' own FSM objects."""
    manager = FSMContextManager(storage)
    first = await manager.from_update(message(4242, 7, "/start"))
    c.eq("FSMContextManager keys by chat", first._id, "chat:4242")
    c.eq("no state yet", await first.get_state(), None)
    await first.set_state(Registration.name)
    c.eq("state set", await first.get_state(), "Registration:name")

    answer = await manager.from_update(message(4242, 7, "Ann"))
    await answer.update_data(name="Ann")
    await answer.set_state(Registration.age)
    await answer.push_history("Registration:name")
    c.eq("set_state keeps the data", await answer.get_data(), {"name": "Ann"})
    c.eq(
        "the step is stored",
        await storage.get_state("chat:4242"),
        {"name": "Registration:age", "data": {"name": "Ann"}},
    )

    if shared:  # another process, or the bot after a restart, continues the conversation
        other = kv.for_kurigram_addons(make())
        await other.start()
        resumed = await FSMContextManager(other).from_update(message(4242, 7, "30"))
        c.eq("a second store object sees the step", await resumed.get_state(), "Registration:age")
        await resumed.update_data(age=30)
        await other.stop()
    else:
        await answer.update_data(age=30)

    age = await manager.from_update(message(4242, 7, "30"))
    await age.set_state(Registration.done)
    c.eq("data of both steps", await age.get_data(), {"name": "Ann", "age": 30})
    history = await age.get_history()
    c.eq("history", [entry["state"] for entry in history], ["Registration:name"])

    # Five handlers updating the same conversation at once: CAS keeps every update.
    await asyncio.gather(*(age.update_data(**{f"k{i}": i}) for i in range(5)))
    data = await age.get_data()
    c.eq(
        "concurrent update_data all land",
        sorted(k for k in data if k.startswith("k")),
        [f"k{i}" for i in range(5)],
    )
    await age.clear_data()
    c.eq("clear_data keeps the state", await age.get_state(), "Registration:done")
    c.eq("clear_data clears", await age.get_data(), {})
    c.eq("clear_state", await age.clear_state(), True)
    c.eq("finished", await age.get_state(), None)
    await age.clear_history()
    c.eq("no history left", await age.get_history(), [])

    # A context that cannot write (CAS never matches) ends in kurigram's own error.
    class Stuck(FSMContext):
        pass

    stuck = Stuck(storage, "chat:stuck")
    await storage.set_state("chat:stuck", {"name": "x", "data": {}})
    original = storage.compare_and_set

    async def never(*args: Any, **kwargs: Any) -> bool:
        return False

    storage.compare_and_set = never
    try:
        await c.raises("CAS exhaustion", stuck.update_data(a=1), FSMTransitionError)
    finally:
        storage.compare_and_set = original

    # The rate limiter counts with increment.
    limiter = RateLimitMiddleware(rate=2, period=60)
    helper = PatchHelper(fsm_storage=storage)
    outcomes = []
    for _ in range(3):
        try:
            await limiter(message(1, 99, "spam"), None, helper)
            outcomes.append("passed")
        except Exception as exc:  # pyrogram's StopPropagation
            outcomes.append(type(exc).__name__)
    c.eq("rate limit over increment", outcomes, ["passed", "passed", "StopPropagation"])


async def backend(name: str) -> dict[str, Any]:
    c = Checks(name)
    namespace = f"k{uuid.uuid4().hex[:12]}"
    workdir = WORKDIR / name
    workdir.mkdir(parents=True, exist_ok=True)
    make = maker(name, workdir, CONFIG["servers"], namespace)

    def side(label: str) -> Any:
        (workdir / label).mkdir(exist_ok=True)
        return maker(name, workdir / label, CONFIG["servers"], f"{label}{namespace}")

    storage = kv.for_kurigram_addons(make())
    try:
        await contract(c, storage, side, True)
        await same_as_theirs(c, side)
        await conversation(c, storage, make, name in PERSISTENT and name != "json")
    except Exception as exc:
        c.crashed(exc)
    finally:
        with contextlib.suppress(Exception):
            await storage.store.clear()
        await storage.stop()
    return c.report()


async def readme(path: Path) -> dict[str, Any]:
    """Run the README's kurigram-addons block as written; check and use what it builds."""
    c = Checks("readme")
    text = path.read_text()
    pattern = (
        r"^\.\. readme-test: skip \(framework kurigram-addons.*\n\n"
        r"\.\. code-block:: python\n\n((?:[ \t]+.*\n|\n)+)"
    )
    blocks = [textwrap.dedent(m.group(1)) for m in re.finditer(pattern, text, re.MULTILINE)]
    c.eq("one kurigram-addons block", len(blocks), 1)
    folder = WORKDIR / "readme"  # beside the backends' folders
    folder.mkdir(parents=True, exist_ok=True)
    os.chdir(folder)
    for code in blocks:
        namespace: dict[str, Any] = {"__name__": "__readme__"}
        exec(compile(code, f"{path.name}:kurigram-addons", "exec"), namespace)
        app = namespace.get("app")
        c.true(
            "the block defines app, a KurigramClient",
            isinstance(app, kurigram_addons.KurigramClient),
        )
        storage = getattr(app, "_storage", None)
        c.true(
            "the client's storage is ours",
            isinstance(storage, BaseStorage)
            and isinstance(getattr(storage, "store", None), kv.SQLiteKV),
        )
        await storage.start()
        ctx = await FSMContextManager(storage).from_update(message(1, 1, "/start"))
        await ctx.set_state("Registration:name")
        await ctx.update_data(name="Ann")
        await storage.stop()
        reopened = kv.for_kurigram_addons(
            kv.SQLiteKV(storage.store.path, namespace=storage.store.namespace)
        )
        c.eq(
            "state in the file",
            await reopened.get_state("chat:1"),
            {"name": "Registration:name", "data": {"name": "Ann"}},
        )
        await reopened.stop()
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
