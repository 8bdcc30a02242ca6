"""A session kept in ``<workdir>/<name>.session``."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import json
import logging
import os
import secrets
import socket
import sqlite3
import stat
import sys
import time
from pathlib import Path
from typing import Any

from . import sqlite_schema
from .errors import (
    BackendError,
    CorruptSessionError,
    DiskFullError,
    InvalidValueError,
    ReadOnlyError,
    SessionLocked,
    SessionNotFoundError,
    StorageError,
)
from .session_string import looks_like_session_string
from .sqlite import SQLiteStorage
from .sqlite_schema import Layout, create_schema

__all__ = ["FILE_EXTENSION", "FileStorage", "default_workdir"]

log = logging.getLogger(__name__)

FILE_EXTENSION = ".session"
_SIDE_FILES = ("-wal", "-shm", "-journal")
MAX_NAME_BYTES = 200
"""The longest session name: its scratch file (``.NAME.session.new-PID-TOKEN-journal``)
must still fit in the 255 bytes a file name may have."""
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_SQLITE_FULL = 13
_SQLITE_ROOM = 1 << 20
"""Below this much free space, a SQLite error while creating a file is a full disk.

SQLite reports a write that found no space as SQLITE_FULL, but a shared-memory index
it could not grow as an I/O error, and a journal it could not create as CANTOPEN."""


def default_workdir() -> Path:
    """Return the folder every client keeps its session files in by default.

    It is the running script's folder (``Path(sys.argv[0]).parent``, ``.`` in an
    interactive session), computed the way the clients compute their ``WORKDIR``.
    """
    return Path(sys.argv[0] if sys.argv else "").parent


def _acquire(lock_path: Path, path: Path, *, shared: bool) -> int:
    """Take the session's lock file, or raise SessionLocked naming who holds it.

    Exclusive openers take an exclusive flock, shared ones a shared flock, so the two
    modes never mix on one file. The kernel drops the lock when the process dies.

    :raises StorageError: the lock file is a symbolic link, a hard link or not a file.
    :raises DiskFullError: no room for the lock file.
    """
    while True:
        fd = _open_lock_file(lock_path)
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise SessionLocked(
                f"{path} is in use by {holder}; stop that client first, or open every "
                "storage of this session with lock='shared'"
                if not shared
                else f"{path} is held exclusively by {holder}; stop that client first"
            ) from None
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
        _release_lock(fd, lock_path)
        full = _disk_full(exc, lock_path.parent, f"cannot lock {path}")
        if full is not None:
            raise full from exc
        raise
    return fd


def _open_lock_file(lock_path: Path) -> int:
    """Open or create the lock file without following a link planted in its place."""
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _link_refused(lock_path) from None
        if exc.errno == errno.EISDIR:
            raise _not_a_lock_file(lock_path, "is not a regular file") from None
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise ReadOnlyError(
                f"cannot create the lock file {lock_path}: {exc.strerror} (a read-only "
                "folder or mount); to read the session there, open it with read_only=True "
                "(the command line reads every SOURCE that way)"
            ) from exc
        full = _disk_full(exc, lock_path.parent, f"cannot create the lock file {lock_path}")
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


def _link_refused(path: str | Path) -> StorageError:
    return StorageError(
        f"{path} is a symbolic link; pyrogram-storage never follows a link to a session, "
        "lock or journal file (it could make it write elsewhere). Remove the link, or point "
        "workdir= at the folder that holds the real file"
    )


def _release_lock(fd: int, lock_path: Path) -> None:
    """Remove the lock file if no one else holds it, then drop our lock."""
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


def _disk_full(exc: BaseException, folder: Path, what: str) -> DiskFullError | None:
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


class FileStorage(SQLiteStorage):
    """A session in a SQLite file, the same file name every client uses.

    The file is created with mode 0600 (it grants full access to the account), in
    WAL mode with ``synchronous=NORMAL``. Session fields are committed before their
    call returns; peer, username and update-state writes are committed in batches
    within ``commit_interval`` seconds (50 ms by default; 0 commits each before its
    call returns), always in call order, so a killed process leaves a prefix of its
    writes. :meth:`save` also checkpoints, so what it covers survives a power cut too.
    Existing files written by any Pyrogram-family client are recognised by their
    tables and brought forward on open; one that other users can read is made
    private (0600) first, with a WARNING.

    :param name: the session name, a file name: the file is ``<workdir>/<name>.session``
        (a trailing ``.session`` is taken as that file name). Folders belong in ``workdir``.
    :param workdir: the folder of the file; by default the running script's folder, as
        for the clients' own ``workdir``. Created with mode 0700 if missing.
    :param layout: the ``usernames`` layout for a new file (see :class:`Layout`).
    :param lock: ``"exclusive"`` (default): one open storage per file; another process
        or object opening it gets :class:`SessionLocked` at once, naming the holder.
        ``"shared"``: several may open it; writes are serialised by SQLite (waiting up
        to ``busy_timeout`` seconds, then :class:`SessionLocked`), nothing is cached and
        ``commit_interval`` defaults to 0, so each sees the others' writes at once.
    :param busy_timeout: seconds to wait for another connection's write lock before
        raising :class:`SessionLocked` (``lock="shared"``).
    :param read_only: read the session without any lock or write: a file that needs
        migrating is brought forward in a private copy in memory, never on disk.
    :param options: ``username_ttl``, ``session_string``, ``peer_cache_size``,
        ``commit_interval`` (see :class:`~pyrogram_storage.Storage`).
    :raises TypeError: an argument of the wrong type, or a session string passed as the
        name or the workdir (it belongs in ``session_string=``; it is not repeated).
    :raises ValueError: a name with a path separator, NUL or ``..``, too long a name, a
        negative ``peer_cache_size`` or ``busy_timeout``, an unknown ``lock``.
    """

    default_commit_interval = 0.05

    def __init__(
        self,
        name: str,
        workdir: str | os.PathLike[str] | None = None,
        *,
        layout: Layout | str = Layout.UPSTREAM,
        lock: str = "exclusive",
        busy_timeout: float = 5.0,
        **options: Any,
    ) -> None:
        name = _checked_name(name)
        folder = _checked_workdir(workdir)
        if lock not in ("exclusive", "shared"):
            raise ValueError(f"lock must be 'exclusive' or 'shared', not {lock!r}")
        if lock == "shared":
            # Others read the file: what returned must be in it already.
            options.setdefault("commit_interval", 0)
        self.path = folder / (name + FILE_EXTENSION)
        self.lock_path = Path(f"{self.path}.lock")
        self.lock = lock
        self._lock_fd: int | None = None
        super().__init__(name, str(self.path), layout=layout, busy_timeout=busy_timeout, **options)

    def __repr__(self) -> str:
        return f"FileStorage(name={self.name!r}, path={str(self.path)!r})"

    @classmethod
    def from_location(cls, location: str, **options: Any) -> FileStorage:
        """Build the storage of ``PATH.session``, ``PATH`` or ``file:PATH``."""
        text = location[len("file:") :] if location.startswith("file:") else location
        path = Path(text).expanduser()
        name = (
            path.name[: -len(FILE_EXTENSION)] if path.name.endswith(FILE_EXTENSION) else path.name
        )
        if not name or name in (".", "..") or text.endswith(("/", os.sep)):
            raise InvalidValueError(
                f"{location!r} names no session file (expected NAME{FILE_EXTENSION})"
            )
        return cls(name, path.parent, **options)

    @property
    def location(self) -> str:
        return str(self.path)

    def _sole_writer(self) -> bool:
        return self.lock == "exclusive" and not self.read_only

    # -- hooks of the SQLite engine (they run on the storage's worker lane) -------------------

    def _start(self) -> None:
        if self.read_only:
            if not self.path.is_file():
                raise SessionNotFoundError(f"no such session file: {self.path}")
            _check_header(self.path)
            return
        _make_workdir(self.path.parent)
        self._lock_fd = _acquire(self.lock_path, self.path, shared=self.lock == "shared")
        try:
            self._create_or_check()
        except BaseException:
            self._stop()
            raise

    def _stop(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            _release_lock(fd, self.lock_path)

    def _connect(self) -> sqlite3.Connection:
        if not self.read_only:
            return super()._connect()
        return _connect_read_only(self.path, self.busy_timeout)

    def _connect_reader(self) -> sqlite3.Connection | None:
        if self.read_only:
            return None  # the writer connection is read-only already, and used on the loop
        reader = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=0
        )
        try:
            sqlite_schema.secure(reader)
            reader.execute("PRAGMA query_only = ON")
        except BaseException:
            reader.close()
            raise
        return reader

    def _prepare_schema(self, db: sqlite3.Connection) -> sqlite3.Connection:
        if not self.read_only:
            return super()._prepare_schema(db)
        if sqlite_schema.is_current(db, self.database):
            self.layout = sqlite_schema.current_layout(db)
            return db
        # A client's file, or an older schema: bring a private copy in memory forward,
        # never the file itself.
        copy = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        try:
            db.backup(copy)
            sqlite_schema.secure(copy)
            self.layout = sqlite_schema.prepare(copy, self.database, self.layout)
        except BaseException:
            copy.close()
            raise
        db.close()
        return copy

    def _configure(self, db: sqlite3.Connection) -> None:
        if self.read_only:
            return
        db.execute("PRAGMA journal_mode = WAL").fetchall()
        db.execute("PRAGMA synchronous = NORMAL")
        # Checkpoints are what fsync in WAL mode; fewer, larger ones (and one in save())
        # keep bulk peer writes cheap.
        db.execute("PRAGMA wal_autocheckpoint = 10000")

    def _error(self, exc: sqlite3.Error) -> StorageError:
        full = _disk_full(exc, self.path.parent, str(self.path))
        return full if full is not None else super()._error(exc)

    def _create_or_check(self) -> None:
        for suffix in ("", *_SIDE_FILES):
            if os.path.islink(f"{self.path}{suffix}"):
                raise _link_refused(f"{self.path}{suffix}")
        _remove_abandoned_scratch(self.path)
        if os.path.lexists(self.path):
            if not stat.S_ISREG(os.lstat(self.path).st_mode):
                raise StorageError(
                    f"{self.path} is not a file (a folder, a pipe or a device); "
                    "the session file must be a regular file"
                )
            _make_private(self.path)
            _check_header(self.path)
            return
        try:
            self._create()
        except (OSError, sqlite3.Error) as exc:
            full = _disk_full(exc, self.path.parent, f"cannot create {self.path}")
            if full is not None:
                raise full from exc
            if isinstance(exc, sqlite3.Error):
                raise BackendError(f"cannot create {self.path}: {exc}") from exc
            raise

    def _create(self) -> None:
        # Built aside and linked into place whole, so a crash never leaves a half-made file;
        # created 0600 here so SQLite never creates it with the umask's mode.
        scratch = self.path.with_name(f".{self.path.name}.new-{os.getpid()}-{secrets.token_hex(4)}")
        try:
            fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            try:
                os.fchmod(fd, 0o600)  # exactly, whatever the umask took off
            finally:
                os.close(fd)
            db = sqlite3.connect(scratch, isolation_level=None)
            try:
                create_schema(db, self.layout)
                db.execute("PRAGMA journal_mode = WAL").fetchall()
                # A read in WAL mode builds the shared-memory index, as every open will:
                # a disk without room for it fails here, before the file is in place.
                db.execute("SELECT COUNT(*) FROM sessions").fetchall()
            finally:
                db.close()
            with open(scratch, "rb") as file:
                os.fsync(file.fileno())
            try:
                os.link(scratch, self.path)
            except FileExistsError:
                if os.path.islink(self.path):
                    raise _link_refused(self.path) from None
                _check_header(self.path)  # another opener won the race; use its file
            else:
                log.debug("created %s", self.path)
        finally:
            for suffix in ("", *_SIDE_FILES):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{scratch}{suffix}")

    async def _delete(self) -> None:
        """Remove the file with its WAL and journal side files, under the session lock.

        :raises SessionLocked: another storage has the session open; nothing was removed.
        """
        path, lock_path = self.path, self.lock_path

        def remove() -> None:
            if not path.parent.is_dir():
                return
            # Under the lock: a storage that still had the file open would write on into
            # an unlinked file and lose everything. Releasing it removes the lock file.
            fd = _acquire(lock_path, path, shared=False)
            try:
                for suffix in ("", *_SIDE_FILES):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(f"{path}{suffix}")
            finally:
                _release_lock(fd, lock_path)
            log.debug("deleted %s", path)

        await self._off_loop(remove)


def _checked_name(name: object) -> str:
    """Return the session name ``name`` gives, or raise saying what belongs where."""
    if not isinstance(name, str):
        raise TypeError(f"the session name must be str, not {type(name).__name__}")
    if name.endswith(FILE_EXTENSION):
        name = name[: -len(FILE_EXTENSION)]
    if looks_like_session_string(name):
        raise TypeError(
            "FileStorage's first argument is the session name, and this looks like a "
            'session string: pass it as session_string=, e.g. FileStorage("my_account", '
            "session_string=...) (it was not stored anywhere)"
        )
    shown = _shown(name)
    if any(char in name for char in ("/", "\\", "\x00")):
        folder, _, file = name.replace("\\", "/").rpartition("/")
        hint = "workdir="
        if file and "\x00" not in name and len(name) <= 60:
            hint = f"FileStorage({file!r}, workdir={folder or '/'!r})"
        raise ValueError(
            f"the session name {shown} is not a plain file name (it has a path separator "
            f"or NUL); put the folder in workdir=, e.g. {hint}"
        )
    if name in ("", ".", ".."):
        raise ValueError(
            f"{shown} is not a session name; give a file name (such as 'my_account') and "
            "put the folder in workdir="
        )
    try:
        size = len(os.fsencode(name))
    except UnicodeError:
        raise ValueError(f"the session name {shown} cannot be a file name here") from None
    if size > MAX_NAME_BYTES:
        raise ValueError(
            f"the session name {shown} is {size} bytes long; at most {MAX_NAME_BYTES} fit "
            "in a file name"
        )
    return name


def _checked_workdir(workdir: object) -> Path:
    if workdir is None:
        return default_workdir()
    if not isinstance(workdir, (str, os.PathLike)):
        raise TypeError(f"workdir must be str or a path, not {type(workdir).__name__}")
    text = os.fspath(workdir)
    if not isinstance(text, str):
        raise TypeError(f"workdir must be str or a path, not {type(text).__name__}")
    if looks_like_session_string(text):
        raise TypeError(
            "FileStorage's second argument is workdir, the folder of the file, and this "
            "looks like a session string: pass it as session_string=, e.g. "
            'FileStorage("my_account", session_string=...) (it was not stored anywhere)'
        )
    if "\x00" in text:
        raise ValueError("workdir contains a NUL character")
    return Path(text)


def _shown(text: str) -> str:
    return repr(text) if len(text) <= 60 else repr(text[:12]) + "…"


def _make_workdir(folder: Path) -> None:
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
            full = _disk_full(exc, path.parent, f"cannot create the folder {path}")
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
        raise StorageError(f"workdir {folder} is not a folder")


def _make_private(path: Path) -> None:
    """Take group and other permissions off the session file and its side files we own."""
    for suffix in ("", *_SIDE_FILES):
        name = f"{path}{suffix}"
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            continue
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise _link_refused(name) from None
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
                log.warning(
                    "%s had mode %04o (other users could read it); changed it to %04o: a "
                    "session grants full access to the account",
                    name,
                    mode,
                    mode & 0o700,
                )
        finally:
            os.close(fd)


def _connect_read_only(path: Path, timeout: float) -> sqlite3.Connection:
    """Open ``path`` for reading only: no lock file, no journal change, nothing written."""
    uri = path.resolve().as_uri()
    db = sqlite3.connect(
        f"{uri}?mode=ro", uri=True, isolation_level=None, check_same_thread=False, timeout=timeout
    )
    try:
        db.execute("SELECT COUNT(*) FROM sqlite_master").fetchall()
        return db
    except sqlite3.OperationalError:
        db.close()
    # A WAL file in a read-only folder: SQLite cannot make its shared-memory file. Read
    # the main file as it is (what the last checkpoint stored).
    if _non_empty(f"{path}-wal"):
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


def _remove_abandoned_scratch(path: Path) -> None:
    """Remove files that processes killed while creating ``path`` left aside.

    Only regular files whose name carries the pid of a dead process are removed;
    anything else with a similar name (a folder, a link) is not ours and is left alone.
    """
    for scratch in path.parent.glob(f".{glob.escape(path.name)}.new-*"):
        pid = scratch.name.rpartition(".new-")[2].split("-")[0]
        if not (pid.isascii() and pid.isdigit() and 0 < int(pid) < 2**31) or _alive(int(pid)):
            continue
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISREG(os.lstat(scratch).st_mode):
                os.unlink(scratch)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_MAGIC = b"SQLite format 3\x00"


def _check_header(path: Path) -> None:
    """Refuse empty, foreign and truncated files before SQLite touches them."""
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        header = file.read(100)
    untouched = "the file was left untouched"
    if size == 0:
        raise CorruptSessionError(
            f"{path} is empty (0 bytes): a truncated or unfinished session; {untouched}. "
            "Delete it to start a new session, or restore it from a backup"
        )
    if len(header) < 100 or not header.startswith(_MAGIC):
        raise CorruptSessionError(f"{path} is not a SQLite database; {untouched}")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    # The page count in the header is only trusted when its change counters agree, and
    # only without a WAL: a checkpoint cut short leaves pages that the WAL still holds.
    # A hot rollback journal likewise: a commit cut short may have written the header
    # before the pages it counts, and SQLite rolls it back on open.
    recovering = any(_non_empty(f"{path}{suffix}") for suffix in ("-wal", "-journal"))
    if not recovering and header[24:28] == header[92:96] and size < pages * page_size:
        raise CorruptSessionError(
            f"{path} is truncated: {size} bytes of {pages * page_size}; {untouched}"
        )


def _non_empty(name: str) -> bool:
    try:
        return os.lstat(name).st_size > 0
    except FileNotFoundError:
        return False
