"""Per-client virtualenvs for the seven Pyrogram-family clients, and the bot frameworks.

Six of the clients install the same top-level package (``pyrogram``), so each one
gets its own venv under ``<repo>/.venvs/clients/<client>``. The bot frameworks
(:data:`FRAMEWORKS`: kurigram-addons, aiogram) get theirs under
``<repo>/.venvs/frameworks/<name>``, with the drivers of every ``pyrogram_storage.kv``
backend. Tests and benchmarks call :func:`ensure_env` (idempotent, cached, safe across
processes) and then run scripts with :func:`run_in_env`; both take a client's or a
framework's name.

Command line::

    python tests/clientenv.py all            # prepare every client venv
    python tests/clientenv.py kurigram hydrogram
    python tests/clientenv.py frameworks     # prepare both framework venvs
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import fcntl
import hashlib
import json
import os
import pathlib
import subprocess
import sys
import time
import venv
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

__all__ = [
    "CLIENTS",
    "FRAMEWORKS",
    "REPO_ROOT",
    "VENVS_DIR",
    "Client",
    "ensure_env",
    "env_python",
    "run_in_env",
]

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
VENVS_DIR = REPO_ROOT / ".venvs" / "clients"
FRAMEWORK_VENVS_DIR = REPO_ROOT / ".venvs" / "frameworks"

# Extra packages every client venv gets, pinned so that runs are reproducible.
COMMON_REQUIREMENTS: tuple[str, ...] = ()

# Files whose content decides whether the editable install of the repo is stale.
PROJECT_FILES = ("setup.cfg", "pyproject.toml", "setup.py")

_MARKER_NAME = ".clientenv-hash"
_PIP_FLAGS = ("-q", "--disable-pip-version-check")
_OUTPUT_TAIL = 3000


@dataclass(frozen=True)
class Client:
    """One client (or framework): the pip requirement that installs it and its import name.

    ``extras`` are more requirements installed beside it; ``project_extras`` the
    extras of the editable pyrogram_storage install (``"redis,valkey"``).
    """

    requirement: str
    module: str
    extras: tuple[str, ...] = ()
    project_extras: str = ""


CLIENTS: Mapping[str, Client] = {
    "kurigram": Client("kurigram==2.2.26", "pyrogram"),
    "pyrofork": Client("pyrofork==2.3.69", "pyrogram"),
    "pyrogram": Client("pyrogram==2.0.106", "pyrogram"),
    "irenogram": Client("irenogram==2.3.90", "pyrogram"),
    "hydrogram": Client("hydrogram==0.2.0", "hydrogram"),
    "pyrotgfork": Client("pyrotgfork==2.2.24.1", "pyrogram"),
    "electrogram": Client("electrogram==0.3.230", "pyrogram"),
}

_KV_DRIVERS = "redis,valkey,mongo,motor,async-pymongo,postgres"
FRAMEWORKS: Mapping[str, Client] = {
    # Kurigram is pinned like the client venv's, so both resolve the same wheel.
    "kurigram-addons": Client(
        "kurigram-addons[all]==0.5.1", "pyrogram_patch", ("kurigram==2.2.26",), _KV_DRIVERS
    ),
    # redis[hiredis] and pymongo/motor come with aiogram's own extras (its Redis and
    # Mongo storages, which the benchmarks run); our drivers resolve within its pins.
    "aiogram": Client("aiogram[redis,mongo]==3.31.0", "aiogram", (), _KV_DRIVERS),
}
"""The bot frameworks ``pyrogram_storage.kv`` plugs into (issue 15), each in its own venv."""


def env_dir(client: str) -> pathlib.Path:
    """Return the venv directory of ``client`` or framework (it may not exist yet)."""
    _check_client(client)
    return (FRAMEWORK_VENVS_DIR if client in FRAMEWORKS else VENVS_DIR) / client


def env_python(client: str) -> pathlib.Path:
    """Return the path of the venv's python (it may not exist yet)."""
    return env_dir(client) / "bin" / "python"


