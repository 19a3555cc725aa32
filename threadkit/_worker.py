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

import asyncio
import itertools
import logging
import math
import os
import queue
import sys
import threading
import warnings
import weakref
from collections.abc import Callable, Mapping
from concurrent.futures import CancelledError, Future, InvalidStateError
from time import monotonic
from types import MappingProxyType
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

from threadkit import _waits
from threadkit._cancel import CancelToken, _bind_token
from threadkit._errors import BatchError, DeadlockError, MailboxFull, WorkerClosed
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
    """Everything the owner thread needs; the thread never references the face.

    A face (:class:`ResourceWorker`, :class:`~threadkit.SerialExecutor`) fills
    in the hooks; :func:`_run` is the one loop that serves them all.
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
        begin_batch: Callable[[R], object] | None = None,
        end_batch: Callable[[R], object] | None = None,
        max_batch: int = 1,
    ) -> None:
        self.name = name
        self.open = open_
        self.close = close
        self.error_hook = error_hook
        self.pass_resource = pass_resource
        self.begin_batch = begin_batch
        self.end_batch = end_batch
        self.max_batch = max_batch
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
        self.start_error: BaseException | None = None
        self.close_error_claimed = False
        self.close_error: BaseException | None = None
        # Requests found in the queue after the owner stopped, keyed by id,
        # until the producer that put each one comes to reclaim it.
        self._orphan_lock = threading.Lock()
        self._orphans: dict[int, Any] = {}
        self.face_ref: weakref.ref[Any] | None = None
        self.warn_if_collected = True
        self.forked = False
        # The request the owner thread is running (None when idle) and the
        # time.monotonic() at which it started; read racily by dump().
        self.current: tuple[Any, ...] | None = None
        self.since = 0.0
        # Cancelled when shutdown begins; requests see it as current_token().
        self.token = CancelToken()
        # The error a request gets when the owner thread never opened the
        # resource (a face may replace it: executors raise BrokenExecutor).
        self.broken: Callable[[BaseException, str], BaseException] = self._broken_worker

    # -- producer side -------------------------------------------------------

    def refuse(self, what: str) -> BaseException:
        """The error for a request made while not accepting."""
        if self.forked:
            return WorkerClosed(
                f"cannot {what} worker {self.name!r} in a forked child process: "
                "its owner thread exists only in the parent; create a new worker here"
            )
        if self.state == _NEW:
            return WorkerClosed(
                f"cannot {what} worker {self.name!r} before start(); "
                "call start() or use the worker in a with block"
            )
        if self.start_error is not None:
            return self.broken(self.start_error, what)
        return WorkerClosed(f"cannot {what} worker {self.name!r} after shutdown")

    def _broken_worker(self, cause: BaseException, what: str) -> BaseException:
        err = WorkerClosed(f"cannot {what} worker {self.name!r}: its factory failed")
        err.__cause__ = cause
        return err

    def put_accepted(self, put: Callable[[Any], None], item: tuple[Any, ...], what: str) -> None:
        """Put a request, then make sure it was really accepted (see module docs)."""
        put(item)
        if self.stopped:
            self.reclaim(item, what)
        elif self.cancel_futures and item[0] is not None:
            # We passed the "accepting" check before shutdown(cancel_futures=True)
            # began, but its drain may have missed our request (put after it):
            # cancel it ourselves, unless the owner thread has started it.  A
            # post() has no handle to cancel by: it runs (documented).
            _cancel(item)

    def reclaim(self, item: tuple[Any, ...], what: str) -> None:
        """Settle a request put after the owner thread may have stopped.

        Raises the refusal error if the request never ran (and now never will).
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
        raise self.refuse(what)

    def put_stop(self) -> None:
        if isinstance(self.mailbox, _BoundedMailbox):
            self.mailbox.put_unbounded(_STOP)
        else:
            self.mailbox.put(_STOP)

    def drain(self, settle: Callable[[tuple[Any, ...]], None]) -> None:
        """Take every queued request and settle it; keep the stop marker queued."""
        saw_stop = False
        try:
            while True:
                try:
                    item = self.mailbox.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    saw_stop = True
                else:
                    settle(item)
        finally:
            # Even if settling raised (a done-callback's KeyboardInterrupt, in
            # the thread draining): the owner thread still needs the marker.
            if saw_stop:
                self.put_stop()

    # -- lifecycle -------------------------------------------------------------

    def begin(self, start: Callable[[], None], *, accept_now: bool = False) -> bool:
        """Move NEW -> STARTING and run *start* under the state lock; False if not NEW.

        With *accept_now*, requests are accepted before the resource is open
        (executors); they wait in the mailbox, and fail if opening fails.
        """
        with self._state_lock:
            if self.state != _NEW:
                return False
            if _interpreter_exiting:
                raise RuntimeError("cannot start a worker after interpreter shutdown")
            self.state = _STARTING
            start()
            self.accepting = accept_now
            _live_cores.add(self)
        return True

    def request_stop(self, *, cancel_futures: bool, claim_close_error: bool) -> bool:
        """Begin shutdown; return False if the owner thread never started."""
        with self._state_lock:
            self.accepting = False
            if self.state == _NEW:
                self.state = _CLOSED
                self.stopped = True
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
            first = not self.stop_requested
            put_stop = first and self.state != _CLOSED
            self.stop_requested = True
            if self.state in (_STARTING, _RUNNING):
                self.state = _STOPPING
        # Token callbacks and the futures' done-callbacks run in this thread,
        # and may raise a BaseException (cancel() re-raises those): each step
        # still happens, and above all the stop marker is queued, or the owner
        # thread would wait for it for ever.  The exception is raised after.
        try:
            if cancel_futures:
                # Before the token: cancelling it may end the running request,
                # and the owner thread would then start the next one first.
                self.drain(_cancel)
        finally:
            try:
                if first:
                    # A long request polling current_token() can stop early.
                    self.token.cancel(f"worker {self.name!r} is shutting down")
            finally:
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

    def final_sweep(self) -> list[tuple[Any, ...]]:
        """Set ``stopped`` and take what is left in the queue, in order (owner thread only).

        Both happen under ``_orphan_lock``: reclaim() sweeps the queue too, and
        a sweep that ran first would carry off requests put *before* stopped
        was set, whose producers returned them as accepted and never come back
        for them (lost: neither run nor cancelled).  The caller settles the
        requests outside the lock, as one of them may wait for a producer that
        is about to reclaim.
        """
        left: list[tuple[Any, ...]] = []
        with self._orphan_lock:
            self.stopped = True
            while True:
                try:
                    item = self.mailbox.get_nowait()
                except queue.Empty:
                    break
                if item is not _STOP:
                    left.append(item)
        return left

    def start_failed(self, exc: BaseException) -> None:
        self.start_error = exc
        with self._state_lock:
            self.state = _CLOSED
            self.accepting = False
        # Requests accepted while the resource was being opened (executors
        # accept them from construction) fail: they can never run.
        for item in self.final_sweep():
            _fail(self, item, self.broken(exc, "run a request on"))
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
            # Stop first, warn second: under -W error the warning raises (and
            # is only printed, from a weakref callback); the worker must still
            # be shut down, or its thread would run until interpreter exit.
            self.request_stop(cancel_futures=False, claim_close_error=False)
            if self.warn_if_collected:
                warnings.warn(
                    f"threadkit worker {self.name!r} was garbage-collected without "
                    "shutdown(); shutting it down now",
                    ResourceWarning,
                    stacklevel=1,
                )


