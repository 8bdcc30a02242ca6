"""The client dialects translated onto every backend (no client library needed).

The adapters are used unbound here (not derived from a client's base class), which
is all the translation needs; building InputPeer objects and the clients' own
behaviour are covered by ``test_clients.py`` in the clients' venvs.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from pyrogram_storage import (
    InvalidTypeError,
    InvalidValueError,
    Peer,
    PeerNotFound,
    PeerType,
    Storage,
    StorageClosedError,
    UpdateState,
)
from pyrogram_storage.clients import ADAPTERS, ClientStorage
from pyrogram_storage.types import dc_address


async def _adapter(storage: Storage, client: str) -> ClientStorage:
    adapter = ADAPTERS[client](storage)
    await adapter.open()
    return adapter


async def _names(storage: Storage, peer_id: int) -> tuple[str, ...] | None:
    return (await storage.peer_by_id(peer_id)).usernames


async def test_accessors_read_without_argument_and_store_none(storage: Storage) -> None:
    kuri = await _adapter(storage, "kurigram")
    assert await kuri.dc_id() == 2
    assert await kuri.date() == 0
    await kuri.user_id(777)
    await kuri.is_bot(True)
    assert (await kuri.user_id(), await kuri.is_bot()) == (777, True)
    assert await kuri.user_id(None) is None  # a write, as load_session() means it
    assert await kuri.user_id() is None
    assert (await storage.get_session()).user_id is None


async def test_server_address_follows_the_dc_until_set(storage: Storage) -> None:
    kuri = await _adapter(storage, "kurigram")
    await kuri.dc_id(4)
    assert (await kuri.server_address(), await kuri.port()) == dc_address(4)
    await kuri.server_address("10.0.0.1")
    await kuri.port(8443)
    await kuri.dc_id(5)
    assert (await kuri.server_address(), await kuri.port()) == ("10.0.0.1", 8443)


async def test_four_tuples_keep_usernames_from_update_usernames(storage: Storage) -> None:
    kuri = await _adapter(storage, "kurigram")
    await kuri.update_peers([(1, 11, "user", "15550001111")])
    await kuri.update_usernames([(1, ["alice", None, "Alice2"])])
    await kuri.update_peers([(1, 12, "user", None)])
    peer = await storage.peer_by_id(1)
    assert (peer.access_hash, peer.phone_number, peer.usernames) == (12, None, ("alice", "alice2"))
    await kuri.update_usernames([(1, ["carol"])])
    assert await _names(storage, 1) == ("carol",)


async def test_five_tuples_replace_usernames(storage: Storage) -> None:
    classic = await _adapter(storage, "pyrogram")
    await classic.update_peers([(2, 21, "bot", "helper_bot", None), (-5, 0, "group", None, None)])
    assert await _names(storage, 2) == ("helper_bot",)
    await classic.update_peers([(2, 21, "bot", None, None)])
    assert await _names(storage, 2) == ()
    tg = await _adapter(storage, "pyrotgfork")
    await tg.update_peers([(-1001, 31, "supergroup", ["chat", "chat_two"], None)])
    assert await _names(storage, -1001) == ("chat", "chat_two")
    await tg.update_peers([(-1001, 31, "supergroup", None, None)])
    assert await _names(storage, -1001) == ()
    assert (await storage.peer_by_id(-5)).type is PeerType.GROUP


async def test_unknown_peer_types_are_kept(storage: Storage) -> None:
    kuri = await _adapter(storage, "kurigram")
    await kuri.update_peers([(-1003, 3, "community", None), (-1004, 4, "saved_topics", None)])
    assert (await storage.peer_by_id(-1003)).type is PeerType.COMMUNITY
    assert (await storage.peer_by_id(-1004)).type.value == "saved_topics"


async def test_malformed_peer_tuples_are_refused(storage: Storage) -> None:
    kuri = await _adapter(storage, "kurigram")
    with pytest.raises(TypeError, match="update_peers"):
        await kuri.update_peers([(1, 2, "user")])
    with pytest.raises(PeerNotFound):
        await storage.peer_by_id(1)


async def test_bad_fields_in_an_updates_writes_raise_and_change_nothing(storage: Storage) -> None:
    # An update's sender, its usernames and its state take a one-step path when their
    # values are plain; anything else goes the general way, which refuses it whole.
    kuri = await _adapter(storage, "kurigram")
    await kuri.update_peers([(5, 50, "user", None)])
    await kuri.update_usernames([(5, ["five"])])
    await kuri.set_update_state(UpdateState(0, 10, 1, 300, 5))
    for peers in (
        [(5, 2**64, "user", None)],
        [(5, 51, 7, None)],
        [(5, 51, "user", None), (6, True, "user", None)],  # a batch: not even the first
    ):
        with pytest.raises((InvalidTypeError, InvalidValueError)):
            await kuri.update_peers(peers)
    for peers in ([("x", 51, "user", None)], [(5, 51, "user", None), (None, 1, "user", None)]):
        with pytest.raises(InvalidTypeError):
            await kuri.update_peers(peers)
    for usernames in ([(5, ["fine", 7])], [(5, ["fine"]), (5, [7])], [("x", ["fine"])]):
        with pytest.raises(InvalidTypeError):
            await kuri.update_usernames(usernames)
    for state in (UpdateState(0, 2**64, None, None, None), UpdateState(0, True, None, 1, 1)):
        with pytest.raises((InvalidTypeError, InvalidValueError)):
            await kuri.set_update_state(state)
    await storage.flush()
    peer = await storage.peer_by_id(5)
    assert (peer.access_hash, peer.usernames) == (50, ("five",))
    with pytest.raises(PeerNotFound):
        await storage.peer_by_id(6)
    assert await kuri.get_update_states() == [UpdateState(0, 10, 1, 300, 5)]


async def test_username_pairs_are_grouped_and_empty_lists_accepted(storage: Storage) -> None:
    fork = await _adapter(storage, "pyrofork")
    await fork.update_usernames([])
    await fork.update_peers([(-1002, 7, "channel", "news", None)])
    await fork.update_usernames([(-1002, "news"), (-1002, "news_two"), (-1002, "News3")])
    assert await _names(storage, -1002) == ("news", "news_two", "news3")
    assert (await storage.peer_by_username("NEWS_TWO")).id == -1002


async def test_electrogram_raw_channel_ids_are_filed_under_the_channel(storage: Storage) -> None:
    electro = await _adapter(storage, "electrogram")
    await electro.update_peers(
        [(-1000000001234, 9, "supergroup", "chat", None), (55, 5, "user", "u", None)]
    )
    await electro.update_usernames([(1234, "chat"), (1234, "chat_two"), (55, "u"), (55, "u2")])
    assert await _names(storage, -1000000001234) == ("chat", "chat_two")
    assert await _names(storage, 55) == ("u", "u2")
    fork = await _adapter(storage, "pyrofork")  # Pyrofork sends -100… ids: no remapping
    await fork.update_usernames([(1234, "other")])
    assert await _names(storage, -1000000001234) == ("chat", "chat_two")


async def test_id_lookups_coerce_numbers_and_miss_with_the_clients_messages(
    storage: Storage,
) -> None:
    kuri = await _adapter(storage, "kurigram")
    for key, message in [
        ("durov", "ID not found: durov"),
        ("123", "ID not found: 123"),
        (123, "ID not found: 123"),
        (None, "ID not found: None"),
    ]:
        with pytest.raises(KeyError) as caught:
            await kuri.get_peer_by_id(key)
        assert caught.value.args[0] == message
    with pytest.raises(PeerNotFound, match="Username not found: nobody"):
        await kuri.get_peer_by_username("nobody")
    with pytest.raises(PeerNotFound, match="Phone number not found: 15550000000"):
        await kuri.get_peer_by_phone_number("15550000000")


async def test_object_update_states_merge(storage: Storage) -> None:
    kuri = await _adapter(storage, "kurigram")
    await kuri.set_update_state(UpdateState(0, 10, 1, 300, 5))
    await kuri.set_update_state(
        [UpdateState(0, None, None, 400, 6), UpdateState(-1001, 7, None, 100, None)]
    )
    assert await kuri.get_update_states() == [
        UpdateState(-1001, 7, None, 100, None),
        UpdateState(0, 10, 1, 400, 6),
    ]
    assert [s.id for s in await kuri.get_update_states(0)] == [0]
    await kuri.delete_update_state(0)
    await kuri.delete_update_state([-1001, 99])
    assert await kuri.get_update_states() == []


async def test_tuple_update_state_replaces_and_deletes(storage: Storage) -> None:
    fork = await _adapter(storage, "pyrofork")
    assert await fork.update_state() == []
    await fork.update_state((0, 10, 1, 300, 5))
    await fork.update_state((-1001, 7, None, 100, None))
    await fork.update_state((0, 11, None, 400, None))  # a whole row: None overwrites
    assert await fork.update_state() == [(-1001, 7, None, 100, None), (0, 11, None, 400, None)]
    await fork.update_state(-1001)
    assert await fork.update_state() == [(0, 11, None, 400, None)]
    with pytest.raises(TypeError, match="update_state"):
        await fork.update_state((1, 2))
    for anything in ("durov", None, object(), "-1001", 0):
        await fork.remove_state(anything)
    assert await fork.update_state() == []


async def test_late_cache_writes_after_close_are_dropped(
    storage: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    fork = await _adapter(storage, "pyrofork")
    kuri = ADAPTERS["kurigram"](storage)
    await kuri.open()
    await fork.update_peers([(1, 1, "user", "alice", None)])
    await fork.close()
    await fork.close()
    with caplog.at_level(logging.DEBUG, logger="pyrogram_storage.clients"):
        await fork.update_peers([(2, 2, "user", "bob", None)])
        await fork.update_usernames([(1, "alice"), (1, "alice2")])
        await fork.update_state((0, 1, 1, 1, 1))
        await fork.update_state(0)
        await fork.remove_state(0)
        await kuri.set_update_state(UpdateState(0, 1, 1, 1, 1))
        await kuri.delete_update_state(0)
    assert sum("dropped" in record.getMessage() for record in caplog.records) == 6
    with pytest.raises(StorageClosedError):
        await fork.get_peer_by_id(1)
    with pytest.raises(StorageClosedError):
        await fork.update_state()
    with pytest.raises(StorageClosedError):
        await fork.dc_id()
    with pytest.raises(StorageClosedError):
        await fork.auth_key(b"\x01" * 256)
    await fork.open()  # restart: the same object again
    assert await _names(storage, 1) == ("alice",)
    with pytest.raises(PeerNotFound):
        await storage.peer_by_id(2)


async def test_writes_before_the_first_open_raise(make_storage: object) -> None:
    store = make_storage()  # type: ignore[operator]
    with pytest.raises(StorageClosedError):
        await ADAPTERS["pyrofork"](store).update_peers([(1, 1, "user", None, None)])


async def test_expired_usernames_miss_with_the_clients_message(make_storage: object) -> None:
    store = make_storage(username_ttl=60)  # type: ignore[operator]
    kuri = await _adapter(store, "kurigram")
    try:
        await kuri.update_peers([(1, 1, "user", None)])
        await kuri.update_usernames([(1, ["alice"])])
        await store.peer_by_username("alice")  # type: ignore[attr-defined]  # fresh
        stale = Peer(1, 1, PeerType.USER, None, None, int(time.time()) - 61)
        await store.upsert_peers([stale])  # type: ignore[attr-defined]
        with pytest.raises(KeyError) as caught:
            await kuri.get_peer_by_username("alice")
        assert caught.value.args[0] == "Username expired: alice"
    finally:
        await kuri.close()


async def test_handler_writes_racing_close_never_raise(storage: Storage) -> None:
    fork = await _adapter(storage, "pyrofork")

    async def handler(n: int) -> None:
        await fork.update_peers([(n, n, "user", f"user{n}", None)])
        await fork.update_usernames([(n, f"user{n}"), (n, f"alias{n}")])
        await fork.update_state((0, n, None, n, None))

    tasks = [asyncio.ensure_future(handler(n)) for n in range(1, 51)]
    await asyncio.sleep(0)
    await fork.close()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert [r for r in results if r is not None] == []
    await fork.open()
    for n in range(1, 51):  # each write either landed whole or was dropped
        try:
            peer = await storage.peer_by_id(n)
        except PeerNotFound:
            continue
        assert peer.usernames in ((f"user{n}",), (f"user{n}", f"alias{n}"))
