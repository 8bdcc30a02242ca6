"""Start the test servers by hand, print their URLs, and stop them on Ctrl-C.

``python -m tests.servers [mongo] [redis] [cluster] [postgres]`` (MongoDB, Redis and
PostgreSQL by default),
from the repository's root: the documented examples then run against them.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import tempfile
from pathlib import Path

from .mongoserver import MongoServer
from .pgserver import PostgresServer
from .redisserver import RedisCluster, RedisServer

KINDS = ("mongo", "redis", "cluster", "postgres")


def main(argv: list[str]) -> int:
    wanted = argv or ["mongo", "redis", "postgres"]
    unknown = sorted(set(wanted) - set(KINDS))
    if unknown:
        print(f"usage: python -m tests.servers [{'] ['.join(KINDS)}]", file=sys.stderr)
        return 2
    with (
        tempfile.TemporaryDirectory(prefix="pyrogram-storage-servers-") as folder,
        contextlib.ExitStack() as stack,
    ):
        root = Path(folder)
        if "mongo" in wanted:
            mongo = stack.enter_context(MongoServer(root / "mongo"))
            print(f"MongoDB:       {mongo.uri}")
        if "redis" in wanted:
            redis = stack.enter_context(RedisServer(root / "redis"))
            print(f"Redis:         {redis.url}")
        if "cluster" in wanted:
            cluster = stack.enter_context(RedisCluster(root / "cluster"))
            print(f"Redis Cluster: {cluster.url}")
        if "postgres" in wanted:
            postgres = stack.enter_context(PostgresServer())  # a folder `nobody` can reach
            print(f"PostgreSQL:    {postgres.url}")
        print("running; Ctrl-C stops them", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
