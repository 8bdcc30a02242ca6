"""Glob patterns for ``keys()``/``values()``/``items()``, one grammar on every backend.

``*`` matches any run of characters (``:`` and ``/`` included), ``?`` one character,
``[abc]``, ``[a-z]`` one of a set, ``[!a]`` or ``[^a]`` one not in it, and ``\\`` makes
the next character literal. Each pattern is compiled once into a regular expression
(the final word on a match), its literal prefix (for an index range on SQLite and
MongoDB) and the same glob in Redis' ``SCAN MATCH`` syntax.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import InvalidPatternError

__all__ = ["MAX_PATTERN_LENGTH", "Pattern", "compile_pattern"]

MAX_PATTERN_LENGTH = 1024
"""The longest pattern accepted, in characters."""
_REDIS_SPECIAL = frozenset("*?[]\\^-")


@dataclass(frozen=True)
class Pattern:
    """A compiled glob pattern."""

    text: str
    regex: re.Pattern[str]
    prefix: str
    """The literal characters before the first wildcard."""
    redis: str
    """The pattern in Redis glob syntax (every literal escaped)."""
    everything: bool
    """True for ``*``: every key matches, no filtering needed."""

    def match(self, key: str) -> bool:
        """True if ``key`` matches the pattern."""
        return self.everything or self.regex.fullmatch(key) is not None


_cache: dict[str, Pattern] = {}


def compile_pattern(pattern: object) -> Pattern:
    """Compile a glob pattern.

    :raises InvalidPatternError: it is not a ``str``, is too long, or is malformed.
    """
    if type(pattern) is not str:
        raise InvalidPatternError(f"a pattern is a str, not {type(pattern).__name__}")
    found = _cache.get(pattern)
    if found is not None:
        return found
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise InvalidPatternError(f"a pattern has at most {MAX_PATTERN_LENGTH} characters")
    if "\x00" in pattern:
        raise InvalidPatternError("a pattern cannot contain NUL characters")
    try:
        pattern.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidPatternError(f"a pattern must be valid Unicode text: {pattern!r}") from None
    compiled = _compile(pattern)
    if len(_cache) >= 256:
        _cache.clear()
    _cache[pattern] = compiled
    return compiled


def _redis_literal(char: str) -> str:
    return "\\" + char if char in _REDIS_SPECIAL else char


def _compile(text: str) -> Pattern:
    regex: list[str] = []
    redis: list[str] = []
    prefix: list[str] = []
    literal_run = True
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == "\\":
            if i + 1 == n:
                raise InvalidPatternError(f"pattern {text!r} ends with a lone backslash")
            char = text[i + 1]
            regex.append(re.escape(char))
            redis.append(_redis_literal(char))
            if literal_run:
                prefix.append(char)
            i += 2
            continue
        if char == "*":
            regex.append(".*")
            redis.append("*")
            literal_run = False
        elif char == "?":
            regex.append(".")
            redis.append("?")
            literal_run = False
        elif char == "[":
            i = _bracket(text, i, regex, redis)
            literal_run = False
            continue
        else:
            regex.append(re.escape(char))
            redis.append(_redis_literal(char))
            if literal_run:
                prefix.append(char)
        i += 1
    return Pattern(
        text=text,
        regex=re.compile("".join(regex), re.DOTALL),
        prefix="".join(prefix),
        redis="".join(redis),
        everything=text == "*",
    )


def _bracket(text: str, start: int, regex: list[str], redis: list[str]) -> int:
    """Translate the ``[...]`` set starting at ``start``; return the index after it."""
    i = start + 1
    negate = i < len(text) and text[i] in "!^"
    if negate:
        i += 1
    items: list[tuple[str, str]] = []  # (first, last) character ranges
    first = True
    while True:
        if i >= len(text):
            raise InvalidPatternError(f"pattern {text!r} has an unclosed '['")
        char = text[i]
        if char == "]" and not first:
            i += 1
            break
        first = False
        if char == "\\":
            if i + 1 >= len(text):
                raise InvalidPatternError(f"pattern {text!r} ends with a lone backslash")
            char = text[i + 1]
            i += 1
        low = char
        i += 1
        if i + 1 < len(text) and text[i] == "-" and text[i + 1] != "]":
            high = text[i + 1]
            if high == "\\":
                if i + 2 >= len(text):
                    raise InvalidPatternError(f"pattern {text!r} ends with a lone backslash")
                high = text[i + 2]
                i += 1
            i += 2
            if high < low:
                raise InvalidPatternError(f"pattern {text!r} has a reversed range {low}-{high}")
            items.append((low, high))
        else:
            items.append((low, low))
    body = "".join(
        re.escape(low) if low == high else f"{re.escape(low)}-{re.escape(high)}"
        for low, high in items
    )
    regex.append(f"[{'^' if negate else ''}{body}]")
    redis_body = "".join(
        _redis_literal(low) if low == high else f"{_redis_literal(low)}-{_redis_literal(high)}"
        for low, high in items
    )
    redis.append(f"[{'^' if negate else ''}{redis_body}]")
    return i
