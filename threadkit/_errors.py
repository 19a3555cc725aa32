"""Every exception threadkit raises, in one place.

Each one subclasses the builtin it refines, so an ``except RuntimeError`` or
``except queue.Full`` written for the standard library keeps working.
"""

from __future__ import annotations

import queue

__all__ = ["BatchError", "DeadlockError", "MailboxFull", "WorkerClosed"]


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
    returns.

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
