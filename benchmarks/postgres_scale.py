"""PostgresStorage at scale: opening a big session, and a thousand sessions in one process.

    .venv/bin/python benchmarks/postgres_scale.py [--peers 100000] [--sessions 1000]
        [--session-peers 1000] [--opens 15] [--out DIR]

Starts one throwaway PostgreSQL server (``tests/servers/pgserver.py``, fsync on), then:

1. **open**: a session of ``--peers`` peers (two usernames and a phone for a third of
   them, written through the storage itself), then ``--opens`` times a new storage
   object on it is opened and closed, each in a fresh process (issue 25's target:
   ≤ 50 ms at 100k). Timed twice: on a pool passed in (already connected, as a service
   holds one) and with ``from_url`` (the pool's first connection included).
2. **host**: ``--sessions`` sessions of ``--session-peers`` peers each in one database
   (the rows written by one ``INSERT ... SELECT`` per table, not through the storages:
   a million peers through the API would take minutes and measure nothing here), then
   in ONE fresh process every session is opened on one shared pool (sole writer: each
   warms its peer cache within the process-wide budget), looked up by id and by
   username, and the process's RSS read (target: ≤ 300 MB for 1,000 × 1k).

Writes ``results/postgres-scale.md`` and ``postgres-scale.json``. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests"))


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# -- children (each a fresh process) ------------------------------------------------------------


async def _fill(url: str, name: str, peers: int) -> None:
    import pyrogram_storage as ps

    storage = ps.PostgresStorage.from_url(url, name=name, sole_writer=True, commit_interval=1)
    async with storage:
        await storage.update_session(dc_id=2, api_id=1, auth_key=bytes(256), user_id=1)
        for start in range(0, peers, 1000):
            await storage.upsert_peers(
                [
                    ps.Peer(
                        i + 1,
                        i * 7,
                        ps.PeerType.USER,
                        (f"u{i}", f"v{i}") if i % 3 == 0 else (),
                        f"1{i}" if i % 3 == 1 else None,
                    )
                    for i in range(start, min(start + 1000, peers))
                ]
            )
        await storage.flush()


async def _open_once(url: str, name: str, given_pool: bool) -> dict[str, float]:
    import asyncpg

    import pyrogram_storage as ps

    pool = await asyncpg.create_pool(url, min_size=1, max_size=4) if given_pool else None
    storage = (
        ps.PostgresStorage(name, pool, sole_writer=True)
        if pool is not None
        else ps.PostgresStorage.from_url(url, name=name, sole_writer=True)
    )
    started = time.perf_counter()
    await storage.open()
    opened = time.perf_counter()
    await storage.peer_by_id(42)
    looked = time.perf_counter()
    await storage.close()
    if pool is not None:
        await pool.close()
    return {"open_ms": (opened - started) * 1000, "first_lookup_ms": (looked - opened) * 1000}


async def _host(url: str, sessions: int, per_session: int) -> dict[str, Any]:
    import asyncpg

    import pyrogram_storage as ps

    base = _rss_mb()
    pool = await asyncpg.create_pool(url, min_size=2, max_size=8)
    storages = [ps.PostgresStorage(f"host_{k}", pool, sole_writer=True) for k in range(sessions)]
    started = time.perf_counter()
    for storage in storages:
        await storage.open()
    opened = time.perf_counter()
    for k, storage in enumerate(storages):
        peer = await storage.peer_by_id(k % per_session + 1)
        assert peer.access_hash == (k % per_session) * 7
        i = (k * 3) % per_session
        i -= i % 3
        assert (await storage.peer_by_username(f"u{i}")).id == i + 1
    used = time.perf_counter()
    await asyncio.sleep(2)  # the cache warm-ups finish
    rss_all_open = _rss_mb()
    for storage in storages:
        await storage.close()
    closed = time.perf_counter()
    await pool.close()
    return {
        "sessions": sessions,
        "peers_per_session": per_session,
        "rss_before_mb": base,
        "rss_all_open_mb": rss_all_open,
        "rss_peak_mb": _hwm_mb(),
        "open_ms_per_session": (opened - started) * 1000 / sessions,
        "lookups_ms_per_session": (used - opened) * 1000 / sessions,
        "close_ms_per_session": (closed - used - 2) * 1000 / sessions,
    }


def _child(argv: list[str]) -> int:
    what, url = argv[0], argv[1]
    if what == "fill":
        asyncio.run(_fill(url, argv[2], int(argv[3])))
        result: Any = {}
    elif what == "open":
        result = asyncio.run(_open_once(url, argv[2], argv[3] == "pool"))
    else:
        result = asyncio.run(_host(url, int(argv[2]), int(argv[3])))
    print(json.dumps(result))
    return 0


def _run_child(*args: str) -> Any:
    out = subprocess.run(
        [sys.executable, __file__, "--child", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    if out.returncode != 0:
        raise SystemExit(f"child {args[0]} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


async def _bulk_sessions(url: str, sessions: int, per_session: int) -> None:
    """Make the host's sessions (through the storage) and their peers (by SQL, in bulk)."""
    import asyncpg

    import pyrogram_storage as ps

    pool = await asyncpg.create_pool(url, min_size=1, max_size=4)
    for k in range(sessions):
        async with ps.PostgresStorage(f"host_{k}", pool, sole_writer=True) as storage:
            await storage.update_session(dc_id=2, api_id=1, auth_key=bytes(256), user_id=k)
    async with pool.acquire() as conn:
        sids = [
            row[0]
            for row in await conn.fetch(
                "SELECT sid FROM pyrogram_storage.sessions WHERE name LIKE 'host\\_%'"
            )
        ]
        await conn.execute(
            "INSERT INTO pyrogram_storage.peers "
            "(sid, id, access_hash, type, usernames, phone_number, last_update_on) "
            "SELECT s, i + 1, i * 7, 'user', "
            "CASE WHEN i % 3 = 0 THEN ARRAY['u' || i, 'v' || i] ELSE '{}'::text[] END, "
            "CASE WHEN i % 3 = 1 THEN '1' || i END, extract(epoch from now())::bigint "
            "FROM unnest($1::int[]) AS s, generate_series(0, $2 - 1) AS i "
            "ON CONFLICT DO NOTHING",
            sids,
            per_session,
        )
        await conn.execute(
            "INSERT INTO pyrogram_storage.usernames (sid, username, peer_id) "
            "SELECT sid, unnest(usernames), id FROM pyrogram_storage.peers "
            "WHERE sid = ANY($1) ON CONFLICT DO NOTHING",
            sids,
        )
        await conn.execute("ANALYZE")
    await pool.close()


