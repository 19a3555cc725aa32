"""The documentation stays true: every public name is in the reference, and the examples run.

What runs where:

- here, in every ``nox -s tests`` run: the reference covers ``threadkit.__all__``
  and every public method; README.rst's Python example runs; the test module
  shown in the "Testing" how-to (docs/examples/test_visits.py) passes;
- here, when Sphinx is installed, and in ``nox -s docs``: every ``>>>``
  example of the docs, through Sphinx's doctest builder.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

import threadkit
from threadkit._engine import TRANSITIONS, State, Step

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
REFERENCE = DOCS / "reference"
README = ROOT / "README.rst"

# Generous: these run whole programs (a doctest build, a pytest run).
PROGRAM_TIMEOUT = 120

_OBJECT = re.compile(
    r"^\s*\.\. (?:auto)?(?:class|function|exception|data|module)::\s*"
    r"(?:threadkit\.)?([A-Za-z_][\w.]*)",
    re.MULTILINE,
)
_AUTOCLASS = re.compile(r"^(\s*)\.\. auto(?:class|exception)::\s*(?:threadkit\.)?(\w+)")
_OPTION = re.compile(r"^\s*:(\w[\w-]*):\s*(.*)$")
_NESTED = re.compile(r"^\s+\.\. (?:method|attribute|property)::\s*(\w+)")


def reference_text() -> str:
    pages = sorted(REFERENCE.glob("*.rst"))
    assert pages, f"no reference pages in {REFERENCE}"
    return "\n".join(page.read_text(encoding="utf-8") for page in pages)


def documented_names() -> set[str]:
    """The objects the reference documents, as names relative to ``threadkit``."""
    return {m.group(1) for m in _OBJECT.finditer(reference_text())}


def documented_members() -> dict[str, set[str]]:
    """For each class in the reference: the members it documents.

    Those listed in ``:members:`` (which may continue over several lines) and
    those given their own nested ``.. method::`` / ``.. attribute::`` directive.
    """
    members: dict[str, set[str]] = {}
    current: str | None = None
    indent = ""
    in_members = False
    for line in reference_text().splitlines():
        if m := _AUTOCLASS.match(line):
            indent, current, in_members = m.group(1), m.group(2), False
            members.setdefault(current, set())
            continue
        if current is None:
            continue
        if line.strip() and not line.startswith(indent + " "):
            current = None  # the directive's body has ended
            continue
        if m := _OPTION.match(line):
            in_members = m.group(1) == "members"
            if in_members:
                members[current].update(re.findall(r"\w+", m.group(2)))
        elif m := _NESTED.match(line):
            in_members = False
            members[current].add(m.group(1))
        elif in_members and line.strip():
            members[current].update(re.findall(r"\w+", line))
    return members


def public_members(cls: type) -> dict[str, type]:
    """Public attributes a class gets from threadkit's own code, each with the class defining it."""
    owners: dict[str, type] = {}
    for klass in cls.__mro__:
        if klass.__module__.split(".")[0] != "threadkit":
            continue
        for name in vars(klass):
            if not name.startswith("_"):
                owners.setdefault(name, klass)
    return owners


def docstring_attributes(cls: type) -> set[str]:
    """The names listed in the ``Attributes:`` section of a class docstring (napoleon)."""
    doc = inspect.cleandoc(cls.__doc__ or "")
    section = re.search(r"^Attributes:\n((?:[ ]+.*\n?|\n)+)", doc, re.MULTILINE)
    if section is None:
        return set()
    return set(re.findall(r"^[ ]{4}(\w+)\b.*:", section.group(1), re.MULTILINE))


def test_every_name_in_all_is_documented_in_the_reference() -> None:
    missing = set(threadkit.__all__) - documented_names()
    assert not missing, f"public names missing from docs/reference/: {sorted(missing)}"


def test_the_reference_documents_no_name_that_is_not_public() -> None:
    stale = {
        name
        for name in documented_names()
        if name.split(".")[0] not in threadkit.__all__ and name != "threadkit"
    }
    assert not stale, f"docs/reference/ documents names not in threadkit.__all__: {stale}"


@pytest.mark.parametrize(
    "name", sorted(n for n in threadkit.__all__ if isinstance(getattr(threadkit, n), type))
)
def test_every_public_method_of_a_class_is_in_the_reference(name: str) -> None:
    cls = getattr(threadkit, name)
    members = documented_members()
    assert name in members, f"{name} has no autoclass/autoexception directive"
    missing = sorted(
        member
        for member, owner in public_members(cls).items()
        # documented on this class, or where it is defined (an inherited method
        # is documented once, on its base), or as a docstring attribute
        if member not in members[name]
        and member not in members.get(owner.__name__, set())
        and member not in docstring_attributes(owner)
    )
    assert not missing, f"{name}: members missing from the reference: {missing}"


