"""The adapter core shared by every client dialect: tuples and raw objects in, contract out."""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Iterable
from types import FrameType, ModuleType
from typing import Any, ClassVar

from ..base import Storage
from ..errors import InvalidTypeError, PeerNotFound, StorageClosedError, StorageError
from ..types import CHANNEL_ID_OFFSET, InputKind, Peer, UpdateState, input_kind_of

__all__ = ["ClientStorage", "ObjectUpdateStates", "TupleUpdateStates"]

log = logging.getLogger("pyrogram_storage.clients")

NOT_GIVEN: Any = object
"""What the clients pass when they read a field: the class ``object`` itself."""


def _accessor(field: str, *, derived: int | None = None) -> Callable[..., Awaitable[Any]]:
    """Build a ``field(value=object)`` coroutine: no argument reads, one argument writes.

    ``derived`` picks the item of the data center's well-known ``(address, port)``
    returned while the field itself is unset.
    """

    async def accessor(self: ClientStorage, value: Any = NOT_GIVEN) -> Any:
        if value is NOT_GIVEN:
            session = await self.storage.get_session()
            stored = getattr(session, field)
            if stored is None and derived is not None:
                address = session.address()
                return None if address is None else address[derived]
            return stored
        await self.storage.update_session(**{field: value})
        return None

    accessor.__name__ = accessor.__qualname__ = field
    accessor.__doc__ = f"Return ``{field}``, or store ``value`` (``None`` included)."
    return accessor


