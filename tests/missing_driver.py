"""A call made where a driver or framework cannot be imported, in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def missing_driver_error(blocked: str, imports: str, build: str) -> tuple[str, str]:
    """Run ``imports`` then ``build`` where ``import blocked`` fails for real.

    ``build`` must raise ``MissingDriverError`` (an ``ImportError`` too); return its
    ``extra`` and its message.
    """
    code = (
        # sys.modules[name] = None makes `import name` fail in that process.
        f"import sys; sys.modules[{blocked!r}] = None\n"
        "from pyrogram_storage import MissingDriverError\n"
        f"{imports}\n"
        "try:\n"
        f"    {build}\n"
        "except MissingDriverError as exc:\n"
        "    assert isinstance(exc, ImportError)\n"
        "    print(exc.extra, '|', exc)\n"
        "else:\n"
        "    raise SystemExit('no error')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    extra, _, message = result.stdout.strip().partition(" | ")
    return extra, message
