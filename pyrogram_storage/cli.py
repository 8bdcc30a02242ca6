"""The ``pyrogram-storage`` command: inspect, copy, import, export and migrate sessions.

Only the console entry point and ``python -m pyrogram_storage`` import this module.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import re
import signal
import sqlite3
import sys
import tempfile
import time
import warnings
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TextIO

from . import __version__, _migrations
from .base import Storage
from .errors import (
    CorruptSessionError,
    InvalidTypeError,
    InvalidValueError,
    MigrationError,
    SessionNotFoundError,
    SessionStringError,
    StorageError,
    TargetNotEmptyError,
)
from .registry import from_url, scheme_of
from .session_string import (
    decode_session_string,
    encode_session_string,
    looks_like_session_string,
    looks_like_telethon_string,
)
from .sqlite import FILE_EXTENSION, FileStorage, Layout, MemoryStorage
from .sqlite import schema as sqlite_schema
from .tools import encryption
from .tools.copy import copy_session, is_empty, opened
from .types import SessionData

PROG = "pyrogram-storage"
EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
PROGRESS_THRESHOLD = 5000
"""Peer counts from which ``copy`` shows its progress bar on a terminal by default."""

LOCATIONS_HELP = """\
locations:
  PATH.session            a session file (the .session suffix may be left out);
                          a Telethon .session file is recognised by its tables
  mongodb://HOST/?OPTS#NAME, mongodb+srv://...#NAME
                          session NAME in MongoDB (its database is named after it)
  redis://HOST:PORT/DB#NAME, rediss://...#NAME, unix:///PATH?db=0#NAME
                          session NAME in Redis or Valkey (one server or a cluster)
  postgresql://USER:PASS@HOST:PORT/DB?schema=S#NAME, postgres://...#NAME
                          session NAME in PostgreSQL (schema pyrogram_storage if none)
  asyncpg-storage+postgresql://USER:PASS@HOST/DB?schema=S#NAME
                          a pyrogram-asyncpg-storage session (source only)
  telethon:PATH|STRING    a Telethon .session file or StringSession string (source only)
  string:STRING           a Pyrogram-family session string (source only)

Encrypted sessions: the key is read from $PYROGRAM_STORAGE_KEY (or the variable
--key-env names): a passphrase, or hex:/base64: and 32 bytes for a raw key. It is
never taken from an argument; encrypt, decrypt and rekey ask for it on a terminal.

Sources are only read: a file that needs a schema migration is read from a
temporary copy (run `pyrogram-storage migrate FILE` to upgrade it in place).

