"""Value types: what a storage takes in and hands back."""

from __future__ import annotations

import dataclasses
import enum
import warnings
from collections.abc import ItemsView, Iterator, KeysView, Mapping, ValuesView
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DEFAULT_DC_ID",
    "LOGIN_FIELDS",
    "SESSION_FIELDS",
    "InputKind",
    "Peer",
    "PeerCount",
    "PeerType",
    "SessionData",
    "UpdateState",
    "dc_address",
    "input_kind_of",
]

DEFAULT_DC_ID = 2
"""The data center a fresh session starts on (every client starts on DC 2)."""

CHANNEL_ID_OFFSET = -1_000_000_000_000
"""Channel ids are stored in the Bot API form: ``-100`` followed by the channel id."""

_PROD_DCS = {
    1: "149.154.175.53",
    2: "149.154.167.51",
    3: "149.154.175.100",
    4: "149.154.167.91",
    5: "91.108.56.130",
    203: "91.105.192.100",
}
_TEST_DCS = {1: "149.154.175.10", 2: "149.154.167.40", 3: "149.154.175.117"}


def dc_address(dc_id: int, test_mode: bool = False) -> tuple[str, int] | None:
    """Return Telegram's well-known ``(address, port)`` of a data center, or None if unknown."""
    table, port = (_TEST_DCS, 80) if test_mode else (_PROD_DCS, 443)
    address = table.get(dc_id)
    return None if address is None else (address, port)


class InputKind(enum.Enum):
    """Which kind of ``InputPeer`` a client builds for a peer."""

    USER = "user"
    CHAT = "chat"
    CHANNEL = "channel"


class PeerType(str, enum.Enum):
    """The kind of a cached peer, as the clients name it.

    Unknown names (a type a future client invents) do not raise: ``PeerType("x")``
    returns a pseudo-member named ``UNKNOWN`` whose value is ``"x"``, so it is
    stored and read back unchanged.
    """

    USER = "user"
    BOT = "bot"
    GROUP = "group"
    CHANNEL = "channel"
    SUPERGROUP = "supergroup"
    FORUM = "forum"
    DIRECT = "direct"
    """A channel's direct-messages monoforum."""
    COMMUNITY = "community"

    @classmethod
    def _missing_(cls, value: object) -> PeerType | None:
        if not isinstance(value, str) or not value:
            return None
        member = str.__new__(cls, value)
        member._name_ = "UNKNOWN"
        member._value_ = value
        return member

    @classmethod
    def of(cls, name: str) -> PeerType:
        """Return the member whose value is ``name`` (a pseudo-member if it is unknown)."""
        member = _BY_VALUE.get(name)
        return member if member is not None else cls(name)

    @property
    def is_known(self) -> bool:
        return self._name_ != "UNKNOWN"

    def __str__(self) -> str:
        return str(self.value)


_BY_VALUE: dict[str, PeerType] = {kind.value: kind for kind in PeerType}

_KIND_OF_TYPE: dict[str, InputKind] = {
    PeerType.USER: InputKind.USER,
    PeerType.BOT: InputKind.USER,
    PeerType.GROUP: InputKind.CHAT,
    PeerType.CHANNEL: InputKind.CHANNEL,
    PeerType.SUPERGROUP: InputKind.CHANNEL,
    PeerType.FORUM: InputKind.CHANNEL,
    PeerType.DIRECT: InputKind.CHANNEL,
    PeerType.COMMUNITY: InputKind.CHANNEL,
}


def input_kind_of(peer_id: int, peer_type: str) -> InputKind:
    """Which ``InputPeer`` a peer of this id and type name resolves to.

    A type name this release does not know is judged by the id.
    """
    kind = _KIND_OF_TYPE.get(peer_type)
    if kind is not None:
        return kind
    if peer_id <= CHANNEL_ID_OFFSET:
        return InputKind.CHANNEL
    return InputKind.CHAT if peer_id < 0 else InputKind.USER


@dataclass(frozen=True, slots=True)
class Peer:
    """One entry of the peer cache.

    :param id: the peer id as the clients store it: users positive, basic groups
        negative, channels in the ``-100…`` form.
    :param usernames: lowercased usernames, the primary one first. ``None`` means
        "unknown": an upsert then keeps the usernames already stored, while a tuple
        (even an empty one) replaces them.
    :param last_update_on: Unix time of the last write; ``None`` on input means now.
    """

    id: int
    access_hash: int
    type: PeerType
    usernames: tuple[str, ...] | None = None
    phone_number: str | None = None
    last_update_on: int | None = None

    @property
    def username(self) -> str | None:
        """The primary username, if any."""
        return self.usernames[0] if self.usernames else None

    def replace(self, **changes: Any) -> Peer:
        """Return a copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)

    @property
    def input_kind(self) -> InputKind:
        """Which ``InputPeer`` this peer resolves to; unknown types are judged by the id."""
        return input_kind_of(self.id, self.type)

    @property
    def bare_id(self) -> int:
        """The id Telegram uses inside ``InputPeer*``: user id, chat id or channel id."""
        kind = self.input_kind
        if kind is InputKind.CHANNEL:
            return CHANNEL_ID_OFFSET - self.id
        if kind is InputKind.CHAT:
            return -self.id
        return self.id


@dataclass(frozen=True, slots=True)
class UpdateState:
    """The update state of one sequence: 0 is the common one, a ``-100…`` id a channel's."""

    id: int
    pts: int | None = None
    qts: int | None = None
    date: int | None = None
    seq: int | None = None


