"""The engine under every face: one owner thread, one mailbox, one lifecycle.

Design notes
------------
The Python tutorial's advice for threads that share something is to
"concentrate all access to a resource in a single thread and then use the
queue module to feed that thread with requests from other threads".  This
module is that thread.  :class:`~threadkit.ResourceWorker` and
:class:`~threadkit.SerialExecutor` are thin faces over it: they choose the
words of their errors and whether the resource is passed to each request;
the loop, the mailbox, the put policy, the lifecycle and the settle path
are here, once.

*The lifecycle is a table.*  A core is in one :class:`State`; every change
of state is one :class:`Step` applied by :meth:`Core._step` under
``Core._state_lock``, looked up in :data:`TRANSITIONS`; a pair missing from
the table is a bug and raises.  Everything else (``accepting``,
``stopped``) is derived from the state::

    state      step        -> state      who, and what comes with it
    ---------  ----------     ---------  -------------------------------------------
    NEW        START       -> STARTING   start(): the owner thread is started
    NEW        SHUTDOWN    -> CLOSED     shutdown() before start(): nothing to close
    STARTING   OPENED      -> RUNNING    owner: the factory returned; accepting
    STARTING   SHUTDOWN    -> STOPPING   shutdown() while the factory runs
    STARTING   SWEPT       -> CLOSING    owner: the factory raised
    RUNNING    SHUTDOWN    -> STOPPING   shutdown(): the stop marker is queued
    STOPPING   OPENED      -> STOPPING   the factory returned after shutdown() began
    STOPPING   SHUTDOWN    -> STOPPING   a later shutdown(): nothing new
    STOPPING   SWEPT       -> CLOSING    owner: took its final sweep (or the factory raised)
    CLOSING    SHUTDOWN    -> CLOSING
    CLOSING    FINISHED    -> CLOSED     owner: close(resource) has run; the thread ends
    CLOSED     SHUTDOWN    -> CLOSED
    any        FORKED      -> CLOSED     in a child made by fork(): no owner thread here

Requests are accepted in RUNNING (and in STARTING by a face that accepts
them before the resource is open: executors).  The owner thread takes no
request after SWEPT, so ``stopped`` is "CLOSING or CLOSED".

*Commit the state, then run user code.*  :meth:`Core.request_stop` makes
its whole decision under the state lock, marks the token cancelled, takes
the requests it is to cancel out of the mailbox and queues the stop marker
*before* any user callback (a done-callback, a token callback) runs: such a
callback may call ``shutdown()`` again, even with ``wait=True``, and must
find the marker already queued.  Every callback's ``BaseException`` is
raised after the last step, never instead of one.

*The submit path takes no lock.*  A request is a plain tuple put on a
:class:`queue.SimpleQueue` (unbounded: one C-level ``put``, atomic on every
build) or a :class:`queue.Queue` (bounded: producers wait on its
``not_full`` condition).  That leaves one race that
:class:`~concurrent.futures.ThreadPoolExecutor` closes with a lock taken by
every ``submit``: a producer that passed the "accepting?" check, then lost
the CPU while ``shutdown()`` ran to completion, puts its request into a
queue nobody reads.  We close it from the owner's side instead, so that
sixteen producers do not convoy on one lock (``nox -s bench``: the
"16 producers" row).  The owner thread applies SWEPT and drains the mailbox
one last time, both under ``_orphan_lock``.  A producer reads ``stopped``
*after* its put: if it is false, the put happened before the final drain
began, which will run (or cancel) the request; if it is true, the producer
:meth:`~Core.reclaim`\\ s its request under the same lock: still there means
it never ran and never will, and the producer raises instead of returning;
gone means the owner took it.  The argument needs only that one thread's
store is seen by another in program order for these two locations, which
CPython guarantees on free-threaded builds too (the state is an attribute
store; the queue's operations take its own lock).  Each request is thus
run or cancelled exactly once, or refused at the call; tests/test_races.py
and tests/test_shutdown.py force each interleaving of this argument.

*One settle path.*  Whatever a request's face (a future for ``submit``, a
:class:`CallSlot` for ``call``, nothing for ``post``), it is claimed once
(:func:`claim`), run by :func:`execute_all` and settled by :func:`settle`,
or cancelled by :func:`cancel`; the owner loop does the claim, and a
returned ``call()``'s settle, inline (their calls were a twentieth of a
``call()``), so those branches are written twice, side by side in this
module.  A ``BaseException`` from the request itself
is its outcome; one from a done-callback run in the owner thread goes to
the error hook, after the settling.  The frames that caught an exception
drop the request before they return, so an exception kept by a caller does
not keep the request, its future or the resource alive through a cycle
(``_WorkItem.run`` does the same in the standard library).

*The owner thread never holds the face.*  It holds a :class:`Core`; the
face the user sees may be garbage-collected while the thread runs, which
shuts it down gracefully.  At interpreter exit, live cores are drained
before non-daemon threads are joined, as :mod:`concurrent.futures` does.
"""

from __future__ import annotations

import enum
import functools
import inspect
import itertools
import logging
import os
import queue
import sys
import threading
import warnings
import weakref
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import CancelledError, Future, InvalidStateError
from dataclasses import dataclass
from types import (
    BuiltinFunctionType,
    CoroutineType,
    FunctionType,
    MappingProxyType,
    MethodDescriptorType,
    MethodType,
    MethodWrapperType,
    WrapperDescriptorType,
)
from typing import Any, Generic, TypeVar

from threadkit import _cancel, _waits
from threadkit._cancel import (
    _W_CANCELLED,
    CancelToken,
    _cancellable,
    _check_timeout,
    _Gate,
    _shielded,
)
from threadkit._errors import BatchError, Cancelled, DeadlockError, MailboxFull, WorkerClosed
from threadkit._future import LazyFuture
from threadkit._waits import edges

__all__ = ["Core", "Face", "State", "Step", "WorkerSnapshot", "worker_snapshots"]

logger = logging.getLogger("threadkit")

R = TypeVar("R")

ErrorHook = Callable[[BaseException], object]


class State(enum.Enum):
    """Where a core is in its life (the value is what ``repr()`` shows)."""

    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "shutting down"
    CLOSING = "closing"
    CLOSED = "closed"

    # Members are singletons, so identity hashing agrees with equality; Enum's
    # own __hash__ is Python code, run for every lookup in TRANSITIONS.
    __hash__ = object.__hash__


