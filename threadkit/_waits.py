"""Who waits for whom: the waits-for graph among threadkit's workers and tasks.

A thread that blocks on a worker (:meth:`~threadkit.ResourceWorker.call`, or
``result()`` on one of its futures) or on a task (``result()``,
``exception()``, ``join()``) records an edge "this thread waits for that
thread, until this thing is settled" for as long as it waits.  Before it
blocks it follows the edges from the thread it is about to wait for; if the
walk comes back to itself, the wait could never end, and it raises
:class:`~threadkit.DeadlockError` naming the whole cycle instead.

*Edges describe the present.*  An edge ends when its wait is satisfied,
which is when the thread that satisfies it settles the awaited thing (a
call's slot, a future, a task), not when the waiter gets around to waking
up: each edge carries the predicate ``settled()`` that the settling thread
makes true *before* it wakes the waiter, and a walk stops at an edge whose
predicate holds.  The first release removed an edge only when its waiter
woke, so a worker that had just answered A and went on to call into A was
refused with a cycle that no longer existed.

No lock: a waiter records its own edge *before* it walks the graph, and each
thread only ever writes its own key (one atomic ``dict`` store or pop).  Of
two threads closing a cycle at the same moment, the one that walks last sees
both edges (both may raise; never neither).  A walk is bounded by the number
of waiting threads, so a cycle among other threads cannot trap it.

Only waits without a timeout are checked: a wait with a timeout ends by
itself, so a cycle of them is slow, not stuck.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from threadkit._errors import DeadlockError

__all__ = [
    "describe",
    "edges",
    "find_cycle",
    "forget_owner",
    "register_owner",
    "wait_begins",
    "wait_ends",
]

Settled = Callable[[], bool]

# thread ident -> (the ident of the thread it is blocked on, whether that
# wait is satisfied already).  Each thread writes only its own key, with one
# atomic dict store or pop.  ``ResourceWorker.call()``, the wait that is made
# most often, does wait_begins()'s fast path inline on ``edges`` (the same
# dict): two function calls were a sixth of a call()'s instructions.
_waiting: dict[int, tuple[int | None, Settled | None]] = {}
edges = _waiting
# thread ident -> "worker 'db'" / "task 'zip'", for the threads that own one.
# A label is turned into text when a report is made: a task's may follow a rename.
_labels: dict[int, object] = {}


def register_owner(label: object) -> None:
    """Name the calling thread in cycle reports (an owner or task thread)."""
    _labels[threading.get_ident()] = label


def forget_owner() -> None:
    _labels.pop(threading.get_ident(), None)


def describe(ident: int) -> str:
    label = _labels.get(ident)
    if label is not None:
        return str(label)
    for thread in threading.enumerate():
        if thread.ident == ident:
            return f"thread {thread.name!r}"
    return f"thread {ident}"


def _blocked_on(ident: int) -> int | None:
    """The thread *ident* waits for now, or None (no edge, or its wait is satisfied)."""
    edge = _waiting.get(ident)
    if edge is None:
        return None
    target, settled = edge
    if settled is not None and settled():
        return None
    return target


def wait_begins(target: int | None, what: str, settled: Settled | None = None) -> None:
    """Record that this thread is about to block on thread *target* until *settled()*.

    Args:
        target: The thread that will satisfy the wait (None: nothing to record).
        what: The wait, for the error message ("call() on worker 'db'").
        settled: Becomes true, before the waiter is woken, once the wait is
            satisfied; None if only the waiter's own wait_ends() ends it.

    Raises:
        DeadlockError: *target* waits, directly or through others, for this
            thread; the edge is withdrawn first.
    """
    if target is None:
        return
    me = threading.get_ident()
    _waiting[me] = (target, settled)
    if target != me and target not in _waiting:
        return  # the common case: the thread we wait for is not blocked on anyone
    find_cycle(me, target, what)


def find_cycle(me: int, target: int, what: str) -> None:
    """Follow the edges from *target*, *me*'s own edge recorded already.

    Raises:
        DeadlockError: The walk came back to *me*; its edge is withdrawn first.
    """
    path = [me, target]
    node: int | None = target
    for _ in range(len(_waiting) + 1):
        if node == me:
            _waiting.pop(me, None)
            chain = " -> ".join(describe(i) for i in path)
            raise DeadlockError(f"{what} would deadlock: {chain} (each waits for the next)")
        node = _blocked_on(node)  # type: ignore[arg-type]
        if node is None:
            return
        path.append(node)


def wait_ends() -> None:
    _waiting.pop(threading.get_ident(), None)


def snapshot() -> dict[int, int]:
    """The live edges, waiter -> thread waited for (a copy, taken without locks)."""
    edges = {}
    for ident in _waiting.copy():
        target = _blocked_on(ident)
        if target is not None:
            edges[ident] = target
    return edges


def labels() -> dict[int, str]:
    """Thread ident -> its role ("worker 'db'"), a copy taken without locks."""
    return {ident: str(label) for ident, label in _labels.copy().items()}


def forget_all() -> None:
    """After fork(): the threads of the parent's edges do not exist here."""
    _waiting.clear()
    _labels.clear()
