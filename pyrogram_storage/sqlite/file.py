"""A session kept in ``<workdir>/<name>.session``."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import sqlite3
import stat
import sys
from pathlib import Path
from typing import Any

from .._files import (
    acquire_lock,
    disk_full,
    link_refused,
    make_private,
    make_private_folder,
    reading_connection,
    release_lock,
    remove_abandoned_scratch,
    report_private,
    undo_private,
)
from ..errors import (
    BackendError,
    CorruptSessionError,
    InvalidTypeError,
    InvalidValueError,
    SessionNotFoundError,
    StorageError,
)
from ..session_string import looks_like_session_string
from . import schema as sqlite_schema
from .engine import SQLiteStorage
from .schema import Layout

__all__ = ["FILE_EXTENSION", "FileStorage", "default_workdir"]

log = logging.getLogger(__name__)

FILE_EXTENSION = ".session"
"""The suffix of a session file, added to a name that lacks it."""
_SIDE_FILES = ("-wal", "-shm", "-journal")
MAX_NAME_BYTES = 200
"""The longest session name: its scratch file (``.NAME.session.new-PID-TOKEN-journal``)
must still fit in the 255 bytes a file name may have."""


def default_workdir() -> Path:
    """Return the folder every client keeps its session files in by default.

    It is the running script's folder (``Path(sys.argv[0]).parent``, ``.`` in an
    interactive session), computed the way the clients compute their ``WORKDIR``.
    """
    return Path(sys.argv[0] if sys.argv else "").parent


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

    With ``lock="exclusive"``, closing a session of 5,000 peers or more leaves in the
    file a snapshot of every peer's id, access hash and type (table
    ``peer_ids_snapshot``, 17 bytes a peer), which the next open takes back so that id
    lookups answer from memory at once. Triggers delete it on any write to ``peers``
    by another program (a client opening the file), so it is never read stale.

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
            raise InvalidValueError(f"lock must be 'exclusive' or 'shared', not {lock!r}")
        if lock == "shared":
            # Others read the file: what returned must be in it already.
            options.setdefault("commit_interval", 0)
        self.path = folder / (name + FILE_EXTENSION)
        self.lock_path = Path(f"{self.path}.lock")
        self.workdir_given = workdir is not None
        self.lock = lock
        self._lock_fd: int | None = None
        self._made_private: list[tuple[str, int, int]] = []
        super().__init__(name, str(self.path), layout=layout, busy_timeout=busy_timeout, **options)

    def __repr__(self) -> str:
        return f"FileStorage(name={self.name!r}, path={str(self.path)!r})"

    @classmethod
    def from_location(cls, location: str, **options: Any) -> FileStorage:
        """Build the storage of ``PATH.session``, ``PATH``, ``file:PATH`` or ``sqlite:PATH``."""
        scheme, colon, rest = location.partition(":")
        text = rest if colon and scheme.lower() in ("file", "sqlite") else location
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

    def follow_client(self, workdir: str | os.PathLike[str], name: str) -> None:
        """A client that keeps its session files as ``<workdir>/<name>.session`` is about
        to open this storage (the client glue calls this).

        Without a ``workdir`` of its own the storage takes the client's, as the client's
        built-in storage would. With one, or with another name, nothing changes; but if
        that would open a new, empty session while the client's own file exists (a bot
        moved over would have to log in again), a WARNING names both files.
        """
        if self.is_open:
            return
        folder = Path(workdir)
        if not self.workdir_given and folder != self.path.parent:
            log.debug("%r follows the client's workdir %s", self, folder)
            self.path = folder / self.path.name
            self.lock_path = Path(f"{self.path}.lock")
            self.database = str(self.path)
        theirs = folder / (str(name) + FILE_EXTENSION)
        if theirs != self.path and not self.path.exists() and theirs.is_file():
            log.warning(
                "%s does not exist, but the client's own session file %s does: a new "
                "session is made instead (a new login, unless it is given a session "
                "string). To use the existing one, give "
                "FileStorage(%r, workdir=%r), or copy it: pyrogram-storage copy %s %s",
                self.path,
                theirs,
                str(name),
                str(folder),
                theirs,
                self.path,
            )

    def _sole_writer(self) -> bool:
        return self.lock == "exclusive" and not self.read_only

    def _holds_write_lock(self) -> bool:
        return self._sole_writer()

    # -- hooks of the SQLite engine (they run on the storage's worker lane) -------------------

    def _start(self) -> None:
        if self.read_only:
            if not self.path.is_file():
                raise SessionNotFoundError(f"no such session file: {self.path}")
            _check_header(self.path)
            return
        make_private_folder(self.path.parent)
        self._lock_fd = acquire_lock(
            self.lock_path, self.path, shared=self.lock == "shared", owner=self
        )
        try:
            self._create_or_check()
        except BaseException:
            self._stop()
            raise

    def _stop(self) -> None:
        # Still pending here: the open failed, the file was not recognised. A refused file
        # keeps its mode as it keeps its bytes.
        changed, self._made_private = self._made_private, []
        undo_private(changed)
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            release_lock(fd, self.lock_path)

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
        changed, self._made_private = self._made_private, []
        report_private(changed)  # recognised: the change stays, and is said
        db.execute("PRAGMA journal_mode = WAL").fetchall()
        db.execute("PRAGMA synchronous = NORMAL")
        # Checkpoints are what fsync in WAL mode; fewer, larger ones (and one in save())
        # keep bulk peer writes cheap.
        db.execute("PRAGMA wal_autocheckpoint = 10000")

    def _error(self, exc: sqlite3.Error) -> StorageError:
        full = disk_full(exc, self.path.parent, str(self.path))
        return full if full is not None else super()._error(exc)

    def _create_or_check(self) -> None:
        for suffix in ("", *_SIDE_FILES):
            if os.path.islink(f"{self.path}{suffix}"):
                raise link_refused(f"{self.path}{suffix}")
        remove_abandoned_scratch(self.path)
        if os.path.lexists(self.path):
            if not stat.S_ISREG(os.lstat(self.path).st_mode):
                raise StorageError(
                    f"{self.path} is not a file (a folder, a pipe or a device); "
                    "the session file must be a regular file"
                )
            # Made private before SQLite opens it (closing a descriptor later would drop
            # SQLite's locks); reported once recognised, undone if it is refused.
            self._made_private = make_private(self.path, _SIDE_FILES)
            _check_header(self.path)
            return
        try:
            self._create()
        except (OSError, sqlite3.Error) as exc:
            full = disk_full(exc, self.path.parent, f"cannot create {self.path}")
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
                sqlite_schema.prepare(db, str(scratch), self.layout)  # the latest, whole
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
                    raise link_refused(self.path) from None
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
            fd = acquire_lock(lock_path, path, shared=False)
            try:
                for suffix in ("", *_SIDE_FILES):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(f"{path}{suffix}")
            finally:
                release_lock(fd, lock_path)
            log.debug("deleted %s", path)

        await self._off_loop(remove)


def _checked_name(name: object) -> str:
    """Return the session name ``name`` gives, or raise saying what belongs where."""
    if not isinstance(name, str):
        raise InvalidTypeError(f"the session name must be str, not {type(name).__name__}")
    if name.endswith(FILE_EXTENSION):
        name = name[: -len(FILE_EXTENSION)]
    if looks_like_session_string(name):
        raise InvalidTypeError(
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
        raise InvalidValueError(
            f"the session name {shown} is not a plain file name (it has a path separator "
            f"or NUL); put the folder in workdir=, e.g. {hint}"
        )
    if name in ("", ".", ".."):
        raise InvalidValueError(
            f"{shown} is not a session name; give a file name (such as 'my_account') and "
            "put the folder in workdir="
        )
    try:
        size = len(os.fsencode(name))
    except UnicodeError:
        raise InvalidValueError(f"the session name {shown} cannot be a file name here") from None
    if size > MAX_NAME_BYTES:
        raise InvalidValueError(
            f"the session name {shown} is {size} bytes long; at most {MAX_NAME_BYTES} fit "
            "in a file name"
        )
    return name


def _checked_workdir(workdir: object) -> Path:
    if workdir is None:
        return default_workdir()
    if not isinstance(workdir, (str, os.PathLike)):
        raise InvalidTypeError(f"workdir must be str or a path, not {type(workdir).__name__}")
    text = os.fspath(workdir)
    if not isinstance(text, str):
        raise InvalidTypeError(f"workdir must be str or a path, not {type(text).__name__}")
    if looks_like_session_string(text):
        raise InvalidTypeError(
            "FileStorage's second argument is workdir, the folder of the file, and this "
            "looks like a session string: pass it as session_string=, e.g. "
            'FileStorage("my_account", session_string=...) (it was not stored anywhere)'
        )
    if "\x00" in text:
        raise InvalidValueError("workdir contains a NUL character")
    return Path(text)


def _shown(text: str) -> str:
    # A long name may be a secret pasted in the wrong place: none of it is shown.
    return repr(text) if len(text) <= 60 else f"of {len(text)} characters"


def _connect_read_only(path: Path, timeout: float) -> sqlite3.Connection:
    """Open ``path`` for reading only: no lock file, no journal change, nothing written."""
    return reading_connection(path, timeout)


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