class Step(enum.Enum):
    """What happens to a core; see the table in the module docstring."""

    START = "start"
    OPENED = "opened"
    SHUTDOWN = "shutdown"
    SWEPT = "swept"
    FINISHED = "finished"
    FORKED = "forked"

    __hash__ = object.__hash__  # as State's


_S, _E = State, Step
TRANSITIONS: Mapping[tuple[State, Step], State] = MappingProxyType(
    {
        (_S.NEW, _E.START): _S.STARTING,
        (_S.NEW, _E.SHUTDOWN): _S.CLOSED,
        (_S.STARTING, _E.OPENED): _S.RUNNING,
        (_S.STARTING, _E.SHUTDOWN): _S.STOPPING,
        (_S.STARTING, _E.SWEPT): _S.CLOSING,
        (_S.RUNNING, _E.SHUTDOWN): _S.STOPPING,
        (_S.STOPPING, _E.OPENED): _S.STOPPING,
        (_S.STOPPING, _E.SHUTDOWN): _S.STOPPING,
        (_S.STOPPING, _E.SWEPT): _S.CLOSING,
        (_S.CLOSING, _E.SHUTDOWN): _S.CLOSING,
        (_S.CLOSING, _E.FINISHED): _S.CLOSED,
        (_S.CLOSED, _E.SHUTDOWN): _S.CLOSED,
        **{(state, _E.FORKED): _S.CLOSED for state in State},
    }
)
del _S, _E

_STOPPED = frozenset({State.CLOSING, State.CLOSED})

# Locks held by no one's wait, each acquired once and not released: what a
# call() needs as its CallSlot's `done`.  A caller takes one (one atomic
# list.pop) and puts it back (list.append) only after its acquire returned,
# that is after the settler's one release: a lock here has no release
# pending, so its next acquire waits for the next settler.  A wait that
# raised (interrupted) drops its lock, as its release may still come.
# Allocating and acquiring a fresh lock was 1,600 instructions of a call()
# (callgrind), a tenth of it; the list holds at most as many locks as
# call()s ever waited at once.
_spare_locks: list[threading.Lock] = []

# The stop marker.  Requests are tuples, so None can never be mistaken for one.
_STOP = None

# Every core whose owner thread may still run, by id: added when it starts,
# removed by the owner thread as it ends.  A plain dict, not a WeakSet: a
# running core is alive anyway (its thread holds it), and dict.copy() is one
# atomic call, so a snapshot never meets "changed size during iteration".
_live: dict[int, Core[Any]] = {}
# See Core.join_owner().
_JOIN_LOSES_THREADS = sys.version_info < (3, 13)
_interpreter_exiting = False


@dataclass(frozen=True)
class WorkerSnapshot:
    """What :func:`threadkit.dump` shows of one worker (a copy, taken without locks)."""

    name: str
    state: str
    pending: int
    running: str | None
    owner_ident: int | None


def worker_snapshots() -> list[WorkerSnapshot]:
    """Snapshots of every live worker and executor, by name.  Never blocks, never raises."""
    shots = []
    for core in _live.copy().values():
        current = core.current
        mailbox = core.mailbox
        # Queue.qsize() takes the queue's mutex, which the interrupted thread
        # may hold; len() of its deque is one atomic call.
        queued = mailbox.qsize() if isinstance(mailbox, queue.SimpleQueue) else len(mailbox.queue)
        shots.append(
            WorkerSnapshot(
                name=core.name,
                state=core.state.value,
                pending=max(0, queued - (core.state is State.STOPPING)),
                running=None if current is None else f"{describe(current[1])}()",
                owner_ident=core.owner_ident,
            )
        )
    shots.sort(key=lambda s: s.name)
    return shots


class CallSlot:
    """The rendezvous of one ``call()``.

    ``done`` is held when the slot is made (a lock the caller holds, or a
    :class:`~threadkit._cancel._Gate` for a cancellable wait) and released
    by whoever settles the request, so the caller's acquire is the wait.
    ``claim`` holds one element: popping it (one atomic ``list.pop``) is the
    right to settle the request, so running and cancelling exclude each
    other.  ``settled`` is set before ``done`` is released: the waits-for
    graph calls the slot to read it, to know the wait is over.
    """

    # No __slots__: CPython 3.13 specialises the construction of a class
    # whose instances keep their attributes inline, and a slotted class's
    # __init__ took a sixth of the instructions of a call() (callgrind).
    # The outcome's fields default here, and only the settler stores them.
    result: Any = None
    exception: BaseException | None = None
    cancelled = False
    settled = False

    def __init__(self, done: threading.Lock | _Gate) -> None:
        self.done = done
        self.claim = [True]

    def __call__(self) -> bool:
        """Whether the request is settled: the slot is its own waits-for predicate.

        A bound method (``slot.is_settled``) made for every call() cost
        about 700 instructions (callgrind); the slot itself costs none.
        """
        return self.settled


class BoundedMailbox(queue.Queue[Any]):
    """A :class:`queue.Queue` whose bound the owner thread can lift."""

    def put_unbounded(self, item: Any) -> None:
        # The stop marker must never wait for room: shutdown() does not block
        # on a full mailbox.
        with self.not_full:
            self._put(item)
            self.unfinished_tasks += 1
            self.not_empty.notify()

    def unbound(self) -> None:
        # Once the owner thread has stopped, producers blocked on a full
        # mailbox must wake up, put, and find out (through reclaim) that
        # their request was refused; a bound would strand them forever.  Not
        # 0 ("unbounded" only to a put that has yet to begin): a put already
        # waiting re-checks qsize() >= maxsize, which 0 keeps true forever.
        with self.not_full:
            self.maxsize = sys.maxsize
            self.not_full.notify_all()


