"""SQLite-backend specifics beyond the contract."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pyrogram_storage import _peers


@pytest.mark.parametrize(
    "kind",
    [
        "FileStorage('forgotten', WORKDIR)",
        "FileStorage('forgotten', WORKDIR, commit_interval=0)",
        "FileStorage('forgotten', WORKDIR, commit_interval=3600)",
        "MemoryStorage()",
    ],
)
def test_an_unclosed_storage_does_not_hang_interpreter_exit(kind: str, tmp_path: Path) -> None:
    """A storage never closed: the process exits, and asyncio.run() ending stores its writes."""
    code = (
        "import asyncio\n"
        "from pyrogram_storage import FileStorage, MemoryStorage, Peer, PeerType\n"
        f"WORKDIR = {str(tmp_path)!r}\n"
        "async def main():\n"
        f"    storage = {kind}\n"
        "    await storage.open()\n"
        "    await storage.upsert_peers([Peer(1, 2, PeerType.USER, ('kept',))])\n"
        "asyncio.run(main())\n"
    )
    result = subprocess.run([sys.executable, "-c", code], timeout=60, capture_output=True)
    assert result.returncode == 0, result.stderr.decode()
    if kind.startswith("FileStorage"):
        check = (
            "import asyncio\n"
            "from pyrogram_storage import FileStorage\n"
            "async def main():\n"
            f"    async with FileStorage('forgotten', {str(tmp_path)!r}) as storage:\n"
            "        assert (await storage.peer_by_username('kept')).id == 1\n"
            "asyncio.run(main())\n"
        )
        subprocess.run([sys.executable, "-c", check], timeout=60, check=True)


class _CountingReads:
    """Counts the point reads of peers a FileStorage makes (a real file underneath)."""

    def __init__(self) -> None:
        self.reads = 0


async def test_a_username_lookup_does_not_read_every_peer_written_meanwhile(
    tmp_path: Path,
) -> None:
    # Writes that keep usernames (the clients' update_peers) pending, then lookups by
    # username: only stored holders of the name can have been made its newest holder,
    # so the others are not read (a 1M-peer bot read hundreds of peers per lookup).
    from pyrogram_storage import FileStorage, Peer, PeerNotFound, PeerType

    counter = _CountingReads()

    class Counting(FileStorage):
        async def _find_peer(self, peer_id: int, usernames: bool) -> Peer | None:
            counter.reads += 1
            return await super()._find_peer(peer_id, usernames)

    stamp = 1_700_000_000
    async with Counting("reads", tmp_path, commit_interval=3600, username_ttl=None) as storage:
        await storage.upsert_peers(
            [Peer(i, i, PeerType.USER, (f"user{i}",), None, stamp) for i in range(1, 1001)]
        )
        await storage.flush()
        await storage.upsert_peers(
            [Peer(i, i + 1, PeerType.USER, None, None, stamp + 60) for i in range(1, 501)]
        )
        counter.reads = 0
        for i in (5, 250, 500):
            peer = await storage.peer_by_username(f"user{i}")
            assert peer.id == i and peer.access_hash == i + 1  # the pending write shows
        assert counter.reads <= 3 * 2, counter.reads
        with pytest.raises(PeerNotFound):
            await storage.peer_by_username("nobody")


_WARM_UPS = """
import asyncio, json, sys
from pyrogram_storage import FileStorage, Peer, PeerType, _peers

async def main(workdir):
    for k in range(3):
        async with FileStorage(f"s{k}", workdir) as storage:
            await storage.upsert_peers([Peer(i, i, PeerType.USER) for i in range(1, 3001)])
    # Room for one session whole (3000 peers, and 1000 to grow) and one indexed.
    _peers._Budget.left = 4000 * (_peers._WHOLE_BYTES + _peers._INDEXED_BYTES)
    storages = [FileStorage(f"s{k}", workdir) for k in range(3)]
    for storage in storages:
        await storage.open()
    await asyncio.wait([t for s in storages if (t := s._peer_engine._loading) is not None])
    complete = [s._peer_engine.complete for s in storages]
    indexed = [s._peer_engine.index is not None for s in storages]
    sizes = sorted(len(s._peer_engine.cache) for s in storages)
    left = [_peers._Budget.left]
    answers = [(await s.peer_by_id(2999)).access_hash for s in storages]
    for storage in storages:
        await storage.close()
    after = [_peers._Budget.left]
    print(json.dumps([complete, indexed, sizes, left, after, answers]))

