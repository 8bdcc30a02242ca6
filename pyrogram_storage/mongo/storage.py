"""The MongoDB session storage, over PyMongo's ``AsyncMongoClient``, motor or async-pymongo.

Its documents are Pyrofork's and Irenogram's (see
:mod:`~pyrogram_storage.mongo.layout`), so a database of theirs opens in place, no copy
and no new login, and stays readable by them. The
base class owns every rule of the contract; this module only reads and writes
documents: each batch of writes is one ``bulk_write`` per collection it touches.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any

from .._pending import Changes, PeerRow
from ..base import Storage
from ..errors import (
    BackendError,
    InvalidTypeError,
    InvalidValueError,
    NotFoundError,
    StorageClosedError,
    StorageError,
)
from ..types import Peer, SessionData, UpdateState
from . import layout, schema
from .client import (
    DRIVERS,
    AsyncMongoClientLike,
    ClientRecipe,
    awaited,
    check_async_client,
    check_database_name,
    check_options,
    documents,
    import_driver,
    load_pymongo,
    maybe_await,
    unreachable,
)
from .layout import SESSION_ID, Collections, chunks, plain

__all__ = ["MongoStorage"]

log = logging.getLogger(__name__)

_DUPLICATE_KEY = 11000
_PROBE_MIN = 8
"""Peers in a batch from which it pays to ask which are new (see ``_write_peers``)."""


def _check_database_name(name: str) -> None:
    check_database_name(
        name,
        "pass database= (and optionally prefix=) to keep the session in a database of your choice",
    )


class MongoStorage(Storage):
    """A session kept in MongoDB; many processes can share it.

    Session fields are stored before their call returns, acknowledged with the
    client's write concern. Peer, username and update-state writes are visible to
    this object at once and stored within ``commit_interval`` (50 ms by default; 0
    stores each before its call returns): every batch is one ``bulk_write`` per
    collection, so a client's per-update writes cost a few commands per interval
    instead of a few per update. Other processes see them once stored.

    :param name: the session name.
    :param connection: an asynchronous client (``pymongo.AsyncMongoClient``, motor's
        ``AsyncIOMotorClient`` or ``async_pymongo.AsyncClient``), which stays the
        caller's: :meth:`close` does not close it. Or a :class:`ClientRecipe`: the
        storage then builds its own client on :meth:`open` and closes it on
        :meth:`close` (what :meth:`from_url` does). A synchronous
        ``pymongo.MongoClient`` is refused.
    :param database: the database to use. By default each session has its own database
        named after it (Pyrofork's and Irenogram's layout, which therefore opens in place).
    :param prefix: prepended to the collection names; defaults to ``"<name>."`` when
        ``database`` is given (so several sessions share one database) and to ``""``
        otherwise.
    :param remove_peers: whether :meth:`delete` removes the peer cache too (the default,
        like deleting a session file); ``False`` keeps peers and usernames for the next
        login and removes only the authorization and the update state.
    :param sole_writer: promise that while this object is open no other object or
        process writes this session. It then keeps peers in memory (``peer_cache_size``),
        answers lookups by id from there and does not write a peer again that did not
        change; session fields are served from memory too. Leave it False (the default)
        when several bot instances share the session: each then keeps no memory and
        reads what the others wrote on every lookup (a change stream could not say
        "nothing changed" without a round trip of its own).
    :param options: ``username_ttl``, ``session_string``, ``peer_cache_size``,
        ``commit_interval``, ``read_only`` (see :class:`~pyrogram_storage.Storage`).
    :raises InvalidTypeError: ``connection`` is neither an asynchronous MongoDB client
        nor a :class:`ClientRecipe` (a ``TypeError``).
    :raises InvalidValueError: the session name cannot be a database name and no
        ``database`` was given, or ``prefix`` cannot start a collection name (a
        ``ValueError``).
    """

    requires = "mongodb"
    default_commit_interval = 0.05

    def __init__(
        self,
        name: str,
        connection: AsyncMongoClientLike | ClientRecipe,
        *,
        database: str | None = None,
        prefix: str | None = None,
        remove_peers: bool = True,
        sole_writer: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(name, **options)
        self._recipe: ClientRecipe | None = None
        self._client: Any = None
        if isinstance(connection, ClientRecipe):
            self._recipe = connection
        else:
            check_async_client(connection)
            self._client = connection
        if database is None:
            _check_database_name(name)
        elif not isinstance(database, str) or not database:
            raise InvalidValueError("database must be a non-empty string")
        else:
            _check_database_name(database)
        self.database = name if database is None else database
        self.prefix = ("" if database is None else f"{name}.") if prefix is None else prefix
        if (
            not isinstance(self.prefix, str)
            or "$" in self.prefix
            or "\x00" in self.prefix
            or self.prefix.startswith("system.")
        ):
            raise InvalidValueError(
                f"prefix {self.prefix!r} cannot start a MongoDB collection name (no '$', "
                "no NUL, not 'system.')"
            )
        for flag, value in (("remove_peers", remove_peers), ("sole_writer", sole_writer)):
            if not isinstance(value, bool):
                raise InvalidTypeError(f"{flag} must be a bool, not {type(value).__name__}")
        self.remove_peers = remove_peers
        self.sole_writer = sole_writer
        self._collections: Collections | None = None
        self._new_share = 1.0  # share of new peers in the last batch written

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        name: str,
        driver: str = "pymongo",
        client_options: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> MongoStorage:
        """Build a storage whose client is made from ``url`` on :meth:`open`.

        The storage owns that client: :meth:`close` closes it. No connection is made
        before :meth:`open`.

        :param url: a ``mongodb://`` or ``mongodb+srv://`` connection string.
        :param name: the session name.
        :param driver: ``"pymongo"`` (``AsyncMongoClient``, the default), ``"motor"``
            or ``"async_pymongo"``.
        :param client_options: keyword arguments for the client's constructor
            (e.g. ``serverSelectionTimeoutMS``); what neither they nor the URL set comes
            from :data:`~pyrogram_storage.mongo.client.DEFAULT_CLIENT_OPTIONS` (a server
            that cannot be reached fails after 5 s).
        :param options: the other arguments of :class:`MongoStorage`.
        :raises MissingDriverError: the driver is not installed (the message names the extra).
        :raises InvalidValueError: ``driver`` is not one of :data:`DRIVERS`, ``url`` is not
            a MongoDB connection string, or it or ``client_options`` has an option the
            driver does not know.
        """
        recipe = ClientRecipe(url, driver, dict(client_options or {}))
        import_driver(DRIVERS[recipe.driver])
        check_options(url, recipe.options)
        return cls(name, recipe, **options)

    @classmethod
    def from_location(cls, location: str, **options: Any) -> MongoStorage:
        """Build the storage of ``mongodb://HOST/?OPTIONS#NAME`` (or ``mongodb+srv://``).

        :raises InvalidValueError: no session name after ``#``.
        """
        url, _, name = location.partition("#")
        if not name:
            raise InvalidValueError(
                "a MongoDB location needs the session name after '#', e.g. "
                "mongodb://host/#my_account"
            )
        return cls.from_url(url, name=name, **options)

    @property
    def location(self) -> str | None:
        recipe = self._recipe
        return None if recipe is None else f"{recipe.url}#{self.name}"

    def __repr__(self) -> str:
        # Never the URL: it may carry a password.
        return (
            f"{type(self).__name__}(name={self.name!r}, database={self.database!r}, "
            f"prefix={self.prefix!r})"
        )

    def _sole_writer(self) -> bool:
        return self.sole_writer and not self.read_only

    def _translate(self, what: str, exc: Exception) -> StorageError:
        down = None if self._recipe is None else unreachable(self._recipe.url, exc)
        if down is not None:
            return BackendError(f"{type(self).__name__} failed to {what}: {down}")
        return super()._translate(what, exc)

    def _bound(self) -> Collections:
        collections = self._collections
        if collections is None:
            raise StorageClosedError(f"{self!r} is closed")
        return collections

    # -- lifecycle -----------------------------------------------------------------------------

    async def _open(self) -> SessionData:
        pymongo = load_pymongo()
        owned = self._client is None
        if owned:
            assert self._recipe is not None
            self._client = self._recipe.build()
        try:
            c = Collections.bind(self._client, self.database, self.prefix)
            docs = await documents(c.session.find({"_id": {"$in": [SESSION_ID, layout.SCHEMA_ID]}}))
            by_id = {doc["_id"]: doc for doc in docs}
            where = f"database {self.database!r} (session {self.name!r})"
            steps = schema.pending_steps(by_id.get(layout.SCHEMA_ID), where)
            if steps and not self.read_only:
                await schema.upgrade(pymongo, c, steps, where)
            session = by_id.get(SESSION_ID)
            if session is None and self.read_only:
                raise NotFoundError(
                    f"no session {self.name!r} in MongoDB {where}; nothing was created"
                )
            if session is None and not self.read_only:
                # $setOnInsert: another process creating the same session at once keeps its data.
                session = await awaited(
                    c.session.find_one_and_update(
                        {"_id": SESSION_ID},
                        {"$setOnInsert": layout.new_session_doc()},
                        upsert=True,
                        return_document=pymongo.ReturnDocument.AFTER,
                    )
                )
        except BaseException:
            if owned:
                await self._drop_client()
            raise
        self._collections = c
        return layout.session_from_doc(session or {})

    async def _close(self) -> None:
        self._collections = None
        if self._recipe is not None:
            await self._drop_client()

    async def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await maybe_await(client.close())

    async def _delete(self) -> None:
        """Drop the four collections, or with ``remove_peers=False`` the session and states.

        A database that held only this session disappears with its collections.
        """
        load_pymongo()
        client = self._client
        if client is None:  # closed: a storage built from a recipe connects for it
            assert self._recipe is not None
            client = self._recipe.build()
        try:
            c = Collections.bind(client, self.database, self.prefix)
            if self.remove_peers:
                for collection in (c.session, c.peers, c.usernames, c.update_state):
                    await awaited(collection.drop())
            else:
                await awaited(c.session.delete_one({"_id": SESSION_ID}))
                await awaited(c.update_state.drop())
        finally:
            if client is not self._client:
                await maybe_await(client.close())

    async def _ping(self) -> None:
        await awaited(self._bound().database.command("ping"))

    # -- writes --------------------------------------------------------------------------------

    async def _apply(self, changes: Changes) -> None:
        """Store a batch: one ``bulk_write`` per collection it touches, in this order.

        Not atomic (MongoDB needs a replica set for that): if a write fails, part of
        the batch may be stored; the base keeps the whole batch and stores it again,
        and every write here can be repeated without harm.
        """
        c = self._bound()
        pymongo = load_pymongo()
        if changes.deleted_peers or changes.peers or changes.usernames:
            await self._write_peers(c, pymongo, changes)
            usernames = layout.username_writes(pymongo, changes)
            if usernames:
                await awaited(c.usernames.bulk_write(usernames, ordered=True))
        states = _state_writes(pymongo, changes)
        if states:
            await awaited(c.update_state.bulk_write(states, ordered=True))
        if changes.session is not None and changes.session_fields:
            values = {name: getattr(changes.session, name) for name in changes.session_fields}
            await awaited(c.session.update_one({"_id": SESSION_ID}, {"$set": values}, upsert=True))

    async def _write_peers(self, c: Collections, pymongo: ModuleType, changes: Changes) -> None:
        """Write the batch's peers in one unordered ``bulk_write``.

        Unordered is safe: no id is both deleted and upserted in one batch (a peer
        deleted and then given usernames only gets an update that matches nothing).
        New peers are inserted rather than upserted, far cheaper for the server
        (about 7x on SecantusDB), at the cost of a query for which ones exist: worth
        it only while batches are large and mostly new (a cache filling up, a copy),
        not for the clients' steady re-sends.
        """
        peers = changes.peers
        known: set[int] | None = None
        if len(peers) >= _PROBE_MIN and self._new_share >= 0.5:
            known = set()
            for chunk in chunks([peer.id for peer in peers]):
                found = await documents(
                    c.peers.find({"_id": {"$in": list(chunk)}}, {"_id": 1})
                    .limit(len(chunk))
                    .batch_size(len(chunk))
                )
                known.update(doc["_id"] for doc in found)
        writes: list[Any] = [
            pymongo.DeleteMany({"_id": {"$in": list(chunk)}})
            for chunk in chunks(changes.deleted_peers)
        ]
        fallback: dict[int, Any] = {}  # index of an insert -> the upsert it stands for
        for peer in peers:
            upsert, document = _peer_write(pymongo, peer)
            if known is None or peer.id in known:
                writes.append(upsert)
            else:
                fallback[len(writes)] = upsert
                writes.append(pymongo.InsertOne(document))
        writes.extend(
            pymongo.UpdateOne(
                {"_id": peer_id},
                {"$set": {"username": names[0] if names else None, "usernames": list(names)}},
            )
            for peer_id, names in changes.usernames
        )
        try:
            result = await awaited(c.peers.bulk_write(writes, ordered=False))
        except pymongo.errors.BulkWriteError as exc:
            # Another writer inserted some of "our" new peers since we looked: upsert those.
            errors = exc.details.get("writeErrors", [])
            retry = [
                fallback.get(error.get("index"))
                for error in errors
                if error.get("code") == _DUPLICATE_KEY
            ]
            if not retry or len(retry) != len(errors) or None in retry:
                raise
            if exc.details.get("writeConcernErrors"):
                raise
            result = await awaited(c.peers.bulk_write(retry, ordered=False))
        if peers:
            added = len(fallback) if known is not None else int(result.upserted_count)
            self._new_share = added / len(peers)

    # -- reads ---------------------------------------------------------------------------------

    async def _read_session(self) -> SessionData | None:
        doc = await awaited(self._bound().session.find_one({"_id": SESSION_ID}))
        return layout.session_from_doc(doc or {})

    async def _find_peer(self, peer_id: int, usernames: bool) -> Peer | None:
        c = self._bound()
        doc = await awaited(c.peers.find_one({"_id": peer_id}))
        if doc is None:
            return None
        return (await layout.peers_from_docs(c, [doc], usernames))[0]

    async def _find_by_username(self, username: str, usernames: bool) -> Peer | None:
        c = self._bound()
        docs = await documents(
            c.peers.find({"usernames": username}).sort([("last_update_on", -1), ("_id", -1)])
        )
        doc = next((doc for doc in docs if layout.has_own_names(doc)), None)
        if doc is None:
            doc = await layout.foreign_holder(c, username)
        if doc is None:
            return None
        return (await layout.peers_from_docs(c, [doc], usernames))[0]

    async def _find_by_phone(self, phone: str, usernames: bool) -> Peer | None:
        c = self._bound()
        docs = await documents(
            # $type, as the partial index says: the index is used only then
            c.peers.find({"phone_number": {"$eq": phone, "$type": "string"}})
            .sort([("last_update_on", -1), ("_id", -1)])
            .limit(1)
        )
        return (await layout.peers_from_docs(c, docs, usernames))[0] if docs else None

    async def _read_peers(self, after: int | None, limit: int) -> list[Peer]:
        c = self._bound()
        query = {} if after is None else {"_id": {"$gt": after}}
        # batch_size too: one reply, no getMore round trip
        cursor = c.peers.find(query).sort([("_id", 1)]).limit(limit).batch_size(limit)
        return await layout.peers_from_docs(c, await documents(cursor))

    async def _count_peers(self) -> dict[str, int]:
        pipeline = [{"$group": {"_id": "$type", "count": {"$sum": 1}}}]
        rows = await documents(self._bound().peers.aggregate(pipeline))
        counts: dict[str, int] = {}
        for row in rows:
            kind = str(row["_id"])
            counts[kind] = counts.get(kind, 0) + plain(row["count"])
        return counts

    async def _read_states(self, ids: Sequence[int] | None) -> list[UpdateState]:
        collection = self._bound().update_state
        if ids is None:
            docs = await documents(collection.find())
        else:
            docs = []
            for chunk in chunks(ids):
                docs.extend(await documents(collection.find({"_id": {"$in": list(chunk)}})))
        return [
            UpdateState(*(plain(doc.get(name)) for name in ("_id", "pts", "qts", "date", "seq")))
            for doc in docs
        ]


# -- write models --------------------------------------------------------------------------------


def _peer_write(pymongo: ModuleType, peer: PeerRow) -> tuple[Any, dict[str, Any]]:
    """The upsert that stores ``peer``, and the document to insert if it is new."""
    fields: dict[str, Any] = {
        "access_hash": peer.access_hash,
        "type": peer.type.value,
        "phone_number": peer.phone_number,
        "last_update_on": peer.last_update_on,
    }
    names = peer.usernames
    if names is None:  # keep the stored usernames
        kept: dict[str, Any] = {"username": None, "usernames": []}
        update = {"$set": fields, "$setOnInsert": kept}
        return pymongo.UpdateOne({"_id": peer.id}, update, upsert=True), {
            "_id": peer.id,
            **fields,
            **kept,
        }
    fields["username"] = names[0] if names else None
    fields["usernames"] = list(names)
    return pymongo.UpdateOne({"_id": peer.id}, {"$set": fields}, upsert=True), {
        "_id": peer.id,
        **fields,
    }


def _state_writes(pymongo: ModuleType, changes: Changes) -> list[Any]:
    """Write models for the batch's update states, deletes first (an ordered bulk)."""
    writes: list[Any] = [
        pymongo.DeleteMany({"_id": {"$in": list(chunk)}})
        for chunk in chunks(changes.deleted_states)
    ]
    for state in changes.states:
        writes.append(pymongo.ReplaceOne({"_id": state.id}, _state_fields(state), upsert=True))
    for state in changes.merged_states:
        values = _state_fields(state)
        given = {name: value for name, value in values.items() if value is not None}
        update: dict[str, Any] = {}
        if given:
            update["$set"] = given
        if len(given) < len(values):  # a new state gets None for what is not given
            update["$setOnInsert"] = {name: None for name in values if name not in given}
        writes.append(pymongo.UpdateOne({"_id": state.id}, update, upsert=True))
    return writes


def _state_fields(state: UpdateState) -> dict[str, int | None]:
    return {"pts": state.pts, "qts": state.qts, "date": state.date, "seq": state.seq}
