"""Validation and normalisation every backend applies the same way."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .base import normalize_username
from .types import Peer, PeerType, SessionData

BOOL_FIELDS = frozenset({"test_mode", "is_bot"})

FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "dc_id": (int,),
    "api_id": (int,),
    "test_mode": (bool, int),
    "auth_key": (bytes, bytearray, memoryview),
    "date": (int,),
    "user_id": (int,),
    "is_bot": (bool, int),
    "server_address": (str,),
    "port": (int,),
}


def validated(current: SessionData, changes: dict[str, Any]) -> SessionData:
    """Check types (None is always allowed except for dc_id and date) and merge."""
    clean: dict[str, Any] = {}
    for name, value in changes.items():
        if value is None:
            if name in ("dc_id", "date"):
                raise TypeError(f"{name} cannot be None")
            clean[name] = None
            continue
        if not isinstance(value, FIELD_TYPES[name]) or (
            isinstance(value, bool) and name not in BOOL_FIELDS
        ):
            expected = FIELD_TYPES[name][0].__name__
            raise TypeError(f"{name} must be {expected}, not {type(value).__name__}")
        if name == "auth_key":
            assert isinstance(value, (bytes, bytearray, memoryview))
            value = bytes(value)
        elif name in BOOL_FIELDS:
            value = bool(value)
        clean[name] = value
    return current.replace(**clean)


def checked_peer(peer: Peer) -> Peer:
    if not isinstance(peer, Peer):
        raise TypeError(f"expected Peer, got {type(peer).__name__}")
    if not -(2**63) <= peer.id < 2**63 or not -(2**63) <= (peer.access_hash or 0) < 2**63:
        raise ValueError(f"peer id and access hash must fit in 64 bits: {peer.id}")
    return peer


def clean_usernames(names: Iterable[str | None]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for name in names:
        if name:
            seen.setdefault(normalize_username(name), None)
    seen.pop("", None)
    return tuple(seen)


def peer_type(value: Any) -> PeerType:
    try:
        return PeerType(str(value))
    except ValueError:
        return PeerType("unknown")
