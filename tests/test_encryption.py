"""Encryption at rest (issue 24): the auth key is sealed on every backend, never stored clear.

The raw forms a thief would copy are read the way a thief would: the session file's
bytes, the in-memory database's image, Mongo's documents (BSON), Redis's keys
(``DUMP``) and its RDB file, the README backend's dict. None may hold the auth key,
any 16-byte piece of it, or its base64 or hex forms. Wrong, missing and damaged keys
must give :class:`EncryptionKeyError` and leave every byte as it was.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import hashlib
import hmac
import os
import sqlite3
import struct
import time
import unicodedata
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from pyrogram_storage import (
    CorruptSessionError,
    DamagedEnvelopeError,
    EncryptionKeyError,
    FileStorage,
    InvalidTypeError,
    InvalidValueError,
    MemoryStorage,
    SessionData,
    Storage,
    decode_session_string,
    encode_session_string,
    from_url,
)
from pyrogram_storage import crypto as crypto_module
from pyrogram_storage.crypto import Cipher, envelope_kind, open_envelope, seal
from pyrogram_storage.testing import StorageContract

from .conftest import make_storage_of, marks
from .missing_driver import missing_driver_error

RAW_KEY = hashlib.sha256(b"pyrogram-storage test key").digest()
OTHER_KEY = hashlib.sha256(b"another key").digest()
PASSPHRASE = "correct horse battery staple"
ENCRYPTED_BACKENDS = ["file", "memory", "mongo-pymongo", "redis", "postgres", "readme"]
"""One backend of each kind, and the README's user-written subclass."""


def _params(names: list[str]) -> list[Any]:
    return [pytest.param(name, marks=marks(name)) for name in names]


def login(auth_key: bytes) -> dict[str, Any]:
    return {
        "dc_id": 2,
        "api_id": 1234,
        "test_mode": False,
        "auth_key": auth_key,
        "user_id": 777000,
        "is_bot": False,
    }


def forms(secret: bytes) -> list[bytes]:
    """The ways a stored secret may be spelled: raw, base64 (both alphabets), hex."""
    b64 = base64.b64encode(secret)
    return [
        secret,
        b64,
        b64.rstrip(b"="),
        base64.urlsafe_b64encode(secret).rstrip(b"="),
        secret.hex().encode(),
        secret.hex().upper().encode(),
    ]


def assert_hidden(raw: bytes, secret: bytes) -> None:
    for form in forms(secret):
        assert form not in raw
    for start in range(0, len(secret) - 16, 8):
        assert secret[start : start + 16] not in raw


# -- reading and changing what a backend stored, as a thief or a vandal would ----------------


