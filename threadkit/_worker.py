"""ResourceWorker: one thread owns a resource; every other thread sends it requests.

Design notes
------------
The worker is the Python tutorial's advice made into a class: "concentrate all
access to a resource in a single thread and then use the queue module to feed
that thread with requests from other threads".

*The submit path takes no Python-level lock.*  A request is a plain tuple put
on a :class:`queue.SimpleQueue` (unbounded mailbox: a C-level deque with no
Python mutex to convoy on) or a :class:`queue.Queue` (bounded mailbox, where
blocking producers need its ``not_full`` condition).  That leaves one race
that :class:`~concurrent.futures.ThreadPoolExecutor` closes with a lock: a
producer that passed the "still accepting?" check, then lost the CPU while
``shutdown()`` ran to completion, puts its request into a queue nobody reads.
We close it from the other side.  After the owner thread has seen the stop
marker it sets ``_Core.stopped`` and drains the queue one last time.  A
producer reads ``stopped`` *after* its put: if it is false, the put happened
before the final drain began, so the request is run (or cancelled) there; if
it is true, the producer :meth:`_Core.reclaim`\\ s its request: still in the
queue means it never ran and never will, and the producer raises
:class:`WorkerClosed` instead of returning; gone means the owner took it.
Each request is thus run or cancelled exactly once, or refused at the call.

*One loop* (:func:`_run`) serves every face: :meth:`ResourceWorker.submit`
(a future), :meth:`~ResourceWorker.call` (a one-shot lock, the cheapest
round trip the interpreter has) and :meth:`~ResourceWorker.post` (no result
object at all).  The tag in front of each request says which.

*The owner thread never holds the face.*  It holds a :class:`_Core`; the
:class:`ResourceWorker` the user sees may be garbage-collected while the
thread runs, which shuts the worker down gracefully with a
:class:`ResourceWarning` (like an unclosed file).  At interpreter exit, live
workers are drained before non-daemon threads are joined, as
:mod:`concurrent.futures` does for its executors.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import queue
import sys
import threading
import warnings
import weakref
from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

from threadkit._errors import DeadlockError, MailboxFull, WorkerClosed
from threadkit._future import LazyFuture

__all__ = ["ResourceWorker"]

logger = logging.getLogger("threadkit")

R = TypeVar("R")
T = TypeVar("T")
P = ParamSpec("P")

ErrorHook = Callable[[BaseException], object]

# Lifecycle states, as shown by repr().
_NEW = "new"
_STARTING = "starting"
_RUNNING = "running"
_STOPPING = "shutting down"
_CLOSED = "closed"

# The stop marker.  Requests are tuples, so None can never be mistaken for one.
_STOP = None

_names = itertools.count(1)

# Every core whose thread may still run.  Weak, so that finished workers drop out.
_live_cores: weakref.WeakSet[_Core[Any]] = weakref.WeakSet()
_interpreter_exiting = False


class _CallSlot:
    """The rendezvous of one :meth:`ResourceWorker.call`.

    ``done`` is acquired by the caller before the request is queued and
    released by whoever settles the request, so the caller's second acquire
    is the wait.  ``claim`` holds one element: popping it (atomic) is the
    right to settle the request, so running and cancelling exclude each other.
    """

    __slots__ = ("cancelled", "claim", "done", "exception", "result")

    def __init__(self) -> None:
        self.done = threading.Lock()
        self.done.acquire()
        self.claim = [True]
        self.result: Any = None
        self.exception: BaseException | None = None
        self.cancelled = False


class _BoundedMailbox(queue.Queue[Any]):
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


class _Core(Generic[R]):
    """Everything the owner thread needs; the thread never references the face."""

    def __init__(
        self,
        name: str,
        open_: Callable[[], R],
        close: Callable[[R], object] | None,
        error_hook: ErrorHook | None,
        maxsize: int,
    ) -> None:
        self.name = name
        self.open = open_
        self.close = close
        self.error_hook = error_hook
        self.mailbox: queue.SimpleQueue[Any] | _BoundedMailbox = (
            _BoundedMailbox(maxsize) if maxsize else queue.SimpleQueue()
        )
        # _state_lock must be held whenever state, accepting, stop_requested,
        # cancel_futures or close_error_claimed change, and while close_error
        # is decided; it is never taken on the request path.
        self._state_lock = threading.Lock()
        self.state = _NEW
        # Read without the lock on every request: a bool store is atomic, and
        # a stale True only lets a racing request reach reclaim().
        self.accepting = False
        self.stop_requested = False
        self.cancel_futures = False
        # Set by the owner thread once it will never take another request.
        self.stopped = False
        self.thread: threading.Thread | None = None
        self.owner_ident: int | None = None
        self.started = threading.Event()
        self.finished = threading.Event()
        self.start_error: BaseException | None = None
        self.close_error_claimed = False
        self.close_error: BaseException | None = None
        # Requests found in the queue after the owner stopped, keyed by id,
        # until the producer that put each one comes to reclaim it.
        self._orphan_lock = threading.Lock()
        self._orphans: dict[int, Any] = {}
        self.face_ref: weakref.ref[ResourceWorker[R]] | None = None

    # -- producer side -------------------------------------------------------

    def refuse(self, what: str) -> WorkerClosed:
        if self.state == _NEW:
            return WorkerClosed(
                f"cannot {what} worker {self.name!r} before start(); "
                "call start() or use the worker in a with block"
            )
        if self.start_error is not None:
            return WorkerClosed(f"cannot {what} worker {self.name!r}: its factory failed")
        return WorkerClosed(f"cannot {what} worker {self.name!r} after shutdown")

    def reclaim(self, item: tuple[Any, ...]) -> None:
        """Settle a request put after the owner thread may have stopped.

        Raises WorkerClosed if the request never ran (and now never will).
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
                # The owner thread took it during its final drain.
                return
        raise WorkerClosed(f"cannot submit to worker {self.name!r} after shutdown")

    def put_stop(self) -> None:
        if isinstance(self.mailbox, _BoundedMailbox):
            self.mailbox.put_unbounded(_STOP)
        else:
            self.mailbox.put(_STOP)

    def cancel_queued(self) -> None:
        """Cancel every request still queued (shutdown with cancel_futures)."""
        saw_stop = False
        while True:
            try:
                item = self.mailbox.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                saw_stop = True
            else:
                _cancel(item)
        if saw_stop:
            # Taken by mistake while draining; the owner thread still needs it.
            self.put_stop()

    # -- lifecycle -------------------------------------------------------------

    def request_stop(self, *, cancel_futures: bool, claim_close_error: bool) -> bool:
        """Begin shutdown; return False if the worker never started."""
        with self._state_lock:
            self.accepting = False
            if self.state == _NEW:
                self.state = _CLOSED
                self.stopped = True
                self.finished.set()
            if self.thread is None:
                # Never started, now or by an earlier shutdown(): there is no
                # thread to wait for (and a second call must not look for one).
                self.stop_requested = True
                return False
            if cancel_futures:
                self.cancel_futures = True
            if claim_close_error:
                self.close_error_claimed = True
            # A worker whose factory failed is closed without ever having been
            # asked to stop: no owner thread is left to take a stop marker,
            # which would only sit in the mailbox (and in pending).
            put_stop = not self.stop_requested and self.state != _CLOSED
            self.stop_requested = True
            if self.state in (_STARTING, _RUNNING):
                self.state = _STOPPING
        if cancel_futures:
            self.cancel_queued()
        if put_stop:
            self.put_stop()
        return True

    def started_ok(self) -> None:
        with self._state_lock:
            # A shutdown() that arrived while the factory ran wins: the stop
            # marker is already queued and no request may be accepted.
            if not self.stop_requested:
                self.state = _RUNNING
                self.accepting = True
        self.started.set()

    def report(self, exc: BaseException, where: str) -> None:
        """Route an error that has no caller to the error hook (never raises)."""
        exc.add_note(f"(raised by {where} in threadkit worker {self.name!r})")
        hook = self.error_hook
        if hook is None:
            logger.error("error in threadkit worker %r", self.name, exc_info=exc)
            return
        try:
            hook(exc)
        except BaseException as hook_exc:  # routed: the hook must not kill the owner thread
            logger.error(
                "error hook of threadkit worker %r raised while reporting %r",
                self.name,
                exc,
                exc_info=hook_exc,
            )

    def close_resource(self, resource: R) -> None:
        close = self.close
        if close is not None:
            try:
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
            warnings.warn(
                f"threadkit worker {self.name!r} was garbage-collected without shutdown(); "
                "shutting it down now",
                ResourceWarning,
                stacklevel=1,
            )
            self.request_stop(cancel_futures=False, claim_close_error=False)


