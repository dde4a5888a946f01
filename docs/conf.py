"""Sphinx configuration of xmrank's documentation.

Build (from the repository root, with ``pip install -e ".[docs]"``)::

    sphinx-build -W --keep-going -b html docs docs/_build/html
"""

from __future__ import annotations

import xmrank

project = "xmrank"
author = "the xmrank authors"
copyright = "the xmrank authors"
version = release = xmrank.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
templates_path = []

# --- API pages: autodoc reads the numpydoc docstrings; ``:members:`` follows each module's ``__all__``
autodoc_default_options = {
    "member-order": "bysource",
    "show-inheritance": True,
    # scikit-learn's generated metadata-routing setters, documented by scikit-learn
    "exclude-members": "set_fit_request, set_predict_request, set_score_request",
}
autodoc_typehints = "none"  # the numpydoc "Parameters" sections carry the types
autosummary_generate = False
numpydoc_show_class_members = False  # a class's methods are documented by autodoc below it
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

intersphinx_mapping = {}  # no network needed to build

myst_heading_anchors = 3

html_theme = "alabaster"
html_static_path = []
html_title = f"xmrank {release}"


def _top_level_alias(app, env, node, contnode):
    """Resolve ``xmrank.NAME`` (a lazy top-level export) to where NAME is documented.

    ``import xmrank; xmrank.cluster`` is ``xmrank.clustering.cluster``; the API pages
    document each function once, under its subpackage, so references to the
    top-level spelling are sent there.
    """
    target = node.get("reftarget", "")
    if node.get("refdomain") != "py" or not target.startswith("xmrank."):
        return None
    head, _, rest = target[len("xmrank."):].partition(".")
    sub = getattr(xmrank, "_EXPORTS", {}).get(head)
    if sub is None:
        return None
    new_target = f"xmrank.{sub}.{head}" + (f".{rest}" if rest else "")
    domain = env.get_domain("py")
    builder = app.builder
    return domain.resolve_xref(env, node.get("refdoc"), builder, node.get("reftype"), new_target, node, contnode)


def setup(app):
    app.connect("missing-reference", _top_level_alias)
