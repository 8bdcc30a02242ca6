"""Telethon sessions written by the real ``telethon`` package become sessions of ours."""

from __future__ import annotations

import base64
import datetime
import hashlib
import sqlite3
import warnings
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from telethon import TelegramClient, types
from telethon._updates import ChannelState, SessionState
from telethon.crypto import AuthKey
from telethon.sessions import SQLiteSession, StringSession

from pyrogram_storage import (
    CorruptSessionError,
    FileStorage,
    MemoryStorage,
    Peer,
    PeerType,
    SessionData,
    SessionStringError,
    TargetNotEmptyError,
    UnknownSchemaError,
    UpdateState,
    decode_session_string,
    encode_session_string,
)
from pyrogram_storage.errors import SessionNotFoundError
from pyrogram_storage.tools.telethon import (
    ImportResult,
    IncompleteSessionWarning,
    decode_telethon_string,
    encode_telethon_string,
    import_telethon,
    read_telethon_file,
)

KEY = bytes(range(256))
SELF_ID = 5_000_000_123
CHANNEL_ID = 1234567890
NOW = datetime.datetime.fromtimestamp(1_700_000_000)


def telethon_string(dc_id: int = 4, address: str = "149.154.167.91", port: int = 443) -> str:
    session = StringSession()
    session.set_dc(dc_id, address, port)
    session.auth_key = AuthKey(KEY)
    text: str = session.save()
    return text


async def telethon_file(path: Path) -> Path:
    """Write a session file through Telethon's own client and session code, offline."""
    client = TelegramClient(SQLiteSession(str(path)), 12345, "0123456789abcdef0123456789abcdef")
    client.session.set_dc(4, "149.154.167.91", 443)
    client.session.auth_key = AuthKey(KEY)
    users = [
        types.User(id=1001, access_hash=-5, username="Alice", phone="15551234567", first_name="A"),
        types.User(id=1002, access_hash=7, username="helper_bot", bot=True, first_name="B"),
    ]
    chats = [
        types.Chat(
            id=4321,
            title="g",
            photo=types.ChatPhotoEmpty(),
            participants_count=2,
            date=NOW,
            version=1,
        ),
        types.Channel(
            id=CHANNEL_ID,
            title="c",
            photo=types.ChatPhotoEmpty(),
            date=NOW,
            access_hash=2**62,
            username="News",
            megagroup=True,
        ),
    ]
    client.session.process_entities(types.contacts.ResolvedPeer(types.PeerUser(1001), chats, users))
    # What a logged-in client knows when it disconnects: its own id and the update state.
    client._mb_entity_cache.set_self_user(SELF_ID, False, 999)
    client._message_box.load(
        SessionState(0, 0, False, 100, 5, 1_700_000_100, 7, None), [ChannelState(CHANNEL_ID, 55)]
    )
    await client.disconnect()
    return path.with_suffix(".session")


def rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    db = sqlite3.connect(path)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


# -- strings -------------------------------------------------------------------------------


def test_a_telethon_string_decodes_and_says_what_it_lacks() -> None:
    text = telethon_string()
    with pytest.warns(IncompleteSessionWarning, match="user_id, is_bot, api_id"):
        result = decode_telethon_string(text)
    session = result.session
    assert (session.dc_id, session.server_address, session.port) == (4, "149.154.167.91", 443)
    assert session.auth_key == KEY and session.test_mode is False
    assert (session.user_id, session.is_bot, session.api_id) == (None, None, None)
    assert result.missing == ("user_id", "is_bot", "api_id") and not result.complete
    assert result.peers == () and result.update_states == ()
    assert "hidden" in repr(result.session) and KEY.hex() not in repr(result)


def test_options_complete_a_telethon_string_and_it_exports_for_the_clients() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = decode_telethon_string(telethon_string(), user_id=SELF_ID, is_bot=False, api_id=42)
    assert result.complete
    decoded = decode_session_string(encode_session_string(result.session))
    assert (decoded.dc_id, decoded.api_id, decoded.auth_key, decoded.user_id) == (
        4,
        42,
        KEY,
        SELF_ID,
    )


def test_an_ipv6_telethon_string_gets_the_data_centers_ipv4_address() -> None:
    result = decode_telethon_string(
        telethon_string(2, "2001:67c:4e8:f002::a", 443), user_id=1, is_bot=True, api_id=1
    )
    assert (result.session.server_address, result.session.port) == ("149.154.167.51", 443)


