"""for_client() against the seven real clients, each in its own venv, offline.

The ``clients`` tests run ``tests/clients/*.py`` with each client's python (venvs
made by ``tests/clientenv.py`` on first use, which takes a few minutes). The
others check client detection in this environment, where no client is installed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pyrogram_storage import MemoryStorage, StorageError, for_client
from pyrogram_storage.clients import ADAPTERS, ClientDetectionError, detect_client

from .clientenv import CLIENTS, ensure_env, run_in_env
from .doc_pages import pages_with

SCRIPTS = Path(__file__).resolve().parent / "clients"
CLIENT_DOCS = tuple(
    pages_with(
        r"^\.\. code-block:: python\n\n +# *(?i:kurigram|pyrofork|pyrogram|irenogram"
        r"|hydrogram|pyrotgfork|electrogram)\b"
    )
)
"""Where each client's line is documented: code blocks starting ``# <Client> <version>``."""


def _report(client: str, script: str, *args: str) -> dict[str, Any]:
    result = run_in_env(client, SCRIPTS / script, *args, check=False, timeout=600)
    lines = result.stdout.strip().splitlines()
    assert result.returncode == 0, (
        f"{client} {script} exited {result.returncode}\n"
        f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    )
    report: dict[str, Any] = json.loads(lines[-1])
    return report


ROUND_TRIPS: dict[str, Callable[[dict[str, Any]], tuple[str, str]]] = {
    "test_client_round_trip": lambda params: (params["client"], params["kind"]),
    "test_client_round_trip_on_an_encrypted_file": lambda params: (
        params["client"],
        "file-encrypted",
    ),
    "test_client_round_trip_on_redis": lambda params: (params["client"], "redis"),
    "test_client_round_trip_on_postgres": lambda params: (params["client"], "postgres"),
    "test_client_round_trip_on_mongo": lambda params: ("electrogram", "mongo"),
}
"""The round-trip tests, and the client and backend of ``roundtrip.py`` each one runs."""

SERVER_OF = {"redis": "redis_server", "postgres": "postgres_server", "mongo": "mongo_uri"}
DRIVER_OF = {
    "file-encrypted": ("cryptography", "cryptography>=44"),
    "redis": ("redis", "redis>=5.0.1"),
    "postgres": ("asyncpg", "asyncpg>=0.29"),
}


@pytest.fixture(scope="module")
def round_trips() -> dict[tuple[str, str], dict[str, Any]]:
    """The reports of the round trips run so far, by (client, backend)."""
    return {}


