"""Access to the session files the real clients wrote (tests/fixtures/sessions)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

SESSIONS = Path(__file__).parent / "fixtures" / "sessions"
CLIENT_NAMES = sorted(path.stem for path in SESSIONS.glob("*.json"))


def manifest(client: str) -> dict[str, Any]:
    """What ``client`` wrote into its fixture file, as its generator recorded it."""
    data: dict[str, Any] = json.loads((SESSIONS / f"{client}.json").read_text())
    return data


def copy_fixture(client: str, workdir: Path, name: str | None = None) -> Path:
    """Copy a client's fixture file (with WAL side files) into ``workdir``; return its path."""
    name = name or client
    target = workdir / f"{name}.session"
    for suffix in ("", "-wal", "-shm"):
        source = SESSIONS / f"{client}.session{suffix}"
        if source.exists():
            shutil.copyfile(source, f"{target}{suffix}")
    return target
