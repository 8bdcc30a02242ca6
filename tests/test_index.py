"""The compact peer index answers like a dict of the same peers, whatever the ids."""

from __future__ import annotations

import random

import pytest

from pyrogram_storage._index import NO_NAMES, PeerIndex, name_key, phone_key

_TYPES = ("user", "bot", "group", "channel", "supergroup", "odd one")


def _ids(rng: random.Random) -> int:
    """Ids close together (4-byte chunks) and far apart (8-byte ones), extremes too."""
    pick = rng.random()
    if pick < 0.5:
        return rng.randrange(10_000_000, 10_050_000)
    if pick < 0.7:
        return -1_000_000_000_000 - rng.randrange(50_000)
    if pick < 0.95:
        return rng.randrange(-(2**40), 2**40)
    return rng.choice((-(2**63), 2**63 - 1, 0, 2**31, -(2**31), 2**32 + 7))


def _check(index: PeerIndex, model: dict[int, tuple[int, str, int, int, int]]) -> None:
    assert len(index) == len(model)
    assert list(index.ids()) == sorted(model)
    for peer_id, (access_hash, kind, stamp, names, phone) in model.items():
        assert peer_id in index
        assert index.access(peer_id) == (access_hash, kind)
        assert index.get(peer_id) == (access_hash, kind, stamp or -1, names, phone)
        if phone:
            assert peer_id in index.by_phone(phone)


@pytest.mark.parametrize("seed", range(4))
def test_the_index_answers_like_a_dict(seed: int) -> None:
    rng = random.Random(seed)
    index = PeerIndex()
    model: dict[int, tuple[int, str, int, int, int]] = {}
    for step in range(6000):
        peer_id = rng.choice(list(model)) if model and rng.random() < 0.2 else _ids(rng)
        action = rng.random()
        if action < 0.8:
            fields = (
                rng.randrange(-(2**63), 2**63),
                rng.choice(_TYPES),
                rng.choice((0, 1_700_000_000 + step)),
                rng.choice((NO_NAMES, name_key(f"n{step}"))),
                rng.choice((0, 0, phone_key(f"7900{step}"))),
            )
            index.put(peer_id, *fields)
            model[peer_id] = fields
        elif action < 0.9:
            index.remove(peer_id)
            model.pop(peer_id, None)
        else:
            names = name_key(f"m{step}")
            assert index.set_names(peer_id, names) == (peer_id in model)
            if peer_id in model:
                model[peer_id] = (*model[peer_id][:3], names, model[peer_id][4])
        absent = _ids(rng)
        if absent not in model:
            assert index.get(absent) is None and index.access(absent) is None
            assert absent not in index
    _check(index, model)

    # Built in bulk (a batch at a time, each appended), then written to: the same answers.
    rows = sorted((peer_id, *fields) for peer_id, fields in model.items())
    built = PeerIndex()
    for start in range(0, len(rows), 700):
        part = PeerIndex()
        part.load((r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows[start : start + 700])
        built.append(part)
    _check(built, model)
    for peer_id in list(model)[::3]:
        built.remove(peer_id)
        del model[peer_id]
    for _ in range(500):
        peer_id = _ids(rng)
        built.put(peer_id, 5, "user", 0, NO_NAMES, 0)
        model[peer_id] = (5, "user", 0, NO_NAMES, 0)
    _check(built, model)
