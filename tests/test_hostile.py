"""Hostile input: mutated session strings, damaged session files, odd peers.

Counts scale with ``PYROGRAM_STORAGE_FULL=1`` (``make test-full``): 200k mutated
session strings and 400 damaged files instead of the CI-sized runs.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import random
import shutil
import sqlite3
import struct
import tempfile
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyrogram_storage import (
    CorruptSessionError,
    FileStorage,
    MemoryStorage,
    Peer,
    PeerNotFound,
    PeerType,
    SessionData,
    SessionStringError,
    Storage,
    StorageError,
    UnknownSchemaError,
    UpdateState,
)
from pyrogram_storage.session_string import (
    SessionStringFormat,
    decode_session_string,
    encode_session_string,
)
from pyrogram_storage.sqlite_schema import Layout, prepare, secure
from pyrogram_storage.tools.telethon import decode_telethon_string, encode_telethon_string

from .fixture_files import CLIENT_NAMES, copy_fixture

FULL = os.environ.get("PYROGRAM_STORAGE_FULL") == "1"
STRING_MUTATIONS = int(os.environ.get("PYROGRAM_STORAGE_FUZZ_STRINGS", 200_000 if FULL else 20_000))
FILE_MUTATIONS = int(os.environ.get("PYROGRAM_STORAGE_FUZZ_FILES", 400 if FULL else 40))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- session strings -------------------------------------------------------------------------


def _seed_strings(rng: random.Random) -> list[str]:
    """Valid strings of every accepted format and spelling, and Telethon strings."""
    seeds = []
    for _ in range(8):
        key = rng.randbytes(256)
        session = SessionData(
            dc_id=rng.randint(1, 5),
            api_id=rng.randint(1, 2**31),
            test_mode=rng.random() < 0.5,
            auth_key=key,
            user_id=rng.randint(1, 2**40),
            is_bot=rng.random() < 0.5,
        )
        current = encode_session_string(session)
        seeds += [
            current,
            current + "=" * (-len(current) % 4),
            base64.b64encode(base64.urlsafe_b64decode(current + "==")).decode(),
            f'  "{current}"\n',
        ]
        for fmt, uid in (
            (SessionStringFormat.OLD_64, session.user_id),
            (SessionStringFormat.OLD_32, session.user_id % 2**32),
        ):
            raw = struct.pack(fmt.value, session.dc_id, session.test_mode, key, uid, False)
            seeds.append(base64.urlsafe_b64encode(raw).decode().rstrip("="))
        for address in ("149.154.167.51", "2001:db8::1"):
            seeds.append(encode_telethon_string(session.replace(server_address=address, port=443)))
    return seeds


_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/="
_FOREIGN = "\x00\t\n\r \"'`\\.,:;!?@#$%^&*()[]{}<>~|é€😀\u200b\ufeff\udc80\ud800"


def _mutate(text: str, rng: random.Random) -> str:
    """Apply one to three random mutations to ``text``."""
    for _ in range(rng.randint(1, 3)):
        kind = rng.randrange(12)
        at = rng.randrange(len(text) + 1)
        if kind == 0 and text:  # flip one bit of one character
            i = rng.randrange(len(text))
            text = text[:i] + chr(ord(text[i]) ^ (1 << rng.randrange(8))) + text[i + 1 :]
        elif kind == 1:  # truncate
            text = text[:at]
        elif kind == 2:  # drop the head
            text = text[at:]
        elif kind == 3 and text:  # replace characters from the base64 alphabets
            i = rng.randrange(len(text))
            text = text[:i] + rng.choice(_ALPHABET) + text[i + 1 :]
        elif kind == 4:  # wrong alphabet
            text = text[:at] + rng.choice(_FOREIGN) + text[at:]
        elif kind == 5:  # insert or delete a run
            if rng.random() < 0.5:
                text = text[:at] + "".join(rng.choices(_ALPHABET, k=rng.randint(1, 8))) + text[at:]
            else:
                text = text[:at] + text[at + rng.randint(1, 8) :]
        elif kind == 6:  # flip bits in the decoded bytes, re-encode (valid base64, bad data)
            try:
                raw = bytearray(base64.urlsafe_b64decode(text.strip() + "=" * 3))
            except Exception:
                continue
            if raw:
                raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
                text = base64.urlsafe_b64encode(bytes(raw)).decode()
        elif kind == 7:  # huge (up to about a megabyte)
            return ((text or "A") * rng.choice((3, 100, 3000)))[: 10**6]
        elif kind == 8:  # empty or blank
            text = rng.choice(("", " ", "\n\t", '""', "''", "=", "===="))
        elif kind == 9:  # padding in odd places
            text = text[:at] + "=" * rng.randint(1, 3) + text[at:]
        elif kind == 10:  # random bytes of a plausible length as base64
            size = rng.choice((263, 267, 271, 275, 263 + 12, 270, 272, 0, 1, 1000))
            text = base64.urlsafe_b64encode(rng.randbytes(size)).decode()
            if rng.random() < 0.3:
                text = "1" + text  # a Telethon-looking prefix
        else:  # the other library's marker
            text = rng.choice(("1", "2", "0")) + text
    return text


def _outcome(decode: Callable[[str], object], text: str) -> str:
    try:
        decode(text)
    except SessionStringError:
        return "refused"
    return "decoded"


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::pyrogram_storage.tools.telethon.IncompleteSessionWarning")
def test_fuzzed_session_strings_raise_only_session_string_error() -> None:
    seed = int(os.environ.get("PYROGRAM_STORAGE_FUZZ_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    seeds = _seed_strings(rng)
    outcomes: Counter[str] = Counter()
    for n in range(STRING_MUTATIONS):
        text = _mutate(rng.choice(seeds), rng)
        try:
            ours = _outcome(decode_session_string, text)
            theirs = _outcome(decode_telethon_string, text)
        except BaseException as exc:
            message = f"mutation {n} (seed {seed}): {text[:200]!r}… ({len(text)} chars)"
            raise AssertionError(message) from exc
        outcomes[f"pyrogram {ours}"] += 1
        outcomes[f"telethon {theirs}"] += 1
        if ours == "decoded":
            # Whatever decodes is a well-formed session that encodes again.
            session = decode_session_string(text)
            assert 1 <= session.dc_id <= 255 and len(session.auth_key or b"") == 256
            if session.api_id is not None:
                assert decode_session_string(encode_session_string(session)) == session
    print(f"\nfuzz: {STRING_MUTATIONS} mutated strings (seed {seed}): {dict(outcomes)}")
    assert outcomes["pyrogram refused"] > STRING_MUTATIONS // 2


@pytest.mark.filterwarnings("ignore::pyrogram_storage.tools.telethon.IncompleteSessionWarning")
@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=255, max_size=280), st.booleans(), st.booleans())
def test_any_bytes_of_a_plausible_size_decode_or_raise_session_string_error(
    raw: bytes, urlsafe: bool, padded: bool
) -> None:
    text = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(raw).decode()
    text = text if padded else text.rstrip("=")
    for decode in (decode_session_string, decode_telethon_string, decode_telethon_string):
        with contextlib.suppress(SessionStringError):
            decode(text)  # type: ignore[operator]
        text = "1" + text


@pytest.mark.filterwarnings("ignore::pyrogram_storage.tools.telethon.IncompleteSessionWarning")
@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec=None), max_size=1200))
def test_any_unicode_including_surrogates_raises_only_session_string_error(text: str) -> None:
    for decode in (decode_session_string, decode_telethon_string):
        with contextlib.suppress(SessionStringError):
            decode(text)  # type: ignore[operator]


@pytest.mark.parametrize("kind", ["memory", "file"])
async def test_hostile_strings_leave_the_stored_session_intact(kind: str, tmp_path: Path) -> None:
    rng = random.Random(6)
    storage: Storage = MemoryStorage("m") if kind == "memory" else FileStorage("f", tmp_path)
    good = _seed_strings(rng)[0]
    async with storage:
        await storage.import_session_string(good)
        await storage.upsert_peers([Peer(5, 55, PeerType.USER, ("keep",))])
        before = await storage.get_session()
        for _ in range(300):
            text = _mutate(good, rng)
            try:
                decode_session_string(text)
            except SessionStringError:
                with pytest.raises(SessionStringError):
                    await storage.import_session_string(text)
                assert await storage.get_session() == before
        assert (await storage.peer_by_username("keep")).id == 5
        assert await storage.export_session_string() == good


def test_a_bad_constructor_string_creates_no_file(tmp_path: Path) -> None:
    for text in ("", "1" + "A" * 352, "x" * 10**6, "\ud800" * 362):
        with pytest.raises(SessionStringError):
            FileStorage("never", tmp_path, session_string=text)
    assert list(tmp_path.iterdir()) == []


# -- damaged session files -------------------------------------------------------------------


async def _real_file(workdir: Path, peers: int = 3000) -> Path:
    """A session file of ours with enough peers to span many pages and an index or two."""
    async with FileStorage("real", workdir, username_ttl=None) as storage:
        await storage.update_session(
            dc_id=2, api_id=1, test_mode=False, auth_key=bytes(range(256)), user_id=7, is_bot=False
        )
        await storage.upsert_peers(
            Peer(i, i * 3, PeerType.USER, (f"user{i}", f"alias{i}"), f"1555{i:07d}")
            for i in range(1, peers + 1)
        )
        await storage.set_update_states([UpdateState(i, i, i, i, i) for i in range(50)])
    path = workdir / "real.session"
    assert not Path(f"{path}-wal").exists()  # close() checkpointed everything
    return path


async def _read_everything(storage: Storage) -> None:
    """Every read a client may make; PeerNotFound is an answer, not a failure."""
    await storage.get_session()
    await storage.count_peers()
    await storage.get_update_states()
    async for _ in storage.iter_peers(batch_size=700):
        pass
    for peer_id in (1, 2, 1500, 2999, 3000, 10**9):
        for lookup, key in (
            (storage.peer_by_id, peer_id),
            (storage.peer_by_username, f"alias{peer_id}"),
            (storage.peer_by_phone, f"1555{peer_id:07d}"),
        ):
            with contextlib.suppress(PeerNotFound):
                await lookup(key)  # type: ignore[operator]


def _damage(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    kind = rng.randrange(4)
    if kind == 0:
        cut = rng.randrange(len(data))
        return data[:cut], f"truncated at {cut}"
    damaged = bytearray(data)
    if kind == 1:
        spots = [rng.randrange(len(data)) for _ in range(rng.randint(1, 16))]
        for spot in spots:
            damaged[spot] ^= 1 << rng.randrange(8)
        return bytes(damaged), f"bit flips at {sorted(spots)}"
    if kind == 2:
        start = rng.randrange(len(data))
        size = rng.randint(1, 4096)
        damaged[start : start + size] = rng.randbytes(len(damaged[start : start + size]))
        return bytes(damaged), f"{size} random bytes at {start}"
    page = 4096
    start = rng.randrange(len(data) // page) * page
    damaged[start : start + page] = bytes(page)
    return bytes(damaged), f"page at {start} zeroed"


@pytest.mark.slow
async def test_damaged_files_fail_with_our_errors_and_are_not_made_worse(tmp_path: Path) -> None:
    seed = int(os.environ.get("PYROGRAM_STORAGE_FUZZ_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    original = (await _real_file(tmp_path / "source")).read_bytes()
    outcomes: Counter[str] = Counter()
    workdir = tmp_path / "damaged"
    for n in range(FILE_MUTATIONS):
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir()
        data, how = _damage(original, rng)
        path = workdir / "real.session"
        path.write_bytes(data)
        before = digest(path)
        stage = "open"
        try:
            storage = FileStorage("real", workdir, username_ttl=None)
            try:
                await storage.open()
                stage = "read"
                await _read_everything(storage)
                stage = "fine"
            finally:
                await storage.close()
        except StorageError as exc:
            # Our error, never a raw sqlite3 one (it may be the cause).
            assert not isinstance(exc, sqlite3.Error)
            cause = str(exc.__cause__)
            # Damage found only when a query reached it is still called damage.
            if "malformed" in cause or "decode to UTF-8" in cause:
                assert isinstance(exc, CorruptSessionError), repr(exc)
            outcomes[f"{stage}: {type(exc).__name__}"] += 1
        except BaseException as exc:
            raise AssertionError(f"damage {n} (seed {seed}): {how}") from exc
        else:
            outcomes["undetected (reads fine)"] += 1
        assert digest(path) == before, f"damage {n} (seed {seed}, {how}): the file was changed"
        leftovers = sorted(p.name for p in workdir.iterdir())
        assert set(leftovers) <= {"real.session", "real.session.lock"}, (how, leftovers)
    print(f"\ndamaged files: {FILE_MUTATIONS} (seed {seed}): {dict(outcomes)}")


# -- odd peers -------------------------------------------------------------------------------

_INT64 = st.integers(-(2**63), 2**63 - 1)
_USERNAME = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="@\x00"), min_size=1, max_size=80
).filter(lambda s: s.strip().lstrip("@").strip() == s and s.lower() == s.lower().strip())
_PHONE = st.one_of(st.none(), st.from_regex(r"\+?[0-9][0-9 \-]{0,30}", fullmatch=True))
_TYPE = st.one_of(st.sampled_from(list(PeerType)), st.text(min_size=1, max_size=20).map(PeerType))


@st.composite
def _peers(draw: st.DrawFn) -> list[Peer]:
    ids = draw(st.lists(_INT64, min_size=1, max_size=12, unique=True))
    taken: set[str] = set()
    peers = []
    for peer_id in ids:
        names = []
        for name in draw(st.lists(_USERNAME, max_size=3)):
            key = name.lower()
            if key not in taken and key.lstrip("@"):
                taken.add(key)
                names.append(name)
        peers.append(Peer(peer_id, draw(_INT64), draw(_TYPE), tuple(names), draw(_PHONE), None))
    return peers


@pytest.mark.parametrize("kind", ["memory", "file"])
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(peers=_peers())
async def test_odd_peers_are_stored_and_found(kind: str, peers: list[Peer]) -> None:
    with tempfile.TemporaryDirectory() as workdir:
        storage: Storage = MemoryStorage("odd") if kind == "memory" else FileStorage("odd", workdir)
        for attempt in range(2):  # the second pass reads a reopened storage
            async with storage:
                if attempt == 0:
                    await storage.upsert_peers(peers)
                for peer in peers:
                    stored = await storage.peer_by_id(peer.id)
                    assert (stored.access_hash, stored.type.value) == (
                        peer.access_hash,
                        peer.type.value,
                    )
                    assert stored.usernames == tuple(n.lower() for n in peer.usernames or ())
                    for name in peer.usernames or ():
                        if name.upper().lower() == name.lower():  # not for "ß" -> "SS"
                            assert (await storage.peer_by_username(name.upper())).id == peer.id
                        assert (await storage.peer_by_username("@" + name)).id == peer.id
                    phone = peer.phone_number
                    if phone is not None and any(c.isdigit() for c in phone):
                        found = await storage.peer_by_phone(peer.phone_number)
                        assert found.phone_number == stored.phone_number
                    elif peer.phone_number is None:
                        assert stored.phone_number is None
                assert sum((await storage.count_peers()).values()) == len(peers)


@pytest.mark.mongo
@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(peers=_peers())
async def test_odd_peers_are_stored_and_found_in_mongo(mongo_uri: str, peers: list[Peer]) -> None:
    from pyrogram_storage.mongo import MongoStorage

    name = f"odd_{uuid.uuid4().hex[:12]}"
    storage = MongoStorage.from_url(mongo_uri, name=name, username_ttl=None)
    try:
        async with storage:
            await storage.upsert_peers(peers)
            for peer in peers:
                stored = await storage.peer_by_id(peer.id)
                assert (stored.access_hash, stored.type.value) == (
                    peer.access_hash,
                    peer.type.value,
                )
                assert stored.usernames == tuple(n.lower() for n in peer.usernames or ())
                for name in peer.usernames or ():
                    assert (await storage.peer_by_username("@" + name)).id == peer.id
                phone = peer.phone_number
                if phone is not None and any(c.isdigit() for c in phone):
                    found = await storage.peer_by_phone(phone)
                    assert found.phone_number == stored.phone_number
    finally:
        await storage.delete()


# -- planted schema objects (issue 10, item 9) -----------------------------------------------

# A trigger that copies every new auth key into a table of its own, and a view.
_PLANT = (
    "CREATE TABLE loot (key BLOB)",
    "CREATE TRIGGER steal AFTER UPDATE ON sessions BEGIN "
    "INSERT INTO loot VALUES (NEW.auth_key); END",
    "CREATE TRIGGER steal_peers AFTER INSERT ON peers BEGIN "
    "INSERT INTO loot VALUES (NEW.access_hash); END",
    "CREATE VIEW keys AS SELECT auth_key FROM sessions",
)


def _plant(path: Path, *statements: str) -> None:
    with sqlite3.connect(path) as db:
        for statement in statements:
            db.execute(statement)
    db.close()


def _loot(path: Path) -> list[tuple[object, ...]]:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT * FROM loot").fetchall()
    finally:
        db.close()


@pytest.mark.parametrize(
    "planted", [_PLANT[1], _PLANT[2], _PLANT[3]], ids=["trigger", "on-peers", "view"]
)
async def test_a_trigger_or_view_planted_in_our_file_is_refused_before_it_can_run(
    tmp_path: Path, planted: str
) -> None:
    async with FileStorage("ours", tmp_path) as storage:
        await storage.update_session(auth_key=bytes(256), dc_id=2, user_id=1)
    path = tmp_path / "ours.session"
    _plant(path, _PLANT[0], planted)
    before = digest(path)
    storage = FileStorage("ours", tmp_path)
    with pytest.raises(UnknownSchemaError, match="left untouched") as info:
        await storage.open()
        # Were it opened, these writes would fire the trigger.
        await storage.update_session(auth_key=bytes(range(256)))
        await storage.upsert_peers([Peer(5, 55, PeerType.USER)])
    name = planted.split()[2]
    assert repr(name) in str(info.value)
    assert digest(path) == before
    assert _loot(path) == []


@pytest.mark.parametrize("client", CLIENT_NAMES)
async def test_triggers_and_views_planted_in_a_client_file_are_dropped_on_adoption(
    client: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = copy_fixture(client, tmp_path)
    _plant(path, *_PLANT)
    async with FileStorage(client, tmp_path) as storage:
        await storage.update_session(auth_key=bytes(range(256)))
        await storage.upsert_peers([Peer(5, 55, PeerType.USER, ("five",))])
    assert _loot(path) == []
    with sqlite3.connect(path) as db:
        names = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    db.close()
    assert not {"steal", "steal_peers", "keys"} & names
    assert "trg_peers_last_update_on" in names  # the client's own trigger stays
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("'steal'" in w and "'keys'" in w for w in warnings), warnings
    # The adopted file opens again: what adoption kept is recognised as ours.
    async with FileStorage(client, tmp_path) as storage:
        assert (await storage.peer_by_id(5)).access_hash == 55


async def test_a_trigger_a_client_adds_to_our_file_is_accepted(tmp_path: Path) -> None:
    """Pyrofork creates its stamp trigger in any file it writes usernames to."""
    async with FileStorage("ours", tmp_path) as storage:
        await storage.upsert_peers([Peer(5, 55, PeerType.USER, ("five", "fiver"))])
    _plant(
        tmp_path / "ours.session",
        "CREATE TRIGGER trg_usernames_last_update_on AFTER UPDATE ON usernames\nBEGIN\n"
        "  UPDATE usernames SET last_update_on = CAST(STRFTIME('%s', 'now') AS INTEGER)\n"
        "  WHERE id = NEW.id;\nEND",
    )
    async with FileStorage("ours", tmp_path) as storage:
        assert (await storage.peer_by_username("fiver")).id == 5


def test_secure_connections_refuse_unsafe_functions_in_the_schema(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "planted.db")
    try:
        db.execute("CREATE TABLE t (a)")
        db.execute(
            "CREATE TRIGGER call AFTER INSERT ON t BEGIN SELECT load_extension('/nonexistent'); END"
        )
        secure(db)
        assert db.execute("PRAGMA trusted_schema").fetchone() == (0,)
        with pytest.raises(sqlite3.OperationalError, match="unsafe use of load_extension"):
            db.execute("INSERT INTO t VALUES (1)")
    finally:
        db.close()


def test_prepare_leaves_the_connection_secured() -> None:
    db = sqlite3.connect(":memory:", isolation_level=None)
    try:
        db.execute("PRAGMA trusted_schema = ON")
        prepare(db, ":memory:", Layout.UPSTREAM)
        assert db.execute("PRAGMA trusted_schema").fetchone() == (0,)
    finally:
        db.close()