SESSION_FIELDS = (
    "dc_id",
    "api_id",
    "test_mode",
    "auth_key",
    "date",
    "user_id",
    "is_bot",
    "server_address",
    "port",
)
"""The names of :class:`SessionData`'s fields, the ones ``update_session()`` takes."""


LOGIN_FIELDS = ("api_id", "test_mode", "auth_key", "user_id", "is_bot")
"""The fields a client needs to use a session without a new login (a session string's)."""


@dataclass(frozen=True, slots=True)
class SessionData:
    """The authorization part of a session. ``repr`` never shows the auth key."""

    dc_id: int = DEFAULT_DC_ID
    api_id: int | None = None
    test_mode: bool | None = None
    auth_key: bytes | None = None
    date: int = 0
    user_id: int | None = None
    is_bot: bool | None = None
    server_address: str | None = None
    port: int | None = None

    def __repr__(self) -> str:
        shown = []
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "auth_key" and value is not None:
                shown.append(f"auth_key=<{len(value)} bytes hidden>")
            else:
                shown.append(f"{field.name}={value!r}")
        return f"SessionData({', '.join(shown)})"

    __str__ = __repr__

    @property
    def is_empty(self) -> bool:
        """True when the clients would start a new login (no key or no user yet)."""
        return (
            self.test_mode is None
            or not self.auth_key
            or self.user_id is None
            or self.is_bot is None
        )

    @property
    def missing(self) -> tuple[str, ...]:
        """The :data:`LOGIN_FIELDS` that are not set."""
        return tuple(name for name in LOGIN_FIELDS if getattr(self, name) is None)

    def address(self) -> tuple[str, int] | None:
        """The stored server address and port, else the well-known one of ``dc_id``."""
        if self.server_address is not None and self.port is not None:
            return self.server_address, self.port
        return dc_address(self.dc_id, bool(self.test_mode))

    def replace(self, **changes: Any) -> SessionData:
        """Return a copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)

    def fields(self) -> dict[str, Any]:
        """Return every field by name, as ``update_session(**...)`` takes them."""
        return {name: getattr(self, name) for name in SESSION_FIELDS}


class PeerCount(int):
    """How many peers are stored (what :meth:`Storage.count_peers` returns): an ``int``.

    :attr:`by_type` holds the count of each :class:`PeerType`, as
    :meth:`Storage.count_peers_by_type` returns it. Reading it as that dict
    (``counts[PeerType.USER]``, ``.items()``, ``== {...}``), the shape ``count_peers()``
    had before 0.2, still works for one release and warns (``DeprecationWarning``).
    """

    by_type: dict[PeerType, int]
    """The count of each peer type."""

    def __new__(cls, by_type: Mapping[PeerType, int]) -> PeerCount:
        self = super().__new__(cls, sum(by_type.values()))
        self.by_type = dict(by_type)
        return self

    def _as_dict(self) -> dict[PeerType, int]:
        warnings.warn(
            "count_peers() returns the total number of peers now; for the count of each "
            "type use count_peers_by_type() (reading the result as a dict stops working "
            "in the next release)",
            DeprecationWarning,
            stacklevel=3,
        )
        return self.by_type

    def __getitem__(self, kind: PeerType) -> int:
        return self._as_dict()[kind]

    def __iter__(self) -> Iterator[PeerType]:
        return iter(self._as_dict())

    def __contains__(self, kind: object) -> bool:
        return kind in self._as_dict()

    def get(self, kind: PeerType, default: int | None = None) -> int | None:
        """Deprecated: the count of ``kind`` (``count_peers_by_type().get``)."""
        return self._as_dict().get(kind, default)

    def items(self) -> ItemsView[PeerType, int]:
        """Deprecated: ``count_peers_by_type().items()``."""
        return self._as_dict().items()

    def keys(self) -> KeysView[PeerType]:
        """Deprecated: ``count_peers_by_type().keys()``."""
        return self._as_dict().keys()

    def values(self) -> ValuesView[int]:
        """Deprecated: ``count_peers_by_type().values()``."""
        return self._as_dict().values()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return self._as_dict() == dict(other)
        return int(self) == other

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = int.__hash__

    def __repr__(self) -> str:
        return int.__repr__(self)
