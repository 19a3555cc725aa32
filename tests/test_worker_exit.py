"""Guarantee 6: a worker never shut down neither hangs interpreter exit nor leaks."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
import threading
import warnings
import weakref
from pathlib import Path

import pytest

import threadkit
from threadkit import ResourceWorker, _engine

from .conftest import WAIT

ROOT = Path(__file__).resolve().parent.parent


def run_child(source: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-X", "dev", "-c", textwrap.dedent(source)],
        capture_output=True,
        text=True,
        timeout=WAIT * 3,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": ""},
        check=False,
    )


def test_at_interpreter_exit_a_live_worker_runs_its_queued_requests_then_closes() -> None:
    child = run_child(
        """
        import threading, threadkit

        def close(r):
            print("closed in", threading.current_thread().name, flush=True)

        w = threadkit.ResourceWorker(lambda: None, close=close, name="db").start()
        exiting = threading.Event()
        # Registered after threadkit's exit hook, so it runs first: the owner
        # thread is held until the interpreter has begun to exit, with every
        # request below still queued.
        threading._register_atexit(exiting.set)
        w.post(lambda r: exiting.wait())
        for i in range(100):
            w.post(lambda r, i=i: print("ran", i, flush=True))
        f = w.submit(lambda r: print("submitted ran", flush=True))
        print("main done", flush=True)
        """
    )
    assert child.returncode == 0, child.stderr
    assert child.stderr == ""
    assert child.stdout.splitlines() == [
        "main done",
        *(f"ran {i}" for i in range(100)),
        "submitted ran",
        "closed in db",
    ]


def test_interpreter_exit_with_an_idle_worker_and_a_never_started_one_is_clean() -> None:
    child = run_child(
        """
        import threadkit
        idle = threadkit.ResourceWorker(lambda: None, close=lambda r: print("closed")).start()
        never = threadkit.ResourceWorker(lambda: print("never opened"))
        print("main done")
        """
    )
    assert child.returncode == 0, child.stderr
    assert child.stderr == ""
    assert child.stdout.splitlines() == ["main done", "closed"]


def test_a_failing_post_at_interpreter_exit_is_logged_not_lost() -> None:
    child = run_child(
        """
        import threading, threadkit
        w = threadkit.ResourceWorker(lambda: None, name="db").start()
        exiting = threading.Event()
        threading._register_atexit(exiting.set)
        w.post(lambda r: exiting.wait())
        w.post(lambda r: 1 / 0)
        """
    )
    assert child.returncode == 0, child.stderr
    assert "error in threadkit worker 'db'" in child.stderr
    assert "ZeroDivisionError" in child.stderr


def test_start_after_interpreter_shutdown_began_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_engine, "_interpreter_exiting", True)
    w = ResourceWorker(lambda: None)
    with pytest.raises(RuntimeError, match=r"^cannot start a worker after interpreter shutdown$"):
        w.start()


def forget(holder: list[ResourceWorker[None]]) -> threading.Thread:
    """Drop the only reference to the worker in *holder* and collect; return its thread."""
    w = holder.pop()
    thread = w.thread
    assert thread is not None
    del w
    gc.collect()  # a bounded worker's face is in a cycle; an unbounded one is not
    return thread


@pytest.mark.usefixtures("no_automatic_gc")
@pytest.mark.parametrize("maxsize", [0, 10])
def test_a_collected_worker_warns_then_runs_its_queued_requests_and_closes(maxsize: int) -> None:
    closed = threading.Event()
    ran: list[int] = []
    gate = threading.Event()
    w = ResourceWorker(
        lambda: None, close=lambda r: closed.set(), name="forgotten", maxsize=maxsize
    ).start()
    w.post(lambda r: gate.wait(WAIT))
    for i in range(5):
        w.post(lambda r, i=i: ran.append(i))
    holder = [w]
    del w
    with pytest.warns(
        ResourceWarning,
        match=r"^threadkit worker 'forgotten' was garbage-collected without shutdown\(\); "
        r"shutting it down now$",
    ):
        thread = forget(holder)
    gate.set()
    thread.join(WAIT)
    assert not thread.is_alive()
    assert closed.is_set()
    assert ran == [0, 1, 2, 3, 4]


@pytest.mark.usefixtures("no_automatic_gc")
def test_a_collected_idle_worker_lets_its_thread_exit() -> None:
    with pytest.warns(ResourceWarning):
        thread = forget([ResourceWorker(lambda: None).start()])
    thread.join(WAIT)
    assert not thread.is_alive()


@pytest.mark.usefixtures("no_automatic_gc")
def test_a_collected_worker_that_was_shut_down_does_not_warn() -> None:
    w = ResourceWorker(lambda: None).start()
    w.shutdown()
    ref = weakref.ref(w)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del w
        gc.collect()
    assert ref() is None
    assert caught == []


@pytest.mark.usefixtures("no_automatic_gc")
def test_a_worker_is_not_collected_while_its_owner_thread_holds_the_subclass_form() -> None:
    class Sub(ResourceWorker[None]):
        def on_open(self) -> None:
            return None

    w = Sub().start()
    ref = weakref.ref(w)
    del w
    gc.collect()
    w2 = ref()
    assert w2 is not None
    w2.shutdown()


def test_requests_do_not_keep_the_worker_alive_once_run() -> None:
    # The owner thread drops each request after running it, so a finished
    # request's arguments are not held until the next one arrives.
    class Arg:
        pass

    arg = Arg()
    ref = weakref.ref(arg)
    with threadkit.ResourceWorker(lambda: None) as w:
        w.call(lambda r, a: None, arg)
        del arg
        assert ref() is None
