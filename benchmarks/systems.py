"""Every system the benchmarks can run, in one table (standard library only).

A system is one storage driven one way, measured by one suite:

* ``cells``: the storage alone, call by call (``worker.py``): ingest, lookups, the
  50-task mix, cold open, RSS, event-loop stalls;
* ``path``: the real client's update path, offline (``client_path.py``):
  ``handle_updates`` + 2 × ``resolve_peer`` per update;
* ``host``: many sessions open in one process (``host.py``).

Adding a backend (say Redis) takes three small steps: a factory in
``backends.OUR_BACKENDS`` that builds the storage, rows here that name it (``backend``)
and the server it needs (``server``), and, for a server, a starter in
``run.SERVERS`` that returns its URI.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class System:
    """One row of the benchmark: what runs, where, and against what.

    :param venv: the client virtualenv (``tests/clientenv.py``) whose python runs it,
        or None for the python that runs ``run.py``.
    :param kind: how the worker drives it (the worker's dispatch key).
    :param backend: our backend's key in ``backends.OUR_BACKENDS`` (ours only).
    :param server: a server the run must start first (``run.SERVERS``), if any.
    :param pip: extra requirements installed into the venv.
    :param max_n: the largest N worth running (a slow server).
    :param params: worker parameters of its own (fewer updates for a slow system).
    """

    name: str
    label: str
    suite: str
    kind: str
    venv: str | None = None
    backend: str | None = None
    server: str | None = None
    pip: tuple[str, ...] = ()
    max_n: int | None = None
    params: tuple[tuple[str, Any], ...] = ()

    @property
    def ours(self) -> bool:
        return self.backend is not None


MOTOR = ("motor==3.7.1",)
CRYPTO = ("cryptography==51.0.1",)
REDIS = ("redis==8.1.0",)
ASYNCPG = ("asyncpg==0.32.0",)
ASYNCPG_STORAGE = (*ASYNCPG, "pyrogram-asyncpg-storage==0.1")
# A Redis server answers in tens of microseconds: the server rows' small counts (made
# for the slow SecantusDB) would time little more than noise.
REDIS_PARAMS: tuple[tuple[str, Any], ...] = (
    ("lookups", 20_000),
    ("usernames", 2_000),
    ("phones", 2_000),
    ("uncached", 2_000),
    ("small", 2_000),
    ("ops_per_task", 40),
    ("roundtrips", 50),
    ("loop_cap", 2_000),
    ("updates", 5_000),
    ("warmup", 500),
    ("metered_updates", 1_000),
)

SYSTEMS: tuple[System, ...] = (
    # -- cells -------------------------------------------------------------------------
    System(
        "ours-client",
        "ours FileStorage via for_client (Kurigram)",
        "cells",
        "client",
        venv="kurigram",
        backend="file",
    ),
    System("kurigram-file", "Kurigram file", "cells", "kurigram", venv="kurigram"),
    System("ours-file", "ours FileStorage", "cells", "ours", backend="file"),
    System("ours-memory", "ours MemoryStorage", "cells", "ours", backend="memory"),
    System("kurigram-memory", "Kurigram memory", "cells", "kurigram-memory", venv="kurigram"),
    System("pyrogram-file", "Pyrogram 2.0.106 FileStorage", "cells", "pyrogram", venv="pyrogram"),
    System(
        "pyrogram-memory",
        "Pyrogram 2.0.106 MemoryStorage",
        "cells",
        "pyrogram-memory",
        venv="pyrogram",
    ),
    System("raw-sqlite", "raw sqlite3 (tuned)", "cells", "raw"),
    System("ours-mongo", "ours MongoStorage", "cells", "ours", backend="mongo", server="mongo"),
    System(
        "pyrofork-mongo",
        "Pyrofork MongoStorage",
        "cells",
        "pyrofork-mongo",
        venv="pyrofork",
        server="mongo",
        pip=MOTOR,
    ),
    System(
        "ours-redis",
        "ours RedisStorage (shared: no peer cache)",
        "cells",
        "ours",
        backend="redis",
        server="redis",
        params=REDIS_PARAMS,
    ),
    System(
        "ours-redis-sole",
        "ours RedisStorage (sole_writer=True)",
        "cells",
        "ours",
        backend="redis-sole",
        server="redis",
        params=REDIS_PARAMS,
    ),
    # -- the client's update path ------------------------------------------------------
    System(
        "path-kurigram-ours",
        "Kurigram + ours FileStorage via for_client",
        "path",
        "ours",
        venv="kurigram",
        backend="file",
    ),
    System("path-kurigram-file", "Kurigram + its file storage", "path", "own", venv="kurigram"),
    # Issue 24: the auth key sealed at rest costs nothing on the update path (it is
    # opened once per open); open_ms shows the key derivation.
    System(
        "path-kurigram-ours-encrypted",
        "Kurigram + ours FileStorage, auth key sealed (raw key)",
        "path",
        "ours",
        venv="kurigram",
        backend="file-key",
        pip=CRYPTO,
    ),
    System(
        "path-kurigram-ours-passphrase",
        "Kurigram + ours FileStorage, auth key sealed (passphrase, Argon2id)",
        "path",
        "ours",
        venv="kurigram",
        backend="file-passphrase",
        pip=CRYPTO,
    ),
    System(
        "path-kurigram-dict", "Kurigram + a dict (the ceiling)", "path", "dict", venv="kurigram"
    ),
    System(
        "path-pyrofork-ours",
        "Pyrofork + ours FileStorage via for_client",
        "path",
        "ours",
        venv="pyrofork",
        backend="file",
    ),
    # Pyrofork's file storage commits every update state: 5-20 ms an update.
    System(
        "path-pyrofork-file",
        "Pyrofork + its file storage",
        "path",
        "own",
        venv="pyrofork",
        params=(("updates", 2_000), ("metered_updates", 500)),
    ),
    System(
        "path-pyrofork-dict", "Pyrofork + a dict (the ceiling)", "path", "dict", venv="pyrofork"
    ),
    System(
        "path-pyrofork-ours-mongo",
        "Pyrofork + ours MongoStorage via for_client",
        "path",
        "ours",
        venv="pyrofork",
        backend="mongo",
        server="mongo",
        pip=MOTOR,
    ),
    System(
        "path-pyrofork-mongo",
        "Pyrofork + its MongoStorage (motor)",
        "path",
        "own-mongo",
        venv="pyrofork",
        server="mongo",
        pip=MOTOR,
    ),
    System(
        "path-kurigram-ours-redis",
        "Kurigram + ours RedisStorage via for_client (shared)",
        "path",
        "ours",
        venv="kurigram",
        backend="redis",
        server="redis",
        pip=REDIS,
        params=REDIS_PARAMS,
    ),
    System(
        "path-kurigram-ours-redis-sole",
        "Kurigram + ours RedisStorage via for_client (sole_writer=True)",
        "path",
        "ours",
        venv="kurigram",
        backend="redis-sole",
        server="redis",
        pip=REDIS,
        params=REDIS_PARAMS,
    ),
    # PostgreSQL: Pyrogram 2.0.106 (the client pyrogram-asyncpg-storage is written for).
    System(
        "path-pyrogram-ours-postgres-sole",
        "Pyrogram 2.0.106 + ours PostgresStorage via for_client (sole_writer=True)",
        "path",
        "ours",
        venv="pyrogram",
        backend="postgres-sole",
        server="postgres",
        pip=ASYNCPG,
        params=REDIS_PARAMS,
    ),
    System(
        "path-pyrogram-ours-postgres",
        "Pyrogram 2.0.106 + ours PostgresStorage via for_client (shared)",
        "path",
        "ours",
        venv="pyrogram",
        backend="postgres",
        server="postgres",
        pip=ASYNCPG,
        params=REDIS_PARAMS,
    ),
    # One upsert transaction per update: a few ms each, so fewer updates.
    System(
        "path-pyrogram-asyncpg-storage",
        "Pyrogram 2.0.106 + pyrogram-asyncpg-storage 0.1",
        "path",
        "asyncpg-storage",
        venv="pyrogram",
        server="postgres",
        pip=ASYNCPG_STORAGE,
        params=(("updates", 1_000), ("warmup", 200), ("metered_updates", 300)),
    ),
    System(
        "path-pyrogram-file", "Pyrogram 2.0.106 + its file storage", "path", "own", venv="pyrogram"
    ),
    # -- many sessions in one process --------------------------------------------------
    System(
        "host-ours",
        "host of many sessions: ours FileStorage via for_client (Kurigram)",
        "host",
        "ours",
        venv="kurigram",
        backend="file",
    ),
    System("host-kurigram", "host of many sessions: Kurigram file", "host", "own", venv="kurigram"),
)

BY_NAME = {system.name: system for system in SYSTEMS}

# (ours, anchor) pairs: each gives a ratio column, "anchor time / our time".
PAIRS: tuple[tuple[str, str], ...] = (
    ("ours-client", "kurigram-file"),
    ("ours-file", "kurigram-file"),
    ("ours-file", "pyrogram-file"),
    ("ours-memory", "kurigram-memory"),
    ("ours-file", "raw-sqlite"),
    ("ours-mongo", "pyrofork-mongo"),
    ("ours-redis", "kurigram-file"),
    ("ours-redis", "ours-file"),
    ("ours-redis-sole", "kurigram-file"),
    ("ours-redis-sole", "ours-file"),
    ("path-kurigram-ours", "path-kurigram-file"),
    ("path-kurigram-dict", "path-kurigram-file"),
    ("path-kurigram-ours-encrypted", "path-kurigram-ours"),
    ("path-kurigram-ours-passphrase", "path-kurigram-ours"),
    ("path-pyrofork-ours", "path-pyrofork-file"),
    ("path-pyrofork-dict", "path-pyrofork-file"),
    ("path-pyrofork-ours-mongo", "path-pyrofork-mongo"),
    ("path-kurigram-ours-redis", "path-kurigram-file"),
    ("path-kurigram-ours-redis", "path-kurigram-ours"),
    ("path-kurigram-ours-redis-sole", "path-kurigram-file"),
    ("path-pyrogram-ours-postgres-sole", "path-pyrogram-asyncpg-storage"),
    ("path-pyrogram-ours-postgres-sole", "path-kurigram-file"),
    ("path-pyrogram-ours-postgres-sole", "path-pyrogram-file"),
    ("path-pyrogram-ours-postgres", "path-pyrogram-asyncpg-storage"),
    ("host-ours", "host-kurigram"),
)
