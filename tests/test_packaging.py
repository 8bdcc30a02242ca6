"""The installed package carries every subpackage and the migrations.

The release artifacts are made as a release makes them (``python -m build``: the sdist,
then the wheel built from that sdist), once per run, and each is installed in a fresh
virtualenv and used there.
"""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
import venv
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import pyrogram_storage

ROOT = Path(__file__).resolve().parent.parent
NOT_SOURCES = (
    ".git",
    ".venv",
    ".venvs",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".*_cache",
    ".hypothesis",
)


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """The sdist and the wheel of the working tree, as ``python -m build`` makes them."""
    # From a copy of the tree: the build writes its egg-info and build/ beside the
    # sources, where other workers' pip installs of the tree would meet them.
    source = tmp_path_factory.mktemp("source") / "pyrogram-storage"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*NOT_SOURCES))
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    yield {"sdist": sdist, "wheel": wheel}


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
def test_wheel_ships_every_migration(dist: dict[str, Path]) -> None:
    names = set(zipfile.ZipFile(dist["wheel"]).namelist())
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
def test_the_shipped_suite_runs_from_an_installed_wheel(
    dist: dict[str, Path], tmp_path: Path
) -> None:
    """The documented backend passes pyrogram_storage.testing, installed as users install it."""
    wheel = dist["wheel"]
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


@pytest.mark.parametrize(
    ("old", "name", "new"),
    [
        ("pyrogram_storage.file", "FileStorage", "pyrogram_storage.sqlite.file"),
        ("pyrogram_storage.memory", "MemoryStorage", "pyrogram_storage.sqlite.memory"),
        ("pyrogram_storage.sqlite_schema", "Layout", "pyrogram_storage.sqlite.schema"),
        ("pyrogram_storage.checks", "normalize_username", "pyrogram_storage.validation"),
        ("pyrogram_storage.kv.registry", "from_url", "pyrogram_storage.registry"),
    ],
)
def test_modules_moved_in_0_2_still_import_and_warn(old: str, name: str, new: str) -> None:
    """Imports written for 0.1 keep working for one release (issue 22: nothing a user
    relies on changes), and say where the name lives now."""
    import importlib

    module = importlib.import_module(old)
    with pytest.warns(DeprecationWarning, match=f"{old} moved to {new}"):
        value = getattr(module, name)
    assert callable(value)
    with pytest.raises(AttributeError), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert module.no_such_name is None


SMOKE = """
import asyncio, sys
from pathlib import Path

import pyrogram_storage
from pyrogram_storage import FileStorage, SessionData

assert Path(pyrogram_storage.__file__).is_relative_to(sys.prefix), pyrogram_storage.__file__


async def main(folder):
    async with FileStorage("smoke", folder) as storage:
        await storage.update_session(dc_id=2, auth_key=bytes(256), user_id=42, is_bot=False)
    async with FileStorage("smoke", folder) as storage:
        session = await storage.get_session()
        assert isinstance(session, SessionData) and session.user_id == 42, session
    print(pyrogram_storage.__version__)


asyncio.run(main(sys.argv[1]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("artifact", ["sdist", "wheel"])
def test_each_artifact_installs_in_a_fresh_venv_and_works(
    dist: dict[str, Path], artifact: str, tmp_path: Path
) -> None:
    """Import, a FileStorage written and read back, and the command's --version."""
    version = pyrogram_storage.__version__
    assert dist[artifact].name.startswith(f"pyrogram_storage-{version}")
    env = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env)
    python = env / "bin" / "python"
    installed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--disable-pip-version-check",
            "--no-deps",
            str(dist[artifact]),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    elsewhere = tmp_path / "elsewhere"  # not the repository, whose package would shadow it
    elsewhere.mkdir()
    smoke = subprocess.run(
        [str(python), "-c", SMOKE, str(elsewhere)],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert smoke.returncode == 0, smoke.stderr[-3000:]
    assert smoke.stdout.strip() == version
    assert (elsewhere / "smoke.session").is_file()
    command = subprocess.run(
        [str(env / "bin" / "pyrogram-storage"), "--version"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert command.returncode == 0, command.stderr
    assert command.stdout.strip() == f"pyrogram-storage {version}"
