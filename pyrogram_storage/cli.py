"""The ``pyrogram-storage`` command: inspect, copy, import, export and migrate sessions.

argparse, :func:`~pyrogram_storage.from_url` and printing, on public names only: every
location goes through the registry (``string:`` and ``telethon:`` are read-only sources
there), what a file is comes from :func:`~pyrogram_storage.tools.identify`. Only the
console entry point and ``python -m pyrogram_storage`` import this module.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import importlib
import json
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TextIO

from . import __version__
from .base import Storage
from .errors import (
    CorruptDataError,
    InvalidTypeError,
    InvalidValueError,
    NotFoundError,
    SessionStringError,
    StorageError,
    TargetNotEmptyError,
)
from .registry import READ_ONLY_SCHEMES, display, scheme_of, storage_class
from .session_string import decode_session_string, encode_session_string, looks_like_session_string
from .sqlite import FileStorage, Layout
from .tools import copy_session, encryption, is_empty, opened
from .tools.files import FileIdentity, backup, identify, write_private
from .tools.sources import SessionSource, TelethonSource
from .tools.telethon import decode_telethon_string, encode_telethon_string
from .types import SessionData

PROG = "pyrogram-storage"
EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE
"""What a shell reports for a program whose reader went away (``| head``): 141."""
PROGRESS_THRESHOLD = 5000
"""Peer counts from which ``copy`` shows its progress bar on a terminal by default."""

LOCATIONS_HELP = """\
locations:
  PATH.session            a session file (the .session suffix may be left out; also
                          file:PATH or sqlite:PATH); a Telethon .session file is
                          recognised by its tables
  mongodb://HOST/?OPTS#NAME, mongodb+srv://...#NAME
                          session NAME in MongoDB (its database is named after it)
  redis://HOST:PORT/DB#NAME, rediss://...#NAME, unix:///PATH?db=0#NAME
                          session NAME in Redis or Valkey (one server or a cluster)
  postgresql://USER:PASSWORD@HOST/DB?schema=S#NAME (also postgres://)
                          session NAME in PostgreSQL
  asyncpg-storage+postgresql://...#NAME
                          a session of pyrogram-asyncpg-storage (source only)
  telethon:PATH|STRING    a Telethon .session file or StringSession string (source only)
  string:STRING           a Pyrogram-family session string (source only)

Encrypted sessions: the key is read from $PYROGRAM_STORAGE_KEY (or the variable
--key-env names): a passphrase, or hex:/base64: and 32 bytes for a raw key. It is
never taken from an argument; encrypt, decrypt and rekey ask for it on a terminal.

Sources are only read: a file that needs a schema migration is read from a
temporary copy (run `pyrogram-storage migrate FILE` to upgrade it in place).

