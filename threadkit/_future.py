"""The future handed out by threadkit: a real :class:`concurrent.futures.Future`, made cheap.

A stock ``Future`` builds a :class:`threading.Condition` (an ``RLock``, a deque
and six bound methods) and two lists the moment it is created: about 1.6 KB,
most of a queued request's memory; and every state change takes that
Condition, even when nobody waits.  :class:`LazyFuture` keeps the same
attributes and the same protocol, so every ``Future`` method and
:func:`concurrent.futures.wait` / :func:`~concurrent.futures.as_completed`
(which read ``_condition``, ``_waiters`` and ``_state`` directly) work
unchanged, but:

* ``_condition``, ``_waiters`` and ``_done_callbacks`` appear on first use
  (``__getattr__``; ``dict.setdefault`` makes the creation race-free);
* the owner thread settles a future without the Condition while nobody has
  created it.  The protocol that makes this safe: **a waiter creates the
  Condition before it reads** ``_state`` (every stock method does, by entering
  ``with self._condition``), **and the owner writes** ``_state`` **before it
  looks for the Condition**.  So either the owner sees the Condition and
  notifies under it, or the waiter sees the final state.  The same argument
  covers ``add_done_callback`` (its append happens under the Condition) and
  the waiters that ``wait()`` installs;
* running and cancelling are decided by one atomic ``dict.setdefault`` of a
  private ``_claim`` key, instead of under the Condition;
* ``result()``, ``exception()``, ``done()``, ``running()`` and ``cancelled()``
  read ``_state`` without locking (``_result`` / ``_exception`` are written
  before ``_state`` becomes ``FINISHED``).

Only threadkit's owner loop settles these futures; like any executor's
futures they are not meant for ``set_result`` by user code (a call on a
future that is not running falls back to the stock, locked, checks).
"""

from __future__ import annotations

import threading
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
from threadkit._errors import DeadlockError

__all__ = ["LazyFuture"]

T = TypeVar("T")

_LISTS = frozenset({"_waiters", "_done_callbacks"})
_CANCELLED = frozenset({CANCELLED, CANCELLED_AND_NOTIFIED})
_DONE = frozenset({CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED})


class LazyFuture(Future[T]):
    """A :class:`concurrent.futures.Future` that costs little until someone waits."""

    # The worker core whose owner thread settles this future, for the
    # waits-for check (set by the worker; None for a future made by hand).
    _owner: Any = None

    def __init__(self) -> None:
        # Deliberately not calling Future.__init__: it would build the Condition.
        self._state = PENDING
        self._result = None
        self._exception = None

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup fails, i.e. on the first use of a
        # lazy attribute.  dict.setdefault is atomic, so threads racing here
        # agree on one object; a loser's fresh Condition was never locked.
        if name == "_condition":
            return self.__dict__.setdefault(name, threading.Condition())
        if name in _LISTS:
            return self.__dict__.setdefault(name, [])
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # -- running or cancelling: whoever claims first ----------------------------

    def set_running_or_notify_cancel(self) -> bool:
        if self.__dict__.setdefault("_claim", RUNNING) is RUNNING:
            self._state = RUNNING
            return True
        # cancel() claimed it, under the Condition, and holds it until the
        # state says CANCELLED; the stock method then notifies the waiters.
        # The Condition's lock is an RLock, so it can be held around it.
        with self._condition:
            if self._state == CANCELLED_AND_NOTIFIED:
                # Noticed already: threadkit cancels and notifies at once a
                # request it withdraws, which may still sit in the mailbox.
                return False
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
        self._state = FINISHED
        # Written _state first, look for the Condition second (module docstring).
        condition = self.__dict__.get("_condition")
        if condition is not None:
            with condition:
                for waiter in self.__dict__.get("_waiters", ()):
                    getattr(waiter, notify)(self)
                condition.notify_all()
        self._invoke_callbacks()

    def _invoke_callbacks(self) -> None:
        callbacks = self.__dict__.get("_done_callbacks")
        if not callbacks:
            return
        # As the stdlib does, an Exception is logged and the next callback
        # runs.  For any other BaseException the stdlib's behaviour is
        # undefined (in practice it escapes and aborts the other callbacks):
        # here every callback runs, then the first one is re-raised, except in
        # the owner thread, which must not die of a callback (that would
        # strand every queued request): there each goes to the error hook.
        interrupts: list[BaseException] = []
        for callback in callbacks:
            try:
                callback(self)
            except Exception:
                LOGGER.exception("exception calling callback for %r", self)
            except BaseException as exc:  # routed: see above
                interrupts.append(exc)
        if not interrupts:
            return
        owner = self._owner
        if owner is not None and owner.owner_ident == threading.get_ident():
            for interrupt in interrupts:
                owner.report(interrupt, f"a done-callback of {self!r}")
            return
        try:
            raise interrupts[0]
        finally:
            interrupts.clear()  # break the cycle exc -> traceback -> this frame

    # -- reading: the state is final once FINISHED or cancelled -------------------

    def result(self, timeout: float | None = None) -> T:
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
            return super().result(timeout)
        finally:
            _waits.wait_ends()

    def exception(self, timeout: float | None = None) -> BaseException | None:
        if self._state == FINISHED:
            return self._exception
        self._wait_begins("exception()", timeout)
        try:
            return super().exception(timeout)
        finally:
            _waits.wait_ends()

    def _wait_begins(self, what: str, timeout: float | None) -> None:
        owner = self._owner
        if owner is not None and timeout is None and self._state not in _DONE:
            if owner.owner_ident == threading.get_ident():
                raise DeadlockError(
                    f"{what} of a pending request, called from the owner thread of worker "
                    f"{owner.name!r}, would wait for itself forever"
                )
            _waits.wait_begins(owner.owner_ident, f"{what} on a request to worker {owner.name!r}")

    def done(self) -> bool:
        return self._state in _DONE

    def running(self) -> bool:
        return self._state == RUNNING

    def cancelled(self) -> bool:
        return self._state in _CANCELLED
