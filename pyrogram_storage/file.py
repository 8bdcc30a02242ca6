"""A session kept in ``<workdir>/<name>.session``."""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import logging
import os
import secrets
import socket
import sqlite3
import time
from pathlib import Path
from typing import Any

from . import sqlite_schema
from .errors import CorruptSessionError, InvalidValueError, SessionLocked, SessionNotFoundError
from .sqlite import SQLiteStorage
from .sqlite_schema import Layout, create_schema

__all__ = ["FILE_EXTENSION", "FileStorage"]

log = logging.getLogger(__name__)

FILE_EXTENSION = ".session"
_SIDE_FILES = ("-wal", "-shm", "-journal")


def _acquire(lock_path: Path, path: Path, *, shared: bool) -> int:
    """Take the session's lock file, or raise SessionLocked naming who holds it.

    Exclusive openers take an exclusive flock, shared ones a shared flock, so the two
    modes never mix on one file. The kernel drops the lock when the process dies.
    """
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
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
            same = os.fstat(fd).st_ino == os.stat(lock_path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    info = {"pid": os.getpid(), "host": socket.gethostname(), "since": int(time.time())}
    if not shared:
        os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(info).encode().ljust(256), 0)
    return fd


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
    try:
        info = json.loads(os.pread(fd, 4096, 0).strip() or b"{}")
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(int(info["since"])))
        return f"pid {int(info['pid'])} on {str(info['host'])!r} since {since}"
    except (ValueError, KeyError, TypeError):
        return "another process or storage object"


class FileStorage(SQLiteStorage):
    """A session in a SQLite file, the same file name every client uses.

    The file is created with mode 0600 (it grants full access to the account), in
    WAL mode with ``synchronous=NORMAL``. Session fields are committed before their
    call returns; peer, username and update-state writes are committed in batches
    within ``commit_interval`` seconds (50 ms by default; 0 commits each before its
    call returns), always in call order, so a killed process leaves a prefix of its
    writes. :meth:`save` also checkpoints, so what it covers survives a power cut too.
    Existing files written by any Pyrogram-family client are recognised by their
    tables and brought forward on open.

    :param name: the session name; the file is ``<workdir>/<name>.session``.
    :param workdir: the folder of the file (created, mode 0700, if missing).
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
    """

    default_commit_interval = 0.05

    def __init__(
        self,
        name: str,
        workdir: str | os.PathLike[str] = ".",
        *,
        layout: Layout | str = Layout.UPSTREAM,
        lock: str = "exclusive",
        busy_timeout: float = 5.0,
        **options: Any,
    ) -> None:
        if lock not in ("exclusive", "shared"):
            raise ValueError(f"lock must be 'exclusive' or 'shared', not {lock!r}")
        if lock == "shared":
            # Others read the file: what returned must be in it already.
            options.setdefault("commit_interval", 0)
        self.path = Path(workdir) / (name + FILE_EXTENSION)
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
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
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

    def _create_or_check(self) -> None:
        _remove_abandoned_scratch(self.path)
        if self.path.exists():
            _check_header(self.path)
            return
        # Built aside and linked into place whole, so a crash never leaves a half-made file;
        # created 0600 here so SQLite never creates it with the umask's mode.
        scratch = self.path.with_name(f".{self.path.name}.new-{os.getpid()}-{secrets.token_hex(4)}")
        os.close(os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        try:
            db = sqlite3.connect(scratch, isolation_level=None)
            try:
                create_schema(db, self.layout)
                db.execute("PRAGMA journal_mode = WAL").fetchall()
            finally:
                db.close()
            with open(scratch, "rb") as file:
                os.fsync(file.fileno())
            try:
                os.link(scratch, self.path)
            except FileExistsError:
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


def _connect_read_only(path: Path, timeout: float) -> sqlite3.Connection:
    """Open ``path`` for reading only: no lock file, no journal change, nothing written."""
    uri = path.resolve().as_uri()
    try:
        db = sqlite3.connect(
            f"{uri}?mode=ro",
            uri=True,
            isolation_level=None,
            check_same_thread=False,
            timeout=timeout,
        )
        db.execute("SELECT COUNT(*) FROM sqlite_master").fetchall()
        return db
    except sqlite3.OperationalError:
        # A WAL file in a read-only folder: SQLite cannot make its shared-memory file.
        # Read the main file as it is (what the last checkpoint stored).
        if os.path.exists(f"{path}-wal") and os.path.getsize(f"{path}-wal") > 0:
            log.warning(
                "%s: reading without its write-ahead log (the folder is read-only); "
                "writes since the last checkpoint are not shown",
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
    """Remove files that processes killed while creating ``path`` left aside."""
    for scratch in path.parent.glob(f".{glob.escape(path.name)}.new-*"):
        pid = scratch.name.rpartition(".new-")[2].split("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(FileNotFoundError):
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
    wal = Path(f"{path}-wal")
    recovering = wal.exists() and wal.stat().st_size > 0
    if not recovering and header[24:28] == header[92:96] and size < pages * page_size:
        raise CorruptSessionError(
            f"{path} is truncated: {size} bytes of {pages * page_size}; {untouched}"
        )
