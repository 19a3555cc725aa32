"""Every CPython-private name threadkit relies on, checked on the running interpreter.

docs/explanation/private-names.rst lists them, with why threadkit uses each and
what breaks if it changes.  Each test here pins one of them, as threadkit uses
it: that it exists and that it still means what threadkit takes it to mean.  A
new Python that renames or changes one fails here, by name, before any user
meets the consequence.  The tests exercise the standard library's own objects
(and threadkit only through its public API), so they do not depend on how
threadkit is built inside.
"""

from __future__ import annotations

import _thread
import logging
import re
import subprocess
import sys
import textwrap
import threading
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import _base as futures_base
from concurrent.futures.thread import BrokenThreadPool
from types import FrameType
from typing import Any

import pytest

import threadkit

from .conftest import WAIT

# -- concurrent.futures._base: the future's states, its attributes, its logger ------------


def test_the_future_states_are_the_constants_a_stock_future_goes_through() -> None:
    # threadkit's future writes and compares these constants itself.
    f: Future[int] = Future()
    assert f._state == futures_base.PENDING  # type: ignore[attr-defined]
    assert f.set_running_or_notify_cancel()
    assert f._state == futures_base.RUNNING  # type: ignore[attr-defined]
    f.set_result(1)
    assert f._state == futures_base.FINISHED  # type: ignore[attr-defined]

    g: Future[int] = Future()
    assert g.cancel()
    assert g._state == futures_base.CANCELLED  # type: ignore[attr-defined]
    assert not g.set_running_or_notify_cancel()
    assert g._state == futures_base.CANCELLED_AND_NOTIFIED  # type: ignore[attr-defined]
    states = {
        futures_base.PENDING,
        futures_base.RUNNING,
        futures_base.CANCELLED,
        futures_base.CANCELLED_AND_NOTIFIED,
        futures_base.FINISHED,
    }
    assert len(states) == 5


def test_a_stock_future_has_exactly_the_attributes_threadkit_makes_lazily() -> None:
    # threadkit's future skips Future.__init__ and creates these itself (the Condition and
    # the two lists on first use): a new attribute here would be missing from it.
    f: Future[int] = Future()
    assert set(vars(f)) == {
        "_condition",
        "_state",
        "_result",
        "_exception",
        "_waiters",
        "_done_callbacks",
    }
    assert type(f._condition) is threading.Condition  # type: ignore[attr-defined]
    assert f._waiters == []  # type: ignore[attr-defined]
    assert f._done_callbacks == []  # type: ignore[attr-defined]
    assert (f._result, f._exception) == (None, None)  # type: ignore[attr-defined]


class _Appended(list[Any]):
    """A list that says when something is appended to it."""

    def __init__(self) -> None:
        super().__init__()
        self.appended = threading.Event()

    def append(self, item: Any) -> None:
        super().append(item)
        self.appended.set()


@pytest.mark.parametrize("how", ["wait", "as_completed"])
def test_wait_and_as_completed_install_a_waiter_in_waiters_under_condition(how: str) -> None:
    # threadkit settles its futures by calling add_result / add_exception / add_cancelled on
    # the waiters that wait() and as_completed() put in _waiters, holding _condition.
    f: Future[int] = Future()
    waiters = _Appended()
    f._waiters = waiters  # type: ignore[attr-defined]
    done = threading.Event()

    def waiting() -> None:
        if how == "wait":
            futures.wait([f], timeout=WAIT, return_when=futures.FIRST_COMPLETED)
        else:
            for _ in futures.as_completed([f], timeout=WAIT):
                pass
        done.set()

    t = threading.Thread(target=waiting)
    t.start()
    try:
        assert waiters.appended.wait(WAIT)
        (waiter,) = waiters
        for method in ("add_result", "add_exception", "add_cancelled"):
            assert callable(getattr(waiter, method))
        # What threadkit does when it settles: the waiter, under the Condition.
        f._state = futures_base.FINISHED  # type: ignore[attr-defined]
        f._result = 7  # type: ignore[attr-defined]
        with f._condition:  # type: ignore[attr-defined]
            waiter.add_result(f)
        assert done.wait(WAIT)
    finally:
        t.join(WAIT)
    assert f.result(0) == 7


def test_set_running_or_notify_cancel_tells_the_waiters_of_a_cancelled_future() -> None:
    # threadkit's future defers to the stock method for a future cancelled before it ran.
    seen: list[str] = []

    class Waiter:
        def add_cancelled(self, future: Future[Any]) -> None:
            seen.append("cancelled")

    f: Future[int] = Future()
    f._waiters.append(Waiter())  # type: ignore[attr-defined]
    f.cancel()
    assert not f.set_running_or_notify_cancel()
    assert seen == ["cancelled"]