exit status: 0 success, 1 the session could not be read or written, 2 bad usage.
"""


class UsageError(Exception):
    """The command line asks for something that cannot be done as written (exit 2)."""


# -- locations ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientFile:
    """A session file as a Pyrogram-family client wrote it: which clients, which schema."""

    family: str
    clients: str
    version: int | None


_FAMILY_CLIENTS = {
    "upstream_v6": ("upstream", "Kurigram, Irenogram or Pyrotgfork"),
    "upstream_v7": ("upstream", "Kurigram, Irenogram or Pyrotgfork"),
    "pyrofork": ("pyrofork", "Pyrofork or Electrogram"),
    "classic": ("classic", "Pyrogram 2.0.106 or Hydrogram"),
}


@dataclass
class Source:
    """An open storage to read from, with what the command line knows about it."""

    storage: Storage
    kind: str
    label: str
    path: Path | None = None
    schema_version: int | None = None
    client: ClientFile | None = None
    missing: tuple[str, ...] = ()
    notes: list[str] = field(default_factory=list)
    tempdir: tempfile.TemporaryDirectory[str] | None = None


def _file_path(text: str) -> Path:
    path = Path(text[len("file:") :] if text.startswith("file:") else text).expanduser()
    if path.suffix != FILE_EXTENSION and not os.path.exists(path):
        path = path.with_name(path.name + FILE_EXTENSION)
    return path


def _storage(text: str, **options: Any) -> Storage:
    """Build the storage a location names, through the registry; bad usage is exit 2."""
    try:
        return from_url(text, **options)
    except (InvalidTypeError, InvalidValueError) as exc:
        raise UsageError(f"{display(text)!r} cannot be used: {exc}") from None
    except StorageError:
        raise
    except (TypeError, ValueError) as exc:
        if "layout" in options and "layout" in str(exc):
            raise UsageError("--layout applies to session files only") from None
        raise UsageError(f"{display(text)!r} cannot be used: {exc}") from None


def display(location: str) -> str:
    """Return a location as it may be shown: no secrets, no passwords."""
    if location.startswith("telethon:"):
        body = location[len("telethon:") :]
        return body if _is_file(body) else "a Telethon session string"
    if location.startswith("string:"):
        return "a session string"
    if "://" in location:  # a server URL: never its user and password
        scheme, _, rest = location.partition("://")
        authority, slash, tail = rest.partition("/")
        return f"{scheme}://{authority.rpartition('@')[2]}{slash}{tail}"
    return _short(location)


def _short(text: str, limit: int = 80) -> str:
    # A session string typed where a path belongs must not be echoed back whole.
    return text if len(text) <= limit else text[:12] + "…"


def _holds_session_string(text: str) -> bool:
    """Return True if ``text``, or a folder or file name in it, looks like a session string."""
    return looks_like_session_string(text) or any(
        looks_like_session_string(part) for part in re.split(r"[/\\]", text)
    )


def _client_file(path: Path) -> ClientFile | None:
    """Tell which clients wrote a file we have not adopted, read-only; None if unknown."""
    try:
        db = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        family, clients = _FAMILY_CLIENTS[sqlite_schema._detect_family(db, tables).value]
        row = db.execute("SELECT MAX(number) FROM version").fetchone()
    except (sqlite3.Error, MigrationError, KeyError):
        return None
    finally:
        db.close()
    version = row[0] if row and isinstance(row[0], int) else None
    return ClientFile(family, clients, version)


def _is_file(text: str) -> bool:
    # os.path answers False where Path.is_file raises (names too long for a path).
    return os.path.isfile(os.path.expanduser(text))


def _sqlite_facts(path: Path) -> tuple[int, set[str]] | None:
    """Return (user_version, tables) of a SQLite file, read-only; None if it is not SQLite."""
    try:
        db = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError:
        return None
    finally:
        db.close()
    return int(version), tables


def _is_telethon_file(tables: set[str]) -> bool:
    return {"sessions", "entities"} <= tables and "peers" not in tables


def _backup(path: Path, destination: Path) -> None:
    """Copy a SQLite database consistently (WAL included) into a new 0600 file."""
    fd = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    src = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        dst = sqlite3.connect(destination)
        try:
            src.backup(dst)
        finally:
            dst.close()
    except sqlite3.DatabaseError as exc:
        destination.unlink(missing_ok=True)
        raise StorageError(f"cannot copy {path}: {exc}") from exc
    finally:
        src.close()


@asynccontextmanager
async def open_source(text: str, options: argparse.Namespace) -> AsyncIterator[Source]:
    """Open the SOURCE location ``text`` for reading; it is closed (never saved) afterwards."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        source = await _make_source(text, options)
    try:
        async with opened(source.storage):
            yield source
    finally:
        if isinstance(source.storage, MemoryStorage):
            await source.storage.delete()
        if source.tempdir is not None:
            source.tempdir.cleanup()


async def _make_source(text: str, options: argparse.Namespace) -> Source:
    try:
        return await _make_source_unchecked(text, options)
    except ValueError as exc:
        if isinstance(exc, StorageError):
            raise
        raise UsageError(str(exc).replace("user_id=", "--user-id ")) from exc


