"""Sphinx configuration of the clr_optax documentation (sphinx-book-theme and myst-nb, as optax and flax)."""

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the checkout's clr_optax, installed or not

import clr_optax  # pylint: disable=g-import-not-at-top,wrong-import-position

project = "clr_optax"
author = "clr_optax developers"
copyright = "clr_optax developers"  # pylint: disable=redefined-builtin
release = clr_optax.__version__
version = release

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "**/.ipynb_checkpoints"]

# The notebooks are the Colab ones (symbolic links into ../colab), shown as committed: without outputs.
nb_execution_mode = "off"
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3

default_role = "py:obj"  # `name` in a docstring links to that name's page where it has one
autosummary_generate = True
autodoc_default_options = {"members": True, "member-order": "bysource", "undoc-members": False}
autodoc_typehints = "none"  # the docstrings say what each argument takes; expanded aliases would not
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True  # a class's Attributes section as fields: autodoc would describe them a second time


def _skip_tuple_fields(app, what, name, obj, skip, options):  # pylint: disable=unused-argument
  """NamedTuple fields are described in their class's Attributes section, not as "Alias for field number N"."""
  if (getattr(obj, "__doc__", None) or "").startswith("Alias for field number"):
    return True
  return skip


def setup(app):
  app.connect("autodoc-skip-member", _skip_tuple_fields)

html_theme = "sphinx_book_theme"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_title = f"clr_optax {release}"
html_theme_options = {
    "repository_url": "https://github.com/clr-optax/clr_optax",
    "repository_branch": "main",
    "path_to_docs": "docs",
    "use_repository_button": True,
    "use_issues_button": True,
    "show_toc_level": 2,
}
