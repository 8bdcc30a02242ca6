"""Every stored peer of a session in a few compact arrays: the complete peer index.

For each peer, kept in id order: its access hash, type, last write
(``last_update_on``), and, for the peers that have them, a 64-bit fingerprint of its
usernames and its phone key; phone keys also in a map to their owners. That answers,
without a query, a thread hop or a Python object per peer, every lookup by id or
phone and every "did this write change the peer?" a client's update makes. About 19
bytes a peer, plus 8 a named peer, 20 a phone number and 12 a username (a million
peers, half named, one in six with a phone: 30 MB), against some 200 for a dict of
tuples.

Ids are cut into chunks of a few hundred, each column one :class:`array.array` per
chunk, so that inserting a peer moves a few kilobytes (one ``memmove`` per column),
never the whole index. A chunk keeps its ids as 32-bit offsets from a base where
they span less than 2**31 (most do), else whole. A lookup is two ``bisect`` calls.

Fingerprints come from Python's ``hash()``, keyed at random per process (SipHash):
two different lists of usernames share one with a probability of 2**-63, and nobody
can choose names that do. Usernames map to their holders by 32 bits of each name's
key (to the ids that held it), phone numbers to their owners likewise: a lookup finds
its candidates there, and keeps those whose fingerprint (or phone key), checked in
full, is still that name's. The index is built from the backend after ``open()`` and
kept up to date by every write of this process; it is never stored.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "NO_NAMES",
    "TYPE_CODES",
    "Columns",
    "IdTable",
    "PeerIndex",
    "holder_key",
    "name_key",
    "names_fingerprint",
    "owner_key",
    "phone_key",
]

_CHUNK: Final = 512
"""Entries per chunk when a chunk is built in bulk; a chunk splits at twice this."""

NO_NAMES: Final = 0
"""The fingerprint of no usernames (``()``)."""

_TYPE_CODES: Final = {
    "user": 1,
    "bot": 2,
    "group": 3,
    "channel": 4,
    "supergroup": 5,
    "forum": 6,
    "direct": 7,
    "community": 8,
}
_TYPE_NAMES: Final = {code: name for name, code in _TYPE_CODES.items()}
_NAMED: Final = 1  # _flags: the peer has usernames
_PHONED: Final = 2  # _flags: the peer has a phone number
_BOTH: Final = _NAMED | _PHONED
_MAX_STAMP: Final = 2**32 - 1

TYPE_CODES: Final = _TYPE_CODES
"""Type name to the code a bulk read (:class:`Columns`) gives; 0 for any other name."""


@dataclass(slots=True)
class Columns:
    """Stored peers in increasing id order, column by column: what a backend's bulk read
    (``_peer_columns``) gives, without a Python object per peer. Enough to answer an id
    lookup (no last write, usernames or phone number)."""

    ids: array[int]  # "q"
    hashes: array[int]  # "q"
    kinds: array[int]  # "B": a TYPE_CODES code (0: see odd_types)
    odd_types: dict[int, str] = field(default_factory=dict)
    """Peers whose type has no code."""


Found = tuple[int, str, int, int, int]
"""What the index knows of a peer: access hash, type name, last write (-1: not
representable here, ask the store), usernames fingerprint, phone key (0: none)."""


def names_fingerprint(names: tuple[str, ...]) -> int:
    """The fingerprint of a peer's usernames (in order): 0 for none, never 0 otherwise.

    Of one username, that of the name itself (:func:`name_key`, even): a lookup by
    username checks a holder against it. Of several, odd (the lookup asks the store).
    """
    if not names:
        return NO_NAMES
    if len(names) == 1:
        return name_key(names[0])
    return hash(names) | 1


def name_key(name: str) -> int:
    """The key of one username: even, never 0."""
    value = hash(name) & ~1
    return value if value else 2


def holder_key(key: int) -> int:
    """Where the index files the holders of a :func:`name_key`: its top 32 bits."""
    return key >> 32


def owner_key(key: int) -> int:
    """Where the index files the owners of a :func:`phone_key`: 32 bits of it, mixed."""
    return ((key * 0x9E3779B97F4A7C15) & (2**64 - 1)) - 2**63 >> 32


def phone_key(phone: str | None) -> int:
    """The key of a phone number (digits only, as stored): 0 for none.

    The number itself (with a leading 1, so that leading zeros count) when it is at
    most 18 ASCII digits, else a negative fingerprint of it.
    """
    if not phone:
        return 0
    if len(phone) <= 18 and phone.isascii() and phone.isdigit():
        return int("1" + phone)
    return -(hash(phone) & (2**62 - 1)) - 1


class _Pairs:
    """A sorted multimap of int64 keys (int32 with ``code="i"``) to int64 values, in
    chunked arrays."""

    __slots__ = ("_code", "_keys", "_maxes", "_values", "size")

    def __init__(self, code: str = "q") -> None:
        self._code = code
        self._maxes: list[int] = []
        self._keys: list[array[int]] = []
        self._values: list[array[int]] = []
        self.size = 0

    def nbytes(self) -> int:
        return (8 + array(self._code).itemsize) * self.size

    def values(self, key: int) -> list[int]:
        """Every value of ``key`` (in the order they were added)."""
        maxes = self._maxes
        c = bisect_left(maxes, key)
        found: list[int] = []
        while c < len(maxes):
            keys = self._keys[c]
            p = bisect_left(keys, key)
            q = bisect_right(keys, key)
            found.extend(self._values[c][p:q])
            if q < len(keys):
                break
            c += 1
        return found

    def has(self, key: int, value: int) -> bool:
        """Whether the pair is there (:meth:`values` without the list)."""
        maxes = self._maxes
        c = bisect_left(maxes, key)
        while c < len(maxes):
            keys = self._keys[c]
            p = bisect_left(keys, key)
            q = bisect_right(keys, key, p)
            if p < q and value in self._values[c][p:q]:
                return True
            if q < len(keys):
                return False
            c += 1
        return False

    def first(self, key: int) -> int | None:
        maxes = self._maxes
        c = bisect_left(maxes, key)
        if c == len(maxes):
            return None
        keys = self._keys[c]
        p = bisect_left(keys, key)
        return self._values[c][p] if keys[p] == key else None

    def add(self, key: int, value: int) -> None:
        """Add the pair (after the key's other values)."""
        maxes = self._maxes
        c = bisect_right(maxes, key)
        if c == len(maxes):
            if not maxes:
                self._insert_chunk(0, array(self._code), array("q"))
            c = len(maxes) - 1
        keys = self._keys[c]
        p = bisect_right(keys, key)
        keys.insert(p, key)
        self._values[c].insert(p, value)
        if key > maxes[c]:
            maxes[c] = key
        self.size += 1
        if len(keys) > 2 * _CHUNK:
            self._split(c)

    def _split(self, c: int) -> None:
        keys = self._keys[c]
        half = len(keys) // 2
        tail_keys, tail_values = keys[half:], self._values[c][half:]
        del keys[half:], self._values[c][half:]
        self._maxes[c] = keys[-1]
        self._insert_chunk(c + 1, tail_keys, tail_values)

    def add_once(self, key: int, value: int) -> None:
        """:meth:`add` the pair unless it is there (:meth:`has`), with one search when the
        key's values all lie in one chunk (nearly always)."""
        maxes = self._maxes
        c = bisect_left(maxes, key)
        if c < len(maxes):
            keys = self._keys[c]
            p = bisect_left(keys, key)
            if keys[p] == key:  # (keys[p] exists: maxes[c] >= key)
                q = bisect_right(keys, key, p)
                if value in self._values[c][p:q]:
                    return
            else:
                q = p  # a key not held (nearly always: keys are hashes)
            if q == len(keys):
                if not self.has(key, value):  # the key's values span chunks
                    self.add(key, value)
                return
            # the key's values, if any, are keys[p:q] and q < len(keys): add() would
            # insert at q of this chunk too (bisect_right of the maxes is c)
            keys.insert(q, key)
            self._values[c].insert(q, value)
            self.size += 1
            if len(keys) > 2 * _CHUNK:
                self._split(c)
            return
        self.add(key, value)

    def remove(self, key: int, value: int) -> bool:
        """Remove one pair; False if it is not there."""
        maxes = self._maxes
        c = bisect_left(maxes, key)
        while c < len(maxes):
            keys = self._keys[c]
            values = self._values[c]
            p = bisect_left(keys, key)
            q = bisect_right(keys, key)
            for k in range(p, q):
                if values[k] == value:
                    del keys[k], values[k]
                    self.size -= 1
                    if not keys:
                        del self._keys[c], self._values[c], maxes[c]
                    elif k == len(keys):
                        maxes[c] = keys[-1]
                    return True
            if q < len(keys):
                return False
            c += 1
        return False

    def append(self, other: _Pairs) -> None:
        """Add every pair of ``other``, its keys all at or beyond those held: copies of its
        arrays, made by the calling thread (see :meth:`PeerIndex.append`)."""
        if self._maxes and other._maxes and other._keys[0][0] < self._maxes[-1]:
            raise ValueError("pairs must come after every key held")
        for keys, values in zip(other._keys, other._values, strict=True):
            if keys:
                self._insert_chunk(len(self._maxes), keys[:], values[:])
        self.size += other.size

    def pairs(self) -> Iterator[tuple[int, int]]:
        """Every pair, in key order."""
        for keys, values in zip(self._keys, self._values, strict=True):
            yield from zip(keys, values, strict=True)

    def _insert_chunk(self, c: int, keys: array[int], values: array[int]) -> None:
        self._maxes.insert(c, keys[-1] if keys else -(2**63))
        self._keys.insert(c, keys)
        self._values.insert(c, values)


class PeerIndex:
    """Peer id to (access hash, type, last write, usernames fingerprint, phone key).

    Lookups and writes by id, phone lookups, bulk loading (:meth:`load`). Not thread
    safe: one event loop uses it. :attr:`complete` is set by its owner once every
    stored peer is in it; until then a miss means nothing.
    """

    __slots__ = (
        "_bases",
        "_flags",
        "_hashes",
        "_holders",
        "_ids",
        "_kinds",
        "_maxes",
        "_names",
        "_odd_types",
        "_owners",
        "_phones",
        "_stamps",
        "complete",
        "size",
    )

    def __init__(self) -> None:
        self._maxes: list[int] = []  # the last id of each chunk
        # Each chunk's ids less its base: an array("I") where they span less than 2**31
        # (the base is 2**31 below the first), else an array("q") of the ids (base 0).
        self._bases: list[int] = []
        self._ids: list[array[int]] = []
        self._hashes: list[array[int]] = []
        self._stamps: list[array[int]] = []
        self._kinds: list[array[int]] = []  # type code
        # Usernames fingerprints and phone keys of the peers that have them only (half
        # the peers have no username, most no phone): a peer's is the n-th of its chunk,
        # n the peers before it that have one (_flags: _NAMED | _PHONED a peer). 1 byte a
        # peer and 8 a value, where every peer took 8 for its fingerprint, and a phone
        # 16 in a map of its own.
        self._flags: list[bytearray] = []
        self._names: list[array[int]] = []
        self._phones: list[array[int]] = []
        self._owners = _Pairs("i")  # owner_key(phone key) -> peer ids
        self._odd_types: dict[int, str] = {}  # peer id -> a type name without a code
        # holder key (a name key's top 32 bits) -> ids that held a name of that key (some
        # no longer): a lookup checks each candidate's fingerprint, all 64 bits.
        self._holders = _Pairs("i")
        self.complete = False
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def nbytes(self) -> int:
        """Bytes held by the arrays (not counting Python's per-array overhead)."""
        per_peer = 8 + 4 + 1 + 1
        ids = sum(len(chunk) * chunk.itemsize for chunk in self._ids)
        ids += 8 * sum(len(chunk) for chunk in self._names)
        ids += 8 * sum(len(chunk) for chunk in self._phones)
        pairs = self._owners.nbytes() + self._holders.nbytes()
        return per_peer * self.size + ids + pairs

    # -- reading ----------------------------------------------------------------------------

    def get(self, peer_id: int) -> Found | None:
        """What the index holds for ``peer_id``, or None."""
        maxes = self._maxes
        c = bisect_left(maxes, peer_id)
        if c == len(maxes):
            return None
        ids = self._ids[c]
        x = peer_id - self._bases[c]
        p = bisect_left(ids, x)
        if ids[p] != x:
            return None
        stamp = self._stamps[c][p]
        flags = self._flags[c]
        flag = flags[p]
        names, phones = self._names[c], self._phones[c]
        return (
            self._hashes[c][p],
            _TYPE_NAMES.get(self._kinds[c][p]) or self._odd_types[peer_id],
            stamp if stamp else -1,
            names[_rank(flags, p, _NAMED, len(names))] if flag & _NAMED else NO_NAMES,
            phones[_rank(flags, p, _PHONED, len(phones))] if flag & _PHONED else 0,
        )

    def access(self, peer_id: int) -> tuple[int, str] | None:
        """``(access hash, type name)`` of ``peer_id``, or None: all an id lookup needs."""
        maxes = self._maxes
        c = bisect_left(maxes, peer_id)
        if c == len(maxes):
            return None
        ids = self._ids[c]
        x = peer_id - self._bases[c]
        p = bisect_left(ids, x)
        if ids[p] != x:
            return None
        return (
            self._hashes[c][p],
            _TYPE_NAMES.get(self._kinds[c][p]) or self._odd_types[peer_id],
        )

    def __contains__(self, peer_id: int) -> bool:
        maxes = self._maxes
        c = bisect_left(maxes, peer_id)
        if c == len(maxes):
            return False
        ids = self._ids[c]
        x = peer_id - self._bases[c]
        return bool(ids[bisect_left(ids, x)] == x)

    def by_phone(self, key: int) -> list[int]:
        """The ids of the peers with this phone key (and some may have another: check
        each one's phone key)."""
        return self._owners.values(owner_key(key))

    def by_name(self, key: int) -> list[int]:
        """The ids that held a username of this :func:`name_key` (some may no longer, or
        held another name of the same top 32 bits: a holder's fingerprint is that key,
        or it holds several names)."""
        return self._holders.values(holder_key(key))

    def add_names(self, peer_id: int, names: Iterable[str]) -> None:
        """Note that ``peer_id`` holds these usernames (its fingerprint is set apart)."""
        add_once = self._holders.add_once
        for name in names:
            add_once(holder_key(name_key(name)), peer_id)

    def append(self, other: PeerIndex) -> None:
        """Add every peer of ``other``, its ids all beyond those held (a batch built off
        the event loop): copies of its arrays, made by the calling thread.

        glibc gives each thread its own heap: arrays a worker thread made stay in its
        heap, whose free space the event loop's thread never reuses. The index lives
        where its owner (the event loop's thread) would put it: what it takes the place
        of there (the id table of open(), a closed session's index) is reused.
        """
        if not other._maxes:
            return
        if self._maxes and other._ids[0][0] + other._bases[0] <= self._maxes[-1]:
            raise ValueError("a batch of peers must come after every id held")
        for base, *chunks in zip(other._bases, *other._columns(), strict=True):
            self._insert_chunk(len(self._maxes), tuple(chunk[:] for chunk in chunks), base)
        self.size += other.size
        self._odd_types.update(other._odd_types)
        for phone, peer_id in other._owners.pairs():
            self._owners.add(phone, peer_id)

    def append_holders(self, keys: array[int], ids: array[int]) -> None:
        """Add holders (:func:`holder_key` of their names, sorted, all at or beyond those
        held; an ``array("i")``), in chunks copied by the calling thread (see
        :meth:`append`)."""
        holders = self._holders
        if holders._maxes and keys and keys[0] < holders._maxes[-1]:
            raise ValueError("holders must come after every key held")
        for start in range(0, len(keys), _CHUNK):
            end = start + _CHUNK
            holders._insert_chunk(len(holders._maxes), keys[start:end], ids[start:end])
        holders.size += len(keys)

    def ids(self) -> Iterator[int]:
        """Every id, in order."""
        for base, chunk in zip(self._bases, self._ids, strict=True):
            for x in chunk:
                yield x + base

    # -- writing ----------------------------------------------------------------------------

    def put(
        self,
        peer_id: int,
        access_hash: int,
        type_name: str,
        stamp: int,
        names: int | None,
        phone: int,
    ) -> None:
        """Insert or replace a peer. ``names`` None keeps the stored fingerprint (a new
        peer gets :data:`NO_NAMES`)."""
        kind = _TYPE_CODES.get(type_name, 0)
        if not kind:
            self._odd_types[peer_id] = type_name
        stamp = stamp if 0 < stamp <= _MAX_STAMP else 0
        maxes = self._maxes
        c = bisect_left(maxes, peer_id)
        if c < len(maxes):
            ids = self._ids[c]
            x = peer_id - self._bases[c]
            p = bisect_left(ids, x)
            if ids[p] == x:
                flag = self._flags[c][p]
                if phone or flag & _PHONED:
                    self._set_phone(c, p, peer_id, phone)
                self._hashes[c][p] = access_hash
                self._stamps[c][p] = stamp
                self._kinds[c][p] = kind
                if names or (names is not None and flag & _NAMED):
                    self._set_names(c, p, names)
                return
        elif maxes:
            c -= 1  # past the last id: append to the last chunk
            p = len(self._ids[c])
            maxes[c] = peer_id
        else:
            base, ids = _coded(array("q", (peer_id,)))
            del ids[0]
            self._insert_chunk(0, (ids, *_empty()[1:]), base)
            c = p = 0
            maxes[0] = peer_id
        self._add_at(c, p, peer_id, access_hash, kind, stamp, names, phone)

    def _add_at(
        self,
        c: int,
        p: int,
        peer_id: int,
        access_hash: int,
        kind: int,
        stamp: int,
        names: int | None,
        phone: int,
    ) -> None:
        """Insert a peer not held at position ``p`` of chunk ``c`` (its maximum set)."""
        x = peer_id - self._bases[c]
        if not 0 <= x <= _MAX_OFFSET and self._ids[c].typecode == "I":
            self._ids[c] = array("q", [value + self._bases[c] for value in self._ids[c]])
            self._bases[c] = 0
            x = peer_id
        self._ids[c].insert(p, x)
        self._hashes[c].insert(p, access_hash)
        self._stamps[c].insert(p, stamp)
        self._kinds[c].insert(p, kind)
        self._flags[c].insert(p, 0)
        if names:
            self._set_names(c, p, names)
        if phone:
            self._set_phone(c, p, peer_id, phone)
        self.size += 1
        if len(self._ids[c]) > 2 * _CHUNK:
            self._split(c)

    def write(
        self,
        peer_id: int,
        access_hash: int,
        type_name: str,
        stamp: int,
        phone: int,
        since: int,
    ) -> Found | int:
        """:meth:`put` of a peer keeping its usernames fingerprint, with one search for
        it: 0 once inserted (it was not there), 1 once replaced. Unless the index holds
        it with this access hash, type and phone key, last written after ``since``: then
        nothing changes, and what the index holds (as :meth:`get`) is returned."""
        maxes = self._maxes
        c = bisect_left(maxes, peer_id)
        if c < len(maxes):
            ids = self._ids[c]
            x = peer_id - self._bases[c]
            p = bisect_left(ids, x)
            if ids[p] == x:
                flags = self._flags[c]
                flag = flags[p]
                held_type = _TYPE_NAMES.get(self._kinds[c][p]) or self._odd_types[peer_id]
                held = self._stamps[c][p] or -1
                hashes = self._hashes[c]
                if hashes[p] == access_hash and held_type == type_name and held > since:
                    phones = self._phones[c]
                    held_phone = (
                        phones[_rank(flags, p, _PHONED, len(phones))] if flag & _PHONED else 0
                    )
                    if held_phone == phone:
                        names = self._names[c]
                        return (
                            access_hash,
                            held_type,
                            held,
                            names[_rank(flags, p, _NAMED, len(names))]
                            if flag & _NAMED
                            else NO_NAMES,
                            held_phone,
                        )
                kind = _TYPE_CODES.get(type_name, 0)
                if not kind:
                    self._odd_types[peer_id] = type_name
                if phone or flag & _PHONED:
                    self._set_phone(c, p, peer_id, phone)
                hashes[p] = access_hash
                self._stamps[c][p] = stamp if 0 < stamp <= _MAX_STAMP else 0
                self._kinds[c][p] = kind
                return 1
        elif maxes:
            c -= 1  # past the last id: append to the last chunk
            p = len(self._ids[c])
            maxes[c] = peer_id
        else:
            self.put(peer_id, access_hash, type_name, stamp, None, phone)  # the first peer
            return 0
        kind = _TYPE_CODES.get(type_name, 0)
        if not kind:
            self._odd_types[peer_id] = type_name
        self._add_at(
            c, p, peer_id, access_hash, kind, stamp if 0 < stamp <= _MAX_STAMP else 0, None, phone
        )
        return 0

    def rename(self, peer_id: int, names: int, held: Iterable[str]) -> bool | None:
        """:meth:`set_names` and :meth:`add_names` at once: give a peer in the index the
        fingerprint ``names`` of the usernames ``held`` (:func:`names_fingerprint`) and
        note that it holds them. None if it is not there; False if it has this
        fingerprint already (nothing done: its usernames are ``held``)."""
        found = self.get(peer_id)
        if found is None:
            return None
        if found[3] == names:
            return False
        self.set_names(peer_id, names)
        self.add_names(peer_id, held)
        return True

    def set_names(self, peer_id: int, names: int) -> bool:
        """Give a peer in the index this usernames fingerprint; False if it is not there."""
        maxes = self._maxes
        c = bisect_left(maxes, peer_id)
        if c == len(maxes):
            return False
        ids = self._ids[c]
        x = peer_id - self._bases[c]
        p = bisect_left(ids, x)
        if ids[p] != x:
            return False
        self._set_names(c, p, names)
        return True

    def remove(self, peer_id: int) -> None:
        maxes = self._maxes
        c = bisect_left(maxes, peer_id)
        if c == len(maxes):
            return
        ids = self._ids[c]
        x = peer_id - self._bases[c]
        p = bisect_left(ids, x)
        if ids[p] != x:
            return
        self._set_phone(c, p, peer_id, 0)
        self._odd_types.pop(peer_id, None)
        self._set_names(c, p, NO_NAMES)
        columns = self._columns()
        for column in columns[:-2]:
            del column[c][p]
        self.size -= 1
        if not ids:
            for column in columns:
                del column[c]
            del maxes[c], self._bases[c]
        elif p == len(ids):
            maxes[c] = ids[-1] + self._bases[c]

    def clear(self) -> None:
        self.__init__()  # type: ignore[misc]

    def load(self, rows: Iterable[tuple[int, int, str, int, int, int]]) -> None:
        """Add peers ``(id, access hash, type, last write, names fingerprint, phone key)``.

        Rows in increasing id order beyond every id held are appended a chunk at a
        time (a build from the store); any other row is :meth:`put`.
        """
        columns = _empty()
        ids, hashes, stamps, kinds, flags, names, phones = columns
        last = self._maxes[-1] if self._maxes else None
        codes, odd = _TYPE_CODES, self._odd_types
        for peer_id, access_hash, type_name, stamp, fingerprint, phone in rows:
            if last is not None and peer_id <= last:
                self._append_chunk(columns)
                columns = _empty()
                ids, hashes, stamps, kinds, flags, names, phones = columns
                self.put(peer_id, access_hash, type_name, stamp, fingerprint, phone)
                last = self._maxes[-1] if self._maxes else None
                continue
            kind = codes.get(type_name, 0)
            if not kind:
                odd[peer_id] = type_name
            flag = 0
            if phone:
                flag = _PHONED
                phones.append(phone)
                self._owners.add(owner_key(phone), peer_id)
            if fingerprint:
                flag |= _NAMED
                names.append(fingerprint)
            ids.append(peer_id)
            hashes.append(access_hash)
            stamps.append(stamp if 0 < stamp <= _MAX_STAMP else 0)
            kinds.append(kind)
            flags.append(flag)
            last = peer_id
            if len(ids) == _CHUNK:
                self._append_chunk(columns)
                columns = _empty()
                ids, hashes, stamps, kinds, flags, names, phones = columns
        self._append_chunk(columns)

    # -- chunks -----------------------------------------------------------------------------

    def _columns(self) -> tuple[list[Any], ...]:
        """Every column; the last two hold a value only for the peers that have one."""
        return (
            self._ids,
            self._hashes,
            self._stamps,
            self._kinds,
            self._flags,
            self._names,
            self._phones,
        )

    def _set_names(self, c: int, p: int, names: int) -> None:
        _set_sparse(self._flags[c], self._names[c], p, _NAMED, names)

    def _set_phone(self, c: int, p: int, peer_id: int, phone: int) -> None:
        old = _set_sparse(self._flags[c], self._phones[c], p, _PHONED, phone)
        if old == phone:
            return
        if old:
            self._owners.remove(owner_key(old), peer_id)
        if phone:
            self._owners.add(owner_key(phone), peer_id)

    def _append_chunk(self, columns: tuple[Any, ...]) -> None:
        """Add a chunk built in bulk (its ids as an array("q"))."""
        if columns[0]:
            base, ids = _coded(columns[0])
            self._insert_chunk(len(self._maxes), (ids, *columns[1:]), base)
            self.size += len(ids)

    def _insert_chunk(self, c: int, columns: tuple[Any, ...], base: int) -> None:
        self._maxes.insert(c, columns[0][-1] + base if columns[0] else 0)
        self._bases.insert(c, base)
        for column, chunk in zip(self._columns(), columns, strict=True):
            column.insert(c, chunk)

    def _split(self, c: int) -> None:
        half = len(self._ids[c]) // 2
        tails = []
        flags = self._flags[c]
        cuts = {
            id(self._names): _rank(flags, half, _NAMED, len(self._names[c])),
            id(self._phones): _rank(flags, half, _PHONED, len(self._phones[c])),
        }
        for column in self._columns():
            chunk = column[c]
            cut = cuts.get(id(column), half)
            tails.append(chunk[cut:])
            del chunk[cut:]
        base = self._bases[c]
        self._maxes[c] = self._ids[c][-1] + base
        # Each half coded anew: a chunk made 8-byte by one far id may be 4-byte again.
        self._bases[c], self._ids[c] = _coded(array("q", [x + base for x in self._ids[c]]))
        tail_base, tails[0] = _coded(array("q", [x + base for x in tails[0]]))
        self._insert_chunk(c + 1, tuple(tails), tail_base)


_MAX_OFFSET: Final = 2**32 - 1
_HALF: Final = 2**31


def _coded(ids: array[int]) -> tuple[int, array[int]]:
    """A chunk's ids (an array("q"), in order) as the index keeps them: ``(base, ids less
    base)``, in 4 bytes each where they span less than 2**31."""
    if ids and ids[-1] - ids[0] < _HALF:
        base = ids[0] - _HALF
        return base, array("I", [peer_id - base for peer_id in ids])
    return 0, ids


def _empty() -> tuple[Any, ...]:
    return array("q"), array("q"), array("I"), array("B"), bytearray(), array("q"), array("q")


def _set_sparse(flags: bytearray, column: array[int], p: int, flag: int, value: int) -> int:
    """Give the ``p``-th peer of a chunk ``value`` in a column that holds one for each
    peer with ``flag`` only (0: none, taken out); return the value it had (0: none)."""
    last = p == len(flags) - 1  # no need to count (peers added in id order are)
    if flags[p] & flag:
        k = len(column) - 1 if last else _rank(flags, p, flag, len(column))
        old: int = column[k]
        if value:
            column[k] = value
        else:
            del column[k]
            flags[p] ^= flag
        return old
    if value:
        column.insert(len(column) if last else _rank(flags, p, flag, len(column)), value)
        flags[p] |= flag
    return 0


def _rank(flags: bytearray, p: int, flag: int, held: int) -> int:
    """How many of the first ``p`` peers of a chunk have ``flag`` (``held`` have it in
    all): counted over the shorter side of ``p``."""
    if 2 * p <= len(flags):
        return flags.count(flag, 0, p) + flags.count(_BOTH, 0, p)
    return held - flags.count(flag, p) - flags.count(_BOTH, p)


class IdTable:
    """Access hash and type of stored peers, by id: what an id lookup needs, read in bulk
    (:class:`Columns`, batch after batch in id order) while the index is built, in 17
    bytes a peer. Peers are only ever taken out of it (those written since it was read).
    """

    __slots__ = ("_hashes", "_ids", "_kinds", "_maxes", "_odd_types", "size")

    def __init__(self) -> None:
        self._maxes: list[int] = []  # the last id of each chunk
        self._ids: list[array[int]] = []
        self._hashes: list[array[int]] = []
        self._kinds: list[array[int]] = []
        self._odd_types: dict[int, str] = {}
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def access(self, peer_id: int) -> tuple[int, str] | None:
        """``(access hash, type name)`` of ``peer_id``, or None."""
        maxes = self._maxes
        c = bisect_left(maxes, peer_id)
        if c == len(maxes):
            return None
        ids = self._ids[c]
        p = bisect_left(ids, peer_id)
        if ids[p] != peer_id:
            return None
        return (
            self._hashes[c][p],
            _TYPE_NAMES.get(self._kinds[c][p]) or self._odd_types[peer_id],
        )

    def remove(self, peer_id: int) -> None:
        maxes = self._maxes
        c = bisect_left(maxes, peer_id)
        if c == len(maxes):
            return
        ids = self._ids[c]
        p = bisect_left(ids, peer_id)
        if ids[p] != peer_id:
            return
        del ids[p], self._hashes[c][p], self._kinds[c][p]
        self._odd_types.pop(peer_id, None)
        self.size -= 1
        if not ids:
            del self._ids[c], self._hashes[c], self._kinds[c], maxes[c]
        elif p == len(ids):
            maxes[c] = ids[-1]

    def append(self, other: IdTable) -> None:
        """Add every peer of ``other``, its ids all beyond those held (it is taken over)."""
        if not other._maxes:
            return
        if self._maxes and other._ids[0][0] <= self._maxes[-1]:
            raise ValueError("a batch of peers must come after every id held")
        self._maxes += other._maxes
        self._ids += other._ids
        self._hashes += other._hashes
        self._kinds += other._kinds
        self._odd_types.update(other._odd_types)
        self.size += other.size

    def drop_through(self, last: int) -> None:
        """Let go of every chunk whose ids are all at most ``last`` (the index built so
        far answers for them)."""
        k = bisect_right(self._maxes, last)
        if not k:
            return
        if self._odd_types:
            for chunk in self._ids[:k]:
                for peer_id in chunk:
                    self._odd_types.pop(peer_id, None)
        self.size -= sum(len(chunk) for chunk in self._ids[:k])
        del self._maxes[:k], self._ids[:k], self._hashes[:k], self._kinds[:k]

    def bounds(self) -> tuple[int, int] | None:
        """The first and last ids held, or None."""
        return (self._ids[0][0], self._maxes[-1]) if self._maxes else None

    def extend_raw(self, ids: bytes, hashes: bytes, kinds: bytes) -> None:
        """:meth:`extend` from the columns' bytes in native order (int64, int64, uint8):
        each chunk made straight from them, no array of the whole batch first."""
        n = len(kinds)
        if len(ids) != 8 * n or len(hashes) != 8 * n:
            raise ValueError("columns of different lengths")
        if not n:
            return
        ids_view, hashes_view = memoryview(ids), memoryview(hashes)
        last = self._maxes[-1] if self._maxes else None
        for start in range(0, n, _CHUNK):
            end = min(n, start + _CHUNK)
            chunk, chunk_hashes, chunk_kinds = array("q"), array("q"), array("B")
            chunk.frombytes(ids_view[8 * start : 8 * end])
            chunk_hashes.frombytes(hashes_view[8 * start : 8 * end])
            chunk_kinds.frombytes(kinds[start:end])
            if last is not None and chunk[0] <= last:
                raise ValueError("a batch of peers must come after every id held")
            last = chunk[-1]
            self._maxes.append(last)
            self._ids.append(chunk)
            self._hashes.append(chunk_hashes)
            self._kinds.append(chunk_kinds)
        self.size += n

    def extend(self, columns: Columns) -> None:
        """Add a batch read in bulk, its ids all beyond those held."""
        ids, hashes, kinds = columns.ids, columns.hashes, columns.kinds
        n = len(ids)
        if not n:
            return
        if self._maxes and ids[0] <= self._maxes[-1]:
            raise ValueError("a batch of peers must come after every id held")
        for start in range(0, n, _CHUNK):
            end = start + _CHUNK
            chunk = ids[start:end]
            self._maxes.append(chunk[-1])
            self._ids.append(chunk)
            self._hashes.append(hashes[start:end])
            self._kinds.append(kinds[start:end])
        self.size += n
        self._odd_types.update(columns.odd_types)
