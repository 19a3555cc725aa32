"""Garbage collection of workers and executors that were never shut down.

Documented behaviour (``ResourceWorker`` guarantee 6, ``SerialExecutor``): a
collected worker is shut down gracefully (queued requests run, then *close*)
with a :class:`ResourceWarning`, like an unclosed file; a collected executor
likewise, without a warning, as :class:`~concurrent.futures.ThreadPoolExecutor`
does.  In both cases the owner thread exits.  (A :class:`threadkit.TaskGroup`
has no such case: it is used as a ``with`` block, whose exit waits for every
task.  Tasks report unretrieved failures when collected: see test_task.py.)
"""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
import threading
import warnings
import weakref

import pytest

import threadkit

from .conftest import WAIT


def test_a_collected_worker_warns_runs_its_queued_requests_closes_and_its_thread_exits() -> None:
    gate = threading.Event()
    ran: list[int] = []
    closed = threading.Event()
    w = threadkit.ResourceWorker(lambda: ran, close=lambda _r: closed.set(), name="lost").start()
    w.submit(lambda _r: gate.wait(WAIT))
    for i in range(3):
        w.post(list.append, i)
    thread = w.thread
    assert thread is not None
    with pytest.warns(
        ResourceWarning,
        match=r"^threadkit worker 'lost' was garbage-collected without shutdown\(\); "
        r"shutting it down now$",
    ):
        del w  # no reference cycle: collected at once
    gate.set()
    thread.join(WAIT)
    assert not thread.is_alive()
    assert closed.is_set()
    assert ran == [0, 1, 2]


def test_a_collected_worker_is_shut_down_even_when_resource_warnings_are_errors() -> None:
    # With -W error the warning raises inside the weakref callback (where it
    # can only be printed); the shutdown used to come after it, and never ran.
    code = textwrap.dedent(
        """
        import gc, threading, threadkit
        closed = threading.Event()
        w = threadkit.ResourceWorker(object, close=lambda _r: closed.set(), name="lost").start()
        thread = w.thread
        del w
        gc.collect()
        thread.join(10)
        print("thread alive:", thread.is_alive(), "closed:", closed.is_set(), flush=True)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-W", "error::ResourceWarning", "-c", code],
        capture_output=True,
        text=True,
        timeout=WAIT * 3,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "thread alive: False closed: True\n"
    # The warning is not lost either: printed as the error it was made into.
    assert "ResourceWarning: threadkit worker 'lost' was garbage-collected" in proc.stderr


def test_the_close_error_of_a_collected_worker_goes_to_the_error_hook() -> None:
    reported: list[BaseException] = []
    error = OSError("close failed")

    def close(_r: object) -> None:
        raise error

    w = threadkit.ResourceWorker(object, close=close, error_hook=reported.append).start()
    thread = w.thread
    assert thread is not None
    with pytest.warns(ResourceWarning):
        del w
    thread.join(WAIT)
    assert reported == [error]


def test_a_collected_executor_does_not_warn_and_its_thread_exits() -> None:
    ex = threadkit.SerialExecutor()
    fut = ex.submit(pow, 2, 10)
    thread = ex.thread
    assert thread is not None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del ex
        gc.collect()
    assert caught == []
    thread.join(WAIT)
    assert not thread.is_alive()
    assert fut.result(0) == 1024


def test_a_worker_that_was_never_started_is_collected_without_a_warning() -> None:
    w = threadkit.ResourceWorker(object)
    ref = weakref.ref(w)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del w
        gc.collect()
    assert caught == []
    assert ref() is None


def test_a_subclass_worker_lives_until_shutdown_because_its_thread_holds_it() -> None:
    class Store(threadkit.ResourceWorker[list[int]]):
        def on_open(self) -> list[int]:
            return []

    w = Store().start()
    ref = weakref.ref(w)
    del w
    gc.collect()
    kept = ref()
    assert kept is not None  # documented: its own thread references it
    assert kept.call(len) == 0
    kept.shutdown()