asyncio.run(main(sys.argv[1]))
"""


def test_memories_and_indexes_share_budgets_per_process(tmp_path: Path) -> None:
    # A host of many sessions does not hold every session's peers in memory: the first
    # to open hold theirs whole, within one budget (each takes its share, with room to
    # grow, when it starts loading), given back on close; the others stay bounded.
    result = subprocess.run(
        [sys.executable, "-c", _WARM_UPS, str(tmp_path)], timeout=120, capture_output=True
    )
    assert result.returncode == 0, result.stderr.decode()
    complete, indexed, sizes, left, after_close, answers = json.loads(result.stdout)
    assert complete.count(True) == 1, complete  # 3000 + room to grow: one fits whole
    # What is left holds one more session in the compact index (a tenth of the memory
    # a peer takes held whole); the third stays bounded (its misses ask the file) and
    # reads nothing ahead.
    assert indexed.count(True) == 1 and not any(
        c and i for c, i in zip(complete, indexed, strict=True)
    )
    assert sizes[:2] == [0, 0] and sizes[2] == 3000
    assert left == [0]
    budget = 4000 * (_peers._WHOLE_BYTES + _peers._INDEXED_BYTES)
    assert after_close == [budget]  # given back on close
    assert answers == [2999, 2999, 2999]  # every mode answers alike


async def test_a_cache_hit_gives_its_access_hash_and_type_without_a_peer(
    tmp_path: Path,
) -> None:
    # What the client glue builds an InputPeer from on a hit; judged by the id for a
    # type a future client invents.
    from pyrogram_storage import FileStorage, Peer, PeerType
    from pyrogram_storage.types import InputKind, input_kind_of

    async with FileStorage("hits", tmp_path) as storage:
        await storage.upsert_peers(
            [Peer(5, 50, PeerType.BOT), Peer(-1001234567890, 7, PeerType.SUPERGROUP)]
        )
        assert storage.cached_access(5) == (50, "bot")
        assert storage.cached_access(-1001234567890) == (7, "supergroup")
        assert storage.cached_access(6) is None
        assert storage.cached_access("5") is None  # type: ignore[arg-type]
    assert storage.cached_access(5) is None  # closed: the cache is gone
    assert input_kind_of(5, "bot") is InputKind.USER
    assert input_kind_of(-1001234567890, "supergroup") is InputKind.CHANNEL
    assert input_kind_of(-1001234567890, "a-future-type") is InputKind.CHANNEL
    assert input_kind_of(-42, "a-future-type") is InputKind.CHAT
    assert input_kind_of(42, "a-future-type") is InputKind.USER


_IDLE_SESSIONS = """
import asyncio, ctypes, ctypes.util, json, sys
from pyrogram_storage import FileStorage, Peer, PeerType, _peers

used = ctypes.CDLL(ctypes.util.find_library("sqlite3")).sqlite3_memory_used
used.restype = ctypes.c_int64

async def main(folder):
    _peers._Budget.left = 0  # every session bounded: what is left is SQLite's own
    for k in range(20):  # a file with a few peers each
        async with FileStorage(f"s{k}", folder) as storage:
            peers = [Peer(j, j, PeerType.USER, (f"n{k}x{j}",)) for j in range(1, 50)]
            await storage.upsert_peers(peers)
    before = used()
    storages = [FileStorage(f"s{k}", folder) for k in range(20)]
    for storage in storages:
        await storage.open()
    opened = (used() - before) / 20
    for storage in storages:
        await storage.upsert_peers([Peer(100, 1, PeerType.BOT, None)])
        await storage.save()
    saved = (used() - before) / 20
    sizes = [storage._db.execute("PRAGMA cache_size").fetchone()[0] for storage in storages]
    found = [(await storage.peer_by_id(100)).access_hash for storage in storages]
    for storage in storages:
        await storage.close()
    print(json.dumps([opened, saved, sizes, found]))

asyncio.run(main(sys.argv[1]))
"""


def test_an_idle_session_holds_no_page_cache_in_advance(tmp_path: Path) -> None:
    # The writer holds SQLite's write lock while a FileStorage is open, which keeps one
    # page of its cache in use; a cache that starts empty takes 20 pages at once (~84
    # KB) for its first page, which would stay for as long as the storage is open: a
    # host of a thousand sessions held 84 MB for nothing. The lock is taken with a tiny
    # cache instead (pages then come one by one), and the cache size is restored.
    result = subprocess.run(
        [sys.executable, "-c", _IDLE_SESSIONS, str(tmp_path)], timeout=120, capture_output=True
    )
    assert result.returncode == 0, result.stderr.decode()
    opened, saved, sizes, found = json.loads(result.stdout)
    assert opened < 140 * 1024, opened  # two connections: ~96 KB (~173 KB before)
    assert saved < 140 * 1024, saved
    assert sizes == [-2000] * 20  # SQLite's default, as before
    assert found == [1] * 20
