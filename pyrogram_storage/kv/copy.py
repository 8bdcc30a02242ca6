"""Copy every key of one store's namespace to another store, any backend to any backend."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from ..errors import TargetNotEmptyError
from .base import KVStore

__all__ = ["copy"]

Progress = Callable[[int, int], None]
_CHUNK = 50  # keys written concurrently (the Redis drivers' pools cap concurrency)


@contextlib.asynccontextmanager
async def _opened(store: KVStore[Any]) -> AsyncIterator[KVStore[Any]]:
    """Use an open store as it is; open a closed one for the copy and close it after."""
    if store.is_open:
        yield store
        return
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def copy(
    source: KVStore[Any],
    target: KVStore[Any],
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> int:
    """Copy the live keys of ``source`` to ``target``, each with its remaining TTL.

    Values are read with the source's serializer and written with the target's. Stores
    that are not open are opened for the copy and closed afterwards.

    :param overwrite: allow a target that already holds keys: keys present in both get
        the source's value, the target's other keys stay.
    :param progress: called as ``progress(done, total)`` after each batch.
    :return: how many keys were copied (keys that expire during the copy are skipped).
    :raises TargetNotEmptyError: the target holds keys and ``overwrite`` is false.
    """
    if source is target:
        raise TargetNotEmptyError("source and target are the same store")
    async with _opened(source), _opened(target):
        if not overwrite:
            async for key in target.keys():
                raise TargetNotEmptyError(
                    f"{target!r} already holds keys (e.g. {key!r}); pass overwrite=True "
                    "(--overwrite on the command line) to copy over them"
                )
        total = 0
        if progress is not None:
            async for _ in source.keys():
                total += 1
            progress(0, total)
        copied = 0
        chunk: list[tuple[str, Any, float | None]] = []

        async def flush() -> None:
            nonlocal copied
            # Written together: a file store commits them at once, a server pipelines them.
            await asyncio.gather(*(target._put(key, value, when) for key, value, when in chunk))
            copied += len(chunk)
            chunk.clear()
            if progress is not None:
                progress(copied, max(total, copied))

        async for key, raw, expires in source._records("*", values=True):
            if expires is not None and expires <= time.time():
                continue
            chunk.append((key, source._decode(key, raw), expires))  # type: ignore[arg-type]
            if len(chunk) >= _CHUNK:
                await flush()
        if chunk:
            await flush()
        if progress is not None and copied != total:
            progress(copied, copied)
        return copied
