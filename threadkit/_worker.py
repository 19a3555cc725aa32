"""ResourceWorker: one thread owns a resource; every other thread sends it requests.

A thin face over :mod:`threadkit._engine`, which holds the owner loop, the
mailbox, the lifecycle and the settle path (and their design notes).  This
module adds what is the worker's own: the resource passed to each request,
the subclass form, ``call`` / ``post`` and the asyncio methods.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from concurrent.futures import Future
from types import FunctionType
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TypeVar

from threadkit._engine import (
    CO_ASYNC,
    Core,
    ErrorHook,
    Face,
    WithKwargs,
    check_callable,
    check_count,
    check_function,
    check_name,
    check_put_timeout,
    default_name,
)

if TYPE_CHECKING:
    # Imported where used: `import threadkit` must not pay for asyncio (tens of
    # milliseconds) in the programs that never use it.
    import asyncio

__all__ = ["ResourceWorker"]


def _passed_the_resource(factory: object, error: BaseException) -> bool:
    """Whether a failed factory looks like the resource itself, passed by mistake.

    It does when it is an object rather than something that makes objects (a
    function, a method, a class, a partial), and its call failed at the call
    itself: no frame of its own in the traceback, which begins in the frame
    that called it.  A ``sqlite3.Connection`` is callable, and called in the
    owner thread it raises ``ProgrammingError`` about threads at once.
    """
    if isinstance(factory, type | functools.partial) or inspect.isroutine(factory):
        return False
    traceback = error.__traceback__
    return isinstance(error, Exception) and traceback is not None and traceback.tb_next is None


# What the hooks were called before they were named on_*.
_OLD_HOOK_NAMES = ("open", "close", "begin_batch", "end_batch")

R = TypeVar("R")
T = TypeVar("T")
P = ParamSpec("P")


class ResourceWorker(Face, Generic[R]):
    """Own a resource in one thread and serve requests for it from any thread.

    The *factory* runs in the owner thread when the worker starts, and its
    return value, the *resource*, is touched by that thread alone: each request
    ``fn(resource, *args, **kwargs)`` runs there, one at a time, in the order the
    requests were made.  That is what makes a ``sqlite3`` connection with its
    default ``check_same_thread=True``, a :class:`zipfile.ZipFile` or any client
    that is not thread-safe usable from many threads.

    Args:
        factory: Called with no arguments in the owner thread by :meth:`start`;
            returns the resource.  Pass the function that makes the resource
            (``lambda: sqlite3.connect(path)``), not the resource: made in
            the calling thread, it would belong to the wrong thread.  May be
            omitted by a subclass that overrides :meth:`on_open`.
        close: Called as ``close(resource)`` in the owner thread after the last
            request, exactly once.  A subclass may override :meth:`on_close`
            instead.  Its waits are not cancellable (see :ref:`cancellable-waits`):
            the worker's token is cancelled by then, and *close* must run to its end.
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
            before the first request of each batch; see :meth:`on_begin_batch`.
        end_batch: Called as ``end_batch(resource)`` after the last request of
            each batch, before any of their futures resolve; see
            :meth:`on_end_batch`.

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
       is emitted.  (A subclass that overrides :meth:`on_open` or
       :meth:`on_close` is referenced by its own thread, so it lives until
       shutdown or exit.)
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
            name = default_name(type(self).__name__)
        check_name(name)
        check_count(maxsize, "maxsize", 0)
        check_count(max_batch, "max_batch", 1)
        check_put_timeout(put_timeout, maxsize)
        for value, what in (
            (close, "close"),
            (error_hook, "error_hook"),
            (begin_batch, "begin_batch"),
            (end_batch, "end_batch"),
        ):
            if value is not None:
                check_callable(value, what)

        # A subclass written for the hooks' old names would have them ignored.
        for old in _OLD_HOOK_NAMES:
            if getattr(type(self), old, None) is not None:
                raise TypeError(
                    f"{type(self).__qualname__} defines {old}(), which is not a hook: "
                    f"override on_{old}() (the hooks are on_open, on_close, on_begin_batch "
                    "and on_end_batch)"
                )

        # The subclass form: an overridden hook is used as a bound method (so
        # the owner thread then holds the face, see guarantee 6); otherwise the
        # plain callable is used and the thread holds no reference to us.
        def hook(method: str, given: Any) -> Any:
            overridden = getattr(type(self), method) is not getattr(ResourceWorker, method)
            if not overridden:
                return given
            bound = getattr(self, method)
            check_callable(bound, f"the {method}() hook")  # an async def would never run
            return bound

        open_ = hook("on_open", factory)
        if open_ is None:
            raise TypeError(
                "ResourceWorker() needs a factory callable (or a subclass overriding on_open())"
            )
        check_callable(open_, "factory")
        self._factory = factory
        self._close = close
        self._core: Core[R] = Core(
            name,
            open_,
            close=hook("on_close", close),
            error_hook=error_hook,
            maxsize=maxsize,
            begin_batch=hook("on_begin_batch", begin_batch),
            end_batch=hook("on_end_batch", end_batch),
            max_batch=max_batch,
        )
        self._bind_mailbox(put_timeout)

    # -- hooks for the subclass form -------------------------------------------

    # Hooks are named on_*, so that none can be taken for a lifecycle method:
    # start() and shutdown() are what callers call; the worker calls these.

    def on_open(self) -> R:
        """Hook: create the resource.  Called by the worker, never by you.

        *When:* once, during :meth:`start`, before any request runs.  *Thread:*
        the owner thread.  The default calls the *factory*; a subclass may
        override it instead of passing a factory, as one overrides
        :meth:`threading.Thread.run`.  *If it raises:* the worker never
        accepts a request, no close hook runs (there is no resource), and
        :meth:`start` re-raises the exception.
        """
        assert self._factory is not None
        return self._factory()

    def on_close(self, resource: R) -> None:
        """Hook: release the resource.  Called by the worker, never by you.

        *When:* once, after the last request, during :meth:`shutdown` (or at
        interpreter exit).  *Thread:* the owner thread.  The default calls the
        *close* callable, if one was given; a subclass may override it.  *If it
        raises:* the exception goes to the callers of ``shutdown(wait=True)``,
        or to the error hook if none waits; the owner thread exits either way.
        """
        if self._close is not None:
            self._close(resource)

    def on_begin_batch(self, resource: R) -> None:
        """Hook: begin a batch (for SQLite: ``BEGIN``).  Called by the worker, never by you.

        *When:* before the first request of each batch, when group commit is
        on (a *begin_batch* or *end_batch* was given, or a subclass overrides
        one of these hooks).  *Thread:* the owner thread.  The default does
        nothing, or calls *begin_batch*.  *If it raises:* no request of the
        batch runs: each fails with :class:`BatchError` chained to the
        exception, and the worker goes on with the next batch.
        """

    def on_end_batch(self, resource: R) -> None:
        """Hook: end a batch (for SQLite: ``COMMIT``).  Called by the worker, never by you.

        *When:* after the last request of each batch; only when it has
        returned are the batch's futures resolved, so "done" means
        "committed".  *Thread:* the owner thread.  The default does nothing,
        or calls *end_batch*.  *If it raises:* every request of the batch that
        succeeded fails with :class:`BatchError` chained to the exception
        (requests that raised keep their own exception), and the worker goes
        on with the next batch.
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
        core.start(core.name, self)
        core.started.wait()
        if core.start_error is not None:
            core.join_owner()
            if core.open is self._factory and _passed_the_resource(core.open, core.start_error):
                raise TypeError(
                    f"the factory of worker {core.name!r} is a {type(core.open).__name__!r} "
                    "object, whose call failed: pass a function that makes the resource, such "
                    "as lambda: sqlite3.connect(path), not the resource itself; the factory is "
                    "called in the owner thread, so that the resource belongs to it"
                ) from core.start_error
            try:
                raise core.start_error
            finally:
                # Break the cycle error -> traceback -> this frame -> the
                # worker -> its core -> error (Future.result() does the same).
                self = core = None  # type: ignore[assignment]  # noqa: PLW0642
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
            Cancelled: This thread's :func:`~threadkit.current_token` was
                cancelled while waiting (see :ref:`cancellable-waits`): a
                request that had not started is withdrawn and never runs;
                one that had finishes in the owner thread, its outcome dropped.
            BaseException: Whatever *fn* raised.
        """
        return self._call(fn, args, kwargs)  # type: ignore[no-any-return]

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
        if type(fn) is not FunctionType or fn.__code__.co_flags & CO_ASYNC or fn.__dict__:
            # check_function()'s fast path, inlined: the call was a twentieth of a post().
            check_function(fn, "post()")
        # engine.request() and Core.put_accepted(), inlined: post() is the path
        # where a call shows ("post() fire-and-forget" in nox -s bench), and a
        # post() has no handle for cancel_futures to cancel by, so only the
        # reclaim is left.
        if kwargs:
            fn = WithKwargs(fn, **kwargs)
        item = (None, fn, core.resource) + args  # noqa: RUF005  (no list built)
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
        import asyncio  # noqa: PLC0415  # lazily: see the import at the top

        check_function(fn, "asubmit()")
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
        import asyncio  # noqa: PLC0415  # lazily: see the import at the top

        check_function(fn, "acall()")
        loop = asyncio.get_running_loop()
        future = self._submit(fn, args, kwargs)
        try:
            return await asyncio.wrap_future(future, loop=loop)
        except asyncio.CancelledError:
            # asyncio would cancel the request only at the loop's next turn;
            # do it now, so that it cannot start in between.
            future.cancel()
            raise
