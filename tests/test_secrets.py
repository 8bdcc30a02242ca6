"""Secrets: every file we create is 0600, and the auth key never shows up anywhere.

"Anywhere" is checked for real: every log record of every logger at DEBUG (ours and
asyncio's included) during a whole session lifecycle, every repr/str we hand out, the messages
of the errors a mangled session string produces, and the CLI's output.
"""

from __future__ import annotations

import base64
import logging
import os
import sqlite3
import stat
import subprocess
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyrogram_storage import (
    FileStorage,
    MemoryStorage,
    MigrationError,
    Peer,
    PeerType,
    SessionData,
    SessionStringError,
    StorageError,
    UpdateState,
)
from pyrogram_storage.session_string import decode_session_string, encode_session_string
from pyrogram_storage.tools.telethon import encode_telethon_string

from .fixture_files import copy_fixture

KEY = bytes((i * 37 + 11) % 256 for i in range(256))
SESSION = SessionData(
    dc_id=2, api_id=611335, test_mode=False, auth_key=KEY, user_id=7_000_000_123, is_bot=False
)
STRING = encode_session_string(SESSION)


def secret_forms(key: bytes = KEY, string: str = STRING) -> dict[str, str]:
    """Every spelling of the key we could leak: hex, bytes repr, base64, the session string.

    Long prefixes are enough: 24 hex digits of a random key never appear by chance.
    """
    return {
        "hex": key.hex()[:24],
        "HEX": key.hex().upper()[:24],
        "bytes repr": repr(key)[2:40],
        "base64": base64.b64encode(key).decode()[:24],
        "urlsafe base64": base64.urlsafe_b64encode(key).decode()[:24],
        "session string": string[20:60],
        "session string head": string[:40],
    }


def leaks(text: str) -> list[str]:
    return [name for name, form in secret_forms().items() if form in text]


@pytest.fixture
def hostile_umask() -> Iterator[None]:
    """Create files under umask 000, so a mode that came from the umask would be 0666."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


class Everything(logging.Handler):
    """Keep every record of every logger, formatted with its traceback."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.texts: list[str] = []
        self.count = 0
        self.loggers: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        self.loggers.add(record.name)
        text = record.getMessage() + repr(record.args) + repr(record.msg)
        if record.exc_info:
            text += "".join(traceback.format_exception(*record.exc_info))
        self.texts.append(text)


@pytest.fixture
def all_logs() -> Iterator[Everything]:
    handler = Everything()
    root = logging.getLogger()
    levels = {name: logging.getLogger(name).level for name in ("", "asyncio")}
    root.addHandler(handler)
    for name in levels:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def private(path: Path) -> bool:
    return stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_full_file_lifecycle_leaks_no_key_and_every_file_is_private(
    tmp_path: Path, all_logs: Everything, hostile_umask: None
) -> None:
    workdir = tmp_path / "sessions"
    seen_files: set[str] = set()

    def check_files() -> None:
        for path in workdir.iterdir():
            seen_files.add(path.name)
            assert private(path), f"{path.name} has mode {oct(stat.S_IMODE(path.stat().st_mode))}"

    storage = FileStorage("me", workdir)
    await storage.open()
    check_files()
    await storage.import_session_string(STRING)
    await storage.upsert_peers(
        Peer(i, i * 3, PeerType.USER, (f"user{i}",), f"1555{i:07d}") for i in range(1, 200)
    )
    await storage.set_update_states([UpdateState(0, 1, 2, 3, 4)])
    check_files()  # the WAL side files exist now
    await storage.save()
    texts = [repr(storage), str(storage), repr(await storage.get_session())]
    texts.append(str(await storage.get_session()))
    texts.append(repr(await storage.peer_by_id(5)))
    await storage.close()
    check_files()

    async with FileStorage("me", workdir) as again:
        exported = await again.export_session_string()
        assert exported == STRING
        with pytest.raises(TypeError) as error:
            await again.update_session(auth_key="not bytes")
        texts.append(str(error.value))
        check_files()
    check_files()
    # The CLI's exports and backups (its own process, so its logs are checked through stderr).
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    cli = [sys.executable, "-m", "pyrogram_storage"]
    out = tmp_path / "exports"
    out.mkdir()
    runs = [
        [*cli, "inspect", str(workdir / "me.session")],
        [*cli, "export-string", str(workdir / "me.session"), "--output", str(out / "me.txt")],
        [*cli, "copy", str(workdir / "me.session"), str(out / "copy.session")],
        [*cli, "migrate", str(out / "copy.session")],
    ]
    for command in runs:
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        assert done.returncode == 0, (command, done.stderr)
        assert leaks(done.stdout + done.stderr) == [], command
    assert (out / "me.txt").read_text().strip() == STRING
    for path in out.iterdir():
        assert private(path), f"{path.name} has mode {oct(stat.S_IMODE(path.stat().st_mode))}"
    storage = FileStorage("me", workdir)
    await storage.delete()
    assert list(workdir.iterdir()) == []

    assert {"me.session", "me.session-wal", "me.session-shm"} <= seen_files
    for text in texts:
        assert leaks(text) == [], text
    assert all_logs.count > 0 and "pyrogram_storage.sqlite" in all_logs.loggers, all_logs.loggers
    for text in all_logs.texts:
        assert leaks(text) == [], text[:300]


