"""Find and read the migration files kept as data under ``migrations/``."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

from .errors import MigrationError

_NUMBERED = re.compile(r"^(\d{4})_([a-z0-9_]+)\.(sql|json)$")


@dataclass(frozen=True)
class Migration:
    """One numbered step: applying it brings a database to ``version``."""

    version: int
    name: str
    text: str


def root() -> Traversable:
    """The migrations folder: inside the installed package, else the source checkout's."""
    packaged = resources.files("pyrogram_storage") / "migrations"
    if packaged.is_dir():
        return packaged
    checkout = Path(__file__).resolve().parent.parent / "migrations"
    if checkout.is_dir():
        return checkout
    raise MigrationError(
        "the migrations folder is missing from this installation; reinstall pyrogram-storage"
    )


@functools.cache
def numbered(backend: str) -> tuple[Migration, ...]:
    """Every numbered migration of ``backend`` ("sqlite" or "mongo"), in order, without gaps."""
    steps = []
    for entry in root().joinpath(backend).iterdir():
        match = _NUMBERED.match(entry.name)
        if match:
            steps.append(Migration(int(match.group(1)), match.group(2), entry.read_text("utf-8")))
    steps.sort(key=lambda step: step.version)
    for expected, step in enumerate(steps, start=1):
        if step.version != expected:
            raise MigrationError(f"{backend} migrations skip from {expected - 1} to {step.version}")
    return tuple(steps)


def latest(backend: str) -> int:
    """The schema version this library writes for ``backend``."""
    steps = numbered(backend)
    return steps[-1].version if steps else 0


@functools.cache
def script(backend: str, *parts: str) -> str:
    """Read an unnumbered script, e.g. ``script("sqlite", "adopt", "classic.sql")``."""
    return root().joinpath(backend, *parts).read_text("utf-8")
