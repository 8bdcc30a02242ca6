"""FileStorage opens the .session files every client wrote, keeping auth data and peers."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from pyrogram_storage import (
    CorruptSessionError,
    FileStorage,
    Peer,
    PeerType,
    SchemaTooNewError,
    UnknownSchemaError,
    UpdateState,
    _migrations,
)
from pyrogram_storage.sqlite import schema as sqlite_schema

from .fixture_files import CLIENT_NAMES, copy_fixture, manifest

assert len(CLIENT_NAMES) == 7, CLIENT_NAMES


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("client", CLIENT_NAMES)
async def test_client_file_opens_with_auth_data_and_every_peer(client: str, tmp_path: Path) -> None:
    expected = manifest(client)
    copy_fixture(client, tmp_path)
    # The fixtures were written long ago; usernames would have expired under the 8 h rule.
    for attempt in range(2):  # the second open sees the already-adopted file
        async with FileStorage(client, tmp_path, username_ttl=None) as storage:
            session = await storage.get_session()
            wanted = expected["session"]
            assert session.auth_key == bytes.fromhex(wanted["auth_key"])
            assert session.dc_id == wanted["dc_id"]
            assert session.api_id == wanted["api_id"]
            assert session.user_id == wanted["user_id"]
            assert session.is_bot is bool(wanted["is_bot"])
            assert session.test_mode is bool(wanted["test_mode"])
            assert await storage.export_session_string() == expected["session_string"]
            for peer in expected["peers"]:
                stored = await storage.peer_by_id(peer["id"])
                assert (stored.access_hash, stored.type.value) == (
                    peer["access_hash"],
                    peer["type"],
                )
                assert stored.type.is_known
                for username in peer["resolvable_usernames"]:
                    assert (await storage.peer_by_username(username)).id == peer["id"]
                    assert username in (stored.usernames or ())
                if peer.get("phone_number"):
                    assert (await storage.peer_by_phone(peer["phone_number"])).id == peer["id"]
            assert await storage.count_peers_by_type() == _counts(expected["peers"])
            states = {s.id: s for s in await storage.get_update_states()}
            assert states == {
                row[0]: UpdateState(*row) for row in expected.get("update_states") or []
            }, attempt


def _counts(peers: list[dict[str, object]]) -> dict[PeerType, int]:
    counts: dict[PeerType, int] = {}
    for peer in peers:
        kind = PeerType(str(peer["type"]))
        counts[kind] = counts.get(kind, 0) + 1
    return counts


@pytest.mark.parametrize("client", CLIENT_NAMES)
async def test_adopted_client_file_takes_new_writes(client: str, tmp_path: Path) -> None:
    copy_fixture(client, tmp_path)
    async with FileStorage(client, tmp_path, username_ttl=None) as storage:
        await storage.upsert_peers(
            [Peer(42, 4242, PeerType.USER, ("newcomer", "alias"), "15550042")]
        )
        await storage.set_update_states([UpdateState(0, pts=1)])
    async with FileStorage(client, tmp_path) as storage:
        assert (await storage.peer_by_username("alias")).access_hash == 4242
        assert (await storage.get_update_states([0]))[0].pts == 1


async def _our_file(tmp_path: Path) -> Path:
    async with FileStorage("ours", tmp_path) as storage:
        await storage.upsert_peers([Peer(1, 1, PeerType.USER, ("one",))])
    return tmp_path / "ours.session"


async def test_newer_schema_is_refused_and_left_byte_identical(tmp_path: Path) -> None:
    path = await _our_file(tmp_path)
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {_migrations.latest('sqlite') + 1}")
    db.close()
    before = digest(path)
    with pytest.raises(SchemaTooNewError, match="upgrade pyrogram-storage"):
        await FileStorage("ours", tmp_path).open()
    assert digest(path) == before


@pytest.mark.parametrize(
    "content, error",
    [
        (b"", CorruptSessionError),
        (b"this is not a database at all" * 50, CorruptSessionError),
        ("truncated", CorruptSessionError),
        ("foreign", UnknownSchemaError),
    ],
    ids=["zero-byte", "garbage", "truncated", "foreign-schema"],
)
async def test_unusable_files_raise_and_stay_byte_identical(
    tmp_path: Path, content: bytes | str, error: type[Exception]
) -> None:
    path = tmp_path / "bad.session"
    if content == "truncated":
        source = await _our_file(tmp_path)
        async with FileStorage("ours", tmp_path) as storage:
            await storage.upsert_peers(
                [Peer(i, i, PeerType.USER, (f"user{i}",)) for i in range(2, 3000)]
            )
        data = source.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif content == "foreign":
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE entities (id INTEGER PRIMARY KEY, hash INTEGER)")
        db.close()
    else:
        assert isinstance(content, bytes)
        path.write_bytes(content)
    before = digest(path)
    with pytest.raises(error) as info:
        await FileStorage("bad", tmp_path).open()
    assert "left untouched" in str(info.value)
    assert digest(path) == before
    assert sorted(p.name for p in tmp_path.glob("bad.session*")) == ["bad.session"]


async def test_new_file_is_private_from_the_first_byte(tmp_path: Path) -> None:
    storage = FileStorage("private", tmp_path / "nested")
    await storage.open()
    try:
        await storage.upsert_peers([Peer(1, 1, PeerType.USER)])
        for path in (tmp_path / "nested").glob("private.session*"):
            assert path.stat().st_mode & 0o777 == 0o600, path
        assert (tmp_path / "nested").stat().st_mode & 0o777 == 0o700
    finally:
        await storage.close()


# -- files that must be refused before anything is written (issue 10, items 7 and 8) ----------


def _state(path: Path) -> tuple[str, list[str]]:
    """The file's bytes and the side files next to it: what "left untouched" means."""
    return digest(path), sorted(p.name for p in path.parent.glob(f"{path.name}*"))


