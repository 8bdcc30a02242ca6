"""MongoDB faults: the server stops or crashes under a running writer, then comes back.

tests/test_mongo.py checks single calls against a stopped server; here writers keep
running through several outages (SIGTERM and SIGKILL), and the bookkeeping is per
acknowledged write: every call either returned (acknowledged: it must survive) or
raised one of our errors (BackendError; never a driver exception), and after the
server is back the same storage object works again without being reopened.
The server runs with ``--sync-on-commit``, so it is durable itself.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pyrogram_storage import Peer, PeerType, Storage

from .outages import (
    check_a_failed_flush_is_retried,
    check_nothing_acknowledged_lost,
    write_through_outages,
)
from .servers.mongoserver import MongoServer, mongo_uri_from_env

pytestmark = [
    pytest.mark.mongo,
    pytest.mark.skipif(
        mongo_uri_from_env() is not None,
        reason="stops and restarts a server of its own; not done to a user's mongod",
    ),
]

FULL = os.environ.get("PYROGRAM_STORAGE_FULL") == "1"
OUTAGES = int(os.environ.get("PYROGRAM_STORAGE_OUTAGES", 5 if FULL else 1))
TIMEOUTS = {"serverSelectionTimeoutMS": 500, "connectTimeoutMS": 1000, "socketTimeoutMS": 5000}


@pytest.fixture(scope="module")
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MongoServer]:
    """A server of this module's own (never the shared one), durable on every commit."""
    with MongoServer(tmp_path_factory.mktemp("faults-mongo"), sync_on_commit=True) as server:
        yield server


@pytest.fixture
def server(own_server: MongoServer) -> MongoServer:
    own_server.restart()  # a failed test may have left it stopped
    return own_server


@pytest.mark.slow
@pytest.mark.parametrize("outage", ["stop", "kill"])
@pytest.mark.parametrize(
    ("driver", "interval"),
    [("pymongo", None), ("motor", None), ("async_pymongo", None), ("pymongo", 0)],
)
async def test_writers_survive_outages_and_lose_no_acknowledged_write(
    server: MongoServer, driver: str, interval: float | None, outage: str, tmp_path: Path
) -> None:
    """With the default interval a returned write is kept pending until the server is
    back; with 0 it was stored before it returned. Either way none is lost."""
    from pyrogram_storage.mongo import MongoStorage

    name = f"faults_{uuid.uuid4().hex[:12]}"
    options: dict[str, Any] = {} if interval is None else {"commit_interval": interval}
    storage = MongoStorage.from_url(
        server.uri,
        name=name,
        driver=driver,
        client_options=TIMEOUTS,
        username_ttl=None,
        **options,
    )
    await storage.open()
    ack = await write_through_outages(
        storage,
        outages=OUTAGES,
        take_down=server.stop if outage == "stop" else server.kill,
        bring_back=server.restart,
        also_while_down=lambda: _write_and_flush(storage),
        named="MongoStorage",
    )
    await storage.close()
    again = MongoStorage.from_url(
        server.uri, name=name, driver=driver, client_options=TIMEOUTS, username_ttl=None
    )
    await check_nothing_acknowledged_lost(again, ack)
    print(
        f"\n{driver}/{outage}: {OUTAGES} outages, {len(ack.peers)} acknowledged peer "
        f"writes kept, failures while down: {dict(ack.failures)}"
    )


async def _write_and_flush(storage: Storage) -> None:
    """A peer write, stored: it fails in the call or, once batched, in the flush."""
    await storage.upsert_peers([Peer(1, 1, PeerType.USER)])
    await storage.flush()


async def test_writes_a_flush_could_not_store_are_stored_once_the_server_is_back(
    server: MongoServer,
) -> None:
    from pyrogram_storage.mongo import MongoStorage

    name = f"retry_{uuid.uuid4().hex[:12]}"
    await check_a_failed_flush_is_retried(
        lambda **options: MongoStorage.from_url(
            server.uri, name=name, client_options=TIMEOUTS, username_ttl=None, **options
        ),
        take_down=server.stop,
        bring_back=server.restart,
    )
