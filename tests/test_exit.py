"""Interpreter exit with live workers, executors, tasks and groups, daemon and not.

Each test runs a child interpreter (the one running the tests, so ``nox`` runs
them on every supported Python) that leaves things running when its main
thread ends, and checks the documented outcome: the process exits, the
accepted work is handled (a live worker or executor is drained before
non-daemon threads are joined: queued requests run, then *close*; non-daemon
tasks and the groups they run finish; daemon tasks are abandoned), and stderr
is empty unless an error had to be reported there.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from .conftest import WAIT

_PRELUDE = textwrap.dedent(
    """
    import sys, threading, threadkit

    _say_lock = threading.Lock()

    def say(*args):
        # One line at a time: print() from several threads can interleave.
        with _say_lock:
            print(*args, flush=True)

    def until_shutdown(_resource):
        # A long request that watches its token: the shutdown at exit ends it.
        threadkit.current_token().wait(60)
        say("long request ended")
    """
)


def _run(body: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _PRELUDE + textwrap.dedent(body)],
        capture_output=True,
        text=True,
        timeout=WAIT * 3,
        check=False,
    )


def test_a_live_worker_runs_its_queued_requests_then_closes_at_exit() -> None:
    proc = _run(
        """
        w = threadkit.ResourceWorker(object, close=lambda _r: say("closed"), name="db").start()
        w.submit(until_shutdown)
        for i in range(3):
            w.post(lambda _r, i: say("request", i), i)
        say("main ends")
        """
    )
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout.splitlines() == [
        "main ends",
        "long request ended",
        "request 0",
        "request 1",
        "request 2",
        "closed",
    ]


def test_a_worker_with_a_daemon_owner_thread_is_drained_at_exit_too() -> None:
    proc = _run(
        """
        box = []
        def start():
            box.append(threadkit.ResourceWorker(object, close=lambda _r: say("closed")).start())
        t = threading.Thread(target=start, daemon=True)
        t.start()
        t.join()
        [w] = box
        say("owner is daemon:", w.thread.daemon)
        w.submit(until_shutdown)
        w.post(lambda _r: say("queued request"))
        """
    )
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout.splitlines() == [
        "owner is daemon: True",
        "long request ended",
        "queued request",
        "closed",
    ]


def test_live_workers_executors_tasks_and_groups_all_end_as_documented_at_exit() -> None:
    proc = _run(
        """
        w = threadkit.ResourceWorker(object, close=lambda _r: say("worker closed"), name="db")
        w.start()
        ex = threadkit.SerialExecutor(name="ex")
        gate = threading.Event()
        ex.submit(gate.wait, 10)
        ex.submit(say, "executor task")
        w.submit(until_shutdown)
        w.post(lambda _r: say("worker request"))

        spawned = threading.Event()

        def group_in_a_task():
            with threadkit.TaskGroup(name="g") as group:
                for i in range(2):
                    group.spawn(lambda i: (gate.wait(10), say("group task", i)), i)
                spawned.set()
            say("group done")

        threadkit.spawn(group_in_a_task)  # non-daemon: the main thread's
        # Live at exit, not started at exit: since 3.12 no thread can start
        # once the interpreter shuts down (spawn() raises RuntimeError then).
        spawned.wait(10)
        threadkit.spawn(lambda: (gate.wait(10), say("plain task")))
        # Abandoned at exit, as daemon threads are: never prints, never hangs.  A task's
        # thread is a daemon thread when the thread that spawns it is one.
        spawner = threading.Thread(
            target=threadkit.spawn,
            args=(lambda: (threading.Event().wait(), say("daemon task")),),
            daemon=True,
        )
        spawner.start()
        spawner.join()
        gate.set()
        """
    )
    assert (proc.returncode, proc.stderr) == (0, "")
    lines = proc.stdout.splitlines()
    assert sorted(lines) == sorted(
        [
            "executor task",
            "long request ended",
            "worker request",
            "worker closed",
            "group task 0",
            "group task 1",
            "group done",
            "plain task",
        ]
    )
    assert lines.index("worker request") < lines.index("worker closed")
    assert lines.index("group task 0") < lines.index("group done")
    assert lines.index("group task 1") < lines.index("group done")


def test_a_non_daemon_task_using_a_worker_after_main_ended_is_refused_not_hung() -> None:
    # Workers are drained before non-daemon threads are joined (as
    # concurrent.futures does): a task still running then gets WorkerClosed.
    proc = _run(
        """
        w = threadkit.ResourceWorker(object, name="db").start()
        main_done = threading.Event()
        def late_user():
            main_done.wait(10)
            while True:
                try:
                    w.call(lambda _r: None)
                except threadkit.WorkerClosed as e:
                    say("refused:", e)
                    return
                threadkit.current_token().wait(0.01)
        threadkit.spawn(late_user)
        main_done.set()
        """
    )
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout == "refused: cannot call worker 'db' after shutdown\n"


def test_a_close_error_at_exit_is_reported_through_the_logger_not_lost() -> None:
    proc = _run(
        """
        def close(_r):
            raise OSError("disk gone")
        w = threadkit.ResourceWorker(object, close=close, name="db").start()
        w.post(lambda _r: say("queued request"))
        """
    )
    assert proc.returncode == 0
    assert proc.stdout == "queued request\n"
    # The default error hook logs through "threadkit"; with no handler
    # configured, logging's last resort prints it to stderr.
    assert proc.stderr.startswith("error in threadkit worker 'db'\nTraceback"), proc.stderr
    assert "OSError: disk gone\n(raised by close() in threadkit worker 'db')\n" in proc.stderr


@pytest.mark.parametrize("cancel_futures", [False, True])
def test_a_worker_shut_down_without_waiting_finishes_before_exit(cancel_futures: bool) -> None:
    proc = _run(
        f"""
        w = threadkit.ResourceWorker(object, close=lambda _r: say("closed")).start()
        started = threading.Event()
        w.submit(lambda r: (started.set(), until_shutdown(r)))
        started.wait(10)
        w.submit(lambda _r: say("queued request"))
        w.shutdown(wait=False, cancel_futures={cancel_futures})
        """
    )
    assert (proc.returncode, proc.stderr) == (0, "")
    expected = ["long request ended"]
    expected += [] if cancel_futures else ["queued request"]
    assert proc.stdout.splitlines() == [*expected, "closed"]


def test_a_token_callback_raising_at_exit_is_reported_and_every_worker_is_still_drained() -> None:
    # The KeyboardInterrupt used to escape the exit hook after the first
    # worker: the others were never stopped, and the exit waited for ever.
    proc = _run(
        """
        def interrupt():
            raise KeyboardInterrupt
        for name in "abc":
            w = threadkit.ResourceWorker(
                object,
                close=lambda _r, name=name: say("closed", name),
                error_hook=lambda e, name=name: say("reported", name, type(e).__name__),
                name=name,
            ).start()
            w.token.on_cancel(interrupt)
            w.post(lambda _r, name=name: say("queued request", name))
            globals()["worker_" + name] = w
        """
    )
    assert (proc.returncode, proc.stderr) == (0, "")
    assert sorted(proc.stdout.splitlines()) == sorted(
        [f"reported {n} KeyboardInterrupt" for n in "abc"]
        + [f"queued request {n}" for n in "abc"]
        + [f"closed {n}" for n in "abc"]
    )