exit status: 0 success, 1 the session could not be read or written, 2 bad usage.
"""

_FLAGS = {"user_id": "--user-id ID", "is_bot": "--bot or --user", "api_id": "--api-id ID"}
_WHAT_MISSING_DOES = {
    "user_id": "a client starts a new login",
    "is_bot": "a client starts a new login",
    "api_id": "it cannot be exported as a session string",
    "auth_key": "it holds no login at all",
}
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


class UsageError(Exception):
    """The command line asks for something that cannot be done as written (exit 2)."""


# -- locations ------------------------------------------------------------------------------


def build(location: str, **options: Any) -> Storage:
    """The storage a location names, through the registry; a location that cannot be
    used as written is a usage error (exit 2), never echoing a secret."""
    try:
        return storage_class(location).from_location(location, **options)
    except (InvalidTypeError, InvalidValueError) as exc:
        raise UsageError(f"{display(location)!r} cannot be used: {exc}") from None
    except StorageError:
        raise
    except (TypeError, ValueError) as exc:
        if "layout" in options and "layout" in str(exc):
            raise UsageError("--layout applies to session files only") from None
        raise UsageError(f"{display(location)!r} cannot be used: {exc}") from None


@dataclass
class Source:
    """An open storage to read from, with what the command line knows about it."""

    storage: Storage
    kind: str
    label: str
    identity: FileIdentity | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def missing(self) -> tuple[str, ...]:
        return self.storage.missing if isinstance(self.storage, SessionSource) else ()


def _source(text: str, options: argparse.Namespace) -> Source:
    """Build (not open) the SOURCE location ``text``, read-only."""
    fills = {k: v for k, v in _telethon_options(options).items() if v is not None}
    extra = fills if issubclass(storage_class(text), TelethonSource) else _source_keys(options)
    storage = build(text, read_only=True, **extra)
    kind = scheme_of(text)
    if not isinstance(storage, FileStorage):
        return Source(storage, kind, display(text))
    try:
        identity = identify(text)
    except NotFoundError as exc:
        if len(text) > 100 and os.sep not in text:
            raise NotFoundError(
                f"{exc}; to read a session string, write string:STRING or telethon:STRING"
            ) from None
        raise
    label = str(identity.path)
    if identity.telethon:
        telethon = build(f"telethon:{identity.path}", read_only=True, **fills)
        return Source(telethon, "telethon", label)
    if identity.kind == "empty":
        raise CorruptDataError(f"{label} is empty, not a session file")
    if not identity.is_session:
        reason = "not a SQLite database" if identity.kind == "not-sqlite" else "unknown tables"
        raise CorruptDataError(
            f"{display(label)} is not a session file ({reason}); it was left untouched"
        )
    if identity.path.resolve() != storage.path.resolve():
        raise UsageError(
            f"{label} is a session file, but one named NAME.session is expected; rename it"
        )
    source = Source(storage, "file", label, identity)
    if identity.kind == "client":
        source.notes.append(
            f"a session file of {identity.clients}; read as it is, the file is not changed"
        )
    elif identity.needs_migration:
        source.notes.append(
            f"schema version {identity.schema_version} is older than {identity.latest}; read "
            f"as it is (run `{PROG} migrate {identity.path}` to upgrade the file)"
        )
    return source


@contextlib.asynccontextmanager
async def open_source(text: str, options: argparse.Namespace) -> AsyncIterator[Source]:
    """Open the SOURCE location ``text`` for reading; it is closed (never saved) afterwards."""
    source = _source(text, options)
    try:
        await source.storage.open()
    except (InvalidTypeError, InvalidValueError) as exc:  # options the session contradicts
        raise UsageError(str(exc)) from None
    try:
        yield source
    finally:
        await source.storage.close()


def make_target(text: str, options: argparse.Namespace) -> Storage:
    """Build the TARGET location ``text`` (not opened)."""
    if looks_like_session_string(text) or any(
        looks_like_session_string(part) for part in re.split(r"[/\\]", text)
    ):
        raise UsageError(
            "TARGET looks like a session string, not a place to store one (it is not "
            f"repeated here); to store a session string, run `{PROG} import-string - TARGET` "
            "and paste it on standard input"
        )
    scheme = scheme_of(text) if text else "file"
    if scheme in READ_ONLY_SCHEMES:
        raise UsageError(
            f"{scheme}: locations can only be read; use `{PROG} export-string` to get a "
            "session string"
        )
    layout = getattr(options, "layout", None)
    keys = _target_keys(options)
    target = build(text, **keys, **({} if layout is None else {"layout": layout}))
    if isinstance(target, FileStorage) and (
        target.path.is_dir() or target.path.with_suffix("").is_dir()
    ):
        raise UsageError(f"{display(text)!r} is not a session file name (NAME.session)")
    return target


# -- encryption keys (never from an argument: see tools.encryption.read_key) -----------------


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
    storage = build(text, **keys)
    if isinstance(storage, FileStorage) and not storage.path.is_file():
        raise NotFoundError(f"no such session file: {display(str(storage.path))}")
    return storage


def _done(outcome: encryption.Outcome, message: str, out: TextIO) -> int:
    if outcome is encryption.Outcome.NO_AUTH_KEY:
        message += " (it holds no auth key yet; the one it gets will be stored so)"
    print(message, file=out)
    return EXIT_OK


def _same(source: Source, target: Storage) -> bool:
    """Whether TARGET is SOURCE itself (the same file, or the same server location)."""
    if source.identity is not None and isinstance(target, FileStorage):
        return target.path.exists() and source.identity.path.resolve() == target.path.resolve()
    return source.storage.location is not None and source.storage.location == target.location


# -- fields a source may not record ------------------------------------------------------------


def _telethon_options(options: argparse.Namespace) -> dict[str, Any]:
    return {name: getattr(options, name, None) for name in ("user_id", "is_bot", "api_id")}


def _fills(session: SessionData, options: argparse.Namespace) -> dict[str, Any]:
    """Return the --user-id/--bot/--api-id values ``session`` lacks.

    :raises UsageError: an option contradicts what the session records.
    """
    changes = {}
    for name, value in _telethon_options(options).items():
        current = getattr(session, name)
        if value is None or current == value:
            continue
        if current is not None:
            flag = {"user_id": "--user-id", "is_bot": "--bot/--user", "api_id": "--api-id"}[name]
            raise UsageError(f"{flag} says {value!r} but the session records {current!r}")
        changes[name] = value
    return changes


def _missing_message(missing: Sequence[str]) -> str:
    hints = [_FLAGS[name] for name in missing if name in _FLAGS]
    effects = sorted({_WHAT_MISSING_DOES[name] for name in missing if name in _WHAT_MISSING_DOES})
    message = f"the session does not record {', '.join(missing)}"
    if effects:
        message += f", so {' and '.join(effects)}"
    if hints:
        message += f"; give {', '.join(hints)} to complete it"
    return message


# -- commands -------------------------------------------------------------------------------


def auth_key_id(auth_key: bytes) -> str:
    """Return Telegram's auth key id (the low 64 bits of its SHA-1) in hex: safe to show."""
    return hashlib.sha1(auth_key).digest()[-8:][::-1].hex()


