"""File safety shared by every store kept in files (sessions and bot state).

Lock files that name their holder and die with it, folders and files private from
their first byte (0700/0600, whatever the umask), refusal of symbolic and hard links
planted where a store writes, telling a full disk from other failures, and SQLite's
error codes. :mod:`pyrogram_storage.sqlite` and the file-based ``kv`` stores use it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import json
import logging
import os
import socket
import sqlite3
import stat
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .errors import (
    BackendError,
    CorruptDataError,
    DiskFullError,
    LockedError,
    ReadOnlyError,
    StorageError,
)

__all__ = [
    "SESSION",
    "STORE",
    "Wording",
    "acquire_lock",
    "alive",
    "create_private",
    "disk_full",
    "link_refused",
    "make_private",
    "make_private_folder",
    "reading_connection",
    "refuse_links",
    "release_lock",
    "remove_abandoned_scratch",
    "sqlite_error",
]

log = logging.getLogger("pyrogram_storage.files")


@dataclass(frozen=True)
class Wording:
    """How the errors and warnings of this module speak of one kind of file.

    The texts are ``str.format`` templates: ``{path}`` (the store's file), ``{holder}``
    (who holds its lock) and ``{lock}`` (the lock file).
    """

    in_use: str
    """An exclusive opener meets a lock that is held."""
    held_exclusively: str
    """A shared opener meets an exclusive holder."""
    read_only_folder: str
    """No lock file can be made: the folder or mount is read-only."""
    link: str
    """Why a link planted in the store's place is refused, and what to do."""
    made_private: str
    """Why a file other users could read is made private."""
    folder: str
    """What the folder of the file is called (an argument name)."""
    sqlite_locked: str = ""
    """SQLite waited ``{busy}`` seconds for another connection's lock on ``{path}``."""
    sqlite_read_only: str = ""
    """SQLite cannot write ``{path}``."""
    sqlite_corrupt: str = ""
    """SQLite says ``{path}`` is damaged or no database (``{exc}``: its message)."""


SESSION = Wording(
    in_use=(
        "{path} is in use by {holder}; stop that client first, or open every storage of "
        "this session with lock='shared'"
    ),
    held_exclusively="{path} is held exclusively by {holder}; stop that client first",
    read_only_folder=(
        "to read the session there, open it with read_only=True (the command line reads "
        "every SOURCE that way)"
    ),
    link=(
        "pyrogram-storage never follows a link to a session, lock or journal file (it could "
        "make it write elsewhere). Remove the link, or point workdir= at the folder that "
        "holds the real file"
    ),
    made_private="a session grants full access to the account",
    folder="workdir",
    sqlite_locked="{path} is locked by another connection for more than {busy}s",
    sqlite_read_only=(
        "{path} cannot be written (a read-only file or mount); open it with read_only=True "
        "to read it"
    ),
    sqlite_corrupt="{path} is damaged ({exc}); restore it from a backup",
)
"""The session files' wording (:class:`~pyrogram_storage.FileStorage`)."""

STORE = Wording(
    in_use=(
        "{path} is open in another process or object ({holder}); a file store has one "
        "writer at a time (SQLiteKV shares state between processes)"
    ),
    held_exclusively="{path} is open in another process or object ({holder})",
    read_only_folder="a bot-state store needs a folder it can write to",
    link=(
        "pyrogram-storage never follows a link to a store, lock, backup or journal file (it "
        "could make it write elsewhere). Remove the link, or give the path of the real file"
    ),
    made_private="bot state may hold what users told the bot",
    folder="the folder",
    sqlite_locked="another connection held the write lock on {path} for more than {busy}s",
    sqlite_read_only="{path} cannot be written (a read-only file or mount)",
    sqlite_corrupt="{path} is not a SQLite database, or is damaged ({exc}); it was left untouched",
)
"""The bot-state files' wording (:mod:`pyrogram_storage.kv`)."""

_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_SQLITE_FULL = 13
_SQLITE_ROOM = 1 << 20
"""Below this much free space, a SQLite error while creating a file is a full disk.

SQLite reports a write that found no space as SQLITE_FULL, but a shared-memory index
it could not grow as an I/O error, and a journal it could not create as CANTOPEN."""


class LockOwner(Protocol):
    """A store holding a lock file (:class:`~pyrogram_storage._lifecycle.Lifecycle`)."""

    def _let_go_if_abandoned(self) -> bool: ...


_OWNERS: dict[int, tuple[str, weakref.ref[LockOwner]]] = {}  # lock fd -> (lock path, owner)
_OWNERS_LOCK = threading.Lock()


def _owners_here(lock_path: Path) -> list[LockOwner]:
    """The stores of this process holding this lock file."""
    key = os.path.abspath(lock_path)
    with _OWNERS_LOCK:
        found = [ref() for held, ref in _OWNERS.values() if held == key]
    return [owner for owner in found if owner is not None]


def acquire_lock(
    lock_path: Path,
    path: Path,
    *,
    shared: bool,
    wording: Wording = SESSION,
    owner: LockOwner | None = None,
) -> int:
    """Take the store's lock file, or raise LockedError naming who holds it.

    Exclusive openers take an exclusive flock, shared ones a shared flock, so the two
    modes never mix on one file. The kernel drops the lock when the process dies.

    A store of this process whose event loop has ended while it was open (one
    ``asyncio.run()`` over, the next one opening the file again) is closed on the spot
    and its lock taken over, unless it still has writes it has not stored.

    :param owner: the store taking the lock, remembered until :func:`release_lock`.
    :raises StorageError: the lock file is a symbolic link, a hard link or not a file.
    :raises DiskFullError: no room for the lock file.
    """
    while True:
        fd = _open_lock_file(lock_path, wording)
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            here = _owners_here(lock_path)
            if owner is not None and any([held._let_go_if_abandoned() for held in here]):
                continue  # a store left behind by an ended event loop let go: try again
            if here:
                holder = f"{holder}: {here[0]!r}, still open in this process; close() it first"
            template = wording.held_exclusively if shared else wording.in_use
            raise LockedError(template.format(path=path, holder=holder, lock=lock_path)) from None
        except BaseException:
            os.close(fd)
            raise
        # The last holder unlinks the file on release; a lock on an unlinked file is no lock.
        try:
            same = os.fstat(fd).st_ino == os.lstat(lock_path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": int(time.time())}
        if not shared:
            os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode().ljust(256), 0)
    except BaseException as exc:
        release_lock(fd, lock_path)
        full = disk_full(exc, lock_path.parent, f"cannot lock {path}")
        if full is not None:
            raise full from exc
        raise
    if owner is not None:
        with _OWNERS_LOCK:
            _OWNERS[fd] = (os.path.abspath(lock_path), weakref.ref(owner))
    return fd


def _open_lock_file(lock_path: Path, wording: Wording) -> int:
    """Open or create the lock file without following a link planted in its place."""
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise link_refused(lock_path, wording) from None
        if exc.errno == errno.EISDIR:
            raise _not_a_lock_file(lock_path, "is not a regular file") from None
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise ReadOnlyError(
                f"cannot create the lock file {lock_path}: {exc.strerror} (a read-only "
                f"folder or mount); {wording.read_only_folder}"
            ) from exc
        full = disk_full(exc, lock_path.parent, f"cannot create the lock file {lock_path}")
        if full is not None:
            raise full from exc
        raise
    info = os.fstat(fd)
    # A hard link would have us truncate and write into another file, as a symlink would.
    if not stat.S_ISREG(info.st_mode) or info.st_nlink > 1:
        os.close(fd)
        kind = "has other hard links" if stat.S_ISREG(info.st_mode) else "is not a regular file"
        raise _not_a_lock_file(lock_path, kind)
    return fd


def _not_a_lock_file(lock_path: Path, kind: str) -> StorageError:
    return StorageError(
        f"{lock_path} {kind}; refusing to write into it. Remove it (the lock file is "
        "recreated on open)"
    )


def link_refused(path: str | Path, wording: Wording = SESSION) -> StorageError:
    """The error for a symbolic link found where a store keeps one of its files."""
    return StorageError(f"{path} is a symbolic link; {wording.link}")


def refuse_links(path: Path, suffixes: tuple[str, ...], wording: Wording = SESSION) -> None:
    """Raise :func:`link_refused` if ``path`` or one of its side files is a symbolic link."""
    for suffix in ("", *suffixes):
        if os.path.islink(f"{path}{suffix}"):
            raise link_refused(f"{path}{suffix}", wording)


def create_private(path: Path) -> int:
    """Create ``path`` (which must not exist) with mode 0600 exactly; return its descriptor.

    A link planted in its place is not followed (``O_EXCL`` refuses any existing name).
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)  # exactly, whatever the umask took off
    except BaseException:
        os.close(fd)
        raise
    return fd


def release_lock(fd: int, lock_path: Path) -> None:
    """Remove the lock file if no one else holds it, then drop our lock."""
    with _OWNERS_LOCK:
        _OWNERS.pop(fd, None)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock_path)
    except BlockingIOError:
        pass  # other shared holders remain; the last one removes it
    finally:
        os.close(fd)


def _holder(fd: int) -> str:
    """Describe the lock's holder from what it wrote; any other content is not trusted."""
    try:
        info = json.loads(os.pread(fd, 4096, 0).strip() or b"{}")
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(int(info["since"])))
        pid = int(info["pid"])
        host = info["host"]
        if not isinstance(host, str) or not 0 < pid < 2**32:
            raise ValueError("not a lock written by pyrogram-storage")
        return f"pid {pid} on {host[:64]!r} since {since}"
    except (ValueError, KeyError, TypeError, OverflowError, OSError, RecursionError):
        return "another process or storage object"


