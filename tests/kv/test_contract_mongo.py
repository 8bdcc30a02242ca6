"""The bot-state contract (the shipped suite) on the MongoDB store over pymongo's driver.

Apart from ``test_contract.py`` so that parallel workers share the contract runs.
"""

from __future__ import annotations

import pytest

from pyrogram_storage.kv.testing import KVContract, StoreMaker

from .conftest import KVMaker

KV_BACKENDS = ["mongo-pymongo"]


class TestKVContract(KVContract):
    @pytest.fixture
    def make_store(self, make_kv: KVMaker) -> StoreMaker:
        return make_kv
