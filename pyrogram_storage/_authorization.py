"""The authorization one storage holds: its session fields, sealed at rest.

:class:`Authorization` keeps the session fields in memory (what
:meth:`~pyrogram_storage.Storage.get_session` answers while the storage is the only
writer), the :class:`~pyrogram_storage.crypto.Sealer` that seals the auth key before a
backend sees it, and the ``session_string=`` waiting for the first open. It stores
session fields after every pending write, before the call returns, and rekeys the
stored auth key in one write. It is handed its storage's primitives as callables, so
it imports nothing of the contract.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from .crypto import Key, Sealer
from .errors import InvalidValueError, StorageClosedError
from .session_string import decode_session_string
from .types import SessionData
from .validation import checked_session_changes, stored_session

__all__ = ["Authorization"]

Session = tuple[SessionData, frozenset[str]]


class Authorization:
    """The session fields of one storage, the sealer of its auth key, its session string.

    :param owner: the storage, named in messages.
    :param read: the backend's ``_read_session``, through the storage's error translation.
    :param store: stores every pending write, then the session it is handed, if any
        (``PendingWrites.store``).
    :param is_open: whether the storage is open.
    The other parameters are the storage's options of the same names.

    :raises InvalidValueError: ``read_only`` with ``session_string`` or ``encrypt_existing``.
    :raises SessionStringError: ``session_string`` cannot be decoded.
    """

    __slots__ = ("_is_open", "_owner", "_read", "_store", "sealer", "session", "waiting")

    def __init__(
        self,
        owner: object,
        *,
        read: Callable[[], Awaitable[SessionData | None]],
        store: Callable[[Callable[[], Session]], Awaitable[object]],
        is_open: Callable[[], bool],
        session_string: str | None,
        encryption_key: Key | None,
        fernet_key: bytes | str | None,
        encrypt_existing: bool,
        read_only: bool,
    ) -> None:
        if read_only and session_string is not None:
            raise InvalidValueError("a read-only storage cannot store a session_string")
        if read_only and encrypt_existing:
            raise InvalidValueError("a read-only storage cannot encrypt_existing")
        self.sealer = Sealer(
            encryption_key,
            fernet_key=fernet_key,
            encrypt_existing=encrypt_existing,
            read_only=read_only,
        )
        self.waiting: SessionData | None = (
            decode_session_string(session_string) if session_string is not None else None
        )
        self.session: SessionData | None = None  # in clear; None while closed
        self._owner = owner
        self._read = read
        self._store = store
        self._is_open = is_open

    async def open(self, stored: SessionData) -> None:
        """Take the session the backend read on open, its auth key opened and checked."""
        session = await self.sealer.open(stored, repr(self._owner), first=True)
        self.session = stored_session(session, self._owner)

    async def opened(self) -> None:
        """The storage is open: store the session string waiting, or the auth key that
        ``encrypt_existing`` seals (one write of it, atomic in every backend)."""
        if self.waiting is not None:
            await self.store(self.waiting.fields())
            self.waiting = None
        elif self.sealer.converting and self.session is not None:
            await self.store({"auth_key": self.session.auth_key})

    def held(self) -> bool:
        """Whether the session is held (the storage opened and is not closed yet)."""
        return self.session is not None

    def close(self) -> None:
        """Forget the session and the keys derived."""
        self.session = None
        self.sealer.close()

    async def read_again(self, session: SessionData) -> SessionData:
        """The session as another writer may have left it (``session`` when the backend
        cannot tell, or the storage closed meanwhile)."""
        fresh = await self._read()
        if fresh is not None and self.session is not None:
            fresh = await self.sealer.open(fresh, repr(self._owner), first=False)
            session = self.session = stored_session(fresh, self._owner)
        return session

    async def store(self, changes: dict[str, Any]) -> None:
        """Store session fields, after everything pending, before returning."""
        current = self.session
        if current is None:
            raise StorageClosedError(f"{self._owner!r} is closed; call open() first")
        checked_session_changes(current, changes)  # refuse bad input before waiting
        if not changes:
            return

        clear: list[SessionData] = []

        def session() -> Session:
            current = self.session
            if current is None or not self._is_open():
                raise StorageClosedError(f"{self._owner!r} was closed during the call")
            clear.append(checked_session_changes(current, changes))
            fields = frozenset(changes)
            return self.sealer.seal(clear[0], fields), fields  # primitives see no clear key

        await self._store(session)
        self.session = clear[0]

    async def rekey(
        self, encryption_key: Key | None, current: Callable[[], Awaitable[SessionData]]
    ) -> None:
        """Store the auth key of ``current()`` sealed with ``encryption_key`` (None: in
        clear), and seal with it from now on; on failure, the old key stays."""
        sealer = self.sealer.with_key(encryption_key)
        await sealer.prepare()  # a passphrase is stretched off the event loop
        session = await current()
        old, self.sealer = self.sealer, sealer
        try:
            await self.store({"auth_key": session.auth_key})
        except BaseException:
            self.sealer = old
            raise
        old.close()
