"""Sphinx configuration of the linear_jax documentation (``make docs``).

The build is offline: MathJax is served from ``_static/mathjax`` (copied from
the pinned npm package in ``docs/node_modules``), and no extension fetches
anything. Notebooks (MyST markdown with a ``kernelspec``) are executed at
build time, and re-executed only when their code changes (myst-nb's cache).
"""

from __future__ import annotations

import os
import shutil
import sys

import linear_jax

DOCS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(DOCS, "_ext"))

project = "linear_jax"
author = "the linear_jax authors"
copyright = "the linear_jax authors"  # noqa: A001 (Sphinx's name)
release = version = linear_jax.__version__

extensions = [
  "myst_nb",
  "sphinx.ext.autodoc",
  "sphinx.ext.autosummary",
  "sphinx.ext.napoleon",
  "sphinx.ext.mathjax",
  "plain_docstrings",
  "public_docstrings",
]
exclude_patterns = [
  "_build",
  "node_modules",
  "jupyter_execute",
  "**.ipynb_checkpoints",
  "README.md",
]

# ---------------------------------------------------------------- MyST, notebooks
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
smartquotes = False  # --flags stay --flags, not en dashes
nb_execution_mode = "cache"
nb_execution_raise_on_error = True  # a failing cell fails the build
nb_execution_show_tb = True
nb_execution_timeout = 300  # seconds per cell
nb_merge_streams = True
nb_render_markdown_format = "myst"  # markdown outputs with tables

# ---------------------------------------------------------------- API reference
autosummary_generate = False  # docs/_ext/public_docstrings.py writes the pages
autosummary_ignore_module_all = False  # a package's __all__ is its API
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_type_aliases = {
  "ArrayLike": "jax.typing.ArrayLike"
}  # not its expansion
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
public_docstring_modules = [
  "linear_jax",
  "linear_jax.data",
  "linear_jax.train",
  "linear_jax.sweep",
  "linear_jax.path",
  "linear_jax.probe",
  "linear_jax.model",
  "linear_jax.sklearn",
  "linear_jax.decomposition",
  "linear_jax.lecture",
  "linear_jax.plots",
]

# ---------------------------------------------------------------- HTML
html_theme = "furo"
html_title = f"linear_jax {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_show_sourcelink = False
html_last_updated_fmt = None

# MathJax 3, served with the pages (no CDN): a path relative to _static.
MATHJAX_SOURCE = os.path.join(DOCS, "node_modules", "mathjax", "es5")
mathjax_path = "mathjax/tex-chtml.js"


def copy_mathjax(app, exception):
  """Copies MathJax's es5 tree to ``_static/mathjax`` of the built site."""
  if exception is not None or app.builder.format != "html":
    return
  target = os.path.join(app.outdir, "_static", "mathjax")
  shutil.copytree(MATHJAX_SOURCE, target, dirs_exist_ok=True)


def check_mathjax(app):
  """Fails early, in one line, when the npm packages are not installed."""
  if not os.path.isfile(os.path.join(MATHJAX_SOURCE, "tex-chtml.js")):
    from sphinx.errors import ConfigError

    raise ConfigError(
      f"{MATHJAX_SOURCE}/tex-chtml.js is missing; run `make docs` (it runs "
      "`npm ci` in docs/) or `cd docs && npm ci`"
    )


def setup(app):
  """Hooks the MathJax copy into the build."""
  app.connect("builder-inited", check_mathjax)
  app.connect("build-finished", copy_mathjax)
