"""The storage contract: the shipped suite (pyrogram_storage.testing) on every backend.

The suite lives in the package so that users run the very same tests against their
own backends; here it runs over every backend in ``conftest.BACKENDS`` (and the README's own)
(the ``make_storage`` fixture of conftest.py, parametrized by ``backend``).
"""

from __future__ import annotations

import pytest

from pyrogram_storage.testing import StorageContract, StorageMaker


class TestContract(StorageContract):
    @pytest.fixture
    def make_storage(self, make_storage: StorageMaker) -> StorageMaker:
        return make_storage