def main() -> int:
    if sys.argv[1:2] == ["--child"]:
        return _child(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=int, default=100_000)
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--session-peers", type=int, default=1000)
    parser.add_argument("--opens", type=int, default=15)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    options = parser.parse_args()

    from servers.pgserver import PostgresServer

    load_before = os.getloadavg()
    with PostgresServer(settings=["fsync=on", "full_page_writes=on"]) as server:
        url = server.url
        version = subprocess.run(
            [str(server.bin / "postgres"), "--version"], capture_output=True, text=True
        ).stdout.strip()
        started = time.perf_counter()
        _run_child("fill", url, "big", str(options.peers))
        fill_s = time.perf_counter() - started
        opens: dict[str, list[dict[str, float]]] = {"pool": [], "url": []}
        for _ in range(options.opens):
            for how in ("pool", "url"):
                opens[how].append(_run_child("open", url, "big", how))
        started = time.perf_counter()
        asyncio.run(_bulk_sessions(url, options.sessions, options.session_peers))
        bulk_s = time.perf_counter() - started
        host = _run_child("host", url, str(options.sessions), str(options.session_peers))
    result = {
        "generated": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "python": platform.python_version(),
        "cores": os.cpu_count(),
        "server": f"{version} (fsync on), 127.0.0.1",
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "peers": options.peers,
        "fill_s": fill_s,
        "opens": opens,
        "open_ms_median": {
            how: statistics.median(run["open_ms"] for run in runs) for how, runs in opens.items()
        },
        "first_lookup_ms_median": {
            how: statistics.median(run["first_lookup_ms"] for run in runs)
            for how, runs in opens.items()
        },
        "bulk_s": bulk_s,
        "host": host,
    }
    options.out.mkdir(parents=True, exist_ok=True)
    (options.out / "postgres-scale.json").write_text(json.dumps(result, indent=2))
    text = _report(result)
    (options.out / "postgres-scale.md").write_text(text)
    print(text)
    return 0


def _report(r: dict[str, Any]) -> str:
    host = r["host"]
    pool_ms, url_ms = r["open_ms_median"]["pool"], r["open_ms_median"]["url"]
    rss = host["rss_peak_mb"]
    return "\n".join(
        [
            "# PostgresStorage at scale",
            "",
            f"{r['server']}; CPython {r['python']}; {r['cores']} cores; generated "
            f"{r['generated']}; load average before "
            f"{', '.join(f'{x:.2f}' for x in r['load_before'])}, after "
            f"{', '.join(f'{x:.2f}' for x in r['load_after'])}.",
            "",
            "## Targets (issue 25)",
            "",
            "| target | measured | met |",
            "|---|---:|:---:|",
            f"| open of a {r['peers']:,}-peer session ≤ 50 ms (pool passed in) | "
            f"{pool_ms:.1f} ms | {'yes' if pool_ms <= 50 else 'no'} |",
            f"| the same with `from_url` (the pool's first connection included) | "
            f"{url_ms:.1f} ms | {'yes' if url_ms <= 50 else 'no'} |",
            f"| {host['sessions']:,} sessions of {host['peers_per_session']:,} peers open in "
            f"one process, each looked up: ≤ 300 MB RSS | {rss:.0f} MB peak | "
            f"{'yes' if rss <= 300 else 'no'} |",
            "",
            "## Open",
            "",
            f"A session of {r['peers']:,} peers (written through the storage in "
            f"{r['fill_s']:.1f} s); each open is a new storage object in a fresh process, "
            f"{len(r['opens']['pool'])} times, medians. Open reads no peer: the peer cache "
            "warms in the background afterwards.",
            "",
            "| how | open (ms) | first lookup by id after it (ms) |",
            "|---|---:|---:|",
            f"| pool passed in | {pool_ms:.2f} | {r['first_lookup_ms_median']['pool']:.2f} |",
            f"| from_url | {url_ms:.2f} | {r['first_lookup_ms_median']['url']:.2f} |",
            "",
            "## Many sessions in one process",
            "",
            f"{host['sessions']:,} sessions of {host['peers_per_session']:,} peers in one "
            f"database (rows written in bulk in {r['bulk_s']:.1f} s), opened in one process on "
            "one shared pool (sole_writer=True), each looked up by id and by username.",
            "",
            "| measure | value |",
            "|---|---:|",
            f"| RSS before | {host['rss_before_mb']:.0f} MB |",
            f"| RSS with every session open (after the cache warm-ups) | "
            f"{host['rss_all_open_mb']:.0f} MB |",
            f"| peak RSS | {rss:.0f} MB |",
            f"| open, per session | {host['open_ms_per_session']:.2f} ms |",
            f"| lookup by id + by username, per session | "
            f"{host['lookups_ms_per_session']:.2f} ms |",
            f"| close, per session | {host['close_ms_per_session']:.2f} ms |",
            "",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
