"""Find and read the migration files kept as data under ``migrations/``.

A SQL script may include another with a line ``.read PATH``, the sqlite3 shell's own
command: PATH is relative to the backend's folder (``migrations/sqlite/``), so the shell
started in that folder reads the same files. Scripts are returned with every include
expanded, so a block shared by several scripts is written once.

A numbered step ``NNNN_name.sql`` may have companions ``NNNN_name.VARIANT.sql`` that
run after it, in the same transaction, only on databases of that variant (for SQLite,
a :class:`~pyrogram_storage.sqlite.Layout` value): SQL cannot make a schema
change depend on the schema it finds. ``migrations/README`` says when to use one.
"""

from __future__ import annotations

import functools
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path, PurePosixPath

from .errors import MigrationError

_NUMBERED = re.compile(r"^(\d{4})_([a-z0-9_]+)(?:\.([a-z]+))?\.(sql|json)$")
_INCLUDE = re.compile(r"^\.read\s+(\S+)\s*$")


@dataclass(frozen=True)
class Migration:
    """One numbered step: applying it brings a database to ``version``.

    ``variants`` holds the companion scripts, by variant name.
    """

    version: int
    name: str
    text: str
    variants: tuple[tuple[str, str], ...] = ()

    def text_for(self, variant: str) -> str:
        """The step's script followed by its companion for ``variant``, if it has one."""
        return self.text + "\n" + dict(self.variants).get(variant, "")


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
    texts: dict[tuple[int, str], str] = {}
    variants: dict[tuple[int, str], list[tuple[str, str]]] = {}
    for entry in sorted(root().joinpath(backend).iterdir(), key=lambda item: item.name):
        match = _NUMBERED.match(entry.name)
        if not match:
            continue
        key = (int(match.group(1)), match.group(2))
        text = (
            _expand(backend, entry.name, ())
            if entry.name.endswith(".sql")
            else entry.read_text("utf-8")
        )
        if match.group(3):
            variants.setdefault(key, []).append((match.group(3), text))
        else:
            texts[key] = text
    for version, name in set(variants) - set(texts):
        raise MigrationError(
            f"{backend} migration {version:04d}_{name} has variants but no main file"
        )
    steps = [
        Migration(version, name, text, tuple(variants.get((version, name), ())))
        for (version, name), text in texts.items()
    ]
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
    return _expand(backend, "/".join(parts), ())


def scripts(backend: str) -> Iterator[tuple[str, str]]:
    """Every ``.sql`` script of ``backend`` as (path relative to its folder, expanded text)."""
    folder = root().joinpath(backend)
    pending: list[tuple[str, Traversable]] = [("", folder)]
    while pending:
        prefix, directory = pending.pop()
        for entry in sorted(directory.iterdir(), key=lambda item: item.name):
            path = f"{prefix}{entry.name}"
            if entry.is_dir():
                pending.append((f"{path}/", entry))
            elif entry.name.endswith(".sql"):
                yield path, _expand(backend, path, ())


def _expand(backend: str, path: str, including: tuple[str, ...]) -> str:
    """Return the script at ``path`` with every ``.read`` line replaced by its file."""
    if path in including:
        raise MigrationError(f"{backend} migrations include {path} from itself: {including}")
    parts = PurePosixPath(path).parts
    if PurePosixPath(path).is_absolute() or ".." in parts:
        raise MigrationError(f"{backend} migration include {path!r} leaves migrations/{backend}")
    try:
        text = root().joinpath(backend, *parts).read_text("utf-8")
    except FileNotFoundError:
        where = f" (included from {including[-1]})" if including else ""
        raise MigrationError(f"{backend} migration {path} is missing{where}") from None
    lines = []
    for line in text.splitlines(keepends=True):
        match = _INCLUDE.match(line)
        if match:
            included = _expand(backend, match.group(1), (*including, path))
            lines.append(included if included.endswith("\n") else included + "\n")
        else:
            lines.append(line)
    return "".join(lines)


def statements(text: str) -> list[str]:
    """Split a SQL script into its statements (``--`` comment lines dropped).

    For running a step inside a transaction of our own: ``executescript`` would commit.
    """
    found = []
    current = ""
    for line in text.splitlines(keepends=True):
        if line.lstrip().startswith("--"):
            continue
        current += line
        if sqlite3.complete_statement(current):
            found.append(current.strip())
            current = ""
    if current.strip():
        found.append(current.strip())
    return found
