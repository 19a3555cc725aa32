"""Every exception threadkit raises, in one place.

Each one subclasses the builtin it refines, so an ``except RuntimeError`` or
``except queue.Full`` written for the standard library keeps working.
"""

from __future__ import annotations

import queue

__all__ = [
    "DeadlockError",
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
