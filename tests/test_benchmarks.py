"""The benchmark suite runs end to end and writes its report (no timings are asserted)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
# Tiny counts: this checks the harness, not the speed.
PARAMS = {
    "lookups": 200,
    "usernames": 50,
    "phones": 50,
    "ops_per_task": 4,
    "roundtrips": 3,
    "uncached": 100,
    "small": 100,
    "loop_cap": 100,
    "for_client_calls": 3,
    "idle_s": 0.05,
    "updates": 200,
    "warmup": 20,
    "metered_updates": 100,
    "sessions": 5,
}


def _run(tmp_path: Path, systems: tuple[str, ...]) -> tuple[dict[str, Any], str]:
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "run.py"),
            "--quick",
            "--sizes",
            "300",
            "--server-sizes",
            "300",
            "--host-size",
            "300",
            "--systems",
            ",".join(systems),
            "--params",
            json.dumps(PARAMS),
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads((tmp_path / "latest.json").read_text())
    ran = {(r["system"], r["n"]) for r in data["results"] if "metrics" in r}
    assert ran == {(system, 300) for system in systems}, data["results"]
    return data, (tmp_path / "latest.md").read_text()


def _result(data: dict[str, Any], system: str) -> dict[str, Any]:
    found: dict[str, Any] = next(r for r in data["results"] if r["system"] == system)
    return found


def test_storage_cells_write_table_json_and_plot(tmp_path: Path) -> None:
    data, report = _run(tmp_path, ("ours-file", "ours-memory", "raw-sqlite"))
    ours = _result(data, "ours-file")
    assert ours["counts"]["lookups"] == 200
    for metric in (
        "ingest_100_us",
        "ingest_small_us",
        "id_cached_us",
        "id_uncached_us",
        "id_absent_us",
        "username_us",
        "mix_us",
        "cold_open_ms",
        "rss_peak_mb",
    ):
        assert ours["metrics"][metric] > 0, metric
    # Every async workload was watched on the loop; the sync reference has no loop.
    assert set(ours["loop"]) >= {"ingest_100", "id_cached", "id_uncached", "mix", "ingest_small"}
    assert ours["loop"]["id_cached"]["calls"] == PARAMS["loop_cap"]
    assert ours["loop"]["id_cached"]["per_call_us"]["peer_by_id"] > 0
    assert ours["idle_ms"] >= 0
    assert _result(data, "raw-sqlite")["loop"] == {}
    assert "id_uncached_us" not in _result(data, "ours-memory")["metrics"]

    assert "## Ratios" in report and "× faster" in report
    assert "ours FileStorage vs raw sqlite3" in report
    assert "not measured" in report  # the 100k/1M targets are out of a 300-peer run
    if importlib.util.find_spec("matplotlib") is not None:
        assert (tmp_path / "latest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.clients
@pytest.mark.mongo
def test_client_path_host_and_for_client_cells(tmp_path: Path) -> None:
    systems = (
        "ours-client",
        "kurigram-file",
        "path-kurigram-ours",
        "path-kurigram-file",
        "path-kurigram-dict",
        "path-pyrofork-ours",
        "path-pyrofork-ours-mongo",
        "path-pyrofork-mongo",
        "host-ours",
    )
    data, report = _run(tmp_path, systems)
    total = PARAMS["warmup"] + PARAMS["updates"] + PARAMS["metered_updates"]
    for system in systems:
        result = _result(data, system)
        if not system.startswith("path-"):
            continue
        m = result["metrics"]
        assert m["path_us"] > 0 and m["open_ms"] > 0, system
        # The client really handled every update through the storage: the last pts is
        # stored, and each update cost the storage its five or more calls.
        assert result["counts"]["pts_stored"] == total, system
        assert m["storage_calls_per_update"] >= 5, system
        assert result["loop"]["path"]["calls"] > 0, system

    client = _result(data, "ours-client")
    assert client["config"]["dialect"] == "KurigramAdapter"  # detected, not named
    assert client["metrics"]["for_client_first_ms"] > 0
    assert client["metrics"]["for_client_us"] > 0
    host = _result(data, "host-ours")
    assert host["counts"]["sessions"] == PARAMS["sessions"]
    assert host["metrics"]["host_fds_per_session"] > 0

    targets = {t["target"]: t for t in data["targets"]}
    assert any(name.startswith("1. Kurigram update path") for name in targets)
    assert any(name.startswith("6. MongoStorage open") for name in targets)
    assert "## The client's update path" in report and "## The event loop" in report
    assert "Kurigram + a dict (the ceiling)" in report
