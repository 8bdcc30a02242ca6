"""Copy a whole session from one storage to another, through the public contract only."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import TypeVar

from .._lifecycle import opened
from ..base import Storage
from ..errors import InvalidValueError, TargetNotEmptyError
from ..types import SessionData

__all__ = ["CopyResult", "ProgressCallback", "copy_session", "is_empty", "opened"]

T = TypeVar("T")

ProgressCallback = Callable[[int, int], object]
"""Called as ``progress(peers_done, peers_total)``."""


@dataclass(frozen=True, slots=True)
class CopyResult:
    """What :func:`copy_session` wrote."""

    peers: int
    update_states: int


async def copy_session(
    source: Storage,
    target: Storage,
    *,
    overwrite: bool = False,
    batch_size: int = 1000,
    progress: ProgressCallback | None = None,
) -> CopyResult:
    """Copy the authorization, every peer (with all usernames) and the update states.

    Works between any two storages (File, Memory, Mongo, a subclass of your own),
    using only the :class:`~pyrogram_storage.Storage` contract. Peers are read and
    written ``batch_size`` at a time, so a large peer table never sits in memory;
    their ``last_update_on`` is kept, so usernames expire in the copy when they
    would have in the source. The authorization is written last: a copy that was
    interrupted has no auth key and is never mistaken for a finished one.

    A storage that is not open is opened for the copy and closed afterwards; one
    that is open stays open. The target ends up equal to the source, ``date``
    included (its :meth:`~pyrogram_storage.Storage.save` runs, then the source's
    date is written back).

    :param overwrite: replace a target that already holds data. Its session is
        deleted first, so peers and update states the source lacks disappear too.
    :param batch_size: peers per read and per write.
    :param progress: called as ``progress(done, total)`` with peer counts: once with
        ``done=0`` before the first batch, then after every batch.
    :returns: how many peers and update states were written.
    :raises TargetNotEmptyError: the target holds an auth key, a peer or an update
        state and ``overwrite`` is false; the target is left untouched.
    :raises ValueError: ``source`` and ``target`` are the same object, or
        ``batch_size`` is below 1.
    """
    if source is target:
        raise InvalidValueError("cannot copy a session onto itself")
    if batch_size < 1:
        raise InvalidValueError("batch_size must be at least 1")
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(opened(source))
        await stack.enter_async_context(opened(target))
        if not await is_empty(target):
            if not overwrite:
                raise TargetNotEmptyError(
                    f"{target!r} already holds a session; pass overwrite=True "
                    "(--overwrite on the command line) to replace it"
                )
            await _clear(target, batch_size)
        session = await source.get_session()
        total = await source.count_peers()
        if progress is not None:
            progress(0, total)
        done = 0
        async for batch in source.iter_peer_batches(batch_size):
            await target.upsert_peers(batch)
            done += len(batch)
            if progress is not None:
                progress(done, max(total, done))
        states = await source.get_update_states()
        await target.set_update_states(states, merge=False)
        await _write_session(target, session)
        return CopyResult(peers=done, update_states=len(states))


async def is_empty(storage: Storage) -> bool:
    """Return True when an open storage has no auth key, no peer and no update state."""
    if (await storage.get_session()).auth_key is not None:
        return False
    if await _first(storage.iter_peer_batches(1)):
        return False
    return not await storage.get_update_states()


async def _first(batches: AsyncIterator[list[T]]) -> list[T]:
    try:
        return await anext(batches, [])
    finally:
        aclose = getattr(batches, "aclose", None)
        if aclose is not None:
            await aclose()


async def _clear(target: Storage, batch_size: int) -> None:
    # The old authorization goes first: a copy cut short must not look like a login.
    await target.update_session(**SessionData().fields())
    ids = [peer.id async for peer in target.iter_peers()]
    for start in range(0, len(ids), batch_size):
        await target.delete_peers(ids[start : start + batch_size])
    await target.delete_update_states([state.id for state in await target.get_update_states()])


async def _write_session(target: Storage, session: SessionData) -> None:
    await target.update_session(**session.fields())
    await target.save()
    # save() stamps the current time; the copy keeps the source's.
    await target.update_session(date=session.date)