class Raw:
    """The stored data of one backend's session, read and written behind the storage's back."""

    def __init__(self, backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
        self.backend = backend
        self.request = request
        self.tmp_path = tmp_path
        self._make = make_storage_of(backend, request, tmp_path)
        self.shared: Storage | None = None  # memory and readme: the one object holding data
        self.location: str | None = None

    def make(self, **options: Any) -> Storage:
        if self.backend in ("memory", "readme"):
            # Their data lives in the object: reopen the same one with other options.
            if self.shared is None:
                self.shared = self._make(**options)
                return self.shared
            return _reoptioned(self.shared, options)
        storage = self._make(**options)
        self.location = storage.location
        return storage

    def dump(self, server_files: bool = False) -> bytes:
        """Every byte of the stored session a dump would hold (and the server's RDB file)."""
        if self.backend == "file":
            folder = self.tmp_path
            return b"".join(
                path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()
            )
        if self.backend == "memory":
            assert isinstance(self.shared, MemoryStorage)
            db = self.shared._kept
            assert db is not None, "close the memory storage before reading it"
            return db.serialize()
        if self.backend == "readme":
            assert self.shared is not None
            return repr(vars(self.shared).get("data")).encode()
        if self.backend.startswith("mongo"):
            import bson
            import pymongo

            uri, _, name = self._location().partition("#")
            client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(uri)
            try:
                db = client[name]
                return b"".join(
                    bson.encode(document)
                    for collection in sorted(db.list_collection_names())
                    for document in db[collection].find().sort("_id")
                )
            finally:
                client.close()
        if self.backend == "postgres":
            rows = self._postgres(
                "SELECT t::text FROM {schema}.sessions t WHERE name = $1 UNION ALL "
                "SELECT t::text FROM {schema}.peers t WHERE sid = (SELECT sid FROM "
                "{schema}.sessions WHERE name = $1)"
            )
            sealed = self._postgres("SELECT auth_key FROM {schema}.sessions WHERE name = $1")
            return "".join(row[0] for row in rows).encode() + b"".join(
                row[0] or b"" for row in sealed
            )
        import redis

        server = self.request.getfixturevalue("redis_server")
        connection = redis.Redis.from_url(server.url)
        try:
            keys = sorted(connection.scan_iter(match=f"*{self._name()}*"))
            dumped = b"".join(key + (connection.dump(key) or b"") for key in keys)
            if not server_files:
                return dumped
            connection.save()
            rdb = server.directory / "dump.rdb"
            return dumped + rdb.read_bytes()
        finally:
            connection.close()

    def sealed(self) -> bytes:
        """The stored auth key, as the backend holds it."""
        value = self._read()
        assert isinstance(value, bytes)
        return value

    def set_sealed(self, value: bytes) -> None:
        """Replace the stored auth key (a vandal with write access)."""
        if self.backend == "file":
            db = sqlite3.connect(self.tmp_path / "session.session")
            with db:
                db.execute("UPDATE sessions SET auth_key = ?", (value,))
            db.close()
        elif self.backend == "memory":
            assert isinstance(self.shared, MemoryStorage) and self.shared._kept is not None
            self.shared._kept.execute("UPDATE sessions SET auth_key = ?", (value,))
        elif self.backend == "readme":
            data = vars(self.shared)["data"]
            data["session"] = data["session"].replace(auth_key=value)
        elif self.backend.startswith("mongo"):
            import pymongo

            uri, _, name = self._location().partition("#")
            client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(uri)
            try:
                client[name]["session"].update_one({"_id": 0}, {"$set": {"auth_key": value}})
            finally:
                client.close()
        elif self.backend == "postgres":
            self._postgres("UPDATE {schema}.sessions SET auth_key = $2 WHERE name = $1", value)
        else:
            import redis

            server = self.request.getfixturevalue("redis_server")
            connection = redis.Redis.from_url(server.url)
            try:
                (key,) = connection.scan_iter(match=f"*{self._name()}*:session")
                connection.hset(key, "auth_key", value)
            finally:
                connection.close()

    def _read(self) -> Any:
        if self.backend == "file":
            db = sqlite3.connect(self.tmp_path / "session.session")
            try:
                return db.execute("SELECT auth_key FROM sessions").fetchone()[0]
            finally:
                db.close()
        if self.backend == "memory":
            assert isinstance(self.shared, MemoryStorage) and self.shared._kept is not None
            return self.shared._kept.execute("SELECT auth_key FROM sessions").fetchone()[0]
        if self.backend == "readme":
            return vars(self.shared)["data"]["session"].auth_key
        if self.backend.startswith("mongo"):
            import pymongo

            uri, _, name = self._location().partition("#")
            client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(uri)
            try:
                document = client[name]["session"].find_one({"_id": 0})
                assert document is not None
                return bytes(document["auth_key"])
            finally:
                client.close()
        if self.backend == "postgres":
            (row,) = self._postgres("SELECT auth_key FROM {schema}.sessions WHERE name = $1")
            return row[0]
        import redis

        server = self.request.getfixturevalue("redis_server")
        connection = redis.Redis.from_url(server.url)
        try:
            (key,) = connection.scan_iter(match=f"*{self._name()}*:session")
            return connection.hget(key, "auth_key")
        finally:
            connection.close()

    def _location(self) -> str:
        assert self.location is not None
        return self.location

    def _postgres(self, query: str, *args: Any) -> list[Any]:
        """Run one statement on the session's server, from a thread of its own (the tests
        call Raw's methods from their event loop); ``{schema}`` is the session's schema."""
        from urllib.parse import unquote

        import asyncpg

        from pyrogram_storage.postgres.storage import DEFAULT_SCHEMA

        url = self._location().partition("#")[0]
        name = unquote(self._name())

        async def run() -> list[Any]:
            connection = await asyncpg.connect(url)
            try:
                rows = await connection.fetch(query.format(schema=DEFAULT_SCHEMA), name, *args)
                return [tuple(row) for row in rows]
            finally:
                await connection.close()

        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, run()).result()

    def _name(self) -> str:
        return self._location().rpartition("#")[2]