class Core(Generic[R]):
    """Everything the owner thread needs; the thread never references the face.

    A face fills in the hooks; :func:`_own` is the one loop that serves them all.
    """

    def __init__(
        self,
        name: str,
        open_: Callable[[], R],
        *,
        close: Callable[[R], object] | None = None,
        error_hook: ErrorHook | None = None,
        maxsize: int = 0,
        pass_resource: bool = True,
        accept_early: bool = False,
        begin_batch: Callable[[R], object] | None = None,
        end_batch: Callable[[R], object] | None = None,
        max_batch: int = 1,
        kind: str = "worker",
        refusal: Callable[[Core[Any], str], BaseException] | None = None,
    ) -> None:
        self.name = name
        # "worker" or "executor": the word errors and reports use.
        self.kind = kind
        self.open = open_
        self.close = close
        self.error_hook = error_hook
        self.pass_resource = pass_resource
        # Executors accept requests before the resource is open; they wait
        # in the mailbox, and fail if opening fails.
        self.accept_early = accept_early
        self.begin_batch = begin_batch
        self.end_batch = end_batch
        self.max_batch = max_batch
        self.refusal = refusal or _worker_refusal
        self.mailbox: queue.SimpleQueue[Any] | BoundedMailbox = (
            BoundedMailbox(maxsize) if maxsize else queue.SimpleQueue()
        )
        # _state_lock must be held whenever state, cancel_futures or
        # close_error_claimed change, and while close_error is decided; it is
        # never taken on the request path and never held while user code runs.
        self._state_lock = threading.Lock()
        self.state = State.NEW
        # Derived from the state by _step(), and only there.
        self.accepting = False
        # Whether the owner thread will never take another request (CLOSING or
        # CLOSED); producers read it after their put.
        self.stopped = False
        self.cancel_futures = False
        self.close_error_claimed = False
        self.close_error: BaseException | None = None
        self.thread: threading.Thread | None = None
        self.owner_ident: int | None = None
        # Set once start() has started the owner thread (or failed to).
        self.launched = threading.Event()
        # Set once the factory has returned or raised.
        self.started = threading.Event()
        # Set as the owner thread's last act (or when it failed to start):
        # see join_owner().
        self.exited = threading.Event()
        self.start_error: BaseException | None = None
        # Requests found in the queue after the owner stopped, keyed by id,
        # until the producer that put each one comes to reclaim it.
        self._orphan_lock = threading.Lock()
        self._orphans: dict[int, Any] = {}
        self.warn_if_collected = True
        self.forked = False
        # The request the owner thread is running (None when idle), read racily
        # by snapshots.  No start time: a clock read per request cost as much
        # as the rest of a post() in the owner thread ("post()" rows of nox -s bench).
        self.current: tuple[Any, ...] | None = None
        # What a worker's requests are called with, before their own arguments:
        # set by the owner thread before it accepts requests (OPENED, under
        # _state_lock), so a producer that saw `accepting` reads it; dropped
        # after close.  A producer that read None put its request after the
        # final sweep, so it reclaims it (module docstring): it never runs.
        self.resource: Any = None
        # The `what` of the waits-for edge of each call(), built once.
        self.call_what = f"call() on worker {name!r}"
        # Cancelled when shutdown begins; requests see it as current_token().
        self.token = CancelToken()
        # Held while a future of this core is published or its Condition is
        # created: see threadkit._future.
        self.future_lock = threading.Lock()

    # -- the lifecycle table ----------------------------------------------------

    def _step(self, step: Step) -> State:
        """Apply *step* (``_state_lock`` held); return the state it left."""
        before = self.state
        after = TRANSITIONS.get((before, step))
        if after is None:
            raise RuntimeError(
                f"threadkit bug: {self.kind} {self.name!r} cannot {step.value} when {before.value}"
            )
        self.state = after
        # Derived here, the one place the state changes, and stored rather
        # than computed by a property: every request reads them, and a
        # property call costs as much as the rest of a post() ("post()
        # fire-and-forget" in nox -s bench).  A reader without the lock may
        # see them a moment stale: a stale accepting=True only lets a racing
        # request reach put_accepted(), which settles it (module docstring).
        self.accepting = after is State.RUNNING or (after is State.STARTING and self.accept_early)
        self.stopped = after in _STOPPED
        return before

    @property
    def pending(self) -> int:
        n = self.mailbox.qsize()
        # The stop marker sits in the queue while STOPPING, and is not a request.
        return max(0, n - 1) if self.state is State.STOPPING else n

    # -- producer side ------------------------------------------------------------

    def refuse(self, what: str) -> BaseException:
        """The error for a request made while not accepting."""
        if self.forked:
            return WorkerClosed(
                f"cannot {what} {self.kind} {self.name!r} in a forked child process: its "
                f"owner thread exists only in the parent; create a new {self.kind} here"
            )
        return self.refusal(self, what)

    def put_accepted(self, put: Callable[[Any], None], item: tuple[Any, ...], what: str) -> None:
        """Put a request, then make sure it was really accepted (module docstring)."""
        put(item)
        if self.stopped:
            self.reclaim(item, what)
        elif self.cancel_futures and item[0] is not None:
            # We passed the "accepting" check before shutdown(cancel_futures=True)
            # began, but its drain may have missed our request (put after it):
            # cancel it ourselves, unless the owner thread has started it.  A
            # post() has no handle to cancel by: it runs (documented).
            cancel(item)

    def reclaim(self, item: tuple[Any, ...], what: str) -> None:
        """Settle a request put after the owner thread may have stopped.

        Raises:
            BaseException: The refusal error, if the request never ran (and now never will).
        """
        with self._orphan_lock:
            orphans = self._orphans
            while True:
                try:
                    other = self.mailbox.get_nowait()
                except queue.Empty:
                    break
                orphans[id(other)] = other
            if orphans.pop(id(item), None) is None:
                return  # the owner thread took it during its final drain
        raise self.refuse(what)

    def put_stop(self) -> None:
        if isinstance(self.mailbox, BoundedMailbox):
            self.mailbox.put_unbounded(_STOP)
        else:
            self.mailbox.put(_STOP)

    def take_queued(self, *, keep_stop: bool = True) -> list[tuple[Any, ...]]:
        """Take every queued request out of the mailbox, in order.

        With *keep_stop*, a stop marker met on the way is queued again; no
        user code runs in between, so nothing can be waiting for it then.
        """
        items: list[tuple[Any, ...]] = []
        saw_stop = False
        mailbox = self.mailbox
        # empty() first: it ends the common case without raising queue.Empty
        # (a shutdown's critical path); a racing taker may still empty it.
        while not mailbox.empty():
            try:
                item = mailbox.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                saw_stop = True
            else:
                items.append(item)
        if saw_stop and keep_stop:
            self.put_stop()
        return items

    # -- lifecycle ------------------------------------------------------------------

    def start(self, thread_name: str, face: object) -> None:
        """Apply START: create and start the owner thread (the caller waits for ``started``).

        Raises:
            RuntimeError: Not NEW, or the interpreter is shutting down.
        """
        with self._state_lock:
            if self.state is not State.NEW:
                raise RuntimeError(f"worker {self.name!r} can only be started once")
            if _interpreter_exiting:
                raise RuntimeError("cannot start a worker after interpreter shutdown")
            self._step(Step.START)
            thread = threading.Thread(target=_run, args=(self,), name=thread_name)
            self.thread = thread
            self._face_ref = weakref.ref(face, self.face_collected)
            _live[id(self)] = self
        # Started outside the lock, so that the new thread runs through the
        # factory while this one waits in Thread.start().  A shutdown() racing
        # this start() waits for `launched` before it joins the thread.
        try:
            thread.start()
        except BaseException as exc:  # no owner thread: close the core, then re-raise
            self.start_error = exc
            _live.pop(id(self), None)
            with self._state_lock:
                self._step(Step.SWEPT)
                self._step(Step.FINISHED)
            self.started.set()
            raise
        finally:
            self.launched.set()

    def join_owner(self) -> None:
        """Wait until the owner thread has exited (never called in it)."""
        thread = self.thread
        assert thread is not None
        if _JOIN_LOSES_THREADS:
            # On Python 3.11 and 3.12, a signal handler's exception (Ctrl-C)
            # that interrupts Thread.join() makes it release the thread's lock
            # while the thread lives on (CPython gh-90882): the thread then
            # counts as stopped, and the interpreter's exit no longer waits
            # for it.  An interrupted Event.wait() changes nothing; the join
            # after it waits only for the bytecodes after `exited` is set.
            # Not on 3.13+, whose join is immune and where the event's extra
            # wake-up was a sixth of an idle shutdown(wait=True) (nox -s bench).
            self.exited.wait()
        thread.join()

    def request_stop(self, *, cancel_futures: bool, waits: bool) -> bool:
        """Apply SHUTDOWN; return whether the caller, if it *waits*, is owed close's error.

        Only a call that began before the owner thread finished is: a later
        one returns quietly, so the error is raised once, not by every call.

        Commits every decision before running user code (module docstring).

        Raises:
            BaseException: The first one raised by a done-callback of a
                cancelled future or by a token callback, after all of them ran.
        """
        with self._state_lock:
            before = self._step(Step.SHUTDOWN)
            if before is State.CLOSED or self.thread is None:
                return False
            first = before in (State.STARTING, State.RUNNING)
            if cancel_futures:
                self.cancel_futures = True
            if waits:
                self.close_error_claimed = True
        # No user code until the marker is queued.
        reason = f"{self.kind} {self.name!r} is shutting down"
        work = self.token._begin_cancel(reason) if first else None
        doomed = self.take_queued() if cancel_futures else []
        if first:
            self.put_stop()
        # User code: each step still happens if one raises.
        interrupt: BaseException | None = None
        for item in doomed:
            try:
                cancel(item)
            except BaseException as exc:  # routed: raised after the rest are cancelled
                interrupt = interrupt or exc
        del doomed
        if work:  # callbacks to run (None: cancelled before; []: none registered)
            try:
                self.token._finish_cancel(work)
            except BaseException as exc:  # routed: raised below
                interrupt = interrupt or exc
        if interrupt is not None:
            try:
                raise interrupt
            finally:
                interrupt = None
        return waits

    def opened(self) -> None:
        with self._state_lock:
            self._step(Step.OPENED)
        self.started.set()

    def final_sweep(self) -> list[tuple[Any, ...]]:
        """Apply SWEPT and take what is left in the queue, in order (owner thread only).

        Both happen under ``_orphan_lock``: reclaim() sweeps the queue too, and
        a sweep that ran first would carry off requests put *before* the
        owner stopped, whose producers returned them as accepted and never
        come back for them (lost: neither run nor cancelled).  The caller
        settles the requests outside the lock, as one of them may wait for a
        producer that is about to reclaim.
        """
        with self._orphan_lock:
            with self._state_lock:
                self._step(Step.SWEPT)
            return self.take_queued(keep_stop=False)

    def finished(self) -> None:
        with self._state_lock:
            self._step(Step.FINISHED)

    def report(self, exc: BaseException, where: str) -> None:
        """Route an error that has no caller to the error hook (never raises)."""
        exc.add_note(f"(raised by {where} in threadkit {self.kind} {self.name!r})")
        hook = self.error_hook
        if hook is None:
            logger.error("error in threadkit %s %r", self.kind, self.name, exc_info=exc)
            return
        try:
            hook(exc)
        except BaseException as hook_exc:  # routed: the hook must not kill the owner thread
            logger.error(
                "error hook of threadkit %s %r raised while reporting %r",
                self.kind,
                self.name,
                exc,
                exc_info=hook_exc,
            )

    def close_resource(self, resource: R) -> None:
        close = self.close
        if close is None:
            return
        try:
            # Not cancellable: shutdown has cancelled the token already, and
            # close must still run to its end.
            with _shielded():
                close(resource)
        except BaseException as exc:  # routed to shutdown(wait=True) or the hook
            with self._state_lock:
                claimed = self.close_error_claimed
                if claimed:
                    self.close_error = exc
            if not claimed:
                self.report(exc, "close()")

    def face_collected(self, _ref: object) -> None:
        if self.accepting:
            # Stop first, warn second: under -W error the warning raises (and
            # is only printed, from a weakref callback); the worker must still
            # be shut down, or its thread would run until interpreter exit.
            self.request_stop(cancel_futures=False, waits=False)
            if self.warn_if_collected:
                warnings.warn(
                    f"threadkit worker {self.name!r} was garbage-collected without "
                    "shutdown(); shutting it down now",
                    ResourceWarning,
                    stacklevel=1,
                )


