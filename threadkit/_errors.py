"""Every exception threadkit raises, in one place.

Each one subclasses the builtin it refines, so an ``except RuntimeError`` or
``except queue.Full`` written for the standard library keeps working.
"""

from __future__ import annotations

import queue

__all__ = [
    "BatchError",
    "Cancelled",
    "DeadlockError",
    "GroupClosed",
    "LockOrderError",
    "LockOwnershipError",
    "LockTimeoutError",
    "MailboxFull",
    "WorkerClosed",
]


class WorkerClosed(RuntimeError):
    """A request was made of a worker that does not accept requests.

    Raised by :meth:`~threadkit.ResourceWorker.submit`,
    :meth:`~threadkit.ResourceWorker.call` and :meth:`~threadkit.ResourceWorker.post`
    once :meth:`~threadkit.ResourceWorker.shutdown` has begun (or before
    :meth:`~threadkit.ResourceWorker.start`).  The request was not accepted: it
    never runs.

    .. versionadded:: 0.1
    """


class DeadlockError(RuntimeError):
    """A wait that could never end was refused instead of hanging.

    For example, :meth:`~threadkit.ResourceWorker.call` made from the worker's own
    owner thread would wait for a request that can only run after the call
    returns; and, with checks enabled, a blocking ``acquire()`` of a
    :class:`~threadkit.Lock` by the thread that already holds it would wait for
    itself.

    .. versionadded:: 0.1
    """


class MailboxFull(queue.Full):
    """A bounded mailbox stayed full for longer than the put timeout.

    Raised by :meth:`~threadkit.ResourceWorker.submit`,
    :meth:`~threadkit.ResourceWorker.call` and :meth:`~threadkit.ResourceWorker.post`
    of a worker created with ``maxsize > 0`` and ``put_timeout`` set.  The
    request was not accepted: it never runs.

    .. versionadded:: 0.1
    """


class BatchError(RuntimeError):
    """A request ran, but the batch around it failed.

    With group commit (``begin_batch`` / ``end_batch`` on a
    :class:`~threadkit.ResourceWorker`), a request's result counts only once
    its batch has ended.  If ``begin_batch`` or ``end_batch`` raises, every
    request of that batch that did not fail on its own fails with a new
    ``BatchError``, whose ``__cause__`` is the hook's exception (one instance
    per request, so that each waiting thread raises its own).

    .. versionadded:: 0.1
    """


class Cancelled(BaseException):
    """The code that raised it was asked to stop, through a :class:`~threadkit.CancelToken`.

    Raised by :meth:`CancelToken.raise_if_cancelled() <threadkit.CancelToken.raise_if_cancelled>`.
    Let it propagate: a task whose function raises it while its token is
    cancelled ends *cancelled* (:meth:`Task.result() <threadkit.Task.result>`
    raises :class:`concurrent.futures.CancelledError`), and a
    :class:`~threadkit.TaskGroup` does not count it as a failure.

    *Why a* :class:`BaseException`.  Cancellation is not an error of the code
    being cancelled, and the code in between (retry loops, ``except
    Exception: log.exception(...)``) must not turn a stop request into a
    return value or a logged failure.  :class:`asyncio.CancelledError` (since
    Python 3.8) and Trio's ``Cancelled`` were made base exceptions for exactly
    this reason.  It is deliberately *not* a
    :class:`concurrent.futures.CancelledError`: that one is an
    :class:`Exception`, and it already has a meaning, "this future was
    cancelled", which is what :meth:`Task.result() <threadkit.Task.result>`
    raises for a cancelled task.  Code that does catch :class:`Cancelled` and
    carries on is not stuck: a token stays cancelled, so the next
    :meth:`~threadkit.CancelToken.raise_if_cancelled` raises again.

    Attributes:
        reason: The *reason* given to :meth:`~threadkit.CancelToken.cancel`
            (``None`` if none was given).

    .. versionadded:: 0.1
    """

    def __init__(self, reason: object = None) -> None:
        super().__init__("cancelled" if reason is None else f"cancelled: {reason}")
        self.reason = reason

    def __reduce__(self) -> tuple[type[Cancelled], tuple[object]]:
        return (type(self), (self.reason,))


class GroupClosed(RuntimeError):
    """A task was spawned into a :class:`~threadkit.TaskGroup` that does not accept tasks.

    Raised by :meth:`TaskGroup.spawn() <threadkit.TaskGroup.spawn>` before the
    group's ``with`` block is entered, and after the group has finished (its
    ``__exit__`` saw every task end).  The function was not started.

    .. versionadded:: 0.1
    """


class LockOrderError(DeadlockError):
    """An acquisition would close a cycle in the lock-order graph.

    Raised by ``acquire()`` (or entering a ``with`` block) of a checked
    :class:`~threadkit.Lock` or :class:`~threadkit.RLock`, before it blocks,
    when some thread once acquired the locks of the cycle in the opposite
    order.  The message names every lock of the cycle and where (file, line,
    thread) each edge of it was first recorded.  The lock was not acquired.

    It subclasses :class:`DeadlockError`: an inverted lock order is a
    deadlock that this run's timing happened to avoid, and handlers written
    for the certain kind should catch the likely kind too.

    .. versionadded:: 0.1
    """


class LockOwnershipError(RuntimeError):
    """A checked lock was released by a thread that does not hold it.

    Raised by ``release()`` of a checked :class:`~threadkit.Lock` (while
    checks are enabled) or of a :class:`~threadkit.RLock` with checks or
    ``raise_on_timeout``; the message names the holder.  The lock stays held.
    It subclasses :class:`RuntimeError`, which the standard library raises for
    the same misuse of an :class:`threading.RLock`.

    .. versionadded:: 0.1
    """


class LockTimeoutError(TimeoutError):
    """A lock created with ``raise_on_timeout=True`` was not acquired in time.

    Raised by ``acquire(timeout=...)`` instead of returning ``False``; the
    message names the lock, the thread that holds it and for how long it has
    held it.  The lock was not acquired.

    .. versionadded:: 0.1
    """
