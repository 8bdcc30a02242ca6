"""One registry of locations for both halves: ``from_url`` and ``kv.from_url`` build every
backend the CLI and the README name, from one scheme table each."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pyrogram_storage import FileStorage, InvalidValueError, MemoryStorage, from_url, kv
from pyrogram_storage.registry import (
    KV_SCHEMES,
    READ_ONLY_SCHEMES,
    SCHEMES,
    display,
    scheme_of,
    storage_class,
    store_class,
)


@pytest.mark.parametrize(
    "location, name, expected",
    [
        ("sessions/me.session", "me", "sessions/me.session"),
        ("sessions/me", "me", "sessions/me.session"),
        ("file:sessions/me.session", "me", "sessions/me.session"),
        ("sqlite:sessions/me.session", "me", "sessions/me.session"),
        ("SQLite:sessions/me", "me", "sessions/me.session"),
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
    with pytest.raises(InvalidValueError, match="known schemes: file, sqlite, memory"):
        from_url("ftp://host/me")
    with pytest.raises(kv.InvalidArgumentError, match="known schemes: file, sqlite, json"):
        kv.from_url("ftp://host/me")


def test_schemes() -> None:
    assert scheme_of("C:/x.session") == "file"  # one letter: a drive, not a scheme
    assert scheme_of("MEMORY:x") == "memory"
    assert scheme_of("mongodb+srv://cluster.example/#me") == "mongodb+srv"
    for scheme in SCHEMES:
        cls = storage_class(f"{scheme}://host/#x" if "mongo" in scheme else f"{scheme}:x")
        assert "from_location" in vars(cls), f"{cls.__name__} cannot be built from {scheme}:"
    for scheme in KV_SCHEMES:
        cls = store_class(f"{scheme}://host/" if "mongo" in scheme else f"{scheme}:x")
        assert "from_location" in vars(cls), f"{cls.__name__} cannot be built from {scheme}:"
    assert set(SCHEMES) >= READ_ONLY_SCHEMES


def test_sqlite_and_file_schemes_and_bare_paths_in_both_halves(tmp_path: Path) -> None:
    """Before: from_url("sqlite:sessions/acc.session") made a folder named "sqlite:sessions",
    kv.from_url("bot.db") was refused although the session commands take bare paths."""
    for location in ("sqlite:a/b.session", "file:a/b.session", "a/b.session", "a/b"):
        storage = from_url(location)
        assert isinstance(storage, FileStorage) and storage.path == Path("a/b.session")
    for location in ("sqlite:a/bot.db", "file:a/bot.db", "a/bot.db", "SQLITE:a/bot.db#x"):
        store = kv.from_url(location)
        assert isinstance(store, kv.SQLiteKV) and store.path == Path("a/bot.db"), location
    for location in ("json:a/state.json", "a/state.json", "a/state.json#ns"):
        assert isinstance(kv.from_url(location), kv.JSONFileKV)
    assert kv.from_url("a/state.json#ns").namespace == "ns"
    assert isinstance(kv.from_url("sqlite::memory:"), kv.SQLiteKV)
    for bad in ("sqlite:", "json:", "memory:x"):
        with pytest.raises(kv.InvalidArgumentError):
            kv.from_url(bad)


def test_relative_paths_are_taken_from_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One rule for every relative path of both halves, as open() takes it; the one
    default that is no path of yours, FileStorage without workdir=, is the script's
    folder, where the clients' own Client(name) keeps its file."""
    monkeypatch.chdir(tmp_path)
    import asyncio

    async def create_all() -> None:
        async with from_url("s1.session"):
            pass
        async with FileStorage("s2", "rel"):
            pass
        async with kv.SQLiteKV("k1.db") as store:
            await store.set("k", 1)
        async with kv.from_url("sub/k2.json") as store:
            await store.set("k", 1)

    asyncio.run(create_all())
    for name in ("s1.session", "rel/s2.session", "k1.db", "sub/k2.json"):
        assert (tmp_path / name).is_file(), name
    script_folder = Path(sys.argv[0]).parent
    assert FileStorage("s3").path == script_folder / "s3.session"


def test_display_never_shows_a_secret() -> None:
    cases = {
        "mongodb://user:hunter2@h:27017/db?authSource=admin#s": "mongodb://h:27017/db",
        "redis://:hunter2@h:6379/0?password=hunter2&db=1#x": "redis://h:6379/0?password",
        "string:" + "A" * 300: "a session string",
        "telethon:1" + "B" * 300: "a Telethon session string",
    }
    for location, shown in cases.items():
        text = display(location)
        assert text.startswith(shown) and "hunter2" not in text, text
        assert "AAAA" not in text and "BBBB" not in text
    assert display("x" * 200) == "a location of 200 characters (not shown: it may be a secret)"


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
