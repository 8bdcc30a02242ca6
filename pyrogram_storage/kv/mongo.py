"""Bot state in MongoDB, over PyMongo's ``AsyncMongoClient``, motor or async-pymongo.

One document per key, ``{_id: "<namespace>:<key>", v: value, e: expiry}``: ``v`` is
the serialized text or an int64, ``e`` a date that a TTL index uses to delete expired
documents within a minute or so; reads check ``e`` themselves, so an expired key is
invisible at once. Every write is a single-document operation, atomic across
processes: ``$inc`` for ``increment``, ``find_one_and_update`` on the expected value
for ``compare_and_set``, an insert (which the unique ``_id`` lets only one process win)
for "only if absent".
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import AsyncIterator, Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

from ..errors import BackendError, InvalidValueError, StorageError
from ..mongo.client import (
    DRIVERS,
    ClientRecipe,
    awaited,
    check_async_client,
    check_database_name,
    check_options,
    import_driver,
    load_pymongo,
    maybe_await,
    unreachable,
)
from .base import (
    KEEP,
    SOLE_WRITER_KEYS,
    KVStore,
    Raw,
    Record,
    V,
    _Keep,
    add_to_counter,
    split_location,
)
from .errors import InvalidArgumentError, NotACounterError
from .pattern import Pattern
from .serializer import Serializer

__all__ = ["DEFAULT_DATABASE", "MongoKV"]

DEFAULT_DATABASE = "pyrogram_storage"
"""The database of a store whose URL names none."""
_BATCH = 500
_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_UTC = dt.timezone.utc


def _date(expires: float | None) -> dt.datetime | None:
    """An expiry as a BSON date, rounded up to the millisecond (never early)."""
    if expires is None:
        return None
    return dt.datetime.fromtimestamp(math.ceil(expires * 1000) / 1000, _UTC)


def _seconds(date: Any) -> Any:
    """A stored expiry in seconds; anything but a date or a number is returned as it is,
    for the base class to report as damaged data."""
    if isinstance(date, dt.datetime):
        if date.tzinfo is None:
            date = date.replace(tzinfo=_UTC)
        return date.timestamp()
    if isinstance(date, (int, float)) and not isinstance(date, bool):
        return float(date)
    return date


def _live(now: float) -> dict[str, Any]:
    return {"$or": [{"e": None}, {"e": {"$gt": _date(now)}}]}


def _raw(value: Any) -> Any:
    """A stored value as the base class reads it; a foreign one (a document, a float) is
    returned as it is, for the base class to report as damaged data."""
    if type(value) is int or type(value) is str:
        return value
    if isinstance(value, int) and not isinstance(value, bool):  # bson.Int64
        return int(value)
    if isinstance(value, float) and value.is_integer():  # a $inc on a double someone wrote
        return int(value)
    return value


class MongoKV(KVStore[V]):
    """Bot state in a MongoDB collection: shared by every process and machine using it.

    Give a ready asynchronous client (which you close yourself) or use :meth:`from_url`.

    :param client: PyMongo's ``AsyncMongoClient``, motor's ``AsyncIOMotorClient`` or
        ``async_pymongo.AsyncClient`` (a synchronous ``MongoClient`` raises ``TypeError``).
    :param database: the database (default ``"pyrogram_storage"``).
    :param collection: the collection holding every namespace's keys (default ``"kv"``).
    :raises TypeError: a synchronous or unknown client.
    :raises InvalidArgumentError: a bad database or collection name.
    """

    requires = "mongodb"

    def __init__(
        self,
        client: Any,
        *,
        database: str = DEFAULT_DATABASE,
        collection: str = "kv",
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
        if type(database) is not str:
            raise InvalidArgumentError(f"database is a str, not {type(database).__name__}")
        try:
            check_database_name(database, "pass another database=")
        except InvalidValueError as exc:
            raise InvalidArgumentError(str(exc)) from None
        if (
            type(collection) is not str
            or not _NAME.fullmatch(collection)
            or (collection.startswith("system."))
        ):
            raise InvalidArgumentError(
                "collection must be 1-64 letters, digits, '_', '.' or '-', not starting "
                f"with 'system.', not {collection!r}"
            )
        self.database = database
        self.collection = collection
        self._prefix = self.namespace + ":"
        self._recipe: ClientRecipe | None = None
        self._client: Any = None
        self._coll: Any = None
        if isinstance(client, ClientRecipe):
            self._recipe = client
        else:
            if client is None:
                raise InvalidArgumentError(
                    "MongoKV needs an async client; or use MongoKV.from_url(url)"
                )
            check_async_client(client)
            self._client = client

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        namespace: str | None = None,
        database: str | None = None,
        collection: str = "kv",
        driver: str = "pymongo",
        client_options: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> MongoKV[Any]:
        """Build a store whose client is made from ``url`` on :meth:`open` (closed by close).

        :param url: a ``mongodb://`` or ``mongodb+srv://`` connection string.
        :param database: default: the URL's database, else ``"pyrogram_storage"``.
        :param driver: ``"pymongo"`` (the default), ``"motor"`` or ``"async_pymongo"``.
        :param client_options: keyword arguments for the client's constructor; what
            neither they nor the URL set comes from
            :data:`~pyrogram_storage.mongo.client.DEFAULT_CLIENT_OPTIONS` (a server that
            cannot be reached fails after 5 s).
        :raises InvalidArgumentError: a bad URL or driver, or an option (in the URL or
            ``client_options``) the driver does not know.
        :raises MissingDriverError: the driver is not installed (the message names the extra).
        """
        key = driver.replace("-", "_") if isinstance(driver, str) else driver
        if key not in DRIVERS:
            raise InvalidArgumentError(
                f"unknown driver {driver!r}; choose from {', '.join(DRIVERS)}"
            )
        if not isinstance(url, str) or not url.startswith(("mongodb://", "mongodb+srv://")):
            raise InvalidArgumentError(
                "url must be a mongodb:// or mongodb+srv:// connection string"
            )
        import_driver(DRIVERS[key])
        try:
            check_options(url, dict(client_options or {}))
        except InvalidValueError as exc:
            raise InvalidArgumentError(str(exc)) from None
        if database is None:
            database = urlsplit(url).path.lstrip("/") or DEFAULT_DATABASE
        recipe = ClientRecipe(url, key, dict(client_options or {}))
        return cls(recipe, database=database, collection=collection, namespace=namespace, **options)

    @classmethod
    def from_location(cls, location: str, **options: Any) -> MongoKV[Any]:
        """Build the store of ``mongodb://HOST/[DATABASE][?OPTIONS][#[COLLECTION/]NAMESPACE]``."""
        url, sep, fragment = location.partition("#")
        if sep and "/" in fragment:
            collection, _, fragment = fragment.partition("/")
            if "collection" in options:
                raise InvalidArgumentError(
                    "give the collection in the location or as collection=, not both"
                )
            options = {**options, "collection": collection}
        _, options = split_location(f"#{fragment}" if sep else "", options)
        return cls.from_url(url, **options)

    def __repr__(self) -> str:
        # Never the URL: it may carry a password.
        return (
            f"MongoKV(database={self.database!r}, collection={self.collection!r}, "
            f"namespace={self.namespace!r})"
        )

    def _translate(self, what: str, exc: Exception) -> StorageError:
        down = None if self._recipe is None else unreachable(self._recipe.url, exc)
        if down is not None:
            return BackendError(f"MongoKV failed to {what}: {down}")
        return BackendError(f"MongoKV failed to {what}: {type(exc).__name__}: {exc}")

    # -- lifecycle ------------------------------------------------------------------

    async def _open(self) -> None:
        pymongo = load_pymongo()
        self._duplicate = pymongo.errors.DuplicateKeyError
        self._failure = pymongo.errors.OperationFailure
        self._after = pymongo.ReturnDocument.AFTER
        if self._recipe is not None:
            try:
                self._client = self._recipe.build()
            except (ValueError, TypeError) as exc:
                raise BackendError(f"cannot create the MongoDB client: {exc}") from exc
        coll = self._client[self.database][self.collection]
        # The server deletes expired documents itself (reads never rely on it).
        await awaited(coll.create_index("e", expireAfterSeconds=0, name="kv_expiry"))
        self._coll = coll

    async def _close(self) -> None:
        self._coll = None
        if self._recipe is not None and self._client is not None:
            client, self._client = self._client, None
            await maybe_await(client.close())

    def _c(self) -> Any:
        if self._coll is None:
            raise self._closed_error()
        return self._coll

    # -- primitives -----------------------------------------------------------------

    async def _get(self, key: str) -> Record | None:
        doc = await awaited(self._c().find_one({"_id": self._prefix + key}))
        return None if doc is None else (_raw(doc.get("v")), _seconds(doc.get("e")))

    async def _peek(self, key: str) -> Record | None:
        doc = await awaited(self._c().find_one({"_id": self._prefix + key}, {"e": 1}))
        return None if doc is None else ("", _seconds(doc.get("e")))

    async def _set(self, key: str, raw: Raw, expires: float | None) -> None:
        name = self._prefix + key
        doc = {"_id": name, "v": raw, "e": _date(expires)}
        try:
            await awaited(self._c().replace_one({"_id": name}, doc, upsert=True))
        except self._duplicate:
            # Two upserts of a new key raced; the loser's replace now finds the document.
            await awaited(self._c().replace_one({"_id": name}, doc, upsert=True))

    async def _delete(self, key: str) -> Record | None:
        doc = await awaited(
            self._c().find_one_and_delete({"_id": self._prefix + key}, projection={"e": 1})
        )
        return None if doc is None else ("", _seconds(doc.get("e")))

    async def _touch(self, key: str, expires: float | None, now: float) -> bool:
        query = {"_id": self._prefix + key, **_live(now)}
        result = await awaited(self._c().update_one(query, {"$set": {"e": _date(expires)}}))
        return bool(result.matched_count)

    async def _insert(self, name: str, raw: Raw, expires: float | None) -> bool:
        try:
            await awaited(self._c().insert_one({"_id": name, "v": raw, "e": _date(expires)}))
        except self._duplicate:
            return False
        return True

    async def _replace_expired(
        self, name: str, raw: Raw, expires: float | None, now: float
    ) -> bool:
        query = {"_id": name, "e": {"$ne": None, "$lte": _date(now)}}
        result = await awaited(
            self._c().update_one(query, {"$set": {"v": raw, "e": _date(expires)}})
        )
        return bool(result.matched_count)

    async def _cas(
        self,
        key: str,
        expected: Raw | None,
        raw: Raw,
        expires: float | Literal[_Keep.KEEP] | None,
        now: float,
    ) -> bool:
        name = self._prefix + key
        if expected is None:
            fresh = None if expires is KEEP else expires
            if await self._insert(name, raw, fresh):
                return True
            return await self._replace_expired(name, raw, fresh, now)
        changes: dict[str, Any] = {"v": raw}
        if expires is not KEEP:
            changes["e"] = _date(expires)
        query = {"_id": name, "v": expected, **_live(now)}
        doc = await awaited(
            self._c().find_one_and_update(query, {"$set": changes}, projection={"_id": 1})
        )
        return doc is not None

    async def _increment(
        self, key: str, amount: int, expires: float | None, reset: bool, now: float
    ) -> int:
        name = self._prefix + key
        update: dict[str, Any] = {"$inc": {"v": amount}}
        if reset:
            update["$set"] = {"e": _date(expires)}
        for _ in range(16):
            try:
                doc = await awaited(
                    self._c().find_one_and_update(
                        {"_id": name, **_live(now)},
                        update,
                        projection={"v": 1},
                        return_document=self._after,
                    )
                )
            except self._failure as exc:
                raise await self._not_a_counter(key, amount, exc) from None
            if doc is not None:
                value = doc.get("v")
                if type(value) is not int and not (
                    isinstance(value, int) and not isinstance(value, bool)
                ):
                    raise NotACounterError(f"increment: the value of key {key!r} is not an integer")
                return int(value)
            total = add_to_counter(key, None, amount)
            if await self._insert(name, total, expires):
                return total
            if await self._replace_expired(name, total, expires, now):
                return total
        raise BackendError(f"{self!r}: increment of {key!r} kept racing with other writers")

    async def _not_a_counter(self, key: str, amount: int, exc: Exception) -> StorageError:
        # $inc refuses a string (a serialized value) and an int64 overflow: say which.
        record = await self._get(key)
        if record is not None:
            try:
                add_to_counter(key, record[0], amount)
            except NotACounterError as refusal:
                return refusal
        return self._translate("increment a key", exc)

    async def _scan(
        self, pattern: Pattern, values: bool, now: float
    ) -> AsyncIterator[list[tuple[str, Raw | None, float | None]]]:
        start = self._prefix + pattern.prefix
        query: dict[str, Any] = {"_id": {"$gte": start}, **_live(now)}
        bound = _upper(start)
        if bound is not None:
            query["_id"]["$lt"] = bound
        projection = None if values else {"e": 1}
        cursor = self._c().find(query, projection).sort([("_id", 1)]).batch_size(_BATCH)
        cut = len(self._prefix)
        batch: list[tuple[str, Raw | None, float | None]] = []
        async for doc in cursor:
            raw = _raw(doc.get("v")) if values else None
            batch.append((doc["_id"][cut:], raw, _seconds(doc.get("e"))))
            if len(batch) >= _BATCH:
                yield batch
                batch = []
        if batch:
            yield batch

    async def _clear(self, now: float) -> int:
        space = {"_id": {"$gte": self._prefix, "$lt": _upper(self._prefix)}}
        live = await awaited(self._c().delete_many({**space, **_live(now)}))
        await awaited(self._c().delete_many(space))
        return int(live.deleted_count)

    async def _ping(self) -> None:
        await awaited(self._client.admin.command("ping"))


def _upper(prefix: str) -> str | None:
    """The smallest string above every string starting with ``prefix`` (None: no bound)."""
    while prefix:
        last = ord(prefix[-1])
        if last < 0x10FFFF and not 0xD7FF <= last < 0xE000:
            return prefix[:-1] + chr(last + 1)
        prefix = prefix[:-1]
    return None
