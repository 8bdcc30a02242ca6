"""The command line's encrypt, decrypt and rekey, and keys for the other commands.

Keys come from environment variables or a terminal prompt, never from arguments, and
no output ever shows them.
"""

from __future__ import annotations

import os
import pty
import select
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from pyrogram_storage import EncryptionKeyError, FileStorage, from_url

from .test_cli import SCRIPT
from .test_encryption import RAW_KEY, assert_hidden, login, maintainer_file

AUTH_KEY = bytes(reversed(range(256)))
RAW_TEXT = "hex:" + RAW_KEY.hex()


def cli(*args: str | Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith("PYROGRAM_")
    }
    result = subprocess.run(
        [str(SCRIPT), *map(str, args)],
        env={**environment, **env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    for secret in (*env.values(), RAW_KEY.hex(), AUTH_KEY.hex()):
        if len(secret) > 8:
            assert secret not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result


async def clear_file(tmp_path: Path, name: str = "me") -> Path:
    async with FileStorage(name, tmp_path) as storage:
        await storage.update_session(**login(AUTH_KEY))
    return tmp_path / f"{name}.session"


async def auth_key(path: Path, key: bytes | str | None = None) -> bytes | None:
    async with FileStorage(path.stem, path.parent, encryption_key=key) as storage:
        return (await storage.get_session()).auth_key


def files(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file())


async def test_encrypt_rekey_decrypt_round_trip(tmp_path: Path) -> None:
    path = await clear_file(tmp_path)
    result = cli("encrypt", path, PYROGRAM_STORAGE_KEY="first passphrase")
    assert result.returncode == 0, result.stderr
    assert "encrypted the auth key" in result.stdout
    assert_hidden(files(tmp_path), AUTH_KEY)
    assert await auth_key(path, "first passphrase") == AUTH_KEY
    # Encrypted already: encrypt refuses, and says to rekey.
    result = cli("encrypt", path, PYROGRAM_STORAGE_KEY="other")
    assert result.returncode == 1 and "rekey" in result.stderr
    # inspect needs the key, and says where to put it.
    result = cli("inspect", path)
    assert result.returncode == 1 and "$PYROGRAM_STORAGE_KEY" in result.stderr
    result = cli("inspect", path, PYROGRAM_STORAGE_KEY="first passphrase")
    assert result.returncode == 0 and "auth key:" in result.stdout
    db = sqlite3.connect(path)
    old_envelope = db.execute("SELECT auth_key FROM sessions").fetchone()[0]
    db.close()
    result = cli(
        "rekey", path, PYROGRAM_STORAGE_KEY="first passphrase", PYROGRAM_STORAGE_NEW_KEY=RAW_TEXT
    )
    assert result.returncode == 0, result.stderr
    assert old_envelope not in files(tmp_path)  # no copy sealed with the old key is left
    assert await auth_key(path, RAW_KEY) == AUTH_KEY
    with pytest.raises(EncryptionKeyError):
        await auth_key(path, "first passphrase")
    result = cli("decrypt", path, MY_KEY=RAW_TEXT, PYROGRAM_STORAGE_KEY="wrong")
    assert result.returncode == 1 and "wrong encryption key" in result.stderr
    result = cli("decrypt", path, "--key-env", "MY_KEY", MY_KEY=RAW_TEXT)
    assert result.returncode == 0, result.stderr
    assert await auth_key(path) == AUTH_KEY


async def test_a_session_held_by_another_process_is_refused(tmp_path: Path) -> None:
    path = await clear_file(tmp_path)
    before = files(tmp_path)
    holder = FileStorage("me", tmp_path)
    await holder.open()
    try:
        result = cli("encrypt", path, PYROGRAM_STORAGE_KEY="k" * 12)
    finally:
        await holder.close()
    assert result.returncode == 1 and "in use" in result.stderr
    assert files(tmp_path) == before or await auth_key(path) == AUTH_KEY


async def test_keys_never_come_from_arguments_and_need_a_terminal(tmp_path: Path) -> None:
    path = await clear_file(tmp_path)
    result = cli("encrypt", path, "--key", "secret")
    assert result.returncode == 2  # no such option
    result = cli("encrypt", path)
    assert result.returncode == 1 and "set $PYROGRAM_STORAGE_KEY" in result.stderr
    result = cli("encrypt", path, PYROGRAM_STORAGE_KEY="hex:abcd")
    assert result.returncode == 1 and "32 bytes" in result.stderr
    assert await auth_key(path) == AUTH_KEY
    assert cli("encrypt", tmp_path / "missing.session", PYROGRAM_STORAGE_KEY="x").returncode == 1


def _on_terminal(args: list[str], answers: list[str]) -> tuple[int, str]:
    """Run the command on a pseudo-terminal, answering each prompt in turn."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PYROGRAM_")}
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.execve(str(SCRIPT), [str(SCRIPT), *args], environment)
    output = b""
    deadline = time.monotonic() + 60
    pending = list(answers)
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
        if pending and chunk.rstrip().endswith(b":"):  # a prompt, echo off: answer it
            os.write(fd, pending.pop(0).encode() + b"\n")
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")


async def test_keys_are_asked_for_on_a_terminal_and_never_echoed(tmp_path: Path) -> None:
    path = await clear_file(tmp_path)
    code, shown = _on_terminal(["encrypt", str(path)], ["typed passphrase", "typo"])
    assert code == 1 and "differ" in shown
    assert await auth_key(path) == AUTH_KEY
    code, shown = _on_terminal(["encrypt", str(path)], ["typed passphrase"] * 2)
    assert code == 0, shown
    assert "typed passphrase" not in shown and "The encryption key:" in shown
    assert await auth_key(path, "typed passphrase") == AUTH_KEY


async def test_copy_encrypts_the_target_and_reads_encrypted_sources(tmp_path: Path) -> None:
    path = await clear_file(tmp_path)
    target = tmp_path / "copy.session"
    result = cli("copy", path, target, "--encrypt", "--target-key-env", "NEW", NEW=RAW_TEXT)
    assert result.returncode == 0, result.stderr
    assert_hidden(target.read_bytes(), AUTH_KEY)
    again = tmp_path / "again.session"
    result = cli("copy", target, again, PYROGRAM_STORAGE_KEY=RAW_TEXT)
    assert result.returncode == 0, result.stderr  # in clear: --encrypt was not given
    assert await auth_key(again) == AUTH_KEY
    result = cli("export-string", target, "--show-secret", PYROGRAM_STORAGE_KEY=RAW_TEXT)
    assert result.returncode == 0 and len(result.stdout.strip()) > 300


async def test_encrypt_moves_a_maintainer_fernet_file_to_the_envelope(tmp_path: Path) -> None:
    fernet_key = Fernet.generate_key()
    path = tmp_path / "old.session"
    maintainer_file(path, fernet_key, AUTH_KEY)
    result = cli("encrypt", path, PYROGRAM_STORAGE_KEY="pass")
    assert result.returncode == 1 and "PYROGRAM_STORAGE_FERNET_KEY" in result.stderr
    result = cli(
        "encrypt",
        path,
        PYROGRAM_STORAGE_KEY="new passphrase",
        PYROGRAM_STORAGE_FERNET_KEY=fernet_key.decode(),
    )
    assert result.returncode == 0, result.stderr
    assert await auth_key(path, "new passphrase") == AUTH_KEY


@pytest.mark.redis
async def test_encrypt_and_rekey_a_redis_session(redis_server: object) -> None:
    location = f"{redis_server.url}#cli_{os.getpid()}_{time.time_ns()}"  # type: ignore[attr-defined]
    storage = from_url(location)
    async with storage:
        await storage.update_session(**login(AUTH_KEY))
    assert cli("encrypt", location, PYROGRAM_STORAGE_KEY=RAW_TEXT).returncode == 0
    result = cli(
        "rekey", location, PYROGRAM_STORAGE_KEY=RAW_TEXT, PYROGRAM_STORAGE_NEW_KEY="p" * 10
    )
    assert result.returncode == 0, result.stderr
    async with from_url(location, encryption_key="p" * 10) as reopened:
        assert (await reopened.get_session()).auth_key == AUTH_KEY
    with pytest.raises(EncryptionKeyError):
        await from_url(location, encryption_key=RAW_KEY).open()


@pytest.mark.mongo
async def test_encrypt_a_mongo_session(mongo_uri: str) -> None:
    location = f"{mongo_uri}#cli_{os.getpid()}_{time.time_ns() % 10**9}"
    async with from_url(location) as storage:
        await storage.update_session(**login(AUTH_KEY))
    assert cli("encrypt", location, PYROGRAM_STORAGE_KEY=RAW_TEXT).returncode == 0
    async with from_url(location, encryption_key=RAW_KEY) as reopened:
        assert (await reopened.get_session()).auth_key == AUTH_KEY
    await from_url(location).delete()


@pytest.mark.postgres
async def test_encrypt_and_decrypt_a_postgres_session(postgres_server: Any) -> None:
    location = f"{postgres_server.url}#cli_{os.getpid()}_{time.time_ns() % 10**9}"
    async with from_url(location) as storage:
        await storage.update_session(**login(AUTH_KEY))
    assert cli("encrypt", location, PYROGRAM_STORAGE_KEY=RAW_TEXT).returncode == 0
    async with from_url(location, encryption_key=RAW_KEY) as reopened:
        assert (await reopened.get_session()).auth_key == AUTH_KEY
    with pytest.raises(EncryptionKeyError):
        await from_url(location).open()  # sealed: no key, no session
    result = cli("decrypt", location, PYROGRAM_STORAGE_KEY=RAW_TEXT)
    assert result.returncode == 0, result.stderr
    async with from_url(location) as clear:
        assert (await clear.get_session()).auth_key == AUTH_KEY
    await from_url(location).delete()


def test_python_m_runs_the_same_commands() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pyrogram_storage", "rekey", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--new-key-env" in result.stdout and "never here" in result.stdout