def _worker_refusal(core: Core[Any], what: str) -> BaseException:
    if core.state is State.NEW:
        return WorkerClosed(
            f"cannot {what} worker {core.name!r} before start(); "
            "call start() or use the worker in a with block"
        )
    if core.start_error is not None:
        err = WorkerClosed(f"cannot {what} worker {core.name!r}: its factory failed")
        err.__cause__ = core.start_error
        return err
    return WorkerClosed(f"cannot {what} worker {core.name!r} after shutdown")


# -- the settle path ------------------------------------------------------------------
#
# A request is a tuple (tag, fn, *args), run as fn(*args): a worker's
# producer puts the resource first in args (Core.resource), and keyword
# arguments are bound into fn (WithKwargs), so the owner thread calls each
# request with one slice of its tuple, never building a list or a dict
# ("post()" rows of nox -s bench).  The tag says who waits for it:
# None for post(), a CallSlot for call(), a Future for submit().  claim takes
# the right to run it (False: it was cancelled first); settle hands over the
# outcome.  Batching only moves settle after end_batch.


class WithKwargs(functools.partial[Any]):
    """A request's function with its keyword arguments bound (only when it has some)."""

    __slots__ = ()


def request(
    core: Core[Any], tag: Any, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Any, ...]:
    """The request tuple for ``fn(*args, **kwargs)`` (a worker's resource first)."""
    if kwargs:
        fn = WithKwargs(fn, **kwargs)
    # Concatenation, not (tag, fn, *args): that builds a list first.
    if core.pass_resource:
        return (tag, fn, core.resource) + args  # noqa: RUF005  (see above)
    return (tag, fn) + args  # noqa: RUF005


