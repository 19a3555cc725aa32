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
import contextlib
import inspect
import itertools
import logging
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from types import TracebackType
from typing import Any, TypeVar

from threadkit import _waits
from threadkit._cancel import CancelToken, _bind_token, _check_timeout, current_token
from threadkit._errors import Cancelled, DeadlockError, GroupClosed

__all__ = ["Task", "TaskGroup", "spawn"]

logger = logging.getLogger("threadkit")

T = TypeVar("T")

_task_numbers = itertools.count(1)
_group_numbers = itertools.count(1)

# Outcome kinds of _call().
_RETURNED = 0
_FAILED = 1
_CANCELLED = 2


# -- the token parameter ---------------------------------------------------------

# Keyed by the function (a bound method's __func__, so that the cache does not
# keep instances alive); weak, so that it does not keep functions alive either.
_takes_token: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


def _accepts_token(fn: Callable[..., object]) -> bool:
    """Whether *fn* declares a parameter ``token`` that can be passed by keyword."""
    key: Any = getattr(fn, "__func__", fn)
    try:
        return _takes_token[key]
    except KeyError:
        pass
    except TypeError:  # not weak-referenceable, or unhashable: not cached
        key = None
    try:
        parameter = inspect.signature(fn).parameters.get("token")
    except (TypeError, ValueError):  # no signature (some builtins)
        accepts = False
    else:
        accepts = parameter is not None and parameter.kind in (
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            inspect.Parameter.KEYWORD_ONLY,
        )
    if key is not None:
        with contextlib.suppress(TypeError):
            _takes_token[key] = accepts
    return accepts


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

    Made by :func:`spawn` and :meth:`TaskGroup.spawn`, never directly.  As a
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

    # -- introspection --

    @property
    def name(self) -> str:
        """The task's name (also its thread's name)."""
        return self._name

    @property
    def thread(self) -> threading.Thread:
        """The thread running the task."""
        assert self._thread is not None
        return self._thread

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
            concurrent.futures.CancelledError: The task was cancelled.
            DeadlockError: Called from the task's own thread.
            TypeError: *timeout* is not a number or ``None``.
            ValueError: *timeout* is negative.
        """
        _check_timeout(timeout)
        self._refuse_self_wait("exception()")
        waits = timeout is None and not self.done()
        if waits:
            _waits.wait_begins(self._thread_ident(), f"waiting for task {self._name!r}", self.done)
        try:
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
            concurrent.futures.CancelledError: The task was cancelled.
            DeadlockError: Called from the task's own thread.
            TypeError: *timeout* is not a number or ``None``.
            ValueError: *timeout* is negative.
            BaseException: Whatever the function raised.
        """
        # Checked here too, so that the message names result(), not exception().
        self._refuse_self_wait("result()")
        self.exception(timeout)
        return super().result(0)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the task's thread to exit, like :meth:`threading.Thread.join`.

        Does not retrieve the outcome (see *No failure is lost* above).

        Args:
            timeout: Seconds to wait at most; ``None`` waits as long as it takes.

        Returns:
            True if the thread has exited, False if the timeout expired first.

        Raises:
            DeadlockError: Called from the task's own thread.
            TypeError: *timeout* is not a number or ``None``.
            ValueError: *timeout* is negative.
        """
        _check_timeout(timeout)
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
            thread.join(timeout)
        finally:
            if waits:
                _waits.wait_ends()
        return not thread.is_alive()

    # -- lifecycle --

    def __del__(self) -> None:
        if self._failure is not None and self._group is None and not self._observed:
            _report_unobserved(self)

    def __repr__(self) -> str:
        if self.cancelled():
            state = "cancelled"
        elif self.done():
            failure = self._failure
            state = "finished" if failure is None else f"failed ({type(failure).__name__})"
        else:
            state = "running" if self._started else "starting"
            if self._token.cancelled:
                state += ", cancel requested"
        return f"<{Task.__name__} {self._name!r} {state}>"


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


# Every task and entered group still referenced somewhere, for threadkit.dump().
_live_tasks: weakref.WeakSet[Task[Any]] = weakref.WeakSet()
_live_groups: weakref.WeakSet[TaskGroup] = weakref.WeakSet()


def _run(
    task: Task[Any], fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    """The body of a task's thread."""
    task._started = True
    token = task._token
    _waits.register_owner(f"task {task._name!r}")
    try:
        with _bind_token(token):
            kind, value = _call(token, fn, args, kwargs)
    finally:
        _waits.forget_owner()
    del fn, args, kwargs
    group = task._group
    if kind == _RETURNED:
        Future.set_running_or_notify_cancel(task)
        task.set_result(value)
    elif kind == _FAILED:
        task._failure = value
        if group is None:
            with _failed_lock:
                _failed_alone.add(task)
        else:
            value.add_note(f"(raised by threadkit task {task._name!r})")
        Future.set_running_or_notify_cancel(task)
        task.set_exception(value)
    else:
        # The stdlib's own path from PENDING to CANCELLED (see the module docstring).
        Future.cancel(task)
        Future.set_running_or_notify_cancel(task)
    del task
    if group is not None:
        group._task_done(value if kind == _FAILED else None)


