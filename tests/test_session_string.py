"""Session strings: golden strings from the real clients, every accepted spelling, clear errors."""

from __future__ import annotations

import base64
import contextlib
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyrogram_storage import FileStorage, MemoryStorage, SessionData, SessionStringError
from pyrogram_storage.session_string import (
    SessionStringFormat,
    decode_session_string,
    detect_format,
    encode_session_string,
)

from .fixture_files import CLIENT_NAMES, manifest

KEY = bytes(range(256))


@pytest.mark.parametrize("client", CLIENT_NAMES)
def test_strings_exported_by_each_client_decode_and_re_encode_identically(client: str) -> None:
    expected = manifest(client)
    text = expected["session_string"]
    session = decode_session_string(text)
    wanted = expected["session"]
    assert session.auth_key == bytes.fromhex(wanted["auth_key"])
    assert (session.dc_id, session.api_id, session.user_id) == (
        wanted["dc_id"],
        wanted["api_id"],
        wanted["user_id"],
    )
    assert session.is_bot is bool(wanted["is_bot"])
    assert session.test_mode is bool(wanted["test_mode"])
    assert len(text) == 362
    assert encode_session_string(session) == text


def _session(**changes: object) -> SessionData:
    base = SessionData(
        dc_id=4, api_id=2**31 - 5, test_mode=False, auth_key=KEY, user_id=2**40 + 1, is_bot=True
    )
    return base.replace(**changes)


def _old(fmt: SessionStringFormat, session: SessionData) -> str:
    packed = struct.pack(
        fmt.value,
        session.dc_id,
        bool(session.test_mode),
        session.auth_key,
        session.user_id,
        bool(session.is_bot),
    )
    return base64.urlsafe_b64encode(packed).decode().rstrip("=")


@pytest.mark.parametrize(
    "fmt, length, user_id",
    [(SessionStringFormat.OLD_64, 356, 2**40 + 1), (SessionStringFormat.OLD_32, 351, 123456)],
)
def test_old_formats_decode_without_api_id(
    fmt: SessionStringFormat, length: int, user_id: int
) -> None:
    text = _old(fmt, _session(user_id=user_id))
    assert len(text) == length
    assert detect_format(text) is fmt
    session = decode_session_string(text)
    assert session.api_id is None
    assert (session.dc_id, session.user_id, session.auth_key) == (4, user_id, KEY)
    padded = text + "=" * (-len(text) % 4)
    assert decode_session_string(padded) == session


@pytest.mark.parametrize(
    "spelling",
    [
        lambda s: s,
        lambda s: s + "==",
        lambda s: f"  {s}\n",
        lambda s: f'"{s}"',
        lambda s: f"'{s}'\n",
        lambda s: s.replace("-", "+").replace("_", "/"),
    ],
    ids=["plain", "padded", "whitespace", "double-quoted", "single-quoted", "standard-alphabet"],
)
def test_every_spelling_of_the_current_format_decodes(spelling: object) -> None:
    session = _session()
    text = encode_session_string(session)
    assert decode_session_string(spelling(text)) == session  # type: ignore[operator]


def _telethon() -> str:
    packed = struct.pack(">B4sH256s", 2, bytes([149, 154, 167, 51]), 443, KEY)
    return "1" + base64.urlsafe_b64encode(packed).decode()


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("A" * 5000, "5000 characters"),
        ("abc$def", "character '\\$'"),
        (_telethon(), "Telethon"),
        ("QUJD", "decodes to 3 bytes"),
        ("QUJDR", "cannot encode whole bytes"),
    ],
    ids=["empty", "blank", "huge", "alphabet", "telethon", "short", "odd-length"],
)
def test_bad_strings_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(SessionStringError, match=message) as info:
        decode_session_string(text)
    assert isinstance(info.value, ValueError)


def test_non_str_input_is_a_session_string_error() -> None:
    with pytest.raises(SessionStringError, match="must be str"):
        decode_session_string(b"bytes")  # type: ignore[arg-type]


def _raw(session: SessionData) -> bytearray:
    return bytearray(base64.urlsafe_b64decode(encode_session_string(session) + "=="))


def _text(raw: bytes | bytearray) -> str:
    return base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")


def _with(offset: int, value: bytes, session: SessionData | None = None) -> str:
    """A current-format string of ``session`` with ``value`` written at byte ``offset``.

    The layout is ``>BI?256sQ?``: dc id at 0, api id at 1, test mode at 5, the auth
    key at 6, the user id at 262, is_bot at 270.
    """
    raw = _raw(session or _session())
    raw[offset : offset + len(value)] = value
    return _text(raw)


def _old_with_user_id(user_id: int) -> str:
    packed = struct.pack(">B?256sQ?", 2, False, KEY, user_id, False)
    return _text(packed)


