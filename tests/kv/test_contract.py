"""The bot-state contract: the shipped suite (pyrogram_storage.kv.testing) on every store.

The suite lives in the package so that users run the very same tests against their
own stores; here it runs over every store in ``conftest.ALL_BACKENDS`` (the registry's,
reached through ``kv.from_url``, and the README's ``DictKV``).
"""

from __future__ import annotations

import pytest

from pyrogram_storage.kv.testing import KVContract, StoreMaker

from .conftest import KVMaker


class TestKVContract(KVContract):
    @pytest.fixture
    def make_store(self, make_kv: KVMaker) -> StoreMaker:
        return make_kv
