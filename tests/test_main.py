"""``python -m threadkit``: the demonstration runs, and what it prints is true."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from threadkit.__main__ import main

from .conftest import WAIT

ROOT = Path(__file__).resolve().parent.parent


def assert_demo_facts(out: str, *, writers: int, rows: int) -> None:
    assert re.search(r"archive verified: 1 member, CRC ok, contents match", out), out
    assert re.search(r"the ZipFile was used by 1 thread: the owner \(not the main thread\)", out)
    assert f"{writers} writer threads x {rows} rows = {writers * rows} rows requested" in out
    counted = re.search(r"rows in the table \(counted afterwards, new connection\): (\d+)", out)
    assert counted is not None, out
    assert int(counted.group(1)) == writers * rows
    assert f"distinct writers in the table: {writers}" in out
    touched = re.search(
        r"threads that touched the connection: (\d+), only the owner thread 'sqlite-owner' "
        r"\((\d+) requests\); writer threads among them: 0",
        out,
    )
    assert touched is not None, out
    assert touched.group(1) == "1"
    # Every insert, plus the CREATE TABLE and the COMMIT, ran in the owner thread.
    assert int(touched.group(2)) == writers * rows + 2
    assert "from the main thread instead: sqlite3.ProgrammingError" in out


# The whole output, line by line: what each line says is pinned, the figures are not.
_SHAPE = [
    r"threadkit \S+ demonstration \(its files go to a temporary folder, removed at the end\)",
    r"",
    r"1\. Background zip \(the tutorial's AsyncZip; a ResourceWorker owns the ZipFile\)",
    r"   wrote mydata\.txt: [\d.]+ MiB",
    r"   The main program continues to run in foreground:",
    *[
        rf"     foreground: hashed {i}/4 of mydata\.txt \(zip (still running|done)\)"
        for i in (1, 2, 3, 4)
    ],
    r"   foreground work, while the zip ran: (?P<foreground>\d+\.\d\d) s",
    r"   main program waited until background was done: (?P<waited>\d+\.\d\d) s",
    r"   the zip itself, timed in the owner thread: (?P<zip>\d+\.\d\d) s",
    r"   archive verified: 1 member, CRC ok, contents match, \d+% of the original size",
    r"   the ZipFile was used by 1 thread: the owner \(not the main thread\)",
    r"",
    r"2\. 4 threads writing to one SQLite database through a ResourceWorker",
    r"   4 writer threads x 250 rows = 1000 rows requested",
    r"   rows in the table \(counted afterwards, new connection\): 1000",
    r"   distinct writers in the table: 4",
    r"   threads that touched the connection: 1, .*",
    r"   touching the connection from the main thread instead: sqlite3\.ProgrammingError: .*",
    r"   the 1000 requests from 4 threads, with the worker's start and shutdown: \d+\.\d\d s",
    r"",
    r"How it is done: (?P<source>.+)",
    r"The chapter it follows: https://docs\.python\.org/3/tutorial/stdlib2\.html#multi-threading",
    r"That chapter's example rebuilt with threadkit, step by step: "
    r"https://threadkit\.readthedocs\.io/en/latest/tutorial\.html",
]


def test_python_m_threadkit_runs_the_demo_and_reports_one_owner_thread(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "threadkit"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert_demo_facts(proc.stdout, writers=4, rows=250)
    lines = proc.stdout.splitlines()
    assert len(lines) == len(_SHAPE), proc.stdout
    found: dict[str, str] = {}
    for line, pattern in zip(lines, _SHAPE, strict=True):
        m = re.fullmatch(pattern, line)
        assert m is not None, f"{line!r} does not match {pattern!r}"
        found.update({k: v for k, v in m.groupdict().items() if v is not None})
    # The main program waits for the zip after its own work, so its wait is at
    # most the zip's own time plus the shutdown that closes the archive.
    assert float(found["waited"]) <= float(found["zip"]) + float(found["foreground"]) + 0.5
    # It names its own source, which a reader can open.
    assert Path(found["source"]) == ROOT / "threadkit" / "__main__.py"
    # Nothing was left behind, and no folder that no longer exists was shown.
    assert "threadkit-demo-" not in proc.stdout
    assert list(tmp_path.iterdir()) == []


def test_main_in_process_writes_the_requested_rows(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--writers", "3", "--rows", "7", "--megabytes", "1"]) == 0
    assert_demo_facts(capsys.readouterr().out, writers=3, rows=7)


def test_the_demo_subcommand_is_the_default_spelled_out(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["demo", "--writers", "2", "--rows", "5", "--megabytes", "1"]) == 0
    assert_demo_facts(capsys.readouterr().out, writers=2, rows=5)


def test_help_exits_successfully_and_names_the_demo(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m threadkit")
    assert "demo" in out


@pytest.mark.parametrize("option", ["writers", "rows", "megabytes"])
def test_a_count_below_one_is_refused_with_the_option_named(
    option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main([f"--{option}", "0"])
    assert info.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert re.match(rf"^python -m threadkit: error: --{option} must be >= 1, got 0$", last)
