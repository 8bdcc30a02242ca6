"""Hostile input: mutated session strings, damaged session files, odd peers.

Counts scale with ``PYROGRAM_STORAGE_FULL=1`` (``make test-full``): 200k mutated
session strings and 400 damaged files instead of the CI-sized runs.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import fcntl
import hashlib
import os
import random
import shutil
import sqlite3
import stat
import struct
import subprocess
import sys
import tempfile
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyrogram_storage import (
    CorruptSessionError,
    DiskFullError,
    FileStorage,
    InvalidTypeError,
    InvalidValueError,
    MemoryStorage,
    Peer,
    PeerNotFound,
    PeerType,
    SessionData,
    SessionLocked,
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
from pyrogram_storage.sqlite.schema import Layout, prepare, secure
from pyrogram_storage.tools.telethon import decode_telethon_string, encode_telethon_string
from pyrogram_storage.types import dc_address

from .clientenv import CLIENTS, run_in_env
from .fixture_files import CLIENT_NAMES, copy_fixture

FULL = os.environ.get("PYROGRAM_STORAGE_FULL") == "1"
STRING_MUTATIONS = int(os.environ.get("PYROGRAM_STORAGE_FUZZ_STRINGS", 200_000 if FULL else 20_000))
FILE_MUTATIONS = int(os.environ.get("PYROGRAM_STORAGE_FUZZ_FILES", 400 if FULL else 40))


STRING_OF_KEY = encode_session_string(
    SessionData(
        dc_id=2, api_id=42, test_mode=False, auth_key=bytes(range(256)), user_id=7, is_bot=False
    )
)


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


async def _through_storage(texts: list[str], seed: int) -> Counter[str]:
    """Hand each text to a storage as a client would: ``MemoryStorage(session_string=...)``.

    The constructor may refuse it (only with SessionStringError); what it accepts must
    open, hold exactly the decoded session and export it again.
    """
    outcomes: Counter[str] = Counter()
    for n, text in enumerate(texts):
        where = f"storage check {n} (seed {seed}): {text[:200]!r}… ({len(text)} chars)"
        try:
            storage = MemoryStorage("fuzz", session_string=text)
        except SessionStringError:
            outcomes["storage refused"] += 1
            continue
        except BaseException as exc:
            raise AssertionError(where) from exc
        try:
            await storage.open()
            expected = decode_session_string(text)
            assert (await storage.get_session()).replace(date=0) == expected, where
            if expected.api_id is not None:
                exported = await storage.export_session_string()
                assert decode_session_string(exported) == expected, where
        except BaseException as exc:
            raise AssertionError(where) from exc
        finally:
            await storage.delete()
        outcomes["storage opened"] += 1
    return outcomes


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
    to_store: list[str] = []
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
            assert dc_address(session.dc_id, bool(session.test_mode)) is not None
            assert len(session.auth_key or b"") == 256
            assert session.user_id is not None and 1 <= session.user_id < 2**63
            if session.api_id is not None:
                assert 1 <= session.api_id < 2**31
                assert decode_session_string(encode_session_string(session)) == session
            to_store.append(text)
        elif n % 100 == 0:
            to_store.append(text)  # a sample of the refused ones, to the constructor too
    outcomes.update(asyncio.run(_through_storage(to_store, seed)))
    print(f"\nfuzz: {STRING_MUTATIONS} mutated strings (seed {seed}): {dict(outcomes)}")
    assert outcomes["pyrogram refused"] > STRING_MUTATIONS // 2
    assert outcomes["storage opened"] == outcomes["pyrogram decoded"]


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
    async for _ in storage.iter_peer_batches(700):
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
                assert await storage.count_peers() == len(peers)


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


# -- the file system: links, names, folders, stray files, lock contents ---------------------


def _names(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def _lock_fds(lock_name: str) -> list[str]:
    """The descriptors of this process open on a lock file named ``lock_name``."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            if lock_name in os.readlink(f"/proc/self/fd/{fd}"):
                found.append(fd)
    return found


async def _opens(workdir: Path, name: str = "me") -> None:
    storage = FileStorage(name, workdir)
    await storage.open()
    await storage.close()


