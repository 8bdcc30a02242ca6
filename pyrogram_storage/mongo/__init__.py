"""MongoDB session storage over PyMongo's ``AsyncMongoClient``, motor or async-pymongo.

No driver is imported until a storage is opened or built with
:meth:`MongoStorage.from_url`.

* :mod:`.client`: the drivers, loaded lazily, and :class:`ClientRecipe`;
* :mod:`.storage`: :class:`MongoStorage`, the primitives of the storage contract;
* :mod:`.layout`: the documents, shared with Pyrofork's and Irenogram's ``MongoStorage``;
* :mod:`.schema`: the interpreter of ``migrations/mongo/*.json``.
"""

from __future__ import annotations

from .client import DRIVERS, AsyncMongoClientLike, ClientRecipe
from .storage import MongoStorage

__all__ = ["DRIVERS", "AsyncMongoClientLike", "ClientRecipe", "MongoStorage"]
