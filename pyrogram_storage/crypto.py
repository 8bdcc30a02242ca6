"""Sealing the auth key at rest: the envelope, the keys, and the :class:`Sealer` a storage holds.

A session is the account: whoever copies a session file, a database dump or a backup
can log in. With ``encryption_key=``, a storage seals the auth key before any backend
primitive sees it and opens it after the backend read it, so every backend (and a
subclass of your own) stores only the sealed form. Everything else in a session (ids,
peers, update states) stays as it is: it is not a credential.

The envelope (format 1), all integers big-endian::

    offset size  field
    0      3     magic b"PSE"
    3      1     format: 1 (AES-256-GCM, subkeys by HMAC-SHA256)
    4      1     KDF: 0 raw 32-byte key, 1 scrypt, 2 Argon2id
    5      4     KDF parameter a: scrypt N, Argon2id memory in KiB (0 for a raw key)
    9      2     KDF parameter b: scrypt r, Argon2id iterations (0 for a raw key)
    11     2     KDF parameter c: scrypt p, Argon2id lanes (0 for a raw key)
    13     16    salt (random per key derivation)
    29     8     key check
    37     12    nonce (random per write)
    49     n+16  AES-256-GCM ciphertext of the auth key, then its 16-byte tag

The 49 header bytes are the AEAD's associated data. ``K`` is the raw key, or the
KDF's 32-byte output for the passphrase (UTF-8, NFC-normalised) with this salt and
these parameters; the AES key is ``HMAC-SHA256(K, b"pyrogram-storage/1/encrypt" +
salt)`` and the key check is the first 8 bytes of ``HMAC-SHA256(K,
b"pyrogram-storage/1/check" + salt)``. The check tells a wrong key from a damaged
envelope; it reveals nothing a trial decryption would not.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import struct
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .drivers import load_driver
from .errors import DamagedEnvelopeError, EncryptionKeyError, InvalidTypeError, InvalidValueError
from .types import SessionData

__all__ = [
    "DEFAULT_KDF",
    "KEY_SIZE",
    "Cipher",
    "Key",
    "Sealer",
    "check_key",
    "envelope_kind",
    "open_envelope",
    "seal",
]

log = logging.getLogger("pyrogram_storage")

Key = bytes | str
"""An encryption key: 32 raw bytes, or a passphrase (stretched by a KDF)."""

KEY_SIZE = 32
"""Bytes in a raw key, and in the AES-256 key derived from a passphrase."""
MAGIC = b"PSE"
FORMAT = 1
KDF_RAW, KDF_SCRYPT, KDF_ARGON2ID = 0, 1, 2
_KDF_NAMES = {KDF_RAW: "a raw 32-byte key", KDF_SCRYPT: "scrypt", KDF_ARGON2ID: "Argon2id"}
_HEADER = struct.Struct(">3sBBIHH16s8s12s")
HEADER_SIZE = _HEADER.size  # 49
TAG_SIZE = 16
_ENCRYPT_LABEL = b"pyrogram-storage/1/encrypt"
_CHECK_LABEL = b"pyrogram-storage/1/check"

DEFAULT_KDF = (KDF_ARGON2ID, 65536, 1, 1)
"""Passphrases: Argon2id, 64 MiB, 1 iteration, 1 lane: above OWASP's 46 MiB and 1 iteration,
and about 0.1 s on one core of the 2-core benchmark machine (benchmarks/encryption.py)."""
FALLBACK_KDF = (KDF_SCRYPT, 2**15, 8, 1)
"""Where this ``cryptography`` has no Argon2id: scrypt, N=2^15, r=8, p=1 (32 MiB)."""

# What an envelope may ask of us: a damaged or hostile header must not make open() take
# gigabytes or minutes.
_MAX_MEMORY = 1 << 30
_MAX_ARGON2_ITERATIONS = 16
_MAX_LANES = 16

_SEALED_PREFIX = MAGIC + bytes([FORMAT])
_FERNET_PREFIX = b"gAAAAA"  # a Fernet token: base64 of version 0x80 and a 64-bit time
_AUTH_KEY_SIZE = 256

CLEAR, SEALED, FERNET, UNKNOWN = "clear", "sealed", "fernet", "unknown"


def _crypto(module: str, needs: str | None = None) -> Any:
    return load_driver(f"cryptography.{module}", "cryptography>=44", "crypto", needs=needs)


def check_key(key: object, what: str = "encryption_key") -> Key:
    """Return ``key`` as a :data:`Key`, or say what a key must be.

    :raises InvalidTypeError: not bytes nor str.
    :raises InvalidValueError: bytes not 32 long, or an empty passphrase.
    """
    if isinstance(key, (bytes, bytearray, memoryview)):
        raw = bytes(key)
        if len(raw) != KEY_SIZE:
            raise InvalidValueError(
                f"{what} must be {KEY_SIZE} random bytes or a passphrase str, not "
                f"{len(raw)} bytes (os.urandom(32) makes one)"
            )
        return raw
    if isinstance(key, str):
        if not key:
            raise InvalidValueError(f"{what} must not be an empty passphrase")
        return key
    raise InvalidTypeError(f"{what} must be 32 bytes or a passphrase str, not {type(key).__name__}")


def envelope_kind(value: bytes | None) -> str | None:
    """Tell how a stored auth key is kept: None, CLEAR, SEALED, FERNET or UNKNOWN.

    An envelope or Fernet token cut down to 256 bytes must not pass for a clear key:
    a value starting like one is one (a real auth key starts so once in 2^32 keys).
    """
    if value is None:
        return None
    if value[:4] == _SEALED_PREFIX or value[:6] == _FERNET_PREFIX:
        return SEALED if value[:3] == MAGIC else FERNET
    if len(value) == _AUTH_KEY_SIZE:
        return CLEAR
    return SEALED if value[:3] == MAGIC else UNKNOWN


# -- keys ------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False, slots=True)
class _Keys:
    """The keys of one derivation: its KDF, parameters and salt, and what they gave."""

    kdf: int
    params: tuple[int, int, int]
    salt: bytes
    check: bytes
    aead: Any  # AESGCM

    def __repr__(self) -> str:
        return "<derived keys hidden>"


def _stretch(secret: Key, kdf: int, params: tuple[int, int, int], salt: bytes) -> bytes:
    """The 32-byte ``K`` of the envelope: the raw key, or the KDF's output (slow)."""
    if kdf == KDF_RAW:
        assert isinstance(secret, bytes)
        return secret
    assert isinstance(secret, str)
    password = unicodedata.normalize("NFC", secret).encode("utf-8")
    a, b, c = params
    if kdf == KDF_SCRYPT:
        scrypt = _crypto("hazmat.primitives.kdf.scrypt", "Scrypt")
        return scrypt.Scrypt(salt=salt, length=KEY_SIZE, n=a, r=b, p=c).derive(password)  # type: ignore[no-any-return]
    argon2 = _crypto("hazmat.primitives.kdf.argon2", "Argon2id")
    derived = argon2.Argon2id(
        salt=salt, length=KEY_SIZE, iterations=b, lanes=c, memory_cost=a
    ).derive(password)
    return derived  # type: ignore[no-any-return]


