"""The migration files: includes, layout companions, and the six forms of schema 1.

``migrations/README`` lists how the forms a version-1 database can take differ; the
tests here build every form (new files in both layouts, and the clients' real files
adopted) and check that list, and run the README's SQL examples on each.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyrogram_storage import _migrations
from pyrogram_storage.errors import MigrationError
from pyrogram_storage.sqlite import schema as sqlite_schema
from pyrogram_storage.sqlite.schema import Layout, create_schema, prepare

from .fixture_files import CLIENT_NAMES, copy_fixture

ROOT = Path(__file__).resolve().parent.parent / "migrations"
README = (ROOT / "README").read_text()

# Form number (migrations/README) of each client's adopted file.
FORM_OF = {
    "pyrogram": 3,
    "hydrogram": 3,
    "pyrofork": 4,
    "electrogram": 4,
    "pyrotgfork": 5,
    "kurigram": 6,
    "irenogram": 6,
}
FORMS = ["new-upstream", "new-pyrofork", *CLIENT_NAMES]
MIRROR_TRIGGERS = {
    "trg_usernames_mirror_insert",
    "trg_usernames_mirror_delete",
    "trg_usernames_unmirror_insert",
    "trg_usernames_unmirror_delete",
    "trg_usernames_stamp",
}


def _form(name: str) -> int:
    return {"new-upstream": 1, "new-pyrofork": 2}.get(name) or FORM_OF[name]


def _build(name: str, workdir: Path) -> sqlite3.Connection:
    """A database of the form ``name`` at the latest schema, on a connection in
    autocommit mode."""
    if name.startswith("new-"):
        db = sqlite3.connect(workdir / f"{name}.session", isolation_level=None)
        create_schema(db, Layout(name.removeprefix("new-")))
        prepare(db, str(workdir / f"{name}.session"), Layout.UPSTREAM)
        return db
    path = copy_fixture(name, workdir)
    db = sqlite3.connect(path, isolation_level=None)
    prepare(db, str(path), Layout.UPSTREAM)
    return db


def _columns(db: sqlite3.Connection, table: str) -> list[tuple[str, str, int, str | None]]:
    return [(r[1], r[2], r[3], r[4]) for r in db.execute(f"PRAGMA table_info({table})")]


def _names(db: sqlite3.Connection, kind: str) -> set[str]:
    rows = db.execute(
        "SELECT name FROM sqlite_master WHERE type = ? AND name NOT LIKE 'sqlite_%'", (kind,)
    )
    return {row[0] for row in rows}


@pytest.mark.parametrize("name", FORMS)
def test_every_form_of_the_schema_is_what_migrations_readme_says(name: str, tmp_path: Path) -> None:
    form = _form(name)
    upstream = form in (1, 3, 5, 6)
    db = _build(name, tmp_path)
    try:
        assert db.execute("PRAGMA user_version").fetchone() == (_migrations.latest("sqlite"),)
        assert db.execute("SELECT number FROM version").fetchall() == [(7 if upstream else 4,)]
        sessions = [c[0] for c in _columns(db, "sessions")]
        peers = _columns(db, "peers")
        usernames = {c[0]: c for c in _columns(db, "usernames")}
        assert set(sessions) >= set(sqlite_schema._OUR_COLUMNS["sessions"])
        assert {c[0] for c in peers} >= sqlite_schema._OUR_COLUMNS["peers"]
        assert set(usernames) == (
            {"id", "username", "peer_id", "last_update_on"}
            if upstream
            else {"id", "peer_id", "last_update_on"}
        )
        # Column order and declared types.
        if form in (1, 2, 6):
            assert sessions[1:3] == ["server_address", "port"]
        else:
            assert sessions[-2:] == ["server_address", "port"]
        names = [c[0] for c in peers]
        assert names.index("username") == (3 if form <= 4 else len(names) - 1)
        assert dict((c[0], c[1]) for c in peers)["type"] == ("TEXT" if form <= 2 else "INTEGER")
        stamp = usernames["last_update_on"]
        if form in (5, 6):
            assert stamp[2:] == (0, None)  # nullable, no default
        else:
            assert stamp[2] == 1 and "STRFTIME" in (stamp[3] or "")
        # Triggers and indexes.
        triggers = _names(db, "trigger")
        expected = set(MIRROR_TRIGGERS) if upstream else set()
        if form >= 3:
            expected.add("trg_peers_last_update_on")
        if form == 4:
            expected.add("trg_usernames_last_update_on")
        assert triggers == expected
        indexes = _names(db, "index")
        assert indexes == (
            {
                "idx_peers_username",
                "idx_peers_phone_number",
                "idx_usernames_id",
                "idx_usernames_username",
                "idx_usernames_peer_id",
                "idx_usernames_name",
            }
            if upstream
            else {"idx_peers_username", "idx_peers_phone_number", "idx_usernames_peer_id"}
        )
        # Schema 2: the peers table's indexes hold only the peers with a username or phone.
        partial = {
            row[0]: row[1]
            for row in db.execute("SELECT name, sql FROM sqlite_master WHERE tbl_name = 'peers'")
        }
        assert "WHERE username IS NOT NULL" in partial["idx_peers_username"]
        assert "WHERE phone_number IS NOT NULL" in partial["idx_peers_phone_number"]
        assert _names(db, "view") == set()
        # Names a client wrote before adoption have no mirror rows (forms 5 and 6).
        mirrors = db.execute("SELECT count(*) FROM usernames WHERE peer_id IS NOT NULL")
        assert (mirrors.fetchone()[0] > 0) is (form == 4)
    finally:
        db.close()


def _readme_sql() -> list[str]:
    """The SQL of every ``.. code-block:: sql`` in migrations/README, in order."""
    blocks = []
    lines = README.splitlines()
    for number, line in enumerate(lines):
        if line.strip() == ".. code-block:: sql":
            indent = len(line) - len(line.lstrip())
            body = []
            for following in lines[number + 1 :]:
                if following.strip() and len(following) - len(following.lstrip()) <= indent:
                    break
                body.append(following)
            blocks.append(" ".join(" ".join(body).split()))
    return blocks


@pytest.mark.parametrize("name", FORMS)
def test_the_readme_examples_run_where_it_says(name: str, tmp_path: Path) -> None:
    everywhere, upstream_only = _readme_sql()
    db = _build(name, tmp_path)
    try:
        db.execute("BEGIN")
        db.execute(everywhere)
        if _form(name) in (2, 4):
            with pytest.raises(sqlite3.OperationalError, match="no such column: username"):
                db.execute(upstream_only)
        else:
            db.execute(upstream_only)
        db.execute("ROLLBACK")
    finally:
        db.close()


# -- includes ---------------------------------------------------------------------------------


def test_scripts_come_with_their_includes_expanded() -> None:
    texts = [step.text for step in _migrations.numbered("sqlite")]
    texts += [text for _, text in _migrations.scripts("sqlite")]
    for text in texts:
        assert not re.search(r"^\.read", text, re.MULTILINE), text[:200]
    first = _migrations.numbered("sqlite")[0].text
    assert first.count("CREATE TABLE usernames") == 1
    assert "trg_usernames_mirror_insert" in first
    adopt = _migrations.script("sqlite", "adopt", "upstream_v6.sql")
    assert "ADD COLUMN server_address" in adopt and "trg_usernames_unmirror_delete" in adopt


@pytest.fixture
def fake_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A copy of the migrations folder the loader reads instead of the real one."""
    root = tmp_path / "migrations"
    shutil.copytree(ROOT, root)
    monkeypatch.setattr(_migrations, "root", lambda: root)
    caches = (_migrations.numbered, _migrations.script, sqlite_schema._known_triggers)
    for cache in caches:
        cache.cache_clear()
    yield root / "sqlite"
    for cache in caches:
        cache.cache_clear()


