"""A pytest plugin that measures CPU seconds per test module (and per test, if asked).

It counts the whole process tree of each pytest process (an xdist worker): its own CPU,
its reaped children's, and that of its live descendants (the test servers, the client
and framework interpreters), at the first and last test of each module. A session
server's start-up counts for the first module that uses it. Measurement only; the
suite does not load it::

    PYTHONPATH=benchmarks CPU_PLUGIN_OUT=/tmp/cpu [CPU_PLUGIN_PER_TEST=1] \\
        .venv/bin/pytest -n 2 --dist loadfile -p pytest_cpu --junitxml=/tmp/junit.xml

writes ``/tmp/cpu.<worker>.json``: ``{module: [cpu seconds, wall seconds]}`` and
``__worker_total__`` (per test: ``/tmp/cpu.<worker>.tests.json``).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import pytest

_TICK = os.sysconf("SC_CLK_TCK")
_state: dict[str, Any] = {"module": None, "cpu": 0.0, "wall": 0.0}
_modules: dict[str, tuple[float, float]] = {}
_tests: dict[str, float] = {}


def tree_cpu() -> float:
    """CPU seconds of this process, its reaped children and its live descendants."""
    times = os.times()
    total = times.user + times.system + times.children_user + times.children_system
    parents: dict[int, list[int]] = {}
    cpu: dict[int, float] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(name))
        cpu[int(name)] = sum(int(x) for x in fields[11:15]) / _TICK
    stack = list(parents.get(os.getpid(), []))
    while stack:
        pid = stack.pop()
        total += cpu.get(pid, 0.0)
        stack.extend(parents.get(pid, []))
    return total


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    module = item.nodeid.split("::")[0]
    if _state["module"] != module:
        _state.update(module=module, cpu=tree_cpu(), wall=time.monotonic())
    per_test = os.environ.get("CPU_PLUGIN_PER_TEST") == "1"
    before = tree_cpu() if per_test else 0.0
    yield
    if per_test:
        _tests[item.nodeid] = tree_cpu() - before
    if nextitem is None or nextitem.nodeid.split("::")[0] != module:
        cpu, wall = _modules.get(module, (0.0, 0.0))
        _modules[module] = (
            cpu + tree_cpu() - _state["cpu"],
            wall + time.monotonic() - _state["wall"],
        )
        _state["module"] = None


def pytest_sessionfinish(session: pytest.Session) -> None:
    out = os.environ.get("CPU_PLUGIN_OUT")
    if not out:
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    times = os.times()
    total = times.user + times.system + times.children_user + times.children_system
    with open(f"{out}.{worker}.json", "w") as report:
        json.dump({**_modules, "__worker_total__": (total, 0.0)}, report)
    if _tests:
        with open(f"{out}.{worker}.tests.json", "w") as report:
            json.dump(_tests, report)