def _reoptioned(storage: Storage, options: dict[str, Any]) -> Storage:
    """The same object (its data), built again with other key options."""
    from pyrogram_storage.crypto import Sealer

    storage._auth.sealer = Sealer(
        options.get("encryption_key"),
        fernet_key=options.get("fernet_key"),
        encrypt_existing=options.get("encrypt_existing", False),
        read_only=storage.read_only,
    )
    return storage


@pytest.fixture(params=_params(ENCRYPTED_BACKENDS))
def raw(request: pytest.FixtureRequest, tmp_path: Path) -> Raw:
    return Raw(request.param, request, tmp_path)


async def stored_session(raw: Raw, auth_key: bytes, **options: Any) -> Storage:
    """A logged-in session stored with ``options``; returned closed."""
    storage = raw.make(**options)
    await storage.open()
    await storage.update_session(**login(auth_key))
    await storage.save()
    await storage.close()
    return storage


# -- the contract, encrypted --------------------------------------------------------------------


class TestEncryptedContract(StorageContract):
    """The whole contract on sealed sessions (a raw key: the contract opens hundreds of times)."""

    @pytest.fixture(params=_params(ENCRYPTED_BACKENDS))
    def make_storage(
        self, request: pytest.FixtureRequest, tmp_path: Path
    ) -> Callable[..., Storage]:
        make = make_storage_of(request.param, request, tmp_path)
        return lambda **options: make(**{"encryption_key": RAW_KEY, **options})


# -- round trips and what is stored --------------------------------------------------------------


@pytest.mark.parametrize("key", [RAW_KEY, PASSPHRASE], ids=["raw", "passphrase"])
async def test_round_trip_stores_only_the_sealed_key(raw: Raw, key: bytes | str) -> None:
    auth_key = os.urandom(256)
    storage = await stored_session(raw, auth_key, encryption_key=key)
    assert_hidden(raw.dump(server_files=True), auth_key)
    sealed = raw.sealed()
    assert sealed[:4] == b"PSE\x01" and len(sealed) == 49 + 256 + 16
    assert sealed[4] == (0 if isinstance(key, bytes) else 2)
    reopened = raw.make(encryption_key=key)
    await reopened.open()
    try:
        session = await reopened.get_session()
        assert session.auth_key == auth_key and session.user_id == 777000
        # The session string holds the key in clear: the clients need it so.
        exported = await reopened.export_session_string()
        assert decode_session_string(exported).auth_key == auth_key
        await reopened.save()  # a session write that leaves the auth key as it is
    finally:
        await reopened.close()
    assert raw.sealed() == sealed  # unchanged auth key: the envelope is not rewritten
    assert storage is not None


async def test_every_new_auth_key_gets_a_fresh_nonce(raw: Raw) -> None:
    storage = raw.make(encryption_key=RAW_KEY)
    await storage.open()
    seen = set()
    try:
        for _ in range(3):
            await storage.update_session(auth_key=b"\x01" * 256)
            await storage.flush()
            await storage.close()
            seen.add(raw.sealed()[37:49])
            await storage.open()
    finally:
        await storage.close()
    assert len(seen) == 3


async def test_session_string_with_a_key_is_sealed_from_the_first_write(raw: Raw) -> None:
    auth_key = os.urandom(256)
    text = encode_session_string(SessionData(**login(auth_key)))
    storage = raw.make(encryption_key=RAW_KEY, session_string=text)
    await storage.open()
    assert (await storage.get_session()).auth_key == auth_key
    await storage.close()
    assert_hidden(raw.dump(server_files=True), auth_key)


# -- keys that do not fit -----------------------------------------------------------------------


async def _refused(raw: Raw, reason: str | tuple[str, ...], **options: Any) -> EncryptionKeyError:
    before = raw.dump()
    storage = raw.make(**options)
    with pytest.raises(EncryptionKeyError) as caught:
        await storage.open()
    reasons = (reason,) if isinstance(reason, str) else reason
    assert caught.value.reason in reasons, caught.value
    assert raw.dump() == before, "a refused open changed the stored data"
    for secret in (RAW_KEY, PASSPHRASE.encode(), OTHER_KEY):
        for form in forms(secret):
            assert form.decode("latin-1") not in str(caught.value)
    return caught.value


