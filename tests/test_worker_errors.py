"""Guarantees 3 and 5: a failing request fails only itself; no error is ever swallowed."""

from __future__ import annotations

import contextlib
import functools
import logging
import signal
import sys
import threading
import traceback
import weakref
from collections.abc import Iterator
from typing import Any, NoReturn

import pytest

from threadkit import ResourceWorker, WorkerClosed

from .conftest import WAIT
from .worker_helpers import Gate, in_thread, run_until_blocked


class Boom(Exception):
    pass


def frames_of(exc: BaseException) -> list[str]:
    return [f.name for f in traceback.extract_tb(exc.__traceback__)]


def raiser(exc: BaseException) -> Any:
    def failing_request(resource: object) -> NoReturn:
        raise exc

    return failing_request


class HookRecorder:
    def __init__(self) -> None:
        self.errors: list[BaseException] = []
        self.threads: list[threading.Thread] = []

    def __call__(self, exc: BaseException) -> None:
        self.errors.append(exc)
        self.threads.append(threading.current_thread())


# -- call() and submit() --------------------------------------------------------------


def test_call_re_raises_the_same_exception_with_the_functions_frame_in_its_traceback() -> None:
    err = Boom("no")
    with ResourceWorker(lambda: None) as w:
        with pytest.raises(Boom) as info:
            w.call(raiser(err))
        assert info.value is err
        assert "failing_request" in frames_of(info.value)
        # The worker goes on.
        assert w.call(lambda r: "next") == "next"


def test_a_failed_submit_holds_the_same_exception_in_its_future_and_fails_only_itself() -> None:
    err = Boom("no")
    with ResourceWorker(lambda: None) as w:
        before = w.submit(lambda r: "before")
        failed = w.submit(raiser(err))
        after = w.submit(lambda r: "after")
        assert failed.exception(WAIT) is err
        with pytest.raises(Boom) as info:
            failed.result(0)
        assert info.value is err
        assert "failing_request" in frames_of(info.value)
        assert before.result(WAIT) == "before"
        assert after.result(WAIT) == "after"


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit, GeneratorExit])
def test_a_base_exception_in_a_request_goes_to_its_caller_and_the_worker_goes_on(
    exc_type: type[BaseException],
) -> None:
    with ResourceWorker(lambda: None) as w:
        err = exc_type()
        with pytest.raises(exc_type) as info:
            w.call(raiser(err))
        assert info.value is err
        f = w.submit(raiser(err))
        assert f.exception(WAIT) is err
        assert w.call(lambda r: "alive") == "alive"
        assert w.running


def test_an_exception_raised_by_call_does_not_keep_its_frame_alive() -> None:
    # call() breaks the exc -> traceback -> frame -> exc cycle, so a caught
    # exception does not pin the caller's locals until the next gc run.
    class Big:
        pass

    def run(w: ResourceWorker[None]) -> weakref.ref[Big]:
        big = Big()
        ref = weakref.ref(big)
        with contextlib.suppress(Boom):
            w.call(raiser(Boom()))
        del big
        return ref

    with ResourceWorker(lambda: None) as w:
        assert run(w)() is None


# -- post() and the error hook ---------------------------------------------------------


def test_a_post_failure_goes_to_the_error_hook_in_the_owner_thread_with_a_note() -> None:
    hook = HookRecorder()
    err = Boom("posted")
    with ResourceWorker(lambda: None, name="db", error_hook=hook) as w:
        w.post(raiser(err))
        assert w.call(lambda r: "next") == "next"
        assert hook.errors == [err]
        assert hook.threads == [w.thread]
    assert err.__notes__ == [
        "(raised by post(raiser.<locals>.failing_request) in threadkit worker 'db')"
    ]


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_a_base_exception_in_a_post_goes_to_the_error_hook_and_the_worker_goes_on(
    exc_type: type[BaseException],
) -> None:
    hook = HookRecorder()
    with ResourceWorker(lambda: None, error_hook=hook) as w:
        w.post(raiser(exc_type()))
        assert w.call(lambda r: "alive") == "alive"
    assert [type(e) for e in hook.errors] == [exc_type]


def test_by_default_a_post_failure_is_logged_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="threadkit")
    err = Boom("posted")
    with ResourceWorker(lambda: None, name="db") as w:
        w.post(raiser(err))
        w.call(lambda r: None)
    [record] = [r for r in caplog.records if r.name == "threadkit"]
    assert record.levelno == logging.ERROR
    assert record.getMessage() == "error in threadkit worker 'db'"
    assert record.exc_info is not None
    assert record.exc_info[1] is err
    assert "failing_request" in caplog.text  # the traceback is in the log
    assert "raise exc" in caplog.text


