"""Bot state (FSM states and data, counters, caches) behind one contract."""
from .base import KVStore, MISSING
from .memory import MemoryKV
from .sqlite import SQLiteKV
from .redis import RedisKV
