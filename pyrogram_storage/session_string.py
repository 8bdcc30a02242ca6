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
from .types import SessionData

__all__ = [
    "SessionStringFormat",
    "decode_session_string",
    "detect_format",
    "encode_session_string",
]

AUTH_KEY_SIZE = 256
MAX_LENGTH = 1024
"""Longer input is refused before decoding; a session string is 362 characters."""


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
_QUOTES = "\"'`"


def encode_session_string(session: SessionData) -> str:
    """Return the 362-character session string every client imports.

    :raises SessionStringError: a field the string needs is missing or out of range.
    """
    missing = [
        name
        for name in ("api_id", "test_mode", "auth_key", "user_id", "is_bot")
        if getattr(session, name) is None
    ]
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
    accepted. Old formats yield ``api_id=None``.

    :raises SessionStringError: with what is wrong with the text.
    """
    fmt, raw = _decode_bytes(text)
    if fmt is SessionStringFormat.CURRENT:
        dc_id, api_id, test_mode, auth_key, user_id, is_bot = struct.unpack(fmt.value, raw)
    else:
        dc_id, test_mode, auth_key, user_id, is_bot = struct.unpack(fmt.value, raw)
        api_id = None
    flags = raw[5] if fmt is SessionStringFormat.CURRENT else raw[1]
    if flags not in (0, 1) or raw[-1] not in (0, 1):
        raise SessionStringError(
            "not a session string: its flag bytes are not booleans (the text may be damaged)"
        )
    if dc_id == 0:
        raise SessionStringError("not a session string: data center id is 0")
    return SessionData(
        dc_id=dc_id,
        api_id=api_id,
        test_mode=bool(test_mode),
        auth_key=bytes(auth_key),
        date=0,
        user_id=user_id,
        is_bot=bool(is_bot),
    )


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
