"""spawn, Task and TaskGroup: background functions whose outcome is never lost.

Design notes
------------
The Python tutorial's ``AsyncZip`` subclasses :class:`threading.Thread` to do
work in the background.  Three things go wrong with it: the thread's exception
is only printed, its result cannot be returned, and it cannot be asked to
stop.  A :class:`Task` is a :class:`concurrent.futures.Future` run by a thread
of its own, with a :class:`~threadkit.CancelToken`; a :class:`TaskGroup` is
Trio's nursery (``asyncio.TaskGroup``) for threads.

*Cancelled tasks are real cancelled futures.*  The future stays ``PENDING``
while its function runs (:meth:`Task.running` is answered from our own flag),
so that a task that ends by :class:`~threadkit.Cancelled` can take the stdlib's
own path to ``CANCELLED``: ``Future.cancel`` then
``set_running_or_notify_cancel``, exactly as
:class:`~concurrent.futures.ThreadPoolExecutor` cancels a queued item.  So
:func:`concurrent.futures.wait`, :func:`~concurrent.futures.as_completed` and
:func:`asyncio.wrap_future` see every outcome the way they expect.

*Every failure goes to exactly one place.*  A task in a group hands its
failure to the group, which raises it from ``__exit__``.  A task on its own
keeps it for :meth:`Task.result` / :meth:`Task.exception`; if neither ever
hands it out, it is logged when the task is garbage-collected, or at
interpreter exit for tasks still referenced then.  Logging is claimed by
popping a one-element list (atomic), so it happens at most once.

*No reference cycles through the traceback.*  The function is called in
:func:`_call`, whose frame (which the exception's traceback keeps alive) holds
no reference to the task: a failed task that is dropped is collected (and its
failure reported) at once, not at the next cyclic collection.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import itertools
import logging
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures._base import CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED
from dataclasses import dataclass
from queue import Empty, SimpleQueue
from time import monotonic
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

from threadkit import _waits
from threadkit._cancel import (
    CancelToken,
    _bind_token,
    _cancellable,
    _check_timeout,
    _local,
    _wait_condition,
    _wait_done,
    current_token,
)
from threadkit._engine import check_function
from threadkit._errors import Cancelled, DeadlockError, GroupClosed
from threadkit._future import run_done_callbacks

__all__ = ["Task", "TaskGroup", "spawn"]

logger = logging.getLogger("threadkit")

T = TypeVar("T")
P = ParamSpec("P")

_task_numbers = itertools.count(1)
_group_numbers = itertools.count(1)
_CANCELLED_STATES = frozenset({CANCELLED, CANCELLED_AND_NOTIFIED})

# A queued task of a bounded group: the task and its call.
_Queued = tuple["Task[Any]", Callable[..., Any], tuple[Any, ...], dict[str, Any]]

# Outcome kinds of _call().
_RETURNED = 0
_FAILED = 1
_CANCELLED = 2


# -- unobserved failures ----------------------------------------------------------

# Failed tasks outside any group, for the report at interpreter exit.
_failed_lock = threading.Lock()
_failed_alone: weakref.WeakSet[Task[Any]] = weakref.WeakSet()


def _report_unobserved(task: Task[Any]) -> None:
    try:
        task._report_claim.pop()
    except IndexError:
        return
    logger.error(
        "exception in threadkit task %r was never retrieved",
        task._name,
        exc_info=task._failure,
    )


def _report_at_exit() -> None:
    with _failed_lock:
        tasks = list(_failed_alone)
    for task in tasks:
        if not task._observed:
            _report_unobserved(task)


# atexit runs after the non-daemon threads were joined, so by then every such
# task has its outcome.
atexit.register(_report_at_exit)


# -- Task -----------------------------------------------------------------------


class Task(Future[T]):
    """A function running in a thread of its own: a :class:`concurrent.futures.Future` of it.

    Made by :func:`spawn` and :meth:`TaskGroup.spawn`, never directly (in a
    bounded :class:`TaskGroup`, tasks take turns on the group's threads).  As a
    real :class:`~concurrent.futures.Future` it works with
    :func:`concurrent.futures.wait`, :func:`~concurrent.futures.as_completed`
    and :func:`asyncio.wrap_future`.

    **Outcomes.**  A task ends in exactly one of three ways:

    * *returned*: :meth:`result` returns the value;
    * *failed*: the function raised (any :class:`BaseException`, including
      ``SystemExit``, which a plain thread would swallow); :meth:`result`
      re-raises it and :meth:`exception` returns it;
    * *cancelled*: the task's :attr:`token` was cancelled before the function
      started (it then never runs), or the function raised
      :class:`~threadkit.Cancelled` while its token was cancelled.
      :meth:`~concurrent.futures.Future.cancelled` is true and :meth:`result` raises
      :class:`concurrent.futures.CancelledError`.  (A :class:`Cancelled`
      raised while the task's own token is *not* cancelled, from some other
      token, is a failure like any other.)

    **No failure is lost.**  A failure reaches whoever calls :meth:`result` or
    :meth:`exception`; for a task in a :class:`TaskGroup`, the group raises
    it.  The failure of a task outside any group that nobody retrieves is
    logged, with its traceback, at ``ERROR`` level through the ``"threadkit"``
    :mod:`logging` logger ("exception in threadkit task 'name' was never
    retrieved", as :mod:`asyncio` does): when the task is garbage-collected,
    or at interpreter exit if it is still referenced then.  Configure that
    logger (handlers, filters) to route these reports elsewhere.  Retrieving
    means a call of :meth:`result` or :meth:`exception` that handed the
    outcome out; :meth:`join`, :meth:`~concurrent.futures.Future.done` and a
    timed-out wait do not count.

    **Done-callbacks** run in the task's thread once its outcome is set (or
    at once in the caller's thread, if the task is already done).  In the
    task's thread, every callback runs even if one raises; an exception from
    one is logged through the ``"threadkit"`` logger ("done callback ... of
    threadkit task 'name' raised ..."), a ``KeyboardInterrupt``,
    ``SystemExit`` or :class:`Cancelled` too, after the task's group has
    counted it out: a callback can neither hang the group nor end the thread
    silently.

    Do not call :meth:`~concurrent.futures.Future.set_result`,
    :meth:`~concurrent.futures.Future.set_exception` or
    :meth:`~concurrent.futures.Future.set_running_or_notify_cancel`: they
    belong to the task's thread.

    Thread safety: every method may be called from any thread.  Waiting for a
    task from its own thread (:meth:`result`, :meth:`exception`, :meth:`join`)
    raises :class:`~threadkit.DeadlockError` instead of hanging.

    .. versionadded:: 0.1
    """

    def __init__(self, name: str, token: CancelToken, group: TaskGroup | None) -> None:
        super().__init__()
        self._name = name
        self._token = token
        self._group = group
        self._thread: threading.Thread | None = None
        self._started = False
        self._failure: BaseException | None = None
        self._observed = False
        self._report_claim = [True]
        # Popped (atomic list.pop) by whichever comes first: the task's thread,
        # which then runs the function, or _start giving up on a thread.start()
        # that raised, which then undoes the group's admission.
        self._launch_claim = [True]
        # While the task settles: BaseExceptions that done-callbacks raised,
        # for _run to route once the bookkeeping is done.
        self._routed: list[tuple[object, BaseException]] | None = None
        self._key = next(_registry_keys)

    # -- introspection --

    @property
    def name(self) -> str:
        """The task's name, also its thread's name; writable, as :attr:`threading.Thread.name` is.

        Default ``"Task-N (fn's qualified name)"``.  Assigning it renames the
        thread too; messages and reports made after that use the new name.
        It is assigned after :func:`spawn` has returned (:func:`spawn` passes
        every keyword to the function, ``name=`` included), so the task may
        already be running under its default name.  A task of a bounded
        :class:`TaskGroup` shares its thread with the group's other tasks: once
        it has ended, renaming it leaves the thread's name alone.

        Raises:
            TypeError: Set to something that is not a string.
        """
        return self._name

    @name.setter
    def name(self, name: str) -> None:
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, got {type(name).__name__!r}")
        # Both are plain attribute stores (atomic); a reader sees the old or the new name.
        self._name = name
        group = self._group
        if group is None or group._limit is None:
            thread = self._thread
            if thread is not None:
                thread.name = name  # the task's own thread, even once it has ended
            return
        # A bounded group's thread is shared.  A queued task has no thread
        # yet: the thread that takes it sets _thread, then names itself from
        # _name (under the lock), so a rename that reads _thread as None after
        # storing _name is not lost.  A task that has ended leaves the name to
        # the thread's next task.
        with group._rename_lock:
            thread = self._thread
            if thread is not None and not self.done():
                thread.name = name

    @property
    def thread(self) -> threading.Thread:
        """The thread running the task.

        Raises:
            RuntimeError: The task is queued in a bounded :class:`TaskGroup`
                and has not started.
        """
        thread = self._thread
        if thread is None:
            raise RuntimeError(f"task {self._name!r} has not started: it is queued in its group")
        return thread

    @property
    def token(self) -> CancelToken:
        """The task's :class:`~threadkit.CancelToken`; :func:`current_token` in the task returns it.

        For a task in a :class:`TaskGroup` it is a child of the group's token.
        """
        return self._token

    def running(self) -> bool:
        """True from the moment the task's thread started until the task ended."""
        return self._started and not self.done()

    # -- control --

    def cancel(self, reason: object = None) -> bool:
        """Request cooperative cancellation: cancel the task's :attr:`token`.

        Unlike :meth:`concurrent.futures.Future.cancel`, this also reaches a
        running task, but only cooperatively: the function stops if it checks
        its token.  If it has not started yet, it never will.

        Args:
            reason: Passed to :meth:`CancelToken.cancel`.  Default: ``"task
                'name' was cancelled"``.

        Returns:
            False if the task had already ended (nothing to cancel); True
            otherwise: cancellation is requested (now or before).  True does
            not promise that the task will end cancelled: a function that does
            not check its token, or that returns at that very moment, ends as
            it would have.  :meth:`~concurrent.futures.Future.cancelled`
            tells, once the task is done.
        """
        if self.done():
            return False
        self._token.cancel(f"task {self._name!r} was cancelled" if reason is None else reason)
        if self._thread is None and self._group is not None and self._group._limit is not None:
            _withdraw(self)  # queued in a bounded group: it ends now, not when its turn comes
        return True

    # -- waiting --

    def _refuse_self_wait(self, what: str) -> None:
        thread = self._thread
        if thread is not None and thread.ident == threading.get_ident() and not self.done():
            raise DeadlockError(
                f"{what} of task {self._name!r} was called from the task itself; "
                "it would wait forever"
            )

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """Wait for the task to end and return its exception (``None`` if it returned).

        Args:
            timeout: Seconds to wait at most; ``None`` waits as long as it takes.

        Raises:
            TimeoutError: The task did not end in time.
            Cancelled: This thread's :func:`current_token` was cancelled
                while waiting (the task goes on).
            concurrent.futures.CancelledError: The task was cancelled.
            DeadlockError: Called from the task's own thread.
            TypeError: *timeout* is not a number or ``None``.
            ValueError: *timeout* is negative, nan, or beyond :data:`threading.TIMEOUT_MAX`.
        """
        _check_timeout(timeout)
        self._refuse_self_wait("exception()")
        waits = timeout is None and not self.done()
        if waits:
            _waits.wait_begins(self._thread_ident(), f"waiting for task {self._name!r}", self.done)
        try:
            token = _cancellable()
            if token is not None:  # a cancel of this thread's token ends the wait
                _wait_done(self, timeout, token)
                timeout = 0
            exc = super().exception(timeout)
        finally:
            if waits:
                _waits.wait_ends()
        self._observed = True
        return exc

    def _thread_ident(self) -> int | None:
        thread = self._thread
        return None if thread is None else thread.ident

    def result(self, timeout: float | None = None) -> T:
        """Wait for the task to end and return its value, or re-raise its exception.

        Args:
            timeout: Seconds to wait at most; ``None`` waits as long as it takes.

        Raises:
            TimeoutError: The task did not end in time (the task goes on).
            Cancelled: This thread's :func:`current_token` was cancelled
                while waiting (the task goes on).
            concurrent.futures.CancelledError: The task was cancelled.
            DeadlockError: Called from the task's own thread.
            TypeError: *timeout* is not a number or ``None``.
            ValueError: *timeout* is negative, nan, or beyond :data:`threading.TIMEOUT_MAX`.
            BaseException: Whatever the function raised.
        """
        # Checked here too, so that the message names result(), not exception().
        self._refuse_self_wait("result()")
        try:
            self.exception(timeout)
            return super().result(0)
        finally:
            # The re-raised exception's traceback holds this frame: without
            # this, task -> exception -> traceback -> frame -> task would be a
            # cycle that keeps the arguments alive until a cyclic collection.
            self = None  # type: ignore[assignment]  # noqa: PLW0642

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the task's thread to exit, like :meth:`threading.Thread.join`.

        Prefer :meth:`result`, which waits too and then returns the value or
        raises the failure.  ``join()`` tells only that the thread has ended,
        not how: it returns True for a task that failed or was cancelled as
        for one that succeeded, and it does not retrieve a failure, which is
        then still logged if nobody retrieves it (see *No failure is lost*
        above).  Use it where the outcome is someone else's business (the
        task's group raises it), or after :meth:`cancel` to wait for a task
        that may ignore its token.

        For a task of a bounded :class:`TaskGroup`, whose thread goes on to
        the group's next task, it waits for the task to end.

        Args:
            timeout: Seconds to wait at most; ``None`` waits as long as it takes.

        Returns:
            True if the thread has exited (whatever the outcome; in a bounded
            group, once the task has ended), False if the timeout expired first.

        Raises:
            Cancelled: This thread's :func:`current_token` was cancelled
                before the task ended.
            DeadlockError: Called from the task's own thread.
            TypeError: *timeout* is not a number or ``None``.
            ValueError: *timeout* is negative, nan, or beyond :data:`threading.TIMEOUT_MAX`.
        """
        _check_timeout(timeout)
        group = self._group
        if group is not None and group._limit is not None:
            return self._join_shared(timeout)
        thread = self.thread
        # Not by ident: idents are reused once the task's thread has exited.
        if thread is threading.current_thread():
            raise DeadlockError(
                f"join() of task {self._name!r} was called from the task itself; "
                "it would wait forever"
            )
        waits = timeout is None and thread.is_alive()
        if waits:
            _waits.wait_begins(thread.ident, f"join() of task {self._name!r}")
        try:
            if not self.done():
                # Until the task is done, wait on its Condition (cancellable),
                # not in Thread.join(): on 3.11/3.12 a Ctrl-C interrupting
                # join() leaves a live thread taken for stopped (see
                # _engine.Core.join_owner()).  Then only the thread's exit
                # (after its done-callbacks) is left to wait for.
                deadline = None if timeout is None else monotonic() + timeout
                token = _cancellable()
                if token is None:
                    with self._condition:
                        if not self.done():
                            self._condition.wait(timeout)
                else:
                    _wait_done(self, timeout, token)
                if deadline is not None:
                    timeout = max(0.0, deadline - monotonic())
            thread.join(timeout)
        finally:
            if waits:
                _waits.wait_ends()
        return not thread.is_alive()

    def _join_shared(self, timeout: float | None) -> bool:
        # A task of a bounded group shares its thread with the tasks after
        # it: joining it means waiting for it to end.
        self._refuse_self_wait("join()")
        waits = timeout is None and not self.done()
        if waits:
            _waits.wait_begins(self._thread_ident(), f"join() of task {self._name!r}", self.done)
        try:
            token = _cancellable()
            condition = self._condition
            with condition:
                if not self.done():
                    if token is None:
                        condition.wait(timeout)
                    else:
                        _wait_condition(condition, timeout, token)
        finally:
            if waits:
                _waits.wait_ends()
        return self.done()

    # -- lifecycle --

    def __del__(self) -> None:
        if self._failure is not None and self._group is None and not self._observed:
            _report_unobserved(self)

    def _invoke_callbacks(self) -> None:
        # Overrides the stdlib's, which set_result(), set_exception() and
        # cancel() call in the task's thread once the state is committed.  The
        # stdlib logs an Exception and lets any other BaseException skip the
        # later callbacks and escape into the task's thread, before the group
        # heard of the task's end.  Here every callback runs, and a
        # BaseException is kept for _run to route after the bookkeeping.
        callbacks: list[Callable[[Future[T]], object]]
        callbacks = self._done_callbacks  # type: ignore[attr-defined]  # the stdlib's own list
        if not callbacks:
            return  # most tasks have none: no list made, no call
        interrupts = run_done_callbacks(self, callbacks, _log_callback_error)
        if not interrupts:
            return
        routed = self._routed
        if routed is None:
            # Not settled by _run: the caller's own thread (a cancel()), its error.
            try:
                raise interrupts[0][1]
            finally:
                interrupts.clear()  # break the cycle exc -> traceback -> this frame
        routed.extend(interrupts)

    def __repr__(self) -> str:
        return f"<{Task.__name__} {self._name!r} {_task_state(self)}>"


def _log_callback_error(task: Future[Any], callback: object, exc: Exception) -> None:
    name = task._name if isinstance(task, Task) else repr(task)
    logger.error(
        "done callback %r of threadkit task %r raised %s",
        callback,
        name,
        type(exc).__name__,
        exc_info=exc,
    )


def _task_state(task: Task[Any]) -> str:
    """The task's state in words, read without taking any lock.

    ``Future.done()`` and ``cancelled()`` take the future's condition, which a
    stuck thread could hold; ``_state`` is one attribute read (the future's
    state string, written last when it settles), so this is a snapshot.
    """
    state = task._state
    if state in _CANCELLED_STATES:
        return "cancelled"
    if state == FINISHED:
        failure = task._failure
        return "finished" if failure is None else f"failed ({type(failure).__name__})"
    if task._started:
        words = "running"
    else:
        group = task._group
        queued = group is not None and group._limit is not None and task._thread is None
        words = "queued" if queued else "starting"
    if task._token.cancelled:
        words += ", cancel requested"
    return words


def _call(
    token: CancelToken, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[int, Any]:
    # This frame is kept alive by the traceback of fn's exception: it must not
    # reference the task (see the module docstring).
    if token._cancelled:
        return _CANCELLED, None
    try:
        return _RETURNED, fn(*args, **kwargs)
    except Cancelled as exc:
        if token._cancelled:
            return _CANCELLED, None
        return _FAILED, exc
    except BaseException as exc:  # routed to the task's future (or its group)
        return _FAILED, exc


# -- the registry of live tasks and groups, and its snapshots ----------------------

# Tasks not yet settled and groups whose block is running, by a key that is
# never reused, for threadkit.dump().  Strong references: a task's thread and
# a group's with statement keep them alive for that long anyway.  Each writer
# does one dict operation (a store or a pop, atomic) and a reader takes one
# dict.copy() (atomic too), so a reader never sees a dict changing under it
# and takes no lock: dump() must work while any other thread is stuck.
_registry_keys = itertools.count(1)
_live_tasks: dict[int, Task[Any]] = {}
_live_groups: dict[int, TaskGroup] = {}


@dataclass(frozen=True, slots=True)
class TaskSnapshot:
    """A task not yet done, as :func:`task_snapshots` saw it.

    Attributes:
        name: The task's name.
        state: ``"queued"`` (in a bounded group, waiting for a thread),
            ``"starting"`` or ``"running"``, possibly followed by ``", cancel
            requested"``; or the final state if it ended while being read.
        thread_ident: The ident of the task's thread; ``None`` before it started.
        group: The name of the task's group, or ``None``.
    """

    name: str
    state: str
    thread_ident: int | None
    group: str | None


@dataclass(frozen=True, slots=True)
class GroupSnapshot:
    """A task group whose ``with`` block runs, as :func:`group_snapshots` saw it.

    Attributes:
        name: The group's name.
        state: ``"open"`` (in the block) or ``"exiting"`` (waiting for its tasks).
        running: How many of its tasks have not ended (queued ones included).
        failed: How many of its tasks have failed.
        cancelled: Whether the group's token is cancelled.
    """

    name: str
    state: str
    running: int
    failed: int
    cancelled: bool


def task_snapshots() -> list[TaskSnapshot]:
    """Snapshots of every task not yet done, in the order they were spawned.

    Takes no lock (see the registry above), so it is safe from a signal
    handler and while other threads are stuck; the fields of one task are read
    one after the other, so they may be a moment apart.
    """
    snapshots = []
    for task in _live_tasks.copy().values():
        thread = task._thread
        group = task._group
        snapshots.append(
            TaskSnapshot(
                name=task._name,
                state=_task_state(task),
                thread_ident=None if thread is None else thread.ident,
                group=None if group is None else group._name,
            )
        )
    return snapshots


def group_snapshots() -> list[GroupSnapshot]:
    """Snapshots of every task group whose ``with`` block runs, oldest first.

    Takes no lock, like :func:`task_snapshots`.
    """
    return [_group_snapshot(group) for group in _live_groups.copy().values()]


def _group_snapshot(group: TaskGroup) -> GroupSnapshot:
    # Without group._lock, which a stuck thread (or the thread a signal
    # handler interrupted) could hold: each field is one attribute read, and
    # len() of a list is atomic.
    return GroupSnapshot(
        name=group._name,
        state=group._state,
        running=group._running,
        failed=len(group._failures),
        cancelled=group._token.cancelled,
    )


# -- running a task -------------------------------------------------------------------


def _run(
    task: Task[Any],
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    label: _TaskLabel | None = None,
) -> None:
    """The body of a task's thread; *label*: the thread's own, if it runs one task after another.

    The order is the rule "commit the state, then run user code": the group
    hears of a failure (and cancels the siblings) before the task settles and
    its done-callbacks run, and the group's count of running tasks drops in a
    ``finally``, whatever those callbacks do.  A ``BaseException`` from user
    code on the way (a done-callback, a callback of the group's token) is
    logged after the bookkeeping, never raised instead of it.
    """
    try:
        task._launch_claim.pop()
    except IndexError:
        # _start gave up on this thread (its start() raised, say a Ctrl-C in
        # it) and undid the admission: the function must not run.
        return
    task._started = True
    token = task._token
    if label is None:
        _waits.register_owner(_TaskLabel(task, None))
    else:
        label._task = task
    # What _bind_token does, inline: its generator cost a tenth of a no-op
    # task (benchmarks/bench_tasks.py).
    previous = getattr(_local, "token", None)
    _local.token = token
    try:
        kind, value = _call(token, fn, args, kwargs)
    finally:
        _local.token = previous
        if label is None:
            _waits.forget_owner()
        else:
            label._task = None
    del fn, args, kwargs
    _end(task, kind, value)
    # The failure's traceback holds _call's frame, and through its f_back this
    # one: a frame that kept the task (which holds the failure) would make a
    # cycle that only the garbage collector could free, and with it the
    # task's arguments.
    del task, value


def _end(task: Task[Any], kind: int, value: Any) -> None:
    """Count a task out: its group hears of a failure, its future settles, the registries forget it.

    Called once per task, by whoever ends it: its thread (:func:`_run`), or
    the thread that withdraws it from a bounded group's queue
    (:func:`_withdraw`).  The order is the rule "commit the state, then run
    user code" (see :func:`_run`).
    """
    group = task._group
    routed: list[tuple[object, BaseException]] = []
    try:
        if kind == _FAILED and group is not None:
            value.add_note(f"(raised by threadkit task {task._name!r})")
            error = group._task_failed(value)
            if error is not None:
                routed.append((group, error))
                del error
        task._routed = routed
        _settle(task, kind, value)
    finally:
        task._routed = None
        _live_tasks.pop(task._key, None)
        if group is not None:
            group._task_ended()
    name = task._name
    del task, value
    while routed:
        source, error = routed.pop(0)
        if isinstance(source, TaskGroup):
            logger.error(
                "a cancel callback of task group %r raised %s in threadkit task %r",
                source._name,
                type(error).__name__,
                name,
                exc_info=error,
            )
        else:
            logger.error(
                "done callback %r of threadkit task %r raised %s",
                source,
                name,
                type(error).__name__,
                exc_info=error,
            )
        del source, error


class _TaskLabel:
    """A task's name in cycle reports, read when a report is made (the task may be renamed).

    A bounded group's thread registers one label for its whole life (one
    registration per task cost a tenth of a no-op task) and points it at
    each task it runs; between tasks it names the thread.
    """

    __slots__ = ("_task", "_thread")

    def __init__(self, task: Task[Any] | None, thread: threading.Thread | None) -> None:
        self._task = task
        self._thread = thread

    def __str__(self) -> str:
        task = self._task  # one read: the thread may be between tasks
        if task is not None:
            return f"task {task._name!r}"
        return f"thread {self._thread.name if self._thread else '?'!r}"


def _settle(task: Task[Any], kind: int, value: Any) -> None:
    """Give the task's future its outcome; its done-callbacks run here, in this thread."""
    if kind == _RETURNED:
        Future.set_running_or_notify_cancel(task)
        task.set_result(value)
    elif kind == _FAILED:
        task._failure = value
        if task._group is None:
            with _failed_lock:
                _failed_alone.add(task)
        Future.set_running_or_notify_cancel(task)
        task.set_exception(value)
    else:
        # The stdlib's own path from PENDING to CANCELLED (see the module docstring).
        Future.cancel(task)
        Future.set_running_or_notify_cancel(task)


def _withdraw(task: Task[Any]) -> None:
    """End a queued task of a bounded group as cancelled, unless a thread has taken it.

    Whoever pops the task's launch claim first does its bookkeeping: this
    (in the cancelling thread), or the group's thread in :func:`_run`.
    """
    try:
        task._launch_claim.pop()
    except IndexError:
        return
    _end(task, _CANCELLED, None)


def _start(
    group: TaskGroup | None,
    fn: Callable[..., T],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Task[T]:
    check_function(fn, "spawn()")
    qualname = getattr(fn, "__qualname__", None) or type(fn).__name__
    name = f"Task-{next(_task_numbers)} ({qualname})"
    # None inherits from the spawning thread, as threading.Thread does.
    daemon = None if group is None else group._daemon
    token = CancelToken() if group is None else CancelToken(parent=group._token)
    task: Task[T] = Task(name, token, group)
    if group is not None and group._limit is not None:
        group._enqueue(task, (task, fn, args, kwargs), daemon)
        return task
    thread = threading.Thread(target=_run, args=(task, fn, args, kwargs), name=name, daemon=daemon)
    task._thread = thread
    if group is not None:
        group._admit(thread)
    _live_tasks[task._key] = task
    try:
        thread.start()
    except BaseException as exc:  # routed: re-raised once the admission is settled
        # start() may raise after the thread was launched (a Ctrl-C while it
        # waits for the thread to start): then the task runs and is counted.
        # Whoever pops the claim first decides; see _run.
        try:
            task._launch_claim.pop()
        except IndexError:
            pass  # the thread runs the task: the group will wait for it
        else:
            _live_tasks.pop(task._key, None)
            if group is not None:
                group._task_ended(withdrawn=thread)
        interrupt = _unmangled(exc)
        if interrupt is exc:
            raise
        raise interrupt from None
    return task


def spawn(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Task[T]:
    """Run ``fn(*args, **kwargs)`` in a new thread and return its :class:`Task` at once.

    The task is on its own: its token is a new root :class:`CancelToken`
    (cancelled only through :meth:`Task.cancel` or the token itself), and
    nothing waits for it but you.  Use a :class:`TaskGroup` for tasks that
    must end before your code goes on.

    Inside the task, :func:`current_token` returns the task's token; a
    parameter of *fn* named ``token`` is passed only what you pass, like any
    other.

    Everything after *fn*, keywords included, is passed to it: ``spawn``
    takes no options of its own (see :ref:`the function rule
    <the-function-rule>`).  The task's name is ``"Task-N (fn's qualified
    name)"``; assign :attr:`Task.name` to rename it.  Its thread is a daemon
    thread if the spawning thread is one, as :class:`threading.Thread`
    decides; a non-daemon task keeps the interpreter alive until it ends.
    Tasks of a :class:`TaskGroup` take the group's *daemon* instead.

    Args:
        fn: The function.
        *args: Passed to *fn*.
        **kwargs: Passed to *fn*.

    Returns:
        The :class:`Task`.

    Raises:
        TypeError: *fn* is not callable, or is a coroutine function (or a
            coroutine), which no thread can run.
        RuntimeError: The thread could not be started (for instance at
            interpreter shutdown).

    .. versionadded:: 0.1
    """
    return _start(None, fn, args, kwargs)


# -- TaskGroup ----------------------------------------------------------------

_NEW = "new"
_OPEN = "open"
_EXITING = "exiting"
_CLOSED = "closed"


class TaskGroup:
    """Run tasks that all end before the ``with`` block does.

    ::

        with threadkit.TaskGroup() as group:
            for name in files:
                group.spawn(zip_one, name, name + ".zip")
        # every task has ended here

    The group has a :attr:`token`, a child of the :func:`current_token` of
    the thread that creates it (so a group made inside a task, or inside
    another group's block, is cancelled with it).  Each task's token is a
    child of the group's token, and inside the ``with`` block
    :func:`current_token` returns the group's token too.

    **Exit.**  Leaving the block waits for every task, including tasks
    spawned while waiting, and joins their threads: the group never lets its
    code go on while one of its tasks still runs.  Cancellation is
    cooperative (Python cannot stop a thread): a task that ignores its token
    is waited for as long as it runs.

    **Failure.**  The first task to fail cancels the group's token, so its
    siblings (and the block, through :func:`current_token`) are asked to stop.
    When all have ended, the block raises every failure together as an
    :class:`ExceptionGroup` (a :class:`BaseExceptionGroup` if one of them is
    not an :class:`Exception`), in the order the tasks failed, each with a
    note naming its task; ``except*`` picks them apart.  A task that ends by
    :class:`Cancelled` is not a failure.  No subclass is used on purpose:
    ``except*`` hands its clauses plain groups anyway (``split()`` builds
    new ones), and one class could not hold both kinds of exceptions.

    **An exception in the block** cancels the group's token as well; after
    the tasks have ended it is raised inside the group, first, before the
    tasks' failures (even if no task failed), like :class:`asyncio.TaskGroup`
    and Trio's nurseries do, so a handler written with ``except*`` catches
    it wherever it came from.  Two exceptions are re-raised unwrapped
    instead, once the tasks have ended: ``KeyboardInterrupt`` and
    ``SystemExit``.  Failures of tasks that cannot be raised with them are
    logged through the ``"threadkit"`` logger, never dropped.  A
    :class:`Cancelled` from the group's own token (or its parent's) is not an
    error of the block.

    **Callbacks of the group's token** run in the thread that cancels it.
    When that is a failing task's thread (or the timer's), an exception one
    of them raises is logged after the group has counted the task out, and
    the group goes on.  When the block's exit cancels it (the block raised)
    and a callback raises a :class:`BaseException` that is not an
    :class:`Exception` (an :class:`Exception` is logged by
    :meth:`CancelToken.cancel` itself), the tasks are still waited for, then
    that exception is raised unwrapped, like an interrupt, and the tasks'
    failures are logged.

    **Ctrl-C.**  A ``KeyboardInterrupt`` (or any exception a signal handler
    raises) that arrives while the block waits for its tasks cancels the
    group's token, waits for the tasks again, and is re-raised.  A second
    one during that second wait is raised at once, leaving tasks that ignore
    their token running: pressing Ctrl-C twice abandons them.

    **Timeout.**  With *timeout*, the group's token is cancelled *timeout*
    seconds after the block is entered if the group has not ended by then
    (one timer thread per group measures it).  The tasks are then waited for
    as usual, and :class:`TimeoutError` is raised; if tasks also failed (or
    the block raised), the ``TimeoutError`` is put in the exception group
    with them, after the block's exception.

    **Bounded groups.**  With *limit*, at most *limit* tasks of the group
    run at once, on at most *limit* threads that the group starts as needed
    and that each take the next waiting task when theirs ends (so 10,000
    spawns make at most *limit* threads, not 10,000).  :meth:`spawn` never
    waits: it queues the task and returns its :class:`Task` at once; queued
    tasks start in the order they were spawned.  A queued task whose token is
    cancelled (the group cancelled, a sibling failed, :meth:`Task.cancel`)
    never starts: it ends cancelled, at once for a cancel of the group or
    through :meth:`Task.cancel`, else when its turn comes.  Until it starts a
    task has no :attr:`Task.thread`; :meth:`Task.join` waits for the task to
    end (its thread goes on to the next task).  :func:`threadkit.dump` shows
    queued tasks as ``queued``.  A task that waits for a queued sibling keeps
    its thread meanwhile: if every thread of the group does, nothing runs
    until a cancel ends those waits (see :ref:`cancellable-waits`), as in
    any bounded pool.

    **Parent cancelled.**  If the token the group's token descends from is
    cancelled (say the task running the block was cancelled), the block ends
    by raising :class:`Cancelled` (unless there are failures to raise):
    the code after it must not run as if the tasks had done their work.

    Args:
        name: The group's name, for :func:`repr` and messages.  Default
            ``"TaskGroup-N"``.
        timeout: Seconds from entering the block after which the group is
            cancelled and :class:`TimeoutError` raised; ``None`` (the
            default) for no limit.
        daemon: Whether the tasks' threads are daemon threads; ``None`` (the
            default) inherits it from the thread that spawns each task, as
            :class:`threading.Thread` does.  Daemon tasks matter only to a
            group abandoned by a second Ctrl-C: they do not hold up
            interpreter exit.

        limit: At most this many of the group's tasks run at once; ``None``
            (the default) starts a thread per task.  See *Bounded groups*.

    Raises:
        TypeError: *name* is not a string, *timeout* is not a number,
            *daemon* is not a bool, or *limit* is not an int.
        ValueError: *timeout* is negative, nan, or beyond
            :data:`threading.TIMEOUT_MAX`, or *limit* is below 1.

    Thread safety: :meth:`spawn`, :meth:`cancel` and the properties may be
    called from any thread, including the group's own tasks.  The ``with``
    block is entered and left by one thread.  A group can be entered once.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        *,
        name: str | None = None,
        timeout: float | None = None,
        daemon: bool | None = None,
        limit: int | None = None,
    ) -> None:
        if name is None:
            name = f"TaskGroup-{next(_group_numbers)}"
        elif not isinstance(name, str):
            raise TypeError(f"name must be a str or None, got {type(name).__name__!r}")
        _check_timeout(timeout)
        if daemon is not None and not isinstance(daemon, bool):
            raise TypeError(f"daemon must be a bool or None, got {type(daemon).__name__!r}")
        self._daemon = daemon
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, int):
                raise TypeError(f"limit must be an int or None, got {type(limit).__name__!r}")
            if limit < 1:
                raise ValueError(f"limit must be >= 1, got {limit}")
        self._limit = limit
        # A bounded group's tasks not yet taken by one of its threads (FIFO;
        # None tells a thread to exit), put under _lock so that
        # _withdraw_queued never misses one.  _workers: the threads started
        # (changed under _lock).  _idle holds one mark per thread that has
        # finished a task and is free for another, as ThreadPoolExecutor's
        # idle semaphore does: a spawn that pops a mark starts no thread.
        # Marks are appended without the lock (deque.append is atomic); a
        # thread's first task is paid for by the spawn that started it, so
        # below the limit there are never more marks than idle threads.
        self._queue: SimpleQueue[_Queued | None] = SimpleQueue()
        # Held while a thread of the group takes up its next task and while a
        # task renames its thread: a task that has ended no longer renames the
        # thread, which may be running the next task by then.
        self._rename_lock = threading.Lock()
        self._workers = 0
        self._idle: collections.deque[bool] = collections.deque()
        self._name = name
        self._timeout = timeout
        self._parent = current_token()
        self._token = CancelToken(parent=self._parent)
        # _lock must be held whenever _state, _running, _failures, _threads or
        # _timed_out change.  Invariant: _state is _CLOSED exactly when the
        # block was left and _running dropped to 0; _all_done is set then.
        self._lock = threading.Lock()
        self._state = _NEW
        self._running = 0
        self._failures: list[BaseException] = []
        self._threads: list[threading.Thread] = []
        self._prune_at = 64
        self._all_done = threading.Event()
        self._timed_out = False
        self._timer: threading.Timer | None = None
        self._binding: contextlib.AbstractContextManager[CancelToken] | None = None
        self._key = next(_registry_keys)
        if limit is not None:
            # One callback for the whole queue: a cancelled group ends its
            # queued tasks at once, without waiting for a free thread.
            self._token.on_cancel(self._withdraw_queued)

    @property
    def name(self) -> str:
        """The group's name."""
        return self._name

    @property
    def token(self) -> CancelToken:
        """The group's :class:`CancelToken`, parent of its tasks' tokens."""
        return self._token

    def cancel(self, reason: object = None) -> bool:
        """Cancel the group's token, asking every task to stop; see :meth:`CancelToken.cancel`.

        This is not a failure: if no task fails, the block ends normally.
        """
        return self._token.cancel(reason)

    def spawn(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Task[T]:
        """Start ``fn(*args, **kwargs)`` as a task of this group; see :func:`spawn`.

        Everything after *fn*, keywords included, is passed to it (see
        :ref:`the function rule <the-function-rule>`); the task's thread is
        a daemon thread if the group's *daemon* says so.

        The task's token is a child of the group's token.  If the group is
        already cancelled the task is cancelled at once, and *fn* never runs.

        Raises:
            GroupClosed: The ``with`` block was not entered yet, or the group
                has ended.
            TypeError: As for :func:`spawn`.
            RuntimeError: As for :func:`spawn`.
        """
        return _start(self, fn, args, kwargs)

    # -- bookkeeping, called by the tasks --

    def _admit(self, thread: threading.Thread) -> None:
        with self._lock:
            state = self._state
            if state in (_OPEN, _EXITING):
                self._running += 1
                threads = self._threads
                if len(threads) >= self._prune_at:
                    # Keep the list in proportion to the live tasks: the
                    # threads of long-ended tasks need no join.
                    threads[:] = [t for t in threads if t.is_alive()]
                    self._prune_at = max(64, 2 * len(threads))
                threads.append(thread)
                return
        if state == _NEW:
            raise GroupClosed(
                f"cannot spawn into task group {self._name!r} before its with block is entered"
            )
        raise GroupClosed(f"cannot spawn into task group {self._name!r} after it has ended")

    def _enqueue(self, task: Task[Any], item: _Queued, daemon: bool | None) -> None:
        """Queue a task of a bounded group; start a thread for it if one is free."""
        with self._lock:
            state = self._state
            if state in (_OPEN, _EXITING):
                self._running += 1
                _live_tasks[task._key] = task
                self._queue.put(item)
                assert self._limit is not None
                start = False
                if self._idle:
                    self._idle.pop()  # that thread takes this task, or an earlier one
                elif self._workers < self._limit:
                    start = True
                    self._workers += 1
                    number = self._workers
            else:
                start = False
        if state == _NEW:
            raise GroupClosed(
                f"cannot spawn into task group {self._name!r} before its with block is entered"
            )
        if state not in (_OPEN, _EXITING):
            raise GroupClosed(f"cannot spawn into task group {self._name!r} after it has ended")
        if not start:
            return
        thread = threading.Thread(
            target=self._work, name=f"{self._name} thread-{number}", daemon=daemon
        )
        with self._lock:
            self._threads.append(thread)
        try:
            thread.start()
        except BaseException as exc:  # routed: the thread never runs; re-raised below
            with self._lock:
                self._workers -= 1
                self._threads.remove(thread)
                stranded = self._workers == 0
            if stranded:
                # No thread of the group would ever take the queued tasks.
                self._withdraw_queued()
            interrupt = _unmangled(exc)
            if interrupt is exc:
                raise
            raise interrupt from None

    def _work(self) -> None:
        """The body of a bounded group's thread: run queued tasks until the group closes."""
        me = threading.current_thread()
        get = self._queue.get
        idle = self._idle
        rename_lock = self._rename_lock
        label = _TaskLabel(None, me)
        _waits.register_owner(label)
        try:
            while True:
                item = get()
                if item is None:
                    return  # the group closed: see _close
                task, fn, args, kwargs = item
                del item
                with rename_lock:
                    task._thread = me
                    me.name = task._name
                _run(task, fn, args, kwargs, label)
                del task, fn, args, kwargs
                idle.append(True)
        finally:
            _waits.forget_owner()

    def _withdraw_queued(self) -> None:
        """End every queued task as cancelled (the group's token is cancelled)."""
        # Every task taken here is still counted in _running, so the group
        # cannot close (and put its None marks) while this drains.
        queued: list[Task[Any]] = []
        get = self._queue.get_nowait
        with self._lock:
            while True:
                try:
                    item = get()
                except Empty:
                    break
                if item is not None:
                    queued.append(item[0])
        for task in queued:
            _withdraw(task)

    def _task_failed(self, failure: BaseException) -> BaseException | None:
        """Record a task's failure; the first one cancels the group's token.

        Called by the failed task's thread before its count drops, so the
        block never sees "all done" before the siblings were asked to stop.

        Returns:
            The ``BaseException`` a callback of the token raised (the token
            is cancelled and every callback ran regardless), for the caller to
            route; ``None`` if there was none.
        """
        with self._lock:
            self._failures.append(failure)
            first = len(self._failures) == 1
        if first:
            return _cancel_routed(self._token, f"a task of task group {self._name!r} failed")
        return None

    def _task_ended(self, withdrawn: threading.Thread | None = None) -> None:
        """Count a task out; *withdrawn* is the thread of a task that never ran (not joined)."""
        with self._lock:
            if withdrawn is not None:
                with contextlib.suppress(ValueError):  # pruned already
                    self._threads.remove(withdrawn)
            self._running -= 1
            if self._running == 0 and self._state == _EXITING:
                self._close()

    def _close(self) -> None:
        """Close the group (under _lock): its block may end, its threads (if bounded) exit."""
        self._state = _CLOSED
        self._all_done.set()
        for _ in range(self._workers):
            self._queue.put(None)

    def _expire(self) -> None:
        """The timer thread's function."""
        with self._lock:
            if self._state == _CLOSED:
                return
            self._timed_out = True
        error = _cancel_routed(
            self._token, f"task group {self._name!r} timed out after {self._timeout} s"
        )
        if error is not None:
            logger.error(
                "a cancel callback of task group %r raised %s in its timer thread",
                self._name,
                type(error).__name__,
                exc_info=error,
            )

    # -- the with block --

    def __enter__(self) -> TaskGroup:
        with self._lock:
            if self._state != _NEW:
                raise RuntimeError(f"task group {self._name!r} can only be entered once")
            self._state = _OPEN
        _live_groups[self._key] = self
        binding = _bind_token(self._token)
        binding.__enter__()
        self._binding = binding
        if self._timeout is not None:
            timer = threading.Timer(self._timeout, self._expire)
            timer.name = f"{self._name} timer"
            timer.daemon = True
            self._timer = timer
            timer.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        token = self._token
        body_error: BaseException | None = None
        interrupt: BaseException | None = None
        if exc is None or (isinstance(exc, Cancelled) and token.cancelled):
            pass
        elif isinstance(exc, KeyboardInterrupt | SystemExit):
            interrupt = exc
        else:
            body_error = exc
        # A BaseException raised by a callback of the token while this thread
        # cancels it: raised once the tasks have ended, never instead of
        # waiting for them.
        callback_error: BaseException | None = None
        try:
            try:
                # Everything up to the wait is inside this try: a signal's
                # exception that lands here is handled like one in the wait.
                try:
                    if exc is not None and not token.cancelled:
                        callback_error = _cancel_routed(
                            token,
                            f"the block of task group {self._name!r} raised {type(exc).__name__}",
                        )
                finally:
                    with self._lock:
                        self._state = _EXITING
                        if self._running == 0:
                            self._close()
                self._all_done.wait()
            except BaseException as caught:  # routed: cancel, wait again, re-raise
                if interrupt is not None:
                    raise  # already winding down after an interrupt: abandon the tasks
                signal_exc = _unmangled(caught)
                error = _cancel_routed(
                    token,
                    f"task group {self._name!r} was interrupted by {type(signal_exc).__name__}",
                )
                self._all_done.wait()
                self._join()
                for lost in (callback_error, error):
                    if lost is not None:
                        self._log_callback_error(lost, signal_exc)
                self._log_failures(signal_exc)
                if signal_exc is caught:
                    raise
                raise signal_exc from None
            self._join()
        finally:
            timer = self._timer
            if timer is not None:
                timer.cancel()
                timer.join()
            if self._binding is not None:
                self._binding.__exit__(None, None, None)
                self._binding = None
            _live_groups.pop(self._key, None)
        if callback_error is not None:
            # Like an interrupt: raised unwrapped (its __context__ is the
            # block's exception, if any), the tasks' failures logged.
            self._log_failures(callback_error)
            try:
                raise callback_error
            finally:
                callback_error = None
        if interrupt is not None:
            self._log_failures(interrupt)
            return False
        errors: list[BaseException] = []
        if body_error is not None:
            errors.append(body_error)
        if self._timed_out:
            timeout_error = TimeoutError(
                f"task group {self._name!r} timed out after {self._timeout} s"
            )
            if not errors and not self._failures:
                raise timeout_error from None
            errors.append(timeout_error)
        errors.extend(self._failures)
        if errors:
            raise BaseExceptionGroup(
                f"unhandled errors in task group {self._name!r}", errors
            ) from None
        if self._parent.cancelled:
            if isinstance(exc, Cancelled):
                return False  # the block's own Cancelled goes on up
            raise Cancelled(self._parent.reason)
        # A Cancelled of the group's own making has done its job.
        return exc is not None

    def _join(self) -> None:
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join()

    def _log_callback_error(self, error: BaseException, interrupt: BaseException) -> None:
        logger.error(
            "task group %r was left by %s; this %s of a cancel callback is not raised",
            self._name,
            type(interrupt).__name__,
            type(error).__name__,
            exc_info=error,
        )

    def _log_failures(self, interrupt: BaseException) -> None:
        with self._lock:
            failures = list(self._failures)
        for failure in failures:
            logger.error(
                "task group %r was left by %s; this failure of one of its tasks is not raised",
                self._name,
                type(interrupt).__name__,
                exc_info=failure,
            )

    def __repr__(self) -> str:
        # From a snapshot, without self._lock: a repr must work while any
        # thread is stuck (dump(), a debugger, a signal handler).
        snap = _group_snapshot(self)
        extra = ", cancelled" if snap.cancelled else ""
        return (
            f"<{TaskGroup.__name__} {snap.name!r} {snap.state}, {snap.running} running, "
            f"{snap.failed} failed{extra}>"
        )


def _cancel_routed(token: CancelToken, reason: str) -> BaseException | None:
    """Cancel *token*; return the BaseException a callback raised instead of raising it.

    The token is cancelled and all its callbacks ran either way (see
    :meth:`CancelToken.cancel`); the caller routes the error once its own
    bookkeeping is done.
    """
    try:
        token.cancel(reason)
    except BaseException as exc:  # routed: returned to the caller, who raises or logs it
        return exc
    return None


def _unmangled(exc: BaseException) -> BaseException:
    """The exception a signal handler raised, if the standard library mangled it.

    :meth:`threading.Condition.wait` (under :meth:`threading.Event.wait` and
    :meth:`threading.Thread.start`) is not safe against an exception that a
    signal handler raises between bytecodes: raised just as the wait ends and
    before the lock is taken back, it leaves the ``with`` statement as
    ``RuntimeError('release unlocked lock')``, the handler's exception as its
    ``__context__`` (measured on 3.13: about 3 in 1000 interrupted
    ``Thread.start()`` calls).  The caller should see the Ctrl-C.
    """
    context = exc.__context__
    if type(exc) is RuntimeError and context is not None and not isinstance(context, Exception):
        return context
    return exc