def disk_full(exc: BaseException, folder: Path, what: str) -> DiskFullError | None:
    """Return the DiskFullError ``exc`` means (an OSError or a sqlite3 error), else None."""
    if isinstance(exc, OSError):
        full = exc.errno in _FULL_ERRNOS
    elif isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
        full = code == _SQLITE_FULL or "database or disk is full" in str(exc)
        if not full and isinstance(exc, sqlite3.OperationalError):
            # A side file it could not create, an index it could not grow: not reported
            # as SQLITE_FULL, so tell by what is left.
            full = _no_room(folder)
    else:
        return None
    if not full:
        return None
    free = _free_bytes(folder)
    room = f"{free // 1024} KiB free" if free >= 0 else "free space unknown"
    return DiskFullError(
        f"{what}: the disk is full ({room} in {folder}); free some space and try again. "
        "Nothing already stored was changed"
    )


def _no_room(folder: Path) -> bool:
    try:
        info = os.statvfs(folder)
    except OSError:
        return False
    no_inodes = info.f_files > 0 and info.f_favail == 0  # 0 files: the fs does not count
    return no_inodes or info.f_bavail * info.f_frsize < _SQLITE_ROOM


def _free_bytes(folder: Path) -> int:
    try:
        info = os.statvfs(folder)
    except OSError:
        return -1
    return info.f_bavail * info.f_frsize


