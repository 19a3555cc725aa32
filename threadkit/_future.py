"""The future handed out by threadkit: a real :class:`concurrent.futures.Future`, made cheap.

A stock ``Future`` builds a :class:`threading.Condition` (an ``RLock``, a deque
and six bound methods) and two lists the moment it is created: about 1.6 KB,
most of a queued request's memory (``nox -s bench``: "memory per pending
submit()").  :class:`LazyFuture` keeps the same attributes and the same
observable protocol, so every ``Future`` method and
:func:`concurrent.futures.wait` / :func:`~concurrent.futures.as_completed`
(which read ``_condition``, ``_waiters`` and ``_state`` directly) work
unchanged, but ``_condition``, ``_waiters`` and ``_done_callbacks`` appear on
first use (``__getattr__``).

The protocol is the standard library's: **a state change and its
notification happen under one lock**.  A reader of the state (every stock
method, ``wait()``, ``as_completed()``) holds the Condition; so does the
owner thread when it publishes a result, *if the Condition exists*.  Whether
it exists is decided under the engine's ``future_lock`` (one per worker),
which both sides take: a reader creates the Condition under it; the owner,
under it, either sees no Condition and writes the final state there (every
later reader creates the Condition after that write, finds the state final,
and is never notified: it counts the future once), or sees the Condition and
publishes under it, as the stock ``set_result`` does.  The first release
wrote the state outside both locks and notified afterwards, so ``wait()``
could count a future twice (tests/test_future.py pins that interleaving).

Running and cancelling are decided by one atomic ``dict.setdefault`` of a
private ``_claim`` key.  ``result()``, ``exception()``, ``done()``,
``running()`` and ``cancelled()`` read ``_state`` without locking (``_result``
/ ``_exception`` are stored before ``_state`` becomes ``FINISHED``, in the
same thread).

Only threadkit's owner loop settles these futures; like any executor's
futures they are not meant for ``set_result`` by user code (a call on a
future that is not running falls back to the stock, locked, checks).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures._base import (
    CANCELLED,
    CANCELLED_AND_NOTIFIED,
    FINISHED,
    LOGGER,
    PENDING,
    RUNNING,
)
from typing import Any, TypeVar

from threadkit import _waits
from threadkit._cancel import _cancellable, _wait_done
from threadkit._errors import DeadlockError

__all__ = ["LazyFuture", "run_done_callbacks"]

T = TypeVar("T")

_LISTS = frozenset({"_waiters", "_done_callbacks"})
_CANCELLED = frozenset({CANCELLED, CANCELLED_AND_NOTIFIED})
_DONE = frozenset({CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED})
# The future_lock of futures made by hand, outside any worker.
_LOCK = threading.Lock()


class LazyFuture(Future[T]):
    """A :class:`concurrent.futures.Future` that costs little until someone waits."""

    # The engine core whose owner thread settles this future (set by the
    # engine): its future_lock orders publishing against creating the
    # Condition, and its owner thread is what a waiter waits for.
    _core: Any = None

    def __init__(self) -> None:
        # Deliberately not calling Future.__init__: it would build the Condition.
        self._state = PENDING
        self._result = None
        self._exception = None

    def _lock(self) -> Any:
        core = self._core
        return _LOCK if core is None else core.future_lock

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup fails, i.e. on the first use of a
        # lazy attribute.
        if name == "_condition":
            # Built before the lock is taken: Condition() runs Python code, where
            # the thread may be switched out, and the owner thread, publishing
            # any future of the worker, would wait for the lock meanwhile.  The
            # Condition of a thread that loses the race is dropped unused.
            condition = threading.Condition()
            with self._lock():  # ordered against _publish(): see the module docstring
                return self.__dict__.setdefault(name, condition)
        if name in _LISTS:
            # dict.setdefault is one atomic call: racing threads agree on one list.
            return self.__dict__.setdefault(name, [])
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # -- running or cancelling: whoever claims first ----------------------------

    def set_running_or_notify_cancel(self) -> bool:
        if self.__dict__.setdefault("_claim", RUNNING) is RUNNING:
            # Not under the Condition: RUNNING and PENDING are alike to every
            # reader but running(), and no waiter is notified of RUNNING.
            self._state = RUNNING
            return True
        # cancel() claimed it, under the Condition, and holds it until the
        # state says CANCELLED; the stock method then notifies the waiters.
        # The Condition's lock is an RLock, so it can be held around it.
        with self._condition:
            if self._state == CANCELLED_AND_NOTIFIED:
                return False  # noticed already, by cancel_and_notify()
            return super().set_running_or_notify_cancel()

    def cancel(self) -> bool:
        with self._condition:
            if self.__dict__.setdefault("_claim", CANCELLED) is not CANCELLED:
                return False  # running or finished
            if self._state in _CANCELLED:
                return True
            self._state = CANCELLED
            self._condition.notify_all()
        self._invoke_callbacks()
        return True

    def cancel_and_notify(self) -> None:
        """Cancel a request the engine withdraws, and notice it at once.

        ``cancel()`` alone leaves the future CANCELLED, which ``wait()`` and
        ``as_completed()`` count as done only once the executor "notices"
        it; a withdrawn request never reaches the owner loop, so notice it
        here, as ThreadPoolExecutor's shutdown does.
        """
        with self._condition:
            if self.__dict__.setdefault("_claim", CANCELLED) is not CANCELLED:
                return  # running or finished: nothing to cancel
            if self._state == CANCELLED_AND_NOTIFIED:
                return
            # A future cancel() reached already has run its callbacks.
            first = self._state != CANCELLED
            self._state = CANCELLED_AND_NOTIFIED
            for waiter in self._waiters:
                waiter.add_cancelled(self)
            self._condition.notify_all()
        if first:
            self._invoke_callbacks()

    # -- settling ------------------------------------------------------------------

    def set_result(self, result: T) -> None:
        if self._state != RUNNING:
            super().set_result(result)  # not claimed by an owner: the stock checks
            return
        self._result = result
        self._publish("add_result")

    def set_exception(self, exception: BaseException | None) -> None:
        if self._state != RUNNING:
            super().set_exception(exception)
            return
        self._exception = exception
        self._publish("add_exception")

    def _publish(self, notify: str) -> None:
        core = self._core
        with _LOCK if core is None else core.future_lock:
            condition = self.__dict__.get("_condition")
            if condition is None:
                # Nobody reads the state under a Condition yet, and whoever
                # comes will create it after this write (module docstring).
                self._state = FINISHED
        if condition is not None:
            with condition:
                self._state = FINISHED
                for waiter in self.__dict__.get("_waiters", ()):
                    getattr(waiter, notify)(self)
                condition.notify_all()
        self._invoke_callbacks()

    def _invoke_callbacks(self) -> None:
        callbacks = self.__dict__.get("_done_callbacks")
        if not callbacks:
            return
        interrupts = run_done_callbacks(self, callbacks, _log_like_the_stdlib)
        if not interrupts:
            return
        # In the owner thread, which must not die of a callback (that would
        # strand every queued request), each goes to the error hook; anywhere
        # else (a cancel() in the caller's thread) the first is re-raised.
        core = self._core
        if core is not None and core.owner_ident == threading.get_ident():
            for _, interrupt in interrupts:
                core.report(interrupt, f"a done-callback of {self!r}")
            return
        try:
            raise interrupts[0][1]
        finally:
            interrupts.clear()  # break the cycle exc -> traceback -> this frame

    # -- reading: the state is final once FINISHED or cancelled -------------------

    def result(self, timeout: float | None = None) -> T:
        try:
            if self._state == FINISHED:
                exc = self._exception
                if exc is None:
                    return self._result  # type: ignore[return-value]
                try:
                    raise exc
                finally:
                    exc = None  # break the cycle exc -> traceback -> this frame
            self._wait_begins("result()", timeout)
            try:
                token = _cancellable()
                if token is not None:  # a cancel of this thread's token ends the wait
                    _wait_done(self, timeout, token)
                    timeout = 0
                return super().result(timeout)
            finally:
                _waits.wait_ends()
        finally:
            # Break the cycle exc -> traceback -> this frame -> self -> exc,
            # as Future.result() does.
            self = None  # type: ignore[assignment]  # noqa: PLW0642

    def exception(self, timeout: float | None = None) -> BaseException | None:
        if self._state == FINISHED:
            return self._exception
        self._wait_begins("exception()", timeout)
        try:
            token = _cancellable()
            if token is not None:  # a cancel of this thread's token ends the wait
                _wait_done(self, timeout, token)
                timeout = 0
            return super().exception(timeout)
        finally:
            _waits.wait_ends()

    def _wait_begins(self, what: str, timeout: float | None) -> None:
        core = self._core
        if core is not None and timeout is None and self._state not in _DONE:
            if core.owner_ident == threading.get_ident():
                raise DeadlockError(
                    f"{what} of a pending request, called from the owner thread of worker "
                    f"{core.name!r}, would wait for itself forever"
                )
            _waits.wait_begins(
                core.owner_ident, f"{what} on a request to worker {core.name!r}", self.done
            )

    def done(self) -> bool:
        return self._state in _DONE

    def running(self) -> bool:
        return self._state == RUNNING

    def cancelled(self) -> bool:
        return self._state in _CANCELLED


def _log_like_the_stdlib(future: Future[Any], _callback: object, _exc: Exception) -> None:
    LOGGER.exception("exception calling callback for %r", future)


def run_done_callbacks(
    future: Future[Any],
    callbacks: list[Callable[[Future[Any]], object]],
    log: Callable[[Future[Any], object, Exception], None],
) -> list[tuple[object, BaseException]]:
    """Run every done-callback of a settled *future*, in order: the one settle path's last step.

    For the futures of workers and executors and for tasks alike.  An
    :class:`Exception` is passed to *log* (from inside the ``except`` block,
    so ``exc_info`` is at hand) and the next callback runs, as the standard
    library does.  For any other ``BaseException`` the standard library's
    behaviour is undefined (in practice it escapes and skips the remaining
    callbacks): here every callback still runs, and each such exception is
    returned with its callback, for the caller to route once its own
    bookkeeping is done, never instead of it.
    """
    interrupts: list[tuple[object, BaseException]] = []
    for callback in callbacks:
        try:
            callback(future)
        except Exception as exc:
            log(future, callback, exc)
        except BaseException as exc:  # routed by the caller: see above
            interrupts.append((callback, exc))
    return interrupts
