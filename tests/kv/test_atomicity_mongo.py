"""The races of ``test_atomicity.py`` on MongoDB (its own module: another parallel worker)."""

from __future__ import annotations

import pytest

from .test_atomicity import (
    racers,
    test_increments_from_four_processes_add_up,
    test_merges_from_four_processes_all_land,
    test_racing_compare_and_set_has_one_winner_per_round,
)

__all__ = [
    "racers",
    "test_increments_from_four_processes_add_up",
    "test_merges_from_four_processes_all_land",
    "test_racing_compare_and_set_has_one_winner_per_round",
]

RACE_BACKENDS = [pytest.param("mongo", marks=pytest.mark.mongo)]