def _held_lock() -> threading.Lock:
    """A new lock, acquired: see _spare_locks."""
    lock = threading.Lock()
    lock.acquire()
    return lock


def _await_gate(gate: _Gate, token: CancelToken) -> None:
    with token.on_cancel(gate.cancel):
        outcome = gate.block(None)
    if outcome == _W_CANCELLED:
        raise Cancelled(token.reason)


def claim(tag: Any) -> bool:
    if tag is None:
        return True
    if type(tag) is CallSlot:
        try:
            tag.claim.pop()
        except IndexError:
            return False  # the caller gave up (interrupted) before it started
        return True
    return bool(tag.set_running_or_notify_cancel())


def settle(core: Core[Any], item: tuple[Any, ...], ok: bool, value: Any) -> None:
    tag = item[0]
    if tag is None:
        if not ok:
            core.report(value, f"post({describe(item[1])})")
    elif type(tag) is CallSlot:  # execute_all() repeats this branch for a call() that returned
        if ok:
            tag.result = value
        else:
            tag.exception = value
        tag.settled = True
        tag.done.release()
    else:
        try:
            if ok:
                tag.set_result(value)
            else:
                tag.set_exception(value)
        except InvalidStateError as exc:  # the future was resolved behind our back
            core.report(exc, f"settling the future of {describe(item[1])}")


def cancel(item: tuple[Any, ...]) -> None:
    """Cancel a request that has not started (nothing happens to one that has).

    Raises:
        BaseException: The first non-Exception raised by a done-callback of
            the future (all of them run); called in the owner thread, those
            go to the error hook instead (see threadkit._future).
    """
    tag = item[0]
    if tag is None:
        logger.debug("post(%s) cancelled by shutdown(cancel_futures=True)", describe(item[1]))
    elif type(tag) is CallSlot:
        if claim(tag):
            tag.cancelled = True
            tag.settled = True
            tag.done.release()
    else:
        tag.cancel_and_notify()


def fail(core: Core[Any], item: tuple[Any, ...], exc: BaseException) -> None:
    if claim(item[0]):
        settle(core, item, False, exc)


def describe(fn: object) -> str:
    if type(fn) is WithKwargs:
        fn = fn.func
    return getattr(fn, "__qualname__", None) or repr(fn)


def execute_all(core: Core[Any], get: Callable[[], Any]) -> None:
    """Run the requests *get* returns, in order, until the stop marker (owner thread).

    The one place a request runs, but for group commit (execute_batch): it
    is claimed, run and settled here.  The loop is this function, rather
    than a call per request, because that call was a fifth of a post()'s
    cost in the owner thread ("post()" rows of nox -s bench).
    """
    while True:
        item = get()
        if item is _STOP:
            # The traceback of an exception a caller keeps holds this frame;
            # in the final sweep *get* is a generator holding the swept
            # requests, and through them that exception (a cycle).
            del get
            return
        # What runs now, for threadkit.dump().
        core.current = item
        tag = item[0]
        # A post() (tag None) has nothing to claim: the fire-and-forget path.
        # A call()'s slot is claimed (and below, settled) here rather than
        # through claim() and settle(), whose calls were about 1,000 of a
        # call()'s 18,700 instructions (callgrind); a submit()'s future is
        # claimed here too, or the test for a slot would cost it 400.
        if tag is not None:
            if type(tag) is CallSlot:
                try:
                    tag.claim.pop()
                except IndexError:  # the caller gave up (interrupted) before it started
                    core.current = item = tag = None
                    continue
            elif not tag.set_running_or_notify_cancel():  # a future: claim()'s last branch
                core.current = item = tag = None
                continue
        try:
            # The same call at every arity; the two commonest (a worker's
            # request with the resource and none or one argument) without
            # the slice, which was a tenth of a post() in the owner thread.
            n = len(item)
            if n == 3:
                value = item[1](item[2])
            elif n == 4:
                value = item[1](item[2], item[3])
            else:
                value = item[1](*item[2:])
        except BaseException as exc:  # delivered to whoever waits (or the error hook)
            if (
                core.pass_resource
                and type(exc) is TypeError
                # Raised here, so it has a traceback (ignore: mypy cannot know).
                and exc.__traceback__.tb_next is None  # type: ignore[union-attr]
            ):
                note_resource_first(exc, item)
            try:
                settle(core, item, False, exc)
            finally:
                # Break the cycle an exception makes: exc -> its traceback
                # -> this frame -> item -> the future -> exc.  The caller
                # may keep the exception; it must not keep the request.
                core.current = item = tag = None
            continue
        if tag is not None:
            if type(tag) is CallSlot:
                # settle()'s branch for a slot, which it keeps for failures
                # and batches: settled before the release wakes the caller.
                tag.result = value
                tag.settled = True
                tag.done.release()
            else:
                settle(core, item, True, value)
        # Drop the request before blocking again: it holds the future, and
        # through it the result, which the caller may want freed.
        core.current = item = tag = value = None


def _late_requests(core: Core[Any], late: list[tuple[Any, ...]]) -> Iterator[Any]:
    """The requests of the final sweep, for execute_all(); cancelled instead once asked to."""
    for item in late:
        # Asked per request: a shutdown(cancel_futures=True) may come while they run.
        if core.cancel_futures:
            cancel(item)
        else:
            yield item
    yield _STOP


