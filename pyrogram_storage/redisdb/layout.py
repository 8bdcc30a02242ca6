"""The keys of one session in Redis and how values are written in them.

Every key of a session starts with the hash tag ``{<prefix>:<name>}``, so that on a
Redis Cluster a whole session lives in one slot (scripts and multi-key commands
work there) and sessions spread over the nodes:

==================  ======  ===========================================================
key suffix          type    content
==================  ======  ===========================================================
``:schema``         hash    ``version`` (of this layout), ``writer`` (``pyrogram-storage``)
``:session``        hash    the session fields; an unset field is absent; ``auth_key``
                            raw bytes, ``test_mode``/``is_bot`` ``0``/``1``
``:peers``          hash    peer id (decimal) to ``[access_hash, type, phone, last_update_on]``
                            (JSON; ``""``: no phone)
``:names``          hash    peer id to its usernames, a JSON array (primary first); only
                            peers that have usernames
``:usernames``      hash    username to the ids of the peers holding it, space-separated
``:phones``         hash    phone number to the ids of the peers holding it
``:ids``            zset    every peer id, as ``<16 hex digits of id + 2**63>:<id>`` (all
                            scores 0: ordered by ``ZRANGEBYLEX``, exact for 64-bit ids)
``:types``          hash    peer type to the number of peers of that type
``:states``         hash    update state id to ``pts,qts,date,seq`` (empty: unset)
==================  ======  ===========================================================

Only the Lua scripts of :mod:`.scripts` write the index keys, in the same script as
the peers they index, so an index never says what the peers do not.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._pending import Changes
from ..errors import CorruptSessionError
from ..types import DEFAULT_DC_ID, SESSION_FIELDS, Peer, PeerType, SessionData, UpdateState

__all__ = [
    "KEY_NAMES",
    "WRITER",
    "Keys",
    "apply_args",
    "belongs",
    "damaged",
    "decode_peer",
    "decode_session",
    "decode_state",
    "order_member",
    "pairs",
    "state_value",
    "text",
]

WRITER = "pyrogram-storage"
"""The ``writer`` field of the schema hash."""

KEY_NAMES = (
    "schema",
    "session",
    "peers",
    "names",
    "usernames",
    "phones",
    "ids",
    "types",
    "states",
)
"""The keys of a session, by the suffix after its hash tag (migrations name them so)."""

_OFFSET = 2**63
_INTS = frozenset({"dc_id", "api_id", "date", "user_id", "port"})
_FLAGS = frozenset({"test_mode", "is_bot"})
_SEPARATORS = (",", ":")
_json = json.JSONDecoder().decode  # json.loads less its checks of the text's encoding


@dataclass(frozen=True)
class Keys:
    """The key names of one session."""

    tag: str
    schema: str
    session: str
    peers: str
    names: str
    usernames: str
    phones: str
    ids: str
    types: str
    states: str

    @classmethod
    def of(cls, prefix: str, name: str) -> Keys:
        """The keys of session ``name`` under ``prefix``."""
        tag = "{" + prefix + ":" + name + "}"
        return cls(tag, *(f"{tag}:{suffix}" for suffix in KEY_NAMES))

    def by_name(self, suffix: str) -> str:
        """The key ending in ``suffix`` (one of :data:`KEY_NAMES`)."""
        if suffix not in KEY_NAMES:
            raise KeyError(suffix)
        return str(getattr(self, suffix))

    @property
    def all(self) -> tuple[str, ...]:
        """Every key of the session, in :data:`KEY_NAMES` order."""
        return tuple(self.by_name(suffix) for suffix in KEY_NAMES)

    @property
    def pattern(self) -> str:
        """A ``SCAN MATCH`` pattern for every key of the session (glob characters escaped)."""
        escaped = "".join("\\" + char if char in "*?[]\\" else char for char in self.tag)
        return escaped + ":*"


def belongs(key: bytes | str, keys: Keys) -> bool:
    """Whether ``key`` (as ``SCAN`` returns it) is one of the session's keys."""
    name = key if isinstance(key, bytes) else key.encode()
    return name.startswith((keys.tag + ":").encode())


def order_member(peer_id: int) -> str:
    """The member of the ``ids`` sorted set for ``peer_id``: byte order is id order."""
    return f"{peer_id + _OFFSET:016x}:{peer_id}"


def state_value(state: UpdateState) -> str:
    """An update state as stored: ``pts,qts,date,seq``, an empty field for None."""
    return ",".join(
        "" if value is None else str(value)
        for value in (state.pts, state.qts, state.date, state.seq)
    )


def _session_value(name: str, value: Any) -> bytes | str:
    if name in _FLAGS:
        return "1" if value else "0"
    if isinstance(value, bytes):
        return value
    return str(value)


