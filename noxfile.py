"""The single entry point for checks: ``python -m nox`` runs them all.

Sessions: tests (every supported Python found on the machine), tests_dev (the
suite under ``-X dev -W error`` with ``sys.setswitchinterval`` lowered, to shake
out races, on every supported Python too), lint, typecheck, docs.  ``bench`` and
``soak`` are run only on request: ``python -m nox -s bench``, ``python -m nox -s soak``.

The supported Pythons are the classifiers' (3.11-3.15); a session whose Python is
not installed is skipped, except in CI.  Where 3.14 and 3.15 cannot be installed
(Debian 12), ``bash .ci/pythons run python -m nox --python 3.14 3.15`` runs their
sessions in a Debian sid chroot, as CI does (root needed; see that script).
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
nox.options.sessions = ["tests", "tests_dev", "lint", "typecheck", "docs"]

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


@nox.session(python=PYTHONS)
def tests_dev(session: nox.Session) -> None:
    """The suite in development mode, warnings as errors, the GIL switch interval at 1 us.

    ``-X dev`` turns on the debug hooks (unclosed resources, asyncio debug) and
    ``-W error`` fails on any warning, even outside pytest's own filters; the
    tiny switch interval makes threads interleave far more often, so races show
    up.  CPython's executor tests (tests/test_executor_cpython.py) are left to
    ``tests``: they mostly sleep, and would double this session's time.
    """
    session.install(".", *group("tests"))
    run_dev(session, session.posargs or ["--ignore=tests/test_executor_cpython.py"], {})


def run_dev(session: nox.Session, args: list[str], env: dict[str, str]) -> None:
    """pytest under ``-X dev -W error`` with the switch interval at 1 us (see tests_dev)."""
    session.run(
        "python",
        "-X",
        "dev",
        "-W",
        "error",
        "-m",
        "pytest",
        *args,
        env={"THREADKIT_SWITCH_INTERVAL": "1e-6", **env},
    )


# The Pythons Ray ships wheels for (checked with ``pip download --only-binary=:all: ray``
# against Ray 2.60: 3.11, 3.12 and 3.13; none yet for 3.14 or 3.15).
RAY_PYTHONS = ["3.11", "3.12", "3.13"]


@nox.session(python=RAY_PYTHONS)
def ray(session: nox.Session) -> None:
    """RayWorker's tests and the contract suite with the Ray face, plainly and under -X dev.

    Not a default session: Ray is a 285 MB install per Python and starts a
    local cluster (seconds), which ``python -m nox`` should not cost every
    developer; CI runs it explicitly.  ``THREADKIT_REQUIRE_RAY=1`` turns a
    missing Ray into an error, so that this session cannot pass by skipping.
    """
    session.install(".[ray]", *group("tests"))
    args = session.posargs or ["tests/test_ray.py", "tests/test_contract.py"]
    session.run("python", "-m", "pytest", *args, env={"THREADKIT_REQUIRE_RAY": "1"})
    run_dev(session, args, {"THREADKIT_REQUIRE_RAY": "1"})


@nox.session(python=PYTHONS[0])
def soak(session: nox.Session) -> None:
    """The soak test at full size: 1.5 million requests pushed per run (over a million
    accepted), figures printed."""
    session.install(".", *group("tests"))
    session.run(
        "python",
        "-m",
        "pytest",
        "-s",
        "-o",
        "timeout=900",
        "tests/test_soak.py",
        *session.posargs,
        env={"THREADKIT_SOAK_REQUESTS": os.environ.get("THREADKIT_SOAK_REQUESTS", "1500000")},
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
    """Build the HTML docs and run their examples; any warning fails the build.

    Then check the built site in Debian's headless Chromium (tests/test_site.py):
    no broken internal link or anchor, no table that needs sideways scrolling at
    1280 px, and screenshots at 1280 and 390 px in docs/_build/screenshots.
    Needs Debian's graphviz, chromium and chromium-driver (.ci/run installs them).
    """
    session.install(".", *group("docs-check"))
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
    session.run(
        "python",
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "tests/test_site.py",
        env={"THREADKIT_SITE": str(out / "html")},
    )


@nox.session(python="3.13")
def bench(session: nox.Session) -> None:
    """Benchmarks against the standard library, side by side, printed as ratios.

    On 3.13, the Python the speed targets were set on.  ``python -m nox -s bench
    -- --write-docs`` also regenerates the docs' tables (docs/bench_*.rst) from
    this run: the docs' figures are never typed by hand.  benchmarks/bench_ray.py
    needs Ray and is run by hand (its docstring says how).
    """
    session.install(".", *group("bench"))
    write_docs = "--write-docs" in session.posargs
    for script in sorted(Path(ROOT / "benchmarks").glob("bench_*.py")):
        if script.name == "bench_ray.py":
            continue
        documented = (ROOT / "docs" / script.name.replace(".py", ".rst")).exists()
        extra = ["--write-docs"] if write_docs and documented else []
        session.run("python", str(script.relative_to(ROOT)), *extra)


if __name__ == "__main__":
    sys.exit("run this file with nox: python -m nox")
