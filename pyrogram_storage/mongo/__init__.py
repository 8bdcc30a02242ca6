"""MongoDB session storage over PyMongo's ``AsyncMongoClient``, motor or async-pymongo.

No driver is imported until a storage is opened or built with
:meth:`MongoStorage.from_url`.
"""

from __future__ import annotations

from .client import DRIVERS, AsyncMongoClientLike
from .storage import MongoStorage

__all__ = ["DRIVERS", "AsyncMongoClientLike", "MongoStorage"]
