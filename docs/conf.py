"""Sphinx configuration of the Flask-And-Redis documentation."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # the project root, holding flask_redis
sys.path.insert(0, os.path.join(HERE, "_ext"))  # local extensions

import flask_redis  # noqa: E402

# -- Project -------------------------------------------------------------------------------

project = "Flask-And-Redis"
author = "Flask-And-Redis contributors"
copyright = "Flask-And-Redis contributors"
release = flask_redis.__version__
version = ".".join(release.split(".")[:2])

# -- General -------------------------------------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "redis_keys",
    "promql",
]
exclude_patterns = ["_build"]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_preserve_defaults = True

# -- Intersphinx ---------------------------------------------------------------------------

# Each project lists its online inventory first and an empty local one second. Without a
# network the online one fails, Sphinx falls back to the empty one and only logs that: the
# build still succeeds (also with -W), and links to these projects are left as plain text.
_OFFLINE = os.path.join("_intersphinx", "empty.inv")

intersphinx_mapping = {
    "python": ("https://docs.python.org/3/", (None, _OFFLINE)),
    "flask": ("https://flask.palletsprojects.com/en/stable/", (None, _OFFLINE)),
    "redis": ("https://redis.readthedocs.io/en/stable/", (None, _OFFLINE)),
}
intersphinx_timeout = 10

# -- HTML ----------------------------------------------------------------------------------

html_theme = "alabaster"
html_title = f"{project} {release}"
html_theme_options = {
    "description": "Redis for Flask apps, one client per config prefix.",
    "show_powered_by": False,
}
html_sidebars = {
    "**": ["about.html", "navigation.html", "relations.html", "searchbox.html"],
}

# -- Substitutions -------------------------------------------------------------------------

import redis  # noqa: E402

rst_epilog = f"""
.. |redis_py_version| replace:: {redis.__version__}
"""
