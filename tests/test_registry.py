"""One registry of locations: from_url builds every backend the CLI and the README name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pyrogram_storage import FileStorage, InvalidValueError, MemoryStorage, from_url
from pyrogram_storage.registry import SCHEMES, scheme_of, storage_class


@pytest.mark.parametrize(
    "location, name, expected",
    [
        ("sessions/me.session", "me", "sessions/me.session"),
        ("sessions/me", "me", "sessions/me.session"),
        ("file:sessions/me.session", "me", "sessions/me.session"),
        ("me.session", "me", "me.session"),
        ("notes:v2.session", "notes:v2", "notes:v2.session"),
    ],
)
def test_file_locations(location: str, name: str, expected: str) -> None:
    storage = from_url(location)
    assert isinstance(storage, FileStorage) and storage.name == name
    assert storage.path == Path(expected)
    assert from_url(storage.location).location == storage.location  # round trip


def test_memory_locations() -> None:
    fresh = from_url("memory:")
    named = from_url("memory:bot", username_ttl=None)
    assert isinstance(fresh, MemoryStorage) and isinstance(named, MemoryStorage)
    assert (fresh.name, named.name, named.username_ttl) == ("memory", "bot", None)
    assert from_url(named.location).location == "memory:bot"


def test_options_reach_the_backend(tmp_path: Path) -> None:
    storage = from_url(str(tmp_path / "x.session"), commit_interval=0, lock="shared")
    assert isinstance(storage, FileStorage)
    assert (storage.commit_interval, storage.lock) == (0, "shared")


@pytest.mark.parametrize("location", ["", ".session", "dir/"])
def test_a_location_without_a_session_name_is_refused(location: str) -> None:
    with pytest.raises(InvalidValueError, match="names no session file"):
        from_url(location)


def test_unknown_schemes_are_refused_with_the_known_ones() -> None:
    with pytest.raises(InvalidValueError, match="known schemes: file, memory"):
        from_url("ftp://host/me")


def test_schemes() -> None:
    assert scheme_of("C:/x.session") == "file"  # one letter: a drive, not a scheme
    assert scheme_of("MEMORY:x") == "memory"
    assert scheme_of("mongodb+srv://cluster.example/#me") == "mongodb+srv"
    for scheme in SCHEMES:
        cls = storage_class(f"{scheme}://host/#x" if "mongo" in scheme else f"{scheme}:x")
        assert "from_location" in vars(cls), f"{cls.__name__} cannot be built from {scheme}:"


def test_registry_imports_a_backend_only_when_its_location_is_used() -> None:
    code = (
        "import sys, pyrogram_storage\n"
        "pyrogram_storage.from_url('memory:')\n"
        "assert 'pyrogram_storage.mongo' not in sys.modules, 'mongo imported'\n"
        "pyrogram_storage.registry.storage_class('mongodb://h/#x')\n"
        "assert 'pyrogram_storage.mongo' in sys.modules\n"
        "assert 'pymongo' not in sys.modules, 'a driver was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
