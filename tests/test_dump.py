"""threadkit.dump(), its signal handler, and python -m threadkit dump."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import threading

import pytest

import threadkit

from .conftest import WAIT


def test_the_report_shows_a_busy_worker_its_queue_and_the_running_request() -> None:
    release = threading.Event()
    started = threading.Event()

    def stuck_request(_r: object) -> None:
        started.set()
        release.wait(WAIT)

    with threadkit.ResourceWorker(object, name="db") as w:
        w.submit(stuck_request)
        w.submit(lambda _r: None)
        assert started.wait(WAIT)
        try:
            report = threadkit.dump()
        finally:
            release.set()
    assert re.search(
        r"^  worker 'db' running, thread 'db', 1 queued, running "
        r".*stuck_request\(\) for \d+\.\d{3} s$",
        report,
        re.M,
    ), report
    # The owner thread's stack shows where the request is stuck.
    stacks = report.split("stacks:")[1]
    assert "thread 'db' (worker 'db'):" in stacks
    assert "in stuck_request" in stacks


def test_the_report_shows_tasks_and_who_waits_for_whom() -> None:
    with threadkit.ResourceWorker(object, name="db") as w:
        # The request runs while the task that sent it waits in call(): the
        # report made there sees the task and its waits-for edge.
        task = threadkit.spawn(w.call, lambda _r: threadkit.dump(), name="client")
        report = task.result(WAIT)
    assert "<Task 'client' running> on thread 'client'" in report
    assert "  task 'client' waits for worker 'db'" in report
    assert re.search(r"^  worker 'db' running, .* running \S*<lambda>\(\) for ", report, re.M)


def test_the_report_shows_checked_locks_held_and_their_holder() -> None:
    threadkit.checks.enable()
    try:
        lock = threadkit.Lock(name="accounts")
    finally:
        threadkit.checks.disable()
    with lock:
        report = threadkit.dump()
    assert re.search(
        r"^  lock 'accounts': held by thread 'MainThread' for \d+\.\d{3} s$", report, re.M
    ), report


def test_dump_with_nothing_live_says_so() -> None:
    report = threadkit.dump()
    assert report.startswith(f"threadkit report, process {os.getpid()}, ")
    assert "waits:\n  none\n" in report


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="needs SIGUSR1")
def test_python_m_threadkit_dump_reports_a_hung_program() -> None:
    code = textwrap.dedent(
        """
        import sys, threading, threadkit
        threadkit.install_dump_handler(file=open("/dev/null", "w"))
        w = threadkit.ResourceWorker(object, name="stuck").start()
        forever = threading.Event()
        w.submit(lambda _r: forever.wait())
        print("ready", flush=True)
        sys.stdin.readline()  # until the test is done
        forever.set()
        w.shutdown()
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"
        out = subprocess.run(
            [sys.executable, "-m", "threadkit", "dump", str(child.pid)],
            capture_output=True,
            text=True,
            timeout=WAIT * 3,
            check=False,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        assert f"threadkit report, process {child.pid}," in out.stdout
        assert "worker 'stuck' running, thread 'stuck', 0 queued, running <lambda>()" in out.stdout
    finally:
        assert child.stdin is not None
        assert child.stdout is not None
        child.stdin.close()
        child.wait(WAIT * 3)
        child.stdout.close()
        threadkit.dump_path(child.pid).unlink(missing_ok=True)
    assert child.returncode == 0


def test_python_m_threadkit_dump_explains_a_process_without_a_handler() -> None:
    code = "import sys; print('ready', flush=True); sys.stdin.readline()"
    # A process that ignores SIGUSR1 and never answers.
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import signal; signal.signal(signal.SIGUSR1, signal.SIG_IGN); {code}",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"
        out = subprocess.run(
            [sys.executable, "-m", "threadkit", "dump", str(child.pid), "--timeout", "0.3"],
            capture_output=True,
            text=True,
            timeout=WAIT * 3,
            check=False,
        )
    finally:
        assert child.stdin is not None
        assert child.stdout is not None
        child.stdin.close()
        child.wait(WAIT * 3)
        child.stdout.close()
    assert out.returncode == 1
    assert out.stdout == (
        f"python -m threadkit dump: no report from process {child.pid} within 0.3 s; "
        "did it call threadkit.install_dump_handler()?\n"
    )
