"""The bot-state contract: the shipped suite (pyrogram_storage.kv.testing) on every store.

The suite lives in the package so that users run the very same tests against their
own stores; here it runs over every store in ``conftest.ALL_BACKENDS`` (the registry's,
reached through ``kv.from_url``, and the README's ``DictKV``) but MongoDB's and
Redis's, whose stores run it in ``test_contract_mongo*.py`` and ``test_contract_redis*.py``
(modules of their own, so that parallel workers share the contract runs).
"""

from __future__ import annotations

import pytest

from pyrogram_storage.kv.testing import KVContract, StoreMaker

from .conftest import ALL_BACKENDS, KVMaker

KV_BACKENDS = [name for name in ALL_BACKENDS if not name.startswith(("mongo-", "redis", "valkey"))]


class TestKVContract(KVContract):
    @pytest.fixture
    def make_store(self, make_kv: KVMaker) -> StoreMaker:
        return make_kv
