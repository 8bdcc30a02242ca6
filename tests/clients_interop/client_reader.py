"""Open a session file with one client's OWN file storage and report every read as JSON.

Runs INSIDE that client's venv (see ``tests/clientenv.py``)::

    python client_reader.py <client> <spec.json> [<spec.json> ...]

The spec names the file (``workdir``, ``name``) and what to look up: ``peers`` (each
with ``id``, ``type``, ``usernames``, ``phone``), ``missing_usernames``, and an optional
``write`` block (a peer and update states the client then writes with its own tuple
shapes, and reads back). Nothing is judged here: each call is recorded as
``{"call", "arg", "ok", "value" | "error"}`` and the test compares the values with
what was written, one JSON line per spec (one interpreter reads several files). The
storage is always closed, even after an error (an unclosed aiosqlite storage keeps the
process alive).
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.metadata
import json
import os
import pathlib
import sys
from typing import Any

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "fixtures"))

from make_client_sessions import (
    DISTRIBUTION,
    HAS_SERVER_ADDRESS,
    PEER_SHAPE,
    STATE_DIALECT,
    USERNAMES_SHAPE,
)

SESSION_FIELDS = ("dc_id", "api_id", "test_mode", "auth_key", "date", "user_id", "is_bot")


def module_name(client: str) -> str:
    return "hydrogram" if client == "hydrogram" else "pyrogram"


def new_storage(client: str, name: str, workdir: pathlib.Path) -> Any:
    """Build the storage the client itself builds for a session file."""
    storage = importlib.import_module(f"{module_name(client)}.storage")
    if client in ("pyrogram", "pyrofork", "electrogram"):
        return storage.FileStorage(name, workdir)
    return storage.SQLiteStorage(name, workdir=workdir)


def describe(value: Any) -> Any:
    """Turn a client's return value into JSON: raw TL objects become a dict."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if hasattr(value, "QUALNAME") and hasattr(value, "__slots__"):
        out = {"_": type(value).__name__}
        for slot in value.__slots__:
            out[slot] = describe(getattr(value, slot))
        return out
    if isinstance(value, (list, tuple)):
        return [describe(item) for item in value]
    if hasattr(value, "pts") and hasattr(value, "seq"):  # Kurigram's UpdateState
        return [value.id, value.pts, value.qts, value.date, value.seq]
    return value


class Recorder:
    """Run calls, keeping each result or the exact error."""

    def __init__(self) -> None:
        self.reads: list[dict[str, Any]] = []
        self.phase = "read"

    async def call(self, label: str, fn: Any, *args: Any) -> Any:
        entry: dict[str, Any] = {
            "phase": self.phase,
            "call": label,
            "arg": describe(args[0]) if args else None,
        }
        try:
            value = await fn(*args)
        except Exception as exc:
            entry.update(ok=False, error=f"{type(exc).__name__}: {exc}")
            value = None
        else:
            entry.update(ok=True, value=describe(value))
        self.reads.append(entry)
        return value


async def read_everything(client: str, s: Any, spec: dict[str, Any], rec: Recorder) -> None:
    for field in SESSION_FIELDS + (
        ("server_address", "port") if client in HAS_SERVER_ADDRESS else ()
    ):
        await rec.call(field, getattr(s, field))
    await rec.call("export_session_string", s.export_session_string)
    for peer in spec["peers"]:
        await rec.call("get_peer_by_id", s.get_peer_by_id, peer["id"])
        for name in peer["usernames"]:
            await rec.call("get_peer_by_username", s.get_peer_by_username, name)
        if peer.get("phone"):
            await rec.call("get_peer_by_phone_number", s.get_peer_by_phone_number, peer["phone"])
    for name in spec.get("missing_usernames", []):
        await rec.call("get_peer_by_username", s.get_peer_by_username, name)
    await read_states(client, s, rec)


async def read_states(client: str, s: Any, rec: Recorder) -> None:
    dialect = STATE_DIALECT.get(client)
    if dialect == "objects":
        await rec.call("get_update_states", s.get_update_states)
    elif dialect == "tuples":
        await rec.call("update_state", s.update_state)


async def write_some(client: str, s: Any, write: dict[str, Any], rec: Recorder) -> None:
    """Keep using the file: write a peer, its usernames and states the client's way."""
    peer = write["peer"]
    names = peer["usernames"]
    shape = PEER_SHAPE[client]
    if shape == "4":
        row: tuple[Any, ...] = (peer["id"], peer["access_hash"], peer["type"], peer["phone"])
    elif shape == "5list":
        row = (peer["id"], peer["access_hash"], peer["type"], list(names), peer["phone"])
    else:
        row = (peer["id"], peer["access_hash"], peer["type"], names[0], peer["phone"])
    await rec.call("update_peers", s.update_peers, [row])
    usernames_shape = USERNAMES_SHAPE.get(client)
    if usernames_shape == "lists":
        await rec.call("update_usernames", s.update_usernames, [(peer["id"], list(names))])
    elif usernames_shape == "pairs":
        # Their Client's fetch_peers calls it on every batch of peers, mostly with [].
        await rec.call("update_usernames", s.update_usernames, [])
        pairs = [(peer["id"], name) for name in names] if len(names) > 1 else []
        await rec.call("update_usernames", s.update_usernames, pairs)
    dialect = STATE_DIALECT.get(client)
    states = [tuple(state) for state in write["states"]]
    if dialect == "objects":
        update_state = importlib.import_module("pyrogram.storage").UpdateState
        await rec.call("set_update_state", s.set_update_state, [update_state(*st) for st in states])
    elif dialect == "tuples":
        for st in states:
            await rec.call("update_state", s.update_state, st)
    await rec.call("save", s.save)


async def main(client: str, spec: dict[str, Any]) -> dict[str, Any]:
    rec = Recorder()
    s = new_storage(client, spec["name"], pathlib.Path(spec["workdir"]))
    await rec.call("open", s.open)
    opened = rec.reads[-1]["ok"]
    try:
        if opened:
            await read_everything(client, s, spec, rec)
            if spec.get("write"):
                rec.phase = "write"
                await write_some(client, s, spec["write"], rec)
                rec.phase = "after_write"
                written = {"peers": [spec["write"]["peer"]]}
                await read_everything(client, s, written, rec)
    finally:
        rec.phase = "close"
        await rec.call("close", s.close)
    return {
        "client": client,
        "version": importlib.metadata.version(DISTRIBUTION[client]),
        "reads": rec.reads,
    }


if __name__ == "__main__":
    name = sys.argv[1]
    for spec_path in map(pathlib.Path, sys.argv[2:]):
        result = asyncio.run(main(name, json.loads(spec_path.read_text())))
        print(json.dumps(result), flush=True)
    # A client storage whose open() failed may leave an aiosqlite thread running.
    os._exit(0)
