"""The shipped contract suites check other people's code: a wrong backend fails them fast.

Before, a backend whose ``_read_peers`` ignores ``after`` made ``StorageContract`` hang
(growing to gigabytes within a minute); a kv store whose listing never ends did the same
to the kv suite. Each is run here as a user would run it, in a pytest of its own.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

SESSION = """
import pytest
from pyrogram_storage import MemoryStorage
from pyrogram_storage.testing import StorageContract


class IgnoresAfter(MemoryStorage):
    async def _read_peers(self, after, limit):
        return await super()._read_peers(None, limit)


class TestIgnoresAfter(StorageContract):
    @pytest.fixture
    def make_storage(self):
        return lambda **options: IgnoresAfter("s", **options)
"""

KV = """
import pytest
from pyrogram_storage import kv
from pyrogram_storage.kv.testing import KVContract


class Endless(kv.MemoryKV):
    async def _scan(self, pattern, values, now):
        while True:  # a cursor that starts over instead of ending
            async for batch in super()._scan(pattern, values, now):
                yield batch


class TestEndless(KVContract):
    @pytest.fixture
    def make_store(self):
        return lambda **options: Endless(**options)
"""


def _run_suite(tmp_path: Path, code: str, selection: str) -> tuple[str, float]:
    test_file = tmp_path / "test_user_backend.py"
    test_file.write_text(textwrap.dedent(code))
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-k",
            selection,
            str(test_file),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout, elapsed


def test_a_backend_whose_read_peers_ignores_after_fails_the_session_suite_fast(
    tmp_path: Path,
) -> None:
    output, elapsed = _run_suite(tmp_path, SESSION, "iter_peers_yields or copy_session_there")
    assert "2 failed" in output and output.count("no progress") >= 2, output[-3000:]
    assert elapsed < 60


def test_a_store_whose_listing_never_ends_fails_the_kv_suite_fast(tmp_path: Path) -> None:
    output, elapsed = _run_suite(
        tmp_path, KV, "glob_patterns or listing_crosses or expired_key_is_invisible"
    )
    assert "3 failed" in output and output.count("no progress") >= 3, output[-3000:]
    assert elapsed < 60