async def _make_source_unchecked(text: str, options: argparse.Namespace) -> Source:
    from .tools import telethon

    fills = _telethon_options(options)
    if text.startswith("telethon:"):
        body = text[len("telethon:") :]
        if _is_file(body):
            result = await telethon.read_telethon_file(Path(body).expanduser(), **fills)
            label, path = body, Path(body).expanduser()
        else:
            result = telethon.decode_telethon_string(body, **fills)
            label, path = "a Telethon session string", None
        return Source(await result.to_memory(), "telethon", label, path, missing=result.missing)
    if text.startswith("string:"):
        body = text[len("string:") :]
        if looks_like_telethon_string(body):
            raise UsageError(
                "this is a Telethon session string: write it as telethon:STRING, not string:STRING"
            )
        storage = MemoryStorage("string", session_string=body)
        return Source(storage, "string", "a session string")
    if scheme_of(text) != "file":
        server = _storage(text, read_only=True, **_source_keys(options))
        return Source(server, scheme_of(text), display(text))
    path = _file_path(text)
    if not os.path.isfile(path):
        hint = (
            "; to read a session string, write string:STRING or telethon:STRING"
            if len(text) > 100 and os.sep not in text
            else ""
        )
        raise SessionNotFoundError(f"no such session file: {_short(str(path))}{hint}")
    facts = _sqlite_facts(path)
    if facts is not None and not facts[1]:
        raise CorruptSessionError(f"{path} is empty, not a session file")
    if facts is not None and _is_telethon_file(facts[1]):
        result = await telethon.read_telethon_file(path, **fills)
        return Source(await result.to_memory(), "telethon", str(path), path, missing=result.missing)
    version = None if facts is None else facts[0]
    # Read-only: no lock file, nothing written; a file that needs migrating is read
    # through a private copy in memory, never changed.
    reader = _storage(str(path), read_only=True, **_source_keys(options))
    source = Source(reader, "file", str(path), path, version)
    if facts is not None and facts[1] and version is not None and version < _latest():
        client = _client_file(path) if version == 0 else None
        source.client = client
        if client is not None:
            source.notes.append(
                f"a session file of {client.clients}; read as it is, the file is not changed"
            )
        else:
            source.notes.append(
                f"schema version {version} is older than {_latest()}; read as it is (run "
                f"`{PROG} migrate {path}` to upgrade the file)"
            )
    return source


def make_target(text: str, options: argparse.Namespace) -> Storage:
    """Build the TARGET location ``text`` (not opened)."""
    if text.startswith(("telethon:", "string:")):
        raise UsageError(
            f"{text.split(':')[0]}: locations can only be read; use `{PROG} export-string` "
            "to get a session string"
        )
    if _holds_session_string(text):
        raise UsageError(
            "TARGET looks like a session string, not a place to store one (it is not "
            f"repeated here); to store a session string, run `{PROG} import-string - TARGET` "
            "and paste it on standard input"
        )
    layout = getattr(options, "layout", None)
    if scheme_of(text) == "file" and (not Path(text).name or os.path.isdir(_file_path(text))):
        raise UsageError(f"{_short(text)!r} is not a session file name (NAME{FILE_EXTENSION})")
    keys = _target_keys(options)
    return _storage(text, **keys, **({} if layout is None else {"layout": layout}))


# -- encryption keys (never from an argument: see tools.encryption.read_key) ---------------


def _source_keys(options: argparse.Namespace) -> dict[str, Any]:
    """The keys that open a SOURCE: whichever of the key variables are set."""
    keys: dict[str, Any] = {}
    variable = getattr(options, "key_env", encryption.DEFAULT_KEY_VARIABLE)
    if os.environ.get(variable) is not None:
        keys["encryption_key"] = encryption.read_key(variable, "the encryption key")
    fernet = os.environ.get(getattr(options, "fernet_key_env", "") or "")
    if fernet is not None:
        keys["fernet_key"] = fernet
    return keys


def _target_keys(options: argparse.Namespace) -> dict[str, Any]:
    """With --encrypt, the key that seals a TARGET (its variable, else a prompt)."""
    if not getattr(options, "encrypt", False):
        return {}
    variable = options.target_key_env or options.key_env
    return {"encryption_key": encryption.read_key(variable, "the key to encrypt TARGET with")}


def _latest() -> int:
    return _migrations.latest("sqlite")


def _same_file(source: Source, target: Storage) -> bool:
    """Whether TARGET is SOURCE itself (the same file, or the same server location)."""
    if source.path is not None and isinstance(target, FileStorage):
        return target.path.exists() and source.path.resolve() == target.path.resolve()
    return source.storage.location is not None and source.storage.location == target.location


# -- options that complete sessions ---------------------------------------------------------


def _telethon_options(options: argparse.Namespace) -> dict[str, Any]:
    return {
        "user_id": getattr(options, "user_id", None),
        "is_bot": getattr(options, "is_bot", None),
        "api_id": getattr(options, "api_id", None),
    }


def _fills(session: SessionData, options: argparse.Namespace) -> dict[str, Any]:
    """Return the --user-id/--bot/--api-id values ``session`` lacks.

    :raises UsageError: an option contradicts what the session records.
    """
    changes = {}
    for name, value in _telethon_options(options).items():
        if value is None:
            continue
        current = getattr(session, name)
        if current is None:
            changes[name] = value
        elif current != value:
            flag = {"user_id": "--user-id", "is_bot": "--bot/--user", "api_id": "--api-id"}[name]
            raise UsageError(f"{flag} says {value!r} but the session records {current!r}")
    return changes


