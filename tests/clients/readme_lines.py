"""Execute, as written, the documented line(s) of one client and check what they build.

Runs INSIDE that client's venv::

    python readme_lines.py <client> <rst file> <workdir>

Every ``.. code-block:: python`` of the file whose first line is ``# <Client> …``
(the client's name, any case) is run with ``exec`` as a script in ``workdir`` would
be (current directory and ``sys.argv[0]`` there, so the clients' and our default
workdir are ``workdir``), with
``SESSION_STRING`` set to the client's fixture string. The block must leave an
``app`` whose storage is our wrapper (and passes the client's own type check); a
block that starts from a session string must also load it through the client and
export the same string. Prints one JSON line; exits 1 on any failure.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import pathlib
import re
import stat
import sys
import textwrap
from typing import Any

HERE = pathlib.Path(__file__).resolve().parent
CLIENT, DOC = sys.argv[1], pathlib.Path(sys.argv[2]).resolve()
WORKDIR = pathlib.Path(sys.argv[3]).resolve()
MODULE = "hydrogram" if CLIENT == "hydrogram" else "pyrogram"
SESSION_STRING = json.loads((HERE.parent / "fixtures" / "sessions" / f"{CLIENT}.json").read_text())[
    "session_string"
]

BLOCK = re.compile(r"^\.\. code-block:: python\n\n((?:    .*\n|\n)+)", re.MULTILINE)


def blocks(text: str) -> list[str]:
    """Return the python blocks labelled with this client's name."""
    found = []
    for match in BLOCK.finditer(text):
        code = textwrap.dedent(match.group(1)).strip() + "\n"
        first = code.splitlines()[0]
        if re.match(rf"#\s*{re.escape(CLIENT)}\b", first, re.IGNORECASE):
            found.append(code)
    return found


async def check(code: str, failures: list[str]) -> None:
    import pyrogram_storage
    from pyrogram_storage.clients import ClientStorage

    namespace: dict[str, Any] = {"__name__": "__readme__"}
    exec(compile(code, f"{DOC.name}:{CLIENT}", "exec"), namespace)  # the docs' own code
    app = namespace.get("app")
    if app is None:
        failures.append(f"block defines no app:\n{code}")
        return
    storage = app.storage
    if not isinstance(storage, ClientStorage):
        failures.append(f"app.storage is {type(storage).__name__}, not our wrapper:\n{code}")
        return
    client_storage = importlib.import_module(f"{MODULE}.storage")
    base = getattr(client_storage, "BaseStorage", None) or client_storage.Storage
    if not isinstance(storage, base) or not storage:
        failures.append(f"wrapper fails {CLIENT}'s own storage check")
    await storage.open()
    try:
        if await storage.user_id() is not None:
            await app.load_session()
            exported = await app.export_session_string()
            if exported != SESSION_STRING:
                failures.append("exported session string differs from the one given")
    finally:
        await storage.close()
    inner = storage.storage
    if isinstance(inner, pyrogram_storage.FileStorage):
        mode = stat.S_IMODE(os.stat(inner.path).st_mode)
        if inner.path.parent.resolve() != WORKDIR.resolve() or mode != 0o600:
            failures.append(f"session file {inner.path} mode {mode:o}")
    await storage.delete()


async def main() -> None:
    os.chdir(WORKDIR)
    sys.argv[0] = str(WORKDIR / "bot.py")
    os.environ["SESSION_STRING"] = SESSION_STRING
    found = blocks(DOC.read_text())
    failures: list[str] = []
    for code in found:
        await check(code, failures)
    print(json.dumps({"client": CLIENT, "blocks": len(found), "failed": failures}))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    asyncio.run(main())
