"""Wrong types in stored data: every read checks what it hands out.

A damaged or foreign-written session (text in an id column, an int auth key, bytes
that are not UTF-8) raises CorruptSessionError naming the field, from every public
read and from the tools built on them; never a raw TypeError, never a traceback that
quotes the stored value (it may be a secret).
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from pyrogram_storage import (
    CorruptSessionError,
    FileStorage,
    MemoryStorage,
    Peer,
    PeerType,
    UpdateState,
    copy_session,
)

SECRET = "a" * 512  # a TEXT "auth key" that must never show up anywhere


async def _session_file(tmp_path: Path) -> Path:
    async with FileStorage("s", tmp_path, commit_interval=0) as storage:
        await storage.update_session(dc_id=2, api_id=1, test_mode=False, auth_key=bytes(256))
        await storage.update_session(user_id=5, is_bot=False)
        await storage.upsert_peers([Peer(1, 11, PeerType.USER, ("alice",), "1555")])
        await storage.set_update_states([UpdateState(0, 1, 2, 3, 4)])
    return tmp_path / "s.session"


def _damage(path: Path, *statements: str, params: tuple[Any, ...] = ()) -> None:
    with sqlite3.connect(path) as db:
        for statement in statements:
            db.execute(statement, params if "?" in statement else ())
    db.close()


def _chain(exc: BaseException) -> str:
    text = []
    while exc is not None:
        text.append(f"{type(exc).__name__}: {exc}")
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return "\n".join(text)


@pytest.mark.parametrize(
    ("statement", "params", "field"),
    [
        ("UPDATE sessions SET auth_key = ?", (SECRET,), "auth key"),
        ("UPDATE sessions SET auth_key = 12345", (), "auth key"),
        ("UPDATE sessions SET auth_key = ?", (b"short",), "auth key of 5 bytes"),
        ("UPDATE sessions SET api_id = 'two'", (), "api_id"),
        ("UPDATE sessions SET user_id = 'five'", (), "user_id"),
        ("UPDATE sessions SET test_mode = 'maybe'", (), "test_mode"),
    ],
)
async def test_a_damaged_session_row_is_refused_at_open(
    tmp_path: Path, statement: str, params: tuple[Any, ...], field: str, caplog: Any
) -> None:
    path = await _session_file(tmp_path)
    _damage(path, statement, params=params)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(CorruptSessionError, match=field) as info:
        await FileStorage("s", tmp_path).open()
    assert SECRET not in _chain(info.value)
    assert SECRET not in caplog.text
    # The storage released everything: a correct open works once the row is fixed.
    _damage(
        path,
        "UPDATE sessions SET auth_key = ?, api_id = 1, user_id = 5, test_mode = 0",
        params=(bytes(256),),
    )
    async with FileStorage("s", tmp_path) as storage:
        assert (await storage.get_session()).user_id == 5


@pytest.mark.parametrize(
    ("statement", "field"),
    [
        ("UPDATE peers SET access_hash = 'eleven' WHERE id = 1", "access_hash"),
        ("UPDATE peers SET type = X'07' WHERE id = 1", "peer type"),
        ("UPDATE peers SET phone_number = X'31' WHERE id = 1", "phone number"),
        ("UPDATE peers SET last_update_on = 'now' WHERE id = 1", "last_update_on"),
        ("UPDATE usernames SET username = X'99' WHERE id = 1", "usernames"),
    ],
)
async def test_damaged_peers_are_refused_by_every_read(
    tmp_path: Path, statement: str, field: str
) -> None:
    path = await _session_file(tmp_path)
    _damage(path, statement)
    async with FileStorage("s", tmp_path, username_ttl=None) as storage:
        reads = [_all_peers(storage), storage.peer_by_id(1)]
        if "username" not in statement:
            reads.append(storage.peer_by_username("alice"))
        if "phone" not in statement:
            reads.append(storage.peer_by_phone("1555"))
        for read in reads:
            with pytest.raises(CorruptSessionError, match=field):
                await read
        with pytest.raises(CorruptSessionError, match=field):
            await copy_session(storage, MemoryStorage())


async def _all_peers(storage: FileStorage) -> None:
    async for _ in storage.iter_peers():
        pass


async def test_damaged_update_states_are_refused(tmp_path: Path) -> None:
    path = await _session_file(tmp_path)
    _damage(path, "UPDATE update_state SET pts = 'x' WHERE id = 0")
    async with FileStorage("s", tmp_path) as storage:
        with pytest.raises(CorruptSessionError, match="update state pts"):
            await storage.get_update_states()


async def test_text_that_is_not_utf8_is_corrupt_and_not_quoted(tmp_path: Path, caplog: Any) -> None:
    path = await _session_file(tmp_path)
    _damage(
        path,
        "UPDATE peers SET phone_number = CAST(? AS TEXT) WHERE id = 1",
        params=(b"\xff\xfe" + SECRET.encode(),),
    )
    caplog.set_level(logging.DEBUG)
    async with FileStorage("s", tmp_path) as storage:
        with pytest.raises(CorruptSessionError, match="not UTF-8") as info:
            await storage.peer_by_id(1)
    assert SECRET not in _chain(info.value) and SECRET not in caplog.text


class _Int64(int):
    """What MongoDB's drivers decode a 64-bit integer as (bson.int64.Int64): an int subclass."""