def ensure_env(client: str) -> pathlib.Path:
    """Create or refresh the venv of ``client`` and return its python executable.

    A second call with unchanged requirements and project metadata returns at once.
    Several processes may call it at the same time: one builds, the others wait.

    :raises KeyError: ``client`` is not one of :data:`CLIENTS` or :data:`FRAMEWORKS`.
    :raises RuntimeError: venv creation or ``pip install`` failed; the message
        holds the tail of pip's output.
    """
    directory = env_dir(client)
    python = env_python(client)
    marker = directory / _MARKER_NAME
    wanted = _env_hash(client)
    if _read(marker) == wanted and python.exists():
        return python
    directory.parent.mkdir(parents=True, exist_ok=True)
    spec = _spec(client)
    with _locked(directory.parent / f"{client}.lock"):
        if _read(marker) == wanted and python.exists():
            return python
        marker.unlink(missing_ok=True)
        if not python.exists():
            venv.EnvBuilder(with_pip=True, clear=True).create(directory)
        _pip(python, spec.requirement, *spec.extras, *COMMON_REQUIREMENTS)
        if _project_file_present():
            extras = f"[{spec.project_extras}]" if spec.project_extras else ""
            _pip(python, "-e", f"{REPO_ROOT}{extras}")
        marker.write_text(wanted)
    return python


def run_in_env(
    client: str,
    script: str | os.PathLike[str],
    *args: str,
    timeout: float = 300.0,
    check: bool = True,
    cwd: str | os.PathLike[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a script or a code string with the python of ``client``'s venv.

    ``script`` is run as a file if it is a path object or names an existing file;
    any other string is passed to ``python -c``. Output is captured as text.

    :raises RuntimeError: the process exited non-zero and ``check`` is true.
    :raises subprocess.TimeoutExpired: the process ran longer than ``timeout``.
    """
    python = ensure_env(client)
    if isinstance(script, os.PathLike) or os.path.isfile(script):
        argv = [str(python), os.fspath(script), *args]
    else:
        argv = [str(python), "-c", script, *args]
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, cwd=cwd, check=False
    )
    if check and result.returncode != 0:
        raise RuntimeError(
            f"{client}: {argv[1]!r} exited with {result.returncode}\n"
            f"--- stdout ---\n{result.stdout[-_OUTPUT_TAIL:]}\n"
            f"--- stderr ---\n{result.stderr[-_OUTPUT_TAIL:]}"
        )
    return result


def _check_client(client: str) -> None:
    if client not in CLIENTS and client not in FRAMEWORKS:
        known = ", ".join([*CLIENTS, *FRAMEWORKS])
        raise KeyError(f"unknown client or framework {client!r}; choose from {known}")


def _spec(client: str) -> Client:
    return FRAMEWORKS[client] if client in FRAMEWORKS else CLIENTS[client]


def _project_file_present() -> bool:
    return (REPO_ROOT / "setup.cfg").exists() or (REPO_ROOT / "pyproject.toml").exists()


def _env_hash(client: str) -> str:
    digest = hashlib.sha256()
    spec = _spec(client)
    state = {
        "requirements": [spec.requirement, *COMMON_REQUIREMENTS],
        "editable": _project_file_present(),
    }
    if spec.extras or spec.project_extras:  # the clients' hashes stay as they were
        state["extras"] = [*spec.extras, spec.project_extras]
    digest.update(json.dumps(state, sort_keys=True).encode())
    for name in PROJECT_FILES:
        path = REPO_ROOT / name
        if path.exists():
            digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _read(path: pathlib.Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


@contextlib.contextmanager
def _locked(path: pathlib.Path) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _pip(python: pathlib.Path, *args: str) -> None:
    argv = [str(python), "-m", "pip", "install", *_PIP_FLAGS, *args]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        output = (result.stdout + result.stderr)[-_OUTPUT_TAIL:]
        raise RuntimeError(
            f"pip install {' '.join(args)} failed in {python.parent.parent} "
            f"(exit {result.returncode}):\n{output}"
        )


def _prepare(client: str) -> tuple[str, float]:
    started = time.monotonic()
    ensure_env(client)
    return client, time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    """Prepare the venvs named on the command line (or ``all``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    known = ", ".join([*CLIENTS, *FRAMEWORKS])
    parser.add_argument("clients", nargs="+", help=f"'all', 'frameworks' or some of: {known}")
    parser.add_argument("-j", "--jobs", type=int, default=2, help="parallel installs")
    options = parser.parse_args(argv)
    groups = {"all": list(CLIENTS), "frameworks": list(FRAMEWORKS)}
    names = [name for given in options.clients for name in groups.get(given, [given])]
    for name in names:
        _check_client(name)
    failed = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, options.jobs)) as pool:
        futures = {pool.submit(_prepare, name): name for name in names}
        for future in concurrent.futures.as_completed(futures):
            try:
                client, seconds = future.result()
            except RuntimeError as exc:
                failed += 1
                print(f"{futures[future]}: FAILED\n{exc}", file=sys.stderr)
            else:
                print(f"{client}: {env_python(client)} ({seconds:.1f}s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