def make_private_folder(folder: Path, wording: Wording = SESSION) -> None:
    """Create ``folder`` and its missing parents with mode 0700, whatever the umask."""
    if folder.is_dir():
        return
    missing = []
    current = folder
    while not os.path.lexists(current) and current != current.parent:
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            continue  # made by another opener meanwhile
        except OSError as exc:
            full = disk_full(exc, path.parent, f"cannot create the folder {path}")
            if full is not None:
                raise full from exc
            raise
        # The umask may have taken bits off (or mkdir's mode was masked): set it exactly.
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            os.fchmod(fd, 0o700)
        finally:
            os.close(fd)
    if not folder.is_dir():
        raise StorageError(f"{wording.folder} {folder} is not a folder")


Changed = list[tuple[str, int, int]]
"""Files :func:`make_private` changed: (name, mode before, mode after)."""


def make_private(
    path: Path, side_files: tuple[str, ...] = (), wording: Wording = SESSION
) -> Changed:
    """Take group and other permissions off ``path`` and its side files (suffixes) we own.

    Run it before any SQLite connection of this process has the file open: closing a
    descriptor of the file drops every POSIX lock the process holds on it, SQLite's too.
    Nothing is logged here: :func:`report_private` says what was changed once the file
    is known to be a session, :func:`undo_private` puts the modes back if it is refused.
    """
    changed: Changed = []
    for suffix in ("", *side_files):
        name = f"{path}{suffix}"
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            continue
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise link_refused(name, wording) from None
            continue  # unreadable: SQLite's open reports it
        try:
            info = os.fstat(fd)
            mode = stat.S_IMODE(info.st_mode)
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or not mode & 0o077:
                continue
            try:
                os.fchmod(fd, mode & 0o700)
            except OSError as exc:
                log.warning("%s has mode %04o and could not be made private: %s", name, mode, exc)
            else:
                changed.append((name, mode, mode & 0o700))
        finally:
            os.close(fd)
    return changed