def _execute(core: _Core[Any], resource: Any, item: tuple[Any, ...]) -> None:
    tag, fn, kwargs = item[0], item[1], item[2]
    args = item[3:]
    if tag is None:  # post(): no result object; a failure goes to the hook
        try:
            if kwargs is None:
                fn(resource, *args)
            else:
                fn(resource, *args, **kwargs)
        except BaseException as exc:  # routed to the error hook
            core.report(exc, f"post({_describe(fn)})")
    elif type(tag) is _CallSlot:
        try:
            tag.claim.pop()
        except IndexError:
            return  # the caller gave up (interrupted) before it started
        try:
            tag.result = fn(resource, *args, **kwargs)
        except BaseException as exc:  # delivered to the caller of call()
            tag.exception = exc
        tag.done.release()
    else:
        if not tag.set_running_or_notify_cancel():
            return
        try:
            result = fn(resource, *args, **kwargs)
        except BaseException as exc:  # delivered to the future
            tag.set_exception(exc)
        else:
            tag.set_result(result)


def _cancel(item: tuple[Any, ...]) -> None:
    tag = item[0]
    if tag is None:
        logger.debug("post(%s) cancelled by shutdown(cancel_futures=True)", _describe(item[1]))
    elif type(tag) is _CallSlot:
        try:
            tag.claim.pop()
        except IndexError:
            return
        tag.cancelled = True
        tag.done.release()
    else:
        tag.cancel()


