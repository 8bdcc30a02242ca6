"""Argument validation: the checks and normal forms the contract applies to everything
going in and coming out.

Backends never call these: :class:`~pyrogram_storage.Storage` does, once, in its
public methods. What goes in is checked and brought to one form (usernames
lowercased without ``@``, phones as digits); what a backend hands back is checked
too, so a damaged or foreign database raises :class:`CorruptSessionError` naming the
field instead of a traceback, and never quotes a stored value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from ._pending import FULL, PARTIAL, PeerChange, PeerRow, StateChange
from .errors import BackendError, CorruptSessionError, InvalidTypeError, InvalidValueError
from .types import SESSION_FIELDS, Peer, PeerType, SessionData, UpdateState

__all__ = [
    "AUTH_KEY_SIZE",
    "INT64",
    "checked_session_changes",
    "clean_usernames",
    "iterable",
    "normalize_phone",
    "normalize_username",
    "peer_change",
    "state_change",
    "stored_peer",
    "stored_session",
    "stored_state",
]

AUTH_KEY_SIZE = 256
"""Bytes in a Telegram auth key."""

INT64 = range(-(2**63), 2**63)
"""The signed 64-bit integers: ids, access hashes, dates."""

_PHONE_NOISE = str.maketrans("", "", "+ -()\t\n")
KNOWN_TYPES = {kind.value: kind for kind in PeerType}

_SESSION_TYPES: dict[str, tuple[type, ...]] = {
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
_BOOL_FIELDS = frozenset({"test_mode", "is_bot"})
_NOT_NONE = frozenset({"dc_id", "date"})


def normalize_username(username: str) -> str:
    """Return the form usernames are stored and looked up in: lowercased, no leading ``@``."""
    return username.strip().lstrip("@").lower()


def normalize_phone(phone_number: str) -> str:
    """Return the form phone numbers are stored and looked up in: no ``+``, spaces or dashes."""
    return phone_number.translate(_PHONE_NOISE)


def clean_usernames(names: Iterable[str | None], what: str = "usernames") -> tuple[str, ...]:
    """Normalise usernames, dropping empty ones and repeats; the first stays first.

    :raises InvalidTypeError: ``names`` is one string, or holds something not a string.
    """
    if type(names) is list and len(names) == 1:  # the clients' usual: one username
        name = names[0]
        if type(name) is str and name.islower() and name.isidentifier():
            return (name,)
    if isinstance(names, (str, bytes)):
        raise InvalidTypeError(f"{what} must be a sequence of str, not one {type(names).__name__}")
    try:
        iterator = iter(names)
    except TypeError:
        raise InvalidTypeError(
            f"{what} must be a sequence of str, not {type(names).__name__}"
        ) from None
    seen: dict[str, None] = {}
    for name in iterator:
        if name is None:
            continue
        if type(name) is not str and not isinstance(name, str):
            raise InvalidTypeError(f"a username must be a str, not {type(name).__name__}")
        key = name if name.islower() and name.isidentifier() else normalize_username(name)
        if key:
            seen[key] = None
    return tuple(seen)


def int64(value: Any, what: str) -> int:
    """Return ``value`` if it is an int (not a bool) that fits in 64 bits."""
    if type(value) is not int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidTypeError(f"{what} must be an int, not {type(value).__name__}")
        value = int(value)
    if not -(2**63) <= value < 2**63:
        raise InvalidValueError(f"{what} must fit in 64 bits")
    return int(value)


def optional_int64(value: Any, what: str) -> int | None:
    return None if value is None else int64(value, what)


def peer_type(value: Any) -> PeerType:
    """Return the :class:`PeerType` of ``value`` (a member or its name)."""
    if isinstance(value, PeerType):
        return value
    if isinstance(value, str) and value:
        return PeerType.of(value)
    raise InvalidTypeError(f"a peer type must be a PeerType or a non-empty str, not {value!r}")


def checked_session_changes(current: SessionData, changes: Mapping[str, Any]) -> SessionData:
    """Check the types of session fields to store and merge them into ``current``.

    ``None`` is a value (it clears the field), except for ``dc_id`` and ``date``.

    :raises InvalidTypeError: an unknown field, or a value of the wrong type.
    :raises InvalidValueError: a value out of range (an auth key that is not 256 bytes).
    """
    unknown = set(changes) - set(SESSION_FIELDS)
    if unknown:
        raise InvalidTypeError(f"not session fields: {', '.join(sorted(unknown))}")
    clean: dict[str, Any] = {}
    for name, value in changes.items():
        if value is None:
            if name in _NOT_NONE:
                raise InvalidTypeError(f"{name} cannot be None")
            clean[name] = None
            continue
        if not isinstance(value, _SESSION_TYPES[name]) or (
            isinstance(value, bool) and name not in _BOOL_FIELDS
        ):
            expected = _SESSION_TYPES[name][0].__name__
            raise InvalidTypeError(f"{name} must be {expected}, not {type(value).__name__}")
        if name == "auth_key":
            assert isinstance(value, (bytes, bytearray, memoryview))
            value = bytes(value)
            if len(value) != AUTH_KEY_SIZE:
                raise InvalidValueError(
                    f"auth_key must be {AUTH_KEY_SIZE} bytes, not {len(value)} "
                    "(a Telegram auth key is always 256 bytes)"
                )
        elif name in _BOOL_FIELDS:
            value = bool(value)
        elif name == "server_address":
            assert isinstance(value, str)
            if not value or "\x00" in value:
                raise InvalidValueError("server_address must be a host name or address")
        elif name == "port":
            assert isinstance(value, int)
            if not 0 < value < 65536:
                raise InvalidValueError("port must be between 1 and 65535")
        elif name in ("dc_id", "api_id", "user_id", "date"):
            value = int64(value, name)
        clean[name] = value
    return current.replace(**clean)


# -- what backends hand back -------------------------------------------------------------------


def _corrupt(where: object, field: str, expected: str, value: object) -> CorruptSessionError:
    # The type only, never the value: it may be a secret.
    where = where if isinstance(where, str) else repr(where)
    return CorruptSessionError(
        f"{where} holds a {field} that is {type(value).__name__}, not {expected}; "
        "the stored data is damaged or was written by another program"
    )


def stored_session(session: object, where: object) -> SessionData:
    """Check a session a backend read; fix the harmless (0/1 flags) and refuse the rest.

    :raises CorruptSessionError: a field of the wrong type, naming the field.
    """
    if not isinstance(session, SessionData):
        raise _corrupt(where, "session", "SessionData", session)
    for name in SESSION_FIELDS:
        value = getattr(session, name)
        if value is None and name not in _NOT_NONE:
            continue
        expected = _SESSION_TYPES[name]
        if name == "auth_key":
            if not isinstance(value, bytes):
                raise _corrupt(where, "auth key", "bytes", value)
            if len(value) != AUTH_KEY_SIZE:
                raise CorruptSessionError(
                    f"{where} holds an auth key of {len(value)} bytes, not {AUTH_KEY_SIZE}; "
                    "the stored data is damaged"
                )
        elif not isinstance(value, expected) or (
            isinstance(value, bool) and name not in _BOOL_FIELDS
        ):
            raise _corrupt(where, name, expected[0].__name__, value)
        elif isinstance(value, int) and not isinstance(value, bool) and not _fits(value):
            raise CorruptSessionError(f"{where} holds a {name} that does not fit in 64 bits")
    return session


def stored_peer(peer: object, where: object) -> Peer:
    """Check a peer a backend read.

    :param where: what read it (its ``repr`` names it in an error; made only then).
    :raises CorruptSessionError: a field of the wrong type, naming the field.
    """
    if type(peer) is not Peer and not isinstance(peer, Peer):
        if not isinstance(peer, PeerRow):
            raise _corrupt(where, "peer", "Peer", peer)
        peer = Peer(*peer)  # a backend that keeps the rows of Changes as they came
    for name in ("id", "access_hash"):
        value = getattr(peer, name)
        if not (type(value) is int and -(2**63) <= value < 2**63) and not _is_int64(value):
            raise _corrupt(where, f"peer {name}", "a 64-bit int", value)
    if not isinstance(peer.type, PeerType):
        raise _corrupt(where, "peer type", "PeerType", peer.type)
    names = peer.usernames
    if names is not None and (
        type(names) is not tuple or not all(type(name) is str for name in names)
    ):
        raise _corrupt(where, "peer's usernames", "a tuple of str", names)
    if peer.phone_number is not None and type(peer.phone_number) is not str:
        raise _corrupt(where, "peer's phone number", "str", peer.phone_number)
    stamp = peer.last_update_on
    if stamp is not None and type(stamp) is not int and not _is_int64(stamp):
        raise _corrupt(where, "peer's last_update_on", "an int", stamp)
    return peer


def stored_state(state: object, where: object) -> UpdateState:
    """Check an update state a backend read.

    :raises CorruptSessionError: a field of the wrong type, naming the field.
    """
    if not isinstance(state, UpdateState):
        raise _corrupt(where, "update state", "UpdateState", state)
    for name in ("id", "pts", "qts", "date", "seq"):
        value = getattr(state, name)
        if value is None and name != "id":
            continue
        if not _is_int64(value):
            raise _corrupt(where, f"update state {name}", "a 64-bit int", value)
    return state


def _fits(value: int) -> bool:
    # A comparison, not ``in range``: that scans the range for int subclasses (bson's Int64).
    return -(2**63) <= value < 2**63


def _is_int64(value: object) -> bool:
    """An int (a subclass such as bson's Int64 too, not a bool) that fits in 64 bits."""
    return isinstance(value, int) and not isinstance(value, bool) and _fits(value)


def interval(value: Any, what: str) -> float:
    """Return a non-negative, finite number of seconds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidTypeError(f"{what} must be a number of seconds, not {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise InvalidValueError(f"{what} must be a finite number of seconds, at least 0")
    return float(value)


def count(value: Any, what: str, minimum: int = 0) -> int:
    """Return a non-negative int (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidTypeError(f"{what} must be an int, not {type(value).__name__}")
    if value < minimum:
        raise InvalidValueError(f"{what} must be at least {minimum}, not {value}")
    return int(value)


# -- what callers hand in ----------------------------------------------------------------------

_MIN64, _MAX64 = -(2**63), 2**63 - 1


def iterable(values: Any, what: str) -> Iterable[Any]:
    """Return ``values`` if it is an iterable other than a str or bytes."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise InvalidTypeError(f"{what} must be an iterable, not {type(values).__name__}")
    return values  # type: ignore[no-any-return]


def int64s(values: Any, what: str, name: str) -> set[int]:
    """Return the distinct ints (see :func:`int64`) of the iterable argument ``name``."""
    return {int64(value, what) for value in iterable(values, name)}


def peer_change(peer: Any, now: int, *, tuples: bool = False) -> tuple[int, PeerChange, bool]:
    """Check a peer to store; return its id, its change tuple and whether it is stamped.

    ``peer`` is a :class:`Peer`, or with ``tuples`` a tuple of its first five fields
    (``id, access_hash, type, usernames, phone_number``, the type a :class:`PeerType`
    or its name) or of all six.

    :raises InvalidTypeError: neither, or a field of the wrong type.
    :raises InvalidValueError: an id or access hash beyond 64 bits.
    """
    if tuples and type(peer) is tuple:
        if len(peer) == 5:
            peer_id, access_hash, kind, names, phone = peer
            stamp = None
        elif len(peer) == 6:
            peer_id, access_hash, kind, names, phone, stamp = peer
        else:
            raise InvalidTypeError(
                "a peer tuple is (id, access_hash, type, usernames, phone_number[, "
                f"last_update_on]), not {len(peer)} items"
            )
    elif type(peer) is Peer or isinstance(peer, Peer):
        peer_id, access_hash, kind = peer.id, peer.access_hash, peer.type
        names, phone, stamp = peer.usernames, peer.phone_number, peer.last_update_on
    else:
        raise InvalidTypeError(f"expected Peer, got {type(peer).__name__}")
    if type(peer_id) is not int or not _MIN64 <= peer_id <= _MAX64:
        peer_id = int64(peer_id, "peer id")
    if type(access_hash) is not int or not _MIN64 <= access_hash <= _MAX64:
        access_hash = int64(access_hash or 0, "access hash")
    if type(kind) is PeerType:
        kind_name = kind._value_
    elif type(kind) is str and kind in KNOWN_TYPES:
        kind_name = kind
    else:
        kind_name = peer_type(kind).value
    if names is not None:
        names = clean_usernames(names)
    if phone is not None and not (type(phone) is str and phone.isdigit()):
        if not isinstance(phone, str):
            raise InvalidTypeError(f"a phone number must be a str, not {type(phone).__name__}")
        phone = normalize_phone(phone) or None
    explicit = stamp is not None
    stamp = int64(stamp, "last_update_on") if explicit else now
    kind_code = PARTIAL if names is None else FULL
    return peer_id, (kind_code, access_hash, kind_name, names, phone, stamp), explicit


def plain_peer(peer_id: Any, access_hash: Any, kind: Any, phone: Any) -> bool:
    """Whether a peer's fields need no checking or normalising beyond this: ids and
    hashes ints within 64 bits, a known type name, a phone of digits or None (anything
    else goes through :func:`peer_change`, which says what is wrong)."""
    return (
        type(peer_id) is int
        and _MIN64 <= peer_id <= _MAX64
        and type(access_hash) is int
        and _MIN64 <= access_hash <= _MAX64
        and type(kind) is str
        and kind in KNOWN_TYPES
        and (phone is None or (type(phone) is str and phone.isdigit()))
    )


def plain_usernames(names: tuple[Any, ...]) -> bool:
    """Whether usernames are as :func:`clean_usernames` would leave them: each a
    lowercase identifier (no ``@``), none repeated."""
    for name in names:
        if not (type(name) is str and name.islower() and name.isidentifier()):
            return False
    return len(names) < 2 or len(set(names)) == len(names)


def plain_state(state_id: Any, pts: Any, qts: Any, date: Any, seq: Any) -> bool:
    """Whether these fields need no checking beyond this: an int id and ints or None,
    all within 64 bits (anything else goes through :func:`state_change`, which says
    what is wrong)."""
    return (
        type(state_id) is int
        and _MIN64 <= state_id <= _MAX64
        and (pts is None or (type(pts) is int and _MIN64 <= pts <= _MAX64))
        and (qts is None or (type(qts) is int and _MIN64 <= qts <= _MAX64))
        and (date is None or (type(date) is int and _MIN64 <= date <= _MAX64))
        and (seq is None or (type(seq) is int and _MIN64 <= seq <= _MAX64))
    )


def state_change(state: Any, kind: int, *, tuples: bool = False) -> tuple[int, StateChange]:
    """Check an update state to store (an :class:`UpdateState`, or with ``tuples`` a
    tuple of its five fields); return its id and change tuple.

    :raises InvalidTypeError: not an :class:`UpdateState`, or a field not an int.
    :raises InvalidValueError: a field beyond 64 bits.
    """
    if tuples and type(state) is tuple and len(state) == 5:
        values = state
    elif type(state) is UpdateState or isinstance(state, UpdateState):
        values = (state.id, state.pts, state.qts, state.date, state.seq)
    else:
        raise InvalidTypeError(
            f"expected UpdateState or (id, pts, qts, date, seq), got {type(state).__name__}"
        )
    for value in values:
        if value is not None and (type(value) is not int or not _MIN64 <= value <= _MAX64):
            break
    else:
        if values[0] is not None:
            return values[0], (kind, *values[1:])
    return int64(values[0], "update state id"), (
        kind,
        optional_int64(values[1], "pts"),
        optional_int64(values[2], "qts"),
        optional_int64(values[3], "date"),
        optional_int64(values[4], "seq"),
    )


def username_pairs(usernames: Any) -> dict[int, tuple[str, ...]]:
    """Check ``(peer id, usernames)`` pairs to store; the last pair of an id wins.

    :raises InvalidTypeError: not pairs, or usernames of the wrong type.
    :raises InvalidValueError: an id beyond 64 bits.
    """
    merged: dict[int, tuple[str, ...]] = {}
    if type(usernames) is not list:
        usernames = iterable(usernames, "usernames")
    for item in usernames:
        try:
            peer_id, names = item
        except (TypeError, ValueError):
            raise InvalidTypeError(
                f"set_usernames() takes (peer id, usernames) pairs, not {type(item).__name__}"
            ) from None
        if type(peer_id) is not int or not _MIN64 <= peer_id <= _MAX64:
            peer_id = int64(peer_id, "peer id")
        merged[peer_id] = clean_usernames(names)
    return merged


def peer_counts(counts: Mapping[Any, Any], where: object) -> dict[PeerType, int]:
    """Check what a backend counted of each type; merge type names of one type.

    :raises BackendError: a count is not an int.
    """
    result: dict[PeerType, int] = {}
    for kind, number in counts.items():
        if not isinstance(number, int) or isinstance(number, bool):
            raise BackendError(f"{where!r} counted {type(number).__name__}, not int")
        key = peer_type(kind)
        result[key] = result.get(key, 0) + number
    return result
