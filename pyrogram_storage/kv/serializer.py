"""Values as text: JSON, extended so that common Python types come back as themselves.

``datetime``, ``date``, ``time``, ``timedelta``, ``set``, ``frozenset``, ``tuple``,
``bytes``, ``Decimal``, ``UUID`` and dicts with non-``str`` keys are written as small
tagged objects (``{"$kv": "set", "v": [...]}``); a dict that itself has a ``"$kv"`` key is
escaped the same way, so no value is mistaken for a tag. The text is canonical (sorted
keys, sorted set members), so two equal values encode to the same text in any process,
which is what ``compare_and_set`` compares on the server. Pickle is never used.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

__all__ = ["JSON", "JSONSerializer", "Serializer", "UnsupportedType"]

_TAG = "$kv"


@runtime_checkable
class Serializer(Protocol):
    """What ``serializer=`` takes: text in, text out.

    ``dumps`` raises ``TypeError`` (or ``ValueError``) for a value it cannot write; the
    store turns that into :class:`~pyrogram_storage.kv.KVSerializationError`. A binary
    format can base64 its bytes. Integers never reach it: every store keeps them as
    integers, so that ``increment`` works on them.
    """

    def dumps(self, value: Any) -> str:
        """Return ``value`` as text; raise ``TypeError`` or ``ValueError`` if it cannot."""
        ...

    def loads(self, text: str) -> Any:
        """Return the value ``text`` holds (what :meth:`dumps` wrote); raise if it cannot."""
        ...


class UnsupportedType(TypeError):
    """The default serializer met a value of a type it does not know."""

    def __init__(self, kind: type) -> None:
        super().__init__(f"{kind.__module__}.{kind.__qualname__} is not serializable")
        self.kind = kind


_SCALARS = (str, int, float, bool, type(None))


def _sort_key(item: tuple[str, Any]) -> str:
    return item[0]


def _encode(value: Any) -> Any:
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is dict:
        if all(type(k) is str for k in value) and _TAG not in value:
            return {k: _encode(v) for k, v in value.items()}
        pairs = [(_text(k), _encode(v)) for k, v in value.items()]
        pairs.sort(key=_sort_key)
        return {_TAG: "dict", "v": [[json.loads(k), v] for k, v in pairs]}
    if kind is list:
        return [_encode(item) for item in value]
    if kind is tuple:
        return {_TAG: "tuple", "v": [_encode(item) for item in value]}
    if kind is set or kind is frozenset:
        members = sorted(_text(item) for item in value)
        return {_TAG: kind.__name__, "v": [json.loads(member) for member in members]}
    if kind is dt.datetime:
        return {_TAG: "datetime", "v": value.isoformat()}
    if kind is dt.date:
        return {_TAG: "date", "v": value.isoformat()}
    if kind is dt.time:
        return {_TAG: "time", "v": value.isoformat()}
    if kind is dt.timedelta:
        return {_TAG: "timedelta", "v": [value.days, value.seconds, value.microseconds]}
    if kind is bytes:
        return {_TAG: "bytes", "v": base64.b64encode(value).decode("ascii")}
    if kind is Decimal:
        return {_TAG: "decimal", "v": str(value)}
    if kind is uuid.UUID:
        return {_TAG: "uuid", "v": str(value)}
    # Subclasses of the JSON types (IntEnum, StrEnum, a NamedTuple...) come back as the base type.
    for base, convert in _BASES:
        if isinstance(value, base):
            return _encode(convert(value))
    raise UnsupportedType(kind)


_BASES: tuple[tuple[type, Any], ...] = (
    (bool, bool),
    (int, int),
    (float, float),
    (str, str),
    (dict, dict),
    (list, list),
    (tuple, tuple),
)


# Built once: json.dumps/loads with any non-default argument build a new encoder or
# decoder on every call, a third of the cost of a small value.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_PLAIN_TEXT = json.JSONEncoder(ensure_ascii=False)


def _text(value: Any) -> str:
    return _CANONICAL.encode(_encode(value))


def _decode_tagged(tag: Any, payload: Any) -> Any:
    if tag == "datetime":
        return dt.datetime.fromisoformat(payload)
    if tag == "date":
        return dt.date.fromisoformat(payload)
    if tag == "time":
        return dt.time.fromisoformat(payload)
    if tag == "timedelta":
        days, seconds, microseconds = payload
        return dt.timedelta(days=days, seconds=seconds, microseconds=microseconds)
    if tag == "set":
        return set(payload)
    if tag == "frozenset":
        return frozenset(payload)
    if tag == "tuple":
        return tuple(payload)
    if tag == "bytes":
        return base64.b64decode(payload)
    if tag == "decimal":
        return Decimal(payload)
    if tag == "uuid":
        return uuid.UUID(payload)
    if tag == "dict":
        return {_freeze(k): v for k, v in payload}
    raise ValueError(f"unknown tag {tag!r}")


def _freeze(key: Any) -> Any:
    # Dict keys decoded from JSON lists (tuples written as tagged lists come back as tuples).
    return tuple(key) if type(key) is list else key


def _hook(obj: dict[str, Any]) -> Any:
    if _TAG in obj and len(obj) == 2 and "v" in obj:
        return _decode_tagged(obj[_TAG], obj["v"])
    return obj


_DECODER = json.JSONDecoder(object_hook=_hook)


def object_members(mapping: Mapping[Any, Any]) -> list[tuple[str, str, str]] | None:
    """``(key, key as JSON, value as JSON)`` of each item of a dict, sorted by key.

    The texts are what :meth:`JSONSerializer.dumps` writes for them inside the dict's
    text, which is ``"{" + ",".join(k + ":" + v for _, k, v in members) + "}"``: a server
    splices them into a stored dict's text to merge into it without decoding a value.
    None when ``dumps`` tags the dict instead (a key that is not a ``str``, or ``"$kv"``).

    :raises UnsupportedType: a value (or a part of one) of a type it does not know.
    """
    if _TAG in mapping or not all(type(key) is str for key in mapping):
        return None
    encode = _CANONICAL.encode
    return [(key, encode(key), encode(_encode(mapping[key]))) for key in sorted(mapping)]


class JSONSerializer:
    """The default serializer: canonical JSON with tagged extra types (never pickle)."""

    def dumps(self, value: Any) -> str:
        """Return ``value`` as canonical JSON text (extra types tagged).

        :raises UnsupportedType: a value (or a part of one) of a type it does not know.
        """
        if type(value) is str:
            return _PLAIN_TEXT.encode(value)
        return _CANONICAL.encode(_encode(value))

    def loads(self, text: str) -> Any:
        """Return the value of JSON ``text``, tagged types as themselves.

        :raises ValueError: ``text`` is not JSON this serializer wrote.
        """
        return _DECODER.decode(text)

    def __repr__(self) -> str:
        return "JSONSerializer()"


JSON = JSONSerializer()
"""The serializer every store uses unless given ``serializer=``."""
