"""The bot-state contract (the shipped suite) on the Redis and Valkey stores, one server.

Apart from ``test_contract.py`` (and the clusters' runs from this one) so that parallel
workers share the contract runs.
"""

from __future__ import annotations

import pytest

from pyrogram_storage.kv.testing import KVContract, StoreMaker

from .conftest import ALL_BACKENDS, KVMaker

KV_BACKENDS = [
    name
    for name in ALL_BACKENDS
    if name.startswith(("redis", "valkey")) and not name.endswith("-cluster")
]


class TestKVContract(KVContract):
    @pytest.fixture
    def make_store(self, make_kv: KVMaker) -> StoreMaker:
        return make_kv