def test_a_test_server_string_is_marked_test_mode() -> None:
    result = decode_telethon_string(
        telethon_string(2, "149.154.167.40", 80), user_id=1, is_bot=True, api_id=1
    )
    assert result.session.test_mode is True
    assert (
        decode_telethon_string(
            telethon_string(2, "149.154.167.40", 80),
            user_id=1,
            is_bot=True,
            api_id=1,
            test_mode=False,
        ).session.test_mode
        is False
    )


def test_our_telethon_string_is_loaded_by_telethon_and_round_trips() -> None:
    original = telethon_string()
    result = decode_telethon_string(original, user_id=1, is_bot=False, api_id=1)
    text = encode_telethon_string(result.session)
    assert text == original
    loaded = StringSession(text)
    assert (loaded.dc_id, loaded.server_address, loaded.port) == (4, "149.154.167.91", 443)
    assert loaded.auth_key.key == KEY


def test_a_session_without_a_stored_address_exports_the_data_centers_one() -> None:
    session = SessionData(dc_id=4, api_id=1, test_mode=False, auth_key=KEY, user_id=3, is_bot=False)
    loaded = StringSession(encode_telethon_string(session))
    assert (loaded.dc_id, loaded.server_address, loaded.port) == (4, "149.154.167.91", 443)
    assert loaded.auth_key.key == session.auth_key


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty"),
        ("2" + telethon_string()[1:], "start with '1'"),
        (telethon_string()[:-10], "bytes"),
        ("1!!!", "Telethon"),
        ("1" + "A" * 5000, "5001 characters long"),
    ],
)
def test_bad_telethon_strings_are_refused(text: str, message: str) -> None:
    with pytest.raises(SessionStringError, match=message):
        decode_telethon_string(text)


def test_pyrogram_refuses_a_telethon_string_and_points_here() -> None:
    with pytest.raises(SessionStringError, match=r"tools\.telethon"):
        decode_session_string(telethon_string())


def test_a_session_without_auth_key_cannot_become_a_telethon_string() -> None:
    with pytest.raises(SessionStringError, match="auth key"):
        encode_telethon_string(
            decode_telethon_string(
                telethon_string(), user_id=1, is_bot=False, api_id=1
            ).session.replace(auth_key=None)
        )


# -- files ---------------------------------------------------------------------------------


