"""Every Python example in README.rst runs as written.

Blocks whose first line names a client (``# Kurigram 2.2.26``) need that client and
run in its own virtualenv (tests/test_clients.py); a block preceded by the comment
``.. readme-test: skip (reason)`` is not run here either, the reason says where it is.
Examples using ``MONGODB_URI`` get the test run's MongoDB server, those using
``REDIS_URL`` a Redis server started for this module, those using ``POSTGRES_URL``
the test run's PostgreSQL server.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.rst"
_BLOCK = re.compile(r"^\.\. code-block:: python\n((?:\n|[ \t]+.*\n)+)", re.MULTILINE)
_SKIP = ".. readme-test: skip"
_CLIENT_LINE = re.compile(
    r"#\s*(kurigram|pyrofork|pyrogram|irenogram|hydrogram|pyrotgfork|electrogram)\b", re.I
)


def python_blocks() -> list[tuple[int, str]]:
    text = README.read_text()
    blocks = []
    for match in _BLOCK.finditer(text):
        before = text[: match.start()].rstrip().splitlines()
        if before and before[-1].startswith(_SKIP):
            continue
        line = text.count("\n", 0, match.start()) + 1
        code = textwrap.dedent(match.group(1)).strip() + "\n"
        if _CLIENT_LINE.match(code):
            continue
        blocks.append((line, code))
    return blocks


BLOCKS = python_blocks()


@pytest.fixture(scope="module")
def readme_redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from .servers.redisserver import RedisServer

    with RedisServer(tmp_path_factory.mktemp("readme-redis")) as server:
        yield server.url


def test_readme_has_examples() -> None:
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("line, code", BLOCKS, ids=[f"line-{line}" for line, _ in BLOCKS])
def test_readme_example_runs(
    line: int, code: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    env = dict(os.environ)
    if "MONGODB_URI" in code:
        env["MONGODB_URI"] = request.getfixturevalue("mongo_uri")
    if "REDIS_URL" in code:
        env["REDIS_URL"] = request.getfixturevalue("readme_redis_url")
    if "POSTGRES_URL" in code:
        env["POSTGRES_URL"] = request.getfixturevalue("postgres_server").url
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"README.rst line {line}:\n{result.stderr}"
    assert "auth_key=b" not in result.stdout
