"""The bot-state contract as a test suite you run against your own store.

Subclass :class:`KVContract` and give it a ``make_store`` fixture returning a callable
that builds a new, unopened store of yours from keyword options (pass them on to the
constructor: ``namespace=``, ``default_ttl=``, ``serializer=``); every call within one
test must reach the same stored data (the same file, the same server)::

    import pytest
    from pyrogram_storage.kv.testing import KVContract

    class TestMyStore(KVContract):
        @pytest.fixture
        def make_store(self, tmp_path):
            return lambda **options: MyStore(tmp_path / "state", **options)

It needs ``pytest`` and ``pytest-asyncio`` (``pip install pyrogram-storage[testing]``).
This project runs the very same class over every store it ships.

Time is a fake clock the suite sets on every store it builds (:attr:`KVStore.clock`),
so expiry is tested without waiting; a store whose keys expire by a server's own clock
(:attr:`KVStore.expires_by_server_clock`, Redis) is waited for as well. Every loop the
suite drives is bounded: a store whose iteration never ends fails with "no progress"
instead of hanging.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import math
import time
import types
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any, TypeVar

import pytest
import pytest_asyncio

from ..errors import (
    InvalidTypeError,
    InvalidValueError,
    LockedError,
    SchemaTooNewError,
    StorageClosedError,
    StorageError,
    TargetNotEmptyError,
)
from ..testing import Contract, collect
from . import (
    MISSING,
    CorruptValueError,
    Entry,
    InvalidArgumentError,
    InvalidKeyError,
    InvalidPatternError,
    InvalidTTLError,
    KVSerializationError,
    KVStore,
    MemoryKV,
    NotACounterError,
    NotADictError,
    copy,
    versioned,
)

__all__ = ["FakeClock", "KVContract", "StoreMaker", "collect"]

StoreMaker = Callable[..., KVStore[Any]]
"""Builds a new, unopened store from keyword options, always on the same stored data."""

T = TypeVar("T")

TTL = 0.5
"""Seconds of the short TTLs; only a store that expires by a server's clock waits them."""

EVERY_TYPE: dict[str, Any] = {
    "str": "Form:name",
    "unicode": "привет 👋 \u2028",
    "empty": "",
    "int": 42,
    "negative": -(2**63),
    "big": 2**70,
    "float": 3.25,
    "inf": math.inf,
    "bool": True,
    "none": None,
    "list": [1, "a", None, [2.5]],
    "dict": {"name": "Ann", "age": 30, "tags": ["x"], "$kv": "not a tag"},
    "int keys": {1: "one", 2: "two"},
    "tuple": (1, "a", (2, 3)),
    "set": {1, 2, 3},
    "frozenset": frozenset({"a", "b"}),
    "bytes": b"\x00\xffdata",
    "decimal": Decimal("12.3400"),
    "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "datetime": dt.datetime(2026, 11, 25, 17, 30, 1, 123456),
    "aware datetime": dt.datetime(2026, 11, 25, 17, 30, tzinfo=dt.timezone(dt.timedelta(hours=3))),
    "date": dt.date(2026, 11, 25),
    "time": dt.time(8, 30, 15, 5),
    "timedelta": dt.timedelta(days=2, seconds=5, microseconds=7),
    "nested": {"when": [dt.date(2020, 1, 1)], "seen": {("a", 1)}, "raw": {b"k": 1}},
}

PATTERN_KEYS = [
    "user:1", "user:2", "user:10", "user:a", "users", "admin:1", "a*b", "a?b", "a[1]", "Ю:1",
]  # fmt: skip

PATTERNS: list[tuple[str, list[str]]] = [
    ("*", PATTERN_KEYS),
    ("user:*", ["user:1", "user:2", "user:10", "user:a"]),
    ("user:?", ["user:1", "user:2", "user:a"]),
    ("user:[0-9]", ["user:1", "user:2"]),
    ("user:[!0-9]", ["user:a"]),
    ("user:[^12]*", ["user:a"]),
    ("*:1", ["user:1", "admin:1", "Ю:1"]),
    ("a\\*b", ["a*b"]),
    ("a\\?b", ["a?b"]),
    ("a\\[1]", ["a[1]"]),
    ("a[*?]b", ["a*b", "a?b"]),
    ("Ю*", ["Ю:1"]),
    ("users", ["users"]),
    ("nothing*", []),
]

BAD_KEYS: list[Any] = [1, None, b"key", ("a",), "", "x" * 513, "a\x00b", "\ud800"]
BAD_TTLS: list[Any] = [-1, 0, -0.5, math.nan, math.inf, "10", True, 10**12]
SURROGATES: list[Any] = ["\ud800", "ok \udfff", ["x", "\ud83d"], {"name": "\udc00"}, {"\ud800": 1}]


class FakeClock:
    """Seconds since the epoch that move only when told: :attr:`KVStore.clock` in tests."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``."""
        self.now += seconds


class Unknown:
    """A type no serializer knows."""


class _Broken:
    """A serializer that fails in every way a serializer can."""

    def __init__(self, mode: str) -> None:
        self.mode = mode

    def dumps(self, value: Any) -> Any:
        if self.mode == "raises":
            raise RuntimeError("this serializer always fails")
        if self.mode == "bytes":
            return b"not text"
        if self.mode == "integer":
            return "123"
        return '"text"'

    def loads(self, text: str) -> Any:
        raise RuntimeError("this serializer cannot read anything back")


class _Sorted:
    """A serializer that writes equal values differently (dict order kept)."""

    def dumps(self, value: Any) -> str:
        import json

        return json.dumps(value)

    def loads(self, text: str) -> Any:
        import json

        return json.loads(text)


async def in_chunks(calls: Iterable[Awaitable[Any]], size: int = 50) -> None:
    """Await ``calls`` ``size`` at a time (the drivers' connection pools cap concurrency):
    hundreds of keys cost a few round trips of a slow server, not one each."""
    pending = iter(calls)
    while chunk := list(itertools.islice(pending, size)):
        await asyncio.gather(*chunk)


async def keys_of(store: KVStore[Any], pattern: str = "*", most: int = 1000) -> list[str]:
    return await collect(store.keys(pattern), most, f"keys({pattern!r})")


async def expiry(store: KVStore[Any], key: str) -> float | None:
    found = [r for r in await collect(store.records(key), 1, "records()") if r.key == key]
    assert found, f"{key} is missing"
    return found[0].expires


def about(expires: float | None, when: float) -> bool:
    """Whether an expiry is ``when`` (within what a slow server's rounding takes)."""
    return expires is not None and abs(expires - when) < 1