# -- the owner thread ---------------------------------------------------------------
#
# A request is a tuple (tag, fn, kwargs, *args).  The tag says who waits for it:
# None for post(), a _CallSlot for call(), a Future for submit().  _claim takes
# the right to run it (False: it was cancelled first); _settle hands over the
# outcome.  Batching only moves _settle after end_batch.

_NO_KWARGS: Mapping[str, Any] = MappingProxyType({})


def _claim(tag: Any) -> bool:
    if tag is None:
        return True
    if type(tag) is _CallSlot:
        try:
            tag.claim.pop()
        except IndexError:
            return False  # the caller gave up (interrupted) before it started
        return True
    return bool(tag.set_running_or_notify_cancel())


def _settle(core: _Core[Any], item: tuple[Any, ...], ok: bool, value: Any) -> None:
    tag = item[0]
    if tag is None:
        if not ok:
            core.report(value, f"post({_describe(item[1])})")
    elif type(tag) is _CallSlot:
        if ok:
            tag.result = value
        else:
            tag.exception = value
        tag.done.release()
    else:
        try:
            if ok:
                tag.set_result(value)
            else:
                tag.set_exception(value)
        except InvalidStateError as exc:  # the future was resolved behind our back
            core.report(exc, f"settling the future of {_describe(item[1])}")


