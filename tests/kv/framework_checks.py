"""A tiny checker for the framework scripts: records failures instead of stopping at one."""

from __future__ import annotations

import time
import traceback
from collections.abc import Awaitable
from typing import Any


class Checks:
    """Collect passed checks and failure messages of one backend."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.passed = 0
        self.failed: list[str] = []
        self.started = time.monotonic()

    def eq(self, label: str, got: Any, want: Any) -> None:
        if got == want and type(got) is type(want):
            self.passed += 1
        else:
            self.failed.append(f"{label}: got {got!r}, want {want!r}")

    def true(self, label: str, condition: object) -> None:
        if condition:
            self.passed += 1
        else:
            self.failed.append(label)

    async def raises(
        self, label: str, call: Awaitable[Any], *kinds: type[BaseException]
    ) -> BaseException | None:
        """Await ``call``; it must raise an exception that is an instance of every kind."""
        try:
            result = await call
        except Exception as exc:
            missing = [kind.__name__ for kind in kinds if not isinstance(exc, kind)]
            if missing:
                self.failed.append(
                    f"{label}: raised {type(exc).__name__}({exc}), not a {', '.join(missing)}"
                )
                return None
            self.passed += 1
            return exc
        self.failed.append(f"{label}: returned {result!r} instead of raising")
        return None

    def crashed(self, exc: BaseException) -> None:
        self.failed.append("crashed: " + "".join(traceback.format_exception(exc)).strip()[-3000:])

    def report(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "failed": self.failed,
            "seconds": round(time.monotonic() - self.started, 2),
        }