@pytest.mark.parametrize("dangling", [False, True], ids=["to-a-file", "dangling"])
async def test_a_link_in_place_of_the_lock_file_is_refused(tmp_path: Path, dangling: bool) -> None:
    """Before, the lock was opened with O_CREAT and truncated: the link's target was wiped."""
    workdir = tmp_path / "sessions"
    workdir.mkdir()
    target = tmp_path / "precious.txt"
    if not dangling:
        target.write_bytes(b"keep me\n" * 100)
    (workdir / "me.session.lock").symlink_to(target)
    for attempt in (FileStorage("me", workdir).open, FileStorage("me", workdir).delete):
        with pytest.raises(StorageError, match="symbolic link"):
            await attempt()
    if dangling:
        assert not target.exists()
    else:
        assert target.read_bytes() == b"keep me\n" * 100
    assert _names(workdir) == ["me.session.lock"]


async def test_a_hard_link_or_a_folder_in_place_of_the_lock_file_is_refused(
    tmp_path: Path,
) -> None:
    other = tmp_path / "other.session"
    await _opens(tmp_path, "other")
    before = digest(other)
    os.link(other, tmp_path / "me.session.lock")
    with pytest.raises(StorageError, match="hard links"):
        await FileStorage("me", tmp_path).open()
    assert digest(other) == before
    (tmp_path / "me.session.lock").unlink()
    (tmp_path / "me.session.lock").mkdir()
    with pytest.raises(StorageError, match="not a regular file"):
        await FileStorage("me", tmp_path).open()
    assert not (tmp_path / "me.session").exists()


@pytest.mark.parametrize("suffix", ["", "-wal", "-shm", "-journal"])
@pytest.mark.parametrize("dangling", [False, True], ids=["to-a-session", "dangling"])
async def test_a_link_in_place_of_the_session_or_a_side_file_is_refused(
    tmp_path: Path, suffix: str, dangling: bool
) -> None:
    """A session file, or its journal, is never written through a link (SQLite follows some)."""
    workdir = tmp_path / "sessions"
    workdir.mkdir()
    if suffix:  # the session itself is real; only its side file is a link
        await _opens(workdir)
    victim = tmp_path / f"victim.session{suffix}"
    if not dangling:
        await _opens(tmp_path, "victim")
        victim = tmp_path / "victim.session"
    before = digest(victim) if victim.exists() else None
    (workdir / f"me.session{suffix}").symlink_to(victim)
    with pytest.raises(StorageError, match="symbolic link"):
        await FileStorage("me", workdir).open()
    assert (digest(victim) if victim.exists() else None) == before
    assert not (workdir / "me.session.lock").exists()


async def test_a_folder_in_place_of_the_session_file_is_a_storage_error(tmp_path: Path) -> None:
    (tmp_path / "me.session").mkdir()
    with pytest.raises(StorageError, match="not a file"):
        await FileStorage("me", tmp_path).open()
    await _opens(tmp_path, "other")  # and nothing is left locked


@pytest.mark.parametrize(
    "name",
    ["../x", "../../etc/x", "/tmp/x", "a/b", "a\\b", "x\x00y", "..", ".", "", ".session"],
)
def test_names_that_are_paths_are_refused_pointing_at_workdir(tmp_path: Path, name: str) -> None:
    workdir = tmp_path / "sessions"
    with pytest.raises(InvalidValueError, match="workdir="):
        FileStorage(name, workdir)
    assert _names(tmp_path) == []


async def test_a_trailing_session_suffix_is_the_file_name(tmp_path: Path) -> None:
    storage = FileStorage("me.session", tmp_path)
    assert storage.path == tmp_path / "me.session" and storage.name == "me"
    await storage.open()
    await storage.close()
    assert _names(tmp_path) == ["me.session"]