def _fail(core: _Core[Any], item: tuple[Any, ...], exc: BaseException) -> None:
    if _claim(item[0]):
        _settle(core, item, False, exc)


def _cancel(item: tuple[Any, ...]) -> None:
    tag = item[0]
    if tag is None:
        logger.debug("post(%s) cancelled by shutdown(cancel_futures=True)", _describe(item[1]))
    elif type(tag) is _CallSlot:
        if _claim(tag):
            tag.cancelled = True
            tag.done.release()
    elif tag.cancel():
        # cancel() alone leaves the future CANCELLED, which wait() and
        # as_completed() do not count as done until the executor "notices"
        # it; nobody else will, so notice it now.
        tag.set_running_or_notify_cancel()


def _describe(fn: object) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


def _execute(core: _Core[Any], pre: tuple[Any, ...], item: tuple[Any, ...]) -> None:
    if item[0] is None:  # post(): the hot fire-and-forget path, kept free of calls
        try:
            item[1](*pre, *item[3:], **item[2])
        except BaseException as exc:  # routed to the error hook
            core.report(exc, f"post({_describe(item[1])})")
        return
    tag = item[0]
    if type(tag) is _CallSlot:  # call(): the round trip, kept free of calls too
        try:
            tag.claim.pop()
        except IndexError:
            return  # the caller gave up (interrupted) before it started
        try:
            tag.result = item[1](*pre, *item[3:], **item[2])
        except BaseException as exc:  # delivered to the caller of call()
            tag.exception = exc
        tag.done.release()
        return
    if not _claim(tag):
        return
    try:
        result = item[1](*pre, *item[3:], **item[2])
    except BaseException as exc:  # delivered to whoever waits (or the error hook)
        _settle(core, item, False, exc)
    else:
        _settle(core, item, True, result)


def _execute_batch(
    core: _Core[Any], resource: Any, pre: tuple[Any, ...], batch: list[tuple[Any, ...]]
) -> None:
    """Run a batch between begin_batch and end_batch; settle only after end_batch."""
    batch = [item for item in batch if _claim(item[0])]
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
                outcomes.append((item, True, item[1](*pre, *item[3:], **item[2])))
            except BaseException as exc:  # fails this request only
                outcomes.append((item, False, exc))
        if core.end_batch is not None:
            core.end_batch(resource)
    except BaseException as hook_exc:  # the batch failed: so does every request in it
        done = {id(item) for item, _, _ in outcomes}
        outcomes = [
            (i, False, v if not ok else _batch_error(core, stage, hook_exc))
            for i, ok, v in outcomes
        ]
        outcomes += [
            (i, False, _batch_error(core, stage, hook_exc)) for i in batch if id(i) not in done
        ]
    for item, ok, value in outcomes:
        _settle(core, item, ok, value)


def _batch_error(core: _Core[Any], stage: str, cause: BaseException) -> BatchError:
    err = BatchError(f"{stage} of worker {core.name!r} failed: {cause!r}")
    err.__cause__ = cause
    return err


