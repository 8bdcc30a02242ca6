"""The bot-state contract, run unchanged over every backend (see conftest.BACKENDS)."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import time
import uuid
from decimal import Decimal
from typing import Any

import pytest

from pyrogram_storage import kv
from pyrogram_storage.errors import StorageClosedError, StorageError

from .conftest import PERSISTENT, KVMaker

TTL = 0.5  # long enough for a slow server to answer twice, short enough to wait for
WAIT = TTL + 0.2

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


async def test_every_supported_type_comes_back_as_itself(store: kv.KVStore[Any]) -> None:
    for name, value in EVERY_TYPE.items():
        await store.set(name, value)
    for name, value in EVERY_TYPE.items():
        got = await store.get(name)
        assert got == value, name
        assert type(got) is type(value), name
    async for key, value in store.items():
        assert value == EVERY_TYPE[key]


async def test_get_missing_returns_default(store: kv.KVStore[Any]) -> None:
    assert await store.get("nope") is None
    assert await store.get("nope", "fallback") == "fallback"
    assert not await store.has("nope")
    assert await store.delete("nope") is False


async def test_set_replaces_and_delete_says_whether_it_existed(store: kv.KVStore[Any]) -> None:
    await store.set("state:1", "Form:name")
    await store.set("state:1", "Form:age")
    assert await store.get("state:1") == "Form:age"
    assert await store.has("state:1")
    assert await store.delete("state:1") is True
    assert await store.delete("state:1") is False
    assert await store.get("state:1") is None


async def test_returned_values_are_copies(store: kv.KVStore[Any]) -> None:
    await store.set("data", {"items": [1]})
    got = await store.get("data")
    got["items"].append(2)
    assert await store.get("data") == {"items": [1]}


async def test_an_expired_key_is_invisible_to_every_read(store: kv.KVStore[Any]) -> None:
    await store.set("short", "v", ttl=TTL)
    await store.set("long", "v", ttl=60)
    await store.set("counter", 5, ttl=TTL)
    # Nothing is asserted before the TTL ran out: a loaded machine may take that long.
    await asyncio.sleep(WAIT)
    assert await store.get("short") is None
    assert await store.get("short", "gone") == "gone"
    assert not await store.has("short")
    assert [key async for key in store.keys()] == ["long"]  # noqa: SIM118 (an async iterator)
    assert [item async for item in store.items()] == [("long", "v")]
    assert [value async for value in store.values()] == ["v"]
    assert await store.touch("short") is False
    assert await store.delete("short") is False
    assert await store.compare_and_set("short", "new", expected="v") is False
    assert await store.compare_and_set("short", "new", expected=kv.MISSING) is True
    assert await store.get("short") == "new"
    assert await store.increment("counter") == 1  # the expired 5 counts as absent


async def _expiry(store: kv.KVStore[Any], key: str) -> float | None:
    found = [when async for name, _, when in store._records(key, values=True) if name == key]
    assert found, f"{key} is missing"
    return found[0]


def _about(expires: float | None, seconds: float) -> bool:
    """Whether an expiry is ``seconds`` from now (within what a slow server takes)."""
    return expires is not None and abs(expires - time.time() - seconds) < 5


async def test_touch_slides_the_expiry(store: kv.KVStore[Any]) -> None:
    await store.set("k", "v", ttl=30)
    assert _about(await _expiry(store, "k"), 30)
    assert await store.touch("k", 300) is True
    assert _about(await _expiry(store, "k"), 300)
    assert await store.touch("k", TTL) is True
    await asyncio.sleep(WAIT)
    assert await store.get("k") is None
    assert await store.touch("k", 5) is False
    assert await store.touch("absent", 5) is False


async def test_touch_without_ttl_makes_a_key_permanent(store: kv.KVStore[Any]) -> None:
    await store.set("k", "v", ttl=30)
    assert await store.touch("k") is True
    assert await _expiry(store, "k") is None
    assert await store.get("k") == "v"


async def test_default_ttl(make_kv: KVMaker) -> None:
    async with make_kv(default_ttl=TTL) as store:
        await store.set("a", 1)
        await store.set("b", 1, ttl=60)
        await store.increment("c")
        await store.compare_and_set("d", 1, expected=kv.MISSING)
        await asyncio.sleep(WAIT)
        assert [key async for key in store.keys()] == ["b"]  # noqa: SIM118 (an async iterator)
        await store.clear()


async def test_compare_and_set(store: kv.KVStore[Any]) -> None:
    assert await store.compare_and_set("k", "a", expected=kv.MISSING) is True
    assert await store.compare_and_set("k", "b", expected=kv.MISSING) is False
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
    assert await store.compare_and_set("n", 2, expected=1) is True


async def test_compare_and_set_gives_the_new_value_its_ttl(store: kv.KVStore[Any]) -> None:
    await store.set("k", "a")
    assert await store.compare_and_set("k", "b", expected="a", ttl=TTL)
    assert await store.compare_and_set("fresh", "x", expected=kv.MISSING, ttl=TTL)
    await asyncio.sleep(WAIT)
    assert await store.get("k") is None
    assert await store.get("fresh") is None


async def test_increment(store: kv.KVStore[Any]) -> None:
    assert await store.increment("hits") == 1
    assert await store.increment("hits", 10) == 11
    assert await store.increment("hits", -20) == -9
    assert await store.get("hits") == -9
    await store.set("n", 5)
    assert await store.increment("n", 2) == 7


async def test_increment_ttl_is_set_on_creation_and_kept(store: kv.KVStore[Any]) -> None:
    assert await store.increment("rate", ttl=30) == 1
    created = await _expiry(store, "rate")
    assert _about(created, 30)
    assert await store.increment("rate") == 2  # keeps the expiry it was created with
    assert abs((await _expiry(store, "rate") or 0) - (created or 0)) < 0.5
    assert await store.increment("rate", ttl=300) == 3  # an explicit ttl resets it
    assert _about(await _expiry(store, "rate"), 300)
    assert await store.increment("brief", ttl=TTL) == 1
    await asyncio.sleep(WAIT)
    assert await store.get("brief") is None
    assert await store.increment("brief") == 1  # created again, without TTL this time
    assert await _expiry(store, "brief") is None


async def test_increment_refuses_what_is_not_a_counter(store: kv.KVStore[Any]) -> None:
    await store.set("name", "Ann")
    await store.set("float", 1.5)
    await store.set("max", 2**63 - 1)
    for key in ("name", "float"):
        with pytest.raises(kv.NotACounterError):
            await store.increment(key)
    with pytest.raises(kv.NotACounterError):
        await store.increment("max")
    assert await store.get("name") == "Ann"
    assert await store.get("float") == 1.5
    assert await store.get("max") == 2**63 - 1
    with pytest.raises(TypeError):
        await store.increment("x", 1.5)  # type: ignore[arg-type]
    with pytest.raises(kv.InvalidArgumentError):
        await store.increment("x", True)
    assert not await store.has("x")


PATTERN_KEYS = [
    "user:1", "user:2", "user:10", "user:a", "users", "admin:1", "a*b", "a?b", "a[1]", "Ю:1",
]


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


async def test_glob_patterns(store: kv.KVStore[Any]) -> None:
    for key in PATTERN_KEYS:
        await store.set(key, key)
    for pattern, expected in PATTERNS:
        assert sorted([key async for key in store.keys(pattern)]) == sorted(expected), pattern
        assert sorted([k async for k, _ in store.items(pattern)]) == sorted(expected), pattern
        assert sorted([v async for v in store.values(pattern)]) == sorted(expected), pattern


async def test_iteration_reads_in_batches(store: kv.KVStore[Any]) -> None:
    count = 600  # more than one batch (500) everywhere
    for start in range(0, count, 50):  # the drivers' connection pools cap concurrency
        await asyncio.gather(
            *(store.set(f"k{index:05d}", index) for index in range(start, min(count, start + 50)))
        )
    pattern = kv.base.compile_pattern("*")
    sizes = [len(batch) async for batch in store._scan(pattern, True, 0.0)]
    assert len(sizes) >= 2 and max(sizes) <= 600 and sum(sizes) == count
    seen = {key: value async for key, value in store.items()}
    assert seen == {f"k{index:05d}": index for index in range(count)}
    assert await store.clear() == count


async def test_clear_counts_live_keys_and_spares_other_namespaces(
    make_kv: KVMaker, kv_backend: str
) -> None:
    if kv_backend.startswith(("memory", "sqlite-memory")):
        pytest.skip("one object per store: no other namespace shares its data")
    other_namespace = "other" + uuid.uuid4().hex[:8]
    # One after the other: a JSON file has one open store at a time.
    async with make_kv(namespace=other_namespace) as other:
        await other.set("k0", "kept")
    async with make_kv() as store:
        for index in range(5):
            await store.set(f"k{index}", index)
        await store.set("dying", 1, ttl=TTL)
        await asyncio.sleep(WAIT)
        assert await store.clear() == 5
        assert [key async for key in store.keys()] == []  # noqa: SIM118 (an async iterator)
        assert await store.clear() == 0
    async with make_kv(namespace=other_namespace) as other:
        assert await other.get("k0") == "kept"
        await other.clear()


async def test_reopened_store_finds_the_data(make_kv: KVMaker, kv_backend: str) -> None:
    if kv_backend == "sqlite-memory":
        pytest.skip("a :memory: database ends with its connection")
    async with make_kv() as store:
        await store.set("a", {"x": 1})
        await store.set("b", 2, ttl=60)
    async with make_kv() as store:
        assert await store.get("a") == {"x": 1}
        assert await store.increment("b") == 3
        if kv_backend in PERSISTENT:
            assert sorted([key async for key in store.keys()]) == ["a", "b"]  # noqa: SIM118 (an async iterator)
        await store.clear()


BAD_KEYS: list[Any] = [1, None, b"key", ("a",), "", "x" * 513, "a\x00b", "\ud800"]


async def test_bad_keys_are_refused(store: kv.KVStore[Any]) -> None:
    for key in BAD_KEYS:
        calls = [
            store.get(key),
            store.set(key, 1),
            store.delete(key),
            store.has(key),
            store.touch(key),
            store.compare_and_set(key, 1, expected=kv.MISSING),
            store.increment(key),
        ]
        for call in calls:
            with pytest.raises(kv.InvalidKeyError) as caught:
                await call
            assert isinstance(caught.value, (TypeError, ValueError, StorageError))
    assert [k async for k in store.keys()] == []  # noqa: SIM118 (an async iterator)


async def test_bad_ttls_are_refused(store: kv.KVStore[Any]) -> None:
    await store.set("k", "old")
    for ttl in [-1, 0, -0.5, math.nan, math.inf, "10", True, 10**12]:
        for call in (
            store.set("k", "new", ttl=ttl),
            store.set("fresh", "new", ttl=ttl),
            store.touch("k", ttl),
            store.compare_and_set("k", "new", expected="old", ttl=ttl),
            store.increment("c", ttl=ttl),
        ):
            with pytest.raises(kv.InvalidTTLError):
                await call
    assert await store.get("k") == "old"
    assert not await store.has("fresh") and not await store.has("c")


async def test_bad_patterns_are_refused(store: kv.KVStore[Any]) -> None:
    for pattern in ["[abc", "abc\\", 5, None, "\ud800*"]:
        with pytest.raises(kv.InvalidPatternError):
            async for _ in store.keys(pattern):
                pass


class Unknown:
    pass


UNKNOWN: list[tuple[Any, str]] = [
    (Unknown(), "Unknown"),
    ({"a": [object()]}, "object"),
    ({1, Unknown()}, "Unknown"),
]


async def test_unknown_types_are_refused_and_nothing_is_stored(store: kv.KVStore[Any]) -> None:
    await store.set("k", "old")
    for value, type_name in UNKNOWN:
        with pytest.raises(kv.KVSerializationError) as caught:
            await store.set("k", value)
        assert "'k'" in str(caught.value) and type_name in str(caught.value)
        assert caught.value.key == "k" and caught.value.type_name == type_name
        with pytest.raises(kv.KVSerializationError):
            await store.set("new", value)
        with pytest.raises(kv.KVSerializationError):
            await store.compare_and_set("k", value, expected="old")
    assert await store.get("k") == "old"
    assert not await store.has("new")


async def test_closed_store_refuses_calls(make_kv: KVMaker) -> None:
    store = make_kv()
    with pytest.raises(StorageClosedError):
        await store.health()
    with pytest.raises(StorageClosedError):
        await store.get("k")
    with pytest.raises(StorageClosedError):
        await store.set("k", 1)
    async with store:
        assert await store.health()
        await store.set("k", 1)
    for call in (store.get("k"), store.increment("k"), store.clear(), store.has("k")):
        with pytest.raises(StorageClosedError):
            await call
    with pytest.raises(StorageClosedError):
        await store.health()
    await store.close()  # twice is harmless


async def test_versioned_migrates_on_read_and_writes_back(store: kv.KVStore[Any]) -> None:
    await store.set("legacy", {"name": "Ann"}, ttl=60)
    v1 = kv.versioned(store, {1: lambda d: {**d, "age": None}})
    await v1.set("fresh", {"name": "Bob", "age": 3})
    assert await store.get("fresh") == {"v": 1, "data": {"name": "Bob", "age": 3}}
    v2 = kv.versioned(store, {1: lambda d: {**d, "age": None}, 2: lambda d: {"person": d}})
    assert await v2.get("legacy") == {"person": {"name": "Ann", "age": None}}
    assert await store.get("legacy") == {"v": 2, "data": {"person": {"name": "Ann", "age": None}}}
    assert await v2.get("fresh") == {"person": {"name": "Bob", "age": 3}}
    # Several readers at once converge on one stored value.
    await store.set("racy", {"name": "Cy"})
    results = await asyncio.gather(*(v2.get("racy") for _ in range(5)))
    assert all(result == {"person": {"name": "Cy", "age": None}} for result in results)
    assert await store.get("racy") == {"v": 2, "data": {"person": {"name": "Cy", "age": None}}}
    assert await v2.compare_and_set("racy", {"person": {}}, expected=results[0])
    assert await v2.get("racy") == {"person": {}}
    with pytest.raises(kv.VersionTooNewError):
        await v1.get("legacy")
    assert (await store.get("legacy"))["v"] == 2  # left untouched


async def _expiries(store: kv.KVStore[Any]) -> dict[str, float | None]:
    return {key: expires async for key, _, expires in store._records("*", values=True)}


async def test_copy_keeps_values_and_remaining_ttl(make_kv: KVMaker, tmp_path: Any) -> None:
    source = make_kv()
    async with source:
        for name, value in EVERY_TYPE.items():
            await source.set(name, value)
        await source.set("short", "v", ttl=30)
        await source.set("long", "v", ttl=100)
        before = await _expiries(source)
        target = kv.SQLiteKV(tmp_path / "copy.db")
        seen: list[tuple[int, int]] = []
        total = len(EVERY_TYPE) + 2
        assert await kv.copy(source, target, progress=lambda *a: seen.append(a)) == total
        assert seen[-1] == (total, total)
        with pytest.raises(kv.TargetNotEmptyError):
            await kv.copy(source, target)
        async with target:
            copied = await _expiries(target)
        assert copied.keys() == before.keys()
        for key, expires in before.items():
            if expires is None:
                assert copied[key] is None, key
            else:
                assert copied[key] is not None and abs(copied[key] - expires) < 1.0, key
        # And back into the backend under test, from a store holding different keys.
        await source.clear()
        await source.set("mine", 1)
        with pytest.raises(kv.TargetNotEmptyError):
            await kv.copy(target, source)
        assert await kv.copy(target, source, overwrite=True) == total
        for name, value in EVERY_TYPE.items():
            assert await source.get(name) == value
        assert await source.get("mine") == 1
        back = await _expiries(source)
        for key in ("short", "long"):
            assert abs(back[key] - before[key]) < 1.0, key  # type: ignore[operator]
        assert back["int"] is None
        await source.clear()


async def test_concurrent_writes_to_one_new_key(store: kv.KVStore[Any]) -> None:
    await asyncio.gather(*(store.set("k", index) for index in range(20)))
    assert await store.get("k") in range(20)
    results = await asyncio.gather(
        *(store.compare_and_set("once", index, expected=kv.MISSING) for index in range(20))
    )
    assert results.count(True) == 1
    assert await store.get("once") == results.index(True)
    assert sorted(await asyncio.gather(*(store.increment("n") for _ in range(20)))) == list(
        range(1, 21)
    )
