"""The bot-state contract (the shipped suite) on the Redis and Valkey stores, on a
three-node cluster.

Apart from ``test_contract_redis.py`` so that parallel workers share the contract runs.
"""

from __future__ import annotations

import pytest

from pyrogram_storage.kv.testing import KVContract, StoreMaker

from .conftest import ALL_BACKENDS, KVMaker

KV_BACKENDS = [
    name
    for name in ALL_BACKENDS
    if name.startswith(("redis", "valkey")) and name.endswith("-cluster")
]


class TestKVContract(KVContract):
    @pytest.fixture
    def make_store(self, make_kv: KVMaker) -> StoreMaker:
        return make_kv
