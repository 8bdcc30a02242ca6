"""Encrypt, decrypt and rekey a stored session, through the public contract only.

Each function takes a storage built (not opened) with the keys that open the session
as it is stored (``encryption_key=``, ``fernet_key=``), opens it under its backend's
usual lock (a session file is refused with :class:`~pyrogram_storage.SessionLocked`
while another process holds it), rewrites the auth key once with
:meth:`~pyrogram_storage.Storage.set_encryption_key`, and closes it. That one write is
atomic in every backend: after a crash the session opens with the old key or the new
one, never neither. The command line's ``encrypt``, ``decrypt`` and ``rekey`` call them.

Keys given as text (environment variables, prompts) are read by :func:`parse_key`:
``hex:`` or ``base64:`` followed by 32 bytes is a raw key, anything else a passphrase.
"""

from __future__ import annotations

import base64
import binascii
import enum
import getpass
import os
import sys
from collections.abc import Callable

from ..base import Storage
from ..crypto import KEY_SIZE, Key, check_key
from ..errors import EncryptionKeyError, InvalidValueError
from .copy import opened

__all__ = [
    "DEFAULT_FERNET_KEY_VARIABLE",
    "DEFAULT_KEY_VARIABLE",
    "DEFAULT_NEW_KEY_VARIABLE",
    "Outcome",
    "decrypt",
    "encrypt",
    "parse_key",
    "read_key",
    "rekey",
]

DEFAULT_KEY_VARIABLE = "PYROGRAM_STORAGE_KEY"
"""The environment variable the command line reads the encryption key from."""
DEFAULT_NEW_KEY_VARIABLE = "PYROGRAM_STORAGE_NEW_KEY"
"""The environment variable ``rekey`` reads the new key from."""
DEFAULT_FERNET_KEY_VARIABLE = "PYROGRAM_STORAGE_FERNET_KEY"
"""The environment variable the command line reads an ``EncryptedFernetStorage`` key from."""


class Outcome(enum.Enum):
    """What a tool did."""

    DONE = "done"
    """The auth key was rewritten in its new form."""
    NO_AUTH_KEY = "no auth key"
    """The session holds no auth key: nothing to seal or open (later writes follow the key)."""


async def encrypt(storage: Storage, key: Key) -> Outcome:
    """Seal the auth key of a session stored in clear (or as a Fernet token) with ``key``.

    :param storage: built without ``encryption_key`` (with ``fernet_key=`` for a file of
        Kurigram's ``EncryptedFernetStorage``), not open.
    :raises EncryptionKeyError: the session is encrypted already (use :func:`rekey`).
    :raises SessionLocked: another process holds the session file.
    """
    check_key(key)
    try:
        async with opened(storage):
            return await _rewrite(storage, key)
    except EncryptionKeyError as exc:
        if exc.reason != EncryptionKeyError.NO_KEY or "Fernet" in str(exc):
            raise
        raise EncryptionKeyError(
            f"{storage!r} is encrypted already; to change its key, rekey it",
            EncryptionKeyError.WRONG_KEY,
        ) from None


async def decrypt(storage: Storage) -> Outcome:
    """Store the auth key in clear again.

    :param storage: built with the ``encryption_key`` (or ``fernet_key``) that opens it.
    :raises EncryptionKeyError: no key or the wrong one, or a damaged envelope.
    """
    async with opened(storage):
        return await _rewrite(storage, None)


async def rekey(storage: Storage, new_key: Key) -> Outcome:
    """Seal the auth key with ``new_key`` instead of the key that opens it now.

    :param storage: built with the ``encryption_key`` (or ``fernet_key``) that opens it.
    :raises EncryptionKeyError: no key or the wrong one, or a damaged envelope.
    """
    check_key(new_key, "the new key")
    async with opened(storage):
        return await _rewrite(storage, new_key)


async def _rewrite(storage: Storage, key: Key | None) -> Outcome:
    session = await storage.get_session()
    await storage.set_encryption_key(key)
    await storage.save()
    return Outcome.NO_AUTH_KEY if session.auth_key is None else Outcome.DONE


def parse_key(text: str, what: str = "the key") -> Key:
    """Return the key a text gives: ``hex:``/``base64:`` and 32 bytes, else a passphrase.

    :raises InvalidValueError: a ``hex:``/``base64:`` key that is not 32 valid bytes, or
        an empty passphrase.
    """
    for prefix, decode in (("hex:", bytes.fromhex), ("base64:", _b64)):
        if text.startswith(prefix):
            try:
                raw = decode(text[len(prefix) :].strip())
            except (ValueError, binascii.Error):
                raise InvalidValueError(f"{what} is not valid {prefix[:-1]}") from None
            if len(raw) != KEY_SIZE:
                raise InvalidValueError(f"{what} must be {KEY_SIZE} bytes, not {len(raw)}")
            return raw
    return check_key(text, what)


def _b64(text: str) -> bytes:
    return base64.b64decode(
        text, altchars=b"-_" if "-" in text or "_" in text else None, validate=True
    )


def read_key(
    variable: str,
    what: str,
    *,
    confirm: bool = False,
    prompt: Callable[[str], str] | None = None,
) -> Key:
    """Read a key from the environment variable ``variable``, else from a prompt.

    Never from the command line's arguments (they land in shell history and ``ps``).

    :param what: how the prompt and errors name the key ("the encryption key").
    :param confirm: ask twice (a new key).
    :raises InvalidValueError: the variable is unset and there is no terminal to ask
        on, the two entries differ, or the key is malformed.
    """
    text = os.environ.get(variable)
    if text is not None:
        return parse_key(text, f"${variable}")
    if prompt is None:
        if not sys.stdin.isatty():
            raise InvalidValueError(
                f"{what} is needed: set ${variable} (a passphrase, or hex:/base64: and 32 "
                "bytes for a raw key); there is no terminal to ask on"
            )
        prompt = getpass.getpass
    entered = prompt(f"{what[0].upper()}{what[1:]}: ")
    if confirm and prompt(f"{what[0].upper()}{what[1:]} again: ") != entered:
        raise InvalidValueError(f"the two entries of {what} differ; nothing was changed")
    return parse_key(entered, what)