def execute_batch(core: Core[Any], resource: Any, batch: list[tuple[Any, ...]]) -> None:
    """Run a batch between begin_batch and end_batch; settle only after end_batch."""
    batch = [item for item in batch if claim(item[0])]
    if not batch:
        return
    stage = "begin_batch()"
    outcomes: list[tuple[tuple[Any, ...], bool, Any]] = []
    try:
        if core.begin_batch is not None:
            core.begin_batch(resource)
        stage = "end_batch()"
        for item in batch:
            try:
                outcomes.append((item, True, item[1](*item[2:])))
            except BaseException as exc:  # fails this request only
                if (
                    core.pass_resource
                    and type(exc) is TypeError
                    and exc.__traceback__.tb_next is None  # type: ignore[union-attr]  # as in execute_all()
                ):
                    note_resource_first(exc, item)
                outcomes.append((item, False, exc))
        if core.end_batch is not None:
            core.end_batch(resource)
    except BaseException as hook_exc:  # the batch failed: so does every request in it
        done = {id(item) for item, _, _ in outcomes}
        outcomes = [
            (i, False, v if not ok else batch_error(core, stage, hook_exc)) for i, ok, v in outcomes
        ]
        outcomes += [
            (i, False, batch_error(core, stage, hook_exc)) for i in batch if id(i) not in done
        ]
    try:
        for item, ok, value in outcomes:
            settle(core, item, ok, value)
    finally:
        # As in execute_all(): the exceptions' tracebacks hold this frame.
        outcomes = batch = item = value = resource = None  # type: ignore[assignment]


def batch_error(core: Core[Any], stage: str, cause: BaseException) -> BatchError:
    err = BatchError(f"{stage} of worker {core.name!r} failed: {cause!r}")
    err.__cause__ = cause
    return err


# -- the owner thread -------------------------------------------------------------------


def _run(core: Core[Any]) -> None:
    """The owner thread's target: everything it runs sees the core's token."""
    core.owner_ident = threading.get_ident()
    _waits.register_owner(f"{core.kind} {core.name!r}")
    # current_token() is the core's token for the thread's whole life.  Set
    # directly rather than with _bind_token(): a new thread has no token to
    # restore, its thread-local binding ends with it, and the context
    # manager's generator was measurable in an idle shutdown(wait=True).
    _cancel._local.token = core.token
    try:
        _own(core)
    finally:
        _waits.forget_owner()
        # Thread idents are recycled: once this thread is gone, a new thread
        # may get its ident and must not be taken for the owner (call() would
        # raise DeadlockError instead of WorkerClosed).
        core.owner_ident = None
        _live.pop(id(core), None)
        core.exited.set()
        # The frames of this thread outlive it when an exception's traceback
        # holds one (a failed factory's, kept as start_error): they must not
        # hold the core, or core -> start_error -> traceback -> frame -> core.
        del core


def _own(core: Core[Any]) -> None:
    """Open, serve the mailbox in order, close."""
    opened, resource = _open(core.open)
    if not opened:
        core.start_error = resource
        del resource
        # Requests accepted while the resource was being opened (executors
        # accept them from construction) fail: they can never run.
        for item in core.final_sweep():
            fail(core, item, core.refuse("run a request on"))
        _stop_bounding(core)
        core.finished()
        core.started.set()
        del core  # as in _run()
        return
    if core.pass_resource:
        core.resource = resource
    core.opened()
    try:
        _serve(core, resource)
        # From here on no producer's put can go unnoticed: each one that reads
        # stopped == True reclaims its request (module docstring).
        late = core.final_sweep()
        _stop_bounding(core)
        if late:
            execute_all(core, _late_requests(core, late).__next__)
        del late
        core.close_resource(resource)
    finally:
        core.resource = None
        del resource
        _stop_bounding(core)
        core.finished()


def _open(factory: Callable[[], Any]) -> tuple[bool, Any]:
    """(True, the resource) or (False, what the factory raised).

    Caught here, in a frame that holds no core: the exception, kept as
    ``start_error`` and re-raised by start(), has this frame in its
    traceback, and a frame holding the core would make a cycle through it.
    """
    try:
        return True, factory()
    except BaseException as exc:  # re-raised by start() in the starting thread
        return False, exc


def _stop_bounding(core: Core[Any]) -> None:
    if isinstance(core.mailbox, BoundedMailbox):
        core.mailbox.unbound()


def _serve(core: Core[Any], resource: Any) -> None:
    """Take requests until the stop marker and run them.

    A request taken here has started, as one a ThreadPoolExecutor's worker
    has dequeued: shutdown(cancel_futures=True) cancels only what it takes
    out of the mailbox itself, before any user code runs, so a raising
    done-callback cannot leave the rest to run here.
    """
    get = core.mailbox.get
    get_nowait = core.mailbox.get_nowait
    if core.begin_batch is None and core.end_batch is None:
        execute_all(core, get)
        return
    max_batch = core.max_batch
    while True:
        item = get()
        batch = [item]
        # Group commit: take what is ready, never wait for more.
        while item is not _STOP and len(batch) < max_batch:
            try:
                item = get_nowait()
            except queue.Empty:
                break
            batch.append(item)
        stop = batch[-1] is _STOP
        if stop:
            batch.pop()
        if batch:
            core.current = batch[0]
            execute_batch(core, resource, batch)
        core.current = item = batch = None  # type: ignore[assignment]
        if stop:
            return


# -- the faces' shared half --------------------------------------------------------------


