"""The README's "write your own backend" classes, loaded from README.rst as written.

The contract suites, the copy tools and the client round trip run them like any
backend, so the README's examples are held to the whole contract: ``DictStorage`` (a
session storage) and ``DictKV`` (a bot-state store).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import io
import textwrap
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parent.parent / "README.rst"


@functools.cache
def dict_storage() -> type[Any]:
    """Return the README's ``DictStorage`` class (its block runs as written, once)."""
    return _readme_class("class DictStorage(Storage)", "DictStorage")


@functools.cache
def dict_kv() -> type[Any]:
    """Return the README's ``DictKV`` bot-state store (its block runs as written, once)."""
    return _readme_class("class DictKV(KVStore[Any])", "DictKV")


def _readme_class(marker: str, name: str) -> type[Any]:
    for block in README.read_text().split(".. code-block:: python")[1:]:
        code = []
        for line in block.split("\n")[1:]:
            if line.strip() and not line.startswith(" "):
                break
            code.append(line)
        source = textwrap.dedent("\n".join(code))
        if marker in source:
            namespace: dict[str, Any] = {"__name__": "readme_backend"}

            def run(source: str = source, namespace: dict[str, Any] = namespace) -> None:
                with contextlib.redirect_stdout(io.StringIO()):  # its asyncio.run(main()) prints
                    exec(compile(source, str(README), "exec"), namespace)

            # A thread of its own: the block's asyncio.run() needs no running event loop.
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                pool.submit(run).result()
            return namespace[name]  # type: ignore[no-any-return]
    raise LookupError(f"README.rst has no {name} example")