def apply_args(changes: Changes, version: int, writer: str = "") -> list[Any]:
    """The ``ARGV`` of the apply script for one batch (see ``scripts.APPLY``).

    ``writer`` names the writing storage in the keys that tell caches which peers
    changed (``changed:<id>:<writer>``), so that it can tell its own changes from others'.

    The peers and update states travel as one JSON document (numbers as strings: Lua's
    are doubles), decoded by the server; the session fields, which may be bytes, as
    name/value pairs after it. Encoding a thousand peers this way costs the event loop
    about a fifth of what an argument per value does.
    """
    offset = _OFFSET
    batch = {
        "d": [(str(i), f"{i + offset:016x}:{i}") for i in changes.deleted_peers],
        "p": [
            (
                str(peer.id),
                f"{peer.id + offset:016x}:{peer.id}",
                str(peer.access_hash),
                peer.type.value,
                peer.phone_number or "",
                str(peer.last_update_on),
                False if peer.usernames is None else peer.usernames,
            )
            for peer in changes.peers
        ],
        "u": [(str(peer_id), names) for peer_id, names in changes.usernames],
        "ds": [str(state_id) for state_id in changes.deleted_states],
        "s": [(str(state.id), state_value(state)) for state in changes.states],
        "m": [(str(state.id), state_value(state)) for state in changes.merged_states],
        "w": writer,
    }
    args: list[Any] = [version, json.dumps(batch, ensure_ascii=False, separators=_SEPARATORS)]
    session = changes.session
    if session is not None:
        for name in sorted(changes.session_fields):
            value = getattr(session, name)
            args += (name, b"" if value is None else _session_value(name, value))
            args.append("0" if value is None else "1")
    return args


# -- reading ---------------------------------------------------------------------------------


def text(value: bytes | str) -> str:
    """A reply as text (UTF-8 bytes are decoded)."""
    return value.decode("utf-8") if isinstance(value, bytes) else value


def damaged(where: str, what: str) -> CorruptSessionError:
    """The error for data pyrogram-storage did not write; it names what, never the value."""
    return CorruptSessionError(
        f"{where} holds {what} that pyrogram-storage did not write; the stored data is "
        "damaged or was written by another program"
    )


def decode_peer(
    peer_id: int, value: bytes | str, names: bytes | str | None, with_names: bool, where: str
) -> Peer:
    """Build a peer from its ``peers`` value and its ``names`` value (None: it has none)."""
    try:
        access_hash, kind, phone, stamp = _json(
            value.decode() if isinstance(value, bytes) else value
        )
        usernames: tuple[str, ...] | None = None
        if with_names:
            usernames = () if names is None else tuple(json.loads(names))
        peer_kind = PeerType.of(kind)
    except (ValueError, TypeError, UnicodeDecodeError):
        raise damaged(where, f"a peer ({peer_id})") from None
    return Peer(peer_id, access_hash, peer_kind, usernames, phone or None, stamp)


def decode_session(fields: Mapping[Any, Any], where: str) -> SessionData:
    """Build the session from the ``session`` hash (missing fields keep their defaults)."""
    values: dict[str, Any] = {}
    for raw_name, raw in fields.items():
        name = text(raw_name)
        if name not in SESSION_FIELDS:
            continue  # a field of a later layout: not ours to judge
        try:
            if name == "auth_key":
                if not isinstance(raw, bytes):
                    raise ValueError
                values[name] = raw
            elif name in _FLAGS:
                values[name] = {"1": True, "0": False}[text(raw)]
            elif name in _INTS:
                values[name] = int(text(raw))
            else:
                values[name] = text(raw)
        except (ValueError, KeyError, UnicodeError):
            raise damaged(where, f"a session field {name!r}") from None
    values.setdefault("dc_id", DEFAULT_DC_ID)
    values.setdefault("date", 0)
    return SessionData(**values)


def decode_state(state_id: int, value: bytes | str, where: str) -> UpdateState:
    """Build an update state from its ``states`` value."""
    try:
        parts = text(value).split(",")
        if len(parts) != 4:
            raise ValueError
        pts, qts, date, seq = (int(part) if part else None for part in parts)
    except (ValueError, UnicodeError):
        raise damaged(where, f"an update state ({state_id})") from None
    return UpdateState(state_id, pts, qts, date, seq)


def pairs(flat: Sequence[Any]) -> Iterable[tuple[Any, Any]]:
    """``[a, 1, b, 2]`` as ``(a, 1), (b, 2)`` (a Lua reply or an ``HGETALL`` in RESP2)."""
    return zip(flat[::2], flat[1::2], strict=True)
