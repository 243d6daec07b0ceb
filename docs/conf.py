"""Sphinx configuration of the zoo's docs site: ``sphinx-build -W -b html docs docs/_build``."""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))
os.environ.setdefault("MPLBACKEND", "Agg")

project = "vbzoo"
author = "the vbzoo authors"
extensions = ["sphinx.ext.autodoc", "sphinx.ext.mathjax", "sphinx.ext.intersphinx",
              "sphinx.ext.doctest", "myst_parser"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "README.md", "results/**", "compare/**"]
myst_heading_anchors = 3
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # the docstrings say the types
intersphinx_mapping = {}  # (no network at build time in CI: links to torch/pyro are plain text)
suppress_warnings = ["myst.xref_missing"]
html_theme = "alabaster"