@pytest.mark.parametrize(
    "files, message",
    [
        ({"a.sql": ".read adopt/b.sql\n", "b.sql": ".read adopt/a.sql\n"}, "from itself"),
        ({"a.sql": ".read ../mongo/0001_initial.json\n"}, "leaves migrations/sqlite"),
        ({"a.sql": ".read /etc/passwd\n"}, "leaves migrations/sqlite"),
        ({"a.sql": "SELECT 1;\n.read shared/nothing.sql\n"}, "nothing.sql is missing"),
    ],
)
def test_includes_that_loop_escape_or_are_missing_are_refused(
    fake_root: Path, files: dict[str, str], message: str
) -> None:
    for name, text in files.items():
        (fake_root / "adopt" / name).write_text(text)
    with pytest.raises(MigrationError, match=message):
        _migrations.script("sqlite", "adopt", "a.sql")


@pytest.mark.skipif(shutil.which("sqlite3") is None, reason="no sqlite3 shell installed")
def test_the_sqlite3_shell_builds_the_same_schema_from_the_same_files(tmp_path: Path) -> None:
    shell = tmp_path / "shell.db"
    subprocess.run(
        ["sqlite3", str(shell), ".read 0001_initial.sql"], cwd=ROOT / "sqlite", check=True
    )
    ours = sqlite3.connect(tmp_path / "ours.db", isolation_level=None)
    create_schema(ours, Layout.UPSTREAM)
    theirs = sqlite3.connect(shell)
    try:
        query = "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name"
        assert theirs.execute(query).fetchall() == ours.execute(query).fetchall()
    finally:
        ours.close()
        theirs.close()


# -- companions of a numbered step ------------------------------------------------------------


def test_a_step_runs_its_companion_for_the_database_layout_only(fake_root: Path) -> None:
    (fake_root / "0003_demo.sql").write_text("CREATE TABLE demo_everywhere (x);\n")
    (fake_root / "0003_demo.upstream.sql").write_text(
        "CREATE INDEX idx_usernames_name_peer ON usernames (username, id);\n"
    )
    (fake_root / "0003_demo.pyrofork.sql").write_text("CREATE TABLE demo_pyrofork (x);\n")
    assert _migrations.latest("sqlite") == 3
    for layout in Layout:
        db = sqlite3.connect(":memory:", isolation_level=None)
        try:
            create_schema(db, layout)
            assert db.execute("PRAGMA user_version").fetchone() == (1,)
            assert prepare(db, ":memory:", Layout.UPSTREAM) is layout
            assert db.execute("PRAGMA user_version").fetchone() == (3,)
            objects = _names(db, "table") | _names(db, "index")
            assert "demo_everywhere" in objects
            assert ("idx_usernames_name_peer" in objects) is (layout is Layout.UPSTREAM)
            assert ("demo_pyrofork" in objects) is (layout is Layout.PYROFORK)
        finally:
            db.close()


@pytest.mark.parametrize(
    "files, message",
    [
        ({"0003_demo.sql": "SELECT 1;", "0003_demo.bogus.sql": "SELECT 1;"}, "unknown layouts"),
        ({"0003_demo.pyrofork.sql": "SELECT 1;"}, "no main file"),
    ],
)
def test_a_companion_for_no_layout_or_no_step_is_refused(
    fake_root: Path, files: dict[str, str], message: str
) -> None:
    for name, text in files.items():
        (fake_root / name).write_text(text)
    db = sqlite3.connect(":memory:", isolation_level=None)
    try:
        with pytest.raises(MigrationError, match=message):
            create_schema(db, Layout.UPSTREAM)
            prepare(db, ":memory:", Layout.UPSTREAM)
    finally:
        db.close()