def _warn_missing(missing: Sequence[str], err: TextIO) -> None:
    if not missing:
        return
    flags = {"user_id": "--user-id ID", "is_bot": "--bot or --user", "api_id": "--api-id ID"}
    hints = [flags[name] for name in missing if name in flags]
    message = f"{PROG}: warning: the session does not record {', '.join(missing)}"
    if hints:
        message += f"; give {', '.join(hints)} to complete it"
    print(message, file=err)


# -- commands -------------------------------------------------------------------------------


def auth_key_id(auth_key: bytes) -> str:
    """Return Telegram's auth key id (the low 64 bits of its SHA-1) in hex: safe to show."""
    return hashlib.sha1(auth_key).digest()[-8:][::-1].hex()


async def cmd_inspect(options: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    async with open_source(options.source, options) as source:
        storage = source.storage
        session = await storage.get_session()
        counts = await storage.count_peers()
        states = await storage.get_update_states()
        if await is_empty(storage):
            source.notes.append("the session is empty: no auth key, peers or update states")
    missing = source.missing or session.missing
    size = None
    if source.path is not None:
        size = sum(
            os.path.getsize(f"{source.path}{suffix}")
            for suffix in ("", "-wal")
            if os.path.exists(f"{source.path}{suffix}")
        )
    address = session.address()
    report: dict[str, Any] = {
        "source": source.label,
        "kind": source.kind,
        "file_size": size,
        "schema_version": source.schema_version,
        "latest_schema_version": _latest() if source.kind == "file" else None,
        "client_file": None
        if source.client is None
        else {
            "family": source.client.family,
            "clients": source.client.clients,
            "version": source.client.version,
        },
        "dc_id": session.dc_id,
        "server_address": address[0] if address else None,
        "port": address[1] if address else None,
        "test_mode": session.test_mode,
        "user_id": session.user_id,
        "is_bot": session.is_bot,
        "api_id": session.api_id,
        "auth_key_id": auth_key_id(session.auth_key) if session.auth_key else None,
        "date": session.date,
        "peers": sum(counts.values()),
        "peers_by_type": {str(kind): counts[kind] for kind in sorted(counts, key=str)},
        "update_states": len(states),
        "missing": list(missing),
        "notes": source.notes,
    }
    if options.json:
        json.dump(report, out, indent=2)
        out.write("\n")
        return EXIT_OK

    def yes_no(value: bool | None) -> str:
        return "unknown" if value is None else ("yes" if value else "no")

    lines = [("source", f"{source.label} ({source.kind})")]
    if size is not None:
        lines.append(("file size", f"{size} bytes"))
    if source.client is not None:
        version = (
            "" if source.client.version is None else f" (their schema {source.client.version})"
        )
        lines.append(("written by", f"{source.client.clients}{version}"))
    elif source.schema_version is not None:
        lines.append(("schema version", f"{source.schema_version} (latest {_latest()})"))
    where = f" ({address[0]}:{address[1]})" if address else ""
    lines += [
        ("data center", f"{session.dc_id}{where}"),
        ("test mode", yes_no(session.test_mode)),
        ("user id", "unknown" if session.user_id is None else str(session.user_id)),
        ("bot", yes_no(session.is_bot)),
        ("api id", "unknown" if session.api_id is None else str(session.api_id)),
        ("auth key", f"set (id {report['auth_key_id']})" if session.auth_key else "not set"),
        ("saved", _when(session.date)),
    ]
    by_type = ", ".join(f"{kind} {count}" for kind, count in report["peers_by_type"].items())
    lines.append(("peers", f"{report['peers']}" + (f" ({by_type})" if by_type else "")))
    lines.append(("update states", str(len(states))))
    if missing:
        lines.append(("missing", ", ".join(missing)))
    width = max(len(label) for label, _ in lines) + 1
    for label, value in lines:
        print(f"{label + ':':<{width}} {value}", file=out)
    for note in report["notes"]:
        print(f"note: {note}", file=err)
    return EXIT_OK


def _when(stamp: int) -> str:
    if not stamp:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(stamp))


