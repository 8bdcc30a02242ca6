"""The MongoDB session storage, over PyMongo's ``AsyncMongoClient``, motor or async-pymongo.

The documents are the ones Pyrofork's and Irenogram's ``MongoStorage`` write, so a
database of theirs opens in place (no copy, no new login) and stays readable by them:

* ``session``: the authorization, one document ``{_id: 0, dc_id, api_id, test_mode,
  auth_key, date, user_id, is_bot, server_address, port}``, plus our schema version
  document ``{_id: "schema", version}``;
* ``peers``: ``{_id: peer id, access_hash, type, username, usernames, phone_number,
  last_update_on}`` (``usernames`` is ours: every username, the primary one first;
  Pyrofork keeps only ``username`` there);
* ``usernames``: ``{_id: username, peer_id, last_update_on}``, for each username of the
  peers that have more than one (where Pyrofork looks for them);
* ``update_state``: ``{_id: state id, pts, qts, date, seq}``.

No driver is imported until a storage is opened or built with :meth:`MongoStorage.from_url`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from types import ModuleType
from typing import Any, TypeVar

from .. import _migrations
from ..checks import clean_usernames, peer_type
from ..base import USERNAME_TTL, Storage, normalize_phone, normalize_username
from ..errors import (
    BackendError,
    MigrationError,
    PeerNotFound,
    SchemaTooNewError,
    StorageClosedError,
    StorageError,
    UnknownSchemaError,
)
from ..types import (
    DEFAULT_DC_ID,
    SESSION_FIELDS,
    Peer,
    PeerType,
    SessionData,
    UpdateState,
)
from .client import (
    DRIVERS,
    AsyncMongoClientLike,
    ClientRecipe,
    awaited,
    check_async_client,
    driver_errors,
    import_driver,
    load_pymongo,
    maybe_await,
)

__all__ = ["MongoStorage"]

log = logging.getLogger(__name__)

T = TypeVar("T")

SESSION_ID = 0
"""``_id`` of the session document (Pyrofork's choice, kept so its databases open in place)."""
SCHEMA_ID = "schema"
"""``_id`` of the schema version document, in the ``session`` collection."""

COLLECTIONS = ("session", "peers", "usernames", "update_state")

_INT64 = range(-(2**63), 2**63)
_BATCH = 10_000  # peers per bulk_write: keeps one command's $in/$nin lists far below 16 MB
# Characters MongoDB refuses in a database name (on any platform it runs on).
_BAD_DATABASE_CHARS = frozenset('/\\. "$*<>:|?\x00')


def _check_database_name(name: str) -> None:
    bad = sorted(set(name) & _BAD_DATABASE_CHARS)
    if bad or len(name.encode()) > 63:
        reason = f"contains {''.join(bad)!r}" if bad else "is longer than 63 bytes"
        raise ValueError(
            f"{name!r} cannot be a MongoDB database name: it {reason}; pass database= "
            "(and optionally prefix=) to keep the session in a database of your choice"
        )


@dataclass(frozen=True)
class _Collections:
    session: Any
    peers: Any
    usernames: Any
    update_state: Any

    def by_name(self, name: str) -> Any:
        if name not in COLLECTIONS:
            raise MigrationError(f"a migration names an unknown collection: {name!r}")
        return getattr(self, name)


class MongoStorage(Storage):
    """A session kept in MongoDB; many processes can share it.

    Reads of the session fields are answered from a copy loaded on :meth:`open` (and
    kept current by this object's writes); every write goes to the server at once
    and returns when the server has acknowledged it with the client's write concern.

    :param name: the session name.
    :param connection: an asynchronous client: ``pymongo.AsyncMongoClient``, motor's
        ``AsyncIOMotorClient`` or ``async_pymongo.AsyncClient``. It stays the caller's:
        :meth:`close` does not close it. A synchronous ``pymongo.MongoClient`` is refused.
    :param database: the database to use. By default each session has its own database
        named after it (Pyrofork's and Irenogram's layout, which therefore opens in place).
    :param prefix: prepended to the collection names; defaults to ``"<name>."`` when
        ``database`` is given (so several sessions share one database) and to ``""``
        otherwise.
    :param remove_peers: whether :meth:`delete` removes the peer cache too (the default,
        like deleting a session file); ``False`` keeps peers and usernames for the next
        login and removes only the authorization and the update state.
    :param username_ttl: see :class:`~pyrogram_storage.Storage`.
    :param session_string: see :class:`~pyrogram_storage.Storage`.
    :raises TypeError: ``connection`` is not an asynchronous MongoDB client.
    :raises ValueError: the session name cannot be a database name and no ``database``
        was given.
    """

    requires = "mongodb"

    def __init__(
        self,
        name: str,
        connection: AsyncMongoClientLike,
        *,
        database: str | None = None,
        prefix: str | None = None,
        remove_peers: bool = True,
        username_ttl: float | None = USERNAME_TTL,
        session_string: str | None = None,
    ) -> None:
        super().__init__(name, username_ttl=username_ttl, session_string=session_string)
        self._recipe: ClientRecipe | None = None
        if isinstance(connection, ClientRecipe):
            self._recipe = connection
            self._client: Any = None
        else:
            check_async_client(connection)
            self._client = connection
        if database is None:
            _check_database_name(name)
        elif not isinstance(database, str) or not database:
            raise ValueError("database must be a non-empty string")
        else:
            _check_database_name(database)
        self.database = name if database is None else database
        self.prefix = ("" if database is None else f"{name}.") if prefix is None else prefix
        if (
            not isinstance(self.prefix, str)
            or "$" in self.prefix
            or "\x00" in self.prefix
            or (self.prefix.startswith("system."))
        ):
            raise ValueError(
                f"prefix {self.prefix!r} cannot start a MongoDB collection name (no '$', "
                "no NUL, not 'system.')"
            )
        self.remove_peers = remove_peers
        self._collections: _Collections | None = None
        self._session: SessionData | None = None
        self._new_share = 1.0  # share of new peers in the last batch written
        self._epoch = 0  # counts close() calls, to tell "closed under a call" from a failure

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
            (e.g. ``serverSelectionTimeoutMS``).
        :param options: the other arguments of :class:`MongoStorage`.
        :raises MissingDriverError: the driver is not installed (the message names the extra).
        :raises ValueError: ``driver`` is not one of :data:`DRIVERS`.
        """
        key = driver.replace("-", "_")
        if key not in DRIVERS:
            raise ValueError(f"unknown driver {driver!r}; choose from {', '.join(DRIVERS)}")
        if not isinstance(url, str) or not url.startswith(("mongodb://", "mongodb+srv://")):
            raise ValueError("url must be a mongodb:// or mongodb+srv:// connection string")
        import_driver(DRIVERS[key])
        recipe = ClientRecipe(url, key, dict(client_options or {}))
        return cls(name, recipe, **options)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        # Never the URL: it may carry a password.
        return (
            f"{type(self).__name__}(name={self.name!r}, database={self.database!r}, "
            f"prefix={self.prefix!r})"
        )

    # -- plumbing -----------------------------------------------------------------

    def _build_client(self) -> Any:
        assert self._recipe is not None
        # A bad option (pymongo raises ValueError or TypeError for some), an SRV record
        # that does not resolve...
        failures: tuple[type[BaseException], ...] = (*driver_errors(), ValueError, TypeError)
        try:
            return self._recipe.build()
        except failures as exc:
            raise BackendError(
                f"cannot create the {self._recipe.driver} client for session {self.name!r}: {exc}"
            ) from exc

    def _bind(self, client: Any) -> _Collections:
        db = client[self.database]
        return _Collections(*(db[self.prefix + name] for name in COLLECTIONS))

    def _require(self) -> _Collections:
        if self._collections is None:
            raise StorageClosedError(f"{self!r} is closed; call open() first")
        return self._collections

    async def _call(
        self, what: str, operation: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any
    ) -> T:
        """Await one driver operation, turning driver errors into :class:`BackendError`."""
        errors = driver_errors()
        epoch = self._epoch
        try:
            return await awaited(operation(*args, **kwargs))
        except errors as exc:
            raise self._translated(exc, what, epoch) from exc

    async def _call_raw(
        self, operation: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any
    ) -> T:
        """Await one driver operation, letting driver errors through."""
        return await awaited(operation(*args, **kwargs))

    async def _find(
        self,
        what: str,
        collection: Any,
        query: Mapping[str, Any],
        *,
        sort: list[tuple[str, int]] | None = None,
        limit: int = 0,
        projection: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        errors = driver_errors()
        epoch = self._epoch
        try:
            cursor = collection.find(query, projection)
            if sort:
                cursor = cursor.sort(sort)
            if limit:
                # batch_size too: one reply, no getMore round trip
                cursor = cursor.limit(limit).batch_size(limit)
            return [doc async for doc in cursor]
        except errors as exc:
            raise self._translated(exc, what, epoch) from exc

    def _translated(self, exc: BaseException, what: str, epoch: int) -> StorageError:
        """The error of ours a driver error during one call becomes."""
        if self._epoch != epoch or self._client is None:
            # close() closed our own client under this call: the documented outcome.
            return StorageClosedError(f"{self!r} was closed during the call")
        return BackendError(
            f"MongoDB failed to {what} (session {self.name!r}, database {self.database!r}): {exc}"
        )

    # -- lifecycle ------------------------------------------------------------------

    async def open(self) -> None:
        if self._collections is not None:
            return
        load_pymongo()
        owned = self._client is None
        if owned:
            self._client = self._build_client()
        try:
            collections = self._bind(self._client)
            self._session = await self._open_schema(collections)
            self._collections = collections
            await self._apply_pending_session()
            self._pending_session = None
        except BaseException:
            self._collections = None
            self._session = None
            if owned:
                await self._close_owned_client()
            raise
        log.debug("opened %r", self)

    async def _open_schema(self, c: _Collections) -> SessionData:
        docs = await self._find(
            "read the session", c.session, {"_id": {"$in": [SESSION_ID, SCHEMA_ID]}}
        )
        by_id = {doc["_id"]: doc for doc in docs}
        schema = by_id.get(SCHEMA_ID)
        version = 0 if schema is None else schema.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 0:
            raise UnknownSchemaError(
                f"database {self.database!r} has a schema document with version "
                f"{version!r}; it was not written by pyrogram-storage and was left untouched"
            )
        latest = _migrations.latest("mongo")
        if version > latest:
            raise SchemaTooNewError(
                f"database {self.database!r} (session {self.name!r}) has schema version "
                f"{version}, but this pyrogram-storage only knows up to {latest}; upgrade "
                "pyrogram-storage (the database was left untouched)"
            )
        pending = _migrations.numbered("mongo")[version:]
        for step in pending:
            await self._apply_migration(c, step)
        if not pending:
            # Pyrofork's MongoStorage may have run on this database since (users switch
            # back and forth); give the peers it wrote the array lookups use.
            await self._backfill_usernames(c)
        session = by_id.get(SESSION_ID)
        if session is None:
            seed = _session_to_doc(SessionData())
            # $setOnInsert: another process opening the same session at once keeps its data.
            await self._call(
                "create the session",
                lambda: c.session.update_one(
                    {"_id": SESSION_ID}, {"$setOnInsert": seed}, upsert=True
                ),
            )
            found = await self._call(
                "read the session", lambda: c.session.find_one({"_id": SESSION_ID})
            )
            session = found or {}
        return _session_from_doc(session)

    async def _apply_migration(self, c: _Collections, step: _migrations.Migration) -> None:
        # MongoDB cannot wrap index builds in a transaction; every operation here is
        # idempotent, and the version is recorded last, so an interrupted step reruns.
        try:
            spec = json.loads(step.text)
            operations = spec["steps"]
        except (ValueError, KeyError, TypeError) as exc:
            raise MigrationError(f"mongo migration {step.version} is malformed: {exc}") from exc
        for operation in operations:
            kind = operation.get("op")
            if kind == "backfill_usernames":
                await self._backfill_usernames(c)
                continue
            collection = c.by_name(operation.get("collection", ""))
            if kind == "create_index":
                keys = [(str(field), int(direction)) for field, direction in operation["keys"]]
                index_name = operation["name"]
                options = dict(operation.get("options", {}))
                await self._call(
                    f"create index {index_name}",
                    collection.create_index,
                    keys,
                    name=index_name,
                    **options,
                )
            elif kind == "drop_index":
                index_name = operation["name"]
                info = await self._call("list indexes", collection.index_information)
                if index_name in info:
                    await self._call(f"drop index {index_name}", collection.drop_index, index_name)
            elif kind == "update_many":
                query, update = operation["filter"], operation["update"]
                await self._call(
                    f"migrate {operation['collection']}",
                    collection.update_many,
                    query,
                    update,
                )
            else:
                raise MigrationError(f"mongo migration {step.version}: unknown op {kind!r}")
        await self._call(
            "record the schema version",
            lambda: c.session.update_one(
                {"_id": SCHEMA_ID},
                {"$set": {"version": step.version, "writer": "pyrogram-storage"}},
                upsert=True,
            ),
        )
        log.info(
            "database %r: applied mongo migration %04d_%s", self.database, step.version, step.name
        )

    async def save(self) -> None:
        await self.update_session(date=int(time.time()))

    async def close(self) -> None:
        was_open = self._collections is not None
        self._epoch += 1
        self._collections = None
        self._session = None
        if self._recipe is not None:
            await self._close_owned_client()
        if was_open:
            log.debug("closed %r", self)

    async def _close_owned_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                await maybe_await(client.close())
            except driver_errors() as exc:  # pragma: no cover - closing rarely fails
                raise BackendError(f"closing the MongoDB client failed: {exc}") from exc

    async def delete(self) -> None:
        """Remove the session for good, then close.

        With ``remove_peers`` (the default) the four collections are dropped, indexes and
        schema document included; a database holding nothing else disappears with them.
        Without it, only the session document and the update state are removed. Works on
        a closed storage: a ``from_url`` storage connects again for it.
        """
        if self._client is None:
            load_pymongo()
            self._client = self._build_client()  # closed again by close() below
        try:
            c = self._collections or self._bind(self._client)
            if self.remove_peers:
                for collection in (c.session, c.peers, c.usernames, c.update_state):
                    await self._call("drop a collection", collection.drop)
            else:
                await self._call(
                    "delete the session",
                    lambda: c.session.delete_one({"_id": SESSION_ID}),
                )
                await self._call("delete the update state", c.update_state.drop)
        finally:
            await self.close()
        log.debug("deleted %r", self)

    async def health(self) -> bool:
        """Return True when the server answers a ``ping``.

        :raises StorageClosedError: the storage is not open.
        :raises BackendError: the server cannot be reached.
        """
        self._require()
        client = self._client
        await self._call("ping", lambda: client[self.database].command("ping"))
        return True

    # -- authorization ----------------------------------------------------------------

    def _require_session(self) -> SessionData:
        if self._session is None or self._collections is None:
            raise StorageClosedError(f"{self!r} is closed; call open() first")
        return self._session

    async def get_session(self) -> SessionData:
        return self._require_session()

    async def update_session(self, **changes: Any) -> None:
        current = self._require_session()
        unknown = set(changes) - set(SESSION_FIELDS)
        if unknown:
            raise TypeError(f"not session fields: {', '.join(sorted(unknown))}")
        if not changes:
            return
        updated = validated(current, changes)
        values = {name: getattr(updated, name) for name in changes}
        c = self._require()
        await self._call(
            "write the session",
            lambda: c.session.update_one({"_id": SESSION_ID}, {"$set": values}, upsert=True),
        )
        self._session = updated

    # -- peers --------------------------------------------------------------------------

    async def upsert_peers(self, peers: Iterable[Peer]) -> None:
        """Insert or replace many peers: one unordered ``bulk_write`` per collection.

        Batches larger than 10,000 peers are written 10,000 at a time, to stay well
        under the server's 16 MB limit on one command's filters.
        """
        latest: dict[int, Peer] = {}
        for peer in peers:
            checked = checked_peer(peer)
            latest.pop(checked.id, None)  # the last occurrence wins, as in one SQL transaction
            latest[checked.id] = checked
        if not latest:
            return
        c = self._require()
        pymongo = load_pymongo()
        batch = list(latest.values())
        for start in range(0, len(batch), _BATCH):
            await self._write_peers(c, pymongo, batch[start : start + _BATCH])

    async def _write_peers(self, c: _Collections, pymongo: ModuleType, batch: list[Peer]) -> None:
        now = int(time.time())
        # New peers are inserted rather than upserted: far cheaper for the server (about
        # 4x on SecantusDB). That costs a query for which ones exist, worth it only while
        # batches are mostly new (a cache filling up), not for the clients' steady re-sends.
        probe = self._new_share >= 0.5
        known: set[int] = set()
        if probe:
            known = {
                doc["_id"]
                for doc in await self._find(
                    "read peer ids",
                    c.peers,
                    {"_id": {"$in": [peer.id for peer in batch]}},
                    projection={"_id": 1},
                    limit=len(batch),
                )
            }
        peer_ops: list[Any] = []
        upserts: dict[int, Any] = {}
        named: dict[int, tuple[tuple[str, ...], int]] = {}
        for peer in batch:
            stamp = now if peer.last_update_on is None else int(peer.last_update_on)
            fields: dict[str, Any] = {
                "access_hash": peer.access_hash,
                "type": peer.type.value,
                "phone_number": (
                    None if peer.phone_number is None else normalize_phone(peer.phone_number)
                ),
                "last_update_on": stamp,
            }
            if peer.usernames is None:
                update = {"$set": fields, "$setOnInsert": {"username": None, "usernames": []}}
                new = {"_id": peer.id, **fields, "username": None, "usernames": []}
            else:
                names = clean_usernames(peer.usernames)
                fields["username"] = names[0] if names else None
                fields["usernames"] = list(names)
                update = {"$set": fields}
                new = {"_id": peer.id, **fields}
                named[peer.id] = (names, stamp)
            upsert = pymongo.UpdateOne({"_id": peer.id}, update, upsert=True)
            if not probe or peer.id in known:
                peer_ops.append(upsert)
            else:
                upserts[len(peer_ops)] = upsert
                peer_ops.append(pymongo.InsertOne(new))
        result = await self._bulk_insert_or_update(c.peers, pymongo, peer_ops, upserts)
        added = len(upserts) if probe else int(getattr(result, "upserted_count", 0))
        self._new_share = added / len(batch)
        if named:
            await self._call(
                "write usernames",
                c.usernames.bulk_write,
                _username_ops(pymongo, named),
                ordered=False,
            )

    async def _bulk_insert_or_update(
        self, collection: Any, pymongo: ModuleType, operations: list[Any], fallback: dict[int, Any]
    ) -> Any:
        """Run one unordered bulk; inserts that lost a race to another writer become upserts."""
        epoch = self._epoch
        try:
            return await self._call_raw(collection.bulk_write, operations, ordered=False)
        except pymongo.errors.BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            retry = [
                fallback.get(error.get("index")) for error in errors if error.get("code") == 11000
            ]
            if len(retry) != len(errors) or None in retry or exc.details.get("writeConcernErrors"):
                raise BackendError(
                    f"MongoDB failed to write peers (session {self.name!r}, database "
                    f"{self.database!r}): {exc}"
                ) from exc
            return await self._call("write peers", collection.bulk_write, retry, ordered=False)
        except driver_errors() as exc:
            if self._epoch != epoch or self._client is None:
                raise StorageClosedError(f"{self!r} was closed during the call") from exc
            raise BackendError(
                f"MongoDB failed to write peers (session {self.name!r}, database "
                f"{self.database!r}): {exc}"
            ) from exc

    async def set_usernames(self, usernames: Iterable[tuple[int, Sequence[str]]]) -> None:
        merged: dict[int, tuple[str, ...]] = {}
        for peer_id, names in usernames:
            if isinstance(names, str):
                raise TypeError("usernames must be a sequence of str, not one str")
            merged[_int64(peer_id, "peer id")] = clean_usernames(names)
        if not merged:
            return
        c = self._require()
        pymongo = load_pymongo()
        now = int(time.time())
        items = list(merged.items())
        for start in range(0, len(items), _BATCH):
            chunk = items[start : start + _BATCH]
            peer_ops = [
                pymongo.UpdateOne(
                    {"_id": peer_id},
                    {"$set": {"username": names[0] if names else None, "usernames": list(names)}},
                )
                for peer_id, names in chunk
            ]
            await self._call("write peers", c.peers.bulk_write, peer_ops, ordered=False)
            await self._call(
                "write usernames",
                c.usernames.bulk_write,
                _username_ops(pymongo, {peer_id: (names, now) for peer_id, names in chunk}),
                ordered=False,
            )

    async def _peers_from_docs(self, c: _Collections, docs: list[dict[str, Any]]) -> list[Peer]:
        """Build peers; documents Pyrofork wrote have no ``usernames`` list, so look it up."""
        missing = [doc for doc in docs if not isinstance(doc.get("usernames"), list)]
        found = await self._usernames_of(c, missing) if missing else {}
        return [_peer_from_doc(doc, found.get(doc["_id"], [])) for doc in docs]

    async def _usernames_of(
        self, c: _Collections, docs: list[dict[str, Any]]
    ) -> dict[int, list[str]]:
        """Every username of peers Pyrofork wrote: ``peers.username`` first, then the rest."""
        names: dict[int, list[str]] = {}
        for doc in docs:
            primary = doc.get("username")
            names[doc["_id"]] = [primary] if isinstance(primary, str) and primary else []
        for start in range(0, len(docs), _BATCH):
            ids = [doc["_id"] for doc in docs[start : start + _BATCH]]
            rows = await self._find(
                "read usernames", c.usernames, {"peer_id": {"$in": ids}}, sort=[("_id", 1)]
            )
            for row in rows:
                listed = names.setdefault(row["peer_id"], [])
                if row["_id"] not in listed:
                    listed.append(row["_id"])
        return names

    async def _backfill_usernames(self, c: _Collections) -> None:
        """Give peers Pyrofork wrote the ``usernames`` array our lookups use (one query if none)."""
        docs = await self._find(
            "find peers written by Pyrofork",
            c.peers,
            {"usernames": {"$exists": False}},
            projection={"_id": 1, "username": 1},
        )
        if not docs:
            return
        pymongo = load_pymongo()
        found = await self._usernames_of(c, docs)
        operations = [
            # the filter keeps an array another writer set meanwhile
            pymongo.UpdateOne(
                {"_id": peer_id, "usernames": {"$exists": False}},
                {"$set": {"usernames": [normalize_username(name) for name in names]}},
            )
            for peer_id, names in found.items()
        ]
        for start in range(0, len(operations), _BATCH):
            await self._call(
                "add usernames arrays",
                c.peers.bulk_write,
                operations[start : start + _BATCH],
                ordered=False,
            )
        log.info(
            "database %r: indexed the usernames of %d peers Pyrofork wrote",
            self.database,
            len(operations),
        )

    async def peer_by_id(self, peer_id: int) -> Peer:
        c = self._require()
        if not isinstance(peer_id, int) or isinstance(peer_id, bool):
            raise PeerNotFound(f"ID not found: {peer_id!r}", peer_id)
        if peer_id not in _INT64:
            raise PeerNotFound(f"ID not found: {peer_id}", peer_id)
        doc = await self._call("read a peer", lambda: c.peers.find_one({"_id": peer_id}))
        if doc is None:
            raise PeerNotFound(f"ID not found: {peer_id}", peer_id)
        return (await self._peers_from_docs(c, [doc]))[0]

    async def peer_by_username(self, username: str) -> Peer:
        c = self._require()
        key = normalize_username(username)
        if not key:
            raise PeerNotFound(f"Username not found: {key}", username)
        newest_first = [("last_update_on", -1)]
        docs = await self._find(
            "look up a username",
            c.peers,
            {"usernames": key},
            sort=newest_first,
            limit=1,
        )
        if not docs:
            # Secondary usernames of peers Pyrofork wrote are only in `usernames`.
            owner = await self._call(
                "look up a username", lambda: c.usernames.find_one({"_id": key})
            )
            if owner is not None:
                doc = await self._call(
                    "read a peer", lambda: c.peers.find_one({"_id": owner.get("peer_id")})
                )
                names = None if doc is None else doc.get("usernames")
                if doc is not None and not (isinstance(names, list) and key not in names):
                    docs = [doc]
        if not docs:
            raise PeerNotFound(f"Username not found: {key}", username)
        peer = (await self._peers_from_docs(c, docs))[0]
        if not self._is_fresh(peer):
            raise PeerNotFound(f"Username expired: {key}", username)
        return peer

    async def peer_by_phone(self, phone_number: str) -> Peer:
        c = self._require()
        key = normalize_phone(phone_number)
        docs = await self._find(
            "look up a phone number",
            c.peers,
            {"phone_number": {"$eq": key, "$type": "string"}},  # as the partial index says
            sort=[("last_update_on", -1)],
            limit=1,
        )
        if not docs or not key:
            raise PeerNotFound(f"Phone number not found: {key}", phone_number)
        return (await self._peers_from_docs(c, docs))[0]

    async def iter_peers(self, batch_size: int = 1000) -> AsyncIterator[list[Peer]]:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        c = self._require()
        query: dict[str, Any] = {}
        while True:
            docs = await self._find(
                "read peers", c.peers, query, sort=[("_id", 1)], limit=batch_size
            )
            if not docs:
                return
            yield await self._peers_from_docs(c, docs)
            if len(docs) < batch_size:
                return
            query = {"_id": {"$gt": docs[-1]["_id"]}}

    async def count_peers(self) -> dict[PeerType, int]:
        c = self._require()
        errors = driver_errors()
        pipeline = [{"$group": {"_id": "$type", "count": {"$sum": 1}}}]
        epoch = self._epoch
        try:
            # PyMongo's aggregate() is a coroutine; motor's and async-pymongo's return a cursor.
            cursor = await maybe_await(c.peers.aggregate(pipeline))
            rows = [row async for row in cursor]
        except errors as exc:
            if self._epoch != epoch or self._client is None:
                raise StorageClosedError(f"{self!r} was closed during the call") from exc
            raise BackendError(f"MongoDB failed to count peers: {exc}") from exc
        counts: dict[PeerType, int] = {}
        for row in rows:
            kind = peer_type(row["_id"])
            counts[kind] = counts.get(kind, 0) + int(row["count"])
        return counts

    # -- update state ---------------------------------------------------------------------

    async def get_update_states(self, ids: Iterable[int] | None = None) -> list[UpdateState]:
        c = self._require()
        query: dict[str, Any] = {}
        if ids is not None:
            wanted = sorted({_int64(i, "update state id") for i in ids})
            if not wanted:
                return []
            query = {"_id": {"$in": wanted}}
        docs = await self._find(
            "read update states", c.update_state, query, sort=[("date", 1), ("_id", 1)]
        )
        return [
            UpdateState(doc["_id"], doc.get("pts"), doc.get("qts"), doc.get("date"), doc.get("seq"))
            for doc in docs
        ]

    async def set_update_states(self, states: Iterable[UpdateState], *, merge: bool = True) -> None:
        pymongo = load_pymongo()
        operations: list[Any] = []
        for state in states:
            state_id = _int64(state.id, "update state id")
            values = {
                name: None if value is None else _int64(value, name)
                for name, value in (
                    ("pts", state.pts),
                    ("qts", state.qts),
                    ("date", state.date),
                    ("seq", state.seq),
                )
            }
            if merge:
                given = {name: value for name, value in values.items() if value is not None}
                update: dict[str, Any] = {}
                if given:
                    update["$set"] = given
                if len(given) < len(values):
                    update["$setOnInsert"] = {name: None for name in values if name not in given}
                operations.append(pymongo.UpdateOne({"_id": state_id}, update, upsert=True))
            else:
                operations.append(pymongo.ReplaceOne({"_id": state_id}, values, upsert=True))
        if not operations:
            return
        c = self._require()
        # Ordered: two states for one id in a call must apply in the order given.
        await self._call(
            "write update states", lambda: c.update_state.bulk_write(operations, ordered=True)
        )

    async def delete_peers(self, peer_ids: Iterable[int]) -> None:
        wanted = sorted({_int64(i, "peer id") for i in peer_ids})
        if not wanted:
            return
        c = self._require()
        for start in range(0, len(wanted), _BATCH):
            chunk = wanted[start : start + _BATCH]
            await self._call(
                "delete usernames", c.usernames.delete_many, {"peer_id": {"$in": chunk}}
            )
            await self._call("delete peers", c.peers.delete_many, {"_id": {"$in": chunk}})

    async def delete_update_states(self, ids: Iterable[int]) -> None:
        wanted = sorted({_int64(i, "update state id") for i in ids})
        if not wanted:
            return
        c = self._require()
        await self._call(
            "delete update states",
            lambda: c.update_state.delete_many({"_id": {"$in": wanted}}),
        )


# -- documents -------------------------------------------------------------------------------


def _username_ops(
    pymongo: ModuleType, named: Mapping[int, tuple[tuple[str, ...], int]]
) -> list[Any]:
    """Write models that bring ``usernames`` in line with these peers' new usernames.

    As Pyrofork does, the collection lists the usernames of peers that have more than
    one; a peer's only username is in its ``peers`` document. Our own reads use the
    ``usernames`` array there; the collection is what Pyrofork reads.
    """
    owners: dict[str, tuple[int, int]] = {}
    for peer_id, (names, stamp) in named.items():
        if len(names) > 1:
            for name in names:
                owners[name] = (peer_id, stamp)
    # "$nin" keeps the delete disjoint from the upserts, so the unordered bulk may run
    # them in any order; one delete covers the whole batch.
    operations: list[Any] = [
        pymongo.DeleteMany({"peer_id": {"$in": list(named)}, "_id": {"$nin": list(owners)}})
    ]
    operations.extend(
        pymongo.UpdateOne(
            {"_id": name}, {"$set": {"peer_id": peer_id, "last_update_on": stamp}}, upsert=True
        )
        for name, (peer_id, stamp) in owners.items()
    )
    return operations


def _int64(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            value = int(value)
        except (TypeError, ValueError):
            raise TypeError(f"{what} must be an int, not {type(value).__name__}") from None
    if value not in _INT64:
        raise ValueError(f"{what} must fit in 64 bits: {value}")
    return int(value)


def _session_to_doc(session: SessionData) -> dict[str, Any]:
    return {name: getattr(session, name) for name in SESSION_FIELDS}


def _session_from_doc(doc: Mapping[str, Any]) -> SessionData:
    auth_key = doc.get("auth_key")
    test_mode = doc.get("test_mode")
    is_bot = doc.get("is_bot")
    dc_id = doc.get("dc_id")
    return SessionData(
        dc_id=DEFAULT_DC_ID if dc_id is None else int(dc_id),
        api_id=doc.get("api_id"),
        test_mode=None if test_mode is None else bool(test_mode),
        auth_key=None if auth_key is None else bytes(auth_key),
        date=int(doc.get("date") or 0),
        user_id=doc.get("user_id"),
        is_bot=None if is_bot is None else bool(is_bot),
        server_address=doc.get("server_address"),
        port=doc.get("port"),
    )


def _peer_from_doc(doc: Mapping[str, Any], looked_up: list[str]) -> Peer:
    names = doc.get("usernames")
    if not isinstance(names, list):
        primary = doc.get("username")
        names = ([primary] if primary else []) + [n for n in looked_up if n != primary]
    access_hash = doc.get("access_hash")
    stamp = doc.get("last_update_on")
    return Peer(
        doc["_id"],
        0 if access_hash is None else int(access_hash),
        peer_type(doc.get("type")),
        tuple(names),
        doc.get("phone_number"),
        None if stamp is None else int(stamp),
    )