def test_the_stock_future_calls_the_invoke_callbacks_hook_when_it_settles() -> None:
    # threadkit overrides _invoke_callbacks; the stock set_result, set_exception and cancel,
    # which it falls back on, must still go through it.
    class Counting(Future[int]):
        calls = 0

        def _invoke_callbacks(self) -> None:
            type(self).calls += 1

    for settle in (
        lambda f: f.set_result(1),
        lambda f: f.set_exception(ValueError()),
        lambda f: f.cancel(),
    ):
        Counting.calls = 0
        settle(Counting())
        assert Counting.calls == 1


def test_logger_is_concurrent_futures_and_logs_a_failing_done_callback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # threadkit logs a done-callback's exception through the same logger, in the same words.
    assert futures_base.LOGGER is logging.getLogger("concurrent.futures")
    f: Future[int] = Future()
    f.add_done_callback(lambda _f: 1 / 0)
    with caplog.at_level(logging.ERROR, logger="concurrent.futures"):
        f.set_result(1)
    (record,) = caplog.records
    assert record.name == "concurrent.futures"
    assert record.getMessage() == f"exception calling callback for {f!r}"


# -- concurrent.futures.thread: BrokenThreadPool, and the pool's private attributes -------


def test_broken_thread_pool_is_where_and_what_serial_executor_raises() -> None:
    assert issubclass(BrokenThreadPool, futures.BrokenExecutor)

    def fail() -> None:
        raise OSError("no")

    logger = logging.getLogger("concurrent.futures")
    logger.disabled = True  # both log the initializer's failure at CRITICAL
    try:
        pool = ThreadPoolExecutor(max_workers=1, initializer=fail)
        with pool, pytest.raises(BrokenThreadPool) as stdlib:
            pool.submit(int).result(WAIT)
        ours = threadkit.SerialExecutor(initializer=fail)
        with ours, pytest.raises(BrokenThreadPool) as threadkits:
            ours.submit(int).result(WAIT)
    finally:
        logger.disabled = False
    # threadkit copies the message, as it copies every one of ThreadPoolExecutor's.
    assert str(threadkits.value) == str(stdlib.value)


def test_thread_pool_has_the_private_attributes_serial_executor_mirrors() -> None:
    # SerialExecutor offers _threads, _broken and _max_workers because CPython's own executor
    # tests (tests/test_executor_cpython.py) read them from a ThreadPoolExecutor.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(int).result(WAIT)
        assert isinstance(pool._threads, set)
        assert all(isinstance(t, threading.Thread) for t in pool._threads)
        assert pool._broken is False
        assert pool._max_workers == 1
    with threadkit.SerialExecutor() as ours:
        assert ours._threads == {t for t in threading.enumerate() if t in ours._threads}
        assert ours._broken is False
        assert ours._max_workers == 1


# -- threading ---------------------------------------------------------------------------