async def test_a_telethon_file_reads_with_peers_states_and_own_user_id(tmp_path: Path) -> None:
    path = await telethon_file(tmp_path / "tele")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.warns(IncompleteSessionWarning, match="is_bot, api_id"):
        result = await read_telethon_file(path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert result.missing == ("is_bot", "api_id")
    session = result.session
    assert (session.dc_id, session.auth_key, session.user_id) == (4, KEY, SELF_ID)
    assert (session.server_address, session.port, session.test_mode) == (
        "149.154.167.91",
        443,
        False,
    )
    stamps = dict(rows(path, "SELECT id, date FROM entities"))
    assert {peer.id: peer for peer in result.peers} == {
        -1000000000000 - CHANNEL_ID: Peer(
            -1000000000000 - CHANNEL_ID,
            2**62,
            PeerType.CHANNEL,
            ("news",),
            None,
            stamps[-1000000000000 - CHANNEL_ID],
        ),
        -4321: Peer(-4321, 0, PeerType.GROUP, (), None, stamps[-4321]),
        1001: Peer(1001, -5, PeerType.USER, ("alice",), "15551234567", stamps[1001]),
        1002: Peer(1002, 7, PeerType.USER, ("helper_bot",), None, stamps[1002]),
    }
    channel_date = rows(path, f"SELECT date FROM update_state WHERE id = {CHANNEL_ID}")[0][0]
    assert isinstance(channel_date, float)
    assert sorted(result.update_states, key=lambda s: s.id) == [
        UpdateState(-1000000000000 - CHANNEL_ID, 55, 0, int(channel_date), 0),
        UpdateState(0, 100, 5, 1_700_000_100, 7),
    ]


async def test_import_telethon_file_into_a_file_storage(tmp_path: Path) -> None:
    path = await telethon_file(tmp_path / "tele")
    target = FileStorage("ours", tmp_path)
    result = await import_telethon(path, target, is_bot=False, api_id=12345)
    assert result.complete
    async with target:
        session = await target.get_session()
        assert session == result.session
        assert not session.is_empty
        assert (await target.peer_by_username("@NEWS")).id == -1000000000000 - CHANNEL_ID
        assert (await target.peer_by_phone("+1 555 123 4567")).id == 1001
        peers = [peer async for peer in target.iter_peers()]
        assert peers == sorted(result.peers, key=lambda p: p.id)
        states = await target.get_update_states()
        assert sorted(states, key=lambda s: s.id) == sorted(
            result.update_states, key=lambda s: s.id
        )
        text = await target.export_session_string()
    assert decode_session_string(text).user_id == SELF_ID


async def test_import_telethon_string_and_refuse_a_non_empty_target(tmp_path: Path) -> None:
    target = MemoryStorage()
    with pytest.warns(IncompleteSessionWarning):
        result = await import_telethon(telethon_string(), target)
    assert isinstance(result, ImportResult)
    async with target:
        assert (await target.get_session()).auth_key == KEY
    with pytest.raises(TargetNotEmptyError):
        await import_telethon(telethon_string(), target, user_id=1, is_bot=False, api_id=1)
    await import_telethon(
        telethon_string(), target, user_id=1, is_bot=False, api_id=1, overwrite=True
    )
    async with target:
        assert (await target.get_session()).user_id == 1


async def test_not_a_file_nor_a_string(tmp_path: Path) -> None:
    with pytest.raises(SessionStringError, match="no file named"):
        await import_telethon(str(tmp_path / "missing.session"), MemoryStorage())


async def test_bad_telethon_files_are_refused_untouched(tmp_path: Path) -> None:
    with pytest.raises(SessionNotFoundError):
        await read_telethon_file(tmp_path / "missing.session")
    garbage = tmp_path / "garbage.session"
    garbage.write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(CorruptSessionError):
        await read_telethon_file(garbage)
    assert garbage.read_bytes() == b"not sqlite at all" * 100
    ours = FileStorage("ours", tmp_path)
    async with ours:
        pass
    with pytest.raises(UnknownSchemaError, match="not a Telethon session"):
        await read_telethon_file(ours.path)


async def test_an_older_telethon_file_without_entity_dates_still_reads(tmp_path: Path) -> None:
    path = await telethon_file(tmp_path / "tele")
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE entities DROP COLUMN date")
    db.commit()
    db.close()
    with pytest.warns(IncompleteSessionWarning):
        result = await read_telethon_file(path)
    assert {peer.last_update_on for peer in result.peers} == {None}
    assert len(result.peers) == 4


async def test_a_user_id_that_contradicts_the_file_is_refused(tmp_path: Path) -> None:
    path = await telethon_file(tmp_path / "tele")
    with pytest.raises(ValueError, match=str(SELF_ID)):
        await read_telethon_file(path, user_id=5)
    with pytest.warns(IncompleteSessionWarning):
        assert (await read_telethon_file(path, user_id=SELF_ID)).session.user_id == SELF_ID


@given(st.text(max_size=400) | st.just(telethon_string()).map(lambda s: s[: len(s) // 2]))
@settings(max_examples=300, deadline=None)
def test_any_text_decodes_or_raises_session_string_error(text: str) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = decode_telethon_string(text)
    except SessionStringError:
        return
    assert result.session.auth_key is None or len(result.session.auth_key) == 256


@given(st.binary(min_size=263, max_size=263) | st.binary(min_size=275, max_size=275))
@settings(max_examples=200, deadline=None)
def test_any_payload_of_the_right_size_decodes_or_is_refused(raw: bytes) -> None:
    text = "1" + base64.urlsafe_b64encode(raw).decode()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = decode_telethon_string(text)
    except SessionStringError:
        assert raw[0] == 0
        return
    loaded = StringSession(text)
    session = result.session
    assert session.dc_id == loaded.dc_id
    assert session.auth_key == (loaded.auth_key.key if loaded.auth_key else None)
    if len(raw) == 263:  # IPv4: kept as Telethon reads it
        assert (session.server_address, session.port) == (loaded.server_address, loaded.port)
