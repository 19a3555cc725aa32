"""RayWorker: the ResourceWorker face on a Ray actor, for when one process is not enough.

A resource worker is, across processes and machines, an actor: one process
owns the resource and runs one request at a time.  :class:`RayWorker` keeps
:class:`threadkit.ResourceWorker`'s face (``start``, ``submit`` / ``call`` /
``post`` / ``asubmit`` / ``acall``, ``shutdown(wait, cancel_futures)``, the
error hook, ``maxsize``) and moves the owner into a `Ray <https://www.ray.io>`_
actor.  Ray is an optional dependency (``pip install threadkit[ray]``): only
this module imports it, and only when a worker starts.

How it works, and why each piece is there:

* The actor has two *concurrency groups*.  The default one has one thread,
  the owner thread: the factory, every request and *close* run there, so a
  ``sqlite3`` connection made by the factory is used by the thread that made
  it.  Ray runs the actor tasks of one submitting process in submission
  order; :meth:`RayWorker.submit` numbers each request and issues it under one
  lock, so the number order is the order of execution.  The ``control`` group
  has its own thread: a cancel must overtake the queued requests it cancels.
* A request is claimed under the actor's lock by whichever comes first: the
  owner thread starting it, or a cancel.  So a request runs at most once, and
  a cancelled one never runs (the same claim the in-process engine makes).
* The actor catches every exception of a request (Ray would otherwise wrap it
  in ``RayTaskError``, and a ``SystemExit`` would end the actor process) and
  sends back the exception object with its traceback as text; the caller's
  side re-raises the original type with that text as a note.
* Ray completes its futures from one internal thread, and a callback that
  waits there for another Ray result waits forever.  So Ray's callbacks only
  hand each outcome to this worker's *delivery thread*, which settles the
  :class:`~concurrent.futures.Future` and runs the done-callbacks and the error
  hook, and in which waiting for another worker's result is safe.
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
import logging
import os
import threading
import traceback
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TypeVar

from threadkit._engine import (
    check_callable,
    check_count,
    check_name,
    check_put_timeout,
    default_name,
)
from threadkit._errors import DeadlockError, MailboxFull, WorkerClosed

if TYPE_CHECKING:
    import asyncio
    from types import ModuleType

__all__ = ["ActorDied", "RayWorker"]

R = TypeVar("R")
T = TypeVar("T")
P = ParamSpec("P")

ErrorHook = Callable[[BaseException], object]

logger = logging.getLogger("threadkit")

# Outcome kinds, sent back by the actor for each request.
_OK, _RAISED, _CANCELLED = 0, 1, 2


class ActorDied(RuntimeError):
    """The actor process of a :class:`RayWorker` died before sending a request's outcome.

    Every request that was pending when the actor died fails with its own
    ``ActorDied``, whose ``__cause__`` is Ray's error (it says why, when Ray
    knows).  The request may have run, in part or whole, or not at all.

    .. versionadded:: 0.1
    """


# -- the actor (runs in the owner process) ---------------------------------------------


class _Owner:
    """The actor's class; Ray instantiates it in the owner process.

    Plain Python, made a Ray actor class only by :func:`_actor_class`, so that
    this module imports without Ray.
    """

    def __init__(
        self,
        name: str,
        factory: Callable[[], Any],
        close: Callable[[Any], object] | None,
    ) -> None:
        self._name = name
        self._factory = factory
        self._close = close
        self._resource: Any = None
        # Guards _started and _cancelled: a request is claimed either by the
        # owner thread (it starts) or by a cancel, never by both.
        self._lock = threading.Lock()
        self._started = 0  # the number of the last request started (they start in order)
        self._cancelled: set[int] = set()

    def _outcome(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        try:
            return (_OK, fn(*args, **kwargs))
        except BaseException as exc:  # routed: sent back to the caller, as the engine does
            return _raised(self._name, exc)

    def open(self) -> tuple[Any, ...]:
        outcome = self._outcome(self._factory)
        if outcome[0] == _OK:
            self._resource = outcome[1]
            return (_OK, None)
        return outcome

    def run(self, seq: int, fn: Callable[..., Any], args: Any, kwargs: Any) -> tuple[Any, ...]:
        with self._lock:
            if seq in self._cancelled:
                self._cancelled.discard(seq)
                return (_CANCELLED,)
            self._started = seq
        return self._outcome(fn, self._resource, *args, **kwargs)

    def stop(self) -> tuple[Any, ...]:
        resource, self._resource = self._resource, None
        if self._close is None:
            return (_OK, None)
        return self._outcome(self._close, resource)

    def cancel(self, seqs: list[int]) -> list[int]:
        """Claim the requests of *seqs* that have not started (runs in the control group)."""
        with self._lock:
            claimed = [s for s in seqs if s > self._started]
            self._cancelled.update(claimed)
        return claimed


def _raised(name: str, exc: BaseException) -> tuple[Any, ...]:
    tb = exc.__traceback__
    # Starting below _Owner._outcome, the frame that called the user's function.
    text = "".join(traceback.format_exception(type(exc), exc, tb.tb_next if tb else None))
    # Ray pickles the outcome; an exception that does not survive the trip is
    # replaced by one that does, with the same text, rather than lost.
    try:
        cloudpickle: Any = importlib.import_module("ray.cloudpickle")  # in the actor: Ray is there
        cloudpickle.loads(cloudpickle.dumps(exc))
    except Exception as pickling:  # any failure to pickle: say so and go on
        exc = RuntimeError(f"{type(exc).__qualname__}: {exc} (not picklable: {pickling!r})")
    exc.__traceback__ = None
    return (_RAISED, exc, f"remote traceback (RayWorker {name!r}, pid {os.getpid()}):\n{text}")


# -- Ray, imported on first use ---------------------------------------------------------

_ray_lock = threading.Lock()
_actor_cls: Any = None


def _ray() -> ModuleType:
    try:
        # Optional, imported only when a RayWorker starts; by name, so that
        # mypy checks this module the same with and without Ray installed.
        ray = importlib.import_module("ray")
    except ImportError as exc:
        raise ImportError("threadkit.ray needs Ray: pip install 'threadkit[ray]'") from exc
    return ray


def _connect(address: str | None) -> Any:
    """Start (embedded) or join (address / RAY_ADDRESS) Ray once; return the actor class."""
    global _actor_cls
    ray = _ray()
    with _ray_lock:
        if not ray.is_initialized():
            # Quiet: the actors' output and Ray's start-up notices stay in Ray's
            # log files (/tmp/ray/session_latest/logs), not on this terminal.
            quiet: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR}
            if address is None and not os.environ.get("RAY_ADDRESS"):
                # Embedded: a private local Ray, stopped at exit by Ray's own
                # atexit hook.  The actors ask for no CPU, so num_cpus bounds
                # only what other Ray tasks of this program may use.
                ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, **quiet)
            else:
                ray.init(address=address, **quiet)
        if _actor_cls is None:
            # One owner thread (the default group) and one for cancels.
            _actor_cls = ray.remote(concurrency_groups={"control": 1})(_Owner)
    return _actor_cls


# -- the caller's side --------------------------------------------------------------------


class _RayFuture(Future[Any]):
    """A Future whose :meth:`cancel` asks the actor, which alone knows what started."""

    _worker: RayWorker[Any] | None
    _seq: int

    def cancel(self) -> bool:
        worker = self._worker
        if worker is None or self.done():
            return self.cancelled()
        return worker._cancel([self._seq]) == 1 or self.cancelled()

    def result(self, timeout: float | None = None) -> Any:
        self._check_wait(timeout)
        return super().result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self._check_wait(timeout)
        return super().exception(timeout)

    def _check_wait(self, timeout: float | None) -> None:
        worker = self._worker
        if (
            timeout is None
            and worker is not None
            and threading.current_thread() is worker._delivery
            and not self.done()
        ):
            raise DeadlockError(
                f"waiting in the delivery thread of worker {worker.name!r} for one of its "
                "pending futures would wait forever; use add_done_callback()"
            )


_workers: weakref.WeakSet[RayWorker[Any]] = weakref.WeakSet()


class RayWorker(Generic[R]):
    """Own a resource in a Ray actor and serve requests for it from any thread of this process.

    The same face as :class:`threadkit.ResourceWorker` (read its guarantees
    first); what differs is stated here.  The *factory* runs in the actor's
    process, in its owner thread, and the resource never leaves that
    process.  A request ``fn(resource, *args, **kwargs)`` is shipped there
    (pickled with cloudpickle, as Ray does: *fn* and its arguments must be
    picklable, and functions of ``__main__`` travel by value) and its return
    value comes back pickled: a copy, never the same object.

    Args:
        factory: Called with no arguments in the owner thread of the actor
            by :meth:`start`; returns the resource.
        close: Called as ``close(resource)`` in the owner thread of the
            actor after the last request, once, by :meth:`shutdown`.
        name: The worker's name.  Default ``"RayWorker-N"``.
        maxsize: Bound of the requests in flight (sent and not yet
            answered).  ``0`` (the default) is unbounded; with ``maxsize > 0``
            a request made while *maxsize* are in flight blocks until one is
            answered (backpressure).
        put_timeout: With ``maxsize > 0``, the longest a request waits for
            room, in seconds, before it raises :class:`~threadkit.MailboxFull`.
        error_hook: Called as ``error_hook(exc)`` in this process, in the
            worker's delivery thread, with every error that has no caller to
            go to: the exception of a :meth:`post` request, and of *close*
            when nobody waits in ``shutdown(wait=True)``.  The default logs it
            through the ``"threadkit"`` logger.  If the hook raises, both
            errors are logged there.
        address: The Ray cluster to join (``"auto"``, ``"ray://host:10001"``,
            ...).  ``None`` (the default) joins the one ``RAY_ADDRESS`` names,
            or else starts an embedded local Ray on first use.  Ignored if
            this process has already called ``ray.init()``.
        actor_options: Extra options for the actor (``ray.remote`` options
            such as ``resources``, ``runtime_env``, ``scheduling_strategy``).

    Raises:
        TypeError: *factory*, *close* or *error_hook* is not callable, *name*
            is not a string, or *maxsize* or *put_timeout* is not a number.
        ValueError: *maxsize* or *put_timeout* is negative, or *put_timeout*
            is given for an unbounded worker.

    **Guarantees across processes.**

    1. *Order.*  Requests made by one process run in the order its
       ``submit`` / ``call`` / ``post`` calls were made: if one returned
       before another was called, it runs first, whichever threads made
       them.  Requests from different processes sharing one actor are not
       possible: a ``RayWorker`` cannot be pickled.
    2. *At most once, outcome delivered.*  An accepted request runs once, or
       is cancelled (``Future.cancel()`` before it starts, or
       ``shutdown(cancel_futures=True)``), never both; its future is settled
       with its result, its exception, or, if the actor process died first,
       :class:`ActorDied`.  Nothing waits forever for a dead actor.
    3. *Errors.*  A request's exception is re-raised with its original type
       (a copy: it crossed a process boundary) and the remote traceback as a
       note.  ``SystemExit`` and ``KeyboardInterrupt`` in a request are
       delivered like any exception; they do not end the actor.
    4. *Shutdown.*  As :class:`~threadkit.ResourceWorker`'s: new requests
       raise :class:`~threadkit.WorkerClosed`, accepted ones run (or are
       cancelled with ``cancel_futures=True``), then *close* runs once in the
       actor and the actor process ends.  ``shutdown(wait=True)`` returns
       after that, raising *close*'s exception (to the first waiting caller)
       or :class:`ActorDied` if the actor died before *close* could run.
    5. *Interpreter exit.*  A worker still running when the main thread
       finishes is shut down gracefully, before Ray itself stops.

    What does not carry over: waits-for cycle detection (a request that
    calls another ``RayWorker`` which calls back is not detected: it hangs
    until one side's timeout); the identity of returned objects; the owner
    thread's ``CancelToken``; group commit (``max_batch``); and ``fork()``.

    **Thread safety.**  Every method may be called from any thread of the
    process that made the worker.  Done-callbacks run in the worker's
    delivery thread; there, ``call()`` and ``result()`` without a timeout on
    a pending future of the same worker raise :class:`~threadkit.DeadlockError`
    (the delivery thread would wait for itself), and ``shutdown(wait=True)``
    only begins the shutdown.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        factory: Callable[[], R],
        *,
        close: Callable[[R], object] | None = None,
        name: str | None = None,
        maxsize: int = 0,
        put_timeout: float | None = None,
        error_hook: ErrorHook | None = None,
        address: str | None = None,
        actor_options: dict[str, Any] | None = None,
    ) -> None:
        if name is None:
            name = default_name(type(self).__name__)
        check_name(name)
        check_callable(factory, "factory")
        check_count(maxsize, "maxsize", 0)
        check_put_timeout(put_timeout, maxsize)
        for value, what in ((close, "close"), (error_hook, "error_hook")):
            if value is not None:
                check_callable(value, what)
        self._name = name
        self._factory = factory
        self._close = close
        self._put_timeout = put_timeout
        self._maxsize = maxsize
        self._room = threading.BoundedSemaphore(maxsize) if maxsize else None
        self._error_hook = error_hook
        self._address = address
        self._actor_options = dict(actor_options or {})
        # _lock guards the state, the numbering and _pending, and is held while
        # a request is issued to Ray, so that number order is issue order.
        self._lock = threading.Lock()
        self._state = "created"  # created -> running -> stopping -> stopped
        self._seq = itertools.count(1)
        self._pending: dict[int, tuple[_RayFuture | None, str]] = {}
        self._actor: Any = None
        self._inbox: list[tuple[int, Any, BaseException | None]] = []
        self._inbox_ready = threading.Condition(threading.Lock())
        self._delivery: threading.Thread | None = None
        self._stop_outcome: tuple[Any, ...] | None = None
        self._stopped = threading.Event()
        self._waiting = 0  # shutdown(wait=True) callers not yet woken
        self._close_error: BaseException | None = None
        # Serialises cancels, so that of two racing cancels of one future the
        # loser sees it cancelled rather than "already started".
        self._cancel_lock = threading.Lock()
        self._start_failed = False

    # -- lifecycle -----------------------------------------------------------------

    @property
    def name(self) -> str:
        """The worker's name."""
        return self._name

    @property
    def pending(self) -> int:
        """Requests accepted and not yet answered (queued, running, or on their way back)."""
        # One dict read: atomic; the stop marker (-1) is not a request.
        return len(self._pending) - (-1 in self._pending)

    def __repr__(self) -> str:
        return f"<RayWorker {self._name!r} {self._state}, {self.pending} pending>"

    def __reduce__(self) -> Any:
        raise TypeError(f"cannot pickle RayWorker {self._name!r}: it serves one process")

    def start(self) -> RayWorker[R]:
        """Start Ray if needed, create the actor, and wait until the resource exists.

        Returns:
            The worker itself.

        Raises:
            RuntimeError: The worker was started before.
            ImportError: Ray is not installed.
            BaseException: Whatever the factory raised (its original type,
                with the remote traceback as a note); the actor is then gone.
        """
        with self._lock:
            if self._state != "created":
                raise RuntimeError(f"worker {self._name!r} can only be started once")
            self._state = "starting"
        options = {"num_cpus": 0, **self._actor_options}
        try:
            cls = _connect(self._address)
            ray = _ray()
            actor = cls.options(**options).remote(self._name, self._factory, self._close)
            try:
                outcome = ray.get(actor.open.remote())
            except ray.exceptions.RayActorError as exc:
                outcome = (_RAISED, _died(self._name, exc), "")
        except BaseException:  # re-raised: a shutdown() waiting for the start must not hang
            self._abandon(failed=False)
            raise
        if outcome[0] != _OK:
            ray.kill(actor)
            self._abandon(failed=True)
            _reraise(outcome)
        self._actor = actor
        self._delivery = threading.Thread(
            target=self._deliver, name=f"{self._name}-delivery", daemon=True
        )
        self._delivery.start()
        with self._lock:
            if self._state == "starting":
                self._state = "running"
            else:  # shutdown() came during the start and left the stop to us
                self._issue(-1, actor.stop, None, "stop")
        with _ray_lock:
            _workers.add(self)
        return self

    def _abandon(self, *, failed: bool) -> None:
        with self._lock:
            self._state = "stopped"
            self._start_failed = failed
        self._stopped.set()

    def __enter__(self) -> RayWorker[R]:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown(wait=True)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop accepting requests, let the accepted ones finish, then close the resource.

        Args:
            wait: Wait until *close* has run in the actor and the actor is gone.
            cancel_futures: Cancel every accepted request that has not started
                in the actor (their futures are cancelled when this returns).

        Raises:
            BaseException: With ``wait=True``, the exception of *close* (to the
                first caller waiting), or :class:`ActorDied`; also the first
                ``BaseException`` raised by a done-callback of a future this
                call cancelled, after every such future is cancelled.
        """
        waits = wait and threading.current_thread() is not self._delivery
        with self._lock:
            if self._state == "created":
                self._state = "stopped"
                self._stopped.set()
                return
            if waits:
                # Counted before the stop is sent: its outcome may arrive at
                # once (a dead actor answers at once), and an error that finds
                # nobody waiting goes to the error hook instead of this caller.
                self._waiting += 1
            if self._state == "starting":
                # No actor to send the stop to yet: start() sends it when it has one.
                self._state = "stopping"
            elif self._state == "running":
                self._state = "stopping"
                self._issue(-1, self._actor.stop, None, "stop")
            seqs = [s for s in self._pending if s > 0] if cancel_futures else []
        if seqs:
            try:
                self._cancel(seqs)
            except BaseException:  # re-raised; this caller no longer waits
                if waits:
                    with self._lock:
                        self._waiting -= 1
                raise
        if not waits:
            return
        try:
            self._stopped.wait()
        finally:
            with self._lock:
                self._waiting -= 1
                error, self._close_error = self._close_error, None
        if error is not None:
            try:
                raise error
            finally:
                error = None

    # -- requests ----------------------------------------------------------------------

    def _issue(self, seq: int, method: Any, fut: _RayFuture | None, what: str, *args: Any) -> None:
        """Send one request (``_lock`` held); its outcome goes to the delivery thread."""
        ref = method.remote(*args) if seq < 0 else method.remote(seq, *args)
        self._pending[seq] = (fut, what)

        def arrived(ray_future: Future[Any]) -> None:
            # Ray's callback thread: hand over only (see the module docstring).
            try:
                outcome, error = ray_future.result(), None
            except BaseException as exc:  # routed to the delivery thread
                outcome, error = None, exc
            with self._inbox_ready:
                self._inbox.append((seq, outcome, error))
                self._inbox_ready.notify()

        ref.future().add_done_callback(arrived)

    def _accept(self, fn: object, what: str) -> None:
        if self._state != "running":
            raise self._refusal(what)
        if not callable(fn):
            raise TypeError(
                f"{what.split(maxsplit=1)[0]}() needs a callable, got {type(fn).__name__!r}"
            )
        room = self._room
        if room is not None:
            if threading.current_thread() is self._delivery:
                if not room.acquire(blocking=False):
                    raise DeadlockError(
                        f"the delivery thread of worker {self._name!r} cannot wait for "
                        "room: only it can make room"
                    )
            elif not room.acquire(timeout=self._put_timeout):
                raise MailboxFull(
                    f"the mailbox of worker {self._name!r} stayed full "
                    f"(maxsize={self._maxsize}) for {self._put_timeout} s"
                )

    def _refusal(self, what: str) -> WorkerClosed:
        # The in-process worker's words (threadkit._engine._worker_refusal).
        if self._state in ("created", "starting"):
            return WorkerClosed(
                f"cannot {what} worker {self._name!r} before start(); "
                "call start() or use the worker in a with block"
            )
        if self._start_failed:
            return WorkerClosed(f"cannot {what} worker {self._name!r}: its factory failed")
        return WorkerClosed(f"cannot {what} worker {self._name!r} after shutdown")

    def _send(
        self, fn: Callable[..., Any], args: Any, kwargs: Any, fut: _RayFuture | None, what: str
    ) -> None:
        self._accept(fn, what)
        with self._lock:
            if self._state != "running":  # shutdown began while we waited for room
                if self._room is not None:
                    self._room.release()
                raise self._refusal(what)
            seq = next(self._seq)
            if fut is not None:
                fut._seq = seq
            self._issue(seq, self._actor.run, fut, what, fn, args, kwargs)

    def submit(
        self, fn: Callable[Concatenate[R, P], T], /, *args: P.args, **kwargs: P.kwargs
    ) -> Future[T]:
        """Send ``fn(resource, *args, **kwargs)`` to the actor and return its future at once.

        Returns:
            A :class:`concurrent.futures.Future` holding a copy of *fn*'s
            return value, or its exception.

        Raises:
            TypeError: *fn* is not callable.
            WorkerClosed: The worker is not started, or shutdown has begun.
            MailboxFull: *maxsize* requests stayed in flight past *put_timeout*.
            DeadlockError: Called from the delivery thread while *maxsize*
                requests are in flight.
        """
        fut = _RayFuture()
        fut._worker = self
        self._send(fn, args, kwargs, fut, "submit to")
        return fut

    def call(self, fn: Callable[Concatenate[R, P], T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(resource, *args, **kwargs)`` in the actor and return (a copy of) its result.

        Raises:
            TypeError, WorkerClosed, MailboxFull: As :meth:`submit`.
            DeadlockError: Called from the worker's delivery thread.
            ActorDied: The actor process died before answering.
            BaseException: Whatever *fn* raised, with its original type.
        """
        if threading.current_thread() is self._delivery:
            raise DeadlockError(
                f"call() from the delivery thread of worker {self._name!r} would wait "
                "for itself forever; use submit()"
            )
        return self.submit(fn, *args, **kwargs).result()

    def post(
        self, fn: Callable[Concatenate[R, P], object], /, *args: P.args, **kwargs: P.kwargs
    ) -> None:
        """Send ``fn(resource, *args, **kwargs)`` and forget it; its failure goes to the error hook.

        Raises:
            TypeError, WorkerClosed, MailboxFull, DeadlockError: As :meth:`submit`.
        """
        self._send(fn, args, kwargs, None, "post to")

    def asubmit(
        self, fn: Callable[Concatenate[R, P], T], /, *args: P.args, **kwargs: P.kwargs
    ) -> asyncio.Future[T]:
        """Like :meth:`submit`, for asyncio: return an :class:`asyncio.Future` of this loop.

        Raises:
            RuntimeError: No event loop runs in this thread.
            TypeError, WorkerClosed, MailboxFull, DeadlockError: As :meth:`submit`.
        """
        import asyncio  # noqa: PLC0415  # only asyncio callers pay for importing it

        loop = asyncio.get_running_loop()
        return asyncio.wrap_future(self.submit(fn, *args, **kwargs), loop=loop)

    async def acall(
        self, fn: Callable[Concatenate[R, P], T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Like :meth:`call`, for asyncio: ``await worker.acall(fn, ...)``.

        If the awaiting task is cancelled, the request is cancelled too if it
        has not started in the actor.

        Raises:
            TypeError, WorkerClosed, MailboxFull, DeadlockError: As :meth:`submit`.
            BaseException: Whatever *fn* raised, with its original type.
        """
        import asyncio  # noqa: PLC0415  # only asyncio callers pay for importing it

        future = self.submit(fn, *args, **kwargs)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            future.cancel()
            raise

    # -- cancel and delivery ---------------------------------------------------------------

    def _cancel(self, seqs: list[int]) -> int:
        """Cancel the requests of *seqs* that have not started; return how many were."""
        ray = _ray()
        interrupts: list[BaseException] = []
        with self._cancel_lock:
            try:
                claimed = ray.get(
                    self._actor.cancel.options(concurrency_group="control").remote(seqs)
                )
            except ray.exceptions.RayActorError:
                return 0  # dead: each pending request fails with ActorDied instead
            for seq in claimed:
                with self._lock:
                    fut, what = self._pending.pop(seq, (None, ""))
                if not what:
                    continue  # its "cancelled" outcome was delivered first
                if self._room is not None:
                    self._room.release()
                if fut is None:
                    continue  # a post: nothing to settle
                try:
                    Future.cancel(fut)
                except BaseException as exc:  # raised after every future is cancelled
                    interrupts.append(exc)
                fut.set_running_or_notify_cancel()  # noticed: wait() counts it as done
        if interrupts:
            try:
                raise interrupts[0]
            finally:
                interrupts.clear()
        return len(claimed)

    def _deliver(self) -> None:
        """The delivery thread: settle each outcome Ray hands over, until the actor is gone."""
        ray = _ray()
        while True:
            with self._inbox_ready:
                while not self._inbox:
                    self._inbox_ready.wait()
                batch, self._inbox = self._inbox, []
            for seq, answer, error in batch:
                with self._lock:
                    fut, what = self._pending.pop(seq, (None, ""))
                if not what:
                    continue  # cancelled already
                outcome = answer if error is None else (_RAISED, _died(self._name, error), "")
                if seq < 0:
                    self._stop_outcome = outcome
                    continue
                if self._room is not None:
                    self._room.release()
                self._settle(fut, what, outcome)
                # Drop the request's outcome before waiting again (it may hold the resource's data).
                fut = outcome = answer = error = None  # noqa: PLW2901
            batch = []  # holds the outcomes (and the futures' values) otherwise
            if self._stop_outcome is not None and not self._pending:
                break
        with contextlib.suppress(ray.exceptions.RayError):  # gone already: nothing to end
            ray.kill(self._actor)
        outcome = self._stop_outcome
        assert outcome is not None
        error = None if outcome[0] == _OK else _exception(outcome)
        with self._lock:
            self._state = "stopped"
            if self._waiting:  # they raise it; else the hook reports it, outside our lock
                self._close_error, error = error, None
            self._stopped.set()
        if error is not None:
            self._report(error, "close")

    def _settle(self, fut: _RayFuture | None, what: str, outcome: tuple[Any, ...]) -> None:
        kind = outcome[0]
        if fut is None:
            if kind == _RAISED:
                self._report(_exception(outcome), what.split(maxsplit=1)[0])
            return
        fut._worker = None
        try:
            if kind == _OK:
                fut.set_result(outcome[1])
            elif kind == _RAISED:
                fut.set_exception(_exception(outcome))
            else:  # cancelled in the actor while its cancel() was on its way back
                Future.cancel(fut)
                fut.set_running_or_notify_cancel()
        except BaseException as exc:  # a done-callback's; the delivery thread goes on
            self._report(exc, "a done-callback")

    def _report(self, exc: BaseException, where: str) -> None:
        exc.add_note(f"(raised by {where} in threadkit RayWorker {self._name!r})")
        hook = self._error_hook
        if hook is None:
            logger.error("error in threadkit RayWorker %r", self._name, exc_info=exc)
            return
        try:
            hook(exc)
        except BaseException as hook_exc:  # routed: the hook must not end delivery
            logger.error(
                "error hook of threadkit RayWorker %r raised while reporting %r",
                self._name,
                exc,
                exc_info=hook_exc,
            )


def _died(name: str, cause: BaseException) -> BaseException:
    ray = _ray()
    if not isinstance(cause, ray.exceptions.RayActorError):
        return cause  # say, a result that could not be unpickled here
    err = ActorDied(f"the actor of RayWorker {name!r} died before answering this request")
    err.__cause__ = cause
    return err


def _exception(outcome: tuple[Any, ...]) -> BaseException:
    exc: BaseException = outcome[1]
    if outcome[2]:
        exc.add_note(outcome[2])
    return exc


def _reraise(outcome: tuple[Any, ...]) -> None:
    exc = _exception(outcome)
    try:
        raise exc
    finally:
        exc = None  # type: ignore[assignment]  # break the frame <-> traceback cycle


def _at_exit() -> None:
    # Before Ray's own atexit hook stops Ray: the accepted requests run, then close.
    for worker in list(_workers):
        try:
            worker.shutdown(wait=True)
        except Exception:  # at exit nobody else will see it
            logger.exception("shutdown of threadkit RayWorker %r at exit failed", worker.name)


threading._register_atexit(_at_exit)  # type: ignore[attr-defined]  # what concurrent.futures uses
