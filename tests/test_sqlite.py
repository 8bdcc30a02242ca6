"""SQLite-backend specifics beyond the contract."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize(
    "kind",
    [
        "FileStorage('forgotten', WORKDIR)",
        "FileStorage('forgotten', WORKDIR, commit_interval=0)",
        "FileStorage('forgotten', WORKDIR, commit_interval=3600)",
        "MemoryStorage()",
    ],
)
def test_an_unclosed_storage_does_not_hang_interpreter_exit(kind: str, tmp_path: Path) -> None:
    """A storage never closed: the process exits, and asyncio.run() ending stores its writes."""
    code = (
        "import asyncio\n"
        "from pyrogram_storage import FileStorage, MemoryStorage, Peer, PeerType\n"
        f"WORKDIR = {str(tmp_path)!r}\n"
        "async def main():\n"
        f"    storage = {kind}\n"
        "    await storage.open()\n"
        "    await storage.upsert_peers([Peer(1, 2, PeerType.USER, ('kept',))])\n"
        "asyncio.run(main())\n"
    )
    result = subprocess.run([sys.executable, "-c", code], timeout=60, capture_output=True)
    assert result.returncode == 0, result.stderr.decode()
    if kind.startswith("FileStorage"):
        check = (
            "import asyncio\n"
            "from pyrogram_storage import FileStorage\n"
            "async def main():\n"
            f"    async with FileStorage('forgotten', {str(tmp_path)!r}) as storage:\n"
            "        assert (await storage.peer_by_username('kept')).id == 1\n"
            "asyncio.run(main())\n"
        )
        subprocess.run([sys.executable, "-c", check], timeout=60, check=True)
