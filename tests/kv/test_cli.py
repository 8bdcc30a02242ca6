"""``pyrogram-storage kv copy`` and ``kv inspect``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from pyrogram_storage import kv
from pyrogram_storage.cli import main

from ..servers.redisserver import RedisServer


async def _fill(location: str, count: int) -> None:
    async with kv.from_url(location) as store:
        for index in range(count):
            await store.set(f"state:{index}", {"step": index, "secret": "hunter2"},
                            ttl=100 if index % 2 else None)


def test_copy_then_inspect(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                           redis_server: RedisServer) -> None:
    source = f"sqlite:{tmp_path / 'bot.db'}#fsm"
    asyncio.run(_fill(source, 25))
    target = f"{redis_server.url}#clitest"
    assert main(["kv", "copy", source, target]) == 0
    assert "copied 25 keys" in capsys.readouterr().out
    assert main(["kv", "copy", source, target]) == 1  # the target holds keys now
    assert "--overwrite" in capsys.readouterr().err
    assert main(["kv", "copy", source, target, "--overwrite"]) == 0
    capsys.readouterr()
    assert main(["kv", "inspect", target, "--json", "--sample", "3"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["keys"], report["with_ttl"], report["without_ttl"]) == (25, 12, 13)
    assert len(report["sample"]) == 3 and "value" not in report["sample"][0]
    assert main(["kv", "inspect", target]) == 0
    text = capsys.readouterr().out
    assert "25 (12 with a TTL, 13 without)" in text and "hunter2" not in text
    assert main(["kv", "inspect", target, "--values", "--pattern", "state:7"]) == 0
    text = capsys.readouterr().out
    assert "state:7" in text and "hunter2" in text  # values only when asked
    asyncio.run(_clear(target))


async def _clear(location: str) -> None:
    async with kv.from_url(location) as store:
        await store.clear()


def test_bad_locations_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["kv", "inspect", "bot.db"])
    assert exit_.value.code == 2
    assert "sqlite:PATH" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["kv", "copy", "memory:", "memory:"])


def test_password_is_not_printed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["kv", "inspect", "redis://:hunter2@127.0.0.1:1/0"])
    assert code == 1
    captured = capsys.readouterr()
    assert "hunter2" not in captured.out + captured.err
