"""The storage contract every backend meets."""

from __future__ import annotations

import abc
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from types import TracebackType
from typing import Any

from .errors import PeerNotFound
from .session_string import decode_session_string, encode_session_string
from .types import SESSION_FIELDS, Peer, PeerType, SessionData, UpdateState

__all__ = ["USERNAME_TTL", "Storage", "normalize_phone", "normalize_username"]

USERNAME_TTL = 8 * 60 * 60
"""Seconds after its peer's last write that a username stops resolving (the clients' rule)."""

_PHONE_NOISE = str.maketrans("", "", "+ -()\t\n")


def normalize_username(username: str) -> str:
    """Return the form usernames are stored and looked up in: lowercased, no leading ``@``."""
    return username.strip().lstrip("@").lower()


def normalize_phone(phone_number: str) -> str:
    """Return the form phone numbers are stored and looked up in: no ``+``, spaces or dashes."""
    return phone_number.translate(_PHONE_NOISE)


class Storage(abc.ABC):
    """A session store: authorization data, the peer cache and the update state.

    Backends implement the abstract coroutines; everything else (session strings,
    the async context manager, counting) is built on them here. A storage is
    constructed without I/O and without an event loop; :meth:`open` does the work.
    To hand a storage to a client, wrap it with :func:`pyrogram_storage.for_client`.

    :param name: the session name (a file name, a database name).
    :param username_ttl: seconds a username stays resolvable after its peer was last
        written; ``None`` keeps usernames forever.
    :param session_string: a session string to load into the storage on the first
        :meth:`open`, overwriting the stored authorization.
    """

    def __init__(
        self,
        name: str,
        *,
        username_ttl: float | None = USERNAME_TTL,
        session_string: str | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError("a session name must be a non-empty string")
        self.name = name
        self.username_ttl = username_ttl
        self._pending_session: SessionData | None = (
            decode_session_string(session_string) if session_string is not None else None
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    # -- lifecycle ---------------------------------------------------------------

    @abc.abstractmethod
    async def open(self) -> None:
        """Open the store, creating or migrating it as needed.

        Clients call it from ``start()``, and again on the same object after
        ``close()`` when they restart. Opening an open storage does nothing.

        :raises MigrationError: the stored schema is newer than this library, or foreign.
        :raises BackendError: the database cannot be reached.
        """

    @abc.abstractmethod
    async def save(self) -> None:
        """Set ``date`` to now and make every write so far durable.

        Clients call it from ``stop()`` and after recovering update gaps.
        """

    async def close(self) -> None:  # noqa: B027 - a no-op default is the contract
        """Release connections. Idempotent; the storage can be opened again."""

    @abc.abstractmethod
    async def delete(self) -> None:
        """Remove the session for good. Works on a closed storage (clients call it after close)."""

    async def health(self) -> bool:
        """Return True when the store answers a trivial query."""
        await self.get_session()
        return True

    # -- authorization -----------------------------------------------------------

    @abc.abstractmethod
    async def get_session(self) -> SessionData:
        """Return the stored authorization fields.

        :raises StorageClosedError: the storage is not open.
        """

    @abc.abstractmethod
    async def update_session(self, **changes: Any) -> None:
        """Store the given fields of :class:`SessionData` (``None`` is a value, not "skip").

        :raises TypeError: a name is not a session field.
        """

    # -- peer cache ---------------------------------------------------------------

    @abc.abstractmethod
    async def upsert_peers(self, peers: Iterable[Peer]) -> None:
        """Insert or replace many peers in one transaction.

        A peer whose ``usernames`` is ``None`` keeps the usernames already stored.
        Clients call it (through their ``update_peers``) on nearly every update.
        """

    @abc.abstractmethod
    async def set_usernames(self, usernames: Iterable[tuple[int, Sequence[str]]]) -> None:
        """Replace the usernames of each given peer id, in one transaction."""

    @abc.abstractmethod
    async def delete_peers(self, peer_ids: Iterable[int]) -> None:
        """Forget these peers and their usernames; unknown ids are ignored."""

    @abc.abstractmethod
    async def peer_by_id(self, peer_id: int) -> Peer:
        """Return the peer with this id.

        :raises PeerNotFound: no such peer.
        """

    @abc.abstractmethod
    async def peer_by_username(self, username: str) -> Peer:
        """Return the peer holding this username (case-insensitive, ``@`` optional).

        :raises PeerNotFound: no such username, or its peer was last written more
            than ``username_ttl`` seconds ago.
        """

    @abc.abstractmethod
    async def peer_by_phone(self, phone_number: str) -> Peer:
        """Return the user with this phone number (``+``, spaces and dashes ignored).

        :raises PeerNotFound: no such phone number.
        """

    @abc.abstractmethod
    def iter_peers(self, batch_size: int = 1000) -> AsyncIterator[list[Peer]]:
        """Yield every cached peer, with its usernames, in batches ordered by id."""

    async def count_peers(self) -> dict[PeerType, int]:
        """Return how many peers of each type are cached."""
        counts: dict[PeerType, int] = {}
        async for batch in self.iter_peers():
            for peer in batch:
                counts[peer.type] = counts.get(peer.type, 0) + 1
        return counts

    # -- update state ---------------------------------------------------------------

    @abc.abstractmethod
    async def get_update_states(self, ids: Iterable[int] | None = None) -> list[UpdateState]:
        """Return the stored update states (all, or those of ``ids``), oldest ``date`` first."""

    @abc.abstractmethod
    async def set_update_states(self, states: Iterable[UpdateState], *, merge: bool = True) -> None:
        """Upsert update states. With ``merge``, a ``None`` field keeps the stored value."""

    @abc.abstractmethod
    async def delete_update_states(self, ids: Iterable[int]) -> None:
        """Delete the update states of ``ids``; unknown ids are ignored."""

    # -- built on the primitives ------------------------------------------------------

    async def export_session_string(self) -> str:
        """Return the session as the 362-character string every client imports.

        :raises SessionStringError: the session has no auth key, user or api id yet.
        """
        return encode_session_string(await self.get_session())

    async def import_session_string(self, session_string: str) -> None:
        """Replace the stored authorization with the one in ``session_string``.

        :raises SessionStringError: the string cannot be decoded.
        """
        await self._store_session(decode_session_string(session_string))

    async def _store_session(self, session: SessionData) -> None:
        await self.update_session(**{name: getattr(session, name) for name in SESSION_FIELDS})

    async def _apply_pending_session(self) -> None:
        """Store the constructor's session string; backends call this at the end of open()."""
        if self._pending_session is not None:
            await self._store_session(self._pending_session)

    def _is_fresh(self, peer: Peer) -> bool:
        if self.username_ttl is None or peer.last_update_on is None:
            return True
        return time.time() - peer.last_update_on <= self.username_ttl

    async def __aenter__(self) -> Storage:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None:
                await self.save()
        finally:
            await self.close()


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
