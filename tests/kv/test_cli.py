"""``pyrogram-storage kv copy`` and ``kv inspect``, through the installed console script."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from pyrogram_storage import kv

from ..servers.redisserver import RedisServer
from ..test_cli import run


async def _fill(location: str, count: int) -> None:
    async with kv.from_url(location) as store:
        for index in range(count):
            await store.set(
                f"state:{index}",
                {"step": index, "secret": "hunter2"},
                ttl=100 if index % 2 else None,
            )


async def _clear(location: str) -> None:
    async with kv.from_url(location) as store:
        await store.clear()


def test_copy_then_inspect(tmp_path: Path, redis_server: RedisServer) -> None:
    source = f"sqlite:{tmp_path / 'bot.db'}#fsm"
    asyncio.run(_fill(source, 25))
    target = f"{redis_server.url}#clitest"
    copied = run("kv", "copy", source, target)
    assert copied.returncode == 0 and "copied 25 keys" in copied.stdout, copied.stderr
    refused = run("kv", "copy", source, target)  # the target holds keys now
    assert refused.returncode == 1 and "--overwrite" in refused.stderr
    assert run("kv", "copy", source, target, "--overwrite").returncode == 0
    result = run("kv", "inspect", target, "--json", "--sample", "3")
    report = json.loads(result.stdout)
    assert (report["keys"], report["with_ttl"], report["without_ttl"]) == (25, 12, 13)
    assert len(report["sample"]) == 3 and "value" not in report["sample"][0]
    text = run("kv", "inspect", target).stdout
    assert "25 (12 with a TTL, 13 without)" in text and "hunter2" not in text
    text = run("kv", "inspect", target, "--values", "--pattern", "state:7").stdout
    assert "state:7" in text and "hunter2" in text  # values only when asked
    asyncio.run(_clear(target))


def test_bare_paths_are_locations_as_for_sessions(tmp_path: Path) -> None:
    """Before: `kv inspect bot.db` was refused; the session commands take bare paths."""
    asyncio.run(_fill(f"sqlite:{tmp_path / 'bot.db'}", 3))
    result = run("kv", "inspect", "bot.db", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "keys:      3" in result.stdout
    copied = run("kv", "copy", "bot.db", "state.json", cwd=tmp_path)
    assert copied.returncode == 0, copied.stderr
    assert "keys:      3" in run("kv", "inspect", "state.json", cwd=tmp_path).stdout


def test_a_misspelled_source_is_exit_1_and_creates_nothing(tmp_path: Path) -> None:
    """Before: `kv inspect`/`kv copy` on a path that does not exist created an empty store
    there (folder and .lock included) and said "copied 0 keys" with exit 0."""
    for source in ("typo/bot.db", "sqlite:typo/bot.db", "json:typo/state.json", "typo.json"):
        for args in (["kv", "inspect", source], ["kv", "copy", source, "memory:"]):
            result = run(*args, cwd=tmp_path)
            assert result.returncode == 1, (args, result.stdout)
            assert "no such" in result.stderr and "Traceback" not in result.stderr
    assert os.listdir(tmp_path) == []


def test_usage_errors_are_exit_2(tmp_path: Path) -> None:
    for args in (
        ["kv", "inspect", "ftp://host/x"],
        ["kv", "copy", "memory:", "memory:"],
        ["kv", "inspect", "memory:", "--sample", "-1"],
        ["kv", "inspect", "redis://127.0.0.1:1/0?bogus=1"],
    ):
        result = run(*args, cwd=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.startswith("usage: pyrogram-storage kv"), result.stderr


def test_help_says_what_the_commands_do() -> None:
    """Before: `kv --help` said "(no values)" although --values exists."""
    result = run("kv", "--help")
    assert result.returncode == 0 and result.stdout.startswith("usage: pyrogram-storage kv")
    assert "(no values)" not in result.stdout and "--values" in result.stdout
    for command in ("copy", "inspect"):
        assert run("kv", command, "--help").returncode == 0


def test_a_password_is_never_printed(tmp_path: Path) -> None:
    result = run("kv", "inspect", "redis://:hunter2@127.0.0.1:1/0")
    assert result.returncode == 1
    assert "hunter2" not in result.stdout + result.stderr
    assert "127.0.0.1:1" in result.stderr and len(result.stderr.strip().splitlines()) == 1