def _describe(fn: object) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


def _run(core: _Core[Any]) -> None:
    """The owner thread: open, serve the mailbox in order, close."""
    core.owner_ident = threading.get_ident()
    try:
        resource = core.open()
    except BaseException as exc:  # re-raised by start() in the starting thread
        core.start_error = exc
        core.stopped = True
        with core._state_lock:
            core.state = _CLOSED
            core.accepting = False
        # The ident is recycled once this thread exits (see the finally below).
        core.owner_ident = None
        core.started.set()
        core.finished.set()
        return
    core.started_ok()
    get = core.mailbox.get
    try:
        while True:
            item = get()
            if item is _STOP:
                break
            try:
                _execute(core, resource, item)
            except BaseException as exc:  # e.g. a user set_result() on our future
                core.report(exc, "threadkit itself")
            del item
        # From here on no producer's put can go unnoticed: each one that reads
        # stopped == True reclaims its request (see the module docstring).
        # stopped is set, and the queue swept, under _orphan_lock: reclaim()
        # sweeps the queue too, and a sweep that ran first would carry off
        # requests put *before* stopped was set, whose producers returned them
        # as accepted and never come back for them (lost: neither run nor
        # cancelled).  The requests run outside the lock, as one of them may
        # wait for a producer that is about to reclaim.
        last: list[Any] = []
        with core._orphan_lock:
            core.stopped = True
            while True:
                try:
                    last.append(core.mailbox.get_nowait())
                except queue.Empty:
                    break
        last.reverse()
        while last:
            item = last.pop()
            if item is _STOP:
                continue
            if core.cancel_futures:
                _cancel(item)
            else:
                try:
                    _execute(core, resource, item)
                except BaseException as exc:
                    core.report(exc, "threadkit itself")
            del item
        core.close_resource(resource)
    finally:
        del resource
        # Thread idents are recycled: once this thread is gone, a new thread
        # may get its ident and must not be taken for the owner (call() would
        # raise DeadlockError instead of WorkerClosed).
        core.owner_ident = None
        if isinstance(core.mailbox, _BoundedMailbox):
            core.mailbox.unbound()
        with core._state_lock:
            core.state = _CLOSED
        core.finished.set()