def _start(
    group: TaskGroup | None,
    fn: Callable[..., T],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    name: str | None,
    daemon: bool | None,
) -> Task[T]:
    if not callable(fn):
        raise TypeError(f"spawn() needs a callable, got {type(fn).__name__!r}")
    if name is None:
        qualname = getattr(fn, "__qualname__", None) or type(fn).__name__
        name = f"Task-{next(_task_numbers)} ({qualname})"
    elif not isinstance(name, str):
        raise TypeError(f"name must be a str or None, got {type(name).__name__!r}")
    if daemon is not None and not isinstance(daemon, bool):
        raise TypeError(f"daemon must be a bool or None, got {type(daemon).__name__!r}")
    token = CancelToken() if group is None else CancelToken(parent=group._token)
    if "token" not in kwargs and _accepts_token(fn):
        kwargs["token"] = token
    task: Task[T] = Task(name, token, group)
    _live_tasks.add(task)
    thread = threading.Thread(target=_run, args=(task, fn, args, kwargs), name=name, daemon=daemon)
    task._thread = thread
    if group is not None:
        group._admit(thread)
    try:
        thread.start()
    except BaseException:  # the thread never ran: undo the admission, re-raise
        if group is not None:
            group._task_done(None)
        raise
    return task


def spawn(
    fn: Callable[..., T],
    /,
    *args: Any,
    name: str | None = None,
    daemon: bool | None = None,
    **kwargs: Any,
) -> Task[T]:
    """Run ``fn(*args, **kwargs)`` in a new thread and return its :class:`Task` at once.

    The task is on its own: its token is a new root :class:`CancelToken`
    (cancelled only through :meth:`Task.cancel` or the token itself), and
    nothing waits for it but you.  Use a :class:`TaskGroup` for tasks that
    must end before your code goes on.

    If *fn* declares a parameter named ``token`` (that can be passed by
    keyword), it receives the task's :class:`CancelToken` as ``token=...``,
    unless you pass ``token`` yourself.  Give it a default (``token:
    CancelToken | None = None``) so that type checkers accept the call.
    Otherwise :func:`current_token` returns it inside the task.

    Args:
        fn: The function.  Everything after it, keywords included, is passed
            to it, except *name* and *daemon*.
        name: The task's name, also its thread's.  Default ``"Task-N (fn's
            qualified name)"``.
        daemon: Whether the thread is a daemon thread; ``None`` (the
            default) inherits it from the calling thread, as
            :class:`threading.Thread` does.  A non-daemon task keeps the
            interpreter alive until it ends.

    Returns:
        The :class:`Task`.

    Raises:
        TypeError: *fn* is not callable, *name* is not a string, or *daemon*
            not a bool.
        RuntimeError: The thread could not be started (for instance at
            interpreter shutdown).

    .. versionadded:: 0.1
    """
    return _start(None, fn, args, kwargs, name=name, daemon=daemon)


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

    Raises:
        TypeError: *name* is not a string, or *timeout* is not a number.
        ValueError: *timeout* is negative.

    Thread safety: :meth:`spawn`, :meth:`cancel` and the properties may be
    called from any thread, including the group's own tasks.  The ``with``
    block is entered and left by one thread.  A group can be entered once.

    .. versionadded:: 0.1
    """

    def __init__(self, name: str | None = None, *, timeout: float | None = None) -> None:
        if name is None:
            name = f"TaskGroup-{next(_group_numbers)}"
        elif not isinstance(name, str):
            raise TypeError(f"name must be a str or None, got {type(name).__name__!r}")
        _check_timeout(timeout)
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

    def spawn(
        self,
        fn: Callable[..., T],
        /,
        *args: Any,
        name: str | None = None,
        daemon: bool | None = None,
        **kwargs: Any,
    ) -> Task[T]:
        """Start ``fn(*args, **kwargs)`` as a task of this group; see :func:`spawn`.

        The task's token is a child of the group's token.  If the group is
        already cancelled the task is cancelled at once, and *fn* never runs.

        Raises:
            GroupClosed: The ``with`` block was not entered yet, or the group
                has ended.
            TypeError: As for :func:`spawn`.
            RuntimeError: As for :func:`spawn`.
        """
        return _start(self, fn, args, kwargs, name=name, daemon=daemon)

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

    def _task_done(self, failure: BaseException | None) -> None:
        if failure is not None:
            with self._lock:
                self._failures.append(failure)
                first = len(self._failures) == 1
            if first:
                # Before the count drops: the block must never see "all done"
                # before the siblings were asked to stop.
                self._token.cancel(f"a task of task group {self._name!r} failed")
        with self._lock:
            self._running -= 1
            if self._running == 0 and self._state == _EXITING:
                self._state = _CLOSED
                self._all_done.set()

    def _expire(self) -> None:
        with self._lock:
            if self._state == _CLOSED:
                return
            self._timed_out = True
        self._token.cancel(f"task group {self._name!r} timed out after {self._timeout} s")

    # -- the with block --

    def __enter__(self) -> TaskGroup:
        with self._lock:
            if self._state != _NEW:
                raise RuntimeError(f"task group {self._name!r} can only be entered once")
            self._state = _OPEN
        _live_groups.add(self)
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
        try:
            if exc is not None and not token.cancelled:
                token.cancel(f"the block of task group {self._name!r} raised {type(exc).__name__}")
            with self._lock:
                self._state = _EXITING
                if self._running == 0:
                    self._state = _CLOSED
                    self._all_done.set()
            try:
                self._all_done.wait()
            except BaseException as signal_exc:  # routed: cancel, wait again, re-raise
                if interrupt is not None:
                    raise  # already winding down after an interrupt: abandon the tasks
                token.cancel(
                    f"task group {self._name!r} was interrupted by {type(signal_exc).__name__}"
                )
                self._all_done.wait()
                self._join()
                self._log_failures(signal_exc)
                raise
            self._join()
        finally:
            timer = self._timer
            if timer is not None:
                timer.cancel()
                timer.join()
            if self._binding is not None:
                self._binding.__exit__(None, None, None)
                self._binding = None
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
        with self._lock:
            state, running, failed = self._state, self._running, len(self._failures)
        extra = ", cancelled" if self._token.cancelled else ""
        return (
            f"<{TaskGroup.__name__} {self._name!r} {state}, {running} running, "
            f"{failed} failed{extra}>"
        )