def test_an_error_hook_that_raises_is_logged_and_the_worker_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="threadkit")
    hook_err = RuntimeError("hook broke")

    def hook(exc: BaseException) -> None:
        raise hook_err

    err = Boom("posted")
    with ResourceWorker(lambda: None, name="db", error_hook=hook) as w:
        w.post(raiser(err))
        assert w.call(lambda r: "alive") == "alive"
    [record] = [r for r in caplog.records if r.name == "threadkit"]
    assert record.getMessage() == (
        "error hook of threadkit worker 'db' raised while reporting Boom('posted')"
    )
    assert record.exc_info is not None
    assert record.exc_info[1] is hook_err


# -- the factory -----------------------------------------------------------------------


@pytest.mark.parametrize("exc_type", [Boom, KeyboardInterrupt])
def test_start_re_raises_the_factorys_exception_and_the_worker_is_closed(
    exc_type: type[BaseException],
) -> None:
    err = exc_type("no resource")
    w = ResourceWorker(functools.partial(raiser(err), None), name="db")
    with pytest.raises(exc_type) as info:
        w.start()
    assert info.value is err
    assert "failing_request" in frames_of(info.value)
    assert w.closed
    assert not w.running
    assert w.thread is not None
    assert not w.thread.is_alive()
    for method, what in (("submit", "submit to"), ("call", "call"), ("post", "post to")):
        with pytest.raises(WorkerClosed, match=f"^cannot {what} worker 'db': its factory failed$"):
            getattr(w, method)(lambda r: None)
    # Regression: shutdown() queued a stop marker that no thread would take.
    w.shutdown()
    w.shutdown(wait=False, cancel_futures=True)
    assert w.pending == 0
    assert repr(w) == "<ResourceWorker 'db' closed, 0 pending>"
    with pytest.raises(RuntimeError, match=r"^worker 'db' can only be started once$"):
        w.start()


def test_a_failing_factory_leaves_close_uncalled() -> None:
    closed: list[object] = []

    def factory() -> None:
        raise Boom

    w = ResourceWorker(factory, close=closed.append)
    with pytest.raises(Boom):
        w.start()
    w.shutdown()
    assert closed == []


def test_the_with_block_body_never_runs_when_the_factory_fails() -> None:
    def factory() -> None:
        raise Boom

    body_ran = []
    with pytest.raises(Boom), ResourceWorker(factory):
        body_ran.append(1)
    assert body_ran == []


# -- close -----------------------------------------------------------------------------


def test_shutdown_with_wait_raises_the_exception_of_close() -> None:
    err = Boom("close failed")
    hook = HookRecorder()
    w = ResourceWorker(lambda: None, close=raiser(err), error_hook=hook).start()
    with pytest.raises(Boom) as info:
        w.shutdown()
    assert info.value is err
    assert "failing_request" in frames_of(info.value)
    assert hook.errors == []
    assert not w.running


def test_every_waiting_shutdown_raises_the_exception_of_close() -> None:
    err = Boom("close failed")
    w = ResourceWorker(lambda: None, close=raiser(err)).start()
    gate = Gate()
    w.submit(gate)
    gate.wait_entered()
    waiters = [in_thread(w.shutdown) for _ in range(3)]
    gate.open()
    for t, out in waiters:
        t.join(WAIT)
        assert out["error"] is err


def test_the_with_block_raises_the_exception_of_close() -> None:
    err = Boom("close failed")
    with pytest.raises(Boom) as info, ResourceWorker(lambda: None, close=raiser(err)):
        pass
    assert info.value is err


def test_a_close_failure_nobody_waits_for_goes_to_the_error_hook() -> None:
    err = Boom("close failed")
    hook = HookRecorder()
    w = ResourceWorker(lambda: None, name="db", close=raiser(err), error_hook=hook).start()
    w.shutdown(wait=False)
    assert w.thread is not None
    w.thread.join(WAIT)
    assert hook.errors == [err]
    assert hook.threads == [w.thread]
    assert err.__notes__ == ["(raised by close() in threadkit worker 'db')"]
    # Nobody claimed it in time: a later waiting shutdown does not raise it again.
    w.shutdown()


def test_by_default_a_close_failure_nobody_waits_for_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="threadkit")
    err = Boom("close failed")
    w = ResourceWorker(lambda: None, name="db", close=raiser(err)).start()
    w.shutdown(wait=False)
    assert w.thread is not None
    w.thread.join(WAIT)
    [record] = [r for r in caplog.records if r.name == "threadkit"]
    assert record.getMessage() == "error in threadkit worker 'db'"
    assert record.exc_info is not None
    assert record.exc_info[1] is err