def _round_trip(client: str, backend: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    """The report of ``roundtrip.py`` for ``client`` on ``backend``.

    A client's first round-trip test runs, in one interpreter of the client's venv,
    every round trip of that client that this session selected (the client's import,
    its venv's drivers and the servers load once); each test then checks its own report.
    """
    reports = request.getfixturevalue("round_trips")
    if (client, backend) not in reports:
        wanted = [backend]
        for item in request.session.items:
            name = getattr(item, "originalname", "")
            if name not in ROUND_TRIPS or getattr(item, "module", None) is not request.module:
                continue
            callspec = getattr(item, "callspec", None)
            its_client, other = ROUND_TRIPS[name]({} if callspec is None else callspec.params)
            if its_client == client and other not in wanted and (client, other) not in reports:
                wanted.append(other)
        scenarios = []
        folder = request.getfixturevalue("tmp_path_factory").mktemp(f"roundtrip-{client}")
        for other in wanted:
            if other in DRIVER_OF:
                _install(client, *DRIVER_OF[other])
            url = None
            if other in SERVER_OF:
                server = request.getfixturevalue(SERVER_OF[other])
                url = server if isinstance(server, str) else server.url
            workdir = folder / other
            workdir.mkdir()
            scenarios.append({"backend": other, "workdir": str(workdir), "url": url})
        result = run_in_env(
            client,
            SCRIPTS / "roundtrip.py",
            client,
            "batch",
            json.dumps(scenarios),
            check=False,
            timeout=600,
        )
        for line in result.stdout.strip().splitlines():
            if line.startswith("{"):
                report = json.loads(line)
                reports[client, report["backend"]] = report
        for other in wanted:
            reports.setdefault(
                (client, other),
                {
                    "passed": 0,
                    "failed": [
                        f"{client} roundtrip.py exited {result.returncode} before {other}\n"
                        f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
                    ],
                },
            )
    report: dict[str, Any] = reports[client, backend]
    return report


@pytest.mark.clients
@pytest.mark.parametrize("kind", ["file", "memory", "custom"])
@pytest.mark.parametrize("client", list(CLIENTS))
def test_client_round_trip(client: str, kind: str, request: pytest.FixtureRequest) -> None:
    """Session string in, peers fetched and resolved, update state, export: as the client's own.

    ``custom`` is the documented "write your own backend" class, as a user's subclass.
    """
    report = _round_trip(client, kind, request)
    assert report["failed"] == []
    assert report["passed"] > 150


@pytest.mark.clients
@pytest.mark.mongo
def test_client_round_trip_on_mongo(request: pytest.FixtureRequest) -> None:
    """The same on MongoStorage, with Electrogram (it installs pymongo itself)."""
    report = _round_trip("electrogram", "mongo", request)
    assert report["failed"] == []
    assert report["passed"] > 150


@pytest.mark.clients
@pytest.mark.parametrize("client", list(CLIENTS))
def test_client_round_trip_on_an_encrypted_file(
    client: str, request: pytest.FixtureRequest
) -> None:
    """The same on a FileStorage that seals its auth key: nothing changes for the client."""
    report = _round_trip(client, "file-encrypted", request)
    assert report["failed"] == []
    assert report["passed"] > 150


REDIS_CLIENTS = ["kurigram", "pyrofork", "pyrogram"]
"""One client of each family: upstream-dev, Pyrofork line, classic."""

_INSTALLED: set[tuple[str, str]] = set()


def _install(client: str, module: str, requirement: str) -> None:
    """Install a driver into the client's venv (they get pyrogram-storage without extras)."""
    if (client, module) in _INSTALLED:
        return
    python = str(ensure_env(client))
    found = subprocess.run([python, "-c", f"import {module}"], capture_output=True, check=False)
    if found.returncode != 0:
        subprocess.run(
            [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", requirement],
            capture_output=True,
            check=True,
        )
    _INSTALLED.add((client, module))


@pytest.mark.clients
@pytest.mark.redis
@pytest.mark.parametrize("client", REDIS_CLIENTS)
def test_client_round_trip_on_redis(client: str, request: pytest.FixtureRequest) -> None:
    """The same on RedisStorage (redis-py), with one client of each family."""
    report = _round_trip(client, "redis", request)
    assert report["failed"] == []
    assert report["passed"] > 150


@pytest.mark.clients
@pytest.mark.postgres
@pytest.mark.parametrize("client", REDIS_CLIENTS)
def test_client_round_trip_on_postgres(client: str, request: pytest.FixtureRequest) -> None:
    """The same on PostgresStorage (shared mode: LISTEN/NOTIFY), one client of each family."""
    report = _round_trip(client, "postgres", request)
    assert report["failed"] == []
    assert report["passed"] > 150


@pytest.mark.clients
@pytest.mark.parametrize("client", list(CLIENTS))
def test_documented_line(
    client: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lines README.rst and the guides give for the client work as written (Redis too)."""
    if any("REDIS_URL" in path.read_text() for path in CLIENT_DOCS if path.exists()):
        _install(client, "redis", "redis>=5.0.1")
        monkeypatch.setenv("REDIS_URL", request.getfixturevalue("redis_server").url)
    blocks = 0
    for number, doc in enumerate(path for path in CLIENT_DOCS if path.exists()):
        workdir = tmp_path / str(number)
        workdir.mkdir()
        report = _report(client, "readme_lines.py", client, str(doc), str(workdir))
        assert report["failed"] == [], doc
        blocks += report["blocks"]
    assert blocks >= 1, f"no documented line for {client}"


def test_no_client_installed_is_a_clear_error() -> None:
    with pytest.raises(ClientDetectionError, match="no Pyrogram-family client is installed"):
        for_client(MemoryStorage())


def test_unknown_client_name() -> None:
    with pytest.raises(ClientDetectionError, match="unknown client 'telethon'") as caught:
        for_client(MemoryStorage(), client="telethon")
    assert isinstance(caught.value, StorageError)


def test_forced_client_that_is_not_installed() -> None:
    with pytest.raises(ClientDetectionError, match="is kurigram installed"):
        for_client(MemoryStorage(), client="Kurigram")


def test_only_storages_are_wrapped() -> None:
    with pytest.raises(TypeError, match="needs a pyrogram_storage Storage"):
        ADAPTERS["kurigram"]("session.session")  # type: ignore[arg-type]


def _fake_site(root: Path, distributions: dict[str, str]) -> Path:
    """Install empty distributions (name -> top-level module) the way pip lays them out."""
    site = root / "site"
    for name, module in distributions.items():
        info = site / f"{name}-1.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        (info / "top_level.txt").write_text(module + "\n")
        package = site / module
        package.mkdir(exist_ok=True)
        (package / "__init__.py").write_text("")
    return site


def _detect_in(site: Path, *imports: str) -> str:
    code = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(site)!r})
        for name in {list(imports)!r}:
            __import__(name)
        from pyrogram_storage.clients import detect_client
        try:
            print(detect_client())
        except Exception as exc:
            print(type(exc).__name__, exc)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.mark.parametrize(
    ("distributions", "imports", "expected"),
    [
        ({"Kurigram": "pyrogram"}, (), "kurigram"),
        ({"pyrofork": "pyrogram"}, (), "pyrofork"),
        ({"Pyrogram": "pyrogram"}, (), "pyrogram"),
        ({"hydrogram": "hydrogram"}, (), "hydrogram"),
        ({"irenogram": "pyrogram", "hydrogram": "hydrogram"}, (), "ClientDetectionError several"),
        ({"irenogram": "pyrogram", "hydrogram": "hydrogram"}, ("hydrogram",), "hydrogram"),
        ({"irenogram": "pyrogram", "hydrogram": "hydrogram"}, ("pyrogram",), "irenogram"),
        ({"pyrogram-ultra": "pyrogram"}, (), "ClientDetectionError pyrogram-ultra"),
    ],
)
def test_detection(
    tmp_path: Path, distributions: dict[str, str], imports: tuple[str, ...], expected: str
) -> None:
    """Detection reads the real installed-distribution metadata (here, a fake site dir)."""
    found = _detect_in(_fake_site(tmp_path, distributions), *imports)
    assert found.startswith(expected), found


def test_detection_outside_any_client() -> None:
    with pytest.raises(ClientDetectionError):
        detect_client()
