"""Sessions that can only be read: a session string (``string:``) and a Telethon session
(``telethon:``), as storages the registry builds like any other.

``from_url("string:" + text)`` and ``from_url("telethon:" + path_or_string)`` return a
read-only :class:`~pyrogram_storage.Storage`: :func:`~pyrogram_storage.copy_session`
and the command line read them as they read a file or a server. Nothing is read before
``open()``; every write raises :class:`~pyrogram_storage.ReadOnlyError`.
"""

from __future__ import annotations

import bisect
import os
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from .._pending import Changes
from ..base import Storage
from ..errors import InvalidValueError, ReadOnlyError, StorageError
from ..session_string import decode_session_string, looks_like_telethon_string
from ..types import Peer, SessionData, UpdateState
from ..validation import normalize_phone, normalize_username
from .telethon import ImportResult, decode_telethon_string, read_telethon_file

__all__ = ["SessionSource", "StringSource", "TelethonSource"]


class SessionSource(Storage):
    """A read-only session held in memory once :meth:`open` has read it from its source.

    :attr:`missing` lists the fields the source did not record (after ``open()``).
    """

    persistent = False
    scheme: ClassVar[str] = ""

    def __init__(self, name: str, *, read_only: bool = True, **options: Any) -> None:
        if read_only is not True:
            raise InvalidValueError(f"{self.scheme}: locations can only be read")
        super().__init__(name, read_only=True, **options)
        self.missing: tuple[str, ...] = ()
        self._peers: dict[int, Peer] = {}
        self._ids: list[int] = []
        self._usernames: dict[str, list[int]] = {}
        self._phones: dict[str, list[int]] = {}
        self._states: dict[int, UpdateState] = {}

    async def _load(self) -> ImportResult:
        """Read the source (raising our errors for what cannot be read)."""
        raise NotImplementedError

    async def _open(self) -> SessionData:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # what is missing is reported by .missing
            result = await self._load()
        self.missing = result.missing
        now = int(time.time())  # what upsert_peers() stamps a peer written without a date
        for peer in result.peers:
            usernames = tuple(normalize_username(name) for name in peer.usernames or ())
            phone = None if peer.phone_number is None else normalize_phone(peer.phone_number)
            self._peers[peer.id] = Peer(
                peer.id, peer.access_hash, peer.type, usernames, phone, peer.last_update_on or now
            )
        self._ids = sorted(self._peers)
        for peer in self._peers.values():
            for name in peer.usernames or ():
                self._usernames.setdefault(name, []).append(peer.id)
            if peer.phone_number:
                self._phones.setdefault(peer.phone_number, []).append(peer.id)
        self._states = {state.id: state for state in result.update_states}
        return result.session

    async def _close(self) -> None:
        self._peers, self._ids, self._usernames, self._phones, self._states = {}, [], {}, {}, {}

    async def _delete(self) -> None:
        raise ReadOnlyError(f"{self!r} is read from its source and cannot be deleted")

    async def _apply(self, changes: Changes) -> None:
        raise ReadOnlyError(f"{self!r} can only be read")

    async def _find_peer(self, peer_id: int, usernames: bool) -> Peer | None:
        return self._peers.get(peer_id)

    def _newest(self, ids: list[int] | None) -> Peer | None:
        if not ids:
            return None
        return max((self._peers[i] for i in ids), key=lambda peer: peer.last_update_on or 0)

    async def _find_by_username(self, username: str, usernames: bool) -> Peer | None:
        return self._newest(self._usernames.get(username))

    async def _find_by_phone(self, phone: str, usernames: bool) -> Peer | None:
        return self._newest(self._phones.get(phone))

    async def _read_peers(self, after: int | None, limit: int) -> list[Peer]:
        start = 0 if after is None else bisect.bisect_right(self._ids, after)
        return [self._peers[i] for i in self._ids[start : start + limit]]

    async def _read_states(self, ids: Sequence[int] | None) -> list[UpdateState]:
        if ids is None:
            return list(self._states.values())
        return [self._states[i] for i in ids if i in self._states]


class StringSource(SessionSource):
    """A Pyrogram-family session string, read as a session (``string:STRING``).

    :raises SessionStringError: the string cannot be decoded (said without repeating it).
    """

    scheme = "string"

    def __init__(self, session_string: str, *, name: str = "string", **options: Any) -> None:
        decoded = decode_session_string(session_string)
        super().__init__(name, **options)
        self._decoded = decoded

    def __repr__(self) -> str:
        return "StringSource()"  # never the string: it is the account

    @classmethod
    def from_location(cls, location: str, **options: Any) -> StringSource:
        """Build the source of ``string:STRING``.

        :raises InvalidValueError: a Telethon string (it belongs in ``telethon:``).
        """
        body = location.partition(":")[2]
        if looks_like_telethon_string(body):
            raise InvalidValueError(
                "this is a Telethon session string: write it as telethon:STRING, not string:STRING"
            )
        return cls(body, **options)

    async def _load(self) -> ImportResult:
        return ImportResult(self._decoded, (), (), self._decoded.missing)


class TelethonSource(SessionSource):
    """A Telethon ``.session`` file or ``StringSession`` string (``telethon:PATH|STRING``).

    :param source: a path to an existing file (read-only, never changed), else a string.
    :param user_id: the account's user id, if the source does not record it.
    :param is_bot: whether the account is a bot (Telethon never records it).
    :param api_id: the api id the session was created with (never recorded).
    """

    scheme = "telethon"

    def __init__(
        self,
        source: str | os.PathLike[str],
        *,
        name: str = "telethon",
        user_id: int | None = None,
        is_bot: bool | None = None,
        api_id: int | None = None,
        **options: Any,
    ) -> None:
        super().__init__(name, **options)
        text = os.fspath(source)
        self.path = Path(text).expanduser() if _is_file(text) else None
        self._string = None if self.path is not None else text
        self._fills: dict[str, Any] = {"user_id": user_id, "is_bot": is_bot, "api_id": api_id}
        if self._string is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # what is missing is reported by .missing
                decode_telethon_string(self._string, **self._fills)  # refuse a bad one now

    def __repr__(self) -> str:
        where = "a Telethon session string" if self.path is None else str(self.path)
        return f"TelethonSource({where!r})"

    @classmethod
    def from_location(cls, location: str, **options: Any) -> TelethonSource:
        """Build the source of ``telethon:PATH`` or ``telethon:STRING``."""
        return cls(location.partition(":")[2], **options)

    async def _load(self) -> ImportResult:
        try:
            if self.path is not None:
                return await read_telethon_file(self.path, **self._fills)
            assert self._string is not None
            return decode_telethon_string(self._string, **self._fills)
        except StorageError:
            raise
        except ValueError as exc:  # an option contradicts what the session records
            raise InvalidValueError(str(exc)) from None


def _is_file(text: str) -> bool:
    # os.path answers False where Path.is_file raises (names too long for a path).
    return os.path.isfile(os.path.expanduser(text))
