"""Bot-state values encrypted at rest: a serializer that seals what another one writes."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from ..crypto import Cipher, Key
from ..errors import DamagedEnvelopeError
from .serializer import JSON, Serializer

__all__ = ["SealedSerializer"]

_PREFIX = "pse:"


class SealedSerializer:
    """Wrap a serializer so that every value is stored sealed (off by default).

    ``serializer=SealedSerializer(key)`` on any store: each value's text (JSON by
    default) is sealed in the envelope of :mod:`pyrogram_storage.crypto` (AES-256-GCM,
    a fresh nonce per write) and stored as ``pse:`` and its URL-safe base64. Keys,
    TTLs and integers (which stores keep as numbers, for ``increment``) stay in clear.
    A value that does not open (a wrong key, an altered value) raises
    :class:`~pyrogram_storage.kv.CorruptValueError` from the store, naming the cause.

    Needs ``pip install pyrogram-storage[crypto]``. Prefer a raw 32-byte key: a
    passphrase is stretched (about 0.1 s, on the calling thread) on the first write and
    once per salt read.

    :param key: 32 random bytes or a passphrase.
    :param inner: the serializer whose text is sealed (JSON by default).
    """

    def __init__(self, key: Key, inner: Serializer = JSON) -> None:
        self._cipher = Cipher(key)
        self.inner = inner

    def __repr__(self) -> str:
        return f"SealedSerializer(<key hidden>, inner={self.inner!r})"

    def dumps(self, value: Any) -> str:
        """Encode ``value`` with the inner serializer, then seal the text."""
        text = self.inner.dumps(value)
        sealed = self._cipher.seal(text.encode("utf-8"))
        return _PREFIX + base64.urlsafe_b64encode(sealed).decode("ascii")

    def loads(self, text: str) -> Any:
        """Open sealed text and decode it with the inner serializer.

        :raises DamagedEnvelopeError: the text is not sealed, or was altered.
        :raises EncryptionKeyError: it was sealed with another key.
        """
        if not text.startswith(_PREFIX):
            raise DamagedEnvelopeError(
                "the stored value is not sealed (written without SealedSerializer?)",
                DamagedEnvelopeError.DAMAGED,
            )
        try:
            sealed = base64.urlsafe_b64decode(text[len(_PREFIX) :].encode("ascii"))
        except (binascii.Error, ValueError, UnicodeError):
            raise DamagedEnvelopeError(
                "the stored value's sealed text is not base64", DamagedEnvelopeError.DAMAGED
            ) from None
        return self.inner.loads(self._cipher.open(sealed, "the stored value").decode("utf-8"))