def _serve(
    core: _Core[Any], resource: Any, pre: tuple[Any, ...], items: list[tuple[Any, ...]]
) -> None:
    """Run (or, after shutdown(cancel_futures=True), cancel) requests in order."""
    if core.cancel_futures:
        for item in items:
            _cancel(item)
    elif core.begin_batch is None and core.end_batch is None:
        for item in items:
            _execute(core, pre, item)
    else:
        step = core.max_batch
        for i in range(0, len(items), step):
            _execute_batch(core, resource, pre, items[i : i + step])


def _run(core: _Core[Any]) -> None:
    """The owner thread's target: everything it runs sees the worker's token."""
    with _bind_token(core.token):
        _own(core)


def _own(core: _Core[Any]) -> None:
    """The owner thread: open, serve the mailbox in order, close."""
    core.owner_ident = threading.get_ident()
    _waits.register_owner(f"worker {core.name!r}")
    try:
        _serve_mailbox(core)
    finally:
        _waits.forget_owner()
        # Thread idents are recycled: once this thread is gone, a new thread
        # may get its ident and must not be taken for the owner (call() would
        # raise DeadlockError instead of WorkerClosed).
        core.owner_ident = None


def _serve_mailbox(core: _Core[Any]) -> None:
    try:
        resource = core.open()
    except BaseException as exc:  # re-raised by start() in the starting thread
        core.start_failed(exc)
        return
    pre = (resource,) if core.pass_resource else ()
    core.started_ok()
    get = core.mailbox.get
    get_nowait = core.mailbox.get_nowait
    batching = core.begin_batch is not None or core.end_batch is not None
    max_batch = core.max_batch
    try:
        while True:
            item = get()
            if item is _STOP:
                break
            # What runs now and since when, for threadkit.dump().
            core.current = item
            core.since = monotonic()
            if not batching:
                if item[0] is None:  # post(), inlined for speed; see _execute
                    try:
                        item[1](*pre, *item[3:], **item[2])
                    except BaseException as exc:  # routed to the error hook
                        core.report(exc, f"post({_describe(item[1])})")
                else:
                    _execute(core, pre, item)
                # Drop the request before blocking again: it holds the future,
                # and through it the result, which the caller may want freed.
                core.current = None
                del item
                continue
            # Group commit: take what is ready, never wait for more.
            batch = [item]
            while len(batch) < max_batch:
                try:
                    item = get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    break
                batch.append(item)
            stop = item is _STOP
            _execute_batch(core, resource, pre, batch)
            core.current = None
            del item, batch
            if stop:
                break
        # From here on no producer's put can go unnoticed: each one that reads
        # stopped == True reclaims its request (see the module docstring).
        late = core.final_sweep()
        _serve(core, resource, pre, late)
        del late
        core.close_resource(resource)
    finally:
        del resource
        if isinstance(core.mailbox, _BoundedMailbox):
            core.mailbox.unbound()
        with core._state_lock:
            core.state = _CLOSED


def _check_callable(value: object, what: str) -> None:
    if not callable(value):
        raise TypeError(f"{what} must be callable, got {type(value).__name__!r}")


def _check_name(name: object) -> None:
    if not isinstance(name, str):
        raise TypeError(f"name must be a str or None, got {type(name).__name__!r}")