def test_a_close_failure_after_a_shutdown_from_the_owner_thread_goes_to_the_hook() -> None:
    err = Boom("close failed")
    hook = HookRecorder()
    w = ResourceWorker(lambda: None, close=raiser(err), error_hook=hook).start()
    w.submit(lambda r: w.shutdown()).result(WAIT)
    assert w.thread is not None
    w.thread.join(WAIT)
    assert hook.errors == [err]


def test_a_waiting_shutdown_that_began_before_close_raises_its_error() -> None:
    err = Boom("close failed")
    hook = HookRecorder()
    w = ResourceWorker(lambda: None, close=raiser(err), error_hook=hook).start()
    gate = Gate()
    w.submit(gate)
    gate.wait_entered()
    w.shutdown(wait=False)
    # This shutdown() waits for the end; close has not run yet.
    t, out = run_until_blocked(w.shutdown)
    gate.open()
    t.join(WAIT)
    assert out["error"] is err
    assert hook.errors == []


# -- a caller of call() interrupted while it waits ---------------------------------------


@contextlib.contextmanager
def interrupting_main_once_blocked_in_call(
    after: threading.Event | None = None,
) -> Iterator[None]:
    """Raise KeyboardInterrupt once in the main thread, once it blocks inside call().

    The profile hook sees call() about to enter the lock's C-level wait, not
    the wait itself; a signal that lands in between is noticed by CPython only
    when the wait ends (it checks for signals on EINTR).  So the interrupter
    repeats SIGINT until the main thread has reacted, and the handler raises
    KeyboardInterrupt for the first one only.
    """
    blocked = threading.Event()
    reacted = threading.Event()
    raised: list[bool] = []

    def hook(frame: Any, event: str, arg: Any) -> None:
        if (
            event == "c_call"
            and getattr(arg, "__name__", None) == "acquire"
            and frame.f_code.co_name == "_call"
            and frame.f_code.co_filename.endswith("_engine.py")
        ):
            blocked.set()

    def on_sigint(_signum: int, _frame: Any) -> None:
        if not raised:
            raised.append(True)
            raise KeyboardInterrupt

    def interrupter() -> None:
        assert blocked.wait(WAIT)
        assert after is None or after.wait(WAIT)
        for _ in range(200):  # bounded: 200 x 50 ms
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
            if reacted.wait(0.05):
                return

    previous = signal.signal(signal.SIGINT, on_sigint)
    sys.setprofile(hook)
    t = threading.Thread(target=interrupter)
    t.start()
    try:
        yield
    finally:
        sys.setprofile(None)
        reacted.set()
        t.join(WAIT)
        signal.signal(signal.SIGINT, previous)
    assert raised == [True]


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals")
def test_an_interrupted_call_withdraws_its_request_if_it_has_not_started() -> None:
    with ResourceWorker(lambda: None) as w:
        gate = Gate()
        w.submit(gate)
        gate.wait_entered()
        ran: list[int] = []
        with interrupting_main_once_blocked_in_call(), pytest.raises(KeyboardInterrupt):
            w.call(lambda r: ran.append(1))
        gate.open()
        assert w.call(lambda r: "alive") == "alive"
        assert ran == []


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals")
def test_an_interrupted_call_whose_request_already_started_lets_it_finish() -> None:
    with ResourceWorker(lambda: None) as w:
        gate = Gate()
        with (
            interrupting_main_once_blocked_in_call(after=gate.entered),
            pytest.raises(KeyboardInterrupt),
        ):
            w.call(gate)
        gate.open()
        assert w.call(lambda r: "alive") == "alive"
        assert gate.ran_in is w.thread


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals")
def test_a_call_after_an_interrupted_one_waits_for_its_own_request() -> None:
    # The interrupted call's lock is released by the owner thread after the
    # caller left: reused by a later call(), that release would end the later
    # wait before its request ran (call() keeps spare locks: _spare_locks).
    with ResourceWorker(lambda: None) as w:
        gate = Gate()
        with (
            interrupting_main_once_blocked_in_call(after=gate.entered),
            pytest.raises(KeyboardInterrupt),
        ):
            w.call(gate)
        gate.open()
        w.submit(lambda r: None).result(WAIT)  # the interrupted request is settled
        second = Gate()
        second.open()
        for _ in range(3):
            assert w.call(second) == "gate"