async def test_no_key_wrong_key_and_wrong_kind_of_key_are_refused(raw: Raw) -> None:
    await stored_session(raw, os.urandom(256), encryption_key=RAW_KEY)
    error = await _refused(raw, EncryptionKeyError.NO_KEY)
    assert "no encryption key" in str(error)
    error = await _refused(raw, EncryptionKeyError.WRONG_KEY, encryption_key=OTHER_KEY)
    assert "wrong encryption key" in str(error)
    error = await _refused(raw, EncryptionKeyError.WRONG_KEY, encryption_key=PASSPHRASE)
    assert "raw 32-byte key" in str(error) and "passphrase was given" in str(error)


async def test_a_wrong_passphrase_is_refused(raw: Raw) -> None:
    await stored_session(raw, os.urandom(256), encryption_key=PASSPHRASE)
    await _refused(raw, EncryptionKeyError.WRONG_KEY, encryption_key="not it")
    await _refused(raw, EncryptionKeyError.WRONG_KEY, encryption_key=RAW_KEY)


async def test_a_key_for_a_clear_session_is_refused_unless_converting(raw: Raw) -> None:
    auth_key = os.urandom(256)
    await stored_session(raw, auth_key)
    error = await _refused(raw, EncryptionKeyError.NOT_ENCRYPTED, encryption_key=RAW_KEY)
    assert "in clear" in str(error) and "encrypt_existing=True" in str(error)
    converting = raw.make(encryption_key=RAW_KEY, encrypt_existing=True)
    await converting.open()
    assert (await converting.get_session()).auth_key == auth_key
    await converting.close()
    assert raw.sealed()[:3] == b"PSE"
    assert_hidden(raw.dump(server_files=True), auth_key)
    # ... and never silently back: without the key it does not open.
    await _refused(raw, EncryptionKeyError.NO_KEY)


async def test_read_only_with_a_key_reads_a_clear_session(raw: Raw) -> None:
    if raw.backend in ("memory", "readme"):
        pytest.skip("read_only is fixed when the object is built")
    auth_key = os.urandom(256)
    await stored_session(raw, auth_key)
    reader = raw.make(encryption_key=RAW_KEY, read_only=True)
    await reader.open()
    try:
        assert (await reader.get_session()).auth_key == auth_key
    finally:
        await reader.close()
    with pytest.raises(InvalidValueError, match="encrypt_existing"):
        raw.make(encryption_key=RAW_KEY, read_only=True, encrypt_existing=True)


def _flipped(sealed: bytes, position: int) -> bytes:
    return sealed[:position] + bytes([sealed[position] ^ 0x01]) + sealed[position + 1 :]


async def test_every_byte_flipped_or_cut_is_refused_and_nothing_changes(raw: Raw) -> None:
    await stored_session(raw, os.urandom(256), encryption_key=RAW_KEY)
    sealed = raw.sealed()
    # The file backend takes every position; the servers a sample of each field.
    positions = (
        range(len(sealed))
        if raw.backend in ("file", "memory", "readme")
        else [0, 2, 3, 4, 5, 8, 10, 12, 13, 28, 29, 36, 37, 48, 49, 200, 304, 305, 320]
    )
    for position in positions:
        raw.set_sealed(_flipped(sealed, position))
        header = position < 49 and not 29 <= position < 37 and not 13 <= position < 29
        error = await _refused(raw, ("damaged", "wrong key"), encryption_key=RAW_KEY)
        if 13 <= position < 37:  # the salt and the key check: the key does not match
            assert error.reason == EncryptionKeyError.WRONG_KEY, position
        elif header or position >= 37:
            assert isinstance(error, DamagedEnvelopeError), position
            assert isinstance(error, CorruptSessionError)
    for length in (1, 3, 4, 13, 48, 49, 64, 255, 256, 257, 304, 320):
        raw.set_sealed(sealed[:length])
        await _refused(raw, ("damaged", "wrong key"), encryption_key=RAW_KEY)
        before = raw.dump()
        with pytest.raises((EncryptionKeyError, CorruptSessionError)):
            await raw.make().open()  # no key: refused all the same, never handed out
        assert raw.dump() == before
    raw.set_sealed(sealed)
    intact = raw.make(encryption_key=RAW_KEY)
    await intact.open()
    await intact.close()