def _big(value: int, size: int) -> bytes:
    return value.to_bytes(size, "big")


OUT_OF_RANGE = [
    pytest.param(_with(262, _big(2**63, 8)), "user_id", id="user_id-2**63"),
    pytest.param(_with(262, _big(2**64 - 1, 8)), "user_id", id="user_id-2**64-1"),
    pytest.param(_with(262, _big(0, 8)), "user_id", id="user_id-0"),
    pytest.param(_old_with_user_id(2**63 + 7), "user_id", id="old-format-user_id-2**63"),
    pytest.param(_with(1, _big(2**31, 4)), "api_id", id="api_id-2**31"),
    pytest.param(_with(1, _big(2**32 - 1, 4)), "api_id", id="api_id-2**32-1"),
    pytest.param(_with(1, _big(0, 4)), "api_id", id="api_id-0"),
    pytest.param(_with(0, b"\x5c"), "data center 92", id="dc-92"),
    pytest.param(_with(0, b"\x00"), "data center 0", id="dc-0"),
    pytest.param(_with(0, b"\xff"), "data center 255", id="dc-255"),
    pytest.param(_with(0, b"\x04", _session(test_mode=True)), "data center 4", id="test-dc-4"),
    pytest.param(_with(5, b"\x02"), "test_mode flag byte is 2", id="test_mode-2"),
    pytest.param(_with(270, b"\x07"), "is_bot flag byte is 7", id="is_bot-7"),
]


@pytest.mark.parametrize("text, field", OUT_OF_RANGE)
def test_fields_out_of_range_are_refused_naming_the_field(text: str, field: str) -> None:
    """Valid base64 of the right length is not enough: every field must be one Telegram has."""
    with pytest.raises(SessionStringError, match=field) as error:
        decode_session_string(text)
    assert text[20:60] not in str(error.value)


@pytest.mark.parametrize("text, field", OUT_OF_RANGE)
async def test_out_of_range_strings_never_reach_a_storage(
    text: str, field: str, tmp_path: Path
) -> None:
    """Refused when the storage is built; before, user_id >= 2**63 raised OverflowError later."""
    with pytest.raises(SessionStringError, match=field):
        MemoryStorage("m", session_string=text)
    with pytest.raises(SessionStringError, match=field):
        FileStorage("f", tmp_path, session_string=text)


def test_a_typo_inside_the_base64_alphabet_is_refused() -> None:
    """One character off at the front made dc_id 92 and a plausible api_id: both accepted."""
    text = encode_session_string(_session(dc_id=2))
    typo = "X" + text[1:]
    with pytest.raises(SessionStringError, match="data center"):
        decode_session_string(typo)


@pytest.mark.parametrize(
    "dc_id, test_mode", [(1, False), (5, False), (203, False), (1, True), (3, True)]
)
def test_every_known_data_center_is_accepted(dc_id: int, test_mode: bool) -> None:
    session = _session(dc_id=dc_id, test_mode=test_mode)
    assert decode_session_string(encode_session_string(session)) == session


def test_the_largest_ids_are_accepted() -> None:
    session = _session(api_id=2**31 - 1, user_id=2**63 - 1)
    assert decode_session_string(encode_session_string(session)) == session
    assert decode_session_string(_old_with_user_id(2**63 - 1)).user_id == 2**63 - 1


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"auth_key": None}, "auth_key not set"),
        ({"api_id": None, "user_id": None}, "api_id, user_id not set"),
        ({"auth_key": b"short"}, "5 bytes"),
        ({"api_id": 2**32}, "32 bits"),
        ({"user_id": -1}, "64 bits"),
    ],
)
def test_export_refuses_incomplete_sessions(changes: dict[str, object], message: str) -> None:
    with pytest.raises(SessionStringError, match=message):
        encode_session_string(_session(**changes))


@given(
    dc_id=st.sampled_from([1, 2, 3]),
    api_id=st.integers(1, 2**31 - 1),
    test_mode=st.booleans(),
    auth_key=st.binary(min_size=256, max_size=256),
    user_id=st.integers(1, 2**63 - 1),
    is_bot=st.booleans(),
)
def test_round_trip_property(
    dc_id: int, api_id: int, test_mode: bool, auth_key: bytes, user_id: int, is_bot: bool
) -> None:
    session = SessionData(
        dc_id=dc_id,
        api_id=api_id,
        test_mode=test_mode,
        auth_key=auth_key,
        user_id=user_id,
        is_bot=is_bot,
    )
    assert decode_session_string(encode_session_string(session)) == session


@settings(max_examples=500)
@given(st.one_of(st.text(max_size=400), st.text(alphabet="ABCab01-_+/= \n\"'", max_size=400)))
def test_arbitrary_text_raises_only_session_string_error(text: str) -> None:
    with contextlib.suppress(SessionStringError):
        decode_session_string(text)
