"""Runtime checks for threadkit's locks: lock order, ownership, timeouts.

A deadlock is the worst failure a threaded program has: it does not fail, it
stops, and nothing says why.  Worse, most deadlocks need an unlucky
interleaving to happen at all, so a test suite can pass for years over code
that takes two locks in opposite orders in two places.  This module turns
those bugs into immediate errors in the run that *could* have deadlocked,
whatever the timing was.

.. rubric:: Prior art

*Linux lockdep* (Ingo Molnar, 2006) is the model.  It records, for every
acquisition made while other locks are held, an edge "held before acquired"
in a global graph of lock *classes*, and reports the acquisition that would
close a cycle, with the stack of the first acquisition of each edge.  It
proves, after the fact of one harmless run, that another interleaving would
have hung.  *Abseil's* ``Mutex`` does the same in user space
(``absl::SetMutexDeadlockDetectionMode``): a graph of mutex *instances*, kept
in a dynamically maintained topological order (Pearce and Kelly's algorithm)
so that an edge agreeing with the order costs little and one disagreeing
searches only the region it could disorder; it reports the stacks of the
acquisitions that made each edge, and forgets a mutex when it is destroyed.
Some research tools label each edge with its thread and ignore cycles made by
one thread alone, which cannot deadlock as the program stands.
Go's runtime and Java's ``ThreadMXBean.findDeadlocks`` detect only deadlocks
that have already happened (every goroutine asleep, a cycle among blocked
threads); useful for diagnosis, too late for a test suite.

.. rubric:: What threadkit does, and the trade-offs

*Instances, not classes.*  lockdep groups locks by the place they were
created, so that a million inode locks share one node; that finds more bugs
(two different inodes taken in opposite orders) but needs annotations to
silence the false ones (nested locks of one class).  Python programs have few
long-lived locks and no annotation culture, so threadkit, like Abseil, keys
the graph by lock object.  A lock that is garbage-collected leaves the graph
(a weak reference's callback queues it for removal), so a lock per request
does not make the graph grow without bound, and a new lock never inherits the
history of an old one that happened to have the same name.

*Checked at acquisition, before blocking.*  An acquisition of a checked lock
``L`` while this thread holds ``H1 .. Hn`` adds the edges ``Hi -> L``.  Each
new edge ``H -> L`` closes a cycle exactly when ``H`` is already reachable
from ``L``; a breadth-first search finds the shortest such path, and
:class:`~threadkit.LockOrderError` is raised at once, naming every lock of the
cycle and where each edge was first recorded (file, line, thread).  Cycles of
any length are found, not only pairs.  Edges are recorded before the thread
blocks, so the inverted order is caught even when this run's timing was
harmless.

*A breadth-first search, on new edges only.*  Simpler than Abseil's
incremental order, and as fast where it matters: after a program's first
moments almost every acquisition repeats an order already recorded, which
costs a dictionary lookup per held lock and takes no lock at all.

*One thread's cycle is still a cycle.*  Like lockdep, threadkit reports a
cycle even when a single thread recorded all of its edges: the code paths one
thread runs today, two threads run tomorrow, and a test suite is often
single-threaded where production is not.

*What is an edge.*  Re-entering an :class:`~threadkit.RLock` the thread
already holds is not an edge (it cannot wait).  A non-blocking
``acquire(blocking=False)`` adds no edge either: it cannot wait, and
"try-lock, and back off on failure" is the classic way to take locks against
the order.  The lock it took still counts as held for later acquisitions.
A timed ``acquire(timeout=...)`` is checked like a blocking one: a cycle of
timed waits ends in timeouts, which is a bug too.  Waiting on a
:class:`~threadkit.Condition` re-acquires its lock after the wait; that
re-acquisition adds no edge of its own, but :meth:`threadkit.Condition.wait`
checks up front that re-taking the lock while still holding every other lock
the thread holds keeps the order (waiting on ``cond`` while holding a lock
taken *after* ``cond``'s lock is a cycle).  Semaphores and events have no
owner (a semaphore released by another thread is its normal use), so they
take no part in the graph.

*Ownership.*  A checked lock knows the thread that holds it.  Releasing a
:class:`~threadkit.Lock` held by another thread raises
:class:`~threadkit.LockOwnershipError`; this forbids the standard library's
hand-off use of a lock as a binary semaphore, which is why it is checked
only with checks on (use a :class:`~threadkit.Semaphore` for hand-off).
Acquiring a non-reentrant lock the thread already holds, blocking and without
a timeout, would wait forever: it raises :class:`~threadkit.DeadlockError`.

*Timeouts with a story* are a per-lock option, ``raise_on_timeout=True``,
not a global setting: whether a timed-out acquisition is an error or an
expected answer is the design of the code that owns the lock.  Such a lock
raises :class:`~threadkit.LockTimeoutError` naming the holder and how long it
has held the lock; it records its holder even with checks off (at the cost of
a checked lock, without the graph).

*Cost.*  Checks are off by default, and a lock created with checks off binds
the methods of the underlying C lock to itself: ``acquire``, ``release`` and
``with`` run at the speed of :class:`threading.Lock`.  A lock created with
checks on binds Python methods that keep the owner, a per-thread stack of
held locks and the graph.  The choice is made when the lock is created and
never revisited: a lock may be held at the moment checks are switched on, and
a fast lock has no record of its holder to start from.  So :func:`enable`
affects locks created after it, and :func:`disable` leaves existing checked
locks checked until they are collected.  Enable checks before the program
creates its locks: with the environment variable ``THREADKIT_CHECKS=1``
(read when threadkit is imported), or with :func:`enable` at the top of a
test suite's ``conftest.py``.

*Not detected.*  Cycles through semaphores, events, queues, futures or
``Thread.join``, and locks of the :mod:`threading` module (threadkit cannot
see them).  Waits between threadkit's workers are a separate check.

.. rubric:: The registry

Every checked lock is registered here while it lives (weakly), together with
which thread holds it and which threads wait for it and since when, so that a
report of a hung program can say who holds what and who waits for whom.
"""