def _derive(secret: Key, kdf: int, params: tuple[int, int, int], salt: bytes) -> _Keys:
    stretched = _stretch(secret, kdf, params, salt)
    aead = _crypto("hazmat.primitives.ciphers.aead", "AESGCM").AESGCM
    encrypt = hmac.new(stretched, _ENCRYPT_LABEL + salt, hashlib.sha256).digest()
    check = hmac.new(stretched, _CHECK_LABEL + salt, hashlib.sha256).digest()[:8]
    return _Keys(kdf, params, salt, check, aead(encrypt))


def _new_keys(secret: Key) -> _Keys:
    """Keys for a new envelope: a fresh salt; a passphrase gets the default KDF (slow)."""
    salt = os.urandom(16)
    if isinstance(secret, bytes):
        return _derive(secret, KDF_RAW, (0, 0, 0), salt)
    kdf, *params = DEFAULT_KDF
    try:
        return _derive(secret, kdf, (params[0], params[1], params[2]), salt)
    except Exception as exc:  # an OpenSSL without Argon2id
        if type(exc).__name__ not in ("UnsupportedAlgorithm", "MissingDriverError"):
            raise
        log.debug("Argon2id is not available (%s); using scrypt", exc)
        kdf, *params = FALLBACK_KDF
        return _derive(secret, kdf, (params[0], params[1], params[2]), salt)