async def test_int_subclasses_from_a_backend_are_ints_not_damage() -> None:
    """A check by ``in range(...)`` scanned the range for int subclasses: a hang."""
    from .readme_backend import dict_storage

    storage = dict_storage()("ints")
    async with storage:
        big = _Int64(2**62 + 5)
        storage.data["peers"][big] = Peer(big, _Int64(-(2**63)), PeerType.USER, ("big",))
        storage.data["states"][0] = UpdateState(0, _Int64(2**40), None, _Int64(1), None)
        assert (await storage.peer_by_id(2**62 + 5)).access_hash == -(2**63)
        assert (await storage.peer_by_username("big")).id == 2**62 + 5
        assert (await storage.get_update_states())[0].pts == 2**40
        storage.data["peers"][7] = Peer(7, _Int64(2**63), PeerType.USER, ("huge",))
        with pytest.raises(CorruptSessionError, match="access_hash"):
            await storage.peer_by_id(7)


@pytest.mark.mongo
@pytest.mark.parametrize(
    ("collection", "document", "field", "read"),
    [
        ("session", {"_id": 0, "auth_key": 10**700, "dc_id": 2, "date": 0}, "auth key", "open"),
        ("session", {"_id": 0, "auth_key": SECRET, "dc_id": 2, "date": 0}, "auth key", "open"),
        ("session", {"_id": 0, "dc_id": "two", "date": 0}, "dc_id", "open"),
        ("peers", {"_id": 1, "access_hash": "x", "type": "user"}, "access_hash", "peer"),
        ("peers", {"_id": 1, "access_hash": 1, "type": 5}, "peer type", "peer"),
        ("peers", {"_id": 1, "access_hash": 1, "type": "user", "phone_number": 1}, "phone", "peer"),
        ("update_state", {"_id": 0, "pts": "many"}, "update state pts", "states"),
    ],
)
async def test_damaged_mongodb_documents_are_refused(
    mongo_uri: str, collection: str, document: dict[str, Any], field: str, read: str
) -> None:
    """Before: an int auth_key became a 300 MB key (bytes(int)), others raw MemoryError."""
    import uuid

    import pymongo

    from pyrogram_storage import from_url

    name = f"damaged_{uuid.uuid4().hex[:12]}"
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(mongo_uri)
    try:
        async with from_url(f"{mongo_uri}#{name}"):
            pass  # creates the session and the schema document
        big = document.get("auth_key") == 10**700
        if big:  # BSON cannot hold it: the largest int it stores, as an "auth key"
            document = {**document, "auth_key": 2**62}
        client[name][collection].replace_one({"_id": document["_id"]}, document, upsert=True)
        storage = from_url(f"{mongo_uri}#{name}")
        if read == "open":
            with pytest.raises(CorruptSessionError, match=field) as info:
                await storage.open()
            assert SECRET not in _chain(info.value)
            return
        async with storage:
            with pytest.raises(CorruptSessionError, match=field):
                if read == "peer":
                    await storage.peer_by_id(1)
                else:
                    await storage.get_update_states()
    finally:
        client.drop_database(name)
        client.close()
