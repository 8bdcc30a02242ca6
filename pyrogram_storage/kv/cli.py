"""``pyrogram-storage kv copy`` and ``kv inspect``: bot state from the command line.

Only the command line imports this module (``pyrogram_storage.cli`` registers it).
Locations go through :func:`pyrogram_storage.kv.from_url`; a SOURCE is only opened if
it exists (``create=False`` for the file stores), so a misspelled path creates nothing.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any, TextIO

from ..errors import InvalidTypeError, InvalidValueError
from ..registry import display, kv_from_url, store_class
from .base import KVStore
from .copy import copy

__all__ = ["LOCATIONS_HELP", "add_kv_commands"]

#: The ``kv`` commands' help on locations (``pyrogram-storage kv --help``).
LOCATIONS_HELP = """\
locations (each may end in #NAMESPACE, default "default"):
  PATH, sqlite:PATH               a SQLite file (table kv); a bare PATH.json is a JSON file
  json:PATH                       a JSON file
  mongodb://HOST/[DATABASE][?OPTS][#[COLLECTION/]NAMESPACE]
                                  MongoDB (database pyrogram_storage, collection kv
                                  unless given)
  redis://HOST[:PORT][/DB], rediss://..., unix://PATH
                                  Redis or Valkey, single server or cluster
  postgresql://USER:PASS@HOST[:PORT]/DB[?schema=S&table=T], postgres://...
                                  PostgreSQL (schema pyrogram_storage, table kv
                                  unless given)
  memory:                         an empty in-memory store (for trying things)

A SOURCE file that does not exist is an error: nothing is created.

exit status: 0 success, 1 the store could not be read or written, 2 bad usage.
"""


def add_kv_commands(commands: Any) -> None:
    """Add the ``kv`` command (with ``copy`` and ``inspect``) to the main parser's subparsers."""
    formatter = argparse.RawDescriptionHelpFormatter
    parser = commands.add_parser(
        "kv",
        help="copy or inspect bot state (pyrogram_storage.kv stores)",
        description="Copy or inspect the key-value stores that keep bot state.",
        epilog=LOCATIONS_HELP,
        formatter_class=formatter,
    )
    sub = parser.add_subparsers(dest="kv_command", metavar="KV_COMMAND", required=True)
    parser.set_defaults(parser=parser)

    copy_parser = sub.add_parser(
        "copy",
        help="copy every key of SOURCE's namespace to TARGET, with its remaining TTL",
        description="Copy every live key of SOURCE's namespace to TARGET's, keeping each "
        "key's remaining TTL. A TARGET that holds keys is refused unless --overwrite.",
        epilog=LOCATIONS_HELP,
        formatter_class=formatter,
    )
    copy_parser.add_argument("source", metavar="SOURCE")
    copy_parser.add_argument("target", metavar="TARGET")
    copy_parser.add_argument(
        "--overwrite",
        action="store_true",
        help="copy into a TARGET that holds keys (same keys replaced, others kept)",
    )
    copy_parser.set_defaults(parser=copy_parser, run=cmd_kv_copy)

    inspect = sub.add_parser(
        "inspect",
        help="count the keys of a namespace and show a sample of their names "
        "(values with --values)",
        description="Count the live keys of LOCATION's namespace (with and without a TTL) "
        "and show a sample of their names. Values are shown only with --values.",
        epilog=LOCATIONS_HELP,
        formatter_class=formatter,
    )
    inspect.add_argument("location", metavar="LOCATION")
    inspect.add_argument("--pattern", default="*", help="only keys matching this glob")
    inspect.add_argument(
        "--sample", type=int, default=10, metavar="N", help="key names to show (default 10)"
    )
    inspect.add_argument("--values", action="store_true", help="show the sampled keys' values")
    inspect.add_argument("--json", action="store_true", help="print one JSON object")
    inspect.set_defaults(parser=inspect, run=cmd_kv_inspect)


def _store(location: str, parser: argparse.ArgumentParser, *, source: bool) -> KVStore[Any]:
    try:
        options = {"create": False} if source and store_class(location).creates_files else {}
        return kv_from_url(location, **options)
    except (InvalidTypeError, InvalidValueError) as exc:
        parser.error(str(exc))


async def cmd_kv_copy(options: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    parser: argparse.ArgumentParser = options.parser
    if options.source == options.target:
        parser.error("SOURCE and TARGET are the same location")
    source = _store(options.source, parser, source=True)
    target = _store(options.target, parser, source=False)
    show = err.isatty()

    def progress(done: int, total: int) -> None:
        if show:
            err.write(f"\rkeys {done}/{total}")
            err.flush()

    started = time.monotonic()
    copied = await copy(source, target, overwrite=options.overwrite, progress=progress)
    if show:
        err.write("\n")
    print(
        f"copied {copied} keys from {display(options.source)} to {display(options.target)} "
        f"in {time.monotonic() - started:.1f}s",
        file=out,
    )
    return 0


async def cmd_kv_inspect(options: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    parser: argparse.ArgumentParser = options.parser
    if options.sample < 0:
        parser.error("--sample must be 0 or more")
    store = _store(options.location, parser, source=True)
    total = with_ttl = 0
    sample: list[dict[str, Any]] = []
    now = time.time()
    async with store:
        # Values are read (Redis sends TTLs with them) but shown only with --values.
        async for record in store.records(options.pattern):
            total += 1
            with_ttl += record.expires is not None
            if len(sample) < options.sample:
                entry: dict[str, Any] = {"key": record.key}
                if record.expires is not None:
                    entry["ttl"] = round(max(0.0, record.expires - now), 3)
                if options.values:
                    entry["value"] = repr(record.value)
                sample.append(entry)
    report = {
        "location": display(options.location),
        "store": repr(store),
        "namespace": store.namespace,
        "pattern": options.pattern,
        "keys": total,
        "with_ttl": with_ttl,
        "without_ttl": total - with_ttl,
        "sample": sample,
    }
    if options.json:
        json.dump(report, out, indent=2, ensure_ascii=False)
        out.write("\n")
        return 0
    matching = "" if options.pattern == "*" else f" matching {options.pattern!r}"
    print(f"store:     {report['store']}", file=out)
    print(f"namespace: {store.namespace}", file=out)
    print(
        f"keys:      {total} ({with_ttl} with a TTL, {total - with_ttl} without){matching}",
        file=out,
    )
    if sample:
        print(f"sample ({len(sample)}):", file=out)
        for entry in sample:
            line = f"  {entry['key']}"
            if "ttl" in entry:
                line += f"  (expires in {entry['ttl']}s)"
            if "value" in entry:
                line += f" = {entry['value']}"
            print(line, file=out)
    return 0
