"""The pages whose code blocks the tests run: README.rst and every page under docs/.

``README.rst`` comes first, then ``docs/**/*.rst`` in path order (the built site,
``docs/_build``, excluded). A Python block is a ``.. code-block:: python`` directive
at the start of a line; its code is the indented lines that follow.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
README = REPO_ROOT / "README.rst"
DOCS = REPO_ROOT / "docs"

_BLOCK = re.compile(r"^\.\. code-block:: python\n((?:\n|[ \t]+.*\n)+)", re.MULTILINE)
SKIP = ".. readme-test: skip"
"""A comment on the line before a block: the tests named in its reason run it instead."""


def pages() -> list[Path]:
    """README.rst, then every reStructuredText page of the site."""
    site = sorted(p for p in DOCS.rglob("*.rst") if "_build" not in p.relative_to(DOCS).parts)
    return [README, *site]


def name(page: Path) -> str:
    """The page's path from the repository root, for messages and test ids."""
    return page.relative_to(REPO_ROOT).as_posix()


def python_blocks(page: Path, *, skipped: bool = False) -> list[tuple[int, str]]:
    """``(line, code)`` of each Python block of the page, dedented.

    Blocks after a ``.. readme-test: skip`` comment are left out unless ``skipped``.
    """
    text = page.read_text()
    blocks = []
    for match in _BLOCK.finditer(text):
        before = text[: match.start()].rstrip().splitlines()
        if not skipped and before and before[-1].startswith(SKIP):
            continue
        line = text.count("\n", 0, match.start()) + 1
        blocks.append((line, textwrap.dedent(match.group(1)).strip() + "\n"))
    return blocks


def block_with(marker: str) -> tuple[Path, str]:
    """The page and code of the one Python block, on any page, that contains ``marker``."""
    found = [
        (page, code)
        for page in pages()
        for _, code in python_blocks(page, skipped=True)
        if marker in code
    ]
    if len(found) != 1:
        where = [name(page) for page, _ in found]
        raise LookupError(f"{len(found)} blocks contain {marker!r} (want one): {where}")
    return found[0]


def pages_with(pattern: str) -> list[Path]:
    """The pages whose text matches the regular expression ``pattern`` (multiline)."""
    regex = re.compile(pattern, re.MULTILINE)
    return [page for page in pages() if regex.search(page.read_text())]
