"""The interpreter of ``migrations/mongo/NNNN_name.json``: schema versions and their steps.

A migration file is ``{"description": ..., "steps": [{"op": ..., ...}, ...]}``. The
operations are the keys of :data:`OPERATIONS`:

* ``create_index``: ``collection``, ``keys`` (``[[field, 1 or -1], ...]``), ``name``
  and optional ``options`` (``partialFilterExpression``...);
* ``drop_index``: ``collection``, ``name`` (nothing happens if there is no such index);
* ``update_many``: ``collection``, ``filter``, ``update``;
* ``backfill_usernames``: give peers Pyrofork wrote the ``usernames`` array.

MongoDB cannot wrap index builds in a transaction, so every operation is idempotent
and the version is recorded after the last one: an interrupted step runs again whole.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from types import ModuleType
from typing import Any

from .. import _migrations
from ..errors import MigrationError, SchemaTooNewError, UnknownSchemaError
from .client import awaited
from .layout import SCHEMA_ID, Collections, backfill_usernames

__all__ = ["OPERATIONS", "pending_steps", "upgrade"]

log = logging.getLogger(__name__)

Operation = Callable[[ModuleType, Collections, Mapping[str, Any]], Awaitable[None]]


def pending_steps(schema: Mapping[str, Any] | None, where: str) -> list[_migrations.Migration]:
    """The steps that bring a database with this schema document to the latest version.

    :raises UnknownSchemaError: the document was not written by pyrogram-storage.
    :raises SchemaTooNewError: a newer pyrogram-storage wrote the database.
    """
    version = 0 if schema is None else schema.get("version")
    if type(version) is not int or version < 0:
        raise UnknownSchemaError(
            f"{where} has a schema document with version {version!r}; it was not written "
            "by pyrogram-storage and was left untouched"
        )
    latest = _migrations.latest("mongo")
    if version > latest:
        raise SchemaTooNewError(
            f"{where} has schema version {version}, but this pyrogram-storage only knows up "
            f"to {latest}; upgrade pyrogram-storage (the database was left untouched)"
        )
    return list(_migrations.numbered("mongo")[version:])


async def upgrade(
    pymongo: ModuleType, c: Collections, steps: list[_migrations.Migration], where: str
) -> None:
    """Apply ``steps`` in order, recording the version after each."""
    for step in steps:
        try:
            operations = json.loads(step.text)["steps"]
            kinds = [operation["op"] for operation in operations]
        except (ValueError, KeyError, TypeError) as exc:
            raise MigrationError(f"mongo migration {step.version} is malformed: {exc}") from exc
        unknown = [kind for kind in kinds if kind not in OPERATIONS]
        if unknown:
            raise MigrationError(f"mongo migration {step.version}: unknown op {unknown[0]!r}")
        for kind, operation in zip(kinds, operations, strict=True):
            try:
                await OPERATIONS[kind](pymongo, c, operation)
            except (KeyError, TypeError, ValueError) as exc:  # a field missing or mistyped
                raise MigrationError(
                    f"mongo migration {step.version}: a {kind} step is malformed: {exc!r}"
                ) from exc
        await awaited(
            c.session.update_one(
                {"_id": SCHEMA_ID},
                {"$set": {"version": step.version, "writer": "pyrogram-storage"}},
                upsert=True,
            )
        )
        log.info("%s: applied mongo migration %04d_%s", where, step.version, step.name)


async def _create_index(pymongo: ModuleType, c: Collections, operation: Mapping[str, Any]) -> None:
    keys = [(str(field), int(direction)) for field, direction in operation["keys"]]
    options = dict(operation.get("options", {}))
    await awaited(
        c.by_name(operation["collection"]).create_index(keys, name=operation["name"], **options)
    )


async def _drop_index(pymongo: ModuleType, c: Collections, operation: Mapping[str, Any]) -> None:
    collection = c.by_name(operation["collection"])
    if operation["name"] in await awaited(collection.index_information()):
        await awaited(collection.drop_index(operation["name"]))


async def _update_many(pymongo: ModuleType, c: Collections, operation: Mapping[str, Any]) -> None:
    collection = c.by_name(operation["collection"])
    await awaited(collection.update_many(operation["filter"], operation["update"]))


async def _backfill(pymongo: ModuleType, c: Collections, operation: Mapping[str, Any]) -> None:
    count = await backfill_usernames(pymongo, c)
    if count:
        log.info("gave the usernames array to %d peers Pyrofork wrote", count)


OPERATIONS: Mapping[str, Operation] = {
    "create_index": _create_index,
    "drop_index": _drop_index,
    "update_many": _update_many,
    "backfill_usernames": _backfill,
}
"""What a step's ``op`` can name."""