# -- the envelope ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Header:
    kdf: int
    params: tuple[int, int, int]
    salt: bytes
    check: bytes
    nonce: bytes


def _parse(envelope: bytes, where: str) -> _Header:
    """Read and check an envelope's header (no key needed).

    :raises DamagedEnvelopeError: too short, not format 1, or impossible KDF parameters.
    """
    if len(envelope) < HEADER_SIZE + TAG_SIZE:
        raise _damaged(where, f"is truncated ({len(envelope)} bytes)")
    magic, version, kdf, a, b, c, salt, check, nonce = _HEADER.unpack_from(envelope)
    if magic != MAGIC:
        raise _damaged(where, "does not start with the envelope's magic bytes")
    if version != FORMAT:
        raise _damaged(
            where,
            f"has format {version}, which this version of pyrogram-storage does not know "
            "(written by a newer one, or damaged)",
        )
    params = (a, b, c)
    if not _sane(kdf, params):
        raise _damaged(where, "has impossible key-derivation parameters")
    return _Header(kdf, params, salt, check, nonce)


def _sane(kdf: int, params: tuple[int, int, int]) -> bool:
    a, b, c = params
    if kdf == KDF_RAW:
        return params == (0, 0, 0)
    if kdf == KDF_SCRYPT:
        return (
            a >= 2
            and a & (a - 1) == 0
            and b >= 1
            and 1 <= c <= _MAX_LANES
            and 128 * a * b <= _MAX_MEMORY
        )
    if kdf == KDF_ARGON2ID:
        return (
            8 * c <= a <= _MAX_MEMORY // 1024
            and 1 <= b <= _MAX_ARGON2_ITERATIONS
            and (1 <= c <= _MAX_LANES)
        )
    return False


def _seal_with(keys: _Keys, plaintext: bytes) -> bytes:
    a, b, c = keys.params
    header = _HEADER.pack(MAGIC, FORMAT, keys.kdf, a, b, c, keys.salt, keys.check, os.urandom(12))
    return header + keys.aead.encrypt(header[-12:], plaintext, header)  # type: ignore[no-any-return]


def _open_with(keys: _Keys, envelope: bytes, where: str) -> bytes:
    """Decrypt an envelope whose key check ``keys`` passed."""
    header = envelope[:HEADER_SIZE]
    invalid_tag = _crypto("exceptions", "InvalidTag").InvalidTag
    try:
        return keys.aead.decrypt(header[-12:], envelope[HEADER_SIZE:], header)  # type: ignore[no-any-return]
    except invalid_tag:
        raise _damaged(where, "was altered or truncated: its tag does not match") from None


def _damaged(where: str, what: str) -> DamagedEnvelopeError:
    return DamagedEnvelopeError(
        f"{where}: the sealed auth key {what}; nothing was changed. Restore the session "
        "from a backup",
        DamagedEnvelopeError.DAMAGED,
    )


def _wrong_key(where: str, header: _Header, secret: Key) -> EncryptionKeyError | None:
    """The error for a key of the wrong kind (raw for a passphrase's envelope...), or None."""
    if (header.kdf == KDF_RAW) == isinstance(secret, bytes):
        return None
    given = "32 raw bytes" if isinstance(secret, bytes) else "a passphrase"
    return EncryptionKeyError(
        f"{where}: wrong encryption key: the auth key was sealed with "
        f"{_KDF_NAMES[header.kdf] if header.kdf == KDF_RAW else 'a passphrase'}, "
        f"and {given} was given; nothing was changed",
        EncryptionKeyError.WRONG_KEY,
    )


