"""Session strings: the base64 form of a session that every Pyrogram-family client exports.

Pure functions; no storage, no I/O.

Every client exports the same layout: ``struct ">BI?256sQ?"`` (dc id, api id, test
mode, auth key, user id, is bot), 271 bytes, urlsafe base64 without padding, 362
characters. Two older layouts carry no api id: ``">B?256sQ?"`` (267 bytes, 356
characters) and ``">B?256sI?"`` (263 bytes, 351 characters). The format is chosen by
the decoded byte length, so padding and alphabet do not matter.
"""

from __future__ import annotations

import base64
import binascii
import enum
import re
import struct

from .errors import SessionStringError
from .types import SessionData, dc_address

__all__ = [
    "SessionStringFormat",
    "decode_session_string",
    "detect_format",
    "encode_session_string",
    "looks_like_session_string",
    "looks_like_telethon_string",
]

AUTH_KEY_SIZE = 256
MAX_LENGTH = 1024
"""Longer input is refused before decoding; a session string is 362 characters."""
MAX_API_ID = 2**31 - 1
"""Telegram's ``api_id`` is a signed 32-bit int; the string stores it unsigned."""
MAX_USER_ID = 2**63 - 1
"""User ids are signed 64-bit everywhere they are stored; the string stores them unsigned."""


class SessionStringFormat(enum.Enum):
    """A layout of the decoded bytes: ``(struct format, carries api_id)``."""

    CURRENT = ">BI?256sQ?"
    OLD_64 = ">B?256sQ?"
    OLD_32 = ">B?256sI?"

    @property
    def size(self) -> int:
        return struct.calcsize(self.value)


_BY_SIZE = {fmt.size: fmt for fmt in SessionStringFormat}
_NOT_BASE64 = re.compile(r"[^A-Za-z0-9\-_+/=]")
_BASE64_RUN = re.compile(r"[A-Za-z0-9\-_+=]{300,}")
_QUOTES = "\"'`"


def encode_session_string(session: SessionData) -> str:
    """Return the 362-character session string every client imports.

    :raises SessionStringError: a field the string needs is missing or out of range.
    """
    missing = session.missing
    if missing:
        raise SessionStringError(
            "cannot export a session string: "
            + ", ".join(missing)
            + " not set (log in first, or set api_id for a session imported from an old string)"
        )
    assert session.auth_key is not None and session.api_id is not None
    assert session.user_id is not None
    if len(session.auth_key) != AUTH_KEY_SIZE:
        raise SessionStringError(
            "cannot export a session string: "
            f"the auth key is {len(session.auth_key)} bytes, not 256"
        )
    try:
        packed = struct.pack(
            SessionStringFormat.CURRENT.value,
            session.dc_id,
            session.api_id,
            bool(session.test_mode),
            session.auth_key,
            session.user_id,
            bool(session.is_bot),
        )
    except struct.error as exc:
        raise SessionStringError(
            "cannot export a session string: dc_id must fit in 0..255, api_id in 32 bits "
            "and user_id in unsigned 64 bits"
        ) from exc
    return base64.urlsafe_b64encode(packed).decode("ascii").rstrip("=")


def detect_format(text: str) -> SessionStringFormat:
    """Return which layout ``text`` holds.

    :raises SessionStringError: the text is not a Pyrogram-family session string.
    """
    return _decode_bytes(text)[0]