class KVContract(Contract):
    """The whole bot-state contract; subclass it with a ``make_store`` fixture."""

    @pytest.fixture
    def make_store(self) -> StoreMaker:
        return self.undefined("make_store", "YourStore")  # type: ignore[no-any-return]

    @pytest.fixture
    def clock(self) -> FakeClock:
        """The test's time, given to every store the suite builds."""
        return FakeClock()

    @pytest.fixture
    def new_store(self, make_store: StoreMaker, clock: FakeClock) -> StoreMaker:
        """``make_store``, with the test's clock set on every store it builds."""

        def build(**options: Any) -> KVStore[Any]:
            store = make_store(**options)
            store.clock = clock
            return store

        return build

    @pytest_asyncio.fixture
    async def store(self, new_store: StoreMaker) -> AsyncIterator[KVStore[Any]]:
        """An open store, empty; cleared and closed afterwards."""
        opened = new_store()
        await opened.open()
        try:
            await opened.clear()
            yield opened
        finally:
            if opened.is_open:
                await opened.clear()
            await opened.close()

    @staticmethod
    async def later(store: KVStore[Any], clock: FakeClock, seconds: float) -> None:
        """Let ``seconds`` pass for the store: on the fake clock, and for real where a
        server's own clock expires the keys."""
        clock.advance(seconds)
        if store.expires_by_server_clock:
            await asyncio.sleep(seconds)

    @staticmethod
    def second(store: KVStore[Any], new_store: StoreMaker, **options: Any) -> KVStore[Any]:
        """Another object on the same data; the same one where a store has no other."""
        if not store.persistent and not options:
            return store
        if not store.persistent:
            pytest.skip(f"{type(store).__name__} keeps its data in one object")
        return new_store(**options)

    # -- lifecycle --------------------------------------------------------------------

    async def test_open_is_idempotent_and_the_store_reopens(self, new_store: StoreMaker) -> None:
        store = new_store()
        assert (store.is_open,) == (False,)
        async with store as same:
            assert same is store and store.is_open
            await store.open()  # does nothing
            await store.set("k", 1)
        assert (store.is_open,) == (False,)
        await store.close()  # twice is harmless
        await store.open()
        try:
            assert await store.get("k") == 1  # a store keeps its data across close and open
            assert await store.health() is True
        finally:
            await store.clear()
            await store.close()

    async def test_every_call_before_open_and_after_close_raises(
        self, new_store: StoreMaker
    ) -> None:
        store = new_store()
        calls: dict[str, Callable[[], Any]] = {
            "get": lambda: store.get("k"),
            "set": lambda: store.set("k", 1),
            "put": lambda: store.put(Entry("k", 1)),
            "delete": lambda: store.delete("k"),
            "has": lambda: store.has("k"),
            "touch": lambda: store.touch("k", 5),
            "compare_and_set": lambda: store.compare_and_set("k", 1, expected=MISSING),
            "increment": lambda: store.increment("k"),
            "merge": lambda: store.merge("k", {"a": 1}),
        }
        await self.refused_while_closed(
            store, calls, "clear", "health", "keys", "values", "items", "records"
        )

    async def test_health_is_true_while_open(self, store: KVStore[Any]) -> None:
        assert await store.health() is True
        assert store.is_open

    async def test_repr_names_the_class_and_namespace(self, store: KVStore[Any]) -> None:
        text = repr(store)
        assert type(store).__name__ in text and store.namespace in text

    async def test_a_store_reopened_by_a_new_object_finds_the_data(
        self, store: KVStore[Any], new_store: StoreMaker
    ) -> None:
        await store.set("a", {"x": 1})
        await store.set("b", 2, ttl=60)
        await store.close()
        again = self.second(store, new_store)
        async with again:
            assert await again.get("a") == {"x": 1}
            assert await again.increment("b") == 3
            assert sorted(await keys_of(again)) == ["a", "b"]
        await store.open()

    async def test_a_second_object_shares_the_data_or_is_locked_out(
        self, store: KVStore[Any], new_store: StoreMaker
    ) -> None:
        if not store.persistent:
            pytest.skip(f"{type(store).__name__} keeps its data in one object")
        await store.set("k", "first")
        other = new_store()
        if store.exclusive:
            with pytest.raises(LockedError):
                await other.open()
            assert not other.is_open
            return
        async with other:
            assert await other.get("k") == "first"
            await other.set("k", "second")
            assert await other.increment("n") == 1
        assert await store.get("k") == "second"
        assert await store.increment("n") == 2

    async def test_writes_issued_while_close_runs_are_kept_or_refused(
        self, new_store: StoreMaker
    ) -> None:
        store = new_store()
        await store.open()
        await store.clear()
        written: list[int] = []

        async def write(index: int) -> None:
            await store.set(f"k{index}", index)
            written.append(index)

        early = [asyncio.create_task(write(i)) for i in range(10)]
        await asyncio.sleep(0)
        closing = asyncio.create_task(store.close())
        await asyncio.sleep(0)
        late = [asyncio.create_task(write(i)) for i in range(10, 20)]
        await closing
        results = await asyncio.gather(*early, *late, return_exceptions=True)
        assert [r for r in results if r is not None and not isinstance(r, StorageClosedError)] == []
        if store.persistent:
            store = new_store()
        async with store:
            for index in written:
                assert await store.get(f"k{index}") == index
            await store.clear()

    # -- values -----------------------------------------------------------------------

    async def test_every_supported_type_comes_back_as_itself(self, store: KVStore[Any]) -> None:
        for name, value in EVERY_TYPE.items():
            await store.set(name, value)
        for name, value in EVERY_TYPE.items():
            got = await store.get(name)
            assert got == value, name
            assert type(got) is type(value), name
        for key, value in await collect(store.items(), len(EVERY_TYPE), "items()"):
            assert value == EVERY_TYPE[key]

    async def test_integers_floats_and_bools_keep_their_type(self, store: KVStore[Any]) -> None:
        for key, value in (("one", 1), ("true", True), ("float", 1.0), ("zero", 0)):
            await store.set(key, value)
            got = await store.get(key)
            assert got == value and type(got) is type(value), key

    async def test_get_missing_returns_default(self, store: KVStore[Any]) -> None:
        assert await store.get("nope") is None
        assert await store.get("nope", "fallback") == "fallback"
        assert await store.get("nope", MISSING) is MISSING
        assert not await store.has("nope")
        assert await store.delete("nope") is False

    async def test_set_replaces_and_delete_says_whether_it_existed(
        self, store: KVStore[Any]
    ) -> None:
        await store.set("state:1", "Form:name")
        await store.set("state:1", "Form:age")
        assert await store.get("state:1") == "Form:age"
        assert await store.has("state:1")
        assert await store.delete("state:1") is True
        assert await store.delete("state:1") is False
        assert await store.get("state:1") is None

    async def test_deleting_a_key_leaves_the_others(self, store: KVStore[Any]) -> None:
        for key in ("a", "ab", "a:b", "b"):
            await store.set(key, key)
        assert await store.delete("a") is True
        assert sorted(await keys_of(store)) == ["a:b", "ab", "b"]
        assert await store.get("ab") == "ab" and not await store.has("a")
        await store.set("a", "again")
        assert await store.get("a") == "again"

    async def test_touch_keeps_the_value_and_its_type(
        self, store: KVStore[Any], clock: FakeClock
    ) -> None:
        for key, value in EVERY_TYPE.items():
            await store.set(key, value, ttl=TTL)
            assert await store.touch(key, 60) is True
        await self.later(store, clock, TTL + 0.2)
        for key, value in EVERY_TYPE.items():
            got = await store.get(key)
            assert got == value and type(got) is type(value), key

    async def test_errors_are_ours_and_the_builtins_callers_catch(self) -> None:
        for error, builtins in (
            (InvalidKeyError, (TypeError, ValueError)),
            (InvalidTTLError, (TypeError, ValueError)),
            (InvalidPatternError, (TypeError, ValueError)),
            (InvalidArgumentError, (TypeError, ValueError)),
            (KVSerializationError, (TypeError,)),
            (CorruptValueError, (ValueError,)),
            (NotACounterError, (TypeError,)),
            (NotADictError, (TypeError,)),
            (SchemaTooNewError, (ValueError,)),
            (StorageClosedError, ()),
            (LockedError, ()),
            (TargetNotEmptyError, ()),
        ):
            assert issubclass(error, StorageError), error
            for builtin in builtins:
                assert issubclass(error, builtin), (error, builtin)

    async def test_returned_values_are_copies(self, store: KVStore[Any]) -> None:
        value = {"items": [1]}
        await store.set("data", value)
        value["items"].append(2)  # the caller's object changes after set()
        got: Any = await store.get("data")
        got["items"].append(3)
        assert await store.get("data") == {"items": [1]}

    async def test_large_values_and_odd_keys_round_trip(self, store: KVStore[Any]) -> None:
        big = "x" * 1_000_000
        many = list(range(10_000))
        keys = ["k" * 512, "Ю:ключ", "a b", "*?[]\\", "user:1:data", "  ", "\u2028", "🔑"]
        await store.set("big", big)
        await store.set("many", many)
        for key in keys:
            await store.set(key, key)
        assert await store.get("big") == big
        assert await store.get("many") == many
        for key in keys:
            assert await store.get(key) == key, key
        assert sorted(await keys_of(store)) == sorted(["big", "many", *keys])

    async def test_unknown_types_are_refused_and_nothing_is_stored(
        self, store: KVStore[Any]
    ) -> None:
        await store.set("k", "old")
        for value, type_name in (
            (Unknown(), "Unknown"),
            ({"a": [object()]}, "object"),
            ({1, Unknown()}, "Unknown"),
        ):
            with pytest.raises(KVSerializationError) as caught:
                await store.set("k", value)
            assert "'k'" in str(caught.value) and type_name in str(caught.value)
            assert caught.value.key == "k" and caught.value.type_name == type_name
            assert isinstance(caught.value, TypeError)
            with pytest.raises(KVSerializationError):
                await store.set("new", value)
            with pytest.raises(KVSerializationError):
                await store.compare_and_set("k", value, expected="old")
            with pytest.raises(KVSerializationError):
                await store.compare_and_set("k", "new", expected=value)
            with pytest.raises(KVSerializationError):
                await store.put(Entry("new", value))
        assert await store.get("k") == "old"
        assert not await store.has("new")

    async def test_lone_surrogates_are_refused_at_set_time(self, store: KVStore[Any]) -> None:
        """Text no backend can store as UTF-8: refused at once, and the store goes on."""
        await store.set("k", "old")
        for value in SURROGATES:
            with pytest.raises(KVSerializationError):
                await asyncio.wait_for(store.set("k", value), 30)
            with pytest.raises(KVSerializationError):
                await asyncio.wait_for(store.set("new", value), 30)
            with pytest.raises(KVSerializationError):
                await asyncio.wait_for(store.compare_and_set("k", value, expected="old"), 30)
        assert await store.get("k") == "old"
        assert not await store.has("new")
        await asyncio.wait_for(store.set("after", "fine \u2603"), 30)
        assert await store.get("after") == "fine \u2603"

    @pytest.mark.parametrize("mode", ["raises", "bytes", "integer"])
    async def test_a_serializer_that_fails_is_a_serialization_error(
        self, new_store: StoreMaker, mode: str
    ) -> None:
        broken = new_store(serializer=_Broken(mode))
        async with broken:
            with pytest.raises(KVSerializationError):
                await broken.set("k", "value")
            assert not await broken.has("k")
            await broken.set("n", 5)  # integers never reach the serializer
            assert await broken.get("n") == 5
            await broken.clear()

    async def test_a_value_the_serializer_cannot_read_is_corrupt_value_error(
        self, new_store: StoreMaker
    ) -> None:
        unreadable = new_store(serializer=_Broken("text"))
        async with unreadable:
            await unreadable.set("k", "value")
            for call in (
                lambda: unreadable.get("k"),
                lambda: collect(unreadable.values(), 1),
                lambda: collect(unreadable.items(), 1),
                lambda: collect(unreadable.records(), 1),
            ):
                with pytest.raises(CorruptValueError) as caught:
                    await call()
                assert isinstance(caught.value, ValueError)
            assert await unreadable.has("k")  # reported, not removed
            assert await keys_of(unreadable) == ["k"]
            await unreadable.clear()

    async def test_compare_and_set_compares_values_not_their_text(
        self, new_store: StoreMaker
    ) -> None:
        store = new_store(serializer=_Sorted())
        async with store:
            await store.set("d", {"b": 1, "a": 2})
            assert await store.compare_and_set("d", {"c": 3}, expected={"a": 2, "b": 1})
            assert await store.get("d") == {"c": 3}
            assert not await store.compare_and_set("d", {"e": 4}, expected={"a": 2, "b": 1})
            await store.clear()

    # -- expiry -----------------------------------------------------------------------

    async def test_an_expired_key_is_invisible_to_every_read(
        self, store: KVStore[Any], clock: FakeClock
    ) -> None:
        await store.set("short", "v", ttl=TTL)
        await store.set("long", "v", ttl=60)
        await store.set("counter", 5, ttl=TTL)
        await self.later(store, clock, TTL + 0.2)
        assert await store.get("short") is None
        assert await store.get("short", "gone") == "gone"
        assert not await store.has("short")
        assert await keys_of(store) == ["long"]
        assert await collect(store.items(), 1) == [("long", "v")]
        assert await collect(store.values(), 1) == ["v"]
        assert [r.key for r in await collect(store.records(), 1)] == ["long"]
        assert await store.touch("short") is False
        assert await store.delete("short") is False
        assert await store.compare_and_set("short", "new", expected="v") is False
        assert await store.compare_and_set("short", "new", expected=MISSING) is True
        assert await store.get("short") == "new"
        assert await store.increment("counter") == 1  # the expired 5 counts as absent

    async def test_records_carry_each_keys_expiry(
        self, store: KVStore[Any], clock: FakeClock
    ) -> None:
        await store.set("k", "v", ttl=30)
        await store.set("forever", "v")
        assert about(await expiry(store, "k"), clock() + 30)
        assert await expiry(store, "forever") is None
        entries = {r.key: r for r in await collect(store.records(), 2)}
        assert entries["k"].value == "v" and isinstance(entries["k"], Entry)

    async def test_touch_slides_the_expiry(self, store: KVStore[Any], clock: FakeClock) -> None:
        await store.set("k", "v", ttl=30)
        assert await store.touch("k", 300) is True
        assert about(await expiry(store, "k"), clock() + 300)
        assert await store.touch("k", TTL) is True
        await self.later(store, clock, TTL + 0.2)
        assert await store.get("k") is None
        assert await store.touch("k", 5) is False
        assert await store.touch("absent", 5) is False
        assert not await store.has("absent")

    async def test_touch_without_ttl_makes_a_key_permanent(self, store: KVStore[Any]) -> None:
        await store.set("k", "v", ttl=30)
        assert await store.touch("k") is True
        assert await expiry(store, "k") is None
        assert await store.get("k") == "v"

    async def test_set_without_ttl_drops_an_earlier_expiry(
        self, store: KVStore[Any], clock: FakeClock
    ) -> None:
        await store.set("k", "v", ttl=TTL)
        await store.set("k", "w")
        await self.later(store, clock, TTL + 0.2)
        assert await store.get("k") == "w"
        assert await expiry(store, "k") is None

    async def test_default_ttl(self, new_store: StoreMaker, clock: FakeClock) -> None:
        async with new_store(default_ttl=TTL) as store:
            await store.clear()
            await store.set("a", 1)
            await store.set("b", 1, ttl=60)
            await store.increment("c")
            await store.compare_and_set("d", 1, expected=MISSING)
            await store.set("e", 1)
            assert await store.touch("e") is True  # restarts it with default_ttl
            assert about(await expiry(store, "e"), clock() + TTL)
            await store.put(Entry("f", 1, None))  # an entry's None is "never"
            await self.later(store, clock, TTL + 0.2)
            assert sorted(await keys_of(store)) == ["b", "f"]
            await store.clear()

    async def test_bad_ttls_are_refused(self, store: KVStore[Any]) -> None:
        await store.set("k", "old")
        for ttl in BAD_TTLS:
            for call in (
                lambda ttl=ttl: store.set("k", "new", ttl=ttl),
                lambda ttl=ttl: store.set("fresh", "new", ttl=ttl),
                lambda ttl=ttl: store.touch("k", ttl),
                lambda ttl=ttl: store.compare_and_set("k", "new", expected="old", ttl=ttl),
                lambda ttl=ttl: store.increment("c", ttl=ttl),
            ):
                with pytest.raises(InvalidTTLError) as caught:
                    await call()
                assert isinstance(caught.value, (TypeError, ValueError))
        assert await store.get("k") == "old"
        assert not await store.has("fresh") and not await store.has("c")

    # -- compare and set --------------------------------------------------------------

    async def test_compare_and_set(self, store: KVStore[Any]) -> None:
        assert await store.compare_and_set("k", "a", expected=MISSING) is True
        assert await store.compare_and_set("k", "b", expected=MISSING) is False
        assert await store.get("k") == "a"
        assert await store.compare_and_set("k", "b", expected="x") is False
        assert await store.compare_and_set("k", "b", expected="a") is True
        assert await store.get("k") == "b"
        assert await store.compare_and_set("absent", "b", expected="a") is False
        assert not await store.has("absent")
        # By value: a set or dict written in another order is still "the same value".
        await store.set("data", {"b": 2, "a": {3, 1, 2}})
        assert await store.compare_and_set("data", [1], expected={"a": {1, 2, 3}, "b": 2})
        assert await store.get("data") == [1]
        # Integers are compared as integers (1 is not "1", True is not 1).
        await store.set("n", 1)
        assert await store.compare_and_set("n", 2, expected="1") is False
        assert await store.compare_and_set("n", 2, expected=True) is False
        assert await store.compare_and_set("n", 2, expected=1) is True

    async def test_compare_and_set_gives_the_new_value_its_ttl(
        self, store: KVStore[Any], clock: FakeClock
    ) -> None:
        await store.set("k", "a", ttl=60)
        assert await store.compare_and_set("k", "b", expected="a", ttl=TTL)
        assert await store.compare_and_set("fresh", "x", expected=MISSING, ttl=TTL)
        assert await store.compare_and_set("kept", "x", expected=MISSING, ttl=60)
        assert await store.compare_and_set("kept", "y", expected="x")  # no ttl: no expiry
        await self.later(store, clock, TTL + 0.2)
        assert await store.get("k") is None
        assert await store.get("fresh") is None
        assert await expiry(store, "kept") is None

    # -- counters ---------------------------------------------------------------------

    async def test_increment(self, store: KVStore[Any]) -> None:
        assert await store.increment("hits") == 1
        assert await store.increment("hits", 10) == 11
        assert await store.increment("hits", -20) == -9
        assert await store.get("hits") == -9
        await store.set("n", 5)
        assert await store.increment("n", 2) == 7
        assert await store.increment("zero", 0) == 0

    async def test_increment_ttl_is_set_on_creation_and_kept(
        self, store: KVStore[Any], clock: FakeClock
    ) -> None:
        assert await store.increment("rate", ttl=30) == 1
        created = await expiry(store, "rate")
        assert about(created, clock() + 30)
        assert await store.increment("rate") == 2  # keeps the expiry it was created with
        assert about(await expiry(store, "rate"), created or 0)
        assert await store.increment("rate", ttl=300) == 3  # an explicit ttl resets it
        assert about(await expiry(store, "rate"), clock() + 300)
        assert await store.increment("brief", ttl=TTL) == 1
        await self.later(store, clock, TTL + 0.2)
        assert await store.get("brief") is None
        assert await store.increment("brief") == 1  # created again, without TTL this time
        assert await expiry(store, "brief") is None

    async def test_increment_refuses_what_is_not_a_counter(self, store: KVStore[Any]) -> None:
        await store.set("name", "Ann")
        await store.set("float", 1.5)
        await store.set("max", 2**63 - 1)
        await store.set("min", -(2**63))
        for key, amount in (("name", 1), ("float", 1), ("max", 1), ("min", -1)):
            with pytest.raises(NotACounterError) as caught:
                await store.increment(key, amount)
            assert isinstance(caught.value, TypeError)
        assert await store.get("name") == "Ann"
        assert await store.get("float") == 1.5
        assert await store.get("max") == 2**63 - 1
        assert await store.get("min") == -(2**63)
        with pytest.raises(InvalidArgumentError):
            await store.increment("x", 1.5)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError):
            await store.increment("x", True)
        with pytest.raises(NotACounterError):
            await store.increment("x", 2**63)
        assert not await store.has("x")

    # -- merge ------------------------------------------------------------------------

    @staticmethod
    async def stored_text(store: KVStore[Any], key: str) -> Any:
        """The key's value as the backend holds it (what the serializer wrote)."""
        record = await store._get(key)
        assert record is not None, f"{key} is missing"
        raw: Any = record[0]
        return raw.value if type(raw).__name__ == "Plain" else raw

    async def test_merge_adds_and_replaces_items_and_returns_the_dict(
        self, store: KVStore[Any]
    ) -> None:
        assert await store.merge("d", {"name": "Ann"}) == {"name": "Ann"}
        assert await store.get("d") == {"name": "Ann"}
        merged = await store.merge("d", {"age": 30, "name": "Bob"})
        assert merged == {"name": "Bob", "age": 30}
        assert await store.get("d") == merged
        assert await store.merge("d", types.MappingProxyType({"x": [1]})) == {
            "name": "Bob", "age": 30, "x": [1],
        }  # fmt: skip
        assert await store.merge("d", {}) == {"name": "Bob", "age": 30, "x": [1]}
        assert await store.merge("empty", {}) == {}
        assert await store.get("empty") == {}
        # Shallow, as dict.update: a nested dict is replaced, not merged.
        await store.merge("n", {"inner": {"a": 1}})
        assert await store.merge("n", {"inner": {"b": 2}}) == {"inner": {"b": 2}}

    async def test_merge_keeps_every_type_and_stores_what_set_would(
        self, store: KVStore[Any]
    ) -> None:
        first = {key: value for key, value in list(EVERY_TYPE.items())[::2]}
        second = {key: value for key, value in list(EVERY_TYPE.items())[1::2]}
        odd = {"é": 1, "Ю": 2, "🔑": 3, " ": 4, "a b": 5, "\n": 6, '"q"': 7, "\\": 8, "": 9,
               "\u2028": 10, "\x01": 11, "a": {"$kv": "x"}, "b": "\"}{,:[]"}  # fmt: skip
        cases: list[tuple[dict[Any, Any], dict[Any, Any]]] = [
            (first, second),
            ({"b": 1, "d": 2}, {"a": 0, "c": 1.5, "e": 2**70}),
            (odd, {"z": 1, "é": "changed", "\t": [{"}": "]"}]}),
            ({"$kv": 1, "\x00": 2}, {"b": 1, "\x00": 3}),
            ({1: "one", (2, 3): "pair"}, {"a": 1}),
            ({"a": 1}, {1: "one"}),
        ]
        for stored, update in cases:
            await store.set("d", stored)
            merged = await store.merge("d", update)
            assert merged == {**stored, **update}
            got = await store.get("d")
            assert got == {**stored, **update}
            for key, value in got.items():
                assert type(value) is type({**stored, **update}[key]), key
            await store.set("twin", {**stored, **update})
            assert await self.stored_text(store, "d") == await self.stored_text(store, "twin")

    async def test_merge_gives_the_value_its_ttl_as_set_does(
        self, store: KVStore[Any], clock: FakeClock
    ) -> None:
        await store.merge("brief", {"a": 1}, ttl=TTL)
        await store.merge("kept", {"a": 1}, ttl=60)
        await store.merge("kept", {"b": 2})  # no ttl: no expiry, as set()
        assert await expiry(store, "kept") is None
        await store.merge("slid", {"a": 1}, ttl=TTL)
        await store.merge("slid", {"b": 2}, ttl=300)
        assert about(await expiry(store, "slid"), clock() + 300)
        await self.later(store, clock, TTL + 0.2)
        assert await store.get("brief") is None
        assert await store.get("slid") == {"a": 1, "b": 2}
        # An expired value is gone: the merge starts from nothing.
        assert await store.merge("brief", {"b": 2}) == {"b": 2}
        assert await expiry(store, "brief") is None

    async def test_merge_uses_the_default_ttl(
        self, new_store: StoreMaker, clock: FakeClock
    ) -> None:
        store = new_store(default_ttl=120)
        async with store:
            await store.merge("d", {"a": 1})
            assert about(await expiry(store, "d"), clock() + 120)
            await store.clear()

    async def test_merge_refuses_bad_input_and_stores_nothing(self, store: KVStore[Any]) -> None:
        await store.set("d", {"a": 1})
        for bad in ([("a", 2)], None, "a=2", 5, {"a", "b"}):
            with pytest.raises(InvalidArgumentError):
                await store.merge("d", bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidKeyError):
            await store.merge("", {"a": 2})
        with pytest.raises(InvalidTTLError):
            await store.merge("d", {"a": 2}, ttl=-1)
        for value in (Unknown(), {"x": [object()]}, SURROGATES[0]):
            with pytest.raises(KVSerializationError):
                await store.merge("d", {"a": value})
            with pytest.raises(KVSerializationError):
                await store.merge("new", {"a": value})
        assert await store.get("d") == {"a": 1}
        assert not await store.has("new")

    async def test_merge_into_a_value_that_is_not_a_dict_is_refused(
        self, store: KVStore[Any]
    ) -> None:
        for value in (5, "text", [1, 2], {1, 2}, 1.5, True, None, (1,), b"x", 2**70):
            await store.set("v", value)
            with pytest.raises(NotADictError) as caught:
                await store.merge("v", {"a": 1})
            assert "'v'" in str(caught.value) and isinstance(caught.value, TypeError)
            got = await store.get("v")
            assert got == value and type(got) is type(value)

    async def test_merge_with_another_serializer(self, new_store: StoreMaker) -> None:
        store = new_store(serializer=_Sorted())
        async with store:
            await store.set("d", {"b": 1, "a": 2})
            assert await store.merge("d", {"c": 3}) == {"a": 2, "b": 1, "c": 3}
            assert await store.get("d") == {"a": 2, "b": 1, "c": 3}
            await store.clear()
        unreadable = new_store(serializer=_Broken("text"))
        async with unreadable:
            await unreadable.set("k", "value")
            with pytest.raises(CorruptValueError):
                await unreadable.merge("k", {"a": 1})
            await unreadable.clear()

    async def test_concurrent_merges_into_one_value_all_land(
        self, store: KVStore[Any], new_store: StoreMaker
    ) -> None:
        await store.set("d", {"base": 0})
        await asyncio.gather(*(store.merge("d", {f"k{i}": i}) for i in range(50)))
        assert await store.get("d") == {"base": 0, **{f"k{i}": i for i in range(50)}}
        if not store.persistent or store.exclusive:
            return
        other = new_store()
        async with other:  # another object (another connection) merging at the same time
            await asyncio.gather(
                *((store if i % 2 else other).merge("e", {f"k{i}": i}) for i in range(50))
            )
        assert await store.get("e") == {f"k{i}": i for i in range(50)}

    # -- listing ----------------------------------------------------------------------

    async def test_glob_patterns(self, store: KVStore[Any]) -> None:
        for key in PATTERN_KEYS:
            await store.set(key, key)
        for pattern, expected in PATTERNS:
            most = len(PATTERN_KEYS)
            assert sorted(await keys_of(store, pattern)) == sorted(expected), pattern
            items = await collect(store.items(pattern), most)
            assert sorted(k for k, _ in items) == sorted(expected), pattern
            assert sorted(await collect(store.values(pattern), most)) == sorted(expected)
            records = await collect(store.records(pattern), most)
            assert sorted(r.key for r in records) == sorted(expected), pattern

    async def test_bad_patterns_are_refused(self, store: KVStore[Any]) -> None:
        patterns: list[Any] = ["[abc", "abc\\", 5, None, "\ud800*", "x" * 2000]
        for pattern in patterns:
            for listing in (store.keys, store.values, store.items, store.records):
                with pytest.raises(InvalidPatternError) as caught:
                    await collect(listing(pattern), 0)
                assert isinstance(caught.value, (TypeError, ValueError))

    async def test_listing_crosses_batches_and_ends(self, store: KVStore[Any]) -> None:
        count = 1200  # more than two batches everywhere
        await in_chunks(store.set(f"k{i:05d}", i) for i in range(count))
        seen = dict(await collect(store.items(), count, "items()"))
        assert seen == {f"k{i:05d}": i for i in range(count)}
        assert len(set(await keys_of(store, "k*", count))) == count
        assert len(await collect(store.records("k00*"), 1000)) == 1000
        assert await store.clear() == count

    async def test_stopping_a_listing_early_leaves_the_store_usable(
        self, store: KVStore[Any]
    ) -> None:
        for index in range(30):
            await store.set(f"k{index}", index)
        async for _ in store.keys():
            break
        listing = store.items()
        await anext(listing)
        await listing.aclose()  # type: ignore[attr-defined]
        await store.set("after", 1)
        assert await store.get("after") == 1
        assert len(await keys_of(store)) == 31

    async def test_writes_during_a_listing_do_not_break_it(self, store: KVStore[Any]) -> None:
        await in_chunks(store.set(f"k{index:04d}", index) for index in range(600))
        seen = []
        async for key, _ in store.items():
            seen.append(key)
            if len(seen) == 10:
                await in_chunks(store.delete(f"k{index:04d}") for index in range(0, 600, 2))
            assert len(seen) <= 600, "no progress: items() repeats itself"
        assert len(set(seen)) == len(seen)
        assert {f"k{i:04d}" for i in range(1, 600, 2)} <= set(seen)

    # -- namespaces -------------------------------------------------------------------

    async def test_clear_counts_live_keys_and_spares_other_namespaces(
        self, store: KVStore[Any], new_store: StoreMaker, clock: FakeClock
    ) -> None:
        for index in range(5):
            await store.set(f"k{index}", index)
        await store.set("dying", 1, ttl=TTL)
        await self.later(store, clock, TTL + 0.2)
        if store.persistent:
            other_namespace = "other" + uuid.uuid4().hex[:8]
            if store.exclusive:
                await store.close()
            async with new_store(namespace=other_namespace) as other:
                await other.set("k0", "kept")
                assert await keys_of(other) == ["k0"]
            if store.exclusive:
                await store.open()
        assert sorted(await keys_of(store)) == [f"k{i}" for i in range(5)]
        assert await store.clear() == 5
        assert await keys_of(store) == []
        assert await store.clear() == 0
        if store.persistent:
            if store.exclusive:
                await store.close()
            async with new_store(namespace=other_namespace) as other:
                assert await other.get("k0") == "kept"
                assert await other.clear() == 1
            if store.exclusive:
                await store.open()

    async def test_bad_namespaces_are_refused(self, new_store: StoreMaker) -> None:
        for namespace in ["", "a:b", "a b", "x" * 65, 5, "bot*", "ns\x00"]:
            with pytest.raises(InvalidArgumentError):
                new_store(namespace=namespace)

    # -- keys -------------------------------------------------------------------------

    async def test_bad_keys_are_refused(self, store: KVStore[Any]) -> None:
        for key in BAD_KEYS:
            calls: list[Callable[..., Any]] = [
                lambda key=key: store.get(key),
                lambda key=key: store.set(key, 1),
                lambda key=key: store.put(Entry(key, 1)),
                lambda key=key: store.delete(key),
                lambda key=key: store.has(key),
                lambda key=key: store.touch(key),
                lambda key=key: store.compare_and_set(key, 1, expected=MISSING),
                lambda key=key: store.increment(key),
            ]
            for call in calls:
                with pytest.raises(InvalidKeyError) as caught:
                    await call()
                assert isinstance(caught.value, (InvalidTypeError, InvalidValueError))
                assert isinstance(caught.value, (TypeError, ValueError, StorageError))
        assert await keys_of(store) == []

    # -- entries: records() and put() ---------------------------------------------------

    async def test_put_stores_an_entry_with_its_absolute_expiry(
        self, store: KVStore[Any], clock: FakeClock
    ) -> None:
        assert await store.put(Entry("k", {"a": 1}, clock() + 30)) is True
        assert await store.put(Entry("forever", [1], None)) is True
        assert await store.get("k") == {"a": 1}
        assert about(await expiry(store, "k"), clock() + 30)
        assert await expiry(store, "forever") is None
        assert await store.put(Entry("gone", 1, clock() - 1)) is False  # expired already
        assert not await store.has("gone")
        await store.set("replaced", "old", ttl=TTL)
        assert await store.put(Entry("replaced", "new"))
        await self.later(store, clock, TTL + 0.2)
        assert await store.get("replaced") == "new"

    async def test_put_refuses_what_is_not_an_entry(
        self, store: KVStore[Any], clock: FakeClock
    ) -> None:
        for bad in [("k", 1, None), {"key": "k"}, None]:
            with pytest.raises(InvalidArgumentError):
                await store.put(bad)  # type: ignore[arg-type]
        for when in ["soon", math.nan, b"1"]:
            with pytest.raises(InvalidArgumentError):
                await store.put(Entry("k", 1, when))  # type: ignore[arg-type]
        with pytest.raises(InvalidTTLError):
            await store.put(Entry("k", 1, clock() + 200 * 365 * 86400))
        assert not await store.has("k")

    async def test_copy_keeps_values_and_remaining_ttl(
        self, store: KVStore[Any], clock: FakeClock
    ) -> None:
        for name, value in EVERY_TYPE.items():
            await store.set(name, value)
        await store.set("short", "v", ttl=30)
        await store.set("long", "v", ttl=100)
        before = {r.key: r.expires for r in await collect(store.records(), 100)}
        middle = MemoryKV[Any]()
        middle.clock = clock
        seen: list[tuple[int, int]] = []
        total = len(EVERY_TYPE) + 2
        assert await copy(store, middle, progress=lambda *a: seen.append(a)) == total
        assert seen[-1] == (total, total)
        with pytest.raises(TargetNotEmptyError):
            await copy(store, middle)
        async with middle:
            copied = {r.key: r.expires for r in await collect(middle.records(), 100)}
        assert copied.keys() == before.keys()
        for key, expires in before.items():
            assert (copied[key] is None) == (expires is None), key
            if expires is not None:
                assert about(copied[key], expires), key
        # And back, into a store holding a key of its own.
        await store.clear()
        await store.set("mine", 1)
        with pytest.raises(TargetNotEmptyError):
            await copy(middle, store)
        assert await copy(middle, store, overwrite=True) == total
        for name, value in EVERY_TYPE.items():
            assert await store.get(name) == value
        assert await store.get("mine") == 1
        back = {r.key: r.expires for r in await collect(store.records(), 100)}
        for key in ("short", "long"):
            assert about(back[key], before[key] or 0), key
        assert back["int"] is None
        assert store.is_open  # an open store stays open

    async def test_copy_onto_itself_is_refused(self, store: KVStore[Any]) -> None:
        with pytest.raises(TargetNotEmptyError):
            await copy(store, store)

    # -- versioned values ---------------------------------------------------------------

    async def test_versioned_migrates_on_read_and_writes_back(self, store: KVStore[Any]) -> None:
        await store.set("legacy", {"name": "Ann"}, ttl=60)
        v1 = versioned(store, {1: lambda d: {**d, "age": None}})
        await v1.set("fresh", {"name": "Bob", "age": 3})
        assert await store.get("fresh") == {"v": 1, "data": {"name": "Bob", "age": 3}}
        v2 = versioned(store, {1: lambda d: {**d, "age": None}, 2: lambda d: {"person": d}})
        assert await v2.get("legacy") == {"person": {"name": "Ann", "age": None}}
        stored = {"v": 2, "data": {"person": {"name": "Ann", "age": None}}}
        assert await store.get("legacy") == stored
        assert await expiry(store, "legacy") is not None  # the write-back kept the TTL
        assert await v2.get("fresh") == {"person": {"name": "Bob", "age": 3}}
        await store.set("racy", {"name": "Cy"})
        results = await asyncio.gather(*(v2.get("racy") for _ in range(5)))
        assert all(result == {"person": {"name": "Cy", "age": None}} for result in results)
        assert await v2.compare_and_set("racy", {"person": {}}, expected=results[0])
        assert await v2.get("racy") == {"person": {}}

    async def test_versioned_refuses_values_from_newer_code(self, store: KVStore[Any]) -> None:
        await store.set("k", {"v": 5, "data": 1})
        v1 = versioned(store, {1: lambda d: d})
        with pytest.raises(SchemaTooNewError) as caught:
            await v1.get("k")
        assert isinstance(caught.value, ValueError)
        assert await store.get("k") == {"v": 5, "data": 1}  # left untouched

    # -- concurrency --------------------------------------------------------------------

    async def test_concurrent_writes_to_one_new_key(self, store: KVStore[Any]) -> None:
        await asyncio.gather(*(store.set("k", index) for index in range(20)))
        assert await store.get("k") in range(20)
        results = await asyncio.gather(
            *(store.compare_and_set("once", index, expected=MISSING) for index in range(20))
        )
        assert results.count(True) == 1
        assert await store.get("once") == results.index(True)
        counts = await asyncio.gather(*(store.increment("n") for _ in range(20)))
        assert sorted(counts) == list(range(1, 21))

    async def test_many_tasks_writing_at_once_lose_nothing(
        self, store: KVStore[Any], new_store: StoreMaker
    ) -> None:
        async def writer(n: int) -> None:
            for i in range(20):
                await store.set(f"t{n}:{i}", i)
                await store.increment(f"count:{n}")

        await asyncio.gather(*(writer(n) for n in range(10)))
        await store.close()
        again = self.second(store, new_store)
        async with again:
            assert len(await keys_of(again, "t*")) == 200
            for n in range(10):
                assert await again.get(f"count:{n}") == 20
        await store.open()

    # -- sole writer ----------------------------------------------------------------------

    SOLE_WRITER_RUNS: tuple[str, ...] = (
        "test_every_supported_type_comes_back_as_itself",
        "test_integers_floats_and_bools_keep_their_type",
        "test_get_missing_returns_default",
        "test_set_replaces_and_delete_says_whether_it_existed",
        "test_deleting_a_key_leaves_the_others",
        "test_touch_keeps_the_value_and_its_type",
        "test_returned_values_are_copies",
        "test_unknown_types_are_refused_and_nothing_is_stored",
        "test_compare_and_set_compares_values_not_their_text",
        "test_an_expired_key_is_invisible_to_every_read",
        "test_records_carry_each_keys_expiry",
        "test_touch_slides_the_expiry",
        "test_touch_without_ttl_makes_a_key_permanent",
        "test_set_without_ttl_drops_an_earlier_expiry",
        "test_default_ttl",
        "test_compare_and_set",
        "test_compare_and_set_gives_the_new_value_its_ttl",
        "test_increment",
        "test_increment_ttl_is_set_on_creation_and_kept",
        "test_increment_refuses_what_is_not_a_counter",
        "test_merge_adds_and_replaces_items_and_returns_the_dict",
        "test_merge_gives_the_value_its_ttl_as_set_does",
        "test_merge_uses_the_default_ttl",
        "test_merge_into_a_value_that_is_not_a_dict_is_refused",
        "test_concurrent_merges_into_one_value_all_land",
        "test_clear_counts_live_keys_and_spares_other_namespaces",
        "test_put_stores_an_entry_with_its_absolute_expiry",
        "test_versioned_migrates_on_read_and_writes_back",
        "test_versioned_refuses_values_from_newer_code",
        "test_concurrent_writes_to_one_new_key",
    )
    """The tests ``test_a_sole_writer_keeps_the_contract`` runs again with
    ``sole_writer=True``."""

    @staticmethod
    def sharing(store: KVStore[Any]) -> bool:
        """Whether a second object may write what ``store`` reads, and ``store`` remembers
        what it read: the sole-writer tests that break the promise on purpose need it."""
        return store.persistent and not store.exclusive and store._memory is not None

    @pytest_asyncio.fixture
    async def sole(self, new_store: StoreMaker) -> AsyncIterator[KVStore[Any]]:
        """An open ``sole_writer=True`` store, empty; cleared and closed afterwards."""
        opened = new_store(sole_writer=True)
        await opened.open()
        try:
            await opened.clear()
            yield opened
        finally:
            if opened.is_open:
                await opened.clear()
            await opened.close()

    async def test_a_sole_writer_keeps_the_contract(
        self, sole: KVStore[Any], new_store: StoreMaker, clock: FakeClock
    ) -> None:
        """Every test of :attr:`SOLE_WRITER_RUNS` again, on a store remembering its keys."""

        def sole_store(**options: Any) -> KVStore[Any]:
            return new_store(**{"sole_writer": True, **options})

        await self._run_again(sole, sole_store, clock, "sole_writer=True", self.SOLE_WRITER_RUNS)

    async def _run_again(
        self,
        sole: KVStore[Any],
        new_store: StoreMaker,
        clock: FakeClock,
        label: str,
        names: Sequence[str],
    ) -> None:
        """Run the tests ``names`` again on ``sole`` and stores made by ``new_store``,
        clearing ``sole`` between them; a failure names the test and ``label``."""
        import inspect

        given = {"store": sole, "new_store": new_store, "clock": clock}
        for name in names:
            test = getattr(self, name)
            arguments = {p: given[p] for p in inspect.signature(test).parameters}
            if "store" not in arguments:
                await sole.close()  # the test opens its own (a JSON file has one at a time)
            try:
                await test(**arguments)
            except pytest.skip.Exception:
                pass
            except BaseException as exc:
                raise AssertionError(f"{name} with {label}: {exc!r}") from exc
            if not sole.is_open:
                await sole.open()
            await sole.clear()

    async def test_sole_writer_is_off_by_default_and_checked(
        self, store: KVStore[Any], new_store: StoreMaker
    ) -> None:
        assert store.sole_writer is False
        for bad in (1, "yes", None):
            with pytest.raises(InvalidArgumentError):
                new_store(sole_writer=bad)
        for size in (0, -1, 1.5, "10", True):
            with pytest.raises(InvalidArgumentError):
                new_store(sole_writer=True, sole_writer_keys=size)
        assert new_store(sole_writer=True).sole_writer is True
        store.sole_writer = True  # at any time: memory starts empty
        await store.set("k", 1)
        assert await store.get("k") == 1
        store.sole_writer = False
        assert await store.get("k") == 1
        with pytest.raises(InvalidArgumentError):
            store.sole_writer = 1  # type: ignore[assignment]

    async def test_a_sole_writer_answers_from_memory(
        self, sole: KVStore[Any], new_store: StoreMaker
    ) -> None:
        """What it wrote or read comes from memory: another object's write behind its
        back (breaking the promise on purpose) is not seen until it writes the key."""
        if not self.sharing(sole):
            pytest.skip(f"{type(sole).__name__}: no second writer to hide")
        await sole.set("written", {"a": 1})
        await sole.delete("deleted")
        async with new_store() as other:
            await other.set("read", "first")
            assert await sole.get("read") == "first"
            assert await sole.get("absent") is None
            for key in ("written", "read", "absent", "deleted"):
                await other.set(key, "behind its back")
            assert await sole.get("written") == {"a": 1}
            assert await sole.get("read") == "first"
            assert await sole.get("absent") is None and not await sole.has("absent")
            assert not await sole.has("deleted")
            await other.set("never read", 7)
            assert await sole.get("never read") == 7  # not remembered: the server
            await sole.set("written", 2)
            assert await other.get("written") == 2  # writes go to the store
            assert await sole.increment("written") == 3
            assert await other.get("written") == 3
        await sole.close()  # closing forgets
        await sole.open()
        assert await sole.get("read") == "behind its back"

    async def test_a_sole_writer_remembers_the_expiry(
        self, sole: KVStore[Any], new_store: StoreMaker, clock: FakeClock
    ) -> None:
        await sole.set("short", "v", ttl=TTL)
        await sole.set("long", "v", ttl=60)
        await sole.increment("counter", ttl=TTL)
        assert await sole.merge("dict", {"a": 1}, ttl=TTL) == {"a": 1}
        assert await sole.compare_and_set("cas", 1, expected=MISSING, ttl=TTL)
        assert await sole.touch("long", TTL)
        read = ["short"]
        if self.sharing(sole):
            async with new_store() as other:
                await other.set("read", "v", ttl=TTL)
            assert await sole.get("read") == "v"  # remembered with its expiry
            read.append("read")
        for key in ("short", "counter", "dict", "cas", "long", *read):
            assert await sole.has(key), key
        await self.later(sole, clock, TTL + 0.2)
        for key in ("short", "counter", "dict", "cas", "long", *read):
            assert await sole.get(key) is None, key
            assert not await sole.has(key), key
        assert await sole.increment("counter") == 1  # expired: starts again
        assert await expiry(sole, "counter") is None

    async def test_a_sole_writer_keeps_expiry_through_keep_and_increment(
        self, sole: KVStore[Any], clock: FakeClock
    ) -> None:
        await sole.set("legacy", {"name": "Ann"}, ttl=TTL)
        assert await sole.get("legacy") == {"name": "Ann"}
        v1 = versioned(sole, {1: lambda d: {**d, "age": None}})
        assert await v1.get("legacy") == {"name": "Ann", "age": None}  # written back, TTL kept
        await sole.set("n", 1, ttl=TTL)
        assert await sole.increment("n") == 2  # keeps its expiry
        await sole.set("forever", 1)
        assert await sole.increment("forever") == 2
        await self.later(sole, clock, TTL + 0.2)
        assert await sole.get("legacy") is None
        assert await sole.get("n") is None
        assert await sole.get("forever") == 2

    async def test_a_sole_writer_memory_is_bounded(
        self, new_store: StoreMaker, clock: FakeClock
    ) -> None:
        """Past ``sole_writer_keys`` keys the least recently used is forgotten (and read
        from the store again)."""
        sole = new_store(sole_writer=True, sole_writer_keys=3)
        async with sole:
            await sole.clear()
            if not self.sharing(sole):
                pytest.skip(f"{type(sole).__name__}: no second writer to tell memory apart")
            for index in range(5):
                await sole.set(f"k{index}", index)
            assert await sole.get("k2") == 2  # k2 becomes the most recently used
            async with new_store() as other:
                for index in range(5):
                    await other.set(f"k{index}", "changed")
            got = [await sole.get(f"k{index}") for index in (3, 4, 2, 0, 1)]
            assert got == [3, 4, 2, "changed", "changed"]
            await sole.clear()

    async def test_a_sole_writer_forgets_what_clear_removed(
        self, sole: KVStore[Any], new_store: StoreMaker
    ) -> None:
        await sole.set("a", 1)
        await sole.set("b", 2)
        assert await sole.get("a") == 1
        assert await sole.clear() == 2
        assert await sole.get("a") is None and not await sole.has("b")
        if self.sharing(sole):
            async with new_store() as other:
                await other.set("a", "new")
            assert await sole.clear() == 1
            assert await sole.get("a") is None

    async def test_a_sole_writer_stays_right_under_concurrent_writes(
        self, sole: KVStore[Any], new_store: StoreMaker
    ) -> None:
        """Writes and reads of the same keys from many tasks at once: afterwards memory
        answers what the store holds."""

        async def task(n: int) -> None:
            for i in range(10):
                key = f"k{(n + i) % 3}"
                await sole.set(key, {"n": n, "i": i})
                await sole.get(key)
                await sole.merge(key, {"m": n})
                await sole.increment(f"c{n % 2}")
                await sole.compare_and_set(key, {"cas": i}, expected=MISSING)
                if i % 4 == 0:
                    await sole.delete(key)

        await asyncio.gather(*(task(n) for n in range(6)), sole.clear())
        remembered = {key: await sole.get(key) for key in ("k0", "k1", "k2", "c0", "c1")}
        if self.sharing(sole):
            async with new_store() as other:
                stored = {key: await other.get(key) for key in remembered}
        else:
            await sole.close()
            await sole.open()
            stored = {key: await sole.get(key) for key in remembered}
        assert remembered == stored

    # -- commit_interval: a sole writer's writes stored a moment later --------------------

    @pytest_asyncio.fixture
    async def queuing(self, new_store: StoreMaker) -> AsyncIterator[KVStore[Any]]:
        """An open sole writer whose writes wait a minute before they are stored (unless
        flushed); skipped for stores that keep everything in memory anyway."""
        opened = new_store(sole_writer=True, commit_interval=60)
        await opened.open()
        try:
            if opened._queueing() is None:
                pytest.skip(f"{type(opened).__name__} answers every read from memory anyway")
            await opened.clear()
            yield opened
        finally:
            if opened.is_open:
                await opened.clear()
            await opened.close()

    async def test_a_sole_writer_with_a_commit_interval_keeps_the_contract(
        self, sole: KVStore[Any], new_store: StoreMaker, clock: FakeClock
    ) -> None:
        """Every test of :attr:`SOLE_WRITER_RUNS` again, with ``commit_interval=0.05``."""
        sole.commit_interval = 0.05

        def queuing_store(**options: Any) -> KVStore[Any]:
            return new_store(**{"sole_writer": True, "commit_interval": 0.05, **options})

        # Two objects writing one key at once are not a sole writer.
        names = [
            name
            for name in self.SOLE_WRITER_RUNS
            if name != "test_concurrent_merges_into_one_value_all_land"
        ]
        await self._run_again(sole, queuing_store, clock, "commit_interval=0.05", names)

    async def test_commit_interval_is_checked(
        self, store: KVStore[Any], new_store: StoreMaker
    ) -> None:
        assert store.commit_interval == 0
        with pytest.raises(InvalidArgumentError, match="sole_writer=True"):
            new_store(commit_interval=0.05)
        with pytest.raises(InvalidValueError):
            store.commit_interval = 1
        for bad in (-1, math.nan, math.inf, "1", None, True):
            with pytest.raises(InvalidArgumentError):
                new_store(sole_writer=True, commit_interval=bad)
        assert new_store(sole_writer=True, commit_interval=0).commit_interval == 0
        store.sole_writer = True
        store.commit_interval = 0.05
        with pytest.raises(InvalidArgumentError, match="commit_interval"):
            store.sole_writer = False
        await store.set("k", 1)
        store.commit_interval = 0
        if store._queued is not None and store._queued.busy:
            with pytest.raises(InvalidArgumentError, match="flush"):
                store.sole_writer = False  # k=1 is pending: reads would miss it
        await store.set("k", 2)  # what is pending is stored first, in order
        await store.flush()
        assert await store.get("k") == 2
        store.sole_writer = False
        assert await store.get("k") == 2

    async def test_queued_writes_are_seen_at_once_and_stored_by_flush(
        self, queuing: KVStore[Any], new_store: StoreMaker
    ) -> None:
        sole = queuing
        other = self.second(sole, new_store)
        async with other:
            await other.set("gone", "stored")
            assert await sole.get("gone") == "stored"
            await sole.set("a", {"x": 1})
            await sole.set("b", 2)
            assert await sole.delete("gone")
            assert await sole.merge("a", {"y": 2}) == {"x": 1, "y": 2}
            assert await sole.get("a") == {"x": 1, "y": 2}
            assert await sole.has("b") and not await sole.has("gone")
            assert await sole.get("gone") is None and not await sole.delete("gone")
            if other is not sole:
                assert await other.get("b") is None  # a minute to go: not stored yet
                assert await other.get("gone") == "stored"
            await sole.flush()
            assert await other.get("a") == {"x": 1, "y": 2}
            assert await other.get("b") == 2
            assert await other.get("gone") is None
            if other is sole:
                return
            await sole.set("c", 3)
            await sole.close()  # close stores what is pending
            assert await other.get("c") == 3
            await sole.open()
            assert await sole.get("c") == 3

    async def test_queued_writes_are_stored_in_call_order_coalesced(
        self, queuing: KVStore[Any], new_store: StoreMaker
    ) -> None:
        sole = queuing
        batches: list[list[tuple[str, Any]]] = []
        write_many = sole._write_many

        async def recording(writes: list[tuple[str, Any]]) -> None:
            batches.append([(key, None if r is None else r[0]) for key, r in writes])
            await write_many(writes)

        sole._write_many = recording  # type: ignore[method-assign]
        for value in range(5):
            await sole.set("k", value)
        await sole.set("j", "j")
        await sole.delete("j")
        await sole.set("m", "m")
        await sole.set("j", "again")
        await sole.flush()
        assert [[(key, sole._decode(key, raw) if raw is not None else None)
                 for key, raw in batch] for batch in batches] == [
            [("k", 4), ("m", "m"), ("j", "again")]
        ]  # fmt: skip
        await sole.flush()  # nothing pending: nothing written
        assert len(batches) == 1
        other = self.second(sole, new_store)
        if other is not sole:
            async with other:
                assert [await other.get(key) for key in ("k", "j", "m")] == [4, "again", "m"]

    async def test_queued_writes_keep_their_ttl(
        self, queuing: KVStore[Any], new_store: StoreMaker, clock: FakeClock
    ) -> None:
        """A TTL counts from the call, not from when the write is stored; a key whose
        TTL ran out while it waited is not stored (a stored older value is deleted)."""
        sole = queuing
        other = self.second(sole, new_store)
        async with other:
            await other.set("short", "old")
            assert await sole.has("short")
            start = clock()
            await sole.set("long", "v", ttl=60)
            await sole.set("short", "v", ttl=TTL)
            assert await sole.merge("merged", {"a": 1}, ttl=60) == {"a": 1}
            await self.later(sole, clock, TTL + 0.2)
            assert await sole.get("short") is None
            await sole.flush()
            assert await other.get("short") is None and not await other.has("short")
            assert about(await expiry(other, "long"), start + 60)
            assert about(await expiry(other, "merged"), start + 60)

    async def test_other_operations_see_the_queued_writes(
        self, queuing: KVStore[Any], new_store: StoreMaker
    ) -> None:
        """What does not go through the queue stores it first: each works on what the
        earlier calls left."""
        sole = queuing
        await sole.set("n", 5)
        assert await sole.increment("n") == 6
        await sole.set("c", "x")
        assert await sole.compare_and_set("c", "y", expected="x")
        await sole.set("t", 1)
        assert await sole.touch("t", 60)
        await sole.set("p", 1)
        assert sorted(await collect(sole.keys("*"), 4, "keys()")) == ["c", "n", "p", "t"]
        await sole.set("v", 1)
        assert dict(await collect(sole.items("v"), 1, "items()")) == {"v": 1}
        await sole.set("gone", 1)
        await sole.delete("gone")
        assert await sole.put(Entry("e", "entry"))
        other = self.second(sole, new_store)
        if other is not sole:
            async with other:
                assert await other.get("n") == 6 and await other.get("c") == "y"
                assert await other.get("e") == "entry" and not await other.has("gone")
        await sole.set("late", 1)
        assert await sole.clear() == 7

    async def test_a_sole_writer_keeps_queued_keys_beyond_its_memory_bound(
        self, new_store: StoreMaker
    ) -> None:
        sole = new_store(sole_writer=True, sole_writer_keys=2, commit_interval=60)
        async with sole:
            await sole.clear()
            for index in range(6):
                await sole.set(f"k{index}", index)
            assert [await sole.get(f"k{index}") for index in range(6)] == list(range(6))
            await sole.flush()
            assert [await sole.get(f"k{index}") for index in range(6)] == list(range(6))
            await sole.clear()