def _checked(keys: _Keys, header: _Header, where: str) -> _Keys:
    if not hmac.compare_digest(keys.check, header.check):
        raise EncryptionKeyError(
            f"{where}: wrong encryption key (it does not open the stored value); "
            "nothing was changed",
            EncryptionKeyError.WRONG_KEY,
        )
    return keys


class Cipher:
    """Seal and open byte strings in the envelope with one key (synchronously).

    A passphrase is stretched once for writing (a fresh salt, on the first
    :meth:`seal`) and once per salt met when reading: each takes about a tenth of a
    second, on the calling thread. :class:`pyrogram_storage.kv.SealedSerializer` uses it.

    :raises InvalidTypeError: a key of the wrong type.
    :raises InvalidValueError: a raw key not of 32 bytes.
    :raises MissingDriverError: ``cryptography`` is not installed.
    """

    __slots__ = ("_keys", "_secret", "_write")

    def __init__(self, key: Key) -> None:
        self._secret = check_key(key)
        _crypto("hazmat.primitives.ciphers.aead", "AESGCM")
        self._keys: dict[tuple[int, tuple[int, int, int], bytes], _Keys] = {}
        self._write: _Keys | None = None

    def __repr__(self) -> str:
        return f"Cipher(<{type(self._secret).__name__} key hidden>)"

    def seal(self, plaintext: bytes) -> bytes:
        """Return a new envelope of ``plaintext`` (a fresh nonce)."""
        if self._write is None:
            self._write = _new_keys(self._secret)
        return _seal_with(self._write, plaintext)

    def open(self, envelope: bytes, where: str = "the envelope") -> bytes:
        """Return what ``envelope`` holds.

        :raises EncryptionKeyError: it was sealed with another key.
        :raises DamagedEnvelopeError: it was altered or truncated.
        """
        header = _parse(envelope, where)
        wrong = _wrong_key(where, header, self._secret)
        if wrong is not None:
            raise wrong
        lookup = (header.kdf, header.params, header.salt)
        keys = self._keys.get(lookup)
        if keys is None:
            keys = _checked(_derive(self._secret, *lookup), header, where)
            self._keys[lookup] = keys
        return _open_with(_checked(keys, header, where), envelope, where)


def seal(key: Key, plaintext: bytes) -> bytes:
    """Seal ``plaintext`` in a new envelope (a passphrase is stretched: slow).

    :raises MissingDriverError: ``cryptography`` is not installed.
    """
    return Cipher(key).seal(plaintext)


def open_envelope(key: Key, envelope: bytes, where: str = "the envelope") -> bytes:
    """Return what an envelope holds (a passphrase is stretched: slow).

    :raises EncryptionKeyError: ``key`` is not the key it was sealed with.
    :raises DamagedEnvelopeError: the envelope was altered or truncated.
    """
    return Cipher(key).open(envelope, where)


# -- the sealer ------------------------------------------------------------------------------