from __future__ import annotations

import itertools
import os
import sys
import threading
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple

from threadkit._errors import LockOrderError

__all__ = ["disable", "enable", "enabled"]

_enabled = os.environ.get("THREADKIT_CHECKS", "") not in ("", "0")


def enable() -> None:
    """Turn checks on for locks created from now on.

    Locks created before keep the mode they were created with; see the
    module documentation for why.  Equivalent to starting the program with
    the environment variable ``THREADKIT_CHECKS=1``.

    .. versionadded:: 0.1
    """
    global _enabled
    _enabled = True


def disable() -> None:
    """Turn checks off for locks created from now on.

    Checked locks that already exist stay checked until they are collected.

    .. versionadded:: 0.1
    """
    global _enabled
    _enabled = False


def enabled() -> bool:
    """Return whether locks created now are checked.

    .. versionadded:: 0.1
    """
    return _enabled


# -- the lock-order graph -----------------------------------------------------


class _Site(NamedTuple):
    """Where an edge of the graph was first recorded."""

    filename: str
    lineno: int
    thread: str

    def __str__(self) -> str:
        return f"{self.filename}:{self.lineno} in thread {self.thread!r}"


class _Node(NamedTuple):
    label: str
    ref: weakref.ref[Any]


# _graph_lock must be held whenever _out or _in change, and during a search of
# them.  It is a plain C lock: a checked lock here would check itself.  It is
# never held while user code runs or while a thread waits for a user's lock.
_graph_lock = threading.Lock()
# Outgoing edges: _out[a][b] is where "a held while b was acquired" was first
# seen.  _in is the reverse index, so that a collected lock leaves in O(degree).
_out: dict[int, dict[int, _Site]] = {}
_in: dict[int, set[int]] = {}
# Every live checked lock, by key.  Written without _graph_lock (single dict
# operations are atomic); an entry is removed only by _purge().
_nodes: dict[int, _Node] = {}
# Keys of collected locks, waiting for _purge().  A weakref callback may run in
# any thread at any allocation, even one made while _graph_lock is held by the
# same thread, so it must not take the lock: it only appends here.
_dead: list[int] = []
# Keys are never reused (ids are), so a stale key can never alias a new lock.
_keys = itertools.count(1)

# Thread ident -> (key of the checked lock it waits for, monotonic time the
# wait began).  Only threads blocked in acquire() of a checked lock are here.
_waiting: dict[int, tuple[int, float]] = {}

# _local.held: keys of the checked locks this thread holds, in acquisition
# order.  Only the thread itself reads or writes its list.
_local = threading.local()

_EMPTY: dict[int, _Site] = {}
_INTERNAL_FILES = {
    __file__,
    os.path.join(os.path.dirname(__file__), "_sync.py"),
    threading.__file__,
}


def _after_fork_in_child() -> None:
    # Only the forking thread survives a fork: a graph lock another thread held
    # would never be released, and the other threads' waits are gone.
    global _graph_lock
    _graph_lock = threading.Lock()
    _waiting.clear()


if hasattr(os, "register_at_fork"):  # pragma: no branch - POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _held() -> list[int]:
    try:
        held: list[int] = _local.held
    except AttributeError:
        held = _local.held = []
    return held


def _forget(key: int) -> Callable[[weakref.ref[Any]], None]:
    def collected(_ref: weakref.ref[Any]) -> None:
        _dead.append(key)

    return collected


def _register(lock: object, key: int, label: str) -> None:
    """Add ``lock`` to the registry; it leaves when it is garbage-collected."""
    _nodes[key] = _Node(label, weakref.ref(lock, _forget(key)))


