"""The database layout, shared with Pyrofork's and Irenogram's ``MongoStorage``.

A session's database holds four collections (their names may carry a prefix):

* ``session``: the authorization, one document ``{_id: 0, dc_id, api_id, test_mode,
  auth_key, date, user_id, is_bot, server_address, port}``, and our schema version
  ``{_id: "schema", version, writer}``;
* ``peers``: ``{_id: peer id, access_hash, type, username, usernames, phone_number,
  last_update_on}``;
* ``usernames``: ``{_id: username, peer_id, last_update_on}`` for each username of the
  peers that have more than one;
* ``update_state``: ``{_id: state id, pts, qts, date, seq}``.

Pyrofork keeps a peer's first username in ``peers.username`` and, for a peer with
several, all of them in the ``usernames`` collection. Our documents add the
``usernames`` array (every username, the first one first), so that one indexed query
finds a peer by any of its usernames. Pyrofork knows nothing of the array: a document
it wrote has none, and one it rewrote after us may have a stale one. So a document's
array is believed only while its first name is the document's ``username``; any other
document's usernames are read the way Pyrofork reads them. Both kinds are found
through indexes, so nothing here ever scans the peers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from .._pending import Changes
from ..errors import MigrationError
from ..types import DEFAULT_DC_ID, SESSION_FIELDS, Peer, PeerType, SessionData
from ..validation import clean_usernames, normalize_username
from .client import awaited, documents

__all__ = [
    "COLLECTIONS",
    "SCHEMA_ID",
    "SESSION_ID",
    "Collections",
    "backfill_usernames",
    "foreign_holder",
    "has_own_names",
    "peers_from_docs",
    "plain",
    "session_from_doc",
    "username_writes",
]

SESSION_ID = 0
"""``_id`` of the session document (Pyrofork's choice, kept so its databases open in place)."""
SCHEMA_ID = "schema"
"""``_id`` of the schema version document, in the ``session`` collection."""
COLLECTIONS = ("session", "peers", "usernames", "update_state")
"""The four collections of a session (prefixed when sessions share a database)."""

CHUNK = 10_000
"""Ids per ``$in`` list: keeps one command far below MongoDB's 16 MB limit."""

_BOOL_FIELDS = ("test_mode", "is_bot")


@dataclass(frozen=True)
class Collections:
    """The database of one session and its four collections."""

    database: Any
    session: Any
    peers: Any
    usernames: Any
    update_state: Any

    @classmethod
    def bind(cls, client: Any, database: str, prefix: str) -> Collections:
        """The collections of ``database`` whose names start with ``prefix``."""
        db = client[database]
        return cls(db, *(db[prefix + name] for name in COLLECTIONS))

    def by_name(self, name: object) -> Any:
        """The collection a migration names.

        :raises MigrationError: no collection has that name.
        """
        if name not in COLLECTIONS:
            raise MigrationError(f"a migration names an unknown collection: {name!r}")
        return getattr(self, str(name))


def plain(value: Any) -> Any:
    """``value``, with BSON's ``Int64`` (what drivers decode 64-bit integers to) as an int."""
    if type(value) is not int and isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    return value


def chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


# -- the session ---------------------------------------------------------------------------------


def new_session_doc() -> dict[str, Any]:
    return SessionData().fields()


def session_from_doc(doc: Mapping[str, Any]) -> SessionData:
    """Read a session document, ours or Pyrofork's (the base checks the types)."""
    values: dict[str, Any] = {name: plain(doc.get(name)) for name in SESSION_FIELDS}
    if values["dc_id"] is None:
        values["dc_id"] = DEFAULT_DC_ID
    if values["date"] is None:
        values["date"] = 0
    if values["auth_key"] == b"":
        values["auth_key"] = None  # Pyrofork's "not logged in yet"
    for name in _BOOL_FIELDS:
        if type(values[name]) is int and values[name] in (0, 1):
            values[name] = bool(values[name])
    return SessionData(**values)


# -- reading peers ------------------------------------------------------------------------------


def has_own_names(doc: Mapping[str, Any]) -> bool:
    """Whether the document's ``usernames`` array is current (see the module's docstring)."""
    names = doc.get("usernames")
    if not isinstance(names, list):
        return False
    primary = doc.get("username")
    primary = normalize_username(primary) if isinstance(primary, str) else None
    return (names[0] if names else None) == (primary or None)


def _peer(doc: Mapping[str, Any], names: tuple[Any, ...] | None) -> Peer:
    kind: Any = doc.get("type")
    if isinstance(kind, str) and kind:
        kind = PeerType.of(kind)
    access_hash = doc.get("access_hash")
    return Peer(
        plain(doc["_id"]),
        0 if access_hash is None else plain(access_hash),
        kind,  # anything else is refused by the base's check, as damaged data
        names,
        doc.get("phone_number"),
        plain(doc.get("last_update_on")),
    )


async def peers_from_docs(
    c: Collections, docs: Sequence[Mapping[str, Any]], usernames: bool = True
) -> list[Peer]:
    """Build peers; the usernames of documents without a current array are looked up."""
    if not usernames:
        return [_peer(doc, None) for doc in docs]
    foreign = [doc["_id"] for doc in docs if not has_own_names(doc)]
    listed = await _listed_usernames(c, foreign) if foreign else {}
    return [
        _peer(
            doc,
            tuple(doc["usernames"])
            if doc["_id"] not in listed
            else _foreign_names(doc, listed[doc["_id"]]),
        )
        for doc in docs
    ]


def _foreign_names(doc: Mapping[str, Any], listed: list[str]) -> tuple[str, ...]:
    primary = doc.get("username")
    names = [primary, *listed] if isinstance(primary, str) else listed
    return clean_usernames(name for name in names if isinstance(name, str))


async def _listed_usernames(c: Collections, ids: Sequence[int]) -> dict[int, list[str]]:
    """The ``usernames`` collection's names of these peers (every id gets an entry)."""
    names: dict[int, list[str]] = {peer_id: [] for peer_id in ids}
    for chunk in chunks(ids):
        rows = await documents(
            c.usernames.find({"peer_id": {"$in": list(chunk)}}).sort([("_id", 1)])
        )
        for row in rows:
            peer_id = plain(row.get("peer_id"))
            listed = names.get(peer_id) if type(peer_id) is int else None
            if listed is not None and isinstance(row["_id"], str):
                listed.append(row["_id"])
    return names


async def foreign_holder(c: Collections, username: str) -> dict[str, Any] | None:
    """The newest peer that holds ``username`` the way Pyrofork records it, if any.

    That is a document without a current array whose ``username`` it is, or the peer
    the ``usernames`` collection names for it.
    """
    # Both at once; a failure of either is raised once the other has ended too.
    by_primary, listed = await asyncio.gather(
        documents(c.peers.find({"username": username})),
        awaited(c.usernames.find_one({"_id": username})),
        return_exceptions=True,
    )
    for outcome in (by_primary, listed):
        if isinstance(outcome, BaseException):
            raise outcome
    assert isinstance(by_primary, list)
    found = [doc for doc in by_primary if not has_own_names(doc)]
    if listed is not None:
        doc = await awaited(c.peers.find_one({"_id": listed.get("peer_id")}))
        if doc is not None and (not has_own_names(doc) or username in doc["usernames"]):
            found.append(doc)
    return max(found, key=_stamp, default=None)


def _stamp(doc: Mapping[str, Any]) -> int:
    stamp = plain(doc.get("last_update_on"))
    return stamp if type(stamp) is int else 0


# -- writing the usernames collection ------------------------------------------------------------


def username_writes(pymongo: ModuleType, changes: Changes) -> list[Any]:
    """Write models that bring the ``usernames`` collection in line with a batch.

    As in Pyrofork, the collection lists every username of the peers that have more
    than one (Pyrofork looks there); our own lookups use the array. The deletes come
    first: run the models as one ordered ``bulk_write``.
    """
    cleared: list[int] = list(changes.deleted_peers)
    owners: dict[str, tuple[int, int]] = {}
    for peer in changes.peers:
        if peer.usernames is not None:
            cleared.append(peer.id)
            if len(peer.usernames) > 1:
                stamp = changes.stamp if peer.last_update_on is None else peer.last_update_on
                owners.update((name, (peer.id, stamp)) for name in peer.usernames)
    for peer_id, names in changes.usernames:
        cleared.append(peer_id)
        if len(names) > 1:
            owners.update((name, (peer_id, changes.stamp)) for name in names)
    if not cleared:
        return []
    kept: dict[int, list[str]] = {}
    for name, (peer_id, _) in owners.items():
        kept.setdefault(peer_id, []).append(name)
    writes: list[Any] = [
        # $nin: a name the peer keeps is updated below, not deleted and inserted again
        pymongo.DeleteMany(
            {
                "peer_id": {"$in": list(chunk)},
                "_id": {"$nin": [name for peer_id in chunk for name in kept.get(peer_id, ())]},
            }
        )
        for chunk in chunks(cleared)
    ]
    writes.extend(
        pymongo.UpdateOne(
            {"_id": name}, {"$set": {"peer_id": peer_id, "last_update_on": stamp}}, upsert=True
        )
        for name, (peer_id, stamp) in owners.items()
    )
    return writes


# -- adopting a database Pyrofork wrote ------------------------------------------------------------


async def backfill_usernames(pymongo: ModuleType, c: Collections) -> int:
    """Give the peers Pyrofork wrote the ``usernames`` array; return how many got one.

    A migration step: it reads every peer without an array once. Lookups do not need
    it (they read such peers the way Pyrofork does); it makes them one query.
    """
    docs = await documents(
        c.peers.find({"usernames": {"$exists": False}}, {"_id": 1, "username": 1})
    )
    if not docs:
        return 0
    listed = await _listed_usernames(c, [doc["_id"] for doc in docs])
    writes = [
        # the filter keeps an array another writer set meanwhile
        pymongo.UpdateOne(
            {"_id": doc["_id"], "usernames": {"$exists": False}},
            {"$set": {"usernames": list(_foreign_names(doc, listed[doc["_id"]]))}},
        )
        for doc in docs
    ]
    for chunk in chunks(writes):
        await awaited(c.peers.bulk_write(list(chunk), ordered=False))
    return len(writes)
