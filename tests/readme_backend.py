"""The documented "write your own backend" classes, loaded from their page as written.

The classes live in ``docs/guides/custom-backend.rst`` (the ``readme`` backend of the
test suites keeps its name from when they were in README.rst). The contract suites, the
copy tools and the client round trip run them like any backend, so the documented
examples are held to the whole contract: ``DictStorage`` (a session storage) and
``DictKV`` (a bot-state store).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import io
from typing import Any

from .doc_pages import block_with, name


@functools.cache
def dict_storage() -> type[Any]:
    """Return the documented ``DictStorage`` class (its block runs as written, once)."""
    return _readme_class("class DictStorage(Storage)", "DictStorage")


@functools.cache
def dict_kv() -> type[Any]:
    """Return the documented ``DictKV`` bot-state store (its block runs as written, once)."""
    return _readme_class("class DictKV(KVStore[Any])", "DictKV")


def _readme_class(marker: str, class_name: str) -> type[Any]:
    page, source = block_with(marker)
    namespace: dict[str, Any] = {"__name__": "readme_backend"}

    def run() -> None:
        with contextlib.redirect_stdout(io.StringIO()):  # its asyncio.run(main()) prints
            exec(compile(source, name(page), "exec"), namespace)

    # A thread of its own: the block's asyncio.run() needs no running event loop.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(run).result()
    return namespace[class_name]  # type: ignore[no-any-return]
