"""Copy every key of one store's namespace to another store, any backend to any backend."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from .._lifecycle import opened
from ..errors import TargetNotEmptyError
from .base import Entry, KVStore

__all__ = ["copy"]

Progress = Callable[[int, int], None]
_CHUNK = 50  # keys written concurrently (the Redis drivers' pools cap concurrency)


async def copy(
    source: KVStore[Any],
    target: KVStore[Any],
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> int:
    """Copy the live keys of ``source`` to ``target``, each with its remaining TTL.

    Values are read with the source's serializer and written with the target's. Stores
    that are not open are opened for the copy and closed afterwards. Only public
    methods are used (:meth:`~KVStore.records` and :meth:`~KVStore.put`), so any
    store, a subclass of your own included, can be either side.

    :param overwrite: allow a target that already holds keys: keys present in both get
        the source's value, the target's other keys stay.
    :param progress: called as ``progress(done, total)`` after each batch.
    :return: how many keys were copied (keys that expire during the copy are skipped).
    :raises TargetNotEmptyError: the target holds keys and ``overwrite`` is false.
    """
    if source is target:
        raise TargetNotEmptyError("source and target are the same store")
    async with opened(source), opened(target):
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
        chunk: list[Entry[Any]] = []

        async def flush() -> None:
            nonlocal copied
            # Written together: a file store commits them at once, a server pipelines them.
            stored = await asyncio.gather(*(target.put(entry) for entry in chunk))
            copied += sum(stored)
            chunk.clear()
            if progress is not None:
                progress(copied, max(total, copied))

        async for entry in source.records():
            chunk.append(entry)
            if len(chunk) >= _CHUNK:
                await flush()
        if chunk:
            await flush()
        if progress is not None and copied != total:
            progress(copied, copied)
        return copied