async def test_a_header_asking_for_huge_kdf_costs_is_refused_at_once(raw: Raw) -> None:
    await stored_session(raw, os.urandom(256), encryption_key=PASSPHRASE)
    sealed = raw.sealed()
    huge = sealed[:5] + struct.pack(">I", 1 << 30) + sealed[9:]  # a terabyte of memory
    raw.set_sealed(huge)
    error = await _refused(raw, "damaged", encryption_key=PASSPHRASE)
    assert "impossible key-derivation parameters" in str(error)


async def test_set_encryption_key_rekeys_and_decrypts(raw: Raw) -> None:
    auth_key = os.urandom(256)
    storage = raw.make(encryption_key=RAW_KEY)
    await storage.open()
    await storage.update_session(**login(auth_key))
    await storage.set_encryption_key(PASSPHRASE)
    assert (await storage.get_session()).auth_key == auth_key
    await storage.close()
    assert raw.sealed()[4] == 2  # Argon2id
    await _refused(raw, EncryptionKeyError.WRONG_KEY, encryption_key=RAW_KEY)
    storage = raw.make(encryption_key=PASSPHRASE)
    await storage.open()
    await storage.set_encryption_key(None)
    await storage.close()
    assert raw.sealed() == auth_key
    clear = raw.make()
    await clear.open()
    assert (await clear.get_session()).auth_key == auth_key
    await clear.close()


# -- the mechanism itself -------------------------------------------------------------------------


def test_envelope_is_what_the_docstring_says() -> None:
    """Open an envelope by following the documented format alone (another implementation)."""
    secret = os.urandom(256)
    envelope = seal(PASSPHRASE, secret)
    magic, version, kdf = envelope[:3], envelope[3], envelope[4]
    memory, iterations, lanes = struct.unpack(">IHH", envelope[5:13])
    salt, check, nonce = envelope[13:29], envelope[29:37], envelope[37:49]
    assert (magic, version, kdf) == (b"PSE", 1, 2)
    assert (memory, iterations, lanes) == crypto_module.DEFAULT_KDF[1:]
    password = unicodedata.normalize("NFC", PASSPHRASE).encode()
    stretched = Argon2id(
        salt=salt, length=32, iterations=iterations, lanes=lanes, memory_cost=memory
    ).derive(password)
    aes = hmac.new(stretched, b"pyrogram-storage/1/encrypt" + salt, hashlib.sha256).digest()
    expected = hmac.new(stretched, b"pyrogram-storage/1/check" + salt, hashlib.sha256).digest()
    assert check == expected[:8]
    assert AESGCM(aes).decrypt(nonce, envelope[49:], envelope[:49]) == secret


def test_raw_key_envelope_and_its_errors() -> None:
    envelope = seal(RAW_KEY, b"x" * 256)
    assert envelope[4:13] == bytes(9)
    assert open_envelope(RAW_KEY, envelope) == b"x" * 256
    assert seal(RAW_KEY, b"x" * 256)[37:49] != envelope[37:49]
    with pytest.raises(EncryptionKeyError, match="wrong encryption key"):
        open_envelope(OTHER_KEY, envelope)
    with pytest.raises(DamagedEnvelopeError, match="format 2"):
        open_envelope(RAW_KEY, envelope[:3] + b"\x02" + envelope[4:])
    cipher = Cipher(RAW_KEY)
    assert cipher.open(cipher.seal(b"abc")) == b"abc"
    assert "hidden" in repr(cipher) and RAW_KEY.hex() not in repr(cipher)


def test_values_cut_to_256_bytes_are_not_taken_for_a_clear_key() -> None:
    envelope = seal(RAW_KEY, b"x" * 256)
    assert envelope_kind(envelope[:256]) == "sealed"
    assert envelope_kind(Fernet(Fernet.generate_key()).encrypt(b"k" * 256)[:256]) == "fernet"
    assert envelope_kind(b"\x00" * 256) == "clear"
    assert envelope_kind(None) is None


@pytest.mark.parametrize(
    ("key", "error"),
    [
        (b"short", InvalidValueError),
        ("", InvalidValueError),
        (42, InvalidTypeError),
        (RAW_KEY + b"x", InvalidValueError),
    ],
)
def test_bad_keys_are_refused_when_the_storage_is_built(key: Any, error: type) -> None:
    with pytest.raises(error):
        MemoryStorage(encryption_key=key)
    with pytest.raises(error):
        from_url("memory:", encryption_key=key)


