"""``python -m pyrogram_storage``: the ``pyrogram-storage`` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
