"""The interpreter of ``migrations/postgres/NNNN_name.sql``: the schema's version and steps.

Each step runs in one transaction that holds an advisory lock on the schema's name,
with ``search_path`` set to the schema (the files never name it), and records the
version it brings the schema to; a process that waited on the lock finds the work done.
"""

from __future__ import annotations

import logging
from typing import Any

from .. import _migrations
from ..errors import SchemaTooNewError, UnknownSchemaError
from .client import quote_ident

__all__ = ["TABLES", "WRITER", "latest", "prepare", "read_version"]

log = logging.getLogger(__name__)

WRITER = "pyrogram-storage"
"""``schema_version.writer``."""

TABLES = ("schema_version", "sessions", "peers", "usernames", "update_states")
"""The tables of the schema (a schema holding one of them without a version is foreign)."""

_UNDEFINED = ("42P01", "3F000")  # undefined_table, invalid_schema_name


def latest() -> int:
    """The schema version this library writes."""
    return _migrations.latest("postgres")


def _checked(version: Any, writer: Any, where: str) -> int:
    if writer != WRITER or type(version) is not int:
        raise UnknownSchemaError(
            f"{where} has a schema_version table that pyrogram-storage did not write; "
            "it was left untouched"
        )
    if version > latest():
        raise SchemaTooNewError(
            f"{where} has schema version {version}, but this pyrogram-storage only knows up "
            f"to {latest()}; upgrade pyrogram-storage (the schema was left untouched)"
        )
    return version


async def read_version(conn: Any, schema: str, where: str) -> int:
    """The stored version (0: no schema_version table); refuse a foreign or newer one."""
    try:
        row = await conn.fetchrow(
            f"SELECT version, writer FROM {quote_ident(schema)}.schema_version"
        )
    except Exception as exc:
        if getattr(exc, "sqlstate", None) in _UNDEFINED:
            return 0
        raise
    if row is None:
        return 0
    return _checked(row[0], row[1], where)


async def prepare(conn: Any, schema: str, where: str) -> int:
    """Create or migrate the schema to :func:`latest`; return the version found first."""
    found = 0
    for step in _migrations.numbered("postgres"):
        async with conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext($1))", "pyrogram_storage:" + schema
            )
            exists = await conn.fetchval(
                "SELECT count(*) FROM pg_namespace WHERE nspname = $1", schema
            )
            table = quote_ident(schema) + ".schema_version"
            has_table = exists and await conn.fetchval("SELECT to_regclass($1)", table)
            version = await read_version(conn, schema, where) if has_table else 0
            if step.version == 1:
                found = version
            if version >= step.version:
                continue
            if not exists:
                await conn.execute(f"CREATE SCHEMA {quote_ident(schema)}")
            elif version == 0:
                taken = await conn.fetch(
                    "SELECT tablename FROM pg_tables WHERE schemaname = $1 "
                    "AND tablename = ANY($2::text[])",
                    schema,
                    list(TABLES),
                )
                if taken:
                    raise UnknownSchemaError(
                        f"{where} already has a table {taken[0][0]!r} but no schema_version: "
                        "it was not written by pyrogram-storage and was left untouched; "
                        "choose another schema="
                    )
            await conn.execute(f"SET LOCAL search_path TO {quote_ident(schema)}")
            await conn.execute(step.text)
            await conn.execute(
                f"INSERT INTO {quote_ident(schema)}.schema_version (version, writer) "
                "VALUES ($1, $2) "
                "ON CONFLICT (only_row) DO UPDATE SET version = EXCLUDED.version, "
                "writer = EXCLUDED.writer",
                step.version,
                WRITER,
            )
        log.info("%s: applied postgres migration %04d_%s", where, step.version, step.name)
    return found