def test_no_repr_or_error_shows_a_key(tmp_path: Path) -> None:
    for key in (RAW_KEY, PASSPHRASE):
        storage = FileStorage("s", tmp_path, encryption_key=key)
        auth = storage._auth
        held = {name: getattr(auth, name) for name in type(auth).__slots__}
        shown = repr(storage) + repr(auth.sealer) + str(vars(storage)) + str(held)
        assert PASSPHRASE not in shown
        for form in forms(RAW_KEY):
            assert form.decode("latin-1") not in shown


def test_a_missing_cryptography_names_the_extra() -> None:
    extra, message = missing_driver_error(
        "cryptography",
        "from pyrogram_storage import MemoryStorage",
        "MemoryStorage(encryption_key=b'k' * 32)",
    )
    assert extra == "crypto" and "pyrogram-storage[crypto]" in message
    _, message = missing_driver_error(
        "cryptography",
        "import pyrogram_storage",
        "pyrogram_storage.from_url('memory:', encryption_key='p')",
    )
    assert "[crypto]" in message


async def test_a_passphrase_is_stretched_off_the_event_loop(tmp_path: Path) -> None:
    storage = FileStorage("s", tmp_path, encryption_key=PASSPHRASE)
    ticks = 0
    stop = asyncio.Event()

    async def tick() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.005)

    ticker = asyncio.create_task(tick())
    await storage.open()  # a new session: keys for its first write are derived here
    stop.set()
    await ticker
    await storage.close()
    assert ticks >= 5, "the event loop stood still while the passphrase was stretched"


# -- Kurigram's EncryptedFernetStorage files -------------------------------------------------


