"""Sphinx configuration.  Built by ``python -m nox -s docs`` with -W --keep-going -n."""

from __future__ import annotations

import doctest
import os
from importlib.metadata import version as _version
from pathlib import Path

project = "threadkit"
author = "The threadkit developers"
copyright = "2026, the threadkit developers"
release = _version("threadkit")
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "sphinx.ext.intersphinx",
    "sphinx.ext.napoleon",
    "sphinx_copybutton",
]

html_theme = "furo"
html_title = f"threadkit {release}"
exclude_patterns = ["_build", "examples"]
# Copying a doctest block copies the code without its ">>> " / "... " prompts and
# without the output; copying a shell line drops the "$ ".
copybutton_prompt_text = r">>> |\.\.\. |\$ "
copybutton_prompt_is_regexp = True
copybutton_only_copy_prompt_lines = True
nitpicky = True
default_role = "py:obj"

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False

# Sphinx's default also sets IGNORE_EXCEPTION_DETAIL, which would let the error
# messages shown in the docs drift from the real ones: compare them too.
doctest_default_flags = doctest.ELLIPSIS | doctest.DONT_ACCEPT_TRUE_FOR_1

# The build never needs the network: the Python inventory is read from a local
# file (Debian's python3.11-doc package ships it; .ci/run installs it).  Links
# still point at docs.python.org.
_inventory = os.environ.get("THREADKIT_PYTHON_INVENTORY") or next(
    (
        str(p)
        for p in (
            Path("/usr/share/doc/python3.11/html/objects.inv"),
            Path("/usr/share/doc/python3/html/objects.inv"),
        )
        if p.is_file()
    ),
    None,
)
intersphinx_mapping = {"python": ("https://docs.python.org/3", _inventory)}

# Names that napoleon and autodoc produce from annotations but that no
# inventory documents (type variables, private helpers).
nitpick_ignore_regex = [
    (r"py:.*", r"(threadkit\._.*|~?R|~?T|~?P|typing\.~P|P\.args|P\.kwargs|ErrorHook)"),
]


# Annotations name some stdlib classes by their private defining module
# (concurrent.futures._base.Future, _asyncio.Future); point those at the documented public name
# before intersphinx resolves them.
def _public_stdlib_names(app, env, node, contnode):  # type: ignore[no-untyped-def]
    target = node.get("reftarget", "")
    for private, public in (
        ("concurrent.futures._base.", "concurrent.futures."),
        ("_asyncio.", "asyncio."),
    ):
        if target.startswith(private):
            node["reftarget"] = public + target.removeprefix(private)


def setup(app):  # type: ignore[no-untyped-def]
    app.connect("missing-reference", _public_stdlib_names, priority=100)
