"""threadkit.dump(), its signal handler, and python -m threadkit dump."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
from time import monotonic

import pytest

import threadkit
from threadkit import _sync, checks

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
        r".*stuck_request\(\)$",
        report,
        re.M,
    ), report
    # The owner thread's stack shows where the request is stuck.
    stacks = report.split("stacks (most recent call first):")[1]
    assert "thread 'db' (worker 'db'):" in stacks
    assert "in stuck_request" in stacks


def test_the_report_shows_tasks_and_who_waits_for_whom() -> None:
    with threadkit.ResourceWorker(object, name="db") as w:
        # The request runs while the task that sent it waits in call(): the
        # report made there sees the task and its waits-for edge.
        named = threading.Event()
        task = threadkit.spawn(w.call, lambda _r: (named.wait(WAIT), threadkit.dump())[1])
        task.name = "client"
        named.set()
        report = task.result(WAIT)
    assert "<Task 'client' running> on thread 'client'" in report
    assert "  task 'client' waits for worker 'db'" in report
    assert re.search(r"^  worker 'db' running, .* running \S*<lambda>\(\)$", report, re.M)


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


# -- dump() is safe where it promises to be ----------------------------------------


def _assert_whole(report: str) -> None:
    assert report.startswith(f"threadkit report, process {os.getpid()}, "), report
    assert "could not be read" not in report, report
    assert "\nstacks (most recent call first):\n" in report, report


def test_dump_while_other_threads_create_tasks_groups_locks_and_workers() -> None:
    stop = threading.Event()
    errors: list[BaseException] = []

    def churn(kind: int) -> None:
        try:
            while not stop.is_set():
                if kind == 0:
                    threadkit.spawn(int).result(WAIT)
                elif kind == 1:
                    with threadkit.TaskGroup() as group:
                        group.spawn(int)
                        group.spawn(int)
                elif kind == 2:
                    for _ in range(50):
                        threadkit.Lock()
                        threadkit.RLock(name="r")
                else:
                    with threadkit.ResourceWorker(object) as worker:
                        worker.call(id)
        except BaseException as exc:  # routed to the test
            errors.append(exc)

    threadkit.checks.enable()  # so that the locks are registered while being made
    threads = [threading.Thread(target=churn, args=(i % 4,)) for i in range(8)]
    reports = 0
    try:
        for t in threads:
            t.start()
        deadline = monotonic() + 2.0
        while monotonic() < deadline:
            _assert_whole(threadkit.dump())
            reports += 1
    finally:
        threadkit.checks.disable()
        stop.set()
        for t in threads:
            t.join(WAIT)
    assert errors == []
    assert reports > 0


def test_dump_tolerates_a_checked_lock_registered_before_it_is_set_up() -> None:
    half_made = threadkit.Lock.__new__(threadkit.Lock)  # registered, no tracker yet
    checks._register(half_made, next(checks._keys), "Lock 'half-made'")
    report = threadkit.dump()
    _assert_whole(report)
    assert "half-made" not in report  # not held: not listed
    [snapshot] = [s for s in _sync.lock_snapshots() if s.label == "Lock 'half-made'"]
    assert snapshot.owner_ident is None
    del half_made


def test_dump_finishes_while_another_thread_holds_a_groups_lock() -> None:
    release = threading.Event()
    held = threading.Event()
    with threadkit.TaskGroup(name="stuck") as group:
        group.spawn(release.wait, WAIT)

        def hold() -> None:
            with group._lock:
                held.set()
                release.wait(WAIT)

        holder = threading.Thread(target=hold)
        holder.start()
        reports: list[str] = []
        dumper = threading.Thread(target=lambda: reports.append(threadkit.dump()), daemon=True)
        try:
            assert held.wait(WAIT)
            dumper.start()
            dumper.join(WAIT)
            assert not dumper.is_alive(), "dump() waited for the group's lock"
        finally:
            release.set()
            holder.join(WAIT)
    [report] = reports
    _assert_whole(report)
    assert "  <TaskGroup 'stuck' open, 1 running, 0 failed>\n" in report


_SIGNAL_CHILD = textwrap.dedent(
    """
    import os, signal, sys, threading, threadkit

    threadkit.install_dump_handler()
    group = threadkit.TaskGroup(name="g")
    release = threading.Event()
    with group:
        group.spawn(release.wait, 30)
        # The handler interrupts code that holds a group's lock and
        # threading's own registry lock: it must take neither.
        with group._lock:
            signal.raise_signal(signal.SIGUSR1)
        with threading._active_limbo_lock:
            signal.raise_signal(signal.SIGUSR1)
        # Signals in quick succession while this thread writes to stderr
        # itself: nested handlers, and a handler inside a buffered write.
        def pelt():
            for _ in range(40):
                os.kill(os.getpid(), signal.SIGUSR1)
        pelter = threading.Thread(target=pelt)
        pelter.start()
        while pelter.is_alive():
            sys.stderr.write("x" * 100 + "\\n")
        pelter.join()
        sys.stderr.flush()
        release.set()
    print("survived", flush=True)
    """
)


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="needs SIGUSR1")
def test_the_signal_handler_survives_held_locks_and_signals_in_quick_succession() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _SIGNAL_CHILD],
        capture_output=True,
        text=True,
        timeout=WAIT * 3,
        check=False,
    )
    try:
        assert (proc.returncode, proc.stdout) == (0, "survived\n"), proc.stderr[-3000:]
        assert "Traceback" not in proc.stderr
        assert "dump handler failed" not in proc.stderr
        # The two reports made while the locks were held, and some of the rest.
        assert proc.stderr.count("threadkit report, process") >= 3
        assert "  <TaskGroup 'g' open, 1 running, 0 failed>" in proc.stderr
    finally:
        # The child's pid is gone; so is its report file, once removed.
        for line in proc.stderr.splitlines():
            if line.startswith("threadkit report, process "):
                pid = int(line.split()[3].rstrip(","))
                threadkit.dump_path(pid).unlink(missing_ok=True)
                break
