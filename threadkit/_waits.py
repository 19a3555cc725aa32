"""Who waits for whom: the waits-for graph among threadkit's workers and tasks.

A thread that blocks on a worker (:meth:`~threadkit.ResourceWorker.call`, or
``result()`` on one of its futures) or on a task (``result()``,
``exception()``, ``join()``) records an edge "this thread waits for that
thread" for as long as it waits.  Before it blocks it follows the edges from
the thread it is about to wait for; if the walk comes back to itself, the wait
could never end, and it raises :class:`~threadkit.DeadlockError` naming the
whole cycle instead.

No lock: a waiter records its own edge *before* it walks the graph, and each
thread only ever writes its own key.  Of two threads closing a cycle at the
same moment, the one that walks last sees both edges (both may, and both
raise; never neither).  A walk is bounded by the number of waiting threads,
so a cycle among other threads (say, of plain locks) cannot trap it.

Only waits without a timeout are checked: a wait with a timeout ends by
itself, so a cycle of them is slow, not stuck.
"""

from __future__ import annotations

import threading

__all__ = ["describe", "forget_owner", "register_owner", "wait_begins", "wait_ends"]

from threadkit._errors import DeadlockError

# thread ident -> the ident of the thread it is blocked on.  Each thread
# writes only its own key, so plain dict operations (atomic) suffice.
_waiting: dict[int, int] = {}
# thread ident -> "worker 'db'" / "task 'zip'", for the threads that own one.
_labels: dict[int, str] = {}


def register_owner(label: str) -> None:
    """Name the calling thread in cycle reports (an owner or task thread)."""
    _labels[threading.get_ident()] = label


def forget_owner() -> None:
    _labels.pop(threading.get_ident(), None)


def describe(ident: int) -> str:
    label = _labels.get(ident)
    if label is not None:
        return label
    for thread in threading.enumerate():
        if thread.ident == ident:
            return f"thread {thread.name!r}"
    return f"thread {ident}"


def wait_begins(target: int | None, what: str) -> None:
    """Record that this thread is about to block on thread *target*.

    Raises:
        DeadlockError: *target* waits, directly or through others, for this
            thread; the edge is withdrawn first.
    """
    if target is None:
        return
    me = threading.get_ident()
    _waiting[me] = target
    if target != me and target not in _waiting:
        return  # the common case: the thread we wait for is not blocked on anyone
    path = [me, target]
    node: int | None = target
    for _ in range(len(_waiting)):
        if node == me:
            _waiting.pop(me, None)
            chain = " -> ".join(describe(i) for i in path)
            raise DeadlockError(f"{what} would deadlock: {chain} (each waits for the next)")
        node = _waiting.get(node)  # type: ignore[arg-type]
        if node is None:
            return
        path.append(node)


def wait_ends() -> None:
    _waiting.pop(threading.get_ident(), None)


def forget_all() -> None:
    """After fork(): the threads of the parent's edges do not exist here."""
    _waiting.clear()
    _labels.clear()
