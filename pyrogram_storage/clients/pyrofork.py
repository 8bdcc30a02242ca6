"""The Pyrofork line: Pyrofork and Electrogram.

They take any truthy object as ``storage=``. ``update_peers`` gets 5-tuples with
the primary username, ``update_usernames`` ``(id, username)`` pairs, one per
username (possibly ``[]``), and update state travels as tuples. Electrogram gives
channels' usernames under the raw positive channel id; they are filed under the
``-100…`` id that ``update_peers`` stored.
"""

from __future__ import annotations

from ..errors import PeerNotFound
from ._core import TupleUpdateStates, channel_form

__all__ = ["ElectrogramAdapter", "PyroforkAdapter"]


class PyroforkAdapter(TupleUpdateStates):
    """Pyrofork: ``Client(..., storage=for_client(storage))``."""

    client = "pyrofork"


class ElectrogramAdapter(PyroforkAdapter):
    """Electrogram: ``Client(..., storage=for_client(storage))``."""

    client = "electrogram"
    _remaps_usernames = True

    async def _username_owner(self, peer_id: int) -> int:
        if peer_id <= 0:
            return peer_id
        try:
            await self.storage.peer_by_id(peer_id)
        except PeerNotFound:
            channel_id = channel_form(peer_id)
            try:
                await self.storage.peer_by_id(channel_id)
            except PeerNotFound:
                return peer_id
            return channel_id
        return peer_id
