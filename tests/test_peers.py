"""The peer engine's memory: a session held whole answers exactly like its store.

After ``open()`` the engine reads every stored peer in the background and then answers
lookups from memory alone (a miss is an answer). Writes made while it reads must all
be seen, and what memory answers must equal what the store answers once flushed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import random
from pathlib import Path

import pytest

from pyrogram_storage import (
    FileStorage,
    MemoryStorage,
    Peer,
    PeerNotFound,
    PeerType,
    Storage,
    _peers,
)
from pyrogram_storage._index import (
    IdTable,
    PeerIndex,
    holder_key,
    name_key,
    names_fingerprint,
    owner_key,
    phone_key,
)


@pytest.fixture(params=["whole", "indexed"])
def memory(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """How the engine holds the session: a dict of every peer, or the compact index."""
    if request.param == "indexed":
        monkeypatch.setattr(_peers, "COMPLETE_LIMIT", -1)
    return str(request.param)


async def _loaded(storage: Storage) -> None:
    task = storage._peer_engine._loading
    if task is not None:
        await asyncio.wait([task])


def _peer(i: int, rnd: int = 0) -> Peer:
    names = (f"n{i}r{rnd}",) if i % 2 == 0 else ()
    phone = f"7900{i}" if i % 3 == 0 else None
    return Peer(i, i * 7 + rnd, PeerType.USER, names, phone)


async def _answers(storage: Storage, ids: range) -> list[object]:
    """Every answer a client could ask for these ids: by id, by username, by phone."""
    out: list[object] = []
    for i in ids:
        try:
            peer = await storage.peer_by_id(i)
            out.append((peer.id, peer.access_hash, peer.type, peer.usernames, peer.phone_number))
        except PeerNotFound:
            out.append(None)
        try:  # what the client glue asks: memory, pending writes, two columns of the store
            out.append(storage.cached_access(i) or await storage._access_by_id(i))
        except PeerNotFound:
            out.append(None)
        for key in (f"n{i}r0", f"n{i}r1", f"z{i}"):
            try:
                out.append((await storage.peer_by_username(key)).id)
            except PeerNotFound:
                out.append(None)
            try:  # what the client glue asks: from memory where it knows
                out.append(await storage._access_by_username(f"@{key.upper()}"))
            except PeerNotFound:
                out.append(None)
        for number in (f"7900{i}", f"+7 900 {i}"):
            try:
                out.append((await storage.peer_by_phone(number)).id)
            except PeerNotFound:
                out.append(None)
            try:
                out.append(await storage._access_by_phone(number))
            except PeerNotFound:
                out.append(None)
    return out


async def test_writes_made_while_memory_fills_are_all_seen(tmp_path: Path, memory: str) -> None:
    # Once wrong: writes made between open() and the start of the background read were
    # missing from the memory it built, and their peers were not found afterwards.
    async with FileStorage("s", tmp_path, username_ttl=None) as storage:
        await storage.upsert_peers([_peer(i) for i in range(1, 6001)])
    storage = FileStorage("s", tmp_path, username_ttl=None)
    await storage.open()
    try:
        # At once, and then between the reads of the background load.
        await storage.upsert_peers([_peer(i) for i in range(6001, 6101)])
        for k in range(30):
            await storage.upsert_peers([_peer(6101 + k, 0), _peer(2 * k + 2, 1)])
            await storage.set_usernames([(4 * k + 1, (f"z{4 * k + 1}",))])
            await storage.delete_peers([3 * k + 3000])
            await asyncio.sleep(0)
        await _loaded(storage)
        engine = storage._peer_engine
        assert engine.complete if memory == "whole" else engine.index is not None
        seen = await _answers(storage, range(1, 6140))
    finally:
        await storage.close()
    async with FileStorage("s", tmp_path, username_ttl=None, peer_cache_size=0) as stored:
        assert not stored._peer_engine.caching
        assert seen == await _answers(stored, range(1, 6140))


async def test_a_writer_that_never_pauses_still_gets_every_peer_in_memory(
    tmp_path: Path, memory: str
) -> None:
    # Once wrong: the load after open() stored everything before reading again the
    # peers written meanwhile, and gave up after a few rounds: an ingest that kept
    # writing left memory bounded (every small write then read its peers first).
    async with FileStorage("s", tmp_path, username_ttl=None) as storage:
        await storage.upsert_peers([_peer(i) for i in range(1, 4001)])
    storage = FileStorage("s", tmp_path, username_ttl=None, commit_interval=0.001)
    await storage.open()
    engine = storage._peer_engine
    try:
        k = 0
        while engine._loading is not None and not engine._loading.done() and k < 50_000:
            k += 1
            # As a client writes: keeping the usernames, which come in a call of their own.
            await storage.upsert_peers([Peer(4000 + k, k, PeerType.USER), _peer(k % 4000 + 1, 1)])
            if k % 3 == 0:
                await storage.set_usernames([(k % 4000 + 1, (f"z{k % 4000 + 1}",))])
            await asyncio.sleep(0)
        await _loaded(storage)
        assert engine.complete if memory == "whole" else engine.index is not None
        seen = await _answers(storage, range(1, 4000 + k + 2))
    finally:
        await storage.close()
    async with FileStorage("s", tmp_path, username_ttl=None, peer_cache_size=0) as stored:
        assert seen == await _answers(stored, range(1, 4000 + k + 2))


@pytest.mark.parametrize("seed", range(3))
async def test_moving_to_the_index_keeps_the_writes_made_meanwhile(
    tmp_path: Path, seed: int
) -> None:
    # Memory held whole builds the index off the loop from what it holds; what is
    # written meanwhile (new peers, kept or replaced usernames, deletes) is laid on it.
    rng = random.Random(seed)
    storage = FileStorage("s", tmp_path, username_ttl=None)
    await storage.open()
    engine = storage._peer_engine
    try:
        await storage.upsert_peers([_peer(i) for i in range(1, 300)])
        await _loaded(storage)
        assert engine.complete
        engine._to_index()
        moving = engine._loading
        assert moving is not None and engine.complete  # answers whole until it is built
        step = 0
        while not moving.done():
            step += 1
            i = rng.randrange(1, 400)
            op = rng.random()
            if op < 0.4:
                await storage.upsert_peers([_peer(i, rng.randrange(3))])
            elif op < 0.6:
                await storage.upsert_peers([Peer(i, rng.randrange(5), PeerType.BOT)])
            elif op < 0.8:
                names = rng.choice([(), (f"n{i}r1",), (f"z{i}", f"n{i}r0")])
                await storage.set_usernames([(i, names)])
            else:
                await storage.delete_peers([i])
            await asyncio.sleep(0)
        assert engine.index is not None and not engine.complete
        seen = await _answers(storage, range(1, 400))
    finally:
        await storage.close()
    async with FileStorage("s", tmp_path, username_ttl=None, peer_cache_size=0) as stored:
        assert seen == await _answers(stored, range(1, 400))


async def _opened_held(tmp_path: Path, memory: str) -> FileStorage:
    """A new FileStorage of 299 peers, open, its memory filled: held whole, or (for
    ``memory="indexed"``) moved over to the compact index from there."""
    storage = FileStorage("s", tmp_path, username_ttl=None)
    await storage.open()
    await storage.upsert_peers([_peer(i) for i in range(1, 300)])
    await _loaded(storage)
    if memory == "indexed":  # from an empty file: whole at first, then moved over
        await storage.flush()
        storage._peer_engine._to_index()
        await _loaded(storage)
        assert storage._peer_engine.index is not None
    return storage


@pytest.mark.parametrize("seed", range(4))
async def test_a_session_in_memory_answers_like_its_store(
    tmp_path: Path, seed: int, memory: str
) -> None:
    rng = random.Random(seed)
    storage = await _opened_held(tmp_path, memory)
    try:
        for step in range(400):
            i = rng.randrange(1, 400)
            if rng.random() < 0.3:  # the client glue's lookups keep answers at hand
                storage.cached_access(i)
                for key in (f"n{i}r0", f"n{i}r1"):
                    with contextlib.suppress(PeerNotFound):
                        await storage._access_by_username(key)
                with contextlib.suppress(PeerNotFound):
                    await storage._access_by_id(i)
            op = rng.random()
            if op < 0.25:
                await storage.upsert_peers([_peer(i, rng.randrange(3))])
            elif op < 0.4:  # an update's sender, as the client glue writes it: one step
                access_hash, phone = i * 7 + rng.randrange(3), f"7900{i}" if i % 3 == 0 else None
                if not storage._put_peer(i, access_hash, "user", phone):
                    await storage._upsert_tuples([(i, access_hash, "user", None, phone)])
            elif op < 0.6:
                await storage.upsert_peers([Peer(i, rng.randrange(5), PeerType.BOT)])  # keeps names
            elif op < 0.75:
                names = rng.choice([(), (f"n{i}r1",), (f"z{i}", f"n{i}r0")])
                if rng.random() < 0.5 or not storage._put_names(i, list(names)):
                    await storage.set_usernames([(i, names)])
            elif op < 0.85:
                await storage.delete_peers([i])
            elif op < 0.95:
                # Another peer takes a username or a phone, stamped later than any
                # other (ties of stamps are each backend's to break).
                j = rng.randrange(1, 400)
                await storage.upsert_peers(
                    [Peer(j, 1, PeerType.USER, (f"n{i}r0",), f"7900{i}", 2**31 - 1000 + step)]
                )
            else:
                await storage.flush()
        engine = storage._peer_engine
        assert engine.complete if memory == "whole" else engine.index is not None
        seen = await _answers(storage, range(1, 400))
    finally:
        await storage.close()
    async with FileStorage("s", tmp_path, username_ttl=None, peer_cache_size=0) as stored:
        assert seen == await _answers(stored, range(1, 400))


@pytest.mark.parametrize("seed", range(3))
async def test_the_client_glue_batches_answer_like_the_store(
    tmp_path: Path, seed: int, memory: str
) -> None:
    # A client's batches (update_peers, update_usernames) take one loop each; what is
    # left of a batch when one peer needs the slow path goes through it, in order.
    rng = random.Random(seed)
    storage = await _opened_held(tmp_path, memory)
    try:
        for _ in range(300):
            ids = [rng.randrange(1, 400) for _ in range(rng.randrange(1, 9))]
            op = rng.random()
            if op < 0.4:  # new, changed, unchanged and repeated peers, some with phones
                batch = [
                    (i, i * 7 + rng.randrange(2), rng.choice(["user", "bot"]), None)
                    if i % 3
                    else (i, i * 7, "user", rng.choice([f"7900{i}", None, ""]))
                    for i in ids
                ]
                done = storage._put_peers(batch)
                if done < len(batch):
                    rest = [(i, h, k, None, p or None) for i, h, k, p in batch[done:]]
                    await storage._upsert_tuples(rest)
            elif op < 0.75:
                pairs = [
                    (i, rng.choice([[], [f"n{i}r1"], [f"z{i}", f"n{i}r0"], [f"n{i}r0"]]))
                    for i in ids
                ]
                done = storage._put_names_of(pairs)
                if done < len(pairs):
                    await storage.set_usernames([(i, tuple(n)) for i, n in pairs[done:]])
            elif op < 0.85:
                await storage.delete_peers(ids[:1])
            elif op < 0.9:  # usernames pending, then a write keeping them: not one change
                i = ids[0]
                await storage.set_usernames([(i, (f"q{i}",))])
                if not storage._put_peers([(i, 5, "user", None)]):
                    await storage._upsert_tuples([(i, 5, "user", None, None)])
            else:
                await storage.flush()
        engine = storage._peer_engine
        assert engine.complete if memory == "whole" else engine.index is not None
        seen = await _answers(storage, range(1, 400))
    finally:
        await storage.close()
    async with FileStorage("s", tmp_path, username_ttl=None, peer_cache_size=0) as stored:
        assert seen == await _answers(stored, range(1, 400))


async def test_memory_grows_with_new_peers_and_stays_complete() -> None:
    async with MemoryStorage(username_ttl=None) as storage:
        await _loaded(storage)
        assert storage._peer_engine.complete
        await storage.upsert_peers([_peer(i) for i in range(1, 3001)])
        assert storage._peer_engine.complete and len(storage._peer_engine.cache) == 3000
        with pytest.raises(PeerNotFound):
            await storage.peer_by_id(3001)
        assert (await storage.peer_by_username("n2998r0")).id == 2998


async def test_memory_held_whole_moves_to_the_index_past_its_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Once wrong: the writes of the batch that crossed the limit were stored while the
    # index was being read in id order, after it had passed them: they were missing.
    monkeypatch.setattr(_peers, "_SMALL", 500)
    monkeypatch.setattr(_peers, "_INDEX_BATCH", 50)
    # Stored every few milliseconds: while the index is being read.
    storage = FileStorage("s", tmp_path, username_ttl=None, commit_interval=0.002)
    await storage.open()
    ids = [i if i % 3 else -1_000_000_000_000 - i for i in range(1, 3001)]  # channels first
    try:
        await _loaded(storage)
        assert storage._peer_engine.complete
        for start in range(0, len(ids), 100):
            await storage.upsert_peers([_peer(i) for i in ids[start : start + 100]])
            await asyncio.sleep(0)
        await _loaded(storage)
        assert not storage._peer_engine.complete  # past 500: moved on
        index = storage._peer_engine.index
        assert index is not None and set(index.ids()) == set(ids)
        await storage.upsert_peers([_peer(i, 1) for i in range(900, 1101)])
        seen = await _answers(storage, range(1, 1200))
    finally:
        await storage.close()
    async with FileStorage("s", tmp_path, username_ttl=None, peer_cache_size=0) as stored:
        assert seen == await _answers(stored, range(1, 1200))


async def test_the_index_is_built_while_a_writer_never_pauses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Once wrong: peers written while the index was read had to be read back, and a
    # writer that never paused touched them faster than that; after four rounds the
    # engine gave up and the session stayed bounded for good (an import of a million
    # peers held its 100k-entry cache instead, and asked the store for every write).
    monkeypatch.setattr(_peers, "_SMALL", 500)
    monkeypatch.setattr(_peers, "_INDEX_BATCH", 50)
    # A small cache: most peers written meanwhile are dropped from it, and read back.
    storage = FileStorage(
        "s", tmp_path, username_ttl=None, commit_interval=0.002, peer_cache_size=40
    )
    await storage.open()
    try:
        await _loaded(storage)
        engine = storage._peer_engine
        i = 0
        while engine.complete or engine.index is None:
            batch = [_peer(k) for k in range(i + 1, i + 41)]
            # Some keep their usernames (whichever they are stored with), some get new
            # ones or lose them, some go.
            batch += [Peer(k, k + 5, PeerType.BOT) for k in range(max(1, i - 200), i - 180)]
            await storage.upsert_peers(batch)
            await storage.set_usernames([(k, (f"z{k}",)) for k in range(max(1, i - 300), i - 290)])
            await storage.delete_peers(list(range(max(1, i - 400), i - 398)))
            await asyncio.sleep(0)
            i += 40
            assert i < 40_000, "the index was never built"
        # What the index took as unknown usernames is never taken as unchanged.
        await storage.set_usernames([(k, (f"n{k}r0",)) for k in range(1, i, 7)])
        seen = await _answers(storage, range(1, i + 1))
    finally:
        await storage.close()
    async with FileStorage("s", tmp_path, username_ttl=None, peer_cache_size=0) as stored:
        assert seen == await _answers(stored, range(1, i + 1))


async def test_another_program_cannot_write_the_file_while_it_is_open(tmp_path: Path) -> None:
    """Memory holds what is stored: an exclusive storage keeps SQLite's write lock, so a
    client writing the same file (Kurigram's own storage, say) is refused, never served
    stale afterwards."""
    import sqlite3

    async with FileStorage("s", tmp_path, username_ttl=None) as storage:
        await storage.upsert_peers([_peer(1)])
        await storage.flush()
        other = sqlite3.connect(tmp_path / "s.session", timeout=0.2)
        try:
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("UPDATE peers SET access_hash = 99 WHERE id = 1")
                other.commit()
            assert (await storage.peer_by_id(1)).access_hash == 7
        finally:
            other.close()


async def test_a_write_slipped_in_between_two_batches_is_seen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between a batch's commit and the next hold of the lock, another program may commit:
    the writer notices (data_version) and memory is filled anew from what is stored."""
    import sqlite3

    from pyrogram_storage.sqlite import engine

    storage = FileStorage("s", tmp_path, username_ttl=None)
    await storage.open()
    try:
        await storage.upsert_peers([_peer(1)])
        await _loaded(storage)
        assert (await storage.peer_by_id(1)).access_hash == 7

        checkpoint = engine._checkpoint

        def checkpoint_and_slip_in(db: sqlite3.Connection) -> None:
            checkpoint(db)
            with sqlite3.connect(tmp_path / "s.session", timeout=5) as other:
                other.execute("UPDATE peers SET access_hash = 99 WHERE id = 1")
            other.close()

        monkeypatch.setattr(engine, "_checkpoint", checkpoint_and_slip_in)
        await storage.save()  # commit, checkpoint (the other program writes), lock again
        monkeypatch.setattr(engine, "_checkpoint", checkpoint)
        assert (await storage.peer_by_id(1)).access_hash == 99
        await _loaded(storage)
        assert storage._peer_engine.complete
        assert (await storage.peer_by_id(1)).access_hash == 99
    finally:
        await storage.close()


async def test_columns_read_in_bulk_are_the_stored_peers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The id table read right after open (ids, access hashes, types as columns) holds
    exactly what the store holds, batch after batch, odd types and damage included."""
    import sqlite3

    peers = [_peer(i) for i in range(-2000, 3000, 7)]
    peers += [Peer(-(2**63), -(2**63), PeerType.BOT), Peer(2**63 - 1, 2**63 - 1, PeerType.CHANNEL)]
    async with FileStorage("s", tmp_path, peer_cache_size=0) as storage:
        await storage.upsert_peers(peers)
    with sqlite3.connect(tmp_path / "s.session") as db:
        db.execute("UPDATE peers SET type = 'odd,one', access_hash = NULL WHERE id = 2")
    db.close()
    expected = {peer.id: (peer.access_hash, peer.type.value) for peer in peers}
    expected[2] = (0, "odd,one")
    async with FileStorage("s", tmp_path, peer_cache_size=0) as storage:
        read: dict[int, tuple[int, str]] = {}
        after = None
        while True:
            columns = await storage._peer_columns(after, 100)
            assert columns is not None
            index = IdTable()
            index.extend(columns)
            assert list(columns.ids) == sorted(columns.ids)
            for peer_id in columns.ids:
                read[peer_id] = index.access(peer_id)  # type: ignore[assignment]
            if len(columns.ids) < 100:
                break
            after = columns.ids[-1]
        assert read == expected
    with sqlite3.connect(tmp_path / "s.session") as db:
        db.execute("UPDATE peers SET access_hash = 'x' WHERE id = 9")
    db.close()
    async with FileStorage("s", tmp_path, peer_cache_size=0) as storage:
        assert await storage._peer_columns(None, 10_000) is None  # damage: ask the store


async def _reopened_memory_held(tmp_path: Path) -> FileStorage:
    """A FileStorage of 2,000 peers opened again, its memory held at its first step (the
    background fill cancelled: the id table alone), every write since noted."""
    async with FileStorage("s", tmp_path, username_ttl=None) as storage:
        await storage.upsert_peers([_peer(i) for i in range(1, 2001)])
    storage = FileStorage("s", tmp_path, username_ttl=None)
    await storage.open()
    loading = storage._peer_engine._loading
    assert loading is not None
    loading.cancel()
    await asyncio.wait([loading])
    storage._peer_engine._touched = set()
    return storage


async def test_id_lookups_answer_from_the_early_table_and_never_stale(tmp_path: Path) -> None:
    """Right after open, id lookups answer from the id table read in bulk; a peer written
    or deleted since is never answered from it."""
    storage = await _reopened_memory_held(tmp_path)
    try:
        engine = storage._peer_engine
        await storage.upsert_peers([_peer(10, 5)])  # pending when the table is read
        await engine._read_early()
        await storage.upsert_peers([_peer(30, 5)])
        await storage.delete_peers([40])
        assert engine._early is not None and not engine.complete and engine.index is None
        assert storage.cached_access(50) == (50 * 7, "user")
        assert storage.cached_access(50) == (50 * 7, "user")  # kept at hand now
        await storage.upsert_peers([_peer(50, 3)])
        assert storage.cached_access(50) == (50 * 7 + 3, "user")
        await storage.delete_peers([50])
        assert storage.cached_access(50) is None
        assert engine.access(10) is None and engine.access(20) == (20 * 7, "user")
        assert engine.access(30) is None and engine.access(40) is None
        assert storage.cached_access(30) == (30 * 7 + 5, "user")
        assert storage.cached_access(40) is None
        assert (await storage.peer_by_id(10)).access_hash == 10 * 7 + 5
        with pytest.raises(PeerNotFound):
            await storage.peer_by_id(40)
    finally:
        await storage.close()
    assert engine._early is None


@pytest.mark.parametrize("seed", range(3))
def test_the_index_writes_in_one_search_as_in_several(seed: int) -> None:
    # write() and rename(), the batches' one-search writes, leave the index as get(),
    # put(), set_names() and add_names() would, and say what get() would have found.
    rng = random.Random(seed)
    fast, slow = PeerIndex(), PeerIndex()
    rows = sorted(rng.sample(range(-5000, 5000), 1500))
    for index in (fast, slow):
        index.load((i, i * 3, "user", 100, 0, 0) for i in rows)
    for step in range(6000):
        i = rng.randrange(-6000, 6000)
        if rng.random() < 0.6:
            access_hash = rng.choice([i * 3, i * 5])
            kind = rng.choice(["user", "bot", "weird"])
            phone = rng.choice([0, 0, 17900 + i % 7])
            stamp, since = rng.choice([100, 5000 + step]), rng.choice([50, 150])
            found = slow.get(i)
            done = fast.write(i, access_hash, kind, stamp, phone, since)
            if found is None:
                assert done == 0
            elif found[:2] == (access_hash, kind) and found[4] == phone and found[2] > since:
                assert done == found
                continue
            else:
                assert done == 1
            slow.put(i, access_hash, kind, stamp, None, phone)
        else:
            names = tuple(rng.sample([f"n{i % 50}", f"m{i % 9}", f"o{step}"], rng.randrange(3)))
            fingerprint = names_fingerprint(names)
            found = slow.get(i)
            renamed = fast.rename(i, fingerprint, names)
            if found is None:
                assert renamed is None
            elif found[3] == fingerprint:
                assert renamed is False
            else:
                assert renamed is True
                slow.set_names(i, fingerprint)
                slow.add_names(i, names)
    assert list(fast.ids()) == list(slow.ids())
    for i in range(-6000, 6000):
        assert fast.get(i) == slow.get(i)
    for name in [f"n{k}" for k in range(50)] + [f"m{k}" for k in range(9)]:
        assert fast.by_name(name_key(name)) == slow.by_name(name_key(name))


async def test_id_lookups_answer_from_the_part_of_the_index_built_and_never_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the index is built, the part built so far answers id lookups in place of the
    id table, whose chunks it covers are let go of; a peer pending when its batch was read,
    or written since, is never answered from it."""
    monkeypatch.setattr(_peers, "_INDEX_BATCH", 1024)
    storage = await _reopened_memory_held(tmp_path)
    try:
        engine = storage._peer_engine
        touched = engine._touched
        assert touched is not None
        await engine._read_early()
        assert engine._early is not None and len(engine._early) == 2000
        await storage.upsert_peers([_peer(10, 5)])  # pending when its batch is read
        gate = asyncio.Event()
        peer_rows = engine.primitives.peer_rows
        batches = 0

        async def held_rows(after: int | None, limit: int | None) -> object:
            nonlocal batches
            batches += 1
            if batches == 2:
                await gate.wait()
            return await peer_rows(after, limit)

        monkeypatch.setattr(
            engine, "primitives", dataclasses.replace(engine.primitives, peer_rows=held_rows)
        )
        build = asyncio.ensure_future(engine._build_index(2000))
        while engine._partial is None:
            await asyncio.sleep(0.001)
        assert engine._partial_last == 1024
        assert engine._early.bounds() == (1025, 2000)  # the chunks the part covers: gone
        assert engine.access(20) == (20 * 7, "user")  # from the part built
        assert engine.access(1500) == (1500 * 7, "user")  # from the id table
        assert engine.access(10) is None  # pending when read: asked elsewhere
        await storage.upsert_peers([_peer(30, 5), _peer(1600, 5)])
        await storage.delete_peers([40])
        assert engine.access(30) is None and engine.access(40) is None
        assert engine.access(1600) is None
        assert storage.cached_access(30) == (30 * 7 + 5, "user")
        assert (await storage.peer_by_id(10)).access_hash == 10 * 7 + 5
        with pytest.raises(PeerNotFound):
            await storage.peer_by_id(40)
        gate.set()
        index = await build
        assert index is not None and len(index) == 2000
        await engine._settle(index, touched)
        assert engine.index is index and engine._partial is None and engine._early is None
        assert engine.access(30) == (30 * 7 + 5, "user") and engine.access(40) is None
        assert engine.access(10) == (10 * 7 + 5, "user")
        assert engine.access(1999) == (1999 * 7, "user")
        assert (await storage.peer_by_username("n1998r0")).id == 1998
    finally:
        await storage.close()


async def test_usernames_filed_under_one_holder_key_are_told_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The index files a username's holders under 32 bits of its key: two names that
    share them still find their own peer, written now or built from the store."""
    monkeypatch.setattr(_peers, "COMPLETE_LIMIT", -1)
    seen: dict[int, str] = {}
    for i in itertools.count():
        name = f"c{i}"
        key = holder_key(name_key(name))
        if key in seen:
            first, second = seen[key], name
            break
        seen[key] = name
    assert name_key(first) != name_key(second)
    peers = [
        Peer(1, 11, PeerType.USER, (first,)),
        Peer(2, 22, PeerType.BOT, (second,)),
        Peer(3, 33, PeerType.USER, ("other", first + "x")),
    ]
    for reopened in (False, True):
        async with FileStorage("s", tmp_path, username_ttl=None) as storage:
            if not reopened:
                await storage.upsert_peers(peers)
            await _loaded(storage)
            engine = storage._peer_engine
            assert engine.index is not None
            assert engine.holder("names", first)[:3] == (1, 11, "user")  # type: ignore[index]
            assert engine.holder("names", second)[:3] == (2, 22, "bot")  # type: ignore[index]
            assert (await storage.peer_by_username(first)).id == 1
            assert (await storage.peer_by_username(second)).id == 2
            assert (await storage.peer_by_username(first + "x")).id == 3


async def test_phones_filed_under_one_owner_key_are_told_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The index files a phone's owners under 32 bits of its key: two numbers that share
    them still find their own peer, written now or built from the store."""
    monkeypatch.setattr(_peers, "COMPLETE_LIMIT", -1)
    seen: dict[int, str] = {}
    rng = random.Random(7)
    while True:  # consecutive numbers never share them: random ones, as birthdays do
        number = str(rng.randrange(10**10, 10**11))
        key = owner_key(phone_key(number))
        if key in seen:
            first, second = seen[key], number
            break
        seen[key] = number
    peers = [
        Peer(1, 11, PeerType.USER, (), first),
        Peer(2, 22, PeerType.USER, (), second),
    ]
    for reopened in (False, True):
        async with FileStorage("s", tmp_path, username_ttl=None) as storage:
            if not reopened:
                await storage.upsert_peers(peers)
            await _loaded(storage)
            assert storage._peer_engine.index is not None
            assert (await storage.peer_by_phone(first)).id == 1
            assert (await storage.peer_by_phone(second)).id == 2
            if reopened:
                await storage.delete_peers([1])
                with pytest.raises(PeerNotFound):
                    await storage.peer_by_phone(first)
                assert (await storage.peer_by_phone(second)).id == 2