async def test_memory_lifecycle_leaks_no_key(all_logs: Everything) -> None:
    storage = MemoryStorage("mem", session_string=STRING)
    async with storage:
        await storage.upsert_peers([Peer(1, 1, PeerType.USER, ("one",))])
        texts = [repr(storage), repr(await storage.get_session())]
    async with storage:
        assert await storage.export_session_string() == STRING
    await storage.delete()
    for text in texts + all_logs.texts:
        assert leaks(text) == [], text[:300]


def test_errors_about_a_mangled_session_string_do_not_quote_it() -> None:
    """A string one character off is still nearly the whole secret: never echo it back."""
    mangled = [
        STRING[:-1],
        STRING + "A",
        STRING[:100] + "!" + STRING[101:],
        STRING[:200] + " " + STRING[200:],
        "1" + STRING,
        STRING[:180],
        STRING.replace("A", "é", 1),
        STRING * 2,
    ]
    for text in mangled:
        with pytest.raises(SessionStringError) as error:
            decode_session_string(text)
        rendered = "".join(traceback.format_exception_only(type(error.value), error.value))
        assert leaks(rendered) == [], rendered
        assert text[30:60] not in rendered


async def test_storage_errors_do_not_carry_the_key(tmp_path: Path) -> None:
    async with FileStorage("me", tmp_path, session_string=STRING) as storage:
        for bad in ({"auth_key": KEY.hex()}, {"dc_id": KEY}, {"user_id": KEY}):
            with pytest.raises(TypeError) as error:
                await storage.update_session(**bad)
            assert leaks(str(error.value)) == [], str(error.value)
    # A damaged file: the error names the file, not its contents.
    path = tmp_path / "me.session"
    data = bytearray(path.read_bytes())
    data[:16] = b"not sqlite 3 \x00\x00\x00"
    path.write_bytes(bytes(data))
    with pytest.raises(StorageError) as error:
        await FileStorage("me", tmp_path).open()
    assert leaks(str(error.value)) == []


def test_session_string_module_reprs_hide_the_key() -> None:
    session = decode_session_string(STRING)
    for text in (repr(session), str(session), f"{session}", repr([session])):
        assert leaks(text) == [], text


def test_the_leak_check_sees_every_spelling() -> None:
    for text in (STRING, KEY.hex(), KEY.hex().upper(), repr(KEY), base64.b64encode(KEY).decode()):
        assert leaks(f"prefix {text} suffix"), text
    assert leaks(repr(SESSION.replace(auth_key=None))) == []


