"""The write journal: any sequence of writes, coalesced and stored in batches (some failing
and retried), leaves exactly what applying the writes one by one leaves.

A property test with Hypothesis over the README's own backend and MemoryStorage: the
storage under test batches writes (``commit_interval`` large, flushes at random points),
the model applies each write at once (``commit_interval=0``); after every step both
answer every lookup the same way. The storage under test also fails some batches
(a backend away for a moment): they wait, ahead of newer writes, for the next flush.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyrogram_storage import (
    BackendError,
    MemoryStorage,
    Peer,
    PeerNotFound,
    PeerType,
    Storage,
    UpdateState,
)
from pyrogram_storage import _pending as journal

from .readme_backend import dict_storage

IDS = st.integers(min_value=1, max_value=6)
NAMES = st.lists(st.sampled_from(["ann", "bob", "cid", "dee"]), max_size=2).map(tuple)
PHONES = st.sampled_from([None, "1001", "1002"])
STATE = st.one_of(st.none(), st.integers(min_value=0, max_value=9))

OPS = st.one_of(
    st.tuples(st.just("full"), IDS, st.integers(0, 3), NAMES, PHONES),
    st.tuples(st.just("partial"), IDS, st.integers(0, 3), PHONES),
    st.tuples(st.just("names"), IDS, NAMES),
    st.tuples(st.just("delete"), IDS),
    st.tuples(st.just("merge"), st.integers(0, 2), STATE, STATE),
    st.tuples(st.just("replace"), st.integers(0, 2), STATE, STATE),
    st.tuples(st.just("drop_state"), st.integers(0, 2)),
    st.tuples(st.just("flush")),
    st.tuples(st.just("fail")),  # the storage under test fails its next batch
)


async def _apply(storage: Storage, op: tuple[Any, ...], stamp: int) -> None:
    kind = op[0]
    if kind == "full":
        await storage.upsert_peers([Peer(op[1], op[2], PeerType.USER, op[3], op[4], stamp)])
    elif kind == "partial":
        await storage.upsert_peers([Peer(op[1], op[2], PeerType.BOT, None, op[3], stamp)])
    elif kind == "names":
        await storage.set_usernames([(op[1], op[2])])
    elif kind == "delete":
        await storage.delete_peers([op[1]])
    elif kind in ("merge", "replace"):
        state = UpdateState(op[1], op[2], op[3], None, None)
        await storage.set_update_states([state], merge=kind == "merge")
    elif kind == "drop_state":
        await storage.delete_update_states([op[1]])
    elif kind == "flush":
        try:
            await storage.flush()
        except BackendError:
            assert getattr(storage, "failed", 0) > 0  # only where a failure was armed
    elif kind == "fail" and hasattr(storage, "fail_next"):
        storage.fail_next = True


async def _view(storage: Storage) -> tuple[Any, ...]:
    peers = {}
    for peer_id in range(1, 7):
        try:
            peer = await storage.peer_by_id(peer_id)
        except PeerNotFound:
            continue
        peers[peer_id] = (peer.access_hash, peer.type, peer.usernames, peer.phone_number)
    owners = {}
    for name in ("ann", "bob", "cid", "dee"):
        try:
            owners[name] = (await storage.peer_by_username(name)).id
        except PeerNotFound:
            owners[name] = None
    phones = {}
    for phone in ("1001", "1002"):
        try:
            phones[phone] = (await storage.peer_by_phone(phone)).id
        except PeerNotFound:
            phones[phone] = None
    states = [(s.id, s.pts, s.qts) for s in await storage.get_update_states()]
    return peers, owners, phones, sorted(states)


def _failing(cls: type[Storage]) -> type[Storage]:
    """``cls`` with a switch that makes its next batch fail (a server gone for a moment)."""

    class Failing(cls):  # type: ignore[valid-type,misc]
        fail_next = False
        failed = 0

        async def _apply(self, changes: Any) -> None:
            if self.fail_next:
                self.fail_next = False
                self.failed += 1
                raise ConnectionError("the backend is away")
            await super()._apply(changes)

    return Failing


def _check(ops: list[tuple[Any, ...]], make: Any, make_failing: Any) -> None:
    async def run() -> None:
        batched = make_failing(commit_interval=3600, username_ttl=None)
        model = make(commit_interval=0, username_ttl=None)
        async with batched, model:
            for step, op in enumerate(ops):
                stamp = 1_700_000_000 + step  # the newest write holds a shared username
                try:
                    await _apply(batched, op, stamp)
                except BackendError:
                    # A write that had to store what was pending first, while the
                    # backend is away: refused, so the model does not take it either.
                    assert batched.failed
                    continue
                await _apply(model, op, stamp)
                try:
                    seen = await _view(batched)
                except BackendError:
                    # A lookup that had to store what was pending first, while the
                    # backend is away: an error, never a wrong answer.
                    assert batched.fail_next or batched.failed
                    continue
                assert seen == await _view(model), (step, op)
            batched.fail_next = False
            await batched.flush()
            assert await _view(batched) == await _view(model)

    asyncio.run(run())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OPS, max_size=30))
def test_batched_writes_read_like_writes_applied_one_by_one_readme_backend(
    ops: list[tuple[Any, ...]],
) -> None:
    cls = dict_storage()
    failing = _failing(cls)
    _check(
        ops,
        lambda **options: cls("journal", **options),
        lambda **options: failing("journal", **options),
    )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OPS, max_size=30))
def test_batched_writes_read_like_writes_applied_one_by_one_sqlite(
    ops: list[tuple[Any, ...]],
) -> None:
    failing = _failing(MemoryStorage)
    _check(
        ops,
        lambda **options: MemoryStorage("journal", **options),
        lambda **options: failing("journal", **options),
    )


_CHANGES = st.tuples(
    st.integers(1, 6),  # peer id
    st.sampled_from([journal.FULL, journal.PARTIAL, journal.NAMES, journal.DELETED]),
    st.one_of(st.none(), st.lists(st.sampled_from("abcd"), max_size=3).map(tuple)),
    st.sampled_from([None, "1", "2"]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_CHANGES, max_size=30))
def test_a_layer_keeps_its_index_as_a_rebuild_makes_it(changes: list[tuple[Any, ...]]) -> None:
    # The index of pending usernames and phones is built when a lookup first needs it,
    # then kept up to date write by write: the same lists, in the same order, as a
    # rebuild from the pending writes.
    layer = journal._Layer()  # an empty layer's index is built
    for step, (peer_id, kind, names, phone) in enumerate(changes):
        layer.add_peer(peer_id, (kind, peer_id, "user", names, phone, step))
        rebuilt = journal._Layer()
        rebuilt.peers = dict(layer.peers)
        rebuilt._indexed = False
        for which in ("names", "phones"):
            assert layer.index(which) == rebuilt.index(which)
