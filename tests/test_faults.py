"""Faults injected at every place user code runs: each reaches its documented place.

Every hook and callback threadkit calls is made to raise an ``Exception``, a
``KeyboardInterrupt`` and a ``SystemExit``: the factory, ``close``, requests
(``submit``, ``call``, ``post``, the executor's ``submit``), the batch hooks,
done-callbacks, the error hook itself, cancel-token callbacks and tasks.  Each
test checks where the exception went (the caller, the future, the error hook,
the ``"threadkit"`` or ``"concurrent.futures"`` logger) and that the worker
goes on serving requests afterwards: none kills a worker silently, none is
swallowed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest

import threadkit

from .conftest import WAIT


class Boom(Exception):
    pass


# The three kinds of exception every fault is injected as.
KINDS: list[type[BaseException]] = [Boom, KeyboardInterrupt, SystemExit]
kinds = pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)


class Hook:
    """An error hook that records what it is given."""

    def __init__(self) -> None:
        self.errors: list[BaseException] = []
        self.called = threading.Event()

    def __call__(self, exc: BaseException) -> None:
        self.errors.append(exc)
        self.called.set()


def raiser(exc: BaseException) -> Callable[..., Any]:
    def fail(*_args: object) -> None:
        raise exc

    return fail


def alive(worker: threadkit.ResourceWorker[Any]) -> None:
    """The worker still serves requests, in its owner thread."""
    assert worker.call(lambda _r: threading.current_thread()) is worker.thread


# -- the factory -------------------------------------------------------------------


@kinds
def test_an_exception_in_the_factory_is_raised_by_start_and_closes_the_worker(
    kind: type[BaseException],
) -> None:
    error = kind("factory")
    w = threadkit.ResourceWorker(raiser(error), name="f")
    with pytest.raises(kind) as info:
        w.start()
    assert info.value is error
    assert w.thread is not None
    assert not w.thread.is_alive()
    assert w.closed
    with pytest.raises(
        threadkit.WorkerClosed, match=r"^cannot submit to worker 'f': its factory failed$"
    ) as refused:
        w.submit(lambda _r: None)
    assert refused.value.__cause__ is error
    w.shutdown()


# -- close -------------------------------------------------------------------------


@kinds
def test_an_exception_in_close_is_raised_by_shutdown_wait_and_not_reported(
    kind: type[BaseException],
) -> None:
    error, hook = kind("close"), Hook()
    w = threadkit.ResourceWorker(object, close=raiser(error), error_hook=hook).start()
    with pytest.raises(kind) as info:
        w.shutdown(wait=True)
    assert info.value is error
    assert hook.errors == []
    assert w.thread is not None
    assert not w.thread.is_alive()


@kinds
def test_an_exception_in_close_goes_to_the_error_hook_when_nobody_waits(
    kind: type[BaseException],
) -> None:
    error, hook = kind("close"), Hook()
    w = threadkit.ResourceWorker(object, close=raiser(error), error_hook=hook, name="c").start()
    w.shutdown(wait=False)
    assert w.thread is not None
    w.thread.join(WAIT)
    assert hook.errors == [error]
    assert error.__notes__ == ["(raised by close() in threadkit worker 'c')"]


@kinds
def test_an_exception_in_close_is_logged_when_there_is_no_error_hook(
    kind: type[BaseException], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="threadkit")
    error = kind("close")
    w = threadkit.ResourceWorker(object, close=raiser(error), name="c").start()
    w.shutdown(wait=False)
    assert w.thread is not None
    w.thread.join(WAIT)
    [record] = [r for r in caplog.records if r.name == "threadkit"]
    assert record.getMessage() == "error in threadkit worker 'c'"
    assert record.exc_info is not None
    assert record.exc_info[1] is error


# -- requests --------------------------------------------------------------------------


@kinds
def test_an_exception_in_a_submitted_request_fails_only_its_future(
    kind: type[BaseException],
) -> None:
    error = kind("request")
    with threadkit.ResourceWorker(object) as w:
        fut = w.submit(raiser(error))
        assert fut.exception(WAIT) is error
        with pytest.raises(kind) as info:
            fut.result(0)
        assert info.value is error
        alive(w)


@kinds
def test_an_exception_in_a_called_request_is_raised_by_call(kind: type[BaseException]) -> None:
    error = kind("request")
    with threadkit.ResourceWorker(object) as w:
        with pytest.raises(kind) as info:
            w.call(raiser(error))
        assert info.value is error
        # Raised in the owner thread: the traceback says where.
        assert info.traceback[-1].name == "fail"
        alive(w)


@kinds
def test_an_exception_in_a_posted_request_goes_to_the_error_hook(
    kind: type[BaseException],
) -> None:
    error, hook = kind("request"), Hook()
    with threadkit.ResourceWorker(object, error_hook=hook, name="p") as w:
        w.post(raiser(error))
        alive(w)
    assert hook.errors == [error]
    assert error.__notes__ == ["(raised by post(raiser.<locals>.fail) in threadkit worker 'p')"]


@kinds
def test_an_exception_in_an_executor_task_fails_only_its_future(
    kind: type[BaseException],
) -> None:
    error = kind("task")
    with threadkit.SerialExecutor() as ex:
        fut = ex.submit(raiser(error))
        assert fut.exception(WAIT) is error
        assert ex.submit(threading.current_thread).result(WAIT) is ex.thread


# -- batch hooks -------------------------------------------------------------------


@kinds
@pytest.mark.parametrize("hook_name", ["begin_batch", "end_batch"])
def test_an_exception_in_a_batch_hook_fails_the_batch_with_batch_error(
    kind: type[BaseException], hook_name: str
) -> None:
    error = kind("hook")
    fail = threading.Event()

    def hook(_r: object) -> None:
        if fail.is_set():
            fail.clear()
            raise error

    hooks: dict[str, Any] = {"begin_batch": None, "end_batch": None, hook_name: hook}
    with threadkit.ResourceWorker(object, max_batch=4, **hooks) as w:
        fail.set()
        fut = w.submit(lambda _r: "ran")
        with pytest.raises(threadkit.BatchError, match=rf"^{hook_name}\(\) of worker") as info:
            fut.result(WAIT)
        assert info.value.__cause__ is error
        alive(w)


# -- done-callbacks ------------------------------------------------------------------


def test_an_exception_in_a_done_callback_is_logged_and_the_others_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="concurrent.futures")
    ran: list[str] = []
    gate = threading.Event()
    with threadkit.ResourceWorker(object) as w:
        fut = w.submit(lambda _r: gate.wait(WAIT))
        fut.add_done_callback(raiser(Boom("callback")))
        fut.add_done_callback(lambda f: ran.append("second"))
        gate.set()
        assert fut.result(WAIT) is True
        alive(w)
    assert ran == ["second"]
    [record] = [r for r in caplog.records if r.name == "concurrent.futures"]
    assert record.getMessage().startswith("exception calling callback for <LazyFuture")
    assert record.exc_info is not None
    assert str(record.exc_info[1]) == "callback"


@pytest.mark.parametrize("kind", [KeyboardInterrupt, SystemExit])
def test_a_base_exception_in_a_done_callback_goes_to_the_error_hook_and_the_worker_goes_on(
    kind: type[BaseException],
) -> None:
    # A SystemExit used to end the owner thread silently (threading ignores
    # it): every later request waited for ever.
    error, hook = kind("callback"), Hook()
    ran: list[str] = []
    gate = threading.Event()
    with threadkit.ResourceWorker(object, error_hook=hook, name="cb") as w:
        fut = w.submit(lambda _r: gate.wait(WAIT))
        fut.add_done_callback(raiser(error))
        fut.add_done_callback(lambda f: ran.append("second"))
        later = w.submit(lambda _r: "later")
        gate.set()
        assert later.result(WAIT) == "later"
        alive(w)
    assert ran == ["second"]
    assert hook.errors == [error]
    [note] = error.__notes__
    assert note.startswith("(raised by a done-callback of <LazyFuture")
    assert note.endswith("in threadkit worker 'cb')")


@pytest.mark.parametrize("kind", [KeyboardInterrupt, SystemExit])
def test_a_base_exception_in_a_done_callback_run_by_cancel_reaches_its_caller(
    kind: type[BaseException],
) -> None:
    error = kind("callback")
    ran: list[str] = []
    gate = threading.Event()
    with threadkit.ResourceWorker(object) as w:
        w.submit(lambda _r: gate.wait(WAIT))
        fut = w.submit(lambda _r: None)
        fut.add_done_callback(raiser(error))
        fut.add_done_callback(lambda f: ran.append("second"))
        with pytest.raises(kind) as info:
            fut.cancel()
        assert info.value is error
        assert fut.cancelled()
        assert ran == ["second"]
        gate.set()
        alive(w)


@pytest.mark.parametrize("kind", [KeyboardInterrupt, SystemExit])
def test_a_base_exception_in_a_done_callback_during_shutdown_still_stops_the_worker(
    kind: type[BaseException],
) -> None:
    # shutdown(cancel_futures=True) cancels the queued futures in the calling
    # thread; a callback's KeyboardInterrupt used to leave the stop marker
    # unqueued, so the worker (and interpreter exit) waited for ever.
    error = kind("callback")
    closed = threading.Event()
    gate = threading.Event()
    started = threading.Event()
    w = threadkit.ResourceWorker(object, close=lambda _r: closed.set()).start()
    w.submit(lambda _r: (started.set(), gate.wait(WAIT)))
    assert started.wait(WAIT)  # so that the shutdown, not the owner, takes the next one
    queued = w.submit(lambda _r: None)
    queued.add_done_callback(raiser(error))
    with pytest.raises(kind) as info:
        w.shutdown(wait=False, cancel_futures=True)
    assert info.value is error
    gate.set()
    assert closed.wait(WAIT)
    w.shutdown(wait=True)
    assert queued.cancelled()


# -- the error hook --------------------------------------------------------------------


@kinds
def test_an_exception_in_the_error_hook_is_logged_with_the_error_it_reported(
    kind: type[BaseException], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="threadkit")
    reported = Boom("posted")
    hook_error = kind("hook")
    with threadkit.ResourceWorker(object, error_hook=raiser(hook_error), name="h") as w:
        w.post(raiser(reported))
        alive(w)
    [record] = [r for r in caplog.records if r.name == "threadkit"]
    assert record.getMessage() == (
        f"error hook of threadkit worker 'h' raised while reporting {reported!r}"
    )
    assert record.exc_info is not None
    assert record.exc_info[1] is hook_error


# -- cancel-token callbacks ----------------------------------------------------------


def test_an_exception_in_a_worker_token_callback_is_logged_and_shutdown_completes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="threadkit")
    closed = threading.Event()
    w = threadkit.ResourceWorker(object, close=lambda _r: closed.set()).start()
    w.token.on_cancel(raiser(Boom("token callback")))
    w.shutdown(wait=True)
    assert closed.is_set()
    [record] = [r for r in caplog.records if r.name == "threadkit"]
    assert record.getMessage().startswith("cancel callback ")
    assert record.exc_info is not None
    assert str(record.exc_info[1]) == "token callback"


@pytest.mark.parametrize("kind", [KeyboardInterrupt, SystemExit])
def test_a_base_exception_in_a_worker_token_callback_is_raised_by_shutdown_which_still_stops(
    kind: type[BaseException],
) -> None:
    # It used to escape before the stop marker was queued: the owner thread
    # waited for ever, and so did interpreter exit.
    error = kind("token callback")
    closed = threading.Event()
    w = threadkit.ResourceWorker(object, close=lambda _r: closed.set()).start()
    queued = w.submit(lambda _r: "queued")
    w.token.on_cancel(raiser(error))
    with pytest.raises(kind) as info:
        w.shutdown(wait=True)
    assert info.value is error
    assert closed.wait(WAIT)
    w.shutdown(wait=True)
    assert queued.result(0) == "queued"
    assert w.thread is not None
    assert not w.thread.is_alive()


@pytest.mark.parametrize("kind", [KeyboardInterrupt, SystemExit])
def test_a_base_exception_in_a_task_token_callback_reaches_the_canceller_and_the_task_ends(
    kind: type[BaseException],
) -> None:
    error = kind("token callback")
    started = threading.Event()

    def wait_for_cancel() -> None:
        token = threadkit.current_token()
        started.set()
        token.wait(WAIT)
        token.raise_if_cancelled()

    task = threadkit.spawn(wait_for_cancel)
    task.token.on_cancel(raiser(error))
    assert started.wait(WAIT)
    with pytest.raises(kind) as info:
        task.cancel()
    assert info.value is error
    assert task.join(WAIT)
    assert task.cancelled()


# -- tasks ----------------------------------------------------------------------------


@kinds
def test_an_exception_in_a_task_is_raised_by_result(kind: type[BaseException]) -> None:
    error = kind("task")
    task = threadkit.spawn(raiser(error))
    with pytest.raises(kind) as info:
        task.result(WAIT)
    assert info.value is error


@kinds
def test_an_exception_in_a_group_task_is_raised_by_the_group(kind: type[BaseException]) -> None:
    error = kind("task")
    with pytest.raises(BaseExceptionGroup) as info, threadkit.TaskGroup(name="g") as group:
        group.spawn(raiser(error))
    assert info.value.exceptions == (error,)
    assert error.__notes__[-1].startswith("(raised by threadkit task ")
