"""Sphinx configuration of r2dservice's documentation (MyST Markdown, pydata theme).

Build: pip install -e '.[docs]' && sphinx-build -W --keep-going -b html docs docs/_build/html
The configuration reference (reference/config.md) is written from the code at build
time by _ext/r2dconfig.py; the REST API page renders r2dservice/openapi.yaml.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # the r2dservice package beside the docs
sys.path.insert(0, os.path.join(HERE, "_ext"))

from r2dservice._version import __version__  # noqa: E402

project = "r2dservice"
author = "r2dservice contributors"
copyright = "r2dservice contributors"
version = release = __version__

extensions = [
    "myst_parser",
    "sphinxcontrib.openapi",
    "r2dconfig",
]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_ext", "Thumbs.db", ".DS_Store"]

myst_enable_extensions = ["colon_fence", "deflist", "fieldlist"]
myst_heading_anchors = 3

html_theme = "pydata_sphinx_theme"
html_title = "r2dservice"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_static_path = []
html_last_updated_fmt = None
# Nothing is fetched from the network while building (no intersphinx inventories).