class ClientStorage:
    """Speak a Pyrogram-family client's storage API on top of a :class:`Storage`.

    Subclasses name the client (``client``), the package whose ``raw`` types the
    lookups build (``raw_module``) and the client's storage base class
    (``base_class``, ``"module:Class"``); :func:`pyrogram_storage.for_client`
    derives a class from both, so the client's isinstance check passes.

    :param storage: the storage that keeps the data; every call goes through its
        public contract.
    """

    client: ClassVar[str] = ""
    raw_module: ClassVar[str] = "pyrogram"
    base_class: ClassVar[str] = "pyrogram.storage:Storage"
    _raw_types: ClassVar[ModuleType | None] = None

    def __init__(self, storage: Storage) -> None:
        if not isinstance(storage, Storage):
            raise InvalidTypeError(
                f"for_client() needs a pyrogram_storage Storage, got {type(storage).__name__}"
            )
        self.storage = storage
        self.name = storage.name
        self._opened = False
        self._closed = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.storage!r})"

    # -- lifecycle ------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the storage; clients call it from ``load_session`` (and again on restart).

        A :class:`~pyrogram_storage.FileStorage` given no ``workdir`` keeps its file in
        the calling client's ``workdir`` (see :meth:`FileStorage.follow_client`).
        """
        client = self._calling_client()
        follow = getattr(self.storage, "follow_client", None)
        if client is not None and follow is not None:
            follow(client.workdir, client.name)
        await self.storage.open()
        self._opened = True
        self._closed = False

    async def save(self) -> None:
        """Make every write durable; clients call it from ``stop()``."""
        await self.storage.save()

    async def close(self) -> None:
        """Close the storage; idempotent, and the client may open it again."""
        self._closed = True
        await self.storage.close()

    async def delete(self) -> None:
        """Remove the session; clients call it from ``log_out()``, after ``close()``."""
        await self.storage.delete()

    async def export_session_string(self) -> str:
        """Return the session string the client's ``export_session_string()`` hands out."""
        return await self.storage.export_session_string()

    def _calling_client(self) -> Any | None:
        """The client whose method is calling ours: the ``self`` of a caller's frame
        whose ``storage`` is this glue and that has a ``workdir`` and a ``name``."""
        frame: FrameType | None = sys._getframe(2)  # our caller's caller (from open())
        for _ in range(4):
            if frame is None:
                return None
            caller = frame.f_locals.get("self")
            if (
                getattr(caller, "storage", None) is self
                and isinstance(getattr(caller, "name", None), str)
                and isinstance(getattr(caller, "workdir", None), (str, os.PathLike))
            ):
                return caller
            frame = frame.f_back
        return None

    def _late(self, what: str, exc: StorageError) -> None:
        """A peer or update-state write failed: drop it if it came after close(), else raise.

        A write still in flight when close() ran may fail in a backend-specific way (a
        driver refusing a closed client); it is just as late (see the package docs).
        """
        if not (self._closed or (self._opened and isinstance(exc, StorageClosedError))):
            raise exc
        log.debug("%r is closed; dropped a late %s write", self.storage, what)

    # -- session fields -------------------------------------------------------------------

    dc_id = _accessor("dc_id")
    api_id = _accessor("api_id")
    test_mode = _accessor("test_mode")
    auth_key = _accessor("auth_key")
    date = _accessor("date")
    user_id = _accessor("user_id")
    is_bot = _accessor("is_bot")
    server_address = _accessor("server_address", derived=0)
    port = _accessor("port", derived=1)

    # -- peers ----------------------------------------------------------------------------

    async def update_peers(self, peers: Iterable[Any]) -> None:
        """Store peers given as 4-tuples ``(id, hash, type, phone)`` or 5-tuples
        ``(id, hash, type, username | [usernames] | None, phone)``.

        A 4-tuple keeps the peer's stored usernames (they come in ``update_usernames``);
        a 5-tuple replaces them.
        """
        if type(peers) is list and len(peers) == 1:  # an update's sender
            item = peers[0]
            if len(item) == 4 and self.storage._put_peer(
                item[0], item[1] or 0, item[2], item[3] or None
            ):
                return
        elif type(peers) is list and peers:  # a batch: in one step each, if all are plain
            done = self.storage._put_peers(peers)
            if done == len(peers):
                return
            peers = peers[done:]
        batch = [_peer_from_tuple(item) for item in peers]  # tuples: no Peer to build
        if batch:
            try:
                await self.storage._upsert_tuples(batch)
            except StorageError as exc:
                self._late("peer", exc)

    async def update_usernames(self, usernames: Iterable[Any]) -> None:
        """Replace usernames, given as ``(id, [names])`` or as ``(id, name)`` pairs (grouped)."""
        if type(usernames) is list and len(usernames) == 1 and not self._remaps_usernames:
            # An update's one sender: (id, [names]), as the upstream clients send it.
            peer_id, names = usernames[0]
            if type(peer_id) is int and type(names) is list:
                if self.storage._put_names(peer_id, names):
                    return
                try:
                    await self.storage.set_usernames([(peer_id, names)])
                except StorageError as exc:
                    self._late("username", exc)
                return
        if type(usernames) is list and len(usernames) > 1 and not self._remaps_usernames:
            done = self.storage._put_names_of(usernames)  # in one step each, if all are plain
            if done == len(usernames):
                return
            usernames = usernames[done:]
        grouped: dict[int, list[str]] = {}
        remap = self._remaps_usernames
        try:
            for peer_id, names in usernames:
                # Electrogram's remapping reads the storage: late after close() too.
                peer_id = _peer_id_of(peer_id)
                owner = await self._username_owner(peer_id) if remap else peer_id
                if names is None or isinstance(names, str):
                    listed = grouped.setdefault(owner, [])
                    if names:
                        listed.append(names)
                else:
                    grouped[owner] = [name for name in names if name]
            if grouped:
                await self.storage.set_usernames(list(grouped.items()))
        except StorageError as exc:
            self._late("username", exc)

    _remaps_usernames: ClassVar[bool] = False
    """Whether :meth:`_username_owner` must be asked which peer a username's id is."""

    async def _username_owner(self, peer_id: int) -> int:
        """Return the stored id a client's ``update_usernames`` id refers to."""
        return peer_id

    async def get_peer_by_id(self, peer_id: Any) -> Any:
        """Return the client's ``InputPeer*`` for an id (an int or a numeric string).

        :raises PeerNotFound: (a ``KeyError``) not cached, or not an id at all.
        """
        if type(peer_id) is not int:
            try:
                peer_id = coerce_peer_id(peer_id)
            except PeerNotFound:
                raise PeerNotFound(f"ID not found: {peer_id}", peer_id) from None
        access = self.storage.cached_access(peer_id)
        if access is None:
            access = await self.storage._access_by_id(peer_id)
        access_hash, peer_type = access
        return self._input(peer_id, access_hash, input_kind_of(peer_id, peer_type))

    async def get_peer_by_username(self, username: str) -> Any:
        """Return the client's ``InputPeer*`` for a username.

        :raises PeerNotFound: unknown, or expired (``Username expired: …``).
        """
        peer_id, access_hash, kind = await self.storage._access_by_username(username)
        return self._input(peer_id, access_hash, input_kind_of(peer_id, kind))

    async def get_peer_by_phone_number(self, phone_number: str) -> Any:
        """Return the client's ``InputPeerUser`` for a phone number.

        :raises PeerNotFound: unknown phone number.
        """
        peer_id, access_hash, kind = await self.storage._access_by_phone(phone_number)
        return self._input(peer_id, access_hash, input_kind_of(peer_id, kind))

    def _input_peer(self, peer: Peer) -> Any:
        return self._input(peer.id, peer.access_hash, peer.input_kind)

    def _input(self, peer_id: int, access_hash: int, kind: InputKind) -> Any:
        types = self._raw_types or self._types()
        if kind is InputKind.USER:
            return types.InputPeerUser(user_id=peer_id, access_hash=access_hash)
        if kind is InputKind.CHAT:
            return types.InputPeerChat(chat_id=-peer_id)
        return types.InputPeerChannel(
            channel_id=CHANNEL_ID_OFFSET - peer_id, access_hash=access_hash
        )

    @classmethod
    def _types(cls) -> ModuleType:
        if cls._raw_types is None:
            # The client's own classes: its resolve_peer tests them with isinstance.
            cls._raw_types = importlib.import_module(f"{cls.raw_module}.raw.types")
        return cls._raw_types


