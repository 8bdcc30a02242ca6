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

from .base import USERNAME_TTL
from .errors import CorruptSessionError, SessionLocked
from .sqlite import DEFAULT_PEER_CACHE_SIZE, SQLiteStorage
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
    WAL mode with ``synchronous=NORMAL``: every call that returned has committed and
    survives the process being killed; :meth:`save` also checkpoints, so what it
    covers survives a power cut too. Existing files written by any Pyrogram-family
    client are recognised by their tables and brought forward on open.

    :param name: the session name; the file is ``<workdir>/<name>.session``.
    :param workdir: the folder of the file (created, mode 0700, if missing).
    :param layout: the ``usernames`` layout for a new file (see :class:`Layout`).
    :param lock: ``"exclusive"`` (default): one open storage per file; another process
        or object opening it gets :class:`SessionLocked` at once, naming the holder.
        ``"shared"``: several may open it; writes are serialised by SQLite (waiting up
        to ``busy_timeout`` seconds, then :class:`SessionLocked`) and nothing is cached,
        so each sees the others' writes.
    :param session_string: import this session string into the file on the first open.
    """

    def __init__(
        self,
        name: str,
        workdir: str | os.PathLike[str] = ".",
        *,
        layout: Layout | str = Layout.UPSTREAM,
        peer_cache_size: int = DEFAULT_PEER_CACHE_SIZE,
        lock: str = "exclusive",
        busy_timeout: float = 5.0,
        username_ttl: float | None = USERNAME_TTL,
        session_string: str | None = None,
    ) -> None:
        if lock not in ("exclusive", "shared"):
            raise ValueError(f"lock must be 'exclusive' or 'shared', not {lock!r}")
        self.path = Path(workdir) / (name + FILE_EXTENSION)
        self.lock_path = Path(f"{self.path}.lock")
        self.lock = lock
        self._lock_fd: int | None = None
        super().__init__(
            name,
            str(self.path),
            layout=layout,
            peer_cache_size=peer_cache_size if lock == "exclusive" else 0,
            busy_timeout=busy_timeout,
            username_ttl=username_ttl,
            session_string=session_string,
        )

    def __repr__(self) -> str:
        return f"FileStorage(name={self.name!r}, path={str(self.path)!r})"

    def _prepare(self) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._shared = self.lock == "shared"
        self._lock_fd = _acquire(self.lock_path, self.path, shared=self._shared)
        try:
            self._create_or_check()
        except BaseException:
            self._release()
            raise

    def _release(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            _release_lock(fd, self.lock_path)

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

    def _configure(self, conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA journal_mode = WAL").fetchall()
        conn.execute("PRAGMA synchronous = NORMAL")
        # Checkpoints are what fsync in WAL mode; fewer, larger ones (and one in save())
        # keep bulk peer writes cheap.
        conn.execute("PRAGMA wal_autocheckpoint = 10000")

    async def delete(self) -> None:
        """Close the storage and remove the file with its WAL and journal side files.

        :raises SessionLocked: another storage has the session open; nothing was removed.
        """
        await self.close()
        if not self.path.parent.is_dir():
            return
        # Under the lock: a storage that still had the file open would write on into an
        # unlinked file and lose everything. Releasing it removes the lock file.
        fd = _acquire(self.lock_path, self.path, shared=False)
        try:
            for suffix in ("", *_SIDE_FILES):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{self.path}{suffix}")
        finally:
            _release_lock(fd, self.lock_path)
        log.debug("deleted %s", self.path)


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