def _check_count(value: object, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, got {type(value).__name__!r}")
    if value < minimum:
        raise ValueError(f"{what} must be >= {minimum}, got {value}")
    return value


def _check_put_timeout(put_timeout: object, maxsize: int) -> None:
    if put_timeout is None:
        return
    if isinstance(put_timeout, bool) or not isinstance(put_timeout, int | float):
        raise TypeError(f"put_timeout must be a number or None, got {type(put_timeout).__name__!r}")
    # "not >=" also refuses nan, which no wait can use.
    if not put_timeout >= 0:
        raise ValueError(f"put_timeout must be >= 0, got {put_timeout}")
    # queue.Queue.put(timeout=inf) raises OverflowError once it has to wait:
    # refuse it here rather than at some later request.
    if put_timeout == math.inf:
        raise ValueError(
            f"put_timeout must be finite (None waits without limit), got {put_timeout}"
        )
    if maxsize == 0:
        raise ValueError("put_timeout needs a bounded mailbox (maxsize > 0)")


def _interpreter_exiting_now() -> bool:
    return _interpreter_exiting


class _Face:
    """What every face of the owner loop shares: requests, shutdown, introspection.

    Subclasses set ``_core`` and call :meth:`_bind_mailbox`.
    """

    _core: _Core[Any]
    _put: Callable[[tuple[Any, ...]], None]
    _put_timeout: float | None

    def _bind_mailbox(self, put_timeout: float | None) -> None:
        self._put_timeout = put_timeout
        mailbox = self._core.mailbox
        self._put = self._put_bounded if isinstance(mailbox, _BoundedMailbox) else mailbox.put

    def _submit(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Future[Any]:
        core = self._core
        if not core.accepting:
            raise core.refuse("submit to")
        if not callable(fn):
            raise TypeError(f"submit() needs a callable, got {type(fn).__name__!r}")
        future: LazyFuture[Any] = LazyFuture()
        future._owner = core
        core.put_accepted(self._put, (future, fn, kwargs or _NO_KWARGS, *args), "submit to")
        return future

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
            BaseException: With *wait*, whatever *close* raised.  Also, at
                once and without waiting, a ``BaseException`` (other than
                :class:`Exception`, which is logged) raised by a callback of
                the worker's :attr:`~threadkit.ResourceWorker.token` or by a
                done-callback of a future this call cancels, since those run
                in the calling thread; the shutdown goes on all the same.

        Shutdown is idempotent and may be called from many threads at once;
        each ``wait=True`` caller waits for the same end.  Calling it on a
        worker that was never started just closes it (there is no resource).
        """
        core = self._core
        waits = wait and threading.get_ident() != core.owner_ident
        if not core.request_stop(cancel_futures=cancel_futures, claim_close_error=waits):
            return
        if waits:
            # No timeout: the wait is bounded by the request running now.  The
            # thread exits after close has run: joining it is one wake-up.
            assert core.thread is not None
            core.thread.join()
            if core.close_error is not None:
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
        core = self._core
        n = core.mailbox.qsize()
        # The stop marker sits in the queue too, and is not a request.
        return max(0, n - 1) if core.stop_requested and not core.stopped else n

    @property
    def running(self) -> bool:
        """Whether the owner thread is up, from a successful start until it exits."""
        return self._core.state in (_RUNNING, _STOPPING)

    @property
    def closed(self) -> bool:
        """Whether requests are refused for good, because shutdown began or the factory failed."""
        core = self._core
        return core.stop_requested or core.state == _CLOSED

    def __repr__(self) -> str:
        core = self._core
        return f"<{type(self).__name__} {core.name!r} {core.state}, {self.pending} pending>"


class ResourceWorker(_Face, Generic[R]):
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
            request, of *close* when nobody waits in ``shutdown(wait=True)``,
            and any ``BaseException`` that is not an :class:`Exception` (say
            ``SystemExit``) raised by a done-callback of one of the worker's
            futures run in the owner thread (an :class:`Exception` there is
            logged by the ``"concurrent.futures"`` logger, as the standard
            library does).
            The default logs it, with its traceback, at ``ERROR`` level through
            the ``"threadkit"`` :mod:`logging` logger.  If the hook itself raises,
            both errors are logged there; the worker goes on either way.
        max_batch: Group commit: the most requests the owner thread takes at
            once when several are ready, to run between one ``begin_batch``
            and one ``end_batch``.  ``1`` (the default) makes each request its
            own batch.  A batch never waits for requests that are not queued
            yet: an idle worker runs (and commits) what it has at once.
        begin_batch: Called as ``begin_batch(resource)`` in the owner thread
            before the first request of each batch; see :meth:`begin_batch`.
        end_batch: Called as ``end_batch(resource)`` after the last request of
            each batch, before any of their futures resolve; see
            :meth:`end_batch`.

    Raises:
        TypeError: *factory*, *close*, *error_hook*, *begin_batch* or
            *end_batch* is not callable, *name* is not a string, or *maxsize*,
            *max_batch* or *put_timeout* is not a number.
        ValueError: *maxsize* or *put_timeout* is negative, *put_timeout* is
            nan or infinite, *max_batch* is less than 1, or *put_timeout* is
            given for an unbounded mailbox.

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
    8. *fork().*  In a child process made by :func:`os.fork`, an inherited
       worker has no owner thread: its requests raise :class:`WorkerClosed`
       and its ``shutdown()`` returns at once.  The parent is unaffected.

    **Thread safety.**  Every method may be called from any thread, including
    the owner thread, except :meth:`call`, which raises :class:`DeadlockError`
    there (the request could only run after the call returned); so does
    ``result()`` (without a timeout) on a pending future of this worker, made
    from the owner thread.  Use :meth:`submit` without waiting, or call the
    function on the resource directly.

    **Deadlocks between workers.**  A ``call()`` (or ``result()`` without a
    timeout on a worker's future, or a wait for a :class:`Task`) that would
    close a cycle of threads waiting for each other (the owner of worker A
    calls into B while B's owner is blocked calling into A, or any longer
    cycle) raises :class:`DeadlockError` naming the whole cycle, at once,
    instead of hanging.  The request is not queued.

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
        max_batch: int = 1,
        begin_batch: Callable[[R], object] | None = None,
        end_batch: Callable[[R], object] | None = None,
    ) -> None:
        if name is None:
            name = f"{type(self).__name__}-{next(_names)}"
        _check_name(name)
        _check_count(maxsize, "maxsize", 0)
        _check_count(max_batch, "max_batch", 1)
        _check_put_timeout(put_timeout, maxsize)
        for value, what in (
            (close, "close"),
            (error_hook, "error_hook"),
            (begin_batch, "begin_batch"),
            (end_batch, "end_batch"),
        ):
            if value is not None:
                _check_callable(value, what)

        # The subclass form: an overridden hook is used as a bound method (so
        # the owner thread then holds the face, see guarantee 6); otherwise the
        # plain callable is used and the thread holds no reference to us.
        def hook(method: str, given: Any) -> Any:
            overridden = getattr(type(self), method) is not getattr(ResourceWorker, method)
            return getattr(self, method) if overridden else given

        open_ = hook("open", factory)
        if open_ is None:
            raise TypeError(
                "ResourceWorker() needs a factory callable (or a subclass overriding open())"
            )
        _check_callable(open_, "factory")
        self._factory = factory
        self._close = close
        self._core: _Core[R] = _Core(
            name,
            open_,
            close=hook("close", close),
            error_hook=error_hook,
            maxsize=maxsize,
            begin_batch=hook("begin_batch", begin_batch),
            end_batch=hook("end_batch", end_batch),
            max_batch=max_batch,
        )
        self._bind_mailbox(put_timeout)

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

    def begin_batch(self, resource: R) -> None:
        """Begin a batch (for SQLite: ``BEGIN``).  Runs in the owner thread.

        Called before the first request of each batch when group commit is on
        (a *begin_batch* or *end_batch* was given, or a subclass overrides one
        of these methods).  If it raises, no request of the batch runs: each
        fails with :class:`BatchError` chained to the exception.
        """

    def end_batch(self, resource: R) -> None:
        """End a batch (for SQLite: ``COMMIT``).  Runs in the owner thread.

        Called after the last request of each batch; only when it has returned
        are the batch's futures resolved, so "done" means "committed".  If it
        raises, every request of the batch that succeeded fails with
        :class:`BatchError` chained to the exception (requests that raised keep
        their own exception), and the worker goes on with the next batch.
        """

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

        def launch() -> None:
            core.thread = threading.Thread(target=_run, args=(core,), name=core.name)
            core.face_ref = weakref.ref(self, core.face_collected)

        if not core.begin(launch):
            raise RuntimeError(f"worker {core.name!r} can only be started once")
        assert core.thread is not None
        core.thread.start()
        core.started.wait()
        if core.start_error is not None:
            core.thread.join()
            raise core.start_error
        return self

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
        return self._submit(fn, args, kwargs)

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
        # Recorded before the request is queued: if it would close a cycle of
        # workers waiting for each other, nothing has been queued yet.
        _waits.wait_begins(core.owner_ident, f"call() on worker {core.name!r}")
        try:
            slot = _CallSlot()
            core.put_accepted(self._put, (slot, fn, kwargs or _NO_KWARGS, *args), "call")
            try:
                slot.done.acquire()
            except BaseException:  # interrupted while waiting: withdraw if not started
                _claim(slot)
                raise
        finally:
            _waits.wait_ends()
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
        # put_accepted(), inlined: post() is the path where a call shows.
        item = (None, fn, kwargs or _NO_KWARGS, *args)
        self._put(item)
        if core.stopped:
            core.reclaim(item, "post to")

    # -- asyncio -------------------------------------------------------------------

    def asubmit(
        self, fn: Callable[Concatenate[R, P], T], /, *args: P.args, **kwargs: P.kwargs
    ) -> asyncio.Future[T]:
        """Like :meth:`submit`, for asyncio: return an :class:`asyncio.Future`.

        Must be called from a thread running an event loop; the result is
        bound to that loop.  Awaiting it never blocks the loop.  Cancelling it
        cancels the request, at the loop's next turn, if it has not started by
        then; once it runs it finishes in the owner thread (Python cannot stop
        it) and its outcome is discarded.

        Raises:
            RuntimeError: No event loop runs in this thread.
            TypeError, WorkerClosed, MailboxFull, DeadlockError: As :meth:`submit`.
        """
        loop = asyncio.get_running_loop()
        return asyncio.wrap_future(self._submit(fn, args, kwargs), loop=loop)

    async def acall(
        self, fn: Callable[Concatenate[R, P], T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Like :meth:`call`, for asyncio: ``await worker.acall(fn, ...)``.

        The event loop goes on while the request waits and runs.  If the
        awaiting task is cancelled before the request started, the request is
        withdrawn; if it already started, it runs to the end in the owner
        thread and its outcome is discarded, and the task sees
        :class:`asyncio.CancelledError` at once.

        Raises:
            TypeError, WorkerClosed, MailboxFull, DeadlockError: As :meth:`submit`.
            BatchError: With group commit, the request's batch failed.
            BaseException: Whatever *fn* raised.
        """
        loop = asyncio.get_running_loop()
        future = self._submit(fn, args, kwargs)
        try:
            return await asyncio.wrap_future(future, loop=loop)
        except asyncio.CancelledError:
            # asyncio would cancel the request only at the loop's next turn;
            # do it now, so that it cannot start in between.
            future.cancel()
            raise


def _after_fork_in_child() -> None:
    """Make every inherited worker refuse requests: its owner thread did not fork."""
    for core in list(_live_cores):
        # Another parent thread may have held these at fork time; the copies
        # would stay locked forever in the child.
        core._state_lock = threading.Lock()
        core._orphan_lock = threading.Lock()
        core.forked = True
        core.accepting = False
        core.stop_requested = True
        core.stopped = True
        core.state = _CLOSED
    _waits.forget_all()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _at_interpreter_exit() -> None:
    global _interpreter_exiting
    _interpreter_exiting = True
    cores = list(_live_cores)
    for core in cores:
        try:
            core.request_stop(cancel_futures=False, claim_close_error=False)
        except BaseException as exc:  # routed: a token callback's error must not leave
            # the other workers running (their queued requests would be lost).
            core.report(exc, "shutdown at interpreter exit")
    for core in cores:
        if core.thread is not None and core.thread.ident is not None:
            core.thread.join()


threading._register_atexit(_at_interpreter_exit)  # type: ignore[attr-defined]  # run before threads are joined, as concurrent.futures.thread does
