"""The ``pyrogram-storage`` command, end to end through the installed console script."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from telethon.sessions import StringSession

from pyrogram_storage import FileStorage, decode_session_string
from pyrogram_storage.tools.copy import opened

from .fixture_files import copy_fixture
from .test_telethon import SELF_ID, telethon_file, telethon_string
from .test_tools import KEY, fill, snapshot

SCRIPT = Path(sys.executable).with_name("pyrogram-storage")
FIXTURES = Path(__file__).parent / "fixtures" / "sessions"


def run(
    *args: str | Path, stdin: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    assert SCRIPT.exists(), f"the console script is not installed: {SCRIPT} (pip install -e .)"
    return subprocess.run(
        [str(SCRIPT), *map(str, args)],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def no_secrets(text: str) -> None:
    assert KEY.hex() not in text
    assert "Traceback" not in text


async def filled_file(tmp_path: Path, name: str = "me") -> FileStorage:
    storage = FileStorage(name, tmp_path)
    async with opened(storage):
        await fill(storage, extra=20)
    return storage


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- help and usage -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "command", ["", "inspect", "export-string", "import-string", "copy", "migrate"]
)
def test_every_command_has_help(command: str) -> None:
    result = run(*([command] if command else []), "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: pyrogram-storage {command}".rstrip())


def test_python_m_runs_the_same_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pyrogram_storage", "--version"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert result.stdout.strip() == f"pyrogram-storage {__import__('pyrogram_storage').__version__}"


def test_usage_errors_exit_2() -> None:
    assert run().returncode == 2
    assert run("frobnicate").returncode == 2
    result = run("copy", "only-one")
    assert result.returncode == 2 and "usage:" in result.stderr


def test_importing_the_package_does_not_import_the_cli() -> None:
    code = (
        "import sys, pyrogram_storage, pyrogram_storage.tools.telethon; "
        "print('pyrogram_storage.cli' in sys.modules, 'argparse' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.split() == ["False", "False"]


# -- inspect ------------------------------------------------------------------------------


async def test_inspect_shows_the_session_but_never_the_key(tmp_path: Path) -> None:
    storage = await filled_file(tmp_path)
    async with opened(storage):
        session, peers, states = await snapshot(storage)
        counts = await storage.count_peers_by_type()
    text = run("inspect", storage.path)
    assert text.returncode == 0, text.stderr
    no_secrets(text.stdout + text.stderr)
    assert f"user id:        {session.user_id}" in text.stdout
    assert "api id:         123456" in text.stdout
    result = run("inspect", "--json", tmp_path / "me")  # the suffix may be left out
    assert result.returncode == 0, result.stderr
    no_secrets(result.stdout)
    report = json.loads(result.stdout)
    assert report["kind"] == "file" and report["schema_version"] == 2
    assert report["file_size"] == sum(
        os.path.getsize(p) for p in (storage.path, Path(f"{storage.path}-wal")) if p.exists()
    )
    assert (report["dc_id"], report["user_id"], report["is_bot"], report["api_id"]) == (
        session.dc_id,
        session.user_id,
        session.is_bot,
        session.api_id,
    )
    assert report["test_mode"] is False and report["date"] == session.date
    assert report["peers"] == len(peers) == sum(counts.values())
    assert report["peers_by_type"] == {str(kind): n for kind, n in counts.items()}
    assert report["update_states"] == len(states)
    assert report["auth_key_id"] == hashlib.sha1(KEY).digest()[-8:][::-1].hex()
    assert report["missing"] == []


@pytest.mark.parametrize("client", ["pyrofork", "kurigram", "pyrogram"])
def test_inspect_reads_a_client_file_without_changing_it(tmp_path: Path, client: str) -> None:
    path = tmp_path / f"{client}.session"
    shutil.copyfile(FIXTURES / f"{client}.session", path)
    before = sha(path)
    expected = json.loads((FIXTURES / f"{client}.json").read_text())
    result = run("inspect", "--json", path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert sha(path) == before
    assert report["schema_version"] == 0 and report["notes"]
    assert report["user_id"] == expected["session"]["user_id"]
    assert report["peers"] == len(expected["peers"])


async def test_inspect_a_telethon_file_lists_what_it_lacks(tmp_path: Path) -> None:
    path = await telethon_file(tmp_path / "tele")
    for location in (path, f"telethon:{path}"):
        result = run("inspect", "--json", location)
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert report["kind"] == "telethon" and report["user_id"] == SELF_ID
        assert report["missing"] == ["is_bot", "api_id"] and report["peers"] == 4


# -- export-string -------------------------------------------------------------------------


async def test_export_string_only_when_asked(tmp_path: Path) -> None:
    storage = await filled_file(tmp_path)
    async with opened(storage):
        expected = await storage.export_session_string()
    refused = run("export-string", storage.path)
    assert refused.returncode == 2 and "--show-secret" in refused.stderr
    assert expected not in refused.stdout + refused.stderr
    shown = run("export-string", storage.path, "--show-secret")
    assert shown.returncode == 0 and shown.stdout.strip() == expected
    output = tmp_path / "out" / "string.txt"
    output.parent.mkdir()
    written = run("export-string", storage.path, "--output", output)
    assert written.returncode == 0, written.stderr
    assert expected not in written.stdout + written.stderr
    assert output.read_text().strip() == expected and mode(output) == 0o600
    again = run("export-string", storage.path, "-o", output)
    assert again.returncode == 2 and "--force" in again.stderr
    output.chmod(0o644)
    forced = run("export-string", storage.path, "-o", output, "--force", "--format", "telethon")
    assert forced.returncode == 0 and mode(output) == 0o600
    loaded = StringSession(output.read_text().strip())
    assert loaded.auth_key.key == KEY and loaded.dc_id == 4


# -- import-string -------------------------------------------------------------------------


async def test_import_string_from_stdin_and_argument(tmp_path: Path) -> None:
    storage = await filled_file(tmp_path)
    async with opened(storage):
        text = await storage.export_session_string()
    result = run("import-string", "-", tmp_path / "new.session", stdin=text + "\n")
    assert result.returncode == 0, result.stderr
    no_secrets(result.stdout + result.stderr)
    imported = FileStorage("new", tmp_path)
    async with opened(imported):
        session = await imported.get_session()
    assert session.replace(date=0) == decode_session_string(text)
    assert mode(imported.path) == 0o600
    refused = run("import-string", text, tmp_path / "new")
    assert refused.returncode == 1
    assert refused.stderr.startswith("pyrogram-storage: error:") and "--overwrite" in refused.stderr
    assert run("import-string", text, tmp_path / "new", "--overwrite").returncode == 0


async def test_import_a_telethon_string_with_the_missing_fields(tmp_path: Path) -> None:
    target = tmp_path / "from_telethon.session"
    incomplete = run("import-string", "-", tmp_path / "partial", stdin=telethon_string())
    assert incomplete.returncode == 0
    assert "warning" in incomplete.stderr and "--user-id" in incomplete.stderr
    result = run(
        "import-string",
        "-",
        target,
        "--user-id",
        "777",
        "--bot",
        "--api-id",
        "42",
        stdin=telethon_string(),
    )
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr
    storage = FileStorage("from_telethon", tmp_path)
    async with opened(storage):
        session = await storage.get_session()
    assert (session.auth_key, session.user_id, session.is_bot, session.api_id) == (
        KEY,
        777,
        True,
        42,
    )
    assert not session.is_empty


def test_bad_strings_fail_cleanly(tmp_path: Path) -> None:
    result = run("import-string", "not a session string", tmp_path / "x")
    assert result.returncode == 1
    assert result.stderr.startswith("pyrogram-storage: error: not a session string")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "x.session").exists()


# -- copy -----------------------------------------------------------------------------------


async def test_copy_file_to_file_with_progress(tmp_path: Path) -> None:
    source = await filled_file(tmp_path)
    before = sha(source.path)
    result = run("copy", source.path, tmp_path / "copy.session", "--progress", "--batch-size", "5")
    assert result.returncode == 0, result.stderr
    assert "27 peers, 3 update states" in result.stdout
    # tqdm's bar (the test extra installs the progress extra); text mode reads its \r as \n
    bars = [line for line in result.stderr.splitlines() if line]
    assert bars[0].startswith("peers:   0%|") and "| 0/27 [" in bars[0], result.stderr
    assert bars[-1].startswith("peers: 100%|") and "| 27/27 [" in bars[-1], result.stderr
    assert bars[-1].endswith(" peers/s]")
    assert sha(source.path) == before
    target = FileStorage("copy", tmp_path)
    async with opened(source), opened(target):
        assert await snapshot(target) == await snapshot(source)
    assert mode(target.path) == 0o600
    refused = run("copy", source.path, target.path)
    assert refused.returncode == 1 and "--overwrite" in refused.stderr
    assert run("copy", source.path, source.path, "--overwrite").returncode == 2


async def test_copy_draws_its_own_bar_without_tqdm(tmp_path: Path) -> None:
    source = await filled_file(tmp_path)
    code = (
        "import sys; sys.modules['tqdm'] = None  # `import tqdm` fails in this process\n"
        "from pyrogram_storage.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "copy",
            str(source.path),
            str(tmp_path / "copy"),
            "--progress",
            "--batch-size",
            "5",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "27 peers, 3 update states" in result.stdout
    bars = result.stderr.splitlines()  # text mode reads the bar's \r as \n
    assert bars[0] == "", result.stderr
    assert bars[1] == f"peers [{'-' * 30}] 0/27   0%"
    assert bars[-1] == f"peers [{'#' * 30}] 27/27 100%"


async def test_copy_a_client_file_and_a_telethon_file(tmp_path: Path) -> None:
    client = tmp_path / "pyrofork.session"
    shutil.copyfile(FIXTURES / "pyrofork.session", client)
    before = sha(client)
    assert run("copy", client, tmp_path / "ours").returncode == 0
    assert sha(client) == before
    expected = json.loads((FIXTURES / "pyrofork.json").read_text())
    ours = FileStorage("ours", tmp_path)
    async with opened(ours):
        session, peers, _ = await snapshot(ours)
    assert session.user_id == expected["session"]["user_id"]
    assert len(peers) == len(expected["peers"])

    tele = await telethon_file(tmp_path / "tele")
    result = run("copy", f"telethon:{tele}", tmp_path / "tele_ours", "--user", "--api-id", "9")
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr
    converted = FileStorage("tele_ours", tmp_path)
    async with opened(converted):
        session = await converted.get_session()
        assert (session.user_id, session.is_bot, session.api_id) == (SELF_ID, False, 9)
        assert len([p async for p in converted.iter_peers()]) == 4
    conflict = run("copy", tele, tmp_path / "other", "--user-id", "5")
    assert conflict.returncode == 2 and "--user-id" in conflict.stderr
    conflict = run("copy", client, tmp_path / "other", "--api-id", "5")
    assert conflict.returncode == 2 and "--api-id says 5" in conflict.stderr
    assert not (tmp_path / "other.session").exists()


def test_targets_that_cannot_be_written_are_usage_errors(tmp_path: Path) -> None:
    for target in ("telethon:x", "string:x", "", str(tmp_path)):
        result = run("copy", "string:x", target)
        assert result.returncode == 2, target
        assert "Traceback" not in result.stderr


async def test_an_empty_source_is_not_copied(tmp_path: Path) -> None:
    target = await filled_file(tmp_path, "target")
    empty = FileStorage("empty", tmp_path)
    async with opened(empty):
        pass
    before = sha(target.path)
    result = run("copy", empty.path, target.path, "--overwrite")
    assert result.returncode == 1 and "holds no session" in result.stderr
    assert sha(target.path) == before
    report = run("inspect", empty.path)
    assert report.returncode == 0 and "the session is empty" in report.stderr


def test_missing_and_garbage_sources_fail_with_exit_1(tmp_path: Path) -> None:
    missing = run("copy", tmp_path / "nope.session", tmp_path / "t.session")
    assert missing.returncode == 1 and "no such session file" in missing.stderr
    assert not (tmp_path / "t.session").exists()
    garbage = tmp_path / "garbage.session"
    garbage.write_bytes(b"\x00garbage" * 512)
    result = run("inspect", garbage)
    assert result.returncode == 1 and "SQLite database" in result.stderr
    assert garbage.read_bytes() == b"\x00garbage" * 512


# -- migrate --------------------------------------------------------------------------------


@pytest.mark.parametrize("client", ["pyrofork", "kurigram", "hydrogram"])
def test_migrate_backs_up_then_upgrades(tmp_path: Path, client: str) -> None:
    path = tmp_path / "old.session"
    db = sqlite3.connect(FIXTURES / f"{client}.session")  # WAL content included
    copy = sqlite3.connect(path)
    db.backup(copy)
    copy.close()
    db.close()
    before = sha(path)
    result = run("migrate", path)
    assert result.returncode == 0, result.stderr
    assert "from schema version 0 to 2" in result.stdout
    backups = list(tmp_path.glob("old.session.bak-*"))
    assert len(backups) == 1 and mode(backups[0]) == 0o600
    check = sqlite3.connect(backups[0])
    assert check.execute("PRAGMA user_version").fetchone()[0] == 0
    check.close()
    assert sha(path) != before
    check = sqlite3.connect(path)
    assert check.execute("PRAGMA user_version").fetchone()[0] == 2
    check.close()
    again = run("migrate", path)
    assert again.returncode == 0 and "nothing to do" in again.stdout
    assert len(list(tmp_path.glob("old.session.bak-*"))) == 1


async def test_migrate_refuses_what_it_cannot_migrate(tmp_path: Path) -> None:
    assert run("migrate", tmp_path / "missing.session").returncode == 1
    tele = await telethon_file(tmp_path / "tele")
    result = run("migrate", tele)
    assert result.returncode == 2 and "telethon:" in result.stderr
    future = tmp_path / "future.session"
    storage = FileStorage("future", tmp_path)
    async with opened(storage):
        pass
    db = sqlite3.connect(future)
    db.execute("PRAGMA user_version = 99")
    db.close()
    before = sha(future)
    result = run("migrate", future)
    assert result.returncode == 1 and "upgrade pyrogram-storage" in result.stderr
    assert sha(future) == before and not list(tmp_path.glob("future.session.bak-*"))


# -- MongoDB --------------------------------------------------------------------------------


@pytest.mark.mongo
async def test_round_trip_through_mongodb(tmp_path: Path, mongo_uri: str) -> None:
    source = await filled_file(tmp_path)
    name = f"cli_{uuid.uuid4().hex[:12]}"
    base = mongo_uri.split("?")[0].rstrip("/")
    query = mongo_uri.partition("?")[2]
    location = f"{base}/{'?' + query if query else ''}#{name}"
    try:
        result = run("copy", source.path, location)
        assert result.returncode == 0, result.stderr
        report = json.loads(run("inspect", "--json", location).stdout)
        assert report["kind"] == "mongodb" and report["peers"] == 27
        back = run("copy", location, tmp_path / "back")
        assert back.returncode == 0, back.stderr
        text = run("export-string", location, "--show-secret").stdout.strip()
        from_string = run("import-string", "-", tmp_path / "from_string", stdin=text)
        assert from_string.returncode == 0
        copy = FileStorage("back", tmp_path)
        again = FileStorage("from_string", tmp_path)
        async with opened(source), opened(copy), opened(again):
            original = await snapshot(source)
            assert await snapshot(copy) == original
            session = await again.get_session()
        assert session.replace(date=0, server_address=None, port=None) == original[0].replace(
            date=0, server_address=None, port=None
        )
        missing_name = run("inspect", base + "/")
        assert missing_name.returncode == 2 and "#" in missing_name.stderr
    finally:
        from pyrogram_storage import MongoStorage

        await MongoStorage.from_url(mongo_uri, name=name).delete()


async def test_copy_writes_the_layout_asked_for(tmp_path: Path) -> None:
    source = await filled_file(tmp_path)
    result = run("copy", source.path, tmp_path / "for_pyrofork", "--layout", "pyrofork")
    assert result.returncode == 0, result.stderr
    target = tmp_path / "for_pyrofork.session"
    columns = {row[1] for row in rows_of(target, "PRAGMA table_info(usernames)")}
    assert "peer_id" in columns
    copy = FileStorage("for_pyrofork", tmp_path)
    async with opened(source), opened(copy):
        assert await snapshot(copy) == await snapshot(source)


def rows_of(path: Path, sql: str) -> list[tuple[object, ...]]:
    db = sqlite3.connect(path)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


# -- careless and hostile command lines ------------------------------------------------------


async def _exported(storage: FileStorage) -> str:
    async with opened(storage):
        return await storage.export_session_string()


async def test_a_session_string_given_as_target_is_not_echoed(tmp_path: Path) -> None:
    """Before, it was taken for a file name and shown whole in "File name too long"."""
    storage = await filled_file(tmp_path)
    text = await _exported(storage)
    before = sorted(os.listdir(tmp_path))
    targets = [
        text,
        text + ".session",
        f"{tmp_path}/{text}",
        f"{text}/me.session",
        f"{tmp_path}/{text[:100]}.{text[100:]}",  # not quite a session string, still long
    ]
    for n, target in enumerate(targets):
        result = run("copy", storage.path, target, cwd=tmp_path)
        assert result.returncode == 2, (n, result.stderr[-300:])
        assert text[20:60] not in result.stdout + result.stderr, n
        no_secrets(result.stdout + result.stderr)
    result = run("import-string", "-", text, stdin=text, cwd=tmp_path)
    assert result.returncode == 2 and "import-string - TARGET" in result.stderr
    assert text[20:60] not in result.stdout + result.stderr
    assert sorted(os.listdir(tmp_path)) == before


async def test_a_hostile_lock_file_is_reported_not_a_traceback(tmp_path: Path) -> None:
    """Before, "since": 1e20 in the lock file raised OverflowError through the CLI."""
    source = await filled_file(tmp_path)
    lock = tmp_path / "held.session.lock"
    lock.write_bytes(b'{"pid": 1, "host": "h", "since": 1e20}')
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        result = run("copy", source.path, tmp_path / "held.session")
    finally:
        os.close(fd)
    assert result.returncode == 1, result.stderr
    assert "in use by another process" in result.stderr
    assert "Traceback" not in result.stderr and "Overflow" not in result.stderr


async def test_a_folder_named_like_a_scratch_file_is_left_alone(tmp_path: Path) -> None:
    """Before, it raised a raw IsADirectoryError (exit 1) when the TARGET was created."""
    source = await filled_file(tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stray = tmp_path / f".copy.session.new-{dead.pid}-abcd0123"
    stray.mkdir()
    result = run("copy", source.path, tmp_path / "copy.session")
    assert result.returncode == 0, result.stderr
    assert stray.is_dir() and (tmp_path / "copy.session").exists()


@pytest.mark.parametrize(
    "client, named, version",
    [
        ("kurigram", "Kurigram", 7),
        ("pyrotgfork", "Pyrotgfork", 6),
        ("electrogram", "Electrogram", 4),
        ("hydrogram", "Hydrogram", 3),
    ],
)
def test_inspect_names_the_clients_that_wrote_a_file(
    tmp_path: Path, client: str, named: str, version: int
) -> None:
    """Before: "schema version: 0 (latest 1)" and a note to migrate, for a healthy client file."""
    path = copy_fixture(client, tmp_path, "theirs")
    result = run("inspect", path)
    assert result.returncode == 0, result.stderr
    assert "schema version" not in result.stdout
    assert "migrate" not in result.stdout + result.stderr
    written = [line for line in result.stdout.splitlines() if line.startswith("written by:")]
    assert len(written) == 1 and named in written[0] and f"schema {version}" in written[0]
    report = json.loads(run("inspect", "--json", path).stdout)
    assert named in report["client_file"]["clients"]
    assert report["client_file"]["version"] == version


def test_a_telethon_string_under_string_points_at_the_telethon_prefix() -> None:
    text = telethon_string()
    result = run("inspect", "string:" + text)
    assert result.returncode == 2, result.stderr
    assert "telethon:STRING" in result.stderr
    assert "pyrogram_storage.tools" not in result.stderr and text[20:60] not in result.stderr
    assert run("inspect", "telethon:" + text).returncode == 0


async def test_errors_speak_command_line_not_python(tmp_path: Path) -> None:
    source = await filled_file(tmp_path)
    target = await filled_file(tmp_path, "target")
    refused = run("copy", source.path, target.path)
    assert refused.returncode == 1 and "pass --overwrite" in refused.stderr
    async with FileStorage("held", tmp_path):  # another program has this TARGET open
        locked = run("copy", source.path, tmp_path / "held.session")
    assert locked.returncode == 1 and "is in use by pid" in locked.stderr
    for result in (refused, locked):
        for python in ("=True", "overwrite=", "lock=", "lock='shared'"):
            assert python not in result.stderr, (python, result.stderr)


async def test_output_into_a_closed_pipe_ends_quietly_like_other_programs(tmp_path: Path) -> None:
    """Before: "error: [Errno 32] Broken pipe" and status 1 under `| head`."""
    storage = await filled_file(tmp_path)
    pipeline = 'set -o pipefail; "$@" | true; echo "status ${PIPESTATUS[0]}"'
    others = subprocess.run(
        ["bash", "-c", pipeline, "bash", "yes"], capture_output=True, text=True, check=True
    )
    assert others.stdout.strip() == "status 141"  # what a shell reports for `yes | head`
    for args in (["inspect", storage.path], ["inspect", "--json", storage.path]):
        ours = subprocess.run(
            ["bash", "-c", pipeline, "bash", str(SCRIPT), *map(str, args)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert ours.stdout.strip() == others.stdout.strip(), (args, ours.stderr)
        assert ours.stderr == "", args
    # The reader gone before the first byte, without a shell in between.
    process = subprocess.Popen(
        [str(SCRIPT), "inspect", str(storage.path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    assert process.stderr.read() == b""
    assert process.wait(timeout=120) == 128 + signal.SIGPIPE


async def test_copy_to_memory_is_not_a_file_named_memory(tmp_path: Path) -> None:
    """``copy x memory:`` silently wrote ``memory:.session``; the URL registry parses it."""
    source = await filled_file(tmp_path)
    result = run("copy", source.path, "memory:", cwd=tmp_path)
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "memory:.session").exists()


# -- the first hour (issue 21, item 4): reads are the same everywhere ------------------------


@pytest.mark.mongo
def test_a_missing_mongodb_session_is_exit_1(mongo_uri: str) -> None:
    """Before: an empty session, exit 0, and nothing said."""
    name = f"nosuch_{uuid.uuid4().hex[:8]}"
    result = run("inspect", f"{mongo_uri}#{name}")
    assert result.returncode == 1, result.stdout
    assert f"no session {name!r}" in result.stderr and "Traceback" not in result.stderr


async def test_read_commands_leave_no_side_files(tmp_path: Path) -> None:
    """Before: `inspect fresh.session` left -wal and -shm files behind."""
    storage = await filled_file(tmp_path)
    before = sorted(os.listdir(tmp_path))
    assert before == ["me.session"]
    for args in (
        ["inspect", storage.path],
        ["inspect", "--json", storage.path],
        ["export-string", storage.path, "--show-secret"],
        ["copy", storage.path, "memory:"],
    ):
        result = run(*args)
        assert result.returncode == 0, (args, result.stderr)
        assert sorted(os.listdir(tmp_path)) == before, args


def test_a_file_that_is_not_a_session_is_said_to_be_so(tmp_path: Path) -> None:
    """Before: "no such session file: some_script.py.session" for a file that exists."""
    script = tmp_path / "some_script.py"
    script.write_text("print('hello')\n")
    # Named as typed in its folder: a path over 80 characters (an xdist worker's
    # tmp_path has one folder more) is cut from messages as a possible secret.
    result = run("inspect", script.name, cwd=tmp_path)
    assert result.returncode == 1
    assert "some_script.py is not a session file" in result.stderr
    assert "no such" not in result.stderr and script.read_text() == "print('hello')\n"


def test_a_malformed_session_string_is_never_echoed(tmp_path: Path) -> None:
    """Before: `copy "$SESSION_STRING" x.session` echoed its first 12 characters."""
    for text in ("BQ" + "Zm9vYmFyYmF6" * 30, "AgAA" + "x7Qz" * 40 + "-_" * 20):
        for args in (["copy", text, tmp_path / "x.session"], ["inspect", text]):
            result = run(*args, cwd=tmp_path)
            assert result.returncode in (1, 2), result.stderr
            assert text[:6] not in result.stdout + result.stderr, result.stderr
            assert "Traceback" not in result.stderr
    assert os.listdir(tmp_path) == []


def test_a_bad_option_gets_the_commands_own_usage(tmp_path: Path) -> None:
    """Before: `inspect kuri.session --bogus` printed the top-level usage."""
    path = copy_fixture("kurigram", tmp_path, "kuri")
    for command, extra in (
        ("inspect", [path]),
        ("copy", [path, tmp_path / "t"]),
        ("migrate", [path]),
    ):
        result = run(command, *extra, "--bogus")
        assert result.returncode == 2
        assert result.stderr.startswith(f"usage: pyrogram-storage {command} "), result.stderr
        assert "unrecognized arguments: --bogus" in result.stderr
    result = run("kv", "inspect", "memory:", "--bogus")
    assert result.returncode == 2 and result.stderr.startswith("usage: pyrogram-storage kv inspect")


async def test_copying_an_incomplete_session_says_what_it_costs_or_refuses(
    tmp_path: Path,
) -> None:
    """Before: a Telethon copy without --user-id/--api-id wrote a session needing a new
    login, with only "does not record ..."; --strict refuses it."""
    text = telethon_string()
    refused = run("copy", f"telethon:{text}", tmp_path / "strict", "--strict")
    assert refused.returncode == 1 and "--strict" in refused.stderr
    assert "new login" in refused.stderr and "--user-id" in refused.stderr
    assert not (tmp_path / "strict.session").exists()
    written = run("copy", f"telethon:{text}", tmp_path / "loose")
    assert written.returncode == 0
    assert "warning" in written.stderr and "a client starts a new login" in written.stderr
    assert "cannot be exported as a session string" in written.stderr
    complete = run(
        "copy",
        f"telethon:{text}",
        tmp_path / "full",
        "--strict",
        "--user-id",
        "7",
        "--bot",
        "--api-id",
        "9",
    )
    assert complete.returncode == 0 and "warning" not in complete.stderr


@pytest.mark.parametrize("kind", ["mongodb", "redis"])
async def test_an_unreachable_server_is_one_line_within_seconds(tmp_path: Path, kind: str) -> None:
    """Before: MongoDB was silent for 32 s, then printed a ~600-character topology dump."""
    source = await filled_file(tmp_path)
    target = (
        "mongodb://user:hunter2@127.0.0.1:1/?directConnection=true#x"
        if kind == "mongodb"
        else "redis://user:hunter2@127.0.0.1:1/0#x"
    )
    started = time.monotonic()
    result = run("copy", source.path, target)
    assert time.monotonic() - started < 10
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and len(lines[0]) < 300, result.stderr
    assert "127.0.0.1:1" in lines[0] and "hunter2" not in result.stderr
