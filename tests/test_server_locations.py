"""Server locations of both halves: options, names, keys, and servers that are not there.

Each rule holds for every server backend, session storage and bot-state store alike
(issue 20 items 3, 9, 12, 13; issue 21 item 6).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from pyrogram_storage import InvalidValueError, RedisStorage, from_url, kv
from pyrogram_storage.errors import BackendError

SERVER_LOCATIONS = {
    "mongo-session": (from_url, "mongodb://user:hunter2@127.0.0.1:{port}/?directConnection=true#s"),
    "mongo-kv": (kv.from_url, "mongodb://user:hunter2@127.0.0.1:{port}/db?directConnection=true"),
    "redis-session": (from_url, "redis://user:hunter2@127.0.0.1:{port}/0#s"),
    "redis-kv": (kv.from_url, "redis://user:hunter2@127.0.0.1:{port}/0#ns"),
    "postgres-session": (from_url, "postgresql://user:hunter2@127.0.0.1:{port}/db#s"),
    "postgres-kv": (kv.from_url, "postgresql://user:hunter2@127.0.0.1:{port}/db#ns"),
}
KNOWN_OPTION = {"mongo": "connecttimeoutms=100", "redis": "socket_timeout=3"}


@pytest.mark.parametrize("name", list(SERVER_LOCATIONS))
def test_unknown_url_options_are_refused_naming_the_known_ones(name: str) -> None:
    """Before: Redis failed at open() with "unexpected keyword argument", Mongo ignored
    the option with only a pymongo warning, PostgreSQL sent it to the server as a
    setting (refused on every connection)."""
    build, location = SERVER_LOCATIONS[name]
    head, _, fragment = location.format(port=1).partition("#")
    joiner = "&" if "?" in head else "?"
    with pytest.raises(InvalidValueError) as caught:
        build(f"{head}{joiner}bogus_option=1#{fragment}")
    message = str(caught.value)
    assert "'bogus_option'" in message and "known options" in message
    assert "hunter2" not in message
    known = KNOWN_OPTION.get(name.partition("-")[0], "application_name=bot")
    build(f"{head}{joiner}{known}#{fragment}")  # a known one is taken


def test_unknown_client_options_of_mongo_are_refused_too() -> None:
    for build, location in (SERVER_LOCATIONS["mongo-session"], SERVER_LOCATIONS["mongo-kv"]):
        with pytest.raises(InvalidValueError, match="'bogusOption' in client_options"):
            build(location.format(port=1), client_options={"bogusOption": 1})


@pytest.mark.parametrize("database", ["admin", "local", "config", "ADMIN"])
def test_mongodb_system_databases_are_refused(database: str) -> None:
    """Before: a session named admin, local or config went into MongoDB's own databases
    (local is not replicated: lost on a failover)."""
    with pytest.raises(InvalidValueError, match="MongoDB's own databases"):
        from_url(f"mongodb://127.0.0.1:1/#{database}")
    with pytest.raises(InvalidValueError, match="MongoDB's own databases"):
        from_url("mongodb://127.0.0.1:1/#s", database=database)
    with pytest.raises(InvalidValueError, match="MongoDB's own databases"):
        kv.from_url(f"mongodb://127.0.0.1:1/{database}")
    with pytest.raises(InvalidValueError, match="MongoDB's own databases"):
        kv.from_url("mongodb://127.0.0.1:1/", database=database)


def test_redis_key_layout_names_one_session_or_namespace_only() -> None:
    """Before: prefix="p:a", name="b" and prefix="p", name="a:b" both used {p:a:b}."""
    with pytest.raises(InvalidValueError, match="cannot hold ':'"):
        RedisStorage.from_url("redis://127.0.0.1:1/0", name="b", prefix="p:a")
    with pytest.raises(InvalidValueError, match="cannot hold ':'"):
        from_url("redis://127.0.0.1:1/0?prefix=p:a#b")
    one = RedisStorage.from_url("redis://127.0.0.1:1/0", name="a:b", prefix="p")
    two = RedisStorage.from_url("redis://127.0.0.1:1/0", name="b", prefix="p")
    assert one.keys.tag != two.keys.tag
    with pytest.raises(kv.InvalidArgumentError):
        kv.from_url("redis://127.0.0.1:1/0#a:b")  # a namespace never holds the separator


@pytest.mark.parametrize("name", list(SERVER_LOCATIONS))
async def test_a_server_that_is_not_there_is_one_line_within_seconds(name: str) -> None:
    """Before: MongoDB was silent for ~30 s (the driver's default) and then printed a
    600-character topology dump; now every backend says, in one line and a few seconds,
    which host and port it could not reach, never the password."""
    build, location = SERVER_LOCATIONS[name]
    store: Any = build(location.format(port=1))
    started = time.monotonic()
    with pytest.raises(BackendError) as caught:
        await asyncio.wait_for(store.open(), 30)
    elapsed = time.monotonic() - started
    message = str(caught.value)
    assert elapsed < 8, elapsed
    assert "\n" not in message and len(message) < 300, message
    assert "127.0.0.1:1" in message and "hunter2" not in message, message


def test_a_client_built_from_a_url_keeps_the_urls_own_timeout() -> None:
    from pyrogram_storage.mongo.client import ClientRecipe, _with_defaults

    recipe = ClientRecipe("mongodb://h/?serverSelectionTimeoutMS=100", "pymongo", {})
    assert "serverSelectionTimeoutMS" not in _with_defaults(recipe.url, recipe.options)
    assert _with_defaults("mongodb://h/", {})["serverSelectionTimeoutMS"] == 5000
    given = _with_defaults("mongodb://h/", {"serverselectiontimeoutms": 200})
    assert given == {"connectTimeoutMS": 5000, "serverselectiontimeoutms": 200}
