"""The interpreter of ``migrations/redis/NNNN_name.json``: layout versions and their steps.

A step is ``{"description": ..., "keys": [suffix, ...], "lua": body}``: the body of a Lua
function, run in one ``EVAL`` together with the check that the session is still at the
version before the step and the write of the version after it, so each step is atomic
and a session migrated meanwhile by another process is left alone.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from .. import _migrations
from ..errors import MigrationError, SchemaTooNewError, UnknownSchemaError
from .layout import KEY_NAMES, WRITER, Keys

__all__ = ["READABLE_FROM", "check_version", "latest", "upgrade"]

log = logging.getLogger(__name__)

_WRAPPER = """
local K = {{{names}}}
local function step()
{body}
end
if (redis.call('HGET', KEYS[1], 'version') or '0') ~= ARGV[1] then return 0 end
step()
redis.call('HSET', KEYS[1], 'version', ARGV[2], 'writer', ARGV[3])
return 1
"""


READABLE_FROM = 1
"""The oldest layout version this library reads as it is stored, without migrating it
(version 2 changed what scripts write beside the data, not the data): a read-only open
of an older session than :func:`latest` but not older than this reads it untouched."""


def latest() -> int:
    """The layout version this library writes."""
    return _migrations.latest("redis")


def check_version(version: Any, writer: Any, where: str) -> int:
    """Return the stored version (0: none); refuse a foreign or newer one.

    :raises UnknownSchemaError: the schema hash was not written by pyrogram-storage.
    :raises SchemaTooNewError: a newer pyrogram-storage wrote the session.
    """
    if version is None and writer is None:
        return 0
    text = version.decode("ascii", "replace") if isinstance(version, bytes) else str(version)
    name = writer.decode("utf-8", "replace") if isinstance(writer, bytes) else writer
    if name != WRITER or not text.isdigit():
        raise UnknownSchemaError(
            f"{where} has a schema hash that pyrogram-storage did not write; it was left untouched"
        )
    number = int(text)
    if number > latest():
        raise SchemaTooNewError(
            f"{where} has layout version {number}, but this pyrogram-storage only knows up "
            f"to {latest()}; upgrade pyrogram-storage (the session was left untouched)"
        )
    return number


def _script(step: _migrations.Migration) -> tuple[str, list[str]]:
    """The Lua source of one step and the suffixes of the keys it takes after ``schema``."""
    try:
        data = json.loads(step.text)
        body, names = data["lua"], list(data["keys"])
        if not isinstance(body, str) or not all(isinstance(name, str) for name in names):
            raise TypeError("lua must be a string, keys a list of strings")
    except (ValueError, KeyError, TypeError) as exc:
        raise MigrationError(f"redis migration {step.version} is malformed: {exc}") from exc
    unknown = [name for name in names if name not in KEY_NAMES or name == "schema"]
    if unknown:
        raise MigrationError(f"redis migration {step.version} names an unknown key: {unknown[0]!r}")
    table = ", ".join(f"{name} = KEYS[{index}]" for index, name in enumerate(names, start=2))
    return _WRAPPER.format(names=table, body=body), names


async def upgrade(client: Any, keys: Keys, version: int, where: str) -> None:
    """Apply every step after ``version``, each in one script that records its version."""
    for step in _migrations.numbered("redis")[version:]:
        source, names = _script(step)
        await client.eval(
            source,
            1 + len(names),
            keys.schema,
            *(keys.by_name(name) for name in names),
            step.version - 1,
            step.version,
            WRITER,
        )
        log.info("%s: applied redis migration %04d_%s", where, step.version, step.name)
