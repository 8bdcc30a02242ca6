"""What every test server shares: one process on 127.0.0.1, stopped by PID.

:class:`ServerProcess` owns the lifecycle the MongoDB, Redis and PostgreSQL helpers
have in common: start (again on a fresh port when another run took the chosen one),
stop (a signal, then SIGKILL), kill (a crash), restart on the same port and folder,
close (stop, and remove a temporary folder), ``with`` blocks, and a kill at
interpreter exit for a server nobody stopped. A subclass says how to spawn its
process and wait for it (:meth:`ServerProcess._spawn`) and how to pick a port.
Only the standard library is used.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import ClassVar, TypeVar

__all__ = ["Managed", "ServerExited", "ServerProcess"]

_Self = TypeVar("_Self", bound="Managed")
_S = TypeVar("_S", bound="ServerProcess")


class ServerExited(RuntimeError):
    """The process exited before it was ready (e.g. another run took its port first).

    A subclass's own error class mixes this in, so :meth:`ServerProcess.start` retries
    on another port and callers still catch the server's error.
    """


# Strong references: a server that was never stopped is killed at interpreter exit.
_live: set[ServerProcess] = set()


@atexit.register
def _kill_leftovers() -> None:
    for server in list(_live):
        server.kill()
        server._remove_directory()


class Managed:
    """A server (or a group of them) that a ``with`` block starts and closes."""

    def start(self: _Self) -> _Self:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: _Self) -> _Self:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class ServerProcess(Managed):
    """One server process on 127.0.0.1 with a folder of its own (temporary if None)."""

    stop_signal: ClassVar[signal.Signals] = signal.SIGTERM
    """The signal of a clean shutdown (SIGKILL follows after the timeout)."""
    stop_timeout: ClassVar[float] = 10.0
    log_lines: ClassVar[int] = 30
    temporary_prefix: ClassVar[str] = "server-"

    def __init__(self, directory: str | os.PathLike[str] | None, *, port: int | None) -> None:
        self.host = "127.0.0.1"
        self._fixed_port = port is not None
        self.port = port if port is not None else self._free_port()
        self._own_dir = directory is None
        self.directory = Path(directory or tempfile.mkdtemp(prefix=self.temporary_prefix))
        self._process: subprocess.Popen[bytes] | None = None

    # -- what a subclass provides ---------------------------------------------------

    def _free_port(self) -> int:
        raise NotImplementedError

    def _spawn(self) -> None:
        """Start the process (:meth:`_started` records it), wait until it is ready.

        :raises ServerExited: it exited during startup (the port may be taken).
        """
        raise NotImplementedError

    def _prepare(self) -> None:
        """Called before the first spawn of :meth:`start` (e.g. ``initdb``)."""

    @property
    def log_path(self) -> Path:
        return self.directory / "server.log"

    @property
    def _address(self) -> str:
        return f"{self.host}:{self.port}"

    # -- shared ----------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_tail(self, lines: int | None = None) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-(lines or self.log_lines) :])

    def _started(self, process: subprocess.Popen[bytes]) -> None:
        self._process = process
        _live.add(self)

    def _exited_during_startup(self) -> int | None:
        """The exit code if the process has died (it is then forgotten), else None."""
        assert self._process is not None
        code = self._process.poll()
        if code is not None:
            self._process = None
            _live.discard(self)
        return code

    def start(self: _S) -> _S:
        """Start the server and wait until it is ready; returns self.

        A server on a port of its own choosing that exits during startup (another
        run took the port between the choice and the bind) starts again on another.
        """
        if self.running:
            return self
        self._prepare()
        attempts = 1 if self._fixed_port else 3
        for attempt in range(attempts):
            if attempt:
                self.port = self._free_port()
            try:
                self._spawn()
            except ServerExited:
                if attempt + 1 == attempts:
                    raise
            else:
                self._fixed_port = True  # clients hold the address: a restart keeps it
                return self
        raise AssertionError("unreachable")

    def stop(self, timeout: float | None = None) -> int | None:
        """Shut down cleanly (:attr:`stop_signal`), SIGKILL after ``timeout`` seconds;
        wait for the process and return its exit code (None: it was not running)."""
        process = self._process
        if process is None:
            return None
        timeout = self.stop_timeout if timeout is None else timeout
        try:
            if process.poll() is None:
                process.send_signal(self.stop_signal)
                try:
                    process.wait(timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout)
            return process.returncode
        finally:
            self._process = None
            _live.discard(self)

    def kill(self) -> int | None:
        """SIGKILL the server (a crash) and wait for it."""
        process = self._process
        if process is None:
            return None
        try:
            if process.poll() is None:
                process.kill()
            return process.wait(10.0)
        finally:
            self._process = None
            _live.discard(self)

    def restart(self: _S, timeout: float | None = None) -> _S:
        """Stop (if running) and start again on the same port and folder."""
        self.stop(timeout)
        return self.start()

    def _remove_directory(self) -> None:
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)

    def close(self) -> None:
        """Stop the server; remove its folder if it is a temporary one."""
        self.stop()
        self._remove_directory()

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.running else "stopped"
        return f"{type(self).__name__}({self._address!r}, {state})"