def test_careless_constructor_arguments_get_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidTypeError, match="session name must be str, not int"):
        FileStorage(123)  # type: ignore[arg-type]
    with pytest.raises(InvalidTypeError, match="workdir must be str or a path, not int"):
        FileStorage("me", 123)  # type: ignore[arg-type]
    with pytest.raises(InvalidTypeError, match="workdir must be str or a path, not bytes"):
        FileStorage("me", b"/tmp")  # type: ignore[arg-type]
    with pytest.raises(InvalidValueError, match="peer_cache_size"):
        FileStorage("me", tmp_path, peer_cache_size=-1)
    with pytest.raises(InvalidTypeError, match="peer_cache_size"):
        FileStorage("me", tmp_path, peer_cache_size=1.5)  # type: ignore[arg-type]
    for timeout in (-1, -0.5, float("nan"), float("inf")):
        with pytest.raises(InvalidValueError, match="busy_timeout"):
            FileStorage("me", tmp_path, busy_timeout=timeout)
    with pytest.raises(InvalidValueError, match="at most 200"):
        FileStorage("x" * 201, tmp_path)
    assert FileStorage("me", tmp_path, peer_cache_size=0, busy_timeout=0).path.parent == tmp_path
    assert _names(tmp_path) == []


def test_the_default_workdir_is_the_scripts_folder_as_for_the_clients(tmp_path: Path) -> None:
    """Run from elsewhere, a script finds its session beside it, where the client put it."""
    folder = tmp_path / "bot"
    folder.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = folder / "main.py"
    script.write_text(
        "import asyncio\n"
        "from pyrogram_storage import FileStorage\n"
        "async def main():\n"
        "    async with FileStorage('my_account') as storage:\n"
        "        print(storage.path)\n"
        "asyncio.run(main())\n"
    )
    for argv0 in (str(script), os.path.relpath(script, elsewhere)):
        done = subprocess.run(
            [sys.executable, argv0], cwd=elsewhere, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr
        assert (folder / "my_account.session").exists()
        assert _names(elsewhere) == []


@pytest.mark.clients
@pytest.mark.parametrize("client", list(CLIENTS))
def test_the_default_workdir_is_the_one_the_installed_client_computes(
    tmp_path: Path, client: str
) -> None:
    folder = tmp_path / "bot"
    folder.mkdir()
    script = folder / "main.py"
    script.write_text(
        f"from {CLIENTS[client].module} import Client\n"
        "from pyrogram_storage import FileStorage\n"
        "print(Client.WORKDIR)\n"
        "print(FileStorage('my_account').path.parent)\n"
    )
    done = run_in_env(client, script, cwd=tmp_path)
    theirs, ours = done.stdout.split()
    assert Path(theirs) == Path(ours)
    assert (tmp_path / ours).resolve() == folder.resolve()


async def test_a_missing_workdir_and_its_parents_are_made_0700_whatever_the_umask(
    tmp_path: Path,
) -> None:
    for umask in (0o000, 0o022, 0o277):
        workdir = tmp_path / f"u{umask:o}" / "a" / "b"
        previous = os.umask(umask)
        try:
            await _opens(workdir)
        finally:
            os.umask(previous)
        for folder in (workdir, workdir.parent, workdir.parent.parent):
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700, (oct(umask), folder)
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    await _opens(shared)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755  # a folder we did not make is left as is


async def test_stray_files_named_like_scratch_files_are_left_alone(tmp_path: Path) -> None:
    """Before, a folder named like a dead opener's scratch file raised raw IsADirectoryError."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    strays = [
        f".me.session.new-{dead.pid}-abcd0123",  # a folder
        ".me.session.new-99999999999999999999-ff",  # a pid no process can have
        ".me.session.new-\u00b2-ff",  # a digit int() refuses
    ]
    for stray in strays:
        (tmp_path / stray).mkdir()
    (tmp_path / f".me.session.new-{dead.pid}-link").symlink_to(tmp_path / "elsewhere")
    left = tmp_path / f".me.session.new-{dead.pid}-0badf00d"
    left.write_bytes(b"half-made")
    await _opens(tmp_path)
    assert not left.exists()  # the real leftover of a killed opener is removed
    assert set(strays) | {f".me.session.new-{dead.pid}-link"} <= set(_names(tmp_path))


@pytest.mark.parametrize(
    "content",
    [
        b'{"pid": 1, "host": "h", "since": 1e20}',
        b'{"pid": 1, "host": "h", "since": -1e300}',
        b'{"pid": 1e400, "host": "h", "since": 0}',
        b'{"pid": NaN, "host": "h", "since": 0}',
        b'{"pid": 1, "host": ["h"], "since": 0}',
        b"[" * 3000,
        b"\xff\xfe garbage",
        b'{"pid": 1, "host": "' + b"h" * 3000 + b'", "since": 0}',
    ],
)
async def test_hostile_lock_file_contents_only_change_the_holder_shown(
    tmp_path: Path, content: bytes
) -> None:
    lock = tmp_path / "me.session.lock"
    lock.write_bytes(content)
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another holder, with what it wrote
        with pytest.raises(SessionLocked) as error:
            await FileStorage("me", tmp_path).open()
    finally:
        os.close(fd)
    assert len(str(error.value)) < 400
    await _opens(tmp_path)


async def test_a_cancelled_open_releases_the_lock(tmp_path: Path) -> None:
    """Before, open() cancelled by wait_for left the lock held: SessionLocked by our own pid."""
    outcomes: Counter[str] = Counter()
    for step in range(60):
        storage = FileStorage("me", tmp_path)
        opening = asyncio.ensure_future(storage.open())
        # Cancel it at every stage: before it ran, in its first hops, later on.
        for _ in range(step % 15):
            await asyncio.sleep(0)
        if step >= 45:
            await asyncio.sleep(0.0001 * (step - 44))
        opening.cancel()
        try:
            await opening
        except asyncio.CancelledError:
            outcomes["cancelled"] += 1
        else:
            outcomes["opened"] += 1
            await storage.close()
        assert _lock_fds("me.session.lock") == [], step
        await _opens(tmp_path)  # another storage object opens at once
        await storage.open()  # and so does the same one
        await storage.close()
    print(f"\ncancelled opens: {dict(outcomes)}")
    assert outcomes["cancelled"] >= 5


# -- a full disk: a real, small tmpfs ----------------------------------------------------


class SmallDisk:
    """A tmpfs of its own, mounted for one test: a real file system that fills up."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.filler = root / "filler"

    def fill(self, leave: int = 0) -> None:
        """Fill the disk, then give back ``leave`` bytes (rounded to pages)."""
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, bytes(65536))
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, bytes(4096))
        finally:
            os.close(fd)
        size = self.filler.stat().st_size
        os.truncate(self.filler, max(0, size - leave))

    def empty(self) -> None:
        self.filler.unlink(missing_ok=True)

    def free(self) -> int:
        info = os.statvfs(self.root)
        return info.f_bavail * info.f_frsize