@pytest.mark.parametrize("user_version", [1, -1, -(2**31)])
async def test_a_foreign_file_claiming_a_schema_version_is_refused_byte_identical(
    tmp_path: Path, user_version: int
) -> None:
    """Our schema is checked read-only first: no WAL switch, no script run inside it."""
    path = tmp_path / "bad.session"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE entities (id INTEGER PRIMARY KEY, hash INTEGER)")
        db.execute(f"PRAGMA user_version = {user_version}")
    db.close()
    before = _state(path)
    with pytest.raises(UnknownSchemaError, match="left untouched"):
        await FileStorage("bad", tmp_path).open()
    assert _state(path) == before


@pytest.mark.parametrize("user_version", [1, -3])
async def test_a_client_file_with_a_schema_version_it_never_had_is_refused(
    tmp_path: Path, user_version: int
) -> None:
    path = copy_fixture("kurigram", tmp_path)
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {user_version}")
    db.close()
    before = _state(path)
    with pytest.raises(UnknownSchemaError, match="left untouched"):
        await FileStorage("kurigram", tmp_path).open()
    assert _state(path) == before


async def test_our_file_without_a_table_of_ours_is_refused(tmp_path: Path) -> None:
    path = await _our_file(tmp_path)
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE update_state")
    db.close()
    before = _state(path)
    with pytest.raises(UnknownSchemaError, match="update_state"):
        await FileStorage("ours", tmp_path).open()
    assert _state(path) == before


@pytest.mark.parametrize(
    "client, number, family",
    [
        ("kurigram", 999, "Kurigram"),
        ("irenogram", 8, "Irenogram"),
        ("pyrotgfork", 8, "Pyrotgfork"),
        ("pyrofork", 5, "Pyrofork"),
        ("electrogram", 5, "Electrogram"),
        ("pyrogram", 4, "Pyrogram"),
        ("hydrogram", 4, "Hydrogram"),
    ],
)
async def test_a_file_from_a_newer_client_release_is_refused_byte_identical(
    client: str, number: int, family: str, tmp_path: Path
) -> None:
    """We cannot know what a newer client's schema needs: refuse rather than rewrite it."""
    path = copy_fixture(client, tmp_path)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE version SET number = ?", (number,))
    db.close()  # the last connection checkpoints a WAL file: what is left is the file
    before = _state(path)
    with pytest.raises(SchemaTooNewError) as info:
        await FileStorage(client, tmp_path).open()
    assert f"client schema version is {number}" in str(info.value)
    assert family in str(info.value) and "left untouched" in str(info.value)
    assert _state(path) == before


async def test_is_current_reads_only_and_refuses_what_claims_to_be_ours(tmp_path: Path) -> None:
    """The read-only open path asks is_current() instead of prepare(): same refusals."""
    path = await _our_file(tmp_path)
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        assert sqlite_schema.is_current(db, str(path))
        assert sqlite_schema.current_layout(db) is sqlite_schema.Layout.UPSTREAM
    finally:
        db.close()
    client = copy_fixture("kurigram", tmp_path)
    foreign = tmp_path / "foreign.session"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE entities (id INTEGER PRIMARY KEY)")
        db.execute("PRAGMA user_version = 1")
    db.close()
    for candidate, current in ((client, False), (foreign, None)):
        before = _state(candidate)
        db = sqlite3.connect(f"file:{candidate}?mode=ro", uri=True)
        try:
            if current is None:
                with pytest.raises(UnknownSchemaError, match="left untouched"):
                    sqlite_schema.is_current(db, str(candidate))
            else:
                assert sqlite_schema.is_current(db, str(candidate)) is current
        finally:
            db.close()
        assert _state(candidate) == before
