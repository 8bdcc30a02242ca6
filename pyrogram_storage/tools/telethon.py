"""Read Telethon sessions (strings and ``.session`` files) as data; write Telethon strings.

Telethon is not needed: its formats are read directly.

- A Telethon ``StringSession`` is ``"1"`` followed by the urlsafe base64 of
  ``struct ">B4sH256s"`` (IPv4) or ``">B16sH256s"`` (IPv6): data center id, server
  address, port and auth key. It carries no user id, no bot flag and no api id.
- A Telethon ``.session`` file is SQLite: ``sessions`` (dc_id, server_address, port,
  auth_key, …), ``entities`` (id, hash, username, phone, name, date), ``update_state``
  (id, pts, qts, date, seq) and ``version``. Entity ids are "marked" exactly like ours
  (users positive, basic groups negative, channels ``-100…``); Telethon keeps the
  account's own user id in a pseudo entity with id 0, so files carry the user id, but
  never the bot flag or the api id.

What Telethon does not record can be passed as options (``user_id``, ``is_bot``,
``api_id``). Whatever is still unknown is listed in :attr:`ImportResult.missing` and
reported with an :class:`IncompleteSessionWarning`: a Pyrogram-family client given
such a session either cannot export a session string (no api id) or starts a new
login (no user id or bot flag).

Peer types are chosen from the id: ``user`` for positive ids (Telethon does not say
which users are bots), ``group`` for basic groups and ``channel`` for ``-100…`` ids
(broadcast or supergroup is not recorded). The clients build the same ``InputPeer``
from either choice and correct the type the next time they see the peer.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import sqlite3
import struct
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._worker import Lane
from ..base import Storage
from ..errors import (
    CorruptSessionError,
    InvalidValueError,
    SessionNotFoundError,
    SessionStringError,
    UnknownSchemaError,
)
from ..session_string import MAX_LENGTH
from ..sqlite import MemoryStorage
from ..types import (
    CHANNEL_ID_OFFSET,
    Peer,
    PeerType,
    SessionData,
    UpdateState,
)
from ..types import dc_address as _dc_address
from .copy import CopyResult, ProgressCallback, copy_session

__all__ = [
    "ImportResult",
    "IncompleteSessionWarning",
    "decode_telethon_string",
    "encode_telethon_string",
    "import_telethon",
    "is_telethon_file",
    "read_telethon_file",
]

STRING_VERSION = "1"
_FORMATS = {4: ">B4sH256s", 16: ">B16sH256s"}
_SIZES = {struct.calcsize(fmt): ip_len for ip_len, fmt in _FORMATS.items()}
UNKNOWN_FIELDS = ("auth_key", "user_id", "is_bot", "api_id")
"""Fields an import may leave unknown, in the order they are reported."""


class IncompleteSessionWarning(UserWarning):
    """An imported session lacks fields the Pyrogram-family clients need."""


@dataclass(frozen=True)
class ImportResult:
    """A Telethon session turned into ours.

    :param session: the authorization; fields Telethon does not carry are None
        unless given as options.
    :param peers: the cached entities as peers.
    :param update_states: the update states (channel states under ``-100…`` ids).
    :param missing: the names of the fields that are still unknown, among
        ``auth_key``, ``user_id``, ``is_bot`` and ``api_id``; empty when complete.
    """

    session: SessionData
    peers: tuple[Peer, ...] = ()
    update_states: tuple[UpdateState, ...] = ()
    missing: tuple[str, ...] = field(default=())

    @property
    def complete(self) -> bool:
        """True when every field the clients need is known."""
        return not self.missing

    async def to_memory(self, name: str = "telethon") -> MemoryStorage:
        """Return an open :class:`MemoryStorage` holding this session."""
        storage = MemoryStorage(name)
        await storage.open()
        await storage.update_session(**self.session.fields())
        await storage.upsert_peers(self.peers)
        await storage.set_update_states(self.update_states, merge=False)
        return storage

    async def write_to(
        self,
        target: Storage,
        *,
        overwrite: bool = False,
        batch_size: int = 1000,
        progress: ProgressCallback | None = None,
    ) -> CopyResult:
        """Store this session in ``target``, as :func:`~pyrogram_storage.copy_session` does.

        :raises TargetNotEmptyError: the target holds data and ``overwrite`` is false.
        """
        memory = await self.to_memory()
        try:
            return await copy_session(
                memory, target, overwrite=overwrite, batch_size=batch_size, progress=progress
            )
        finally:
            await memory.delete()


def decode_telethon_string(
    text: str,
    *,
    user_id: int | None = None,
    is_bot: bool | None = None,
    api_id: int | None = None,
    test_mode: bool | None = None,
) -> ImportResult:
    """Decode a Telethon ``StringSession`` string.

    :param user_id: the account's user id (Telethon strings do not carry it).
    :param is_bot: whether the account is a bot (not carried either).
    :param api_id: the api id the session was created with (not carried either).
    :param test_mode: override the test-server guess made from the server address.
    :raises SessionStringError: the text is not a Telethon session string.
    """
    if not isinstance(text, str):
        raise SessionStringError(
            f"a Telethon session string must be str, not {type(text).__name__}"
        )
    if len(text) > MAX_LENGTH:
        raise SessionStringError(
            f"not a Telethon session string: {len(text)} characters long (they have 353 or 369)"
        )
    cleaned = text.strip().strip("\"'`").strip()
    if not cleaned:
        raise SessionStringError("the Telethon session string is empty")
    if cleaned[0] != STRING_VERSION:
        raise SessionStringError(
            f"not a Telethon session string: it starts with {cleaned[0]!r}, "
            f"Telethon strings start with {STRING_VERSION!r}"
        )
    body = cleaned[1:].rstrip("=").replace("+", "-").replace("/", "_")
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError) as exc:
        raise SessionStringError(f"not a Telethon session string: {exc}") from exc
    ip_len = _SIZES.get(len(raw))
    if ip_len is None:
        raise SessionStringError(
            f"not a Telethon session string: it decodes to {len(raw)} bytes, expected "
            f"{' or '.join(str(size) for size in sorted(_SIZES))} (truncated?)"
        )
    dc_id, ip, port, auth_key = struct.unpack(_FORMATS[ip_len], raw)
    if dc_id == 0:
        raise SessionStringError("not a Telethon session string: data center id is 0")
    address = str(ipaddress.ip_address(ip))
    return _result(
        dc_id,
        address,
        port,
        auth_key if any(auth_key) else None,
        None,
        (),
        (),
        user_id=user_id,
        is_bot=is_bot,
        api_id=api_id,
        test_mode=test_mode,
    )


def encode_telethon_string(session: SessionData) -> str:
    """Return ``session`` as a Telethon ``StringSession`` string.

    The server address is the stored one, else Telethon's usual address of ``dc_id``.
    User id, bot flag and api id are not part of Telethon strings and are dropped.

    :raises SessionStringError: no auth key, or no known address for the data center.
    """
    if not session.auth_key or len(session.auth_key) != 256:
        raise SessionStringError("cannot export a Telethon string: the session has no auth key")
    address = session.address()
    if address is None:
        raise SessionStringError(
            f"cannot export a Telethon string: no address known for data center {session.dc_id}"
        )
    try:
        ip = ipaddress.ip_address(address[0]).packed
    except ValueError as exc:
        raise SessionStringError(
            f"cannot export a Telethon string: {address[0]!r} is not an IP address"
        ) from exc
    packed = struct.pack(_FORMATS[len(ip)], session.dc_id, ip, address[1], session.auth_key)
    return STRING_VERSION + base64.urlsafe_b64encode(packed).decode("ascii")


async def read_telethon_file(
    path: str | os.PathLike[str],
    *,
    user_id: int | None = None,
    is_bot: bool | None = None,
    api_id: int | None = None,
    test_mode: bool | None = None,
) -> ImportResult:
    """Read a Telethon ``.session`` file (read-only; the file is not changed).

    :param user_id: the account's user id, if the file does not record it.
    :param is_bot: whether the account is a bot (Telethon never records it).
    :param api_id: the api id the session was created with (never recorded).
    :param test_mode: override the test-server guess made from the server address.
    :raises SessionNotFoundError: there is no such file.
    :raises UnknownSchemaError: the file is SQLite but not a Telethon session.
    :raises CorruptSessionError: the file is not a readable SQLite database.
    :raises ValueError: ``user_id`` differs from the user id the file records.
    """
    file = Path(path)
    if not file.is_file():
        raise SessionNotFoundError(f"no such Telethon session file: {file}")
    uri = file.resolve().as_uri() + "?mode=ro"

    def read() -> tuple[tuple[Any, ...] | None, list[Any], list[Any]]:
        db = sqlite3.connect(uri, uri=True, check_same_thread=False)
        try:
            tables = _tables(db)
            if not is_telethon_file(tables):
                raise UnknownSchemaError(
                    f"{file} is not a Telethon session file: it has tables {sorted(tables)}"
                )
            row = _first_row(db, "sessions", ("dc_id", "server_address", "port", "auth_key"))
            entity_columns = ("id", "hash", "username", "phone", "date")
            entities = _rows(db, "entities", entity_columns)
            states = (
                _rows(db, "update_state", ("id", "pts", "qts", "date", "seq"))
                if "update_state" in tables
                else []
            )
            return row, entities, states
        finally:
            db.close()

    try:
        row, entities, states = await Lane().run(read)  # off the event loop
    except sqlite3.DatabaseError as exc:
        raise CorruptSessionError(
            f"{file} is not a readable SQLite database ({exc}); the file was left untouched"
        ) from exc
    if row is None:
        raise UnknownSchemaError(f"{file} is a Telethon session file with no session in it")
    dc_id, address, port, auth_key = row
    peers: list[Peer] = []
    own_id: int | None = None
    for peer_id, access_hash, username, phone, stamp in entities:
        if peer_id == 0:
            own_id = access_hash
            continue
        peers.append(
            Peer(
                int(peer_id),
                int(access_hash or 0),
                _peer_type(int(peer_id)),
                (str(username),) if username else (),
                None if phone is None else str(phone),
                None if stamp is None else int(stamp),
            )
        )
    update_states = [
        UpdateState(_state_id(int(state_id)), pts, qts, None if date is None else int(date), seq)
        for state_id, pts, qts, date, seq in states
    ]
    return _result(
        int(dc_id),
        address,
        port,
        bytes(auth_key) if auth_key else None,
        own_id,
        peers,
        update_states,
        user_id=user_id,
        is_bot=is_bot,
        api_id=api_id,
        test_mode=test_mode,
    )


async def import_telethon(
    source: str | os.PathLike[str],
    target: Storage,
    *,
    overwrite: bool = False,
    user_id: int | None = None,
    is_bot: bool | None = None,
    api_id: int | None = None,
    test_mode: bool | None = None,
    batch_size: int = 1000,
    progress: ProgressCallback | None = None,
) -> ImportResult:
    """Import a Telethon session string or ``.session`` file into ``target``.

    ``source`` is read as a file when it is a path object or names an existing
    file, else as a string. The target is opened and closed as by
    :func:`~pyrogram_storage.copy_session`.

    :returns: what was imported; check :attr:`ImportResult.missing`.
    :raises TargetNotEmptyError: the target holds data and ``overwrite`` is false.
    :raises SessionStringError: ``source`` is neither a file nor a Telethon string.
    """
    options: dict[str, Any] = {
        "user_id": user_id,
        "is_bot": is_bot,
        "api_id": api_id,
        "test_mode": test_mode,
    }
    if isinstance(source, os.PathLike) or os.path.isfile(source):
        result = await read_telethon_file(source, **options)
    else:
        try:
            result = decode_telethon_string(source, **options)
        except SessionStringError as exc:
            raise SessionStringError(
                f"{exc}; and no file named {str(source)[:40]!r} exists either"
            ) from exc
    await result.write_to(target, overwrite=overwrite, batch_size=batch_size, progress=progress)
    return result


# -- helpers ----------------------------------------------------------------------------


def _result(
    dc_id: int,
    address: str | None,
    port: int | None,
    auth_key: bytes | None,
    own_id: int | None,
    peers: Sequence[Peer],
    states: Sequence[UpdateState],
    *,
    user_id: int | None,
    is_bot: bool | None,
    api_id: int | None,
    test_mode: bool | None,
) -> ImportResult:
    if user_id is not None and own_id is not None and user_id != own_id:
        raise InvalidValueError(
            f"user_id={user_id} was given, but the Telethon session records user id {own_id}"
        )
    if test_mode is None:
        test = _dc_address(dc_id, True)
        test_mode = address is not None and test is not None and address == test[0]
    if address is not None and _is_ipv6(address):
        # The Pyrogram family connects over IPv4 unless told otherwise: keep Telegram's
        # well-known IPv4 address of the same data center instead.
        known = _dc_address(dc_id, test_mode)
        address, port = known if known is not None else (None, None)
    session = SessionData(
        dc_id=dc_id,
        api_id=api_id,
        test_mode=test_mode,
        auth_key=auth_key,
        date=0,
        user_id=user_id if user_id is not None else own_id,
        is_bot=is_bot,
        server_address=address,
        port=None if port is None else int(port),
    )
    missing = tuple(name for name in UNKNOWN_FIELDS if getattr(session, name) is None)
    if missing:
        warnings.warn(
            "the Telethon session does not record "
            + ", ".join(missing)
            + "; pass them as options (user_id=, is_bot=, api_id=) or the clients "
            "will not be able to use the imported session fully",
            IncompleteSessionWarning,
            stacklevel=3,
        )
    return ImportResult(session, tuple(peers), tuple(states), missing)


def is_telethon_file(tables: set[str]) -> bool:
    """Whether a SQLite file with these tables is a Telethon session (not a Pyrogram one)."""
    return {"sessions", "entities"} <= tables and "peers" not in tables


def _is_ipv6(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).version == 6
    except ValueError:
        return False


def _peer_type(peer_id: int) -> PeerType:
    if peer_id > 0:
        return PeerType.USER
    if peer_id <= CHANNEL_ID_OFFSET:
        return PeerType.CHANNEL
    return PeerType.GROUP


def _state_id(telethon_id: int) -> int:
    # Telethon keys channel states by the bare channel id; ours by the -100… id.
    return 0 if telethon_id == 0 else CHANNEL_ID_OFFSET - abs(telethon_id)


def _tables(db: sqlite3.Connection) -> set[str]:
    return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in db.execute(f"PRAGMA table_info({table})")}


def _select(db: sqlite3.Connection, table: str, wanted: Sequence[str]) -> str:
    """Select ``wanted`` columns, NULL for those an older Telethon file lacks."""
    present = _columns(db, table)
    for required in wanted[:2]:
        if required not in present:
            raise UnknownSchemaError(
                f"not a Telethon session file: table {table} has no {required} column"
            )
    return ", ".join(name if name in present else "NULL" for name in wanted)


def _first_row(db: sqlite3.Connection, table: str, wanted: Sequence[str]) -> tuple[Any, ...] | None:
    columns = _select(db, table, wanted)
    rows = db.execute(f"SELECT {columns} FROM {table} LIMIT 1").fetchall()
    return tuple(rows[0]) if rows else None


def _rows(db: sqlite3.Connection, table: str, wanted: Sequence[str]) -> list[Any]:
    columns = _select(db, table, wanted)
    return db.execute(f"SELECT {columns} FROM {table} ORDER BY {wanted[0]}").fetchall()