def _purge() -> None:
    """Remove collected locks from the graph.  _graph_lock must be held."""
    while _dead:
        key = _dead.pop()
        _nodes.pop(key, None)
        for succ in _out.pop(key, _EMPTY):
            _in[succ].discard(key)
        for pred in _in.pop(key, ()):
            _out[pred].pop(key, None)


def _caller() -> tuple[str, int]:
    """The first frame outside threadkit's lock code and threading.py."""
    frame = sys._getframe(1)
    while frame.f_back is not None and frame.f_code.co_filename in _INTERNAL_FILES:
        frame = frame.f_back
    return frame.f_code.co_filename, frame.f_lineno


def _thread_name(ident: int) -> str:
    # Looked up rather than taken from threading.current_thread(), which would
    # create (and leak) a dummy Thread object in threads threading did not start.
    for thread in threading.enumerate():
        if thread.ident == ident:
            return thread.name
    return f"<thread {ident}>"


def _path(src: int, dst: int) -> list[int] | None:
    """The shortest path src -> ... -> dst in the graph, or None.

    _graph_lock must be held.
    """
    parent = {src: src}
    queue = deque([src])
    while queue:
        node = queue.popleft()
        for succ in _out.get(node, _EMPTY):
            if succ in parent:
                continue
            parent[succ] = node
            if succ == dst:
                path = [dst]
                while path[-1] != src:
                    path.append(parent[path[-1]])
                path.reverse()
                return path
            queue.append(succ)
    return None


def _label(key: int) -> str:
    node = _nodes.get(key)
    return node.label if node is not None else f"<collected lock #{key}>"


def _check_order(key: int, held: list[int]) -> None:
    """Record the edges ``h -> key`` for every ``h`` in ``held``.

    Raises LockOrderError, recording nothing, if one of them would close a
    cycle.  Called by the thread that owns ``held``, before it blocks; keys of
    collected locks are dropped from ``held`` on the way.
    """
    out = _out
    if all(h == key or key in out.get(h, _EMPTY) for h in held):
        return  # every edge already known: the common case takes no lock
    site: _Site | None = None
    cycle: tuple[int, list[int]] | None = None
    with _graph_lock:
        _purge()
        if key not in _nodes:
            return  # the lock was collected while a bound method survived it
        new = []
        for h in list(held):
            if h not in _nodes:
                held.remove(h)
                continue
            if h == key or key in out.get(h, _EMPTY):
                continue
            path = _path(key, h)
            if path is not None:
                cycle = (h, path)
                break
            new.append(h)
        if cycle is None and new:
            filename, lineno = _caller()
            site = _Site(filename, lineno, _thread_name(threading.get_ident()))
            for h in new:
                out.setdefault(h, {})[key] = site
            _in.setdefault(key, set()).update(new)
        if cycle is not None:
            h, path = cycle
            # Read the sites and labels while the graph cannot change.
            lines = [(_label(a), _label(b), out[a][b]) for a, b in itertools.pairwise(path)]
            head = (_label(h), _label(key))
    if cycle is not None:
        filename, lineno = _caller()
        here = _Site(filename, lineno, _thread_name(threading.get_ident()))
        text = [
            f"acquiring {head[1]} while holding {head[0]} would close a lock-order cycle:",
            f"  {head[0]} -> {head[1]}  (this acquisition, at {here})",
        ]
        text += [f"  {a} -> {b}  (first recorded at {s})" for a, b, s in lines]
        raise LockOrderError("\n".join(text))


# -- private views for tests and for a live report ----------------------------


def _edges() -> list[tuple[str, str, _Site]]:
    """Every edge of the graph among live locks: (held, acquired, first site)."""
    with _graph_lock:
        _purge()
        return [
            (_label(a), _label(b), site) for a, succ in _out.items() for b, site in succ.items()
        ]


def _graph_size() -> tuple[int, int]:
    """(nodes, edges) of the graph, after removing collected locks."""
    with _graph_lock:
        _purge()
        return len(_nodes), sum(len(succ) for succ in _out.values())


def _live_locks() -> list[Any]:
    """Every live checked lock (strong references, for the caller's moment)."""
    # dict.copy() is one atomic step: another thread registering a lock
    # cannot make it fail, as iterating the live dict could.
    return [lock for node in _nodes.copy().values() if (lock := node.ref()) is not None]


def _waiters() -> dict[int, tuple[Any, float]]:
    """Thread ident -> (checked lock it waits for, monotonic time the wait began)."""
    result = {}
    for ident, (key, since) in _waiting.copy().items():
        node = _nodes.get(key)
        lock = node.ref() if node is not None else None
        if lock is not None:
            result[ident] = (lock, since)
    return result
