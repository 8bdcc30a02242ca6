"""Redis and Valkey driver plumbing, shared by the stores that keep data in Redis.

Nothing is imported from redis-py or valkey until a client is built.
"""

from __future__ import annotations

from .client import DRIVERS, SCHEMES, build_client, check_async_client, is_cluster

__all__ = ["DRIVERS", "SCHEMES", "build_client", "check_async_client", "is_cluster"]
