"""SerialExecutor: the engine behind the :class:`concurrent.futures.Executor` interface.

A thin face over :mod:`threadkit._engine`: no resource (callables run as
``fn(*args, **kwargs)``), the thread started by the first submit (as a
ThreadPoolExecutor's is), and the standard library's words for misuse.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from concurrent.futures.thread import BrokenThreadPool
from typing import Any, ParamSpec, TypeVar

from threadkit._engine import (
    Core,
    Face,
    State,
    check_callable,
    check_count,
    check_function,
    check_name,
    check_put_timeout,
    default_name,
    interpreter_exiting,
)
from threadkit._errors import WorkerClosed

__all__ = ["SerialExecutor"]

T = TypeVar("T")
P = ParamSpec("P")

_BROKEN = "A thread initializer failed, the thread pool is not usable anymore"


def _refusal(core: Core[Any], what: str) -> BaseException:
    """ThreadPoolExecutor's words for a submit that cannot be accepted."""
    if core.start_error is not None:
        err = BrokenThreadPool(_BROKEN)
        err.__cause__ = core.start_error
        return err
    if interpreter_exiting():
        return WorkerClosed("cannot schedule new futures after interpreter shutdown")
    return WorkerClosed("cannot schedule new futures after shutdown")


class SerialExecutor(Face, Executor):
    """An :class:`~concurrent.futures.Executor` that runs every callable on one thread, in order.

    A drop-in replacement for ``ThreadPoolExecutor(max_workers=1)``: the same
    constructor arguments, the same ``submit``, ``map`` and ``shutdown``, the
    same errors.  What it adds is what :class:`ResourceWorker` guarantees:
    strict FIFO order (if ``submit(a)`` returned before ``submit(b)`` was
    called, ``a`` runs before ``b``), exactly-once execution, a submit path
    with no lock, and a bounded queue on request.

    Args:
        max_workers: Accepted for compatibility; must be ``None`` or ``1``.
        thread_name_prefix: The owner thread is named ``<prefix>_0``, as
            :class:`~concurrent.futures.ThreadPoolExecutor` names its threads.
        initializer: Called as ``initializer(*initargs)`` in the owner thread
            once the first task is queued, before it runs (never, if nothing
            is submitted), as by ``ThreadPoolExecutor``.  If it raises, the
            exception is logged (at ``CRITICAL``, through the
            ``"concurrent.futures"`` logger, as the standard library does),
            the first task and every pending one fail with
            :class:`~concurrent.futures.thread.BrokenThreadPool`, and every
            later :meth:`submit` raises it; the same every time.
        initargs: Arguments for *initializer*.
        name: The executor's name (default ``"SerialExecutor-N"``); the thread
            name is derived from it unless *thread_name_prefix* is given.
        maxsize: Bound of the task queue (``0``, the default, is unbounded);
            see :class:`ResourceWorker`.
        put_timeout: With *maxsize*, the longest :meth:`submit` waits for room
            before it raises :class:`MailboxFull`.

    Raises:
        ValueError: *max_workers* is less than 1 (the standard library's
            message) or more than 1.
        TypeError: An argument has the wrong type.

    **Drop-in.**  It works wherever code uses the
    :class:`~concurrent.futures.Executor` interface; code that checks for the
    class ``ThreadPoolExecutor`` refuses it, :mod:`asyncio`'s
    ``loop.set_default_executor()`` among them: pass the executor to
    ``loop.run_in_executor(executor, fn, ...)`` instead.

    The thread starts with the first :meth:`submit`, as a
    ``ThreadPoolExecutor``'s does (:attr:`thread` is ``None`` until then),
    and waits, using no CPU, for tasks.  At
    interpreter exit a live executor is drained like a
    :class:`~concurrent.futures.ThreadPoolExecutor`; one that is
    garbage-collected without :meth:`shutdown` is shut down gracefully, its
    queued tasks still run.

    **Thread safety.**  Every method may be called from any thread, including
    from inside a task (``shutdown`` from a task does not wait for itself).

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        max_workers: int | None = None,
        thread_name_prefix: str = "",
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        *,
        name: str | None = None,
        maxsize: int = 0,
        put_timeout: float | None = None,
    ) -> None:
        if max_workers is not None:
            check_count(max_workers, "max_workers", -(2**63))
            if max_workers <= 0:  # the standard library's words
                raise ValueError("max_workers must be greater than 0")
            if max_workers != 1:
                raise ValueError(
                    f"SerialExecutor runs one task at a time: max_workers must be 1 or None, "
                    f"got {max_workers}"
                )
        if not isinstance(thread_name_prefix, str):
            raise TypeError(
                f"thread_name_prefix must be a str, got {type(thread_name_prefix).__name__!r}"
            )
        if name is None:
            name = default_name(type(self).__name__)
        check_name(name)
        check_count(maxsize, "maxsize", 0)
        if initializer is not None:
            check_callable(initializer, "initializer")
        if not isinstance(initargs, tuple):
            raise TypeError(f"initargs must be a tuple, got {type(initargs).__name__!r}")
        check_put_timeout(put_timeout, maxsize)

        # Set once the first task is queued.  The initializer waits for it, so that the
        # first submit() always returns a future (which fails if the initializer does) and
        # never races the initializer's failure, as with ThreadPoolExecutor, whose thread
        # starts only in the first submit().
        first_queued = threading.Event()

        def open_() -> None:
            if initializer is not None:
                first_queued.wait()
                try:
                    initializer(*initargs)
                except BaseException:
                    logging.getLogger("concurrent.futures").critical(
                        "Exception in initializer:", exc_info=True
                    )
                    raise

        core = Core(
            name,
            open_,
            maxsize=maxsize,
            pass_resource=False,
            accept_early=True,
            kind="executor",
            refusal=_refusal,
        )
        core.warn_if_collected = False
        self._core = core
        self._bind_mailbox(put_timeout)
        self._thread_name = f"{thread_name_prefix or name}_0"
        self._first_queued = first_queued
        # True until the first submit() started the thread; only ever goes to False.
        self._unstarted = True

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Schedule ``fn(*args, **kwargs)`` and return its :class:`~concurrent.futures.Future`.

        Raises:
            RuntimeError: After :meth:`shutdown` (a :class:`WorkerClosed`, with
                the standard library's message).
            concurrent.futures.thread.BrokenThreadPool: The initializer failed.
            TypeError: *fn* is not callable.
            MailboxFull: The bounded queue stayed full past *put_timeout*.
        """
        if self._unstarted:
            return self._start_with(fn, args, kwargs)
        return self._submit(fn, args, kwargs)

    def _start_with(
        self, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Future[T]:
        """The first submit(): start the thread, queue the task, then let the initializer run."""
        core = self._core
        if core.state is State.NEW:
            check_function(fn, "submit()")
            if interpreter_exiting():
                raise WorkerClosed("cannot schedule new futures after interpreter shutdown")
            try:
                try:
                    core.start(self._thread_name, self)
                except RuntimeError as exc:
                    if exc is core.start_error:
                        raise  # no thread could be started: the executor is closed
                    if interpreter_exiting():
                        raise WorkerClosed(
                            "cannot schedule new futures after interpreter shutdown"
                        ) from None
                    # Core.start() lets one caller through, under the core's own lock: a
                    # racing first submit() started the thread, or shutdown() came first.
                    # Go on as a later submit(), accepted or refused accordingly.
                return self._submit(fn, args, kwargs)
            finally:
                # Whatever happened (an interrupt included), the initializer must not
                # wait for this task forever.
                self._unstarted = False
                self._first_queued.set()
        self._unstarted = False
        return self._submit(fn, args, kwargs)

    # The signature is the running Python's: Executor.map() takes buffersize from 3.14 on, and
    # a drop-in must neither lack it there nor accept it earlier.
    if sys.version_info >= (3, 14):

        def map(
            self,
            fn: Callable[..., T],
            *iterables: Iterable[Any],
            timeout: float | None = None,
            chunksize: int = 1,
            buffersize: int | None = None,
        ) -> Iterator[T]:
            """Like the builtin :func:`map`, with ``fn`` run on the executor's thread.

            The calls are submitted in order, all at once unless *buffersize*
            is given; the returned iterator yields their results in that
            order, waiting for each in turn.

            Args:
                fn: The callable, called with one item of each iterable.
                iterables: The arguments.
                timeout: The most seconds, counted from this call, that the
                    iterator waits for a result; ``None`` waits as long as it takes.
                chunksize: Ignored, as by :class:`~concurrent.futures.ThreadPoolExecutor`.
                buffersize: The most calls submitted whose results have not
                    been yielded yet; the iterables are read only as results
                    are taken, so they may be endless.  ``None`` reads them
                    all at once.  Python 3.14 and later only, as in the
                    standard library.

            Raises:
                TimeoutError: From the iterator, when a result is not ready in time
                    (the calls not yet started are then cancelled).
                BaseException: From the iterator, whatever a call raised.
                TypeError: *fn* is not callable, *timeout* is not a number or
                    *buffersize* is not an integer (raised here, at the call).
                ValueError: *buffersize* is less than 1.
            """
            self._check_map(fn, timeout, buffersize)
            return super().map(
                fn, *iterables, timeout=timeout, chunksize=chunksize, buffersize=buffersize
            )

    else:

        def map(
            self,
            fn: Callable[..., T],
            *iterables: Iterable[Any],
            timeout: float | None = None,
            chunksize: int = 1,
        ) -> Iterator[T]:
            """Like the builtin :func:`map`, with ``fn`` run on the executor's thread.

            All calls are submitted at once, in order; the returned iterator
            yields their results in that order, waiting for each in turn.  On
            Python 3.14 and later, as in the standard library, a *buffersize*
            argument bounds how many are submitted ahead.

            Args:
                fn: The callable, called with one item of each iterable.
                iterables: The arguments.
                timeout: The most seconds, counted from this call, that the
                    iterator waits for a result; ``None`` waits as long as it takes.
                chunksize: Ignored, as by :class:`~concurrent.futures.ThreadPoolExecutor`.

            Raises:
                TimeoutError: From the iterator, when a result is not ready in time
                    (the calls not yet started are then cancelled).
                BaseException: From the iterator, whatever a call raised.
                TypeError: *fn* is not callable, or *timeout* is not a number
                    (raised here, at the call, naming the argument).
            """
            self._check_map(fn, timeout, None)
            return super().map(fn, *iterables, timeout=timeout, chunksize=chunksize)

    @staticmethod
    def _check_map(fn: object, timeout: object, buffersize: object) -> None:
        # Checked at the call, not left to submit() and the arithmetic inside the stdlib's
        # map(), whose messages would name neither map() nor timeout.  buffersize first and in
        # the stdlib's words, as its map() checks it before anything else.
        if buffersize is not None and not isinstance(buffersize, int):
            raise TypeError("buffersize must be an integer or None")
        if buffersize is not None and buffersize < 1:
            raise ValueError("buffersize must be None or > 0")
        check_function(fn, "map()")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float)
        ):
            raise TypeError(f"timeout must be a number or None, got {type(timeout).__name__!r}")

    # Private names that CPython's own executor tests read from a
    # ThreadPoolExecutor; kept so those tests can run against this class.
    @property
    def _threads(self) -> set[threading.Thread]:
        thread = self._core.thread
        return {thread} if thread is not None else set()

    @property
    def _broken(self) -> str | bool:
        return _BROKEN if self._core.start_error is not None else False

    _max_workers = 1