# -- files we own, made private; secrets typed where a path belongs -------------------------


def _modes(folder: Path) -> dict[str, int]:
    return {path.name: stat.S_IMODE(path.stat().st_mode) for path in folder.iterdir()}


async def test_an_adopted_client_file_readable_by_others_is_made_private(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Before, a 0644 client file stayed 0644 and SQLite made its -wal and -shm 0644 too."""
    path = copy_fixture("kurigram", tmp_path, "me")
    for suffix in ("-wal", "-shm"):  # empty side files, as a client leaves them
        Path(f"{path}{suffix}").touch()
    for file in tmp_path.iterdir():
        file.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="pyrogram_storage"):
        async with FileStorage("me", tmp_path) as storage:
            assert await storage.get_session()
            modes = _modes(tmp_path)
    assert modes == {name: 0o600 for name in modes}, {k: oct(v) for k, v in modes.items()}
    assert {"me.session", "me.session-wal", "me.session-shm"} <= set(modes)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for name in ("me.session", "me.session-wal", "me.session-shm"):
        assert any(f"{name} had mode 0644" in text and "to 0600" in text for text in warned), (
            name,
            warned,
        )
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pyrogram_storage"):
        async with FileStorage("me", tmp_path):
            pass
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # once is enough


@pytest.mark.parametrize("foreign", ["other-app", "newer-schema"])
async def test_a_refused_file_keeps_its_mode(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, foreign: str
) -> None:
    """Before: a foreign SQLite file refused with UnknownSchemaError ("left untouched") had
    its mode changed 0644 -> 0600, with a WARNING that it had been made private."""
    path = tmp_path / "me.session"
    if foreign == "other-app":
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT)")
        db.commit()
        db.close()
    else:
        async with FileStorage("me", tmp_path):
            pass
        db = sqlite3.connect(path)
        db.execute("PRAGMA user_version = 99")
        db.commit()
        db.close()
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="pyrogram_storage"), pytest.raises(MigrationError):
        await FileStorage("me", tmp_path).open()
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert not [r for r in caplog.records if "had mode" in r.getMessage()]


def test_migrate_leaves_only_private_files(tmp_path: Path) -> None:
    """Before, `migrate` of a 0644 client file left it and its side files 0644."""
    path = copy_fixture("pyrofork", tmp_path, "me")
    path.chmod(0o644)
    cli = [sys.executable, "-m", "pyrogram_storage"]
    done = subprocess.run([*cli, "migrate", str(path)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "had mode 0644" in done.stderr  # the WARNING, on the command line too
    modes = _modes(tmp_path)
    assert len(modes) >= 2 and modes == {name: 0o600 for name in modes}, modes


def test_a_session_string_where_a_path_belongs_is_refused_and_not_repeated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``FileStorage("bot", SESSION_STRING)``, the MemoryStorage habit, once made the secret
    a folder name, shown whole by repr() and by OSError "File name too long"."""
    monkeypatch.chdir(tmp_path)
    telethon = encode_telethon_string(SESSION.replace(server_address="149.154.167.51", port=443))
    standard = STRING.replace("-", "+").replace("_", "/")
    calls = [
        lambda: FileStorage("bot", STRING),  # type: ignore[misc]
        lambda: FileStorage("bot", f'"{STRING}"\n'),
        lambda: FileStorage("bot", Path(STRING)),
        lambda: FileStorage("bot", workdir=standard),
        lambda: FileStorage("bot", telethon),
        lambda: FileStorage(STRING),
        lambda: FileStorage(STRING + ".session"),
        lambda: FileStorage(telethon, tmp_path),
    ]
    for n, call in enumerate(calls):
        with pytest.raises(TypeError, match="session_string=") as error:
            call()
        rendered = "".join(traceback.format_exception(error.value))
        assert leaks(rendered) == [] and telethon[20:60] not in rendered, n
    assert list(tmp_path.iterdir()) == []
