"""kv.for_kurigram_addons and kv.for_aiogram against the real frameworks, offline.

The frameworks run in their own virtualenvs (``tests/clientenv.py``, ``FRAMEWORKS``;
built once, which takes a minute): kurigram-addons pulls Kurigram (the ``pyrogram``
package), aiogram its own pins. ``run_kurigram_addons.py`` and ``run_aiogram.py`` run
there, once per framework and server group (local files, Redis, MongoDB, PostgreSQL), every
backend of the group concurrently, with the servers this test session started; each
test below reads one backend's share of that run. The documented framework blocks run
there too.
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
def runs() -> dict[tuple[str, str], dict[str, Any]]:
    """One script run per (framework, server group), shared by the group's tests."""
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
def test_framework_over_backend(
    framework: str,
    name: str,
    request: pytest.FixtureRequest,
    runs: dict[tuple[str, str], dict[str, Any]],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The framework's storage semantics and a conversation, on this backend."""
    group = _group(name)
    if (framework, group) not in runs:
        config = {
            "backends": list(GROUPS[group]),
            "workdir": str(tmp_path_factory.mktemp(f"{framework}-{group}")),
            "servers": _servers(request, group),
        }
        runs[framework, group] = _run(framework, config)
    report = runs[framework, group][name]
    assert report["failed"] == []
    assert report["passed"] >= MIN_CHECKS[framework]


@pytest.mark.frameworks
@pytest.mark.parametrize("framework", list(FRAMEWORKS))
def test_documented_block(framework: str, tmp_path: Path) -> None:
    """The documented block for the framework runs as written, and its bot works."""
    (page,) = pages_with(rf"^\.\. readme-test: skip \(framework {re.escape(framework)}\b")
    config = {"readme": str(page), "workdir": str(tmp_path), "servers": {}}
    report = _run(framework, config)["readme"]
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
