"""The installed package carries every subpackage and the migrations."""

from __future__ import annotations

import configparser
import subprocess
import sys
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
        "{'pymongo', 'motor', 'async_pymongo', 'bson', 'telethon', 'pyrogram', 'hydrogram'})\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
