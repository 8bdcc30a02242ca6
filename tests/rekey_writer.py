"""A process that changes a session's encryption key over and over, to be SIGKILLed.

Usage: ``python tests/rekey_writer.py WORKDIR NAME FIRST``

Opens ``WORKDIR/NAME.session`` with key ``FIRST`` (``clear``: a session stored in
clear, sealed with key 0 on open by ``encrypt_existing``), prints ``open N`` once open
under key ``N``, then for N+1, N+2, ... calls ``set_encryption_key`` and prints
``rekeyed N`` after each returned. Every printed line names a key the session had
been rewritten with when it was printed. The loop never ends by itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
from pathlib import Path


def key(number: int) -> bytes:
    """The raw key number ``number`` (the parent derives the same)."""
    return hashlib.sha256(b"rekey %d" % number).digest()


async def main(workdir: str, name: str, first: str) -> None:
    from pyrogram_storage import FileStorage

    if first == "clear":
        number = 0
        storage = FileStorage(name, Path(workdir), encryption_key=key(0), encrypt_existing=True)
    else:
        number = int(first)
        storage = FileStorage(name, Path(workdir), encryption_key=key(number))
    await storage.open()
    print(f"open {number}", flush=True)
    while True:
        number += 1
        await storage.set_encryption_key(key(number))
        print(f"rekeyed {number}", flush=True)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
