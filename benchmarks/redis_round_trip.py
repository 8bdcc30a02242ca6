"""The floor under an uncached shared-mode lookup: one bare ``HGET`` round trip.

A blocking, pure-Python socket (no asyncio, no client library, no parsing beyond
``recv``) sends ``HGET`` to a Valkey/Redis server on 127.0.0.1 and waits for the
reply, ``--calls`` times a round, ``--rounds`` rounds; it prints wall and CPU time per
round trip. Whatever a storage adds to a lookup that must ask the server comes on top
of this. Run from the repository root: ``python benchmarks/redis_round_trip.py``
(starts its own server as the tests do).
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers.redisserver import RedisServer  # noqa: E402

VALUE = b'[123456789,"user",0]'
HGET = b"*3\r\n$4\r\nHGET\r\n$1\r\nh\r\n$1\r\n1\r\n"


def round_trips(host: str, port: int, calls: int, rounds: int) -> list[tuple[float, float]]:
    """(wall µs, CPU µs) per round trip, one pair a round."""
    with socket.create_connection((host, port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(
            b"*4\r\n$4\r\nHSET\r\n$1\r\nh\r\n$1\r\n1\r\n$%d\r\n%s\r\n" % (len(VALUE), VALUE)
        )
        sock.recv(100)
        found = []
        for _ in range(rounds):
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(calls):
                sock.sendall(HGET)
                sock.recv(100)
            found.append(
                (
                    (time.perf_counter() - wall) / calls * 1e6,
                    (time.process_time() - cpu) / calls * 1e6,
                )
            )
        return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with RedisServer(Path(tempfile.mkdtemp())) as server:
        found = round_trips(server.host, server.port, args.calls, args.rounds)
    walls = sorted(wall for wall, _ in found)
    cpus = sorted(cpu for _, cpu in found)
    print(
        f"bare HGET round trip, blocking pure-Python socket, {args.calls} calls x "
        f"{args.rounds} rounds: median {walls[len(walls) // 2]:.1f} us wall "
        f"(range {walls[0]:.1f}-{walls[-1]:.1f}), {cpus[len(cpus) // 2]:.1f} us CPU"
    )


if __name__ == "__main__":
    main()
