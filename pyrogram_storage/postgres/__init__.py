"""PostgreSQL: the driver plumbing (:mod:`.client`), shared by the stores that keep data
in PostgreSQL, and the session storage (:mod:`.storage`; the schema's migrations in
:mod:`.schema`, invalidations across processes in :mod:`.notify`).

Nothing is imported from asyncpg until a pool is built or a storage is opened.
"""

from __future__ import annotations

from .client import DEFAULT_CONNECT_TIMEOUT, DEFAULT_POOL_OPTIONS, PoolRecipe
from .storage import DEFAULT_SCHEMA, MAX_NAME_LENGTH, PostgresStorage

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_POOL_OPTIONS",
    "DEFAULT_SCHEMA",
    "MAX_NAME_LENGTH",
    "PoolRecipe",
    "PostgresStorage",
]