def maintainer_file(path: Path, fernet_key: bytes, auth_key: bytes) -> None:
    """A file as the ``encrypted_fernet`` example storage writes one.

    Its schema is Kurigram's version 6 (sessions without server address and port;
    usernames in their own table), and its ``auth_key`` column holds
    ``Fernet(key).encrypt(auth_key)``.
    """
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE sessions (dc_id INTEGER PRIMARY KEY, api_id INTEGER, test_mode INTEGER,
            auth_key BLOB, date INTEGER NOT NULL, user_id INTEGER, is_bot INTEGER);
        CREATE TABLE peers (id INTEGER PRIMARY KEY, access_hash INTEGER, type INTEGER NOT NULL,
            phone_number TEXT, last_update_on INTEGER NOT NULL
            DEFAULT (CAST(STRFTIME('%s', 'now') AS INTEGER)));
        CREATE TABLE usernames (id INTEGER, username TEXT, FOREIGN KEY (id) REFERENCES peers(id));
        CREATE TABLE update_state (id INTEGER PRIMARY KEY, pts INTEGER, qts INTEGER,
            date INTEGER, seq INTEGER);
        CREATE TABLE version (number INTEGER PRIMARY KEY);
        CREATE INDEX idx_peers_id ON peers (id);
        CREATE INDEX idx_peers_phone_number ON peers (phone_number);
        CREATE INDEX idx_usernames_id ON usernames (id);
        CREATE INDEX idx_usernames_username ON usernames (username);
        """
    )
    token = Fernet(fernet_key).encrypt(auth_key)
    with db:
        db.execute("INSERT INTO version VALUES (6)")
        db.execute("INSERT INTO sessions VALUES (2, 1234, 0, ?, 1700000000, 777000, 0)", (token,))
        db.execute(
            "INSERT INTO peers VALUES (42, 4242, 'user', '15550000', ?)", (int(time.time()),)
        )
        db.execute("INSERT INTO usernames VALUES (42, 'someone')")
    db.close()
    path.chmod(0o600)


async def test_a_maintainer_fernet_file_opens_with_its_key_and_stays_fernet(
    tmp_path: Path,
) -> None:
    fernet_key, auth_key = Fernet.generate_key(), os.urandom(256)
    maintainer_file(tmp_path / "old.session", fernet_key, auth_key)
    with pytest.raises(EncryptionKeyError) as caught:
        await FileStorage("old", tmp_path).open()
    assert caught.value.reason == EncryptionKeyError.NO_KEY and "Fernet" in str(caught.value)
    with pytest.raises(EncryptionKeyError) as caught:
        await FileStorage("old", tmp_path, fernet_key=Fernet.generate_key()).open()
    assert caught.value.reason == EncryptionKeyError.WRONG_KEY
    with pytest.raises(EncryptionKeyError) as caught:
        await FileStorage("old", tmp_path, fernet_key=fernet_key, encryption_key=RAW_KEY).open()
    assert caught.value.reason == EncryptionKeyError.OTHER_FORMAT
    storage = FileStorage("old", tmp_path, fernet_key=fernet_key)
    async with storage:
        assert (await storage.get_session()).auth_key == auth_key
        assert (await storage.peer_by_username("someone")).id == 42
        new_key = os.urandom(256)
        await storage.update_session(auth_key=new_key)
    db = sqlite3.connect(tmp_path / "old.session")
    token = db.execute("SELECT auth_key FROM sessions").fetchone()[0]
    db.close()
    assert Fernet(fernet_key).decrypt(token) == new_key  # still the maintainer's form


async def test_a_maintainer_fernet_file_moves_to_our_envelope(tmp_path: Path) -> None:
    fernet_key, auth_key = Fernet.generate_key(), os.urandom(256)
    maintainer_file(tmp_path / "old.session", fernet_key, auth_key)
    maintainer_file(tmp_path / "copied.session", fernet_key, auth_key)
    converting = FileStorage(
        "old", tmp_path, fernet_key=fernet_key, encryption_key=RAW_KEY, encrypt_existing=True
    )
    await converting.open()
    await converting.close()
    assert_hidden((tmp_path / "old.session").read_bytes(), auth_key)
    async with FileStorage("old", tmp_path, encryption_key=RAW_KEY) as storage:
        assert (await storage.get_session()).auth_key == auth_key
    # copy_session moves it too: read with the Fernet key, written sealed.
    from pyrogram_storage import copy_session

    source = FileStorage("copied", tmp_path, fernet_key=fernet_key, read_only=True)
    target = FileStorage("new", tmp_path, encryption_key=PASSPHRASE)
    result = await copy_session(source, target)
    assert result.peers == 1
    assert_hidden((tmp_path / "new.session").read_bytes(), auth_key)
    async with FileStorage("new", tmp_path, encryption_key=PASSPHRASE) as storage:
        assert (await storage.get_session()).auth_key == auth_key


def test_bad_fernet_keys_are_refused() -> None:
    with pytest.raises(InvalidValueError, match="not a Fernet key"):
        MemoryStorage(fernet_key=b"my_secret_key")
    with pytest.raises(InvalidTypeError):
        MemoryStorage(fernet_key=12)  # type: ignore[arg-type]


# -- bot state -------------------------------------------------------------------------------


KV_BACKENDS = ["memory", "sqlite-file", "json", "mongo-pymongo", "redis"]

from .kv.conftest import marks as kv_marks  # noqa: E402 - beside its one use


@pytest.fixture(params=[pytest.param(name, marks=kv_marks(name)) for name in KV_BACKENDS])
async def sealed_kv(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    from pyrogram_storage import kv

    from .kv.conftest import make_kv_of

    make = make_kv_of(request.param, request, tmp_path)
    store = make(serializer=kv.SealedSerializer(RAW_KEY))
    await store.open()
    try:
        yield store, make, request.param
    finally:
        await store.close()


class _Verbatim:
    """A serializer that hands back the stored text itself: what a dump holds."""

    def dumps(self, value: Any) -> str:
        return str(value)

    def loads(self, text: str) -> Any:
        return text


async def test_kv_values_are_sealed_when_asked(sealed_kv: Any) -> None:
    from pyrogram_storage import kv

    store, make, backend = sealed_kv
    value = {"card": "4111 1111 1111 1111", "tags": {"a", "b"}}
    await store.set("user:1", value)
    assert await store.get("user:1") == value
    assert await store.compare_and_set("user:1", {"card": "x"}, expected=value)
    assert await store.get("user:1") == {"card": "x"}
    await store.set("secret", "4111 1111 1111 1111")
    await store.set("count", 5)
    assert await store.increment("count") == 6  # integers stay numbers
    if backend == "memory":
        return  # one object's data: nothing else can read it
    await store.close()
    verbatim = make(serializer=_Verbatim())
    await verbatim.open()
    try:
        text = await verbatim.get("secret")
        assert text.startswith("pse:") and "4111" not in text
    finally:
        await verbatim.close()
    other = make(serializer=kv.SealedSerializer(OTHER_KEY))
    await other.open()
    try:
        with pytest.raises(kv.CorruptValueError) as caught:
            await other.get("secret")
        assert isinstance(caught.value.__cause__, EncryptionKeyError)
    finally:
        await other.close()
    await store.open()
