"""The single entry point for checks: ``python -m nox`` runs them all.

Sessions: tests (every supported Python found on the machine), tests_fast_switch
(the suite with ``sys.setswitchinterval`` lowered, to shake out races), lint,
typecheck, docs.  ``bench`` is run only on request: ``python -m nox -s bench``.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import nox

nox.needs_version = ">=2024.4.15"
nox.options.default_venv_backend = "venv"
nox.options.error_on_missing_interpreters = os.environ.get("CI") == "true"
nox.options.sessions = ["tests", "tests_fast_switch", "lint", "typecheck", "docs"]

ROOT = Path(__file__).parent
PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")
# The supported Pythons are the ones the classifiers name.
PYTHONS = [
    m.group(1)
    for c in PYPROJECT["project"]["classifiers"]
    if (m := re.fullmatch(r"Programming Language :: Python :: (3\.\d+)", c))
]


def group(name: str) -> list[str]:
    return nox.project.dependency_groups(PYPROJECT, name)


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The test suite, with pytest-timeout guarding every test."""
    session.install(".", *group("tests"))
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session(python=PYTHONS[-1])
def tests_fast_switch(session: nox.Session) -> None:
    """The suite with the GIL switch interval at 1 microsecond, under -X dev."""
    session.install(".", *group("tests"))
    session.run(
        "python",
        "-X",
        "dev",
        "-m",
        "pytest",
        *session.posargs,
        env={"THREADKIT_SWITCH_INTERVAL": "1e-6"},
    )


@nox.session(python=PYTHONS[0])
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install(*group("lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHONS[0])
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the package and the typed-API file."""
    session.install(".", *group("typing"))
    session.run("mypy", "--strict")


@nox.session(python=PYTHONS[0])
def docs(session: nox.Session) -> None:
    """Build the HTML docs and run their examples; any warning fails the build."""
    session.install(".", *group("docs"))
    out = ROOT / "docs" / "_build"
    shutil.rmtree(out, ignore_errors=True)
    for builder in ("html", "doctest"):
        session.run(
            "sphinx-build",
            "-W",
            "--keep-going",
            "-n",
            "-b",
            builder,
            "docs",
            str(out / builder),
        )


@nox.session(python=PYTHONS[0])
def bench(session: nox.Session) -> None:
    """Benchmarks against the standard library, side by side, printed as ratios."""
    session.install(".", *group("bench"))
    for script in sorted(Path(ROOT / "benchmarks").glob("bench_*.py")):
        session.run("python", str(script.relative_to(ROOT)))


if __name__ == "__main__":
    sys.exit("run this file with nox: python -m nox")
