"""The README's "write your own backend" class, loaded from README.rst as written.

The contract suite, the copy tools and the client round trip run it like any backend,
so the README's example is held to the whole contract.
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
    for block in README.read_text().split(".. code-block:: python")[1:]:
        code = []
        for line in block.split("\n")[1:]:
            if line.strip() and not line.startswith(" "):
                break
            code.append(line)
        source = textwrap.dedent("\n".join(code))
        if "class DictStorage(Storage)" in source:
            namespace: dict[str, Any] = {"__name__": "readme_backend"}

            def run(source: str = source, namespace: dict[str, Any] = namespace) -> None:
                with contextlib.redirect_stdout(io.StringIO()):  # its asyncio.run(main()) prints
                    exec(compile(source, str(README), "exec"), namespace)

            # A thread of its own: the block's asyncio.run() needs no running event loop.
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                pool.submit(run).result()
            return namespace["DictStorage"]  # type: ignore[no-any-return]
    raise LookupError("README.rst has no DictStorage example")