def report_private(changed: Changed, wording: Wording = SESSION) -> None:
    """Log a WARNING for each file :func:`make_private` changed."""
    for name, before, after in changed:
        log.warning(
            "%s had mode %04o (other users could read it); changed it to %04o: %s",
            name,
            before,
            after,
            wording.made_private,
        )


def undo_private(changed: Changed) -> None:
    """Put back the modes :func:`make_private` changed, by path (no descriptor opened: a
    SQLite connection of this process may have the file open)."""
    for name, before, after in changed:
        with contextlib.suppress(OSError):
            info = os.lstat(name)
            if stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) == after:
                os.chmod(name, before)


def remove_abandoned_scratch(path: Path) -> None:
    """Remove files that processes killed while creating ``path`` left aside.

    Only regular files whose name carries the pid of a dead process are removed;
    anything else with a similar name (a folder, a link) is not ours and is left alone.
    """
    for scratch in path.parent.glob(f".{glob.escape(path.name)}.new-*"):
        pid = scratch.name.rpartition(".new-")[2].split("-")[0]
        if not (pid.isascii() and pid.isdigit() and 0 < int(pid) < 2**31) or alive(int(pid)):
            continue
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISREG(os.lstat(scratch).st_mode):
                os.unlink(scratch)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- reading a SQLite file --------------------------------------------------------------------

_MAGIC = b"SQLite format 3\x00"


def reading_connection(path: Path, timeout: float = 0.0) -> sqlite3.Connection:
    """A connection that only reads ``path``: no lock, nothing written, nothing left behind.

    A read-only connection to a WAL file creates its ``-wal`` and ``-shm`` files and
    cannot remove them on close. So when neither exists yet (nobody has the file open)
    and the folder is writable, the connection is opened read-write with
    ``query_only``: it cannot change a row, and its close removes what it created. Else
    (side files in use by another process) it is ``mode=ro``; and in a read-only folder,
    where SQLite cannot make the shared-memory file of a WAL file, the main file is read
    as it is (what the last checkpoint stored).

    :raises sqlite3.Error: ``path`` cannot be opened as a SQLite database.
    """
    uri = path.resolve().as_uri()
    unused = not any(os.path.lexists(f"{path}{suffix}") for suffix in ("-wal", "-shm"))
    rw = unused and _is_wal(path) and os.access(path.parent, os.W_OK)
    db = sqlite3.connect(
        f"{uri}?mode={'rw' if rw else 'ro'}",
        uri=True,
        isolation_level=None,
        check_same_thread=False,
        timeout=timeout,
    )
    try:
        if rw:
            db.execute("PRAGMA query_only = ON")
        db.execute("SELECT COUNT(*) FROM sqlite_master").fetchall()
        return db
    except sqlite3.OperationalError:
        db.close()
        if rw:
            raise
    wal = f"{path}-wal"
    if os.path.lexists(wal) and os.lstat(wal).st_size > 0:
        log.warning(
            "%s: reading without its write-ahead log (the folder is read-only); writes "
            "since the last checkpoint are not shown",
            path,
        )
    return sqlite3.connect(
        f"{uri}?mode=ro&immutable=1",
        uri=True,
        isolation_level=None,
        check_same_thread=False,
        timeout=timeout,
    )


