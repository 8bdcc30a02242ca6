"""Every Python example in README.rst runs as written.

A block preceded by the comment ``.. readme-test: skip (reason)`` is not run here; the
reason names the test that runs it (e.g. in a client's own virtualenv).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.rst"
_BLOCK = re.compile(r"^\.\. code-block:: python\n((?:\n|   .*\n)+)", re.MULTILINE)
_SKIP = ".. readme-test: skip"


def python_blocks() -> list[tuple[int, str]]:
    text = README.read_text()
    blocks = []
    for match in _BLOCK.finditer(text):
        before = text[: match.start()].rstrip().splitlines()
        if before and before[-1].startswith(_SKIP):
            continue
        line = text.count("\n", 0, match.start()) + 1
        code = "\n".join(row[3:] for row in match.group(1).splitlines())
        blocks.append((line, code))
    return blocks


BLOCKS = python_blocks()


def test_readme_has_examples() -> None:
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("line, code", BLOCKS, ids=[f"line-{line}" for line, _ in BLOCKS])
def test_readme_example_runs(
    line: int, code: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    env = dict(os.environ)
    if "MONGODB_URI" in code:
        env["MONGODB_URI"] = request.getfixturevalue("mongo_uri")
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"README.rst line {line}:\n{result.stderr}"
