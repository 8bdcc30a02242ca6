"""Redis and Valkey: the driver plumbing (:mod:`.client`), shared by the stores that keep
data in Redis, and the session storage (:mod:`.storage`, with its key layout, Lua
scripts and layout versions in :mod:`.layout`, :mod:`.scripts` and :mod:`.schema`).

Nothing is imported from redis-py or valkey until a client is built.
"""

from __future__ import annotations

from .client import DRIVERS, SCHEMES, build_client, check_async_client, is_cluster

__all__ = ["DRIVERS", "SCHEMES", "build_client", "check_async_client", "is_cluster"]