async def cmd_export_string(options: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if not options.show_secret and options.output is None:
        raise UsageError(
            "a session string gives full access to the account, so it is not printed by "
            "default: pass --show-secret to print it, or --output FILE to write it to a "
            "file only you can read"
        )
    output = None if options.output is None else Path(options.output).expanduser()
    if output is not None and output.exists() and not options.force:
        raise UsageError(f"{output} exists; pass --force to replace it")
    async with open_source(options.source, options) as source:
        session = await source.storage.get_session()
        changes = _fills(session, options)
    if options.format == "telethon":
        from .tools.telethon import encode_telethon_string

        text = encode_telethon_string(session)
    else:
        text = encode_session_string(session.replace(**changes))
    if output is None:
        print(text, file=out)
    else:
        _write_private(output, text + "\n")
        print(f"wrote the session string to {output} (mode 0600)", file=err)
    return EXIT_OK


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a 0600 temporary file, replacing it atomically."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(text)
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


async def cmd_import_string(options: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    text = sys.stdin.read() if options.string == "-" else options.string
    text = text.strip()
    try:
        decode_session_string(text)
        location = "string:" + text
    except SessionStringError as exc:
        from .tools.telethon import decode_telethon_string

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                decode_telethon_string(text)
        except SessionStringError:
            raise exc from None
        location = "telethon:" + text
    return await _copy(location, options.target, options, out, err, verb="imported")


async def cmd_copy(options: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    return await _copy(options.source, options.target, options, out, err, verb="copied")


async def _copy(
    source_text: str,
    target_text: str,
    options: argparse.Namespace,
    out: TextIO,
    err: TextIO,
    *,
    verb: str,
) -> int:
    target = make_target(target_text, options)
    async with open_source(source_text, options) as source:
        if _same_file(source, target):
            raise UsageError("SOURCE and TARGET are the same file")
        session = await source.storage.get_session()
        changes = _fills(session, options)
        if await is_empty(source.storage):
            raise StorageError(
                f"{source.label} holds no session (no auth key, peers or update states); "
                "nothing to copy"
            )
        total = sum((await source.storage.count_peers()).values())
        show = options.progress
        if show is None:
            show = err.isatty() and total >= PROGRESS_THRESHOLD
        bar = ProgressBar(err) if show else None
        async with opened(target):
            try:
                result = await copy_session(
                    source.storage,
                    target,
                    overwrite=options.overwrite,
                    batch_size=options.batch_size,
                    progress=bar,
                )
            except TargetNotEmptyError:
                raise TargetNotEmptyError(
                    f"{display(target_text)} already holds a session; pass --overwrite to "
                    "replace it"
                ) from None
            if changes:
                await target.update_session(**changes)
            final = await target.get_session()
        if bar is not None:
            bar.finish()
    missing = final.missing
    print(
        f"{verb} {source.label} to {display(target_text)}: "
        f"{result.peers} peers, {result.update_states} update states",
        file=out,
    )
    _warn_missing(missing, err)
    return EXIT_OK


class ProgressBar:
    """A one-line progress bar on a text stream, redrawn at most every tenth of a second."""

    def __init__(self, stream: TextIO, width: int = 30) -> None:
        self.stream = stream
        self.width = width
        self._last = 0.0
        self._drawn = False

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self._last < 0.1 and self._drawn:
            return
        self._last = now
        filled = self.width if total == 0 else self.width * done // total
        percent = 100 if total == 0 else 100 * done // total
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\rpeers [{bar}] {done}/{total} {percent:3d}%")
        self.stream.flush()
        self._drawn = True

    def finish(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()


async def cmd_migrate(options: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    path = _file_path(options.file)
    if not os.path.isfile(path):
        raise SessionNotFoundError(f"no such session file: {_short(str(path))}")
    facts = _sqlite_facts(path)
    if facts is not None and not facts[1]:
        raise CorruptSessionError(f"{path} is empty, not a session file")
    if facts is not None and _is_telethon_file(facts[1]):
        raise UsageError(
            f"{path} is a Telethon session; convert it with "
            f"`{PROG} copy telethon:{path} NEW.session` instead"
        )
    before = None if facts is None else facts[0]
    if before is not None and before == _latest() and facts is not None and facts[1]:
        print(f"{path} is already at schema version {before}; nothing to do", file=out)
        return EXIT_OK
    backup = None
    if facts is not None and before is not None and before < _latest():
        backup = _backup_name(path)
        _backup(path, backup)
    storage = _storage(str(path))
    await storage.open()
    await storage.close()
    after = _sqlite_facts(path)
    version = None if after is None else after[0]
    if backup is not None:
        print(f"backed up {path} to {backup}", file=err)
    print(f"migrated {path} from schema version {before} to {version}", file=out)
    return EXIT_OK


async def cmd_encrypt(options: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    fernet = _source_keys(options).get("fernet_key")
    storage = _existing(options.location, **({} if fernet is None else {"fernet_key": fernet}))
    key = encryption.read_key(options.key_env, "the encryption key", confirm=True)
    done = await encryption.encrypt(storage, key)
    return _done(done, f"encrypted the auth key of {display(options.location)}", out)


async def cmd_decrypt(options: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    keys = _source_keys(options)
    if not keys:
        keys["encryption_key"] = encryption.read_key(options.key_env, "the encryption key")
    done = await encryption.decrypt(_existing(options.location, **keys))
    return _done(done, f"stored the auth key of {display(options.location)} in clear", out)


async def cmd_rekey(options: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    keys = _source_keys(options)
    if not keys:
        keys["encryption_key"] = encryption.read_key(options.key_env, "the current key")
    storage = _existing(options.location, **keys)
    new = encryption.read_key(options.new_key_env, "the new key", confirm=True)
    done = await encryption.rekey(storage, new)
    return _done(done, f"changed the encryption key of {display(options.location)}", out)


def _existing(text: str, **keys: Any) -> Storage:
    """The storage of a session to rewrite in place; a session file must exist."""
    if scheme_of(text) == "file" and not os.path.isfile(_file_path(text)):
        raise SessionNotFoundError(f"no such session file: {_short(str(_file_path(text)))}")
    return _storage(text, **keys)


def _done(outcome: encryption.Outcome, message: str, out: TextIO) -> int:
    if outcome is encryption.Outcome.NO_AUTH_KEY:
        message += " (it holds no auth key yet; the one it gets will be stored so)"
    print(message, file=out)
    return EXIT_OK


def _backup_name(path: Path) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    candidate = path.with_name(f"{path.name}.bak-{stamp}")
    counter = 1
    while candidate.exists():
        counter += 1
        candidate = path.with_name(f"{path.name}.bak-{stamp}-{counter}")
    return candidate


# -- argument parsing -----------------------------------------------------------------------


def _add_fill_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "fields the source may not record (Telethon sessions, old session strings)"
    )
    group.add_argument("--user-id", type=int, metavar="ID", help="the account's user id")
    group.add_argument("--api-id", type=int, metavar="ID", help="the api id of the session")
    kind = group.add_mutually_exclusive_group()
    kind.add_argument(
        "--bot", dest="is_bot", action="store_const", const=True, help="the account is a bot"
    )
    kind.add_argument(
        "--user", dest="is_bot", action="store_const", const=False, help="the account is a user"
    )


def _add_target_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--overwrite", action="store_true", help="replace a TARGET that already holds a session"
    )
    parser.add_argument(
        "--layout",
        choices=[layout.value for layout in Layout],
        default=None,
        help="usernames table layout of a new TARGET file (default: upstream)",
    )
    parser.add_argument(
        "--batch-size",
        type=_positive,
        default=1000,
        metavar="N",
        help="peers per read and write (default: 1000)",
    )
    show = parser.add_mutually_exclusive_group()
    show.add_argument(
        "--progress",
        dest="progress",
        action="store_const",
        const=True,
        default=None,
        help="always show the progress bar on stderr",
    )
    show.add_argument(
        "--no-progress",
        dest="progress",
        action="store_const",
        const=False,
        help="never show it (default: on a terminal, for large peer tables)",
    )


def _add_key_options(parser: argparse.ArgumentParser, *, target: bool = False) -> None:
    group = parser.add_argument_group("encryption keys (read from the environment, never here)")
    group.add_argument(
        "--key-env",
        metavar="NAME",
        default=encryption.DEFAULT_KEY_VARIABLE,
        help="the variable holding the session's encryption key "
        f"(default: {encryption.DEFAULT_KEY_VARIABLE})",
    )
    group.add_argument(
        "--fernet-key-env",
        metavar="NAME",
        default=encryption.DEFAULT_FERNET_KEY_VARIABLE,
        help="the variable holding the Fernet key of a file written by Kurigram's "
        f"EncryptedFernetStorage (default: {encryption.DEFAULT_FERNET_KEY_VARIABLE})",
    )
    if target:
        group.add_argument("--encrypt", action="store_true", help="encrypt the auth key in TARGET")
        group.add_argument(
            "--target-key-env",
            metavar="NAME",
            help="the variable holding TARGET's key (default: the --key-env one; "
            "asked for on a terminal if unset)",
        )


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of the ``pyrogram-storage`` command."""
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Inspect, copy, import, export and migrate Pyrogram-family sessions.",
        epilog=LOCATIONS_HELP,
        formatter_class=formatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    inspect = commands.add_parser(
        "inspect",
        help="show what a session holds (never its auth key)",
        description="Show a session's data center, account, api id, peer counts, update "
        "states and schema version. The auth key is never shown, only its id.",
        epilog=LOCATIONS_HELP,
        formatter_class=formatter,
    )
    inspect.add_argument("source", metavar="SOURCE")
    inspect.add_argument("--json", action="store_true", help="print one JSON object")
    _add_key_options(inspect)
    inspect.set_defaults(parser=inspect, run=cmd_inspect)

    export = commands.add_parser(
        "export-string",
        help="export a session string (only when asked explicitly)",
        description="Export SOURCE as a session string. It gives full access to the "
        "account: it is printed only with --show-secret, or written to a 0600 file.",
        epilog=LOCATIONS_HELP,
        formatter_class=formatter,
    )
    export.add_argument("source", metavar="SOURCE")
    export.add_argument(
        "--show-secret", action="store_true", help="print the session string on stdout"
    )
    export.add_argument(
        "--output", "-o", metavar="FILE", help="write the session string to FILE, mode 0600"
    )
    export.add_argument("--force", action="store_true", help="replace an existing --output FILE")
    export.add_argument(
        "--format",
        choices=["pyrogram", "telethon"],
        default="pyrogram",
        help="pyrogram (every Pyrogram-family client) or telethon",
    )
    _add_fill_options(export)
    _add_key_options(export)
    export.set_defaults(parser=export, run=cmd_export_string)

    import_ = commands.add_parser(
        "import-string",
        help="store a session string (Pyrogram or Telethon) in TARGET",
        description="Store a Pyrogram-family or Telethon session string in TARGET. Give - "
        "to read it from standard input (keeps it out of your shell history).",
        epilog=LOCATIONS_HELP,
        formatter_class=formatter,
    )
    import_.add_argument("string", metavar="STRING|-")
    import_.add_argument("target", metavar="TARGET")
    _add_target_options(import_)
    _add_fill_options(import_)
    _add_key_options(import_, target=True)
    import_.set_defaults(parser=import_, run=cmd_import_string)

    copy = commands.add_parser(
        "copy",
        help="copy a whole session (auth, peers, update states) to TARGET",
        description="Copy SOURCE to TARGET: authorization, every peer with its usernames, "
        "and the update states. A TARGET holding a session is refused unless --overwrite.",
        epilog=LOCATIONS_HELP,
        formatter_class=formatter,
    )
    copy.add_argument("source", metavar="SOURCE")
    copy.add_argument("target", metavar="TARGET")
    _add_target_options(copy)
    _add_fill_options(copy)
    _add_key_options(copy, target=True)
    copy.set_defaults(parser=copy, run=cmd_copy)

    migrate = commands.add_parser(
        "migrate",
        help="upgrade a session file's schema in place, after a backup",
        description="Apply pending schema migrations to FILE (any Pyrogram-family client's "
        "session file). A copy is kept first as FILE.bak-<UTC time>, mode 0600.",
        formatter_class=formatter,
    )
    migrate.add_argument("file", metavar="FILE")
    migrate.set_defaults(parser=migrate, run=cmd_migrate)

    for name, run, summary, description in (
        (
            "encrypt",
            cmd_encrypt,
            "encrypt the auth key of a session stored in clear (or as a Fernet token)",
            "Seal LOCATION's auth key with the key in $PYROGRAM_STORAGE_KEY (or asked "
            "for). A file of Kurigram's EncryptedFernetStorage is moved to our envelope "
            "with its key in $PYROGRAM_STORAGE_FERNET_KEY.",
        ),
        (
            "decrypt",
            cmd_decrypt,
            "store the auth key of an encrypted session in clear again",
            "Open LOCATION's auth key with the key in $PYROGRAM_STORAGE_KEY (or asked "
            "for) and store it in clear.",
        ),
        (
            "rekey",
            cmd_rekey,
            "change the encryption key of a session",
            "Open LOCATION's auth key with the key in $PYROGRAM_STORAGE_KEY and seal it "
            "with the one in $PYROGRAM_STORAGE_NEW_KEY (each asked for if unset).",
        ),
    ):
        sub = commands.add_parser(
            name,
            help=summary,
            description=description + " One atomic write: a crash leaves the old key or "
            "the new one. A session file held by another process is refused.",
            epilog=LOCATIONS_HELP,
            formatter_class=formatter,
            allow_abbrev=False,  # --key must not pass for --key-env: no key on the line
        )
        sub.add_argument("location", metavar="LOCATION")
        _add_key_options(sub)
        if name == "rekey":
            sub.add_argument(
                "--new-key-env",
                metavar="NAME",
                default=encryption.DEFAULT_NEW_KEY_VARIABLE,
                help=f"the variable holding the new key (default: "
                f"{encryption.DEFAULT_NEW_KEY_VARIABLE})",
            )
        sub.set_defaults(parser=sub, run=run)

    from .kv.cli import add_kv_commands

    add_kv_commands(commands, formatter)
    return parser


EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE
"""What a shell reports for a program whose reader went away (``| head``): 141."""

_PYTHON_WORDS = (
    (re.compile(r"pass overwrite=True \(--overwrite on the command line\)"), "pass --overwrite"),
    (re.compile(r", or open every storage of this session with lock='shared'"), ""),
    (re.compile(r"\buser_id="), "--user-id "),
    (re.compile(r"\bapi_id="), "--api-id "),
    (
        re.compile(r"Pass encryption_key= \(on the command line, set PYROGRAM_STORAGE_KEY\)"),
        "Set $PYROGRAM_STORAGE_KEY (or the variable --key-env names)",
    ),
    (re.compile(r"Pass encrypt_existing=True \(or run (`[^`]+`)\)"), r"Run \1"),
    (re.compile(r"no fernet_key was given"), "$PYROGRAM_STORAGE_FERNET_KEY is not set"),
)
"""The library's advice in Python terms, and what it means on the command line."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    try:
        try:
            status = _run(argv)
        finally:
            sys.stdout.flush()  # now (--help's exit too), where a closed pipe can be handled
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, with the status shells report
        # for the other programs of the pipeline.
        _silence_output()
        return EXIT_BROKEN_PIPE
    return status


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    options = parser.parse_args(argv)
    try:
        status: int = asyncio.run(options.run(options, sys.stdout, sys.stderr))
        return status
    except BrokenPipeError:
        raise
    except UsageError as exc:
        _fail(parser, options, _cli_words(str(exc)))
    except StorageError as exc:
        _error(_cli_words(str(exc)))
        return EXIT_ERROR
    except OSError as exc:
        _error(_os_error(exc))
        return EXIT_ERROR
    except KeyboardInterrupt:
        _error("interrupted", prefix="")
        return 130


def _error(message: str, prefix: str = "error: ") -> None:
    print(f"{PROG}: {prefix}{message}", file=sys.stderr)


def _cli_words(message: str) -> str:
    for pattern, words in _PYTHON_WORDS:
        message = pattern.sub(words, message)
    return message


def _os_error(exc: OSError) -> str:
    """Describe an OSError without repeating a long path whole (it may be a pasted secret)."""
    if exc.strerror is None:
        return str(exc)
    names = [
        _short(os.fsdecode(name) if isinstance(name, (str, bytes, os.PathLike)) else str(name))
        for name in (exc.filename, exc.filename2)
        if name is not None
    ]
    return exc.strerror + (": " + " -> ".join(repr(name) for name in names) if names else "")


def _silence_output() -> None:
    """Point stdout and stderr at /dev/null so exiting does not write to a closed pipe again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for stream in (sys.stdout, sys.stderr):
            # Not a real file (a test's capture): nothing will be flushed to a pipe.
            with contextlib.suppress(OSError, ValueError, AttributeError):
                os.dup2(devnull, stream.fileno())
    finally:
        os.close(devnull)


def _fail(parser: argparse.ArgumentParser, options: argparse.Namespace, message: str) -> NoReturn:
    command_parser: argparse.ArgumentParser = getattr(options, "parser", parser)
    command_parser.error(message)
