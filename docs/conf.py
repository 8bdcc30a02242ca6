"""Sphinx configuration for pyrogram-storage's documentation.

``make docs`` builds it with warnings as errors. Offline (the default) no
inventory is fetched: references to the Python standard library and to the drivers'
own documentation stay plain text. ``PYROGRAM_STORAGE_DOCS_INTERSPHINX=1`` turns
intersphinx on (it needs the network) and links them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS))
sys.path.insert(0, str(DOCS.parent))

import pyrogram_storage  # noqa: E402

project = "pyrogram-storage"
author = "pyrogram-storage contributors"
copyright = "pyrogram-storage contributors"
release = pyrogram_storage.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "myst_parser",
    "_ext.public_api",
]
myst_heading_anchors = 3

html_theme = "furo"
html_title = f"pyrogram-storage {release}"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
templates_path: list[str] = []

# A reference that does not resolve is an error (make docs passes -W).
nitpicky = True

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_class_signature = "separated"
autodoc_preserve_defaults = False
autodoc_default_options = {"show-inheritance": True}
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_param = True
napoleon_use_rtype = True

INTERSPHINX = os.environ.get("PYROGRAM_STORAGE_DOCS_INTERSPHINX", "") not in ("", "0")
"""Fetch the other projects' inventories (needs the network)."""

intersphinx_mapping = (
    {
        "python": ("https://docs.python.org/3", None),
        "asyncpg": ("https://magicstack.github.io/asyncpg/current", None),
        "redis": ("https://redis.readthedocs.io/en/stable", None),
        "pymongo": ("https://pymongo.readthedocs.io/en/stable", None),
        "aiogram": ("https://docs.aiogram.dev/en/latest", None),
    }
    if INTERSPHINX
    else {}
)
intersphinx_timeout = 10
