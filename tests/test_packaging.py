"""The installed package carries every subpackage and the migrations."""

from __future__ import annotations

import configparser
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_every_subpackage_is_listed_in_setup_cfg() -> None:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    listed = set(config["options"]["packages"].split())
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "pyrogram_storage").rglob("__init__.py")
    }
    assert on_disk - listed == set()


@pytest.mark.slow
def test_wheel_ships_every_migration(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    migrations = sorted(p.relative_to(ROOT) for p in (ROOT / "migrations").rglob("*.*"))
    for path in migrations:
        assert f"pyrogram_storage/{path.as_posix()}" in names
    assert "pyrogram_storage/py.typed" in names


def test_import_loads_no_optional_driver() -> None:
    code = (
        "import sys, pyrogram_storage\n"
        "from pyrogram_storage import FileStorage, MemoryStorage, copy_session, for_client\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'pymongo', 'motor', 'async_pymongo', 'bson', 'telethon', 'pyrogram', 'hydrogram',"
        " 'asyncpg'})\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def _readme_block(marker: str) -> str:
    """The documented Python block (README or docs/) that contains ``marker``."""
    from .doc_pages import block_with

    return block_with(marker)[1]


@pytest.mark.slow
def test_the_shipped_suite_runs_from_an_installed_wheel(tmp_path: Path) -> None:
    """The documented backend passes pyrogram_storage.testing, installed as users install it."""
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("*.whl")
    env = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env)
    python = env / "bin" / "python"
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            f"{wheel}[testing]",
        ],
        check=True,
        capture_output=True,
    )
    project = tmp_path / "user_project"
    project.mkdir()
    backend = _readme_block("class DictStorage(Storage)")
    five_lines = _readme_block("class TestDictStorage(StorageContract)")
    (project / "test_my_backend.py").write_text(backend + "\n\n" + five_lines)
    done = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", str(project)],
        cwd=project,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    summary = done.stdout.strip().splitlines()[-1]
    passed = int(summary.split(" passed")[0].split()[-1])
    assert passed >= 40 and "failed" not in summary, summary