class Sealer:
    """What a storage holds to seal its auth key: the keys given, and the keys derived.

    Built from a storage's ``encryption_key=``, ``fernet_key=`` and
    ``encrypt_existing=`` (checked at once, without I/O). :meth:`open` runs once per
    ``open()``, right after the backend read the session, and derives the keys (off
    the event loop for a passphrase); :meth:`seal` runs on every session write before
    the backend sees it; :meth:`close` forgets everything derived. Without any key, it
    passes sessions through untouched, except that a sealed auth key is refused.

    :param encryption_key: 32 raw bytes or a passphrase; auth keys are written sealed.
    :param fernet_key: the key of a session written by Kurigram's example
        ``EncryptedFernetStorage`` (its auth key is a Fernet token): read with it, and
        written as a Fernet token again unless ``encryption_key`` is given too.
    :param encrypt_existing: convert a stored auth key kept otherwise (in clear, or as a
        Fernet token) to the form this storage writes, on open; without it, such a
        session is refused with :class:`EncryptionKeyError`.
    :param read_only: the storage never writes: a key given for an auth key stored in
        clear is not refused (nothing can be stored in clear behind the caller's back).
    :raises InvalidTypeError: a key of the wrong type.
    :raises InvalidValueError: a raw key not of 32 bytes, an invalid Fernet key.
    :raises MissingDriverError: a key was given and ``cryptography`` is not installed.
    """

    __slots__ = (
        "_fernet",
        "_keys",
        "_secret",
        "_stored",
        "_write",
        "converting",
        "encrypt_existing",
        "read_only",
    )

    def __init__(
        self,
        encryption_key: Key | None = None,
        *,
        fernet_key: bytes | str | None = None,
        encrypt_existing: bool = False,
        read_only: bool = False,
    ) -> None:
        self.read_only = read_only
        if not isinstance(encrypt_existing, bool):
            raise InvalidTypeError(
                f"encrypt_existing must be a bool, not {type(encrypt_existing).__name__}"
            )
        self.encrypt_existing = encrypt_existing
        self.converting = False  # open() read an auth key to store again (encrypt_existing)
        self._secret = None if encryption_key is None else check_key(encryption_key)
        self._fernet: Any = None
        if fernet_key is not None:
            if not isinstance(fernet_key, (bytes, str)):
                raise InvalidTypeError(
                    f"fernet_key must be bytes or str, not {type(fernet_key).__name__}"
                )
            fernet = _crypto("fernet", "Fernet")
            try:
                self._fernet = fernet.Fernet(fernet_key)
            except (ValueError, TypeError):
                raise InvalidValueError(
                    "fernet_key is not a Fernet key (32 url-safe base64-encoded bytes, as "
                    "Fernet.generate_key() makes)"
                ) from None
        elif self._secret is not None:
            _crypto("hazmat.primitives.ciphers.aead", "AESGCM")  # missing: say so now
        self._keys: dict[tuple[int, tuple[int, int, int], bytes], _Keys] = {}
        self._write: _Keys | None = None
        self._stored: tuple[bytes, bytes] | None = None  # (clear, as stored): reused unchanged

    def __repr__(self) -> str:
        kind = "none" if self._secret is None else type(self._secret).__name__
        return f"Sealer(encryption_key=<{kind} hidden>, fernet={self._fernet is not None})"

    @property
    def active(self) -> bool:
        """Whether this sealer writes auth keys sealed (a key was given)."""
        return self._secret is not None or self._fernet is not None

    def with_key(self, encryption_key: Key | None) -> Sealer:
        """A sealer that writes with ``encryption_key`` from now on (None: in clear)."""
        return Sealer(encryption_key)

    async def prepare(self) -> None:
        """Derive the keys for writing, if not done yet (off the loop for a passphrase)."""
        if self._secret is not None and self._write is None:
            self._write = await _run(_new_keys, self._secret)

    async def open(self, session: SessionData, where: str, *, first: bool) -> SessionData:
        """Return ``session`` with its auth key opened (:attr:`converting`: store it again).

        :param first: this is ``open()`` (derive the keys to write with; convert a
            session stored otherwise when ``encrypt_existing``); else a re-read of a
            session another writer may have changed.
        :raises EncryptionKeyError: no key, or the wrong one, for a sealed auth key; or a
            key for one stored in clear without ``encrypt_existing``.
        :raises DamagedEnvelopeError: the sealed auth key was altered or truncated.
        """
        stored = session.auth_key
        kind = envelope_kind(stored) if isinstance(stored, bytes) else None
        if kind == UNKNOWN and self.active:
            raise _damaged(where, "is neither an auth key nor an envelope")
        if kind is None or kind == UNKNOWN:  # nothing to open; the contract judges the rest
            if first:
                await self.prepare()
            return session
        assert isinstance(stored, bytes)
        if kind == CLEAR:
            if not self.active or self.read_only:
                return session
            if not (first and self.encrypt_existing):
                raise EncryptionKeyError(
                    f"{where} holds its auth key in clear, and an encryption key was given; "
                    "nothing was changed. Pass encrypt_existing=True (or run "
                    "`pyrogram-storage encrypt`) to encrypt it, or open it without a key",
                    EncryptionKeyError.NOT_ENCRYPTED,
                )
            await self.prepare()
            self.converting = True
            return session
        if kind == FERNET:
            clear = self._open_fernet(stored, where)
            convert = self._secret is not None and not self.read_only
            if convert and not (first and self.encrypt_existing):
                raise EncryptionKeyError(
                    f"{where} holds its auth key as a Fernet token (EncryptedFernetStorage), "
                    "and an encryption_key was given; nothing was changed. Pass "
                    "encrypt_existing=True too (or run `pyrogram-storage encrypt`) to move "
                    "it to pyrogram-storage's envelope",
                    EncryptionKeyError.OTHER_FORMAT,
                )
            if first:
                await self.prepare()
            self._stored = (clear, stored)
            self.converting = convert
            return session.replace(auth_key=clear)
        # Our envelope.
        if self._secret is None:
            hint = (
                "; fernet_key opens only EncryptedFernetStorage's tokens"
                if self._fernet is not None
                else ""
            )
            raise EncryptionKeyError(
                f"{where} holds an encrypted auth key, and no encryption key was given; "
                f"nothing was changed. Pass encryption_key= (on the command line, set "
                f"PYROGRAM_STORAGE_KEY){hint}",
                EncryptionKeyError.NO_KEY,
            )
        header = _parse(stored, where)
        wrong = _wrong_key(where, header, self._secret)
        if wrong is not None:
            raise wrong
        lookup = (header.kdf, header.params, header.salt)
        keys = self._keys.get(lookup)
        if keys is None:
            keys = await _run(_derive, self._secret, header.kdf, header.params, header.salt)
            self._keys[lookup] = keys
        clear = _open_with(_checked(keys, header, where), stored, where)
        if first or self._write is None:
            self._write = keys
        self._stored = (clear, stored)
        return session.replace(auth_key=clear)

    def seal(self, session: SessionData, fields: frozenset[str]) -> SessionData:
        """Return ``session`` as the backend stores it: its auth key sealed.

        A fresh nonce for every new auth key; an unchanged one is handed over as it
        is stored already.
        """
        clear = session.auth_key
        if clear is None or not self.active:
            return session
        stored = self._stored
        if stored is not None and "auth_key" not in fields and stored[0] == clear:
            return session.replace(auth_key=stored[1])
        if self._secret is not None:
            keys = self._write
            if keys is None:  # pragma: no cover - open() and prepare() derive them
                raise EncryptionKeyError(
                    "the encryption keys were not derived: open the storage first",
                    EncryptionKeyError.NO_KEY,
                )
            sealed = _seal_with(keys, clear)
        else:
            sealed = self._fernet.encrypt(clear)
        self._stored = (clear, sealed)
        self.converting = False
        return session.replace(auth_key=sealed)

    def close(self) -> None:
        """Forget the derived keys and the last auth key (the storage closed)."""
        self._keys.clear()
        self._write = None
        self._stored = None
        self.converting = False

    def _open_fernet(self, token: bytes, where: str) -> bytes:
        if self._fernet is None:
            raise EncryptionKeyError(
                f"{where} holds its auth key as a Fernet token (written by Kurigram's "
                "EncryptedFernetStorage), and no fernet_key was given; nothing was changed",
                EncryptionKeyError.NO_KEY,
            )
        invalid = _crypto("fernet", "InvalidToken").InvalidToken
        try:
            clear = self._fernet.decrypt(token)
        except invalid:
            raise EncryptionKeyError(
                f"{where}: the fernet_key does not open the stored Fernet token (a wrong "
                "key, or a damaged token); nothing was changed",
                EncryptionKeyError.WRONG_KEY,
            ) from None
        if not isinstance(clear, bytes):  # pragma: no cover - Fernet returns bytes
            raise _damaged(where, "is not bytes")
        return clear


async def _run(function: Callable[..., _Keys], *args: Any) -> _Keys:
    """Derive keys: on the loop for a raw key (microseconds), in a thread for a passphrase."""
    secret = args[0]
    if isinstance(secret, bytes):
        return function(*args)
    return await asyncio.to_thread(function, *args)