class ObjectUpdateStates(ClientStorage):
    """Kurigram's update state: ``UpdateState`` objects, merged on write."""

    _state_class: ClassVar[type | None] = None

    async def get_update_states(self, ids: int | Iterable[int] | None = None) -> list[Any]:
        """Return states (all, one id or many), oldest ``date`` first, as the client's type."""
        wanted = [ids] if isinstance(ids, int) else ids
        state_class = self._update_state_class()
        return [
            state_class(s.id, s.pts, s.qts, s.date, s.seq)
            for s in await self.storage.get_update_states(wanted)
        ]

    async def set_update_state(self, update_state: Any) -> None:
        """Upsert one state or many; a ``None`` field keeps the stored value."""
        if hasattr(update_state, "pts"):  # one state: twice an update
            s = update_state
            if self.storage._merge_state(s.id, s.pts, s.qts, s.date, s.seq):
                return
            given = [update_state]
        else:
            given = update_state
        states = [(s.id, s.pts, s.qts, s.date, s.seq) for s in given]
        try:
            await self.storage._set_state_tuples(states)
        except StorageError as exc:
            self._late("update state", exc)

    async def delete_update_state(self, state_id: int | Iterable[int]) -> None:
        """Delete the state of one id or many."""
        ids = [state_id] if isinstance(state_id, int) else list(state_id)
        try:
            await self.storage.delete_update_states(ids)
        except StorageError as exc:
            self._late("update state", exc)

    @classmethod
    def _update_state_class(cls) -> type:
        if cls._state_class is None:
            try:
                module = importlib.import_module(f"{cls.raw_module}.storage")
                cls._state_class = module.UpdateState
            except (ImportError, AttributeError):
                cls._state_class = UpdateState
        return cls._state_class


class TupleUpdateStates(ClientStorage):
    """The one-method update state of Pyrofork, Irenogram, Pyrotgfork and Electrogram."""

    async def update_state(self, value: Any = NOT_GIVEN) -> Any:
        """No argument: every state as ``(id, pts, qts, date, seq)``, oldest first.
        An int: delete that state. A 5-sequence: store it whole (``None`` overwrites).
        """
        if value is NOT_GIVEN:
            return [
                (s.id, s.pts, s.qts, s.date, s.seq) for s in await self.storage.get_update_states()
            ]
        try:
            if isinstance(value, int) and not isinstance(value, bool):
                await self.storage.delete_update_states([value])
                return None
            fields = tuple(value)
            if len(fields) != 5:
                raise InvalidTypeError(
                    f"update_state() takes (id, pts, qts, date, seq), got {value!r}"
                )
            await self.storage._set_state_tuples([fields], merge=False)
        except StorageError as exc:
            self._late("update state", exc)
        return None

    async def remove_state(self, chat_id: Any) -> None:
        """Forget a chat's update state; anything that is not a stored id is ignored."""
        try:
            state_id = coerce_peer_id(chat_id)
            await self.storage.delete_update_states([state_id])
        except Exception as exc:  # leave_chat must not fail over a cache entry
            log.debug("remove_state(%r) ignored: %s", chat_id, exc)


def _peer_from_tuple(item: Any) -> tuple[Any, ...]:
    """Turn one ``update_peers`` tuple of any client into the contract's peer tuple."""
    if len(item) == 4:
        peer_id, access_hash, kind, phone = item
        return (_peer_id_of(peer_id), access_hash or 0, kind, None, phone or None)
    if len(item) == 5:
        peer_id, access_hash, kind, names, phone = item
        if names is None or isinstance(names, str):
            usernames: tuple[str, ...] = (names,) if names else ()
        else:
            usernames = tuple(name for name in names if name)
        return (_peer_id_of(peer_id), access_hash or 0, kind, usernames, phone or None)
    raise InvalidTypeError(
        "update_peers() takes (id, access_hash, type, phone) or "
        f"(id, access_hash, type, usernames, phone) tuples, got {item!r}"
    )


def _peer_id_of(value: Any) -> int:
    """A peer id a client hands to a write, as an int (``"123"`` too, as SQLite's
    affinity would take it).

    :raises InvalidTypeError: the value is not an integer id.
    """
    if type(value) is int:
        return value
    if isinstance(value, (str, bytes, float)) and not isinstance(value, bool):
        try:
            whole = int(value)
        except ValueError:
            pass
        else:
            if whole == value or isinstance(value, (str, bytes)):
                return whole
    elif isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    raise InvalidTypeError(f"a peer id must be an integer, not {value!r}")


def coerce_peer_id(value: object) -> int:
    """Turn what a client hands to an id lookup into an int, as SQLite's affinity would.

    :raises PeerNotFound: the value is not an integer id (a username, ``"me"``…).
    """
    if isinstance(value, bool):
        raise PeerNotFound(f"ID not found: {value!r}", value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, (str, bytes)):
        text = value.decode(errors="replace") if isinstance(value, bytes) else value
        try:
            return int(text.strip())
        except ValueError:
            pass
    raise PeerNotFound(f"ID not found: {value!r}", value)


def channel_form(peer_id: int) -> int:
    """Return the stored ``-100…`` id of a raw positive channel id."""
    return CHANNEL_ID_OFFSET - peer_id
