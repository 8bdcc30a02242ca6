"""The storage contract as a test suite you run against your own backend.

Subclass :class:`StorageContract` and give it a ``make_storage`` fixture returning a
callable that builds a new, unopened storage of yours from keyword options (pass them
on to the constructor); every call within one test must reach the same stored session::

    import pytest
    from pyrogram_storage.testing import StorageContract

    class TestMyStorage(StorageContract):
        @pytest.fixture
        def make_storage(self, tmp_path):
            return lambda **options: MyStorage("session", tmp_path, **options)

It needs ``pytest`` and ``pytest-asyncio`` (``pip install pyrogram-storage[testing]``).
This project runs the very same class over every backend it ships.

Every loop the suite drives is bounded: a backend whose peer listing never ends (a
``_read_peers`` that ignores ``after``) fails with "no progress" instead of hanging.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import pytest
import pytest_asyncio

from . import (
    InvalidTypeError,
    InvalidValueError,
    MemoryStorage,
    Peer,
    PeerNotFound,
    PeerType,
    ReadOnlyError,
    SessionData,
    SessionStringError,
    Storage,
    StorageClosedError,
    StorageError,
    UpdateState,
    copy_session,
)
from .session_string import decode_session_string

__all__ = ["Contract", "StorageContract", "StorageMaker", "bounded_progress", "collect"]

StorageMaker = Callable[..., Storage]
"""Builds a new, unopened storage from keyword options, always on the same stored session."""

T = TypeVar("T")


async def collect(items: AsyncIterator[T], most: int, what: str = "iteration") -> list[T]:
    """Everything ``items`` yields, failing with "no progress" past ``most`` items.

    A backend whose listing never ends (a cursor that restarts, a batch that repeats)
    is a failed test, not a hang that fills the memory.
    """
    found: list[T] = []
    try:
        async for item in items:
            found.append(item)
            if len(found) > most:
                raise AssertionError(
                    f"no progress: {what} yielded more than {most} items "
                    f"(it repeats itself: {found[-2:]!r}...)"
                )
    finally:
        aclose = getattr(items, "aclose", None)
        if aclose is not None:
            await aclose()
    return found


def bounded_progress(most: int, what: str) -> Callable[[int, int], None]:
    """A ``progress`` callback that fails with "no progress" once ``done`` passes ``most``."""

    def progress(done: int, total: int) -> None:
        if done > most:
            raise AssertionError(f"no progress: {what} went past {most} peers ({done})")

    return progress


KEY = bytes(range(256))
CHANNEL = -1001234567890


def user(peer_id: int, *names: str, phone: str | None = None, stamp: int | None = None) -> Peer:
    return Peer(peer_id, peer_id * 7, PeerType.USER, tuple(names), phone, stamp)


async def logged_in(storage: Storage) -> None:
    await storage.update_session(
        dc_id=4, api_id=12345, test_mode=False, auth_key=KEY, user_id=2**40 + 3, is_bot=False
    )


@pytest.mark.asyncio
class Contract:
    """What the shipped suites (this one and ``kv.testing.KVContract``) share: every test
    is a coroutine run by pytest-asyncio, every loop is bounded by :func:`collect`."""

    @staticmethod
    async def refused_while_closed(
        store: Any, calls: dict[str, Callable[[], Any]], *methods: str
    ) -> None:
        """Before ``open()`` and after ``close()``, each call (and each of ``store``'s
        ``methods``, called without arguments) raises :class:`StorageClosedError`; a
        listing does at its first item."""
        every = {**calls, **{name: getattr(store, name) for name in methods}}
        for phase in ("never opened", "closed"):
            for name, call in every.items():
                with pytest.raises(StorageClosedError):
                    result = call()
                    await (collect(result, 0, name) if hasattr(result, "__anext__") else result)
                    pytest.fail(f"{name} ({phase}) did not raise")
            await store.open()
            await store.close()

    @staticmethod
    def undefined(fixture: str, example: str) -> Any:
        """What the suite's maker fixture does until a subclass defines it: say how to."""
        raise NotImplementedError(
            f"define a {fixture} fixture returning lambda **options: {example}(..., **options)"
        )