def python_blocks(rst: str) -> list[str]:
    """The bodies of the ``.. code-block:: python`` directives of an .rst text."""
    blocks = []
    for m in re.finditer(r"^\.\. code-block:: python\n((?:\n|[ ]+.*\n)+)", rst, re.MULTILINE):
        lines = m.group(1).splitlines()
        body = [line for line in lines if line.strip()]
        indent = min(len(line) - len(line.lstrip()) for line in body)
        blocks.append("\n".join(line[indent:] for line in lines).strip() + "\n")
    return blocks


def run_program(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        args,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=PROGRAM_TIMEOUT,
        check=False,
    )


def output_blocks(rst: str) -> list[str]:
    """The bodies of the ``.. code-block:: text`` directives that follow an "It prints:"."""
    return [
        "\n".join(line.strip() for line in m.group(1).strip().splitlines()) + "\n"
        for m in re.finditer(
            r"^It prints:\n\n\.\. code-block:: text\n((?:\n|[ ]+.*\n)+)", rst, re.MULTILINE
        )
    ]


def test_the_readme_python_example_prints_what_the_readme_shows(tmp_path: Path) -> None:
    text = README.read_text(encoding="utf-8")
    blocks = python_blocks(text)
    assert blocks, "README.rst has no python code block"
    shown = output_blocks(text)
    assert len(shown) == len(blocks), "every README example is followed by its output"
    for block, expected in zip(blocks, shown, strict=True):
        proc = run_program([sys.executable, "-X", "dev", "-W", "error", "-c", block], tmp_path)
        assert proc.returncode == 0, f"README example failed:\n{block}\n{proc.stderr}"
        assert proc.stdout == expected


def test_the_readme_commands_make_a_virtual_environment_first() -> None:
    text = README.read_text(encoding="utf-8")
    # Stock Debian has python3 but no python, and refuses a system-wide pip
    # install: the first command makes the environment that the others use.
    venv = "python3 -m venv .venv && . .venv/bin/activate"
    install = "python -m pip install . && python -m threadkit"
    suite = "python -m pip install nox && python -m nox"
    assert text.index(venv) < text.index(install) < text.index(suite)


def test_ci_runs_the_readme_test_command_in_a_virtual_environment() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "python3 -m venv" in ci
    assert re.search(r"^python -m pip install[^\n]* nox$", ci, re.MULTILINE), ci
    assert re.search(r"^env --default-signal=INT python -m nox ", ci, re.MULTILINE), ci


def test_the_test_module_shown_in_the_testing_guide_passes(tmp_path: Path) -> None:
    example = DOCS / "examples" / "test_visits.py"
    proc = run_program(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(example)],
        ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"\b4 passed\b", proc.stdout), proc.stdout


@pytest.mark.skipif(
    importlib.util.find_spec("sphinx") is None, reason="sphinx is not installed (nox -s docs)"
)
def test_every_example_in_the_docs_runs(tmp_path: Path) -> None:
    proc = run_program(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-n",
            "-q",
            "-b",
            "doctest",
            str(DOCS),
            str(tmp_path / "doctest"),
        ],
        ROOT,
    )
    output = tmp_path / "doctest" / "output.txt"
    report = output.read_text(encoding="utf-8") if output.exists() else ""
    assert proc.returncode == 0, proc.stdout + proc.stderr + report
    assert re.search(r"\b0 failures in tests\b", report), report


def lifecycle_extension() -> Any:
    spec = importlib.util.spec_from_file_location("lifecycle", DOCS / "_ext" / "lifecycle.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_lifecycle_diagram_draws_every_transition_of_the_engine() -> None:
    dot = lifecycle_extension().dot_source()
    edges = set(re.findall(r"^  (\w+) -> (\w+) \[label=\" (\w+) \"", dot, re.MULTILINE))
    drawn_from_any = {(after, step) for before, after, step in edges if before == "ANY"}
    for (before, step), after in TRANSITIONS.items():
        assert (before.name, after.name, step.value) in edges or (
            (after.name, step.value) in drawn_from_any
            # "any state" stands for every state only if the table says so
            and all(TRANSITIONS.get((s, step)) is after for s in State)
        ), f"{before.name} --{step.value}--> {after.name} is not drawn"
    # and nothing is drawn that the table does not have
    for before, after, step in edges:
        if before != "ANY":
            assert TRANSITIONS[State[before], Step(step)] is State[after]
    assert {m for m in re.findall(r"^  (\w+) \[label=", dot, re.MULTILINE)} == {
        *(s.name for s in State),
        "ANY",
    }


def test_read_the_docs_installs_the_docs_group_and_builds_docs_conf_py() -> None:
    rtd = (ROOT / ".readthedocs.yaml").read_text(encoding="utf-8")
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "docs" in pyproject["dependency-groups"]
    assert re.search(r"^version: 2$", rtd, re.MULTILINE)
    # pip reads dependency groups from 25.1 on; older ones reject --group.
    assert re.search(
        r'pip install --upgrade "pip>=25\.1"\n\s+- python -m pip install \. --group docs\n', rtd
    )
    assert re.search(r"^sphinx:\n  configuration: docs/conf\.py$", rtd, re.MULTILINE)
    urls = pyproject["project"]["urls"]
    # No Source: the repository has no public address yet, and none is made up.
    assert set(urls) == {"Documentation", "Changelog"}