def test_register_atexit_runs_before_the_non_daemon_threads_are_joined() -> None:
    # threadkit drains its workers from a threading._register_atexit callback, as
    # concurrent.futures.thread does: it must run before the interpreter joins threads.
    child = textwrap.dedent(
        """
        import threading
        release = threading.Event()

        def thread():
            print("released" if release.wait(10) else "not released", flush=True)

        threading.Thread(target=thread).start()
        threading._register_atexit(release.set)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", child], capture_output=True, text=True, timeout=WAIT, check=True
    )
    assert out.stdout == "released\n"


def test_condition_takes_the_lock_protocol_from_its_lock() -> None:
    # threadkit's locks give threading.Condition _is_owned, _release_save and
    # _acquire_restore, and its Condition subclass relies on Condition using them.
    calls: list[str] = []
    inner = _thread.RLock()

    class Recording:
        def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
            return inner.acquire(blocking, timeout)

        def release(self) -> None:
            inner.release()

        __enter__ = acquire

        def __exit__(self, *exc: object) -> None:
            inner.release()

        def locked(self) -> bool:
            # Public, but new in what Condition takes from its lock: 3.14's Condition
            # exports it, so a lock without it cannot serve a Condition there.
            return inner.locked()  # type: ignore[attr-defined,no-any-return]

        def _is_owned(self) -> bool:
            calls.append("_is_owned")
            return inner._is_owned()  # type: ignore[attr-defined,no-any-return]

        def _release_save(self) -> Any:
            calls.append("_release_save")
            return inner._release_save()  # type: ignore[attr-defined]

        def _acquire_restore(self, state: Any) -> None:
            calls.append("_acquire_restore")
            inner._acquire_restore(state)  # type: ignore[attr-defined]

    cond = threading.Condition(Recording())  # type: ignore[arg-type]
    with cond:
        assert not cond.wait(0)
    assert calls == ["_is_owned", "_release_save", "_acquire_restore"]


def test_the_threading_primitives_are_python_code_in_threading_py() -> None:
    # The lock-order checks skip frames from threading.__file__ to find the user's call
    # site; that holds while these are written in Python there.
    for fn in (
        threading.Condition.wait,
        threading.Condition.__enter__,
        threading.Semaphore.acquire,
        threading.Event.wait,
    ):
        assert fn.__code__.co_filename == threading.__file__


def test_semaphore_keeps_its_counter_in_value() -> None:
    # Semaphore.statistics() and its repr read the counter from _value.
    for cls in (threading.Semaphore, threading.BoundedSemaphore):
        s = cls(2)
        assert s._value == 2  # type: ignore[attr-defined]
        assert s.acquire(timeout=0)
        assert s._value == 1  # type: ignore[attr-defined]
        s.release()
        assert s._value == 2  # type: ignore[attr-defined]


# -- _thread -----------------------------------------------------------------------------


def test_thread_module_has_the_c_locks_and_get_ident() -> None:
    # threadkit's locks wrap the C locks directly (threading.Lock and RLock are factories).
    assert _thread.get_ident() == threading.get_ident()
    lock = _thread.allocate_lock()
    assert type(lock) is type(threading.Lock())
    rlock = _thread.RLock()
    assert type(rlock) is type(threading.RLock())


def test_the_c_rlock_shows_its_owner_and_count_in_its_repr() -> None:
    # RLock.statistics() with checks off reads the owner and count from this repr, the only
    # place the C RLock shows them (the format CPython's own tests pin).
    state = re.compile(r"owner=(\d+) count=(\d+)")
    rlock = _thread.RLock()
    m = state.search(repr(rlock))
    assert m is not None
    assert (int(m[1]), int(m[2])) == (0, 0)
    with rlock, rlock:
        m = state.search(repr(rlock))
        assert m is not None
        assert (int(m[1]), int(m[2])) == (_thread.get_ident(), 2)


@pytest.mark.parametrize("make", [_thread.allocate_lock, _thread.RLock], ids=["Lock", "RLock"])
def test_the_c_locks_can_be_reinitialised_after_fork(make: Any) -> None:
    # threadkit resets the locks it holds in a forked child with _at_fork_reinit().
    lock = make()
    lock.acquire()
    lock._at_fork_reinit()
    assert lock.acquire(timeout=0)
    lock.release()


def test_the_c_rlock_has_the_condition_protocol() -> None:
    # threadkit's RLock hands these to threading.Condition with checks off.
    rlock = _thread.RLock()
    assert not rlock._is_owned()  # type: ignore[attr-defined]
    rlock.acquire()
    rlock.acquire()
    assert rlock._is_owned()  # type: ignore[attr-defined]
    state = rlock._release_save()  # type: ignore[attr-defined]
    assert not rlock._is_owned()  # type: ignore[attr-defined]
    rlock._acquire_restore(state)  # type: ignore[attr-defined]
    rlock.release()
    rlock.release()
    assert not rlock._is_owned()  # type: ignore[attr-defined]


# -- sys -----------------------------------------------------------------------------------


def test_current_frames_maps_every_thread_to_its_frame() -> None:
    # threadkit.dump() prints the stacks of the threads involved from sys._current_frames().
    parked, release = threading.Event(), threading.Event()

    def park() -> None:
        parked.set()
        release.wait(WAIT)

    t = threading.Thread(target=park)
    t.start()
    try:
        assert parked.wait(WAIT)
        frames: dict[int, FrameType] = sys._current_frames()
        assert frames[threading.get_ident()].f_code is (
            test_current_frames_maps_every_thread_to_its_frame.__code__
        )
        assert t.ident in frames
    finally:
        release.set()
        t.join(WAIT)


def test_getframe_returns_the_callers_frame() -> None:
    # The lock-order checks record the call site of an acquisition with sys._getframe(1).
    def callee() -> FrameType:
        return sys._getframe(1)

    assert callee().f_code is test_getframe_returns_the_callers_frame.__code__
