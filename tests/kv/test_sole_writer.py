"""The sole writer's memory when calls overlap: replies in another order than the
store applied them, a read racing a write, a clear racing a write, a failed write.

The shipped contract (``KVContract``'s sole-writer tests) runs over every backend; on
real servers the overlaps below happen only by chance, so here they are forced: a
store (the documented ``DictKV``) whose writes wait at gates the test opens, in the
order the test chooses.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pyrogram_storage import kv

from ..readme_backend import dict_kv


def gated_kv(**options: Any) -> Any:
    """A ``DictKV`` whose ``_set`` of a value may wait before it applies and before it
    returns, at events the test sets; ``_get`` may wait after reading. Values are ints,
    stored as themselves, so the gates are keyed by them."""

    class GatedKV(dict_kv()):  # type: ignore[misc]
        def __init__(self, **options: Any) -> None:
            super().__init__(**options)
            self.before: dict[Any, asyncio.Event] = {}
            self.after: dict[Any, asyncio.Event] = {}
            self.read_gate: asyncio.Event | None = None
            self.fail: set[Any] = set()

        async def _set(self, key: str, raw: Any, expires: Any) -> None:
            if raw in self.before:
                await self.before[raw].wait()
            await super()._set(key, raw, expires)
            if raw in self.after:
                await self.after[raw].wait()
            if raw in self.fail:
                raise ConnectionError("the reply was lost")

        async def _get(self, key: str) -> Any:
            record = await super()._get(key)
            if self.read_gate is not None:
                await self.read_gate.wait()
            return record

        def behind_its_back(self, key: str, value: Any) -> None:
            """Change the stored value as another writer would."""
            self.data[key] = [self._encode(key, value), None]

    return GatedKV(**options)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_write_returning_last_is_not_taken_for_the_last_applied() -> None:
    """Two writes of one key at once: the store applies the second, then the first,
    whose reply comes first; the second's reply is not what the store holds."""
    async with gated_kv(sole_writer=True) as store:
        first_applies = store.before.setdefault(1, asyncio.Event())
        second_returns = store.after.setdefault(2, asyncio.Event())
        first = asyncio.create_task(store.set("k", 1))
        second = asyncio.create_task(store.set("k", 2))
        await settle()  # second applied, waits to return; first waits to apply
        first_applies.set()
        await first  # applied last, returned first
        second_returns.set()
        await second
        assert await store.get("k") == 1


async def test_a_write_returning_last_while_applied_first_is_not_remembered() -> None:
    async with gated_kv(sole_writer=True) as store:
        first_returns = store.after.setdefault(1, asyncio.Event())
        second_applies = store.before.setdefault(2, asyncio.Event())
        first = asyncio.create_task(store.set("k", 1))
        second = asyncio.create_task(store.set("k", 2))
        await settle()  # first applied, waits to return; second waits to apply
        second_applies.set()
        await second  # applied last, returned while first is still out
        first_returns.set()
        await first
        assert await store.get("k") == 2


async def test_a_read_racing_a_write_is_not_remembered() -> None:
    async with gated_kv(sole_writer=True) as store:
        await store.set("k", 6)
        store.sole_writer = True  # memory starts empty
        gate = store.read_gate = asyncio.Event()
        reading = asyncio.create_task(store.get("k"))
        await settle()  # the read has its answer (6) and waits to return it
        store.read_gate = None
        await store.set("k", 7)
        gate.set()
        assert await reading == 6  # it began before the write
        assert await store.get("k") == 7  # and did not replace what the write left


async def test_a_write_during_clear_is_not_remembered() -> None:
    async with gated_kv(sole_writer=True) as store:
        returns = store.after.setdefault(5, asyncio.Event())
        writing = asyncio.create_task(store.set("k", 5))
        await settle()  # applied, not yet returned
        await store.clear()  # removes it
        returns.set()
        await writing
        store.behind_its_back("k", 3)
        assert await store.get("k") == 3


async def test_a_failed_write_is_forgotten() -> None:
    async with gated_kv(sole_writer=True) as store:
        await store.set("k", 8)
        store.fail.add(4)
        with pytest.raises(kv.BackendError):
            await store.set("k", 4)
        store.behind_its_back("k", 3)
        assert await store.get("k") == 3


async def test_without_sole_writer_nothing_is_remembered() -> None:
    async with gated_kv() as store:
        await store.set("k", 9)
        store.behind_its_back("k", 3)
        assert await store.get("k") == 3


async def test_a_merge_from_memory_falls_back_when_the_stored_value_changed() -> None:
    """A sole writer merges what it remembers and stores it with a compare-and-set; a
    value changed behind its back fails that, and the merge is made on the stored one."""
    async with gated_kv(sole_writer=True) as store:
        await store.set("k", {"a": 1})
        assert await store.merge("k", {"b": 2}) == {"a": 1, "b": 2}
        store.behind_its_back("k", {"other": 0})
        assert await store.merge("k", {"c": 3}) == {"other": 0, "c": 3}
        assert await store.get("k") == {"other": 0, "c": 3}
        store.behind_its_back("k", {"again": 0})
        assert await store.get("k") == {"other": 0, "c": 3}  # what the merge stored, remembered


async def test_a_read_racing_a_queued_write_is_not_remembered() -> None:
    """commit_interval: a read that began before a queued write does not leave its
    (older) answer in memory, before or after the queue is stored."""
    async with gated_kv(sole_writer=True, commit_interval=60) as store:
        store.behind_its_back("k", 6)
        gate = store.read_gate = asyncio.Event()
        reading = asyncio.create_task(store.get("k"))
        await settle()  # the read has its answer (6) and waits to return it
        store.read_gate = None
        await store.set("k", 7)
        gate.set()
        assert await reading == 6
        assert await store.get("k") == 7
        await store.flush()
        assert await store.get("k") == 7 and store.data["k"][0] == 7


async def test_a_failed_batch_stays_pending_and_is_stored_first() -> None:
    """A batch the backend refuses stays in flight and goes before newer writes."""
    async with gated_kv(sole_writer=True, commit_interval=60) as store:
        store.fail.add(4)
        await store.set("k", 4)
        await store.set("j", 1)
        with pytest.raises(kv.BackendError, match="stay pending"):
            await store.flush()
        assert await store.get("k") == 4 and await store.get("j") == 1
        with pytest.raises(kv.BackendError, match="earlier writes could not be stored"):
            await store.delete("j")
        store.fail.clear()
        await store.flush()
        await store.set("j", 2)
        await store.flush()
        assert (store.data["k"][0], store.data["j"][0]) == (4, 2)
