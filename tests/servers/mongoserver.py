"""A throwaway MongoDB wire-protocol server for the tests: SecantusDB's ``secantusd-py``.

SecantusDB (``pip install SecantusDB``) is a MongoDB-compatible server written in
Python on top of WiredTiger. :class:`MongoServer` runs one as a subprocess on
127.0.0.1 in its default mode, a single-node replica set named ``secantus``
(so multi-document transactions work), and can stop, kill and restart it on the
same port and storage directory, so data written before a restart can be read
back after it.

The helper uses only the standard library (the readiness check speaks a raw
OP_MSG ``ping``), so it can be imported before any driver is installed::

    with MongoServer(tmp_path / "mongo") as server:
        client = pymongo.AsyncMongoClient(server.uri, serverSelectionTimeoutMS=2000)
        ...
        server.restart()

To run the tests against a real ``mongod`` instead, set
``PYROGRAM_STORAGE_MONGO_URI`` (see :func:`mongo_uri_from_env`).

The server is looked up, in order: the ``PYROGRAM_STORAGE_SECANTUSD`` environment
variable, ``secantusd-py`` next to ``sys.executable``, then ``PATH``.

Notes from probing SecantusDB 0.7.0b3 (pymongo 4.20, motor 3.7, async-pymongo 0.1.12):

* The server is ready about 0.5-1.3 s after it starts. It logs
  ``INFO secantus.server: secantus listening on HOST:PORT`` to stderr.
* SIGTERM and SIGINT both shut it down cleanly in about 0.4 s (exit code 0).
* Data survives a restart on the same storage directory. After SIGKILL the
  last few milliseconds of acknowledged writes can be lost unless the server
  runs with ``--sync-on-commit`` (``MongoServer(sync_on_commit=True)``).
* ``mongodb://127.0.0.1:PORT/?directConnection=true`` works with all three
  drivers, and so do ``?replicaSet=secantus`` and the bare URI.
* It is slow: an unordered ``bulk_write`` of 1000 upserts takes about 2 s.

Command line (smoke test)::

    python -m tests.servers.mongoserver [STORAGE_DIR]
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ._process import ServerExited, ServerProcess

__all__ = [
    "EXECUTABLE_ENV_VAR",
    "MONGO_URI_ENV_VAR",
    "REPLICA_SET_NAME",
    "MongoServer",
    "MongoServerError",
    "find_secantusd",
    "free_port",
    "mongo_uri_from_env",
    "ping",
]

MONGO_URI_ENV_VAR = "PYROGRAM_STORAGE_MONGO_URI"
EXECUTABLE_ENV_VAR = "PYROGRAM_STORAGE_SECANTUSD"
EXECUTABLE_NAME = "secantusd-py"
REPLICA_SET_NAME = "secantus"
LOG_FILE_NAME = "secantusd.log"
CONFIG_FILE_NAME = "secantusd.toml"

_OP_MSG = 2013


class MongoServerError(RuntimeError):
    """The server could not be found, started or stopped."""


class _ExitedDuringStartup(MongoServerError, ServerExited):
    """The process died before answering a ping (e.g. the port was taken)."""


def mongo_uri_from_env() -> str | None:
    """Return ``$PYROGRAM_STORAGE_MONGO_URI`` if it is set and not blank, else None."""
    uri = os.environ.get(MONGO_URI_ENV_VAR, "").strip()
    return uri or None


def find_secantusd() -> str | None:
    """Return the path of ``secantusd-py``, or None if it is not installed.

    ``$PYROGRAM_STORAGE_SECANTUSD`` wins, then the script next to ``sys.executable``
    (the same virtualenv; the path is not resolved so venv symlinks keep working),
    then ``PATH``.
    """
    override = os.environ.get(EXECUTABLE_ENV_VAR, "").strip()
    if override:
        return override
    scripts = Path(sys.executable).parent
    for name in (EXECUTABLE_NAME, EXECUTABLE_NAME + ".exe"):
        candidate = scripts / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which(EXECUTABLE_NAME)


def free_port(host: str = "127.0.0.1") -> int:
    """Ask the kernel for a free TCP port on *host* (racy, but good enough for tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _bson_ping() -> bytes:
    """Encode ``{"ping": 1, "$db": "admin"}`` as BSON."""
    db = b"admin\x00"
    body = b"\x10ping\x00" + struct.pack("<i", 1) + b"\x02$db\x00" + struct.pack("<i", len(db)) + db
    return struct.pack("<i", len(body) + 5) + body + b"\x00"


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks: list[bytes] = []
    while size:
        chunk = sock.recv(size)
        if not chunk:
            raise ConnectionError("connection closed by the server")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def ping(host: str, port: int, timeout: float = 1.0) -> bool:
    """Send a raw OP_MSG ``ping`` and return True if the reply says ``ok: 1``."""
    doc = _bson_ping()
    message = struct.pack("<I", 0) + b"\x00" + doc  # flagBits, section kind 0, body
    header = struct.pack("<iiii", 16 + len(message), 1, 0, _OP_MSG)
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(header + message)
            length, _request_id, _response_to, opcode = struct.unpack(
                "<iiii", _recv_exactly(sock, 16)
            )
            if opcode != _OP_MSG or not 21 <= length <= 48_000_000:
                return False
            reply = _recv_exactly(sock, length - 16)
    except OSError:
        return False
    # reply = flagBits(4) + kind 0 (1) + BSON body; look for a numeric "ok" == 1.
    body = reply[5:]
    for type_byte, fmt in ((b"\x01", "<d"), (b"\x10", "<i"), (b"\x12", "<q")):
        marker = type_byte + b"ok\x00"
        at = body.find(marker)
        if at != -1:
            start = at + len(marker)
            size = struct.calcsize(fmt)
            value: float = struct.unpack(fmt, body[start : start + size])[0]
            return value == 1
    return False


class MongoServer(ServerProcess):
    """One ``secantusd-py`` process on 127.0.0.1 with its own storage directory.

    If *storage_dir* is None a temporary directory is created, and removed by
    :meth:`close` (and on leaving the ``with`` block). The server's stdout and
    stderr go to ``<storage_dir>/secantusd.log``. An empty
    ``<storage_dir>/secantusd.toml`` is passed as ``--config`` so that no
    ``~/.secantus`` or ``/etc/secantus`` configuration leaks into the tests.
    """

    log_lines = 40
    temporary_prefix = "secantus-"

    def __init__(
        self,
        storage_dir: str | os.PathLike[str] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        executable: str | None = None,
        startup_timeout: float = 30.0,
        sync_on_commit: bool = False,
        log_level: str = "INFO",
        extra_args: Sequence[str] = (),
    ) -> None:
        super().__init__(storage_dir, port=port)
        self.host = host
        self._executable = executable
        self.startup_timeout = startup_timeout
        self.sync_on_commit = sync_on_commit
        self.log_level = log_level
        self.extra_args = tuple(extra_args)

    # -- properties -------------------------------------------------------

    @property
    def storage_dir(self) -> Path:
        return self.directory

    @property
    def uri(self) -> str:
        """A connection string that works with pymongo, motor and async_pymongo."""
        return f"mongodb://{self.host}:{self.port}/?directConnection=true"

    @property
    def _address(self) -> str:
        return self.uri

    @property
    def log_path(self) -> Path:
        return self.storage_dir / LOG_FILE_NAME

    # -- lifecycle ----------------------------------------------------------

    def command(self) -> list[str]:
        executable = self._executable or find_secantusd()
        if not executable:
            raise MongoServerError(
                f"{EXECUTABLE_NAME} not found next to {sys.executable} or on PATH; "
                f"`pip install SecantusDB`, set ${EXECUTABLE_ENV_VAR}, "
                f"or set ${MONGO_URI_ENV_VAR} to use a real mongod"
            )
        args = [
            executable,
            "--config",
            str(self.storage_dir / CONFIG_FILE_NAME),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--storage-path",
            str(self.storage_dir),
            "--log-level",
            self.log_level,
        ]
        if self.sync_on_commit:
            args.append("--sync-on-commit")
        args.extend(self.extra_args)
        return args

    def _free_port(self) -> int:
        return free_port(self.host)

    def _spawn(self) -> None:
        command = self.command()
        self.storage_dir.mkdir(parents=True, exist_ok=True)
        config = self.storage_dir / CONFIG_FILE_NAME
        if not config.exists():
            config.write_text("# empty: keeps secantusd-py from auto-discovering configs\n")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with open(self.log_path, "ab") as log:
            log.write(f"--- starting: {' '.join(command)}\n".encode())
            log.flush()
            started_at = log.tell()
            self._started(
                subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.storage_dir,
                    env=env,
                )
            )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            code = self._exited_during_startup()
            if code is not None:
                raise _ExitedDuringStartup(
                    f"{EXECUTABLE_NAME} exited with code {code} during startup; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            if self._listening(started_at) and ping(self.host, self.port, timeout=0.5):
                return
            time.sleep(0.05)
        self.kill()
        raise MongoServerError(
            f"{EXECUTABLE_NAME} did not answer a ping on {self.host}:{self.port} "
            f"within {self.startup_timeout}s; log {self.log_path}:\n{self.log_tail()}"
        )

    def _listening(self, offset: int) -> bool:
        """Whether this start's log says it listens on our port: a ping alone could be
        answered by another test run's server that took the port first (ours then exits
        and is started again on another port)."""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(offset)
                text = log.read().decode(errors="replace")
        except OSError:
            return False
        return f"listening on {self.host}:{self.port}" in text


def _main(argv: Sequence[str]) -> int:
    env_uri = mongo_uri_from_env()
    if env_uri:
        print(f"${MONGO_URI_ENV_VAR} is set: {env_uri} (the tests would use it)")
    storage = argv[0] if argv else None
    started = time.monotonic()
    with MongoServer(storage) as server:
        print(f"started in {time.monotonic() - started:.2f}s: {server!r}")
        print(server.uri)
        try:
            import pymongo
        except ImportError:
            print("pymongo is not installed; raw OP_MSG ping:", ping(server.host, server.port))
        else:
            client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
                server.uri, serverSelectionTimeoutMS=2000
            )
            try:
                print("pymongo ping:", client.admin.command("ping")["ok"])
                collection = client["mongoserver_smoke"]["c"]
                collection.replace_one({"_id": 1}, {"big": 2**63 - 1}, upsert=True)
                server.restart()
                print("after restart:", collection.find_one({"_id": 1}))
                client.drop_database("mongoserver_smoke")
            finally:
                client.close()
        print("stop exit code:", server.stop())
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
