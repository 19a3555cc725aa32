"""Races the soak test found, pinned down deterministically.

Each test forces one interleaving with events (a wrapper around the
condition a producer waits on says when it is really waiting), so that it
fails every time the bug is back, not once in a while.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import pytest

import threadkit

from .conftest import WAIT

Submit = Callable[[], "Future[Any]"]


def _signal_when_waiting(condition: threading.Condition) -> threading.Event:
    """Set the returned event whenever a thread starts waiting on *condition*."""
    waiting = threading.Event()
    wait = condition.wait

    def wrapped(timeout: float | None = None) -> bool:
        waiting.set()
        return wait(timeout)

    condition.wait = wrapped  # type: ignore[method-assign]
    return waiting


def _occupy(started: threading.Event, gate: threading.Event) -> bool:
    started.set()
    return gate.wait(WAIT)


def _worker_face(started: threading.Event, gate: threading.Event) -> tuple[Any, Submit]:
    worker = threadkit.ResourceWorker(object, name="full", maxsize=1).start()
    worker.submit(lambda _r: _occupy(started, gate))
    return worker, lambda: worker.submit(lambda _r: "queued")


def _executor_face(started: threading.Event, gate: threading.Event) -> tuple[Any, Submit]:
    ex = threadkit.SerialExecutor(name="full", maxsize=1)
    ex.submit(_occupy, started, gate)
    return ex, lambda: ex.submit(str, "queued")


@pytest.mark.parametrize("make", [_worker_face, _executor_face], ids=["worker", "executor"])
@pytest.mark.parametrize("cancel_futures", [False, True])
def test_a_producer_blocked_on_a_full_mailbox_is_refused_when_shutdown_ends(
    make: Callable[[threading.Event, threading.Event], tuple[Any, Submit]],
    cancel_futures: bool,
) -> None:
    started, gate = threading.Event(), threading.Event()
    face, submit = make(started, gate)
    assert started.wait(WAIT)  # the owner thread is busy
    queued = submit()  # the one free place: the mailbox is full now
    waiting = _signal_when_waiting(face._core.mailbox.not_full)
    outcome: list[object] = []

    def producer() -> None:
        try:
            outcome.append(submit())
        except threadkit.WorkerClosed as exc:
            outcome.append(exc)

    t = threading.Thread(target=producer)
    t.start()
    assert waiting.wait(WAIT)  # the producer waits for room in the full mailbox
    face.shutdown(wait=False, cancel_futures=cancel_futures)
    gate.set()
    t.join(WAIT)
    # It used to wait forever: the owner lifted the bound by setting it to 0,
    # and a waiter inside Queue.put() re-checks qsize() >= maxsize.
    assert not t.is_alive(), "a producer blocked on the full mailbox was stranded"
    face.shutdown(wait=True)
    assert queued.cancelled() if cancel_futures else queued.result(0) == "queued"
    # Refused, or accepted just before the owner stopped: then handled like
    # every accepted request.  Never left hanging.
    [late] = outcome
    if not isinstance(late, threadkit.WorkerClosed):
        assert isinstance(late, Future)
        assert late.cancelled() if cancel_futures else late.result(0) == "queued"


def _in_a_thread_reusing_the_ident_of(ident: int | None, fn: Callable[[], object]) -> object:
    """Run *fn* in a new thread whose ident is *ident* (the OS reuses them); return its outcome."""
    assert ident is not None
    outcome: list[object] = []

    def attempt() -> None:
        if threading.get_ident() != ident:
            return
        try:
            outcome.append(fn())
        except Exception as exc:
            outcome.append(exc)

    for _ in range(20):
        t = threading.Thread(target=attempt)
        t.start()
        t.join(WAIT)
        if outcome:
            return outcome[0]
    pytest.skip("the OS did not reuse the thread ident")


def test_a_new_thread_with_the_ident_of_a_finished_owner_is_refused_not_told_it_deadlocks() -> None:
    w = threadkit.ResourceWorker(object, name="gone").start()
    assert w.thread is not None
    owner_ident = w.thread.ident
    w.shutdown()
    outcome = _in_a_thread_reusing_the_ident_of(owner_ident, lambda: w.call(lambda _r: None))
    assert isinstance(outcome, threadkit.WorkerClosed), outcome
    assert str(outcome) == "cannot call worker 'gone' after shutdown"


def test_a_new_thread_with_the_ident_of_a_finished_task_can_join_it() -> None:
    task = threadkit.spawn(int)
    assert task.join(WAIT)
    outcome = _in_a_thread_reusing_the_ident_of(task.thread.ident, lambda: task.join(WAIT))
    assert outcome is True


@pytest.mark.parametrize("batching", [False, True], ids=["plain", "group-commit"])
def test_a_request_put_between_the_cancelling_drain_and_the_stop_marker_is_cancelled(
    batching: bool,
) -> None:
    # shutdown(cancel_futures=True) drains the queue, then queues the stop
    # marker.  A producer that passed the "accepting" check before the
    # shutdown can put its request in between; it used to run, although
    # every request that had not started was to be cancelled.
    started, gate = threading.Event(), threading.Event()
    hooks: dict[str, Any] = {"end_batch": lambda _r: None} if batching else {}
    w = threadkit.ResourceWorker(object, **hooks).start()
    w.submit(lambda _r: _occupy(started, gate))
    assert started.wait(WAIT)
    core = w._core
    at_put, go, put_done = threading.Event(), threading.Event(), threading.Event()
    real_put, real_put_stop = w._put, core.put_stop

    def held_put(item: tuple[Any, ...]) -> None:
        at_put.set()  # past the accepting check, not yet queued
        assert go.wait(WAIT)
        real_put(item)
        put_done.set()

    def put_stop_after_the_producer() -> None:
        go.set()
        assert put_done.wait(WAIT)
        real_put_stop()

    w._put = held_put  # type: ignore[method-assign]
    outcome: list[Future[str]] = []
    producer = threading.Thread(target=lambda: outcome.append(w.submit(lambda _r: "late")))
    producer.start()
    assert at_put.wait(WAIT)
    core.put_stop = put_stop_after_the_producer  # type: ignore[method-assign]
    w.shutdown(wait=False, cancel_futures=True)
    producer.join(WAIT)
    gate.set()
    w.shutdown(wait=True)
    [late] = outcome
    assert late.cancelled()