def _check_callable(value: object, what: str) -> None:
    if not callable(value):
        raise TypeError(f"{what} needs a callable, got {type(value).__name__!r}")


class ResourceWorker(Generic[R]):
    """Own a resource in one thread and serve requests for it from any thread.

    The *factory* runs in the owner thread when the worker starts, and its
    return value, the *resource*, is touched by that thread alone: each request
    ``fn(resource, *args, **kwargs)`` runs there, one at a time, in the order the
    requests were made.  That is what makes a ``sqlite3`` connection with its
    default ``check_same_thread=True``, a :class:`zipfile.ZipFile` or any client
    that is not thread-safe usable from many threads.

    Args:
        factory: Called with no arguments in the owner thread by :meth:`start`;
            returns the resource.  May be omitted by a subclass that overrides
            :meth:`open`.
        close: Called as ``close(resource)`` in the owner thread after the last
            request, exactly once.  A subclass may override :meth:`close` instead.
        name: The worker's name, also the owner thread's name.  Default
            ``"ResourceWorker-N"``.
        maxsize: Bound of the mailbox.  ``0`` (the default) is unbounded; with
            ``maxsize > 0`` a request made while *maxsize* requests are queued
            blocks until there is room (backpressure).
        put_timeout: With ``maxsize > 0``, the longest a request waits for room,
            in seconds, before it raises :class:`MailboxFull`.  ``None`` (the
            default) waits as long as it takes.
        error_hook: Called as ``error_hook(exc)`` in the owner thread with every
            error that has no caller to go to: the exception of a :meth:`post`
            request, and of *close* when nobody waits in ``shutdown(wait=True)``.
            The default logs it, with its traceback, at ``ERROR`` level through
            the ``"threadkit"`` :mod:`logging` logger.  If the hook itself raises,
            both errors are logged there; the worker goes on either way.

    Raises:
        TypeError: *factory*, *close* or *error_hook* is not callable, *name* is
            not a string, or *maxsize* / *put_timeout* is not a number.
        ValueError: *maxsize* or *put_timeout* is negative, *put_timeout* is
            nan or infinite, or *put_timeout* is given for an unbounded mailbox.

    **Guarantees.**

    1. *Order.*  Every request runs in the owner thread, one at a time, in FIFO
       order: if ``submit(a)`` returned before ``submit(b)`` was called, ``a``
       runs before ``b``.  Requests from one thread therefore run in that
       thread's order.  ``submit``, ``call`` and ``post`` share one queue.
    2. *Exactly once.*  A request the worker accepted (the call returned without
       raising) runs exactly once, or is cancelled: by ``Future.cancel()`` before
       it starts, or by ``shutdown(cancel_futures=True)``.  Never both, never
       neither.
    3. *Isolation.*  A request that raises fails only its own future (or call);
       the worker goes on with the next one.  This holds for every
       :class:`BaseException`, ``KeyboardInterrupt`` and ``SystemExit``
       included: they are delivered to whoever waits for that request (the
       caller of :meth:`call` re-raises them), or to the error hook for
       :meth:`post`, and never stop the worker.
    4. *Shutdown.*  Once :meth:`shutdown` begins, new requests raise
       :class:`WorkerClosed`.  Accepted requests all run (graceful, the default)
       or are cancelled (``cancel_futures=True``; the one already running
       finishes).  Then *close* runs exactly once, in the owner thread.
       ``shutdown(wait=True)`` returns after *close* has finished and the owner
       thread has exited.
    5. *No silent failure.*  :meth:`start` re-raises the factory's exception;
       the exception of *close* is raised by ``shutdown(wait=True)`` (to every
       caller waiting there) or, if nobody waits, goes to the error hook.
    6. *Interpreter exit.*  A worker still running when the main thread
       finishes is shut down gracefully before non-daemon threads are joined,
       as :class:`~concurrent.futures.ThreadPoolExecutor` does: its queued
       requests run, then *close*.  A worker that is garbage-collected without
       :meth:`shutdown` is shut down the same way and a :class:`ResourceWarning`
       is emitted.  (A subclass that overrides :meth:`open` or :meth:`close` is
       referenced by its own thread, so it lives until shutdown or exit.)
    7. *Backpressure.*  See *maxsize* and *put_timeout*.

    **Thread safety.**  Every method may be called from any thread, including
    the owner thread, except :meth:`call`, which raises :class:`DeadlockError`
    there (the request could only run after the call returned).  A
    ``Future.result()`` on a pending request, made from the owner thread,
    would wait forever in the same way: use :meth:`submit` without waiting, or
    call the function on the resource directly.

    **Waiting with a timeout.**  ``call`` has no timeout of its own (its keyword
    arguments belong to *fn*); ``worker.submit(fn, ...).result(timeout=5)`` is
    the same request with one.  When it times out the request stays queued:
    ``future.cancel()`` withdraws it if it has not started.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        factory: Callable[[], R] | None = None,
        *,
        close: Callable[[R], object] | None = None,
        name: str | None = None,
        maxsize: int = 0,
        put_timeout: float | None = None,
        error_hook: ErrorHook | None = None,
    ) -> None:
        if name is None:
            name = f"{type(self).__name__}-{next(_names)}"
        elif not isinstance(name, str):
            raise TypeError(f"name must be a str or None, got {type(name).__name__!r}")
        if isinstance(maxsize, bool) or not isinstance(maxsize, int):
            raise TypeError(f"maxsize must be an int, got {type(maxsize).__name__!r}")
        if maxsize < 0:
            raise ValueError(f"maxsize must be >= 0, got {maxsize}")
        if put_timeout is not None:
            if isinstance(put_timeout, bool) or not isinstance(put_timeout, int | float):
                raise TypeError(
                    f"put_timeout must be a number or None, got {type(put_timeout).__name__!r}"
                )
            # "not >=" also refuses nan, which no wait can use.
            if not put_timeout >= 0:
                raise ValueError(f"put_timeout must be >= 0, got {put_timeout}")
            # queue.Queue.put(timeout=inf) raises OverflowError once it has to
            # wait: refuse it here rather than at some later request.
            if put_timeout == math.inf:
                raise ValueError(
                    f"put_timeout must be finite (None waits without limit), got {put_timeout}"
                )
            if maxsize == 0:
                raise ValueError("put_timeout needs a bounded mailbox (maxsize > 0)")
        if error_hook is not None:
            _check_callable(error_hook, "error_hook")

        cls = type(self)
        open_: Callable[[], R]
        if cls.open is not ResourceWorker.open:
            open_ = self.open  # the subclass form; the thread then holds the face
        elif factory is None:
            raise TypeError(
                "ResourceWorker() needs a factory callable (or a subclass overriding open())"
            )
        else:
            _check_callable(factory, "factory")
            open_ = factory
        if cls.close is not ResourceWorker.close:
            close_fn: Callable[[R], object] | None = self.close
        else:
            if close is not None:
                _check_callable(close, "close")
            close_fn = close

        self._factory = factory
        self._close = close
        self._put_timeout = put_timeout
        self._core: _Core[R] = _Core(name, open_, close_fn, error_hook, maxsize)
        mailbox = self._core.mailbox
        self._put: Callable[[tuple[Any, ...]], None] = (
            self._put_bounded if isinstance(mailbox, _BoundedMailbox) else mailbox.put
        )

    # -- hooks for the subclass form -------------------------------------------

    def open(self) -> R:
        """Create the resource.  Runs in the owner thread, once, during :meth:`start`.

        The default calls the *factory*.  A subclass may override it instead of
        passing a factory, as one overrides :meth:`threading.Thread.run`.  If it
        raises, the worker never accepts a request and :meth:`start` re-raises
        the exception.
        """
        assert self._factory is not None
        return self._factory()

    def close(self, resource: R) -> None:
        """Release the resource.  Runs in the owner thread, once, after the last request.

        The default calls the *close* callable, if one was given.  A subclass
        may override it.  If it raises, the exception goes to the callers of
        ``shutdown(wait=True)``, or to the error hook if none waits; the owner
        thread exits either way.
        """
        if self._close is not None:
            self._close(resource)

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> ResourceWorker[R]:
        """Start the owner thread and wait until the resource exists.

        Returns:
            The worker itself, so that ``w = ResourceWorker(...).start()`` reads well.

        Raises:
            RuntimeError: The worker was started before, or the interpreter is
                shutting down.
            BaseException: Whatever the factory raised, re-raised here; the
                worker is then closed.
        """
        core = self._core
        with core._state_lock:
            if core.state != _NEW:
                raise RuntimeError(f"worker {core.name!r} can only be started once")
            if _interpreter_exiting:
                raise RuntimeError("cannot start a worker after interpreter shutdown")
            core.state = _STARTING
            thread = threading.Thread(target=_run, args=(core,), name=core.name)
            core.thread = thread
            core.face_ref = weakref.ref(self, core.face_collected)
            _live_cores.add(core)
        thread.start()
        core.started.wait()
        if core.start_error is not None:
            thread.join()
            raise core.start_error
        return self

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop accepting requests, finish (or cancel) the queued ones, close the resource.

        Args:
            wait: If true, return only after *close* has run and the owner
                thread has exited.  Ignored in the owner thread itself, which
                cannot wait for its own end: there, shutdown only begins, and
                completes after the current request returns.
            cancel_futures: If true, cancel every request that has not started
                (their futures are cancelled; :meth:`call` raises
                :class:`~concurrent.futures.CancelledError`; :meth:`post`
                requests are dropped).  The running request finishes.

        Raises:
            BaseException: With *wait*, whatever *close* raised.

        Shutdown is idempotent and may be called from many threads at once;
        each ``wait=True`` caller waits for the same end.  Calling it on a worker
        that was never started just closes it (there is no resource).
        """
        core = self._core
        in_owner = threading.get_ident() == core.owner_ident
        waits = wait and not in_owner
        if not core.request_stop(cancel_futures=cancel_futures, claim_close_error=waits):
            return
        if waits:
            core.finished.wait()
            assert core.thread is not None
            core.thread.join()
            if core.close_error is not None:
                raise core.close_error

    def __enter__(self) -> ResourceWorker[R]:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown(wait=True)

    # -- requests ------------------------------------------------------------------

    def submit(
        self, fn: Callable[Concatenate[R, P], T], /, *args: P.args, **kwargs: P.kwargs
    ) -> Future[T]:
        """Queue ``fn(resource, *args, **kwargs)`` and return its future at once.

        Returns:
            A :class:`concurrent.futures.Future` (a lighter subclass of it), so
            :func:`concurrent.futures.wait`, :func:`~concurrent.futures.as_completed`
            and :func:`asyncio.wrap_future` accept it.  It holds the return value
            or the exception of *fn*.

        Raises:
            TypeError: *fn* is not callable.
            WorkerClosed: The worker is not started, or shutdown has begun.
            MailboxFull: The bounded mailbox stayed full past *put_timeout*.
            DeadlockError: Called from the owner thread while its bounded
                mailbox is full (it would wait for itself).
        """
        core = self._core
        if not core.accepting:
            raise core.refuse("submit to")
        if not callable(fn):
            raise TypeError(f"submit() needs a callable, got {type(fn).__name__!r}")
        future: LazyFuture[T] = LazyFuture()
        item = (future, fn, kwargs, *args)
        self._put(item)
        if core.stopped:
            core.reclaim(item)
        return future

    def call(self, fn: Callable[Concatenate[R, P], T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(resource, *args, **kwargs)`` in the owner thread and return its result.

        Blocks until the request has run.  Its exception is re-raised here: the
        same object, with its traceback from the owner thread.  If the waiting
        thread is interrupted (``KeyboardInterrupt``) before the request
        started, the request is withdrawn; if it already started, it finishes.

        Raises:
            TypeError: *fn* is not callable.
            WorkerClosed: The worker is not started, or shutdown has begun.
            DeadlockError: Called from the owner thread.
            MailboxFull: The bounded mailbox stayed full past *put_timeout*.
            concurrent.futures.CancelledError: ``shutdown(cancel_futures=True)``
                cancelled the request before it started.
            BaseException: Whatever *fn* raised.
        """
        core = self._core
        if threading.get_ident() == core.owner_ident:
            raise DeadlockError(
                f"call() from the owner thread of worker {core.name!r} would wait for "
                "itself forever; call the function on the resource directly, or use submit()"
            )
        if not core.accepting:
            raise core.refuse("call")
        if not callable(fn):
            raise TypeError(f"call() needs a callable, got {type(fn).__name__!r}")
        slot = _CallSlot()
        item = (slot, fn, kwargs, *args)
        self._put(item)
        if core.stopped:
            core.reclaim(item)
        try:
            slot.done.acquire()
        except BaseException:  # interrupted while waiting: withdraw if not started
            with contextlib.suppress(IndexError):
                slot.claim.pop()
            raise
        if slot.cancelled:
            raise CancelledError(f"worker {core.name!r} was shut down before this call ran")
        exc = slot.exception
        if exc is not None:
            try:
                raise exc
            finally:
                # Break the cycle exc -> traceback -> this frame -> exc.
                exc = slot = None  # type: ignore[assignment]
        return slot.result  # type: ignore[no-any-return]

    def post(
        self, fn: Callable[Concatenate[R, P], object], /, *args: P.args, **kwargs: P.kwargs
    ) -> None:
        """Queue ``fn(resource, *args, **kwargs)`` and forget it.

        Nothing is returned and nothing can be waited for; the request costs
        no future.  If *fn* raises, the exception (with a note naming the
        request) goes to the worker's *error_hook*, by default the
        ``"threadkit"`` logger: never silently lost.

        Raises:
            TypeError: *fn* is not callable.
            WorkerClosed: The worker is not started, or shutdown has begun.
            MailboxFull: The bounded mailbox stayed full past *put_timeout*.
            DeadlockError: Called from the owner thread while its bounded
                mailbox is full.
        """
        core = self._core
        if not core.accepting:
            raise core.refuse("post to")
        if not callable(fn):
            raise TypeError(f"post() needs a callable, got {type(fn).__name__!r}")
        item = (None, fn, kwargs or None, *args)
        self._put(item)
        if core.stopped:
            core.reclaim(item)

    def _put_bounded(self, item: tuple[Any, ...]) -> None:
        core = self._core
        mailbox = core.mailbox
        assert isinstance(mailbox, _BoundedMailbox)
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

    # -- introspection -------------------------------------------------------------

    @property
    def name(self) -> str:
        """The worker's name (also its owner thread's name)."""
        return self._core.name

    @property
    def thread(self) -> threading.Thread | None:
        """The owner thread, or ``None`` before :meth:`start`."""
        return self._core.thread

    @property
    def pending(self) -> int:
        """The number of queued requests, approximately.

        Like :meth:`queue.Queue.qsize`, it is stale as soon as it is read: other
        threads add requests and the owner thread takes them concurrently.
        """
        core = self._core
        n = core.mailbox.qsize()
        # The stop marker sits in the queue too, and is not a request.
        return max(0, n - 1) if core.stop_requested and not core.stopped else n

    @property
    def running(self) -> bool:
        """True from the end of a successful :meth:`start` until the owner thread exits."""
        return self._core.state in (_RUNNING, _STOPPING)

    @property
    def closed(self) -> bool:
        """True once :meth:`shutdown` has begun (or the factory failed): requests are refused."""
        core = self._core
        return core.stop_requested or core.state == _CLOSED

    def __repr__(self) -> str:
        core = self._core
        return f"<{type(self).__name__} {core.name!r} {core.state}, {self.pending} pending>"


def _at_interpreter_exit() -> None:
    global _interpreter_exiting
    _interpreter_exiting = True
    cores = list(_live_cores)
    for core in cores:
        core.request_stop(cancel_futures=False, claim_close_error=False)
    for core in cores:
        if core.thread is not None and core.thread.ident is not None:
            core.thread.join()


threading._register_atexit(_at_interpreter_exit)  # type: ignore[attr-defined]  # run before threads are joined, as concurrent.futures.thread does
