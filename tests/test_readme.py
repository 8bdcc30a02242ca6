"""Every Python example in README.rst and in the documentation site runs as written.

The pages are README.rst and docs/**/*.rst (``tests/doc_pages.py``). Blocks whose first
line names a client (``# Kurigram 2.2.26``) need that client and run in its own
virtualenv (tests/test_clients.py); a block preceded by the comment
``.. readme-test: skip (reason)`` is not run here either, the reason says where it is.
Examples using ``MONGODB_URI`` get the test run's MongoDB server, those using
``REDIS_URL`` a Redis server started for this module, those using ``POSTGRES_URL``
the test run's PostgreSQL server.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .doc_pages import README, SKIP, name, pages, python_blocks

_CLIENT_LINE = re.compile(
    r"#\s*(kurigram|pyrofork|pyrogram|irenogram|hydrogram|pyrotgfork|electrogram)\b", re.I
)
_ANY_CODE = re.compile(r"^([ \t]*)\.\. (?:code-block|code|sourcecode)::[ \t]*(\S*)", re.MULTILINE)
_LANGUAGES = {"python", "shell", "text", "sql", "json", "ini", "toml"}


def runnable_blocks() -> list[tuple[str, int, str]]:
    blocks = []
    for page in pages():
        for line, code in python_blocks(page):
            if not _CLIENT_LINE.match(code):
                blocks.append((name(page), line, code))
    return blocks


BLOCKS = runnable_blocks()


@pytest.fixture(scope="module")
def readme_redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from .servers.redisserver import RedisServer

    with RedisServer(tmp_path_factory.mktemp("readme-redis")) as server:
        yield server.url


def test_readme_has_examples() -> None:
    assert len([b for b in BLOCKS if b[0] == "README.rst"]) >= 3
    assert len(BLOCKS) >= 30


@pytest.mark.parametrize("page", pages(), ids=name)
def test_every_python_block_is_one_the_tests_find(page: Path) -> None:
    """No Python block hides from the runner: each starts a line, and has a language."""
    text = page.read_text()
    found = {line for line, _ in python_blocks(page, skipped=True)}
    for match in _ANY_CODE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        indent, language = match.groups()
        assert language in _LANGUAGES, f"{name(page)}:{line}: code block language {language!r}"
        if language == "python":
            assert not indent and line in found, f"{name(page)}:{line}: an indented block"
    for line, _ in python_blocks(page, skipped=True):
        before = text.splitlines()[: line - 1]
        comment = next((t for t in reversed(before) if t.strip()), "")
        if comment.startswith(SKIP):
            assert re.match(r"\.\. readme-test: skip \(.+\)$", comment), comment


@pytest.mark.parametrize(
    "page, line, code", BLOCKS, ids=[f"{page}:{line}" for page, line, _ in BLOCKS]
)
def test_readme_example_runs(
    page: str, line: int, code: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    env = dict(os.environ)
    if "MONGODB_URI" in code:
        env["MONGODB_URI"] = request.getfixturevalue("mongo_uri")
    if "REDIS_URL" in code:
        env["REDIS_URL"] = request.getfixturevalue("readme_redis_url")
    if "POSTGRES_URL" in code:
        env["POSTGRES_URL"] = request.getfixturevalue("postgres_server").url
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"{page} line {line}:\n{result.stderr}"
    assert "auth_key=b" not in result.stdout


def test_the_readme_links_every_guide() -> None:
    """README points at each guide page, by its path in the repository."""
    text = README.read_text()
    guides = sorted((README.parent / "docs" / "guides").glob("*.rst"))
    missing = [name(page) for page in guides if page.stem != "index" and name(page) not in text]
    assert guides and not missing, missing


def test_the_readme_fits_on_a_screen_or_a_few() -> None:
    assert len(README.read_text().splitlines()) <= 250


_SHELL = re.compile(r"^\.\. code-block:: shell\n((?:\n|[ \t]+.*\n)+)", re.MULTILINE)


def shell_commands() -> list[tuple[str, int, list[str]]]:
    """Each command of the pages' shell blocks, as words (comments, ``\\``, pipes handled)."""
    import shlex
    import textwrap

    commands = []
    for page in pages():
        text = page.read_text()
        for match in _SHELL.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            script = textwrap.dedent(match.group(1)).replace("\\\n", " ")
            for row in script.splitlines():
                words = shlex.split(re.sub(r"(^|\s)#.*$", "", row))  # a comment starts a word
                command: list[str] = []
                for word in [*words, "|"]:
                    if word in ("|", "&&"):
                        while command and re.match(r"^[A-Z_]+=", command[0]):
                            command.pop(0)  # VAR=value before the command
                        if command:
                            commands.append((name(page), line, command))
                        command = []
                    else:
                        command.append(word)
    return commands


COMMANDS = shell_commands()


def test_documented_commands_are_real() -> None:
    """Every documented ``pyrogram-storage``, ``pip install`` extra and ``make`` target exists.

    The shell blocks are not run (they need servers, accounts and keys); each
    ``pyrogram-storage`` line is parsed by the command's own parser instead.
    """
    import configparser

    from pyrogram_storage.cli import build_parser

    setup = configparser.ConfigParser()
    setup.read(README.parent / "setup.cfg")
    extras = set(setup["options.extras_require"])
    makefile = (README.parent / "Makefile").read_text()
    checked = 0
    for page, line, words in COMMANDS:
        where = f"{page}:{line}: {' '.join(words)}"
        if words[0] == "pyrogram-storage":
            try:
                build_parser().parse_args(words[1:])
            except SystemExit as exc:
                pytest.fail(f"{where}: the parser refuses it (exit {exc.code})")
            checked += 1
        elif words[:2] == ["pip", "install"] or words[1:3] == ["-m", "pip"]:
            for word in words:
                wanted = re.match(r"^(?:\.|pyrogram-storage)\[([^\]]+)\]$", word)
                for extra in wanted.group(1).split(",") if wanted else ():
                    assert extra in extras, f"{where}: no extra {extra!r} in setup.cfg"
        elif words[0] == "make":
            for target in words[1:]:
                assert re.search(rf"^{re.escape(target)}:", makefile, re.M), where
    assert checked >= 20