def decode_session_string(text: str) -> SessionData:
    """Decode any Pyrogram-family session string into a :class:`SessionData`.

    Surrounding whitespace and quotes, padding and the standard ``+/`` alphabet are
    accepted. Old formats yield ``api_id=None``. Every field is checked, so a damaged
    string that is still valid base64 is refused rather than stored: the data center
    must be one of Telegram's, the flag bytes 0 or 1, ``api_id`` in 1..2**31-1 and
    ``user_id`` in 1..2**63-1.

    :raises SessionStringError: with what is wrong with the text (naming the field, never
        quoting the text).
    """
    fmt, raw = _decode_bytes(text)
    if fmt is SessionStringFormat.CURRENT:
        dc_id, api_id, _, auth_key, user_id, _ = struct.unpack(fmt.value, raw)
    else:
        dc_id, _, auth_key, user_id, _ = struct.unpack(fmt.value, raw)
        api_id = None
    # Unpacked as bytes, not "?": struct turns any non-zero byte into True.
    test_mode = _flag("test_mode", raw[5] if fmt is SessionStringFormat.CURRENT else raw[1])
    is_bot = _flag("is_bot", raw[-1])
    if dc_address(dc_id, test_mode) is None:
        known = "1-3 on the test servers" if test_mode else "1-5 and 203"
        raise SessionStringError(
            f"not a session string: data center {dc_id} is not one of Telegram's ({known}); "
            "the text may be damaged"
        )
    if api_id is not None and not 1 <= api_id <= MAX_API_ID:
        raise SessionStringError(
            f"not a session string: api_id is out of range (1 to {MAX_API_ID}); "
            "the text may be damaged"
        )
    if not 1 <= user_id <= MAX_USER_ID:
        raise SessionStringError(
            "not a session string: user_id is out of range (1 to 2**63-1); the text may be damaged"
        )
    return SessionData(
        dc_id=dc_id,
        api_id=api_id,
        test_mode=test_mode,
        auth_key=bytes(auth_key),
        date=0,
        user_id=user_id,
        is_bot=is_bot,
    )


def _flag(name: str, value: int) -> bool:
    if value not in (0, 1):
        raise SessionStringError(
            f"not a session string: the {name} flag byte is {value}, not 0 or 1 "
            "(the text may be damaged)"
        )
    return value == 1


def looks_like_session_string(text: object) -> bool:
    """Return True if ``text`` is, or nearly is, a Pyrogram-family or Telethon session string.

    For catching a session string passed where a name or a path belongs, so that it is
    refused without being echoed: a run of 300 or more base64 characters without a
    ``/`` cannot be a path (no file name is that long), and any text that decodes is one.
    """
    if not isinstance(text, str) or len(text) > MAX_LENGTH:
        return False
    cleaned = text.strip().strip(_QUOTES).strip()
    if _BASE64_RUN.fullmatch(cleaned):
        return True
    try:
        _decode_bytes(cleaned)
    except SessionStringError:
        return False
    return True


def looks_like_telethon_string(text: str) -> bool:
    """Return True if ``text`` has the shape of a Telethon ``StringSession`` string."""
    cleaned = text.strip().strip(_QUOTES).strip()
    return cleaned[:1] == "1" and _looks_like_telethon(cleaned[1:])


def _decode_bytes(text: str) -> tuple[SessionStringFormat, bytes]:
    if not isinstance(text, str):
        raise SessionStringError(f"a session string must be str, not {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise SessionStringError(
            f"not a session string: {len(text)} characters long (a session string has 362)"
        )
    cleaned = text.strip().strip(_QUOTES).strip()
    if not cleaned:
        raise SessionStringError("the session string is empty")
    bad = _NOT_BASE64.search(cleaned)
    if bad:
        raise SessionStringError(
            f"not a session string: character {bad.group()!r} at position {bad.start()} "
            "is not base64"
        )
    if cleaned[0] == "1" and _looks_like_telethon(cleaned[1:]):
        raise SessionStringError(
            "this looks like a Telethon session string; import it with "
            "pyrogram_storage.tools.telethon instead"
        )
    body = cleaned.rstrip("=").replace("+", "-").replace("/", "_")
    if "=" in body:
        raise SessionStringError("not a session string: '=' padding in the middle of the text")
    if len(body) % 4 == 1:
        raise SessionStringError(
            f"not a session string: {len(body)} base64 characters cannot encode whole bytes "
            "(the text is truncated or has extra characters)"
        )
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError) as exc:
        raise SessionStringError(f"not a session string: {exc}") from exc
    fmt = _BY_SIZE.get(len(raw))
    if fmt is None:
        sizes = ", ".join(str(size) for size in sorted(_BY_SIZE))
        raise SessionStringError(
            f"not a session string: it decodes to {len(raw)} bytes, expected one of {sizes} "
            "(truncated, or from another library?)"
        )
    return fmt, raw


def _looks_like_telethon(body: str) -> bool:
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        return False
    return len(raw) in (263, 275)