class StorageContract(Contract):
    """The whole storage contract; subclass it with a ``make_storage`` fixture."""

    @pytest.fixture
    def make_storage(self) -> StorageMaker:
        return self.undefined("make_storage", "YourStorage")  # type: ignore[no-any-return]

    @pytest_asyncio.fixture
    async def storage(self, make_storage: StorageMaker) -> AsyncIterator[Storage]:
        """An open storage; closed (not deleted) afterwards."""
        store = make_storage()
        await store.open()
        try:
            yield store
        finally:
            await store.close()

    # -- session fields ------------------------------------------------------------------------

    async def test_fresh_session_starts_on_dc2_empty(self, storage: Storage) -> None:
        session = await storage.get_session()
        assert session == SessionData()
        assert session.dc_id == 2 and session.date == 0
        assert session.is_empty

    async def test_session_fields_round_trip_with_real_types(self, storage: Storage) -> None:
        await logged_in(storage)
        await storage.update_session(server_address="149.154.167.91", port=443)
        session = await storage.get_session()
        assert session.auth_key == KEY
        assert (session.dc_id, session.api_id, session.user_id) == (4, 12345, 2**40 + 3)
        assert session.test_mode is False and session.is_bot is False
        assert session.address() == ("149.154.167.91", 443)
        assert not session.is_empty

    async def test_none_is_stored_not_skipped(self, storage: Storage) -> None:
        await logged_in(storage)
        await storage.update_session(user_id=None, is_bot=None)
        session = await storage.get_session()
        assert session.user_id is None and session.is_bot is None
        assert session.auth_key == KEY

    async def test_unknown_or_mistyped_fields_are_refused_and_nothing_changes(
        self, storage: Storage
    ) -> None:
        await logged_in(storage)
        with pytest.raises(TypeError, match="not session fields"):
            await storage.update_session(dc=1)
        with pytest.raises(TypeError):
            await storage.update_session(dc_id="4")
        with pytest.raises(TypeError):
            await storage.update_session(dc_id=None)
        with pytest.raises(TypeError):
            await storage.update_session(api_id=True)
        assert (await storage.get_session()).dc_id == 4

    async def test_address_falls_back_to_the_data_center_table(self, storage: Storage) -> None:
        await storage.update_session(dc_id=4, test_mode=False)
        assert (await storage.get_session()).address() == ("149.154.167.91", 443)
        await storage.update_session(dc_id=2, test_mode=True)
        assert (await storage.get_session()).address() == ("149.154.167.40", 80)

    async def test_session_string_round_trip(
        self, storage: Storage, make_storage: StorageMaker
    ) -> None:
        await logged_in(storage)
        text = await storage.export_session_string()
        assert len(text) == 362
        decoded = decode_session_string(text)
        assert decoded.auth_key == KEY and decoded.user_id == 2**40 + 3 and decoded.api_id == 12345
        await storage.update_session(dc_id=1, auth_key=b"\0" * 256)
        await storage.import_session_string(text)
        assert (await storage.export_session_string()) == text

    async def test_export_before_login_is_a_session_string_error(self, storage: Storage) -> None:
        with pytest.raises(SessionStringError, match="not set"):
            await storage.export_session_string()

    async def test_save_sets_date(self, storage: Storage) -> None:
        before = int(time.time())
        await storage.save()
        assert (await storage.get_session()).date >= before

    async def test_data_survives_close_and_reopen(self, storage: Storage) -> None:
        await logged_in(storage)
        await storage.upsert_peers([user(1, "alice")])
        await storage.set_update_states([UpdateState(0, 10, 20, 30, 40)])
        await storage.close()
        await storage.open()
        assert (await storage.get_session()).auth_key == KEY
        assert (await storage.peer_by_username("alice")).id == 1
        assert await storage.get_update_states() == [UpdateState(0, 10, 20, 30, 40)]

    async def test_second_object_sees_the_same_session(
        self, storage: Storage, make_storage: StorageMaker
    ) -> None:
        if not type(storage).persistent:
            pytest.skip(f"{type(storage).__name__} keeps its data in one object")
        await logged_in(storage)
        await storage.upsert_peers([user(5, "eve", phone="15550005")])
        await storage.close()
        other = make_storage()
        async with other:
            assert (await other.get_session()).user_id == 2**40 + 3
            assert (await other.peer_by_phone("+1 555 0005")).id == 5

    async def test_constructor_session_string_is_loaded_on_open(
        self, storage: Storage, make_storage: StorageMaker
    ) -> None:
        await logged_in(storage)
        text = await storage.export_session_string()
        await storage.delete()
        fresh = make_storage(session_string=text)
        async with fresh:
            session = await fresh.get_session()
            assert session.auth_key == KEY and session.dc_id == 4

    async def test_constructor_rejects_bad_session_string(self, make_storage: StorageMaker) -> None:
        with pytest.raises(SessionStringError):
            make_storage(session_string="not a session")

    # -- peers ------------------------------------------------------------------------------------

    async def test_peer_lookups_by_id_username_phone(self, storage: Storage) -> None:
        await storage.upsert_peers(
            [
                user(1, "Alice", "alice_2", phone="+1 555 0100"),
                Peer(CHANNEL, 99, PeerType.CHANNEL, ("news",)),
                Peer(-42, 0, PeerType.GROUP, ()),
            ]
        )
        alice = await storage.peer_by_id(1)
        assert alice.usernames == ("alice", "alice_2")
        assert alice.phone_number == "15550100"
        assert (await storage.peer_by_username("ALICE_2")).id == 1
        assert (await storage.peer_by_username("@alice")).id == 1
        assert (await storage.peer_by_phone("15550100")).id == 1
        channel = await storage.peer_by_id(CHANNEL)
        assert (channel.type, channel.access_hash, channel.bare_id) == (
            PeerType.CHANNEL,
            99,
            1234567890,
        )
        assert (await storage.peer_by_id(-42)).bare_id == 42

    @pytest.mark.parametrize(
        "lookup, key, message",
        [
            ("peer_by_id", 404, "ID not found: 404"),
            ("peer_by_username", "nobody", "Username not found: nobody"),
            ("peer_by_phone", "+999", "Phone number not found: 999"),
        ],
    )
    async def test_missing_peer_is_peer_not_found_and_key_error(
        self, storage: Storage, lookup: str, key: object, message: str
    ) -> None:
        await storage.upsert_peers([user(1, "alice", phone="1555")])
        with pytest.raises(PeerNotFound, match=message) as info:
            await getattr(storage, lookup)(key)
        assert isinstance(info.value, KeyError) and isinstance(info.value, StorageError)

    async def test_upsert_replaces_usernames_and_none_keeps_them(self, storage: Storage) -> None:
        await storage.upsert_peers([user(1, "old", "older")])
        await storage.upsert_peers([Peer(1, 8, PeerType.USER, None, "1999")])
        kept = await storage.peer_by_id(1)
        assert kept.usernames == ("old", "older") and kept.access_hash == 8
        assert (await storage.peer_by_username("older")).access_hash == 8
        await storage.upsert_peers([user(1, "new")])
        assert (await storage.peer_by_id(1)).usernames == ("new",)
        with pytest.raises(PeerNotFound):
            await storage.peer_by_username("old")
        await storage.upsert_peers([user(1)])
        assert (await storage.peer_by_id(1)).usernames == ()
        with pytest.raises(PeerNotFound):
            await storage.peer_by_username("new")

    async def test_set_usernames_replaces_each_peers_set(self, storage: Storage) -> None:
        await storage.upsert_peers(
            [Peer(1, 1, PeerType.USER, None), Peer(2, 2, PeerType.BOT, ("b",))]
        )
        await storage.set_usernames([(1, ["First", "second"]), (2, [])])
        assert (await storage.peer_by_id(1)).usernames == ("first", "second")
        assert (await storage.peer_by_username("second")).id == 1
        assert (await storage.peer_by_id(2)).usernames == ()
        with pytest.raises(PeerNotFound):
            await storage.peer_by_username("b")

    async def test_username_moved_to_another_peer_resolves_to_the_newest(
        self, storage: Storage
    ) -> None:
        now = int(time.time())
        await storage.upsert_peers([user(1, "handle", stamp=now - 100)])
        await storage.upsert_peers([user(2, "handle", stamp=now)])
        assert (await storage.peer_by_username("handle")).id == 2

    async def test_a_tie_of_last_writes_goes_to_the_greater_id(
        self, make_storage: StorageMaker
    ) -> None:
        # Stamps are seconds: two holders written in one second tie, and every backend,
        # pending writes and memory must break the tie alike, before and after a reopen.
        now = int(time.time())
        storage = make_storage()
        await storage.open()
        try:
            await storage.upsert_peers([user(7, "handle", phone="555", stamp=now)])
            await storage.upsert_peers([user(9, "handle", phone="555", stamp=now)])
            await storage.upsert_peers([user(8, "handle", phone="555", stamp=now)])
            assert (await storage.peer_by_username("handle")).id == 9
            assert (await storage.peer_by_phone("555")).id == 9
            await storage.flush()
            assert (await storage.peer_by_username("handle")).id == 9
            assert (await storage.peer_by_phone("555")).id == 9
        finally:
            await storage.close()
        if storage.persistent:
            async with make_storage(peer_cache_size=0) as again:
                assert (await again.peer_by_username("handle")).id == 9
                assert (await again.peer_by_phone("555")).id == 9

    async def test_usernames_expire_after_the_ttl(self, make_storage: StorageMaker) -> None:
        storage = make_storage()
        async with storage:
            stale = int(time.time()) - 8 * 3600 - 60
            await storage.upsert_peers([user(1, "stale", stamp=stale), user(2, "fresh")])
            with pytest.raises(PeerNotFound, match="Username expired: stale"):
                await storage.peer_by_username("stale")
            assert (await storage.peer_by_username("fresh")).id == 2
            assert (await storage.peer_by_id(1)).last_update_on == stale
        await storage.close()
        forever = make_storage(username_ttl=None)
        async with forever:
            await forever.upsert_peers([user(3, "ancient", stamp=0)])
            assert (await forever.peer_by_username("ancient")).id == 3

    @pytest.mark.parametrize(
        "peer",
        [
            Peer(2**63 - 1, -(2**63), PeerType.USER, ("max",)),
            Peer(-(10**12) - 2**40, 2**62, PeerType.SUPERGROUP, ("newchan",)),
            Peer(CHANNEL, 5, PeerType.FORUM, ()),
            Peer(CHANNEL - 1, 5, PeerType.DIRECT, ()),
            Peer(CHANNEL - 2, 5, PeerType.COMMUNITY, ()),
            Peer(77, 1, PeerType("ghost_type_from_the_future"), ("ghost",)),
            Peer(78, 1, PeerType.USER, ("юзер_ñ", "用户"), "+7 (999) 000-00-00"),
            Peer(79, 1, PeerType.USER, ("x" * 300,), "1" * 64),
        ],
        ids=[
            "int64-max",
            "new-channel-id",
            "forum",
            "direct",
            "community",
            "unknown-type",
            "unicode",
            "very-long",
        ],
    )
    async def test_odd_peers_round_trip(self, storage: Storage, peer: Peer) -> None:
        await storage.upsert_peers([peer])
        stored = await storage.peer_by_id(peer.id)
        assert (stored.id, stored.access_hash, stored.type, stored.type.value) == (
            peer.id,
            peer.access_hash,
            peer.type,
            peer.type.value,
        )
        for name in peer.usernames or ():
            assert (await storage.peer_by_username(name.upper())).id == peer.id
        if peer.phone_number:
            assert (await storage.peer_by_phone(peer.phone_number)).id == peer.id

    async def test_string_ids_are_not_found_by_the_neutral_api(self, storage: Storage) -> None:
        await storage.upsert_peers([user(1)])
        with pytest.raises(PeerNotFound):
            await storage.peer_by_id("me")  # type: ignore[arg-type]

    async def test_iter_peers_yields_everything_in_id_order(self, storage: Storage) -> None:
        peers = [user(i, f"u{i}") for i in range(-5, 2023)]  # more than one backend read
        await storage.upsert_peers(peers)
        seen = await collect(storage.iter_peers(), len(peers), "iter_peers()")
        assert [p.id for p in seen] == sorted(p.id for p in peers)
        assert all(p.usernames == (f"u{p.id}",) for p in seen)
        batches = await collect(storage.iter_peer_batches(1000), 3, "iter_peer_batches()")
        assert [len(b) for b in batches] == [1000, 1000, 28]
        assert [p for batch in batches for p in batch] == seen
        with pytest.raises(ValueError):
            await collect(storage.iter_peer_batches(0), 0, "iter_peer_batches()")

    async def test_iter_peers_with_a_batch_size_still_yields_batches_and_warns(
        self, storage: Storage
    ) -> None:
        await storage.upsert_peers([user(i) for i in range(1, 29)])
        with pytest.warns(DeprecationWarning, match="iter_peer_batches"):
            batches = await collect(storage.iter_peers(batch_size=10), 3, "iter_peers(10)")
        assert [len(b) for b in batches] == [10, 10, 8]

    async def test_count_peers_by_type(self, storage: Storage) -> None:
        await storage.upsert_peers(
            [user(1), user(2), Peer(3, 0, PeerType.BOT), Peer(CHANNEL, 1, PeerType.CHANNEL)]
        )
        by_type = {PeerType.USER: 2, PeerType.BOT: 1, PeerType.CHANNEL: 1}
        assert await storage.count_peers_by_type() == by_type
        total = await storage.count_peers()
        assert isinstance(total, int) and total == 4 and total + 1 == 5
        with pytest.warns(DeprecationWarning, match="count_peers_by_type"):
            assert total[PeerType.BOT] == 1 and dict(total.items()) == by_type
        with pytest.warns(DeprecationWarning):
            assert total == by_type

    async def test_bad_peer_input_is_refused_and_nothing_is_written(self, storage: Storage) -> None:
        await storage.upsert_peers([user(1, "keep")])
        with pytest.raises((TypeError, ValueError)):
            await storage.upsert_peers([user(2, "two"), Peer(2**64, 0, PeerType.USER)])
        with pytest.raises(TypeError):
            await storage.upsert_peers([(3, 0, "user", None, None)])  # type: ignore[list-item]
        with pytest.raises(PeerNotFound):
            await storage.peer_by_id(2)
        assert (await storage.peer_by_username("keep")).id == 1

    # -- update state ---------------------------------------------------------------------------

    async def test_update_state_merge_replace_delete(self, storage: Storage) -> None:
        await storage.set_update_states(
            [UpdateState(0, 1, 2, 300, 4), UpdateState(CHANNEL, 7, None, 100)]
        )
        await storage.set_update_states([UpdateState(0, pts=5)])
        assert await storage.get_update_states([0]) == [UpdateState(0, 5, 2, 300, 4)]
        await storage.set_update_states([UpdateState(0, pts=6)], merge=False)
        assert await storage.get_update_states([0]) == [UpdateState(0, 6, None, None, None)]
        states = await storage.get_update_states()
        assert [s.id for s in states] == [0, CHANNEL]  # oldest date first; None sorts first
        await storage.delete_update_states([CHANNEL, 12345])
        assert [s.id for s in await storage.get_update_states()] == [0]
        assert await storage.get_update_states([999]) == []

    # -- lifecycle and secrets --------------------------------------------------------------------

    async def test_closed_storage_raises_and_close_is_idempotent(self, storage: Storage) -> None:
        await storage.close()
        await storage.close()
        with pytest.raises(StorageClosedError):
            await storage.get_session()
        with pytest.raises(StorageClosedError):
            await storage.peer_by_id(1)
        with pytest.raises(StorageClosedError):
            await storage.upsert_peers([user(1)])

    async def test_delete_after_close_forgets_the_session(self, storage: Storage) -> None:
        await logged_in(storage)
        await storage.upsert_peers([user(1, "gone")])
        await storage.close()
        await storage.delete()
        await storage.open()
        assert (await storage.get_session()).is_empty
        with pytest.raises(PeerNotFound):
            await storage.peer_by_id(1)

    async def test_context_manager_opens_saves_and_closes(self, make_storage: StorageMaker) -> None:
        storage = make_storage()
        async with storage as opened:
            assert opened is storage
            await logged_in(storage)
        with pytest.raises(StorageClosedError):
            await storage.get_session()

    async def test_health(self, storage: Storage) -> None:
        assert await storage.health() is True

    async def test_repr_never_shows_the_auth_key(self, storage: Storage) -> None:
        await logged_in(storage)
        session = await storage.get_session()
        for text in (repr(storage), str(storage), repr(session), str(session)):
            assert KEY.hex() not in text and repr(KEY) not in text and "auth_key=b" not in text

    async def test_delete_peers_forgets_them_and_their_usernames(self, storage: Storage) -> None:
        await storage.upsert_peers([user(1, "one"), user(2, "two", phone="1222"), user(3, "three")])
        await storage.delete_peers([1, 2, 404])
        for lookup, key in (
            ("peer_by_id", 1),
            ("peer_by_username", "two"),
            ("peer_by_phone", "1222"),
        ):
            with pytest.raises(PeerNotFound):
                await getattr(storage, lookup)(key)
        assert (await storage.peer_by_username("three")).id == 3
        assert await storage.count_peers_by_type() == {PeerType.USER: 1}

    # -- writes: visible at once, stored within commit_interval, in order ---------------------

    async def test_writes_are_visible_at_once_and_stored_by_close(
        self, make_storage: StorageMaker
    ) -> None:
        storage = make_storage(commit_interval=3600, username_ttl=None)
        await storage.open()
        await storage.upsert_peers([user(1, "one", phone="1001"), user(2, "two")])
        await storage.set_usernames([(2, ["deux", "zwei"])])
        await storage.set_update_states([UpdateState(0, 5, 6, 7, 8)])
        await storage.delete_peers([1])
        assert (await storage.peer_by_username("zwei")).id == 2
        assert (await storage.peer_by_id(2)).usernames == ("deux", "zwei")
        for lookup, key in (
            ("peer_by_id", 1),
            ("peer_by_username", "one"),
            ("peer_by_phone", "1001"),
        ):
            with pytest.raises(PeerNotFound):
                await getattr(storage, lookup)(key)
        assert await storage.get_update_states() == [UpdateState(0, 5, 6, 7, 8)]
        assert await storage.count_peers_by_type() == {PeerType.USER: 1}
        await storage.close()
        again = storage if not type(storage).persistent else make_storage(username_ttl=None)
        async with again:
            assert (await again.peer_by_username("deux")).id == 2
            assert await again.get_update_states() == [UpdateState(0, 5, 6, 7, 8)]
            with pytest.raises(PeerNotFound):
                await again.peer_by_id(1)

    async def test_pending_writes_overlay_what_is_stored(self, make_storage: StorageMaker) -> None:
        storage = make_storage(commit_interval=3600, username_ttl=None)
        earlier = int(time.time()) - 10  # stamps of one second tie: who is newest is moot
        async with storage:
            await storage.upsert_peers(
                [user(1, "first", phone="1111", stamp=earlier), user(2, "second")]
            )
            await storage.set_update_states([UpdateState(0, 1, 2, 3, 4), UpdateState(9, 9)])
            await storage.flush()
            # Pending, on top of what is stored:
            await storage.set_usernames([(1, ["renamed"])])
            await storage.upsert_peers([Peer(2, 22, PeerType.BOT, None, "2222")])
            await storage.upsert_peers([Peer(3, 33, PeerType.USER, ("first",), "1111")])
            await storage.set_update_states([UpdateState(0, pts=10)])
            await storage.delete_update_states([9])
            with pytest.raises(PeerNotFound):
                await storage.peer_by_username("second_gone")
            assert (await storage.peer_by_username("renamed")).id == 1
            assert (await storage.peer_by_username("first")).id == 3  # the newest holder
            assert (await storage.peer_by_phone("1111")).id == 3
            second = await storage.peer_by_username("second")
            assert (second.id, second.access_hash, second.type) == (2, 22, PeerType.BOT)
            assert (await storage.peer_by_phone("+2222")).usernames == ("second",)
            assert await storage.get_update_states() == [UpdateState(0, 10, 2, 3, 4)]
            assert await storage.get_update_states([9]) == []
            await storage.flush()
            assert (await storage.peer_by_id(1)).usernames == ("renamed",)
            assert await storage.get_update_states() == [UpdateState(0, 10, 2, 3, 4)]

    async def test_commit_interval_zero_stores_before_the_call_returns(
        self, make_storage: StorageMaker
    ) -> None:
        storage = make_storage(commit_interval=0)
        async with storage:
            assert storage.commit_interval == 0
            await storage.upsert_peers([user(7, "seven")])
            if type(storage).persistent:
                reader = make_storage(read_only=True)
                try:
                    await reader.open()
                except StorageError as exc:
                    pytest.skip(f"cannot open a second, read-only object meanwhile: {exc}")
                try:
                    assert (await reader.peer_by_username("seven")).id == 7
                finally:
                    await reader.close()

    async def test_rewriting_unchanged_and_changed_peers_keeps_the_last_write(
        self, make_storage: StorageMaker
    ) -> None:
        storage = make_storage(commit_interval=0.01, username_ttl=None)
        async with storage:
            for round_ in range(3):
                await storage.upsert_peers([user(1, "same"), user(2, "two")])
                await storage.upsert_peers([Peer(2, 100 + round_, PeerType.USER, None)])
                await asyncio.sleep(0.02)
            await storage.upsert_peers([Peer(1, 7, PeerType.USER, ("same",), "15550001")])
            await storage.upsert_peers([Peer(1, 7, PeerType.USER, ("same",), "15550001")])
        again = storage if not type(storage).persistent else make_storage(username_ttl=None)
        async with again:
            one, two = await again.peer_by_id(1), await again.peer_by_id(2)
            assert (one.access_hash, one.phone_number, one.usernames) == (7, "15550001", ("same",))
            assert (two.access_hash, two.usernames) == (102, ("two",))

    async def test_many_tasks_writing_at_once_lose_nothing(
        self, make_storage: StorageMaker
    ) -> None:
        storage = make_storage(username_ttl=None)
        await storage.open()

        async def writer(n: int) -> None:
            for i in range(25):
                peer_id = n * 1000 + i
                await storage.upsert_peers([user(peer_id, f"t{peer_id}")])
                await storage.set_update_states([UpdateState(n + 1, pts=i)])
                if i % 10 == 0:
                    await asyncio.sleep(0)

        await asyncio.gather(*(writer(n) for n in range(20)))
        assert (await storage.peer_by_username("t19024")).id == 19024
        await storage.close()
        again = storage if not type(storage).persistent else make_storage(username_ttl=None)
        async with again:
            assert await again.count_peers() == 500
            assert {(s.id, s.pts) for s in await again.get_update_states()} == {
                (n + 1, 24) for n in range(20)
            }

    async def test_flush_and_save_store_what_is_pending(self, make_storage: StorageMaker) -> None:
        storage = make_storage(commit_interval=3600)
        async with storage:
            await storage.upsert_peers([user(5, "five")])
            await storage.flush()
            await storage.upsert_peers([user(6, "six")])
            await storage.save()
            assert (await storage.peer_by_username("six")).id == 6

    # -- bad input: our errors (mixing in the builtins), nothing stored -------------------------

    async def test_bad_arguments_raise_our_errors_and_store_nothing(self, storage: Storage) -> None:
        await storage.upsert_peers([user(1, "keep")])
        for call, error in (
            (lambda: storage.peer_by_username(None), InvalidTypeError),  # type: ignore[arg-type]
            (lambda: storage.peer_by_phone(15550001), InvalidTypeError),  # type: ignore[arg-type]
            (lambda: storage.upsert_peers([Peer(2, 0, 5)]), InvalidTypeError),  # type: ignore[arg-type]
            (lambda: storage.upsert_peers([Peer(2, 0, "")]), InvalidTypeError),  # type: ignore[arg-type]
            (lambda: storage.upsert_peers([Peer(2, 0, "user", "two")]), InvalidTypeError),  # type: ignore[arg-type]
            (lambda: storage.upsert_peers([Peer(2, 2**63, PeerType.USER)]), InvalidValueError),
            (lambda: storage.upsert_peers(user(2)), InvalidTypeError),  # type: ignore[arg-type]
            (lambda: storage.set_usernames([(1, "keep2")]), InvalidTypeError),
            (lambda: storage.set_usernames([(1, [5])]), InvalidTypeError),  # type: ignore[list-item]
            (lambda: storage.set_update_states([(0, 1, 2, 3, 4)]), InvalidTypeError),  # type: ignore[list-item]
            (lambda: storage.set_update_states([UpdateState(0, "1")]), InvalidTypeError),  # type: ignore[arg-type]
            (lambda: storage.update_session(auth_key=b"12345"), InvalidValueError),
            (lambda: storage.update_session(port=70000), InvalidValueError),
            (lambda: storage.delete_peers(["1"]), InvalidTypeError),  # type: ignore[list-item]
        ):
            with pytest.raises(error):
                await call()
        assert isinstance(InvalidTypeError("x"), TypeError)
        assert isinstance(InvalidValueError("x"), ValueError)
        with pytest.raises(PeerNotFound):
            await storage.peer_by_id(2)
        assert (await storage.peer_by_username("keep")).usernames == ("keep",)
        assert (await storage.get_session()).auth_key is None

    async def test_a_peer_type_given_by_name_is_accepted(self, storage: Storage) -> None:
        await storage.upsert_peers([Peer(3, 1, "bot", ("robot",))])  # type: ignore[arg-type]
        assert (await storage.peer_by_username("robot")).type is PeerType.BOT

    async def test_lookups_without_usernames_find_the_same_peer(self, storage: Storage) -> None:
        await storage.upsert_peers([user(4, "four", phone="1444")])
        for found in (
            await storage.peer_by_id(4, with_usernames=False),
            await storage.peer_by_username("four", with_usernames=False),
            await storage.peer_by_phone("1444", with_usernames=False),
        ):
            assert (found.id, found.access_hash, found.type) == (4, 28, PeerType.USER)
            assert found.usernames in (None, ("four",))

    # -- lifecycle ------------------------------------------------------------------------------

    async def test_every_call_before_open_and_after_close_raises(
        self, make_storage: StorageMaker
    ) -> None:
        storage = make_storage()
        calls: dict[str, Callable[[], Any]] = {
            "update_session": lambda: storage.update_session(api_id=1),
            "upsert_peers": lambda: storage.upsert_peers([user(1)]),
            "set_usernames": lambda: storage.set_usernames([(1, ["a"])]),
            "delete_peers": lambda: storage.delete_peers([1]),
            "peer_by_id": lambda: storage.peer_by_id(1),
            "peer_by_username": lambda: storage.peer_by_username("a"),
            "peer_by_phone": lambda: storage.peer_by_phone("1"),
            "set_update_states": lambda: storage.set_update_states([UpdateState(0, 1)]),
            "delete_update_states": lambda: storage.delete_update_states([0]),
        }
        await self.refused_while_closed(
            storage, calls, "get_session", "get_update_states", "save", "flush", "health",
            "count_peers", "count_peers_by_type", "export_session_string", "iter_peers",
            "iter_peer_batches",
        )  # fmt: skip

    async def test_read_only_storage_refuses_every_write(self, make_storage: StorageMaker) -> None:
        writer = make_storage()
        async with writer:
            await logged_in(writer)
            await writer.upsert_peers([user(8, "eight")])
        storage = make_storage(read_only=True)
        async with storage:
            if type(storage).persistent:
                assert (await storage.peer_by_username("eight")).id == 8
                assert (await storage.get_session()).auth_key == KEY
            writes: tuple[Callable[[], Any], ...] = (
                lambda: storage.update_session(api_id=1),
                lambda: storage.upsert_peers([user(9)]),
                lambda: storage.set_usernames([(8, ["x"])]),
                lambda: storage.delete_peers([8]),
                lambda: storage.set_update_states([UpdateState(0, 1)]),
                lambda: storage.delete_update_states([0]),
                lambda: storage.import_session_string("x"),
                storage.delete,
            )
            for call in writes:
                with pytest.raises(ReadOnlyError):
                    await call()
            await storage.save()  # nothing to store: not an error
        with pytest.raises((ValueError, StorageError)):
            make_storage(read_only=True, session_string="anything")

    async def test_copy_session_there_and_back(self, storage: Storage) -> None:
        await logged_in(storage)
        await storage.upsert_peers([user(i, f"c{i}", phone=f"1{i:04d}") for i in range(1, 40)])
        await storage.set_update_states([UpdateState(0, 1, 2, 3, 4)])
        middle = MemoryStorage("middle")
        result = await copy_session(
            storage, middle, batch_size=7, progress=bounded_progress(39, "copy_session()")
        )
        assert (result.peers, result.update_states) == (39, 1)
        await storage.delete()
        await storage.open()
        await copy_session(middle, storage, progress=bounded_progress(39, "copy_session()"))
        assert (await storage.get_session()).auth_key == KEY
        assert (await storage.peer_by_username("c39")).phone_number == "10039"
        assert await storage.get_update_states() == [UpdateState(0, 1, 2, 3, 4)]