def _mount_tmpfs(root: Path, options: str) -> str | None:
    """Mount a tmpfs on ``root``; return why it could not be, or None."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(b"tmpfs", os.fsencode(root), b"tmpfs", 0, options.encode()) != 0:
        return os.strerror(ctypes.get_errno())
    return None


def _unmount(root: Path) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.umount2(os.fsencode(root), 0) != 0:
        error = ctypes.get_errno()
        libc.umount2(os.fsencode(root), 2)  # MNT_DETACH: never leave it mounted
        # Busy: this process still has a file open on it, a leaked descriptor.
        raise AssertionError(f"could not unmount the small disk: {os.strerror(error)}")


@contextlib.contextmanager
def _small_disk(root: Path, options: str) -> Iterator[SmallDisk]:
    root.mkdir()
    why = _mount_tmpfs(root, options)
    if why is not None:
        pytest.skip(f"cannot mount a tmpfs here ({why}); the full-disk tests need root")
    try:
        yield SmallDisk(root)
    finally:
        _unmount(root)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    """A 1 MiB tmpfs: a real disk that runs out of space."""
    with _small_disk(tmp_path / "disk", "size=1m,mode=0700") as disk:
        yield disk


async def test_creating_a_session_on_a_full_disk_raises_disk_full_error(
    small_disk: SmallDisk,
) -> None:
    """At every amount of free space, a new session opens or fails with DiskFullError.

    Before: raw OSError (the lock file), raw sqlite3.OperationalError (the new file), and
    CorruptSessionError for a file created with too little room left to open it; the lock
    of a failed open stayed held (SessionLocked by our own pid on the next try).
    """
    root = small_disk.root
    old = root / "old.session"
    async with FileStorage("old", root, session_string=STRING_OF_KEY) as storage:
        await storage.upsert_peers([Peer(5, 55, PeerType.USER, ("keep",))])
    before = digest(old)
    outcomes: Counter[str] = Counter()
    for pages in range(0, 40):
        small_disk.fill(leave=pages * 4096)
        storage = FileStorage("new", root)
        try:
            await storage.open()
        except DiskFullError as exc:
            assert "disk is full" in str(exc)
            outcomes["DiskFullError"] += 1
            assert _names(root) == ["filler", "old.session"], pages
        else:
            outcomes["opened"] += 1
            await storage.close()
        assert _lock_fds("new.session.lock") == []
        assert digest(old) == before
        small_disk.empty()
        await storage.open()  # the same object, once there is room: nothing was left locked
        await storage.delete()
    print(f"\nnew sessions on a full disk: {dict(outcomes)}")
    assert outcomes["DiskFullError"] >= 5 and outcomes["opened"] >= 5
    async with FileStorage("old", root) as storage:
        assert (await storage.peer_by_username("keep")).id == 5
        assert await storage.export_session_string() == STRING_OF_KEY


async def test_opening_a_healthy_session_on_a_full_disk_is_disk_full_not_corrupt(
    small_disk: SmallDisk,
) -> None:
    """Before: "not a readable SQLite database (disk I/O error)", CorruptSessionError,
    which tells a user to throw away a good session, when the disk had 4-32 KiB left."""
    root = small_disk.root
    async with FileStorage("old", root, session_string=STRING_OF_KEY) as storage:
        await storage.upsert_peers([Peer(5, 55, PeerType.USER, ("keep",))])
    path = root / "old.session"
    before = digest(path)
    outcomes: Counter[str] = Counter()
    for pages in range(0, 10):
        small_disk.fill(leave=pages * 4096)
        storage = FileStorage("old", root)
        try:
            await storage.open()
        except CorruptSessionError as exc:  # pragma: no cover - the failure this test is for
            raise AssertionError(f"a healthy file called corrupt with {pages} pages free") from exc
        except DiskFullError as exc:
            assert "disk is full" in str(exc)
            outcomes["DiskFullError"] += 1
        else:
            outcomes["opened"] += 1
            assert (await storage.peer_by_username("keep")).id == 5
            await storage.close()
        small_disk.empty()
        assert digest(path) == before
    print(f"\nopening a session on a full disk: {dict(outcomes)}")
    assert outcomes["DiskFullError"] >= 1
    async with FileStorage("old", root) as storage:
        assert await storage.export_session_string() == STRING_OF_KEY


async def test_no_room_for_a_new_file_or_folder_raises_disk_full_error(tmp_path: Path) -> None:
    """A tmpfs out of inodes: the lock, the new file, its journal, the workdir: no room."""
    with _small_disk(tmp_path / "disk", "size=1m,nr_inodes=12,mode=0700") as disk:
        fillers = []
        with contextlib.suppress(OSError):
            while True:
                fillers.append(disk.root / f"f{len(fillers)}")
                fillers[-1].touch()
        fillers.pop()
        outcomes: Counter[str] = Counter()
        for _ in range(len(fillers)):
            for workdir in (disk.root, disk.root / "sub" / "folder"):
                storage = FileStorage("new", workdir)
                try:
                    await storage.open()
                except DiskFullError as exc:
                    assert "disk is full" in str(exc)
                    outcomes["DiskFullError"] += 1
                else:
                    outcomes["opened"] += 1
                    await storage.delete()
                assert _lock_fds("new.session.lock") == []
                assert [p for p in _names(disk.root) if not p.startswith(("f", "sub"))] == []
            fillers.pop().unlink()  # one more inode free
        print(f"\nnew sessions without inodes: {dict(outcomes)}")
        assert outcomes["DiskFullError"] >= 3 and outcomes["opened"] >= 1


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
