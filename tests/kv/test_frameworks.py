"""kv.for_kurigram_addons and kv.for_aiogram against the real frameworks, offline.

The frameworks run in their own virtualenvs (``tests/clientenv.py``, ``FRAMEWORKS``;
built once, which takes a minute): kurigram-addons pulls Kurigram (the ``pyrogram``
package), aiogram its own pins. ``run_kurigram_addons.py`` and ``run_aiogram.py`` run
there, once per framework: the server groups (local files, Redis, MongoDB, PostgreSQL)
one after another, every backend of a group concurrently, with the servers this test
session started, then the documented framework block; each test below reads one
backend's (or the block's) share of that run.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ..clientenv import FRAMEWORKS, REPO_ROOT, run_in_env
from ..doc_pages import pages_with
from ..missing_driver import missing_driver_error
from .conftest import BACKENDS
from .framework_backends import GROUPS, NAMES

HERE = Path(__file__).resolve().parent
SCRIPTS = {"kurigram-addons": "run_kurigram_addons.py", "aiogram": "run_aiogram.py"}
MIN_CHECKS = {"kurigram-addons": 65, "aiogram": 50}
"""Fewer passed checks than this means a script stopped short of its scenario."""


def _run(framework: str, config: dict[str, Any]) -> dict[str, Any]:
    result = run_in_env(
        framework,
        HERE / SCRIPTS[framework],
        json.dumps(config),
        check=False,
        timeout=600,
        cwd=HERE,
    )
    assert result.returncode == 0, (
        f"{framework} exited {result.returncode}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    )
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])["results"]
    return report


@pytest.fixture(scope="module")
def runs() -> dict[str, dict[str, Any]]:
    """The reports of the framework runs so far, by framework."""
    return {}


def _servers(request: pytest.FixtureRequest, group: str) -> dict[str, str]:
    if group == "redis":
        return {
            "redis": request.getfixturevalue("redis_server").url,
            "redis-cluster": request.getfixturevalue("redis_cluster").url,
        }
    if group == "mongo":
        return {"mongo": request.getfixturevalue("mongo_uri")}
    if group == "postgres":
        return {"postgres": request.getfixturevalue("postgres_server").url}
    return {}


def _group(name: str) -> str:
    return next(group for group, names in GROUPS.items() if name in names)


def _report(framework: str, name: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    """One backend's (or ``readme``'s) share of the framework's run.

    A framework's first test runs, in one interpreter of its venv, every server group
    and the documented block of it that this session selected (the framework and the
    drivers import once); the groups one after another, a group's backends concurrently.
    """
    runs: dict[str, dict[str, Any]] = request.getfixturevalue("runs")
    if framework not in runs:
        groups: list[str] = []
        readme = False
        for item in request.session.items:
            if getattr(item, "module", None) is not request.module:
                continue
            callspec = getattr(item, "callspec", None)
            params = {} if callspec is None else callspec.params
            if params.get("framework") != framework:
                continue
            if "name" in params and _group(params["name"]) not in groups:
                groups.append(_group(params["name"]))
            readme = readme or getattr(item, "originalname", "") == "test_documented_block"
        servers: dict[str, str] = {}
        for group in groups:
            servers.update(_servers(request, group))
        config: dict[str, Any] = {
            "groups": [list(GROUPS[group]) for group in groups],
            "workdir": str(request.getfixturevalue("tmp_path_factory").mktemp(framework)),
            "servers": servers,
        }
        if readme:
            (page,) = pages_with(rf"^\.\. readme-test: skip \(framework {re.escape(framework)}\b")
            config["readme"] = str(page)
        runs[framework] = _run(framework, config)
    assert name in runs[framework], f"{framework} ran no {name}"
    report: dict[str, Any] = runs[framework][name]
    return report


def test_every_backend_is_covered() -> None:
    assert sorted(NAMES) == sorted(BACKENDS)
    assert sorted(name for names in GROUPS.values() for name in names) == sorted(NAMES)


@pytest.mark.frameworks
@pytest.mark.parametrize(
    "name",
    [
        pytest.param(
            name,
            marks=[pytest.mark.mongo]
            if name.startswith("mongo")
            else [pytest.mark.postgres]
            if name.startswith("postgres")
            else [],
        )
        for name in NAMES
    ],
)
@pytest.mark.parametrize("framework", list(FRAMEWORKS))
def test_framework_over_backend(framework: str, name: str, request: pytest.FixtureRequest) -> None:
    """The framework's storage semantics and a conversation, on this backend."""
    report = _report(framework, name, request)
    assert report["failed"] == []
    assert report["passed"] >= MIN_CHECKS[framework]


@pytest.mark.frameworks
@pytest.mark.parametrize("framework", list(FRAMEWORKS))
def test_documented_block(framework: str, request: pytest.FixtureRequest) -> None:
    """The documented block for the framework runs as written, and its bot works."""
    report = _report(framework, "readme", request)
    assert report["failed"] == []
    assert report["passed"] >= 4


def test_import_kv_loads_no_framework() -> None:
    code = (
        "import sys\n"
        "import pyrogram_storage.kv as kv\n"
        "from pyrogram_storage.kv import for_aiogram, for_kurigram_addons\n"
        "import pyrogram_storage.kv.frameworks\n"
        "roots = {'aiogram', 'kurigram_addons', 'pyrogram_patch', 'pyrogram'}\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in roots)\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT)


@pytest.mark.parametrize(
    "blocked, build, extra",
    [
        ("aiogram", "kv.for_aiogram(kv.MemoryKV())", "aiogram"),
        ("kurigram_addons", "kv.for_kurigram_addons(kv.MemoryKV())", "kurigram-addons"),
    ],
)
def test_a_missing_framework_names_its_extra(blocked: str, build: str, extra: str) -> None:
    got_extra, message = missing_driver_error(blocked, "from pyrogram_storage import kv", build)
    assert got_extra == extra
    assert f"pip install pyrogram-storage[{extra}]" in message


@pytest.mark.frameworks
@pytest.mark.mongo
def test_benchmark_runs(tmp_path: Path) -> None:
    """benchmarks/kv_frameworks.py runs end to end at a tiny scale and writes its report."""
    subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "benchmarks" / "kv_frameworks.py"),
            "--repeat",
            "1",
            "--scale",
            "0.01",
            "--out",
            str(tmp_path),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=900,
        cwd=REPO_ROOT,
    )
    report = json.loads((tmp_path / "kv-frameworks.json").read_text())
    medians = report["analysis"]["medians"]
    assert "ours: SQLiteKV" in medians["kurigram-addons"]
    assert "aiogram PyMongoStorage" in medians["aiogram"]
    assert "MemoryKV.get" in (tmp_path / "kv-frameworks.md").read_text()
