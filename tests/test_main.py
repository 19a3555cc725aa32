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
    # The foreground printed its progress while the zip ran in the background.
    assert len(re.findall(r"foreground: hashed \d/4 of mydata\.txt", proc.stdout)) == 4
    # Everything happened in a temporary directory, removed afterwards.
    folder = re.search(r"demonstration, in (\S+)", proc.stdout)
    assert folder is not None
    assert not Path(folder.group(1)).exists()
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