def _is_wal(path: Path) -> bool:
    """Whether the file's header says it is in WAL mode (its read and write versions are 2)."""
    try:
        with open(path, "rb") as file:
            header = file.read(20)
    except OSError:
        return False
    return header.startswith(_MAGIC) and header[18:20] == b"\x02\x02"


# -- SQLite's errors ---------------------------------------------------------------------------

# SQLite's primary result codes (sqlite3.Error.sqlite_errorcode & 0xFF, Python 3.11+).
_BUSY, _LOCKED, _READONLY, _CORRUPT, _FULL, _NOTADB = 5, 6, 8, 11, 13, 26

FULL, LOCKED, READ_ONLY, CORRUPT, UNDECODABLE, OTHER = (
    "full",
    "locked",
    "read-only",
    "corrupt",
    "undecodable",
    "other",
)


def sqlite_failure(exc: sqlite3.Error) -> str:
    """What a SQLite error means: :data:`FULL`, :data:`LOCKED`, :data:`READ_ONLY`,
    :data:`CORRUPT`, :data:`UNDECODABLE` (stored text that is not UTF-8) or :data:`OTHER`.

    By result code where Python gives one (3.11+), else by SQLite's message.
    """
    code = getattr(exc, "sqlite_errorcode", None)
    primary = None if code is None else code & 0xFF
    text = str(exc)
    lowered = text.lower()
    if quotes_data(exc):
        return UNDECODABLE
    if primary == _FULL or "database or disk is full" in lowered:
        return FULL
    if primary in (_BUSY, _LOCKED) or "locked" in lowered or "busy" in lowered:
        return LOCKED
    if primary == _READONLY or "readonly database" in lowered:
        return READ_ONLY
    if primary in (_CORRUPT, _NOTADB) or "malformed" in lowered or "not a database" in lowered:
        return CORRUPT
    return OTHER


def sqlite_error(
    exc: sqlite3.Error, path: object, busy: float, wording: Wording = SESSION
) -> StorageError:
    """Translate a SQLite error on ``path`` into ours; the message never quotes stored data.

    A full disk is :class:`DiskFullError`, a lock held too long :class:`LockedError`, a
    read-only file :class:`ReadOnlyError`, damage (or text that is not UTF-8)
    :class:`CorruptDataError`, anything else :class:`BackendError`.
    """
    failure = sqlite_failure(exc)
    if failure == UNDECODABLE:
        return CorruptDataError(
            f"{path} is damaged (text that is not UTF-8); restore it from a backup"
        )
    if failure == FULL:
        return DiskFullError(
            f"the disk holding {path} is full; free some space (nothing stored was changed)"
        )
    template, kind = {
        LOCKED: (wording.sqlite_locked, LockedError),
        READ_ONLY: (wording.sqlite_read_only, ReadOnlyError),
        CORRUPT: (wording.sqlite_corrupt, CorruptDataError),
    }.get(failure, ("SQLite failed on {path}: {exc}", BackendError))
    return kind(template.format(path=path, busy=busy, exc=exc))


def quotes_data(exc: sqlite3.Error) -> bool:
    """Whether SQLite's message quotes stored bytes (undecodable text): never show it."""
    return str(exc).startswith("Could not decode to UTF-8")