async def cmd_inspect(options: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    async with open_source(options.source, options) as source:
        storage = source.storage
        session = await storage.get_session()
        counts = await storage.count_peers_by_type()
        states = await storage.get_update_states()
        if await is_empty(storage):
            source.notes.append("the session is empty: no auth key, peers or update states")
    identity = source.identity
    missing = source.missing or session.missing
    size = None
    if identity is not None:
        size = sum(
            os.path.getsize(f"{identity.path}{suffix}")
            for suffix in ("", "-wal")
            if os.path.exists(f"{identity.path}{suffix}")
        )
    client = identity if identity is not None and identity.kind == "client" else None
    address = session.address()
    report: dict[str, Any] = {
        "source": source.label,
        "kind": source.kind,
        "file_size": size,
        "schema_version": None if identity is None else identity.schema_version,
        "latest_schema_version": None if identity is None else identity.latest,
        "client_file": None
        if client is None
        else {"family": client.family, "clients": client.clients, "version": client.client_version},
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
    if client is not None:
        number = client.client_version
        version = "" if number is None else f" (their schema {number})"
        lines.append(("written by", f"{client.clients}{version}"))
    elif identity is not None:
        lines.append(("schema version", f"{identity.schema_version} (latest {identity.latest})"))
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
    return "never" if not stamp else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(stamp))


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
        text = encode_telethon_string(session)
    else:
        text = encode_session_string(session.replace(**changes))
    if output is None:
        print(text, file=out)
    else:
        write_private(output, text + "\n")
        print(f"wrote the session string to {output} (mode 0600)", file=err)
    return EXIT_OK


async def cmd_import_string(options: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    text = (sys.stdin.read() if options.string == "-" else options.string).strip()
    try:
        decode_session_string(text)
        location = "string:" + text
    except SessionStringError as exc:
        try:
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
        if _same(source, target):
            raise UsageError("SOURCE and TARGET are the same file")
        session = await source.storage.get_session()
        changes = _fills(session, options)
        if await is_empty(source.storage):
            raise StorageError(
                f"{source.label} holds no session (no auth key, peers or update states); "
                "nothing to copy"
            )
        missing = [name for name in source.missing or session.missing if name not in changes]
        if missing and options.strict:
            raise StorageError(f"{_missing_message(missing)} (--strict: nothing was written)")
        total = await source.storage.count_peers()
        show = options.progress
        if show is None:
            show = err.isatty() and total >= PROGRESS_THRESHOLD
        bar = progress_bar(err) if show else None
        try:
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
                        f"{display(target_text)} already holds a session; pass --overwrite "
                        "to replace it"
                    ) from None
                if changes:
                    await target.update_session(**changes)
                final = await target.get_session()
        finally:
            if bar is not None:
                bar.finish()  # an error's message starts on a line of its own
    print(
        f"{verb} {source.label} to {display(target_text)}: "
        f"{result.peers} peers, {result.update_states} update states",
        file=out,
    )
    if final.missing:
        print(f"{PROG}: warning: {_missing_message(final.missing)}", file=err)
    return EXIT_OK


def progress_bar(stream: TextIO) -> ProgressBar | TqdmBar:
    """``copy``'s progress bar on ``stream``: tqdm's when it is installed (the
    ``progress`` extra: rate, elapsed and remaining time, the terminal's width), else
    the plain one-line bar."""
    try:
        tqdm = importlib.import_module("tqdm").tqdm
    except ImportError:
        return ProgressBar(stream)
    return TqdmBar(stream, tqdm)


class TqdmBar:
    """tqdm's bar, told ``(done, total)`` like :class:`ProgressBar`."""

    def __init__(self, stream: TextIO, tqdm: Any) -> None:
        self._stream = stream
        self._tqdm = tqdm
        self._bar: Any = None  # drawn from the first call on, like ProgressBar

    def __call__(self, done: int, total: int) -> None:
        if self._bar is None:
            self._bar = self._tqdm(
                total=total,
                desc="peers",
                unit=" peers",
                file=self._stream,
                mininterval=0.1,
                dynamic_ncols=True,
            )
        elif total != self._bar.total:
            self._bar.total = total
        self._bar.update(done - self._bar.n)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.close()


class ProgressBar:
    """A one-line progress bar on a text stream, redrawn at most every tenth of a second
    (without tqdm)."""

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
    identity = identify(options.file)
    path = identity.path
    if identity.telethon:
        raise UsageError(
            f"{path} is a Telethon session; convert it with "
            f"`{PROG} copy telethon:{path} NEW.session` instead"
        )
    if identity.kind == "empty":
        raise CorruptDataError(f"{path} is empty, not a session file")
    before = identity.schema_version
    if identity.kind == "pyrogram-storage" and before == identity.latest:
        print(f"{path} is already at schema version {before}; nothing to do", file=out)
        return EXIT_OK
    if identity.kind == "not-sqlite":
        raise CorruptDataError(
            f"{display(str(path))} is not a session file (not a SQLite database)"
        )
    copy = backup(path) if identity.needs_migration else None
    async with opened(build(str(path))):
        pass
    if copy is not None:
        print(f"backed up {path} to {copy}", file=err)
    print(
        f"migrated {path} from schema version {before} to {identify(path).schema_version}",
        file=out,
    )
    return EXIT_OK


# -- argument parsing -----------------------------------------------------------------------


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


_FILLS_TITLE = "fields the source may not record (Telethon sessions, old session strings)"
_STRICT = (
    "refuse (exit 1, nothing written) a session that would still lack a field the clients "
    "need; without it, a warning says what the gap will cost"
)
_TARGET: list[tuple[str, dict[str, Any]]] = [
    ("--overwrite", {"action": "store_true",
                     "help": "replace a TARGET that already holds a session"}),
    ("--layout", {"choices": [layout.value for layout in Layout], "default": None,
                  "help": "usernames table layout of a new TARGET file (default: upstream)"}),
    ("--batch-size", {"type": _positive, "default": 1000, "metavar": "N",
                      "help": "peers per read and write (default: 1000)"}),
]  # fmt: skip
_EXPORT: list[tuple[str, dict[str, Any]]] = [
    ("--show-secret", {"action": "store_true", "help": "print the session string on stdout"}),
    ("--output", {"metavar": "FILE", "help": "write the session string to FILE, mode 0600"}),
    ("--force", {"action": "store_true", "help": "replace an existing --output FILE"}),
    ("--format", {"choices": ["pyrogram", "telethon"], "default": "pyrogram",
                  "help": "pyrogram (every Pyrogram-family client) or telethon"}),
]  # fmt: skip
COMMANDS: dict[str, tuple[Any, tuple[str, ...], str, str]] = {
    "inspect": (cmd_inspect, ("SOURCE",), "show what a session holds (never its auth key)",
                "Show a session's data center, account, api id, peer counts, update states "
                "and schema version. The auth key is never shown, only its id."),
    "export-string": (cmd_export_string, ("SOURCE",),
                      "export a session string (only when asked explicitly)",
                      "Export SOURCE as a session string. It gives full access to the "
                      "account: it is printed only with --show-secret, or written to a 0600 "
                      "file."),
    "import-string": (cmd_import_string, ("STRING|-", "TARGET"),
                      "store a session string (Pyrogram or Telethon) in TARGET",
                      "Store a Pyrogram-family or Telethon session string in TARGET. Give - "
                      "to read it from standard input (keeps it out of your shell history)."),
    "copy": (cmd_copy, ("SOURCE", "TARGET"),
             "copy a whole session (auth, peers, update states) to TARGET",
             "Copy SOURCE to TARGET: authorization, every peer with its usernames, and the "
             "update states. A TARGET holding a session is refused unless --overwrite."),
    "migrate": (cmd_migrate, ("FILE",), "upgrade a session file's schema in place, after a backup",
                "Apply pending schema migrations to FILE (any Pyrogram-family client's "
                "session file). A copy is kept first as FILE.bak-<UTC time>, mode 0600."),
}  # fmt: skip
"""Each command: what runs it, its positional arguments, its summary and description."""

_KEY_COMMANDS: dict[str, tuple[Any, str, str]] = {
    "encrypt": (cmd_encrypt, "encrypt the auth key of a session stored in clear or Fernet",
                "Seal LOCATION's auth key with the key in $PYROGRAM_STORAGE_KEY (or asked for). "
                "A file of Kurigram's EncryptedFernetStorage is moved to our envelope with its "
                "key in $PYROGRAM_STORAGE_FERNET_KEY."),
    "decrypt": (cmd_decrypt, "store the auth key of an encrypted session in clear again",
                "Open LOCATION's auth key with the key in $PYROGRAM_STORAGE_KEY (or asked for) "
                "and store it in clear."),
    "rekey": (cmd_rekey, "change the encryption key of a session",
              "Open LOCATION's auth key with the key in $PYROGRAM_STORAGE_KEY and seal it with "
              "the one in $PYROGRAM_STORAGE_NEW_KEY (each asked for if unset)."),
}  # fmt: skip
"""The commands that rewrite a session's auth key in place, one atomic write each."""


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


def _switch(parser: Any, dest: str, flags: dict[str, tuple[object, str]]) -> None:
    """Mutually exclusive flags storing constants in ``dest``."""
    group = parser.add_mutually_exclusive_group()
    for flag, (value, help_) in flags.items():
        group.add_argument(flag, dest=dest, action="store_const", const=value, help=help_)


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of the ``pyrogram-storage`` command."""
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Inspect, copy, import, export and migrate Pyrogram-family sessions.",
        epilog=LOCATIONS_HELP,
        formatter_class=raw,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (run, arguments, summary, description) in COMMANDS.items():
        epilog = None if name == "migrate" else LOCATIONS_HELP
        command = commands.add_parser(
            name, help=summary, description=description, epilog=epilog, formatter_class=raw
        )
        command.set_defaults(parser=command, run=run)
        for argument in arguments:
            command.add_argument(argument.lower().split("|")[0], metavar=argument)
        if name == "inspect":
            command.add_argument("--json", action="store_true", help="print one JSON object")
        if name == "export-string":
            for flag, settings in _EXPORT:
                command.add_argument(flag, *(["-o"] if flag == "--output" else []), **settings)
        if name in ("import-string", "copy"):
            for flag, settings in _TARGET:
                command.add_argument(flag, **settings)
            _switch(command, "progress", {
                "--progress": (True, "always show the progress bar on stderr"),
                "--no-progress": (False, "never show it (default: on a terminal, for large "
                                  "peer tables)"),
            })  # fmt: skip
        if name in ("export-string", "import-string", "copy"):
            fills = command.add_argument_group(_FILLS_TITLE)
            fills.add_argument("--user-id", type=int, metavar="ID", help="the account's user id")
            fills.add_argument("--api-id", type=int, metavar="ID", help="the api id of the session")
            _switch(fills, "is_bot", {
                "--bot": (True, "the account is a bot"), "--user": (False, "the account is a user"),
            })  # fmt: skip
            if name != "export-string":
                fills.add_argument("--strict", action="store_true", help=_STRICT)
        if name != "migrate":
            _add_key_options(command, target=name in ("import-string", "copy"))
    for name, (run, summary, description) in _KEY_COMMANDS.items():
        command = commands.add_parser(
            name,
            help=summary,
            description=description + " One atomic write: a crash leaves the old key or the "
            "new one. A session file held by another process is refused.",
            epilog=LOCATIONS_HELP,
            formatter_class=raw,
            allow_abbrev=False,  # --key must not pass for --key-env: no key on the line
        )
        command.set_defaults(parser=command, run=run)
        command.add_argument("location", metavar="LOCATION")
        _add_key_options(command)
        if name == "rekey":
            command.add_argument(
                "--new-key-env",
                metavar="NAME",
                default=encryption.DEFAULT_NEW_KEY_VARIABLE,
                help="the variable holding the new key (default: "
                f"{encryption.DEFAULT_NEW_KEY_VARIABLE})",
            )

    from .kv.cli import add_kv_commands

    add_kv_commands(commands)
    return parser


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
    options, unknown = parser.parse_known_args(argv)
    command: argparse.ArgumentParser = getattr(options, "parser", parser)
    if unknown:  # the command's own usage, not the top level's
        command.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        status: int = asyncio.run(options.run(options, sys.stdout, sys.stderr))
        return status
    except BrokenPipeError:
        raise
    except UsageError as exc:
        _fail(command, _cli_words(str(exc)))
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


def _fail(parser: argparse.ArgumentParser, message: str) -> NoReturn:
    parser.error(message)


def _cli_words(message: str) -> str:
    for pattern, words in _PYTHON_WORDS:
        message = pattern.sub(words, message)
    return message


def _os_error(exc: OSError) -> str:
    """Describe an OSError without repeating a long path whole (it may be a pasted secret)."""
    if exc.strerror is None:
        return str(exc)
    names = [
        display(os.fsdecode(name) if isinstance(name, (str, bytes, os.PathLike)) else str(name))
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