class Face:
    """What every face of the engine shares: requests, shutdown, introspection.

    Subclasses set ``_core`` and call :meth:`_bind_mailbox`.
    """

    _core: Core[Any]
    _put: Callable[[tuple[Any, ...]], None]
    _put_timeout: float | None

    def _bind_mailbox(self, put_timeout: float | None) -> None:
        self._put_timeout = put_timeout
        mailbox = self._core.mailbox
        self._put = self._put_bounded if isinstance(mailbox, BoundedMailbox) else mailbox.put

    def _submit(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Future[Any]:
        core = self._core
        if not core.accepting:
            raise core.refuse("submit to")
        check_function(fn, "submit()")
        future: LazyFuture[Any] = LazyFuture()
        future._core = core
        core.put_accepted(self._put, request(core, future, fn, args, kwargs), "submit to")
        return future

    def _call(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        core = self._core
        me = threading.get_ident()
        if me == core.owner_ident:
            raise DeadlockError(
                f"call() from the owner thread of worker {core.name!r} would wait for "
                "itself forever; call the function on the resource directly, or use submit()"
            )
        if not core.accepting:
            raise core.refuse("call")
        if type(fn) is not FunctionType or fn.__code__.co_flags & CO_ASYNC or fn.__dict__:
            # check_function()'s fast path, inlined: the call was a tenth of a call().
            check_function(fn, "call()")
        if kwargs:
            fn = WithKwargs(fn, **kwargs)
        token = _cancellable()
        if token is None:
            try:
                lock = _spare_locks.pop()
            except IndexError:
                lock = _held_lock()
            slot = CallSlot(lock)
        else:
            # Cancellable: the settler opens a gate that a cancel may open
            # first (a plain lock cannot be released by both).
            token.raise_if_cancelled()
            gate = _Gate()
            slot = CallSlot(gate)
        # Only workers have call(): the resource is always first.
        item = (slot, fn, core.resource) + args  # noqa: RUF005  (no list built)
        # _waits.wait_begins(), inlined (see _waits.edges): recorded before the
        # request is queued, so if it would close a cycle of workers waiting
        # for each other, nothing has been queued yet.  The owner thread is not
        # this one (checked above).
        target = core.owner_ident
        edges[me] = (target, slot)
        if target in edges:
            _waits.find_cycle(me, target, core.call_what)
        try:
            # Core.put_accepted(), inlined: the less runs between the put that
            # wakes the owner thread and the acquire that lets it take the GIL,
            # the fewer thread switches a round trip costs.
            self._put(item)
            if core.stopped:
                core.reclaim(item, "call")
            elif core.cancel_futures:
                cancel(item)
            try:
                if token is None:
                    lock.acquire()
                    _spare_locks.append(lock)
                else:
                    _await_gate(gate, token)
            except BaseException:  # interrupted or cancelled: withdraw if not started
                # Started already: it finishes in the owner thread and its
                # outcome is dropped.
                claim(slot)
                raise
        finally:
            edges.pop(me, None)  # _waits.wait_ends(), inlined
        if slot.cancelled:
            raise CancelledError(f"worker {core.name!r} was shut down before this call ran")
        exc = slot.exception
        if exc is not None:
            try:
                raise exc
            finally:
                # Break the cycle exc -> traceback -> this frame -> exc (the
                # slot holds it, and the request holds the slot).
                exc = slot = item = None  # type: ignore[assignment]
        return slot.result

    def _put_bounded(self, item: tuple[Any, ...]) -> None:
        core = self._core
        mailbox = core.mailbox
        assert isinstance(mailbox, BoundedMailbox)
        if threading.get_ident() == core.owner_ident:
            try:
                mailbox.put_nowait(item)
            except queue.Full:
                raise DeadlockError(
                    f"the owner thread of worker {core.name!r} cannot wait for room in "
                    "its own full mailbox"
                ) from None
            return
        try:
            mailbox.put(item, timeout=self._put_timeout)
        except queue.Full:
            raise MailboxFull(
                f"the mailbox of worker {core.name!r} stayed full "
                f"(maxsize={mailbox.maxsize}) for {self._put_timeout} s"
            ) from None

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop accepting requests, finish (or cancel) the queued ones, close the resource.

        Args:
            wait: If true, return only after *close* has run and the owner
                thread has exited.  Ignored in the owner thread itself, which
                cannot wait for its own end: there, shutdown only begins, and
                completes after the current request returns.
            cancel_futures: If true, cancel every request that has not started
                (their futures are cancelled; :meth:`~ResourceWorker.call`
                raises :class:`~concurrent.futures.CancelledError`;
                :meth:`~ResourceWorker.post` requests still queued are
                dropped; one posted while this shutdown begins may still run,
                having no handle to cancel it by).  The running request
                finishes.

        Raises:
            BaseException: With *wait*, whatever *close* raised, to each
                call that began before the owner thread finished (a later
                call returns quietly).  Also, without waiting, a
                ``BaseException`` (other than :class:`Exception`, which is
                logged) raised by a callback of the worker's
                :attr:`~threadkit.ResourceWorker.token` or by a done-callback
                of a future this call cancels, since those run in the calling
                thread; the shutdown goes on all the same.

        Shutdown is idempotent and may be called from many threads at once,
        and from any callback; each ``wait=True`` caller waits for the same
        end.  Calling it on a worker that was never started just closes it
        (there is no resource).
        """
        core = self._core
        waits = wait and threading.get_ident() != core.owner_ident and not core.forked
        owed = core.request_stop(cancel_futures=cancel_futures, waits=waits)
        thread = core.thread
        if not waits or thread is None:
            return  # not waiting, or never started: no thread to wait for
        # A start() racing this call may not have started the thread yet.
        if not core.launched.is_set():
            core.launched.wait()
        if thread.ident is not None:
            # No timeout: the wait is bounded by the request running now.
            core.join_owner()
        if owed and core.close_error is not None:
            raise core.close_error

    @property
    def name(self) -> str:
        """The worker's name (also its owner thread's name)."""
        return self._core.name

    @property
    def thread(self) -> threading.Thread | None:
        """The owner thread, or ``None`` before it is started."""
        return self._core.thread

    @property
    def token(self) -> CancelToken:
        """The worker's :class:`CancelToken`, cancelled when :meth:`shutdown` begins.

        Inside a request (and in the factory and *close*),
        :func:`threadkit.current_token` returns it, so a long request can
        check it and stop early.  Note that a graceful shutdown cancels it
        too: queued requests still run, and see it cancelled.
        """
        return self._core.token

    @property
    def pending(self) -> int:
        """The number of queued requests, approximately.

        Like :meth:`queue.Queue.qsize`, it is stale as soon as it is read: other
        threads add requests and the owner thread takes them concurrently.
        """
        return self._core.pending

    @property
    def running(self) -> bool:
        """Whether the owner thread is up, from a successful start until it exits."""
        return self._core.state in (State.RUNNING, State.STOPPING, State.CLOSING) and (
            self._core.start_error is None
        )

    @property
    def closed(self) -> bool:
        """Whether requests are refused for good, because shutdown began or the factory failed."""
        return self._core.state not in (State.NEW, State.STARTING, State.RUNNING)

    def __repr__(self) -> str:
        core = self._core
        return f"<{type(self).__name__} {core.name!r} {core.state.value}, {core.pending} pending>"


# -- argument checks shared by the faces ------------------------------------------------


def check_callable(value: object, what: str) -> None:
    """Refuse a hook or factory argument that is not a synchronous callable.

    Raises:
        TypeError: *value* is not callable, or is asynchronous (see
            :func:`check_function`); *what* names the argument.
    """
    if not callable(value) and not isinstance(value, CoroutineType):
        raise TypeError(f"{what} must be callable, got {type(value).__name__!r}")
    _check_sync(value, f"{what} must be")


# Flags of a code object whose call returns an awaitable or async iterator
# instead of running the body.  post() and call() test a plain function's
# flags and __dict__ themselves, and call check_function() for the rest.
CO_ASYNC = inspect.CO_COROUTINE | inspect.CO_ITERABLE_COROUTINE | inspect.CO_ASYNC_GENERATOR
# Callables implemented in C: never coroutine functions.
_C_CALLABLES = (BuiltinFunctionType, MethodDescriptorType, MethodWrapperType, WrapperDescriptorType)


def check_function(fn: object, what: str) -> None:
    """Refuse what a thread cannot run: a non-callable, a coroutine or an async callable.

    Called on every request (post() costs about a microsecond), so a plain
    function or a C function is let through by a type test and its code
    flags; everything else goes through :mod:`inspect`.  A plain function
    with attributes takes the slow path too: one of them may be the mark
    :func:`inspect.markcoroutinefunction` sets.

    Args:
        fn: The callable to run in a thread.
        what: The refusing call, as ``"submit()"``.

    Raises:
        TypeError: *fn* is not callable, or calling it would only make a
            coroutine (or an async iterator) that no thread would ever run.
    """
    kind = type(fn)
    if kind is FunctionType:
        if not fn.__code__.co_flags & CO_ASYNC and not fn.__dict__:  # type: ignore[attr-defined]  # FunctionType, tested above
            return
    elif kind in _C_CALLABLES:
        return
    if not callable(fn) and not isinstance(fn, CoroutineType):
        raise TypeError(f"{what} needs a callable, got {kind.__name__!r}")
    _check_sync(fn, f"{what} needs")


def _check_sync(fn: object, lead: str) -> None:
    """The slow half of :func:`check_function`: ask :mod:`inspect`."""
    if isinstance(fn, CoroutineType):
        fn.close()  # never to be awaited: spare the caller a second warning about it
        described = f"a coroutine object {fn.__qualname__!r}"
    else:
        target: Any = fn
        while isinstance(target, functools.partial):
            target = target.func
        if isinstance(target, MethodType):
            target = target.__func__
        if isinstance(target, type) or not callable(target):
            return
        if not isinstance(target, FunctionType) and not inspect.isroutine(target):
            # An instance: what runs is its class's __call__.
            target = type(target).__call__
        if inspect.isasyncgenfunction(target):
            described = f"async generator function {describe(target)!r}"
        elif inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(fn):
            described = f"coroutine function {describe(target)!r}"
        else:
            return
    raise TypeError(
        f"{lead} a synchronous callable, got {described}: it would not run in a thread; "
        "in an async function await it directly, or pass a function that runs it with "
        "asyncio.run() (asyncio.run_coroutine_threadsafe() for a loop in another thread)"
    )


def note_resource_first(exc: TypeError, item: tuple[Any, ...]) -> None:
    """Say so when a request failed because its function takes no resource.

    Called only for a :class:`TypeError` raised by the call itself (no frame
    of the function in its traceback), so the success path pays nothing.  The
    note is added only if the arguments bind without the resource and do not
    with it: a function written for an executor (``call(lambda: 42)``).
    """
    fn: Any = item[1]
    resource, args = item[2], item[3:]
    kwargs: Mapping[str, Any] = {}
    if type(fn) is WithKwargs:  # keyword arguments were bound into it: unbind them
        fn, kwargs = fn.func, fn.keywords
    try:
        signature = inspect.signature(fn)
    except Exception:  # no signature (some builtins), or a broken one: no note, never an error
        return
    try:
        signature.bind(resource, *args, **kwargs)
    except TypeError:
        pass
    else:
        return  # binds with the resource: the TypeError is about something else
    try:
        signature.bind(*args, **kwargs)
    except TypeError:
        return
    exc.add_note(
        "a worker passes its resource as the first argument, fn(resource, *args, **kwargs), "
        f"and {describe(fn)!r} takes no argument for it: write it as lambda resource: ..., "
        "or use a SerialExecutor for functions that take none"
    )


def check_name(name: object) -> None:
    if not isinstance(name, str):
        raise TypeError(f"name must be a str or None, got {type(name).__name__!r}")


def check_count(value: object, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, got {type(value).__name__!r}")
    if value < minimum:
        raise ValueError(f"{what} must be >= {minimum}, got {value}")
    return value


def check_put_timeout(put_timeout: object, maxsize: int) -> None:
    _check_timeout(put_timeout, "put_timeout")
    if put_timeout is not None and maxsize == 0:
        raise ValueError("put_timeout needs a bounded mailbox (maxsize > 0)")


def interpreter_exiting() -> bool:
    return _interpreter_exiting


_names = itertools.count(1)


def default_name(kind: str) -> str:
    return f"{kind}-{next(_names)}"


# -- process events ----------------------------------------------------------------------


def _after_fork_in_child() -> None:
    """Make every inherited core refuse requests: its owner thread did not fork."""
    cores = list(_live.copy().values())
    # The child has none of the parent's owner threads: nothing to drain or
    # join at exit (joining one that forked would join the current thread).
    _live.clear()
    for core in cores:
        # Another parent thread may have held these at fork time; the copies
        # would stay locked forever in the child.
        core._state_lock = threading.Lock()
        core._orphan_lock = threading.Lock()
        core.future_lock = threading.Lock()
        core.forked = True
        core.owner_ident = None
        core._step(Step.FORKED)
    _waits.forget_all()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _at_interpreter_exit() -> None:
    global _interpreter_exiting
    _interpreter_exiting = True
    cores = list(_live.copy().values())
    for core in cores:
        try:
            core.request_stop(cancel_futures=False, waits=False)
        except BaseException as exc:  # routed: a token callback's error must not leave
            # the other workers running (their queued requests would be lost).
            core.report(exc, "shutdown at interpreter exit")
    me = threading.current_thread()
    for core in cores:
        thread = core.thread
        if thread is not None and thread is not me and thread.ident is not None:
            core.join_owner()


threading._register_atexit(_at_interpreter_exit)  # type: ignore[attr-defined]  # run before threads are joined, as concurrent.futures.thread does
