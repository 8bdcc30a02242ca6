"""Bot state in one JSON file, for small state: atomic replace, fsync, a ``.bak`` copy.

Every write rewrites the whole file: the new text goes to a temporary 0600 file, is
fsynced, the current file is kept as ``PATH.bak`` (a hard link, no copy), the new one
renamed over ``PATH`` and the folder fsynced; only then does the write return. Writes
made while one is being written share the next one (group commit). A crash leaves
either the old or the new file whole; a main file damaged by other means is read from
``PATH.bak``. One process at a time: ``PATH.lock`` is held while the store is open.

The file safety is the session files' (:mod:`pyrogram_storage._files`): folders made
0700 and files 0600 whatever the umask, a symbolic link in place of the file, its
backup or its lock refused, a hard-linked lock file refused, a full disk reported as
:class:`DiskFullError` with the file unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import secrets
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

from .. import _files
from .._worker import Lane
from ..errors import CorruptDataError, NotFoundError, StorageError
from .base import (
    KEEP,
    SOLE_WRITER_KEYS,
    KVStore,
    Merging,
    Raw,
    Record,
    V,
    _Keep,
    add_to_counter,
    is_live,
    path_of,
    scan_entries,
    split_location,
)
from .errors import InvalidArgumentError
from .pattern import Pattern
from .serializer import Serializer

__all__ = ["JSONFileKV"]

log = logging.getLogger(__name__)

FORMAT = "pyrogram-storage-kv"
VERSION = 1

WORDING = _files.Wording(
    in_use=(
        "{path} is open in another process or object ({holder}); a JSON file has one "
        "writer at a time (use SQLiteKV to share state between processes)"
    ),
    held_exclusively=_files.STORE.held_exclusively,
    read_only_folder=_files.STORE.read_only_folder,
    link=_files.STORE.link,
    made_private=_files.STORE.made_private,
    folder=_files.STORE.folder,
)


class _Unreadable(Exception):
    pass


def _parse(text: bytes) -> dict[str, dict[str, list[Any]]]:
    """Return the namespaces of a store file, or raise _Unreadable."""
    try:
        doc = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _Unreadable(f"not JSON: {exc}") from None
    except RecursionError:
        raise _Unreadable("not JSON this library wrote: nested too deeply") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise _Unreadable("not a pyrogram-storage key-value file")
    if doc.get("version") != VERSION:
        raise _Unreadable(f"format version {doc.get('version')!r}, this code reads {VERSION}")
    spaces = doc.get("namespaces")
    if not isinstance(spaces, dict):
        raise _Unreadable("no namespaces")
    for entries in spaces.values():
        if not isinstance(entries, dict):
            raise _Unreadable("a namespace is not an object")
        for entry in entries.values():
            if (
                not isinstance(entry, list)
                or len(entry) != 2
                or type(entry[0]) not in (str, int)
                or not (entry[1] is None or type(entry[1]) in (int, float))
            ):
                raise _Unreadable("an entry is not [value, expiry]")
    return spaces


class JSONFileKV(KVStore[V]):
    """Bot state in a JSON file: persistent, readable, one process, for small state.

    :param path: the file (created, mode 0600, with its folders, on the first write).
        A relative path is taken from the current directory, as ``open()`` takes it.
    :param create: False: only open a store that exists (:class:`NotFoundError`
        otherwise; nothing is created), as the command line reads a SOURCE.
    :raises InvalidArgumentError: ``path`` is not a path.
    """

    exclusive = True
    creates_files = True
    _answers_from_memory = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        create: bool = True,
        namespace: str | None = None,
        default_ttl: float | None = None,
        serializer: Serializer | None = None,
        sole_writer: bool = False,
        sole_writer_keys: int = SOLE_WRITER_KEYS,
        commit_interval: float = 0.0,
    ) -> None:
        super().__init__(
            namespace=namespace,
            default_ttl=default_ttl,
            serializer=serializer,
            sole_writer=sole_writer,
            sole_writer_keys=sole_writer_keys,
            commit_interval=commit_interval,
        )
        if not isinstance(path, (str, os.PathLike)) or not str(path):
            raise InvalidArgumentError(f"path is a str or path, not {path!r}")
        self.path = Path(path)
        self.backup_path = Path(f"{self.path}.bak")
        self.lock_path = Path(f"{self.path}.lock")
        self.create = bool(create)
        self._lane = Lane()
        self._spaces: dict[str, dict[str, list[Any]]] = {}
        self._data: dict[str, list[Any]] = {}
        self._lock_fd: int | None = None
        self._main_bad = False
        self._pending: asyncio.Future[None] | None = None
        self._writer: asyncio.Task[None] | None = None

    @classmethod
    def from_location(cls, location: str, **options: Any) -> JSONFileKV[Any]:
        """Build the store of ``json:PATH`` or a bare ``PATH.json`` (``#NAMESPACE`` optional)."""
        body, options = split_location(location, options)
        return cls(path_of(body, ("json",), "json:state.json"), **options)

    def __repr__(self) -> str:
        return f"JSONFileKV({str(self.path)!r}, namespace={self.namespace!r})"

    def _translate(self, what: str, exc: Exception) -> StorageError:
        full = _files.disk_full(exc, self.path.parent, f"cannot {what} in {self.path}")
        return full if full is not None else super()._translate(what, exc)

    # -- lifecycle ------------------------------------------------------------------

    async def _open(self) -> None:
        self._spaces, self._main_bad = await self._lane.setup(self._load, lambda _: self._unlock())
        self._data = self._spaces.setdefault(self.namespace, {})

    def _load(self) -> tuple[dict[str, dict[str, list[Any]]], bool]:
        if not self.create and not os.path.lexists(self.path):
            raise NotFoundError(f"no such JSON store: {self.path}")
        _files.make_private_folder(self.path.parent, WORDING)
        _files.refuse_links(self.path, (".bak",), WORDING)
        self._lock_fd = _files.acquire_lock(
            self.lock_path, self.path, shared=False, wording=WORDING, owner=self
        )
        try:
            # Under the lock nobody else writes: scratch files of dead writers are leftovers.
            _files.remove_abandoned_scratch(self.path)
            return self._read_files()
        except BaseException:
            self._unlock()
            raise

    def _read_files(self) -> tuple[dict[str, dict[str, list[Any]]], bool]:
        try:
            main = _read(self.path)
        except FileNotFoundError:
            return {}, False
        try:
            return _parse(main), False
        except _Unreadable as problem:
            reason = str(problem)
        spaces = _parse_backup(self.backup_path, reason)
        log.warning("%s cannot be read (%s); using %s", self.path, reason, self.backup_path.name)
        return spaces, True

    def _unlock(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            _files.release_lock(fd, self.lock_path)

    def _abandon(self) -> bool:
        if not self._lane.drained():
            return False
        writer = self._writer
        if (writer is not None and not writer.done()) or self._pending is not None:
            return False  # a write under way when its event loop ended
        self._writer = None
        self._unlock()
        return True

    async def _close(self) -> None:
        writer = self._writer
        if writer is not None:
            with contextlib.suppress(Exception):
                await writer
        if self._lock_fd is not None:
            await self._lane.run(self._unlock)

    # -- writing --------------------------------------------------------------------

    async def _commit(self) -> None:
        """Return once the current state (with the caller's change) is on disk."""
        pending = self._pending
        if pending is None:
            pending = self._pending = asyncio.get_running_loop().create_future()
            if self._writer is None:
                self._writer = asyncio.get_running_loop().create_task(self._write_all())
        await asyncio.shield(pending)

    async def _write_all(self) -> None:
        try:
            while self._pending is not None:
                done, self._pending = self._pending, None
                try:
                    text = self._snapshot()
                    await self._lane.run(lambda t=text: self._write(t))  # type: ignore[misc]
                except BaseException as exc:
                    # Whatever is not on disk is undone, and every waiting write fails:
                    # those made while the file is read again too (the reload drops them).
                    await self._reload()
                    failed = [done] + ([self._pending] if self._pending is not None else [])
                    self._pending = None
                    for future in failed:
                        if not future.done():
                            future.set_exception(exc)
                    return
                if not done.done():
                    done.set_result(None)
        finally:
            self._writer = None

    async def _reload(self) -> None:
        try:
            self._spaces, self._main_bad = await self._lane.run(self._read_files)
        except (OSError, StorageError):
            return
        self._data = self._spaces.setdefault(self.namespace, {})

    def _snapshot(self) -> bytes:
        now = self.clock()
        for key in [k for k, entry in self._data.items() if not is_live(entry[1], now)]:
            del self._data[key]
        spaces = {name: entries for name, entries in self._spaces.items() if entries}
        doc = {"format": FORMAT, "version": VERSION, "namespaces": spaces}
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()

    def _write(self, text: bytes) -> None:
        folder = self.path.parent
        # Named as remove_abandoned_scratch() expects: a writer killed here leaves it behind.
        scratch = folder / f".{self.path.name}.new-{os.getpid()}-{secrets.token_hex(4)}"
        fd = _files.create_private(scratch)
        try:
            try:
                view = memoryview(text)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            if not self._main_bad and os.path.lexists(self.path):
                link = Path(f"{scratch}-bak")
                os.link(self.path, link)  # of the file itself: a link there was refused on open
                os.replace(link, self.backup_path)
            os.replace(scratch, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                scratch.unlink()
            raise
        self._main_bad = False
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    # -- primitives -----------------------------------------------------------------

    def _get_now(self, key: str) -> Record | Literal[_Keep.KEEP] | None:
        entry = self._data.get(key)
        return None if entry is None else (entry[0], entry[1])

    async def _get(self, key: str) -> Record | None:
        entry = self._data.get(key)
        return None if entry is None else (entry[0], entry[1])

    def _live(self, key: str, now: float) -> list[Any] | None:
        entry = self._data.get(key)
        return entry if entry is not None and is_live(entry[1], now) else None

    async def _set(self, key: str, raw: Raw, expires: float | None) -> None:
        self._data[key] = [raw, expires]
        await self._commit()

    async def _delete(self, key: str) -> Record | None:
        entry = self._data.pop(key, None)
        if entry is None:
            return None
        await self._commit()
        return entry[0], entry[1]

    async def _touch(self, key: str, expires: float | None, now: float) -> bool:
        entry = self._live(key, now)
        if entry is None:
            return False
        self._data[key] = [entry[0], expires]
        await self._commit()
        return True

    async def _cas(
        self,
        key: str,
        expected: Raw | None,
        raw: Raw,
        expires: float | Literal[_Keep.KEEP] | None,
        now: float,
    ) -> bool:
        entry = self._live(key, now)
        if expected is None:
            if entry is not None:
                return False
        elif entry is None or type(entry[0]) is not type(expected) or entry[0] != expected:
            return False
        if expires is KEEP:
            expires = None if entry is None else entry[1]
        self._data[key] = [raw, expires]
        await self._commit()
        return True

    async def _increment(
        self, key: str, amount: int, expires: float | None, reset: bool, now: float
    ) -> int:
        entry = self._live(key, now)
        if entry is None:
            total = add_to_counter(key, None, amount)
            self._data[key] = [total, expires]
        else:
            total = add_to_counter(key, entry[0], amount)
            self._data[key] = [total, expires if reset else entry[1]]
        await self._commit()
        return total

    async def _merge(self, key: str, merging: Merging, expires: float | None, now: float) -> Raw:
        entry = self._live(key, now)
        raw = merging.apply(None if entry is None else entry[0])
        self._data[key] = [raw, expires]
        await self._commit()
        return raw

    async def _scan(
        self, pattern: Pattern, values: bool, now: float
    ) -> AsyncIterator[list[tuple[str, Raw | None, float | None]]]:
        async for batch in scan_entries(self._data, pattern.prefix, values):
            yield batch

    async def _ping(self) -> None:
        await self._lane.run(lambda: os.stat(self.path.parent))

    async def _clear(self, now: float) -> int:
        live = sum(1 for entry in self._data.values() if is_live(entry[1], now))
        if self._data:
            self._data.clear()
            await self._commit()
        return live


def _read(path: Path) -> bytes:
    """Read a store file without following a link planted in its place."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _files.link_refused(path, WORDING) from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise StorageError(f"{path} is not a file (a folder, a pipe or a device)")
        chunks: list[bytes] = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


def _parse_backup(backup: Path, reason: str) -> dict[str, dict[str, list[Any]]]:
    main = backup.with_name(backup.name[: -len(".bak")])
    try:
        return _parse(_read(backup))
    except FileNotFoundError:
        raise CorruptDataError(
            f"{main} cannot be read ({reason}) and there is no {backup.name}; both were left "
            "untouched"
        ) from None
    except _Unreadable as problem:
        raise CorruptDataError(
            f"{main} cannot be read ({reason}), nor {backup.name} ({problem}); both were left "
            "untouched"
        ) from None
