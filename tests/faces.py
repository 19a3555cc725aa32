"""Faces of the owner loop, seen through one Executor-like shape, for the shared tests.

Every face wraps one object that promises the executor contract (``submit``
returning a :class:`concurrent.futures.Future`, ``map``, ``shutdown(wait,
cancel_futures)``) plus what the tests need to observe it: the owner thread,
the cancel token (``None`` where the face has none) and the errors it routed
to its error hook.  A new face plugs into the contract suite by adding one adapter class and
one entry to :data:`FACES`.

A face whose requests run in another process (:class:`RayWorkerFace`) cannot
see the test's lists and events, so every face also makes the *shared* ones
the tests use (``ex.shared_list()``, ``ex.shared_event()``): the plain objects
in process, and, for Ray, handles to a helper actor that any process can
use.  Tests that need more than that (the same objects, the owner thread, the
cancel token) are marked ``same_process`` and skip the faces that are not.
The Ray face is added only when Ray is importable; with
``THREADKIT_REQUIRE_RAY=1`` (the ``ray`` nox session sets it) a missing Ray
is an error instead.

:class:`DocumentedPool` is the oracle: the standard library's
``ThreadPoolExecutor(max_workers=1)`` with only the behaviour the stdlib
leaves undefined replaced by what threadkit documents (see its docstring).
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import importlib.util
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures._base import LOGGER
from typing import Any, Protocol

import threadkit

from .conftest import WAIT


class FaceExecutor(Protocol):
    """What every face offers the tests."""

    stdlib_words: bool  # refusals use the standard library's messages
    same_process: bool  # requests run in this process, on the test's own objects

    def shared_list(self) -> Any: ...

    def shared_event(self) -> Any: ...

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]: ...

    def map(self, fn: Callable[..., Any], *iterables: Any, timeout: float | None = None) -> Any: ...

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None: ...

    @property
    def token(self) -> threadkit.CancelToken | None: ...

    @property
    def owner(self) -> threading.Thread | None: ...

    @property
    def reported(self) -> list[BaseException]: ...


class SharedList(list[Any]):
    """The in-process shared list: a plain list, with the snapshot a remote one needs."""

    def snapshot(self) -> list[Any]:
        return list(self)


class InProcess:
    """What every in-process face shares: the test's own objects are the shared ones."""

    same_process = True

    def shared_list(self) -> SharedList:
        return SharedList()

    def shared_event(self) -> threading.Event:
        return threading.Event()


# -- the oracle ----------------------------------------------------------------------


class _DocumentedFuture(Future[Any]):
    """A stdlib Future whose done-callbacks follow threadkit's documented rule.

    The stdlib logs an :class:`Exception` from a done-callback and goes on;
    for any other :class:`BaseException` its behaviour is undefined (in
    practice the exception escapes, the remaining callbacks never run, and in
    the pool's thread it kills the thread, so every queued task is stranded).
    threadkit documents: every callback runs, then the first such exception is
    re-raised in the calling thread, or, in the owner thread, routed to the
    error hook.  Everything else is the stdlib's own code.
    """

    _pool: DocumentedPool

    def _invoke_callbacks(self) -> None:
        interrupts: list[BaseException] = []
        for callback in self._done_callbacks:  # type: ignore[attr-defined]  # set by Future.__init__
            try:
                callback(self)
            except Exception:
                LOGGER.exception("exception calling callback for %r", self)
            except BaseException as exc:  # routed as threadkit documents (class docstring)
                interrupts.append(exc)
        if not interrupts:
            return
        if threading.current_thread() in self._pool._threads:
            self._pool.reported.extend(interrupts)
            return
        try:
            raise interrupts[0]
        finally:
            interrupts.clear()


def _after(swapped: threading.Event, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
    # The future's class is swapped right after submit() returns; the task
    # must not settle it before that.
    swapped.wait(WAIT)
    return fn(*args, **kwargs)


class DocumentedPool(InProcess, cf.ThreadPoolExecutor):
    """The stdlib pool with one thread, and threadkit's documented answers to its open questions.

    Three deviations, each where the stdlib's behaviour is undefined or a
    known stdlib wart, and each documented by threadkit:

    * done-callbacks: see :class:`_DocumentedFuture`;
    * ``shutdown(cancel_futures=True)``: a cancelled future's callback that
      raises a BaseException does not stop the shutdown (the stdlib's escapes
      from the middle of its drain and never queues the stop marker, so the
      pool's thread never exits); every queued task is cancelled and the
      first such exception is raised after.  The cancelled futures are also
      *noticed* (``CANCELLED_AND_NOTIFIED``), so ``wait()`` and
      ``as_completed()`` count them as done; the stdlib leaves them
      ``CANCELLED``, which those functions never count, so they would hang;
    * ``shutdown(wait=True)`` from the pool's own thread only begins the
      shutdown (the stdlib raises "cannot join current thread").
    """

    stdlib_words = True

    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.reported: list[BaseException] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        swapped = threading.Event()
        future = super().submit(_after, swapped, fn, args, kwargs)
        future.__class__ = _DocumentedFuture
        assert isinstance(future, _DocumentedFuture)
        future._pool = self
        swapped.set()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        queued: list[Any] = []
        with self._shutdown_lock:
            self._shutdown = True
            if cancel_futures:
                while True:
                    try:
                        item = self._work_queue.get_nowait()
                    except Exception:  # queue.Empty
                        break
                    if item is not None:
                        queued.append(item)
        interrupts: list[BaseException] = []
        for item in queued:
            try:
                cancelled = item.future.cancel()
            except BaseException as exc:  # raised after the shutdown, as threadkit does
                # cancel() raises only from a callback, once the future is cancelled.
                interrupts.append(exc)
                cancelled = True
            if cancelled:
                # Noticed at once, callback or not: wait() counts it as done.
                item.future.set_running_or_notify_cancel()
        own = threading.current_thread() in self._threads
        super().shutdown(wait=wait and not own, cancel_futures=False)
        if interrupts:
            try:
                raise interrupts[0]
            finally:
                interrupts.clear()

    @property
    def token(self) -> threadkit.CancelToken | None:
        return None

    @property
    def owner(self) -> threading.Thread | None:
        return next(iter(self._threads), None)


# -- threadkit's faces -----------------------------------------------------------------


class _Reported(logging.Handler):
    """Collects the errors the ``"threadkit"`` logger reports for one worker name."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name_ = name
        self.errors: list[BaseException] = []

    def emit(self, record: logging.LogRecord) -> None:
        # "error in threadkit %s %r" % (kind, name): the executor's name is last.
        args = record.args
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(args, tuple) and args[-1:] == (self.name_,) and exc is not None:
            self.errors.append(exc)


class SerialExecutorFace(InProcess, threadkit.SerialExecutor):
    """:class:`threadkit.SerialExecutor` itself; it reports through the ``"threadkit"`` logger."""

    stdlib_words = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._handler = _Reported(self.name)
        logging.getLogger("threadkit").addHandler(self._handler)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        super().shutdown(wait, cancel_futures=cancel_futures)

    @property
    def owner(self) -> threading.Thread | None:
        return self.thread

    @property
    def reported(self) -> list[BaseException]:
        return self._handler.errors

    def forget(self) -> None:
        logging.getLogger("threadkit").removeHandler(self._handler)


def _without_resource(_resource: object, fn: Callable[..., Any], /, *args: Any) -> Any:
    return fn(*args)


class WorkerFace(InProcess, cf.Executor):
    """:class:`threadkit.ResourceWorker` as an executor: ``fn(*args)`` ignores the resource.

    ``map`` is the standard library's :meth:`concurrent.futures.Executor.map`
    over this ``submit``.
    """

    stdlib_words = False

    def __init__(self, **kwargs: Any) -> None:
        self.errors: list[BaseException] = []
        kwargs.setdefault("error_hook", self.errors.append)
        self.worker: threadkit.ResourceWorker[Any] = threadkit.ResourceWorker(
            kwargs.pop("factory", object), **kwargs
        ).start()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        assert not kwargs, "the adapter passes positional arguments only"
        return self.worker.submit(_without_resource, fn, *args)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.worker.shutdown(wait, cancel_futures=cancel_futures)

    @property
    def token(self) -> threadkit.CancelToken | None:
        return self.worker.token

    @property
    def owner(self) -> threading.Thread | None:
        return self.worker.thread

    @property
    def reported(self) -> list[BaseException]:
        return self.errors

    def forget(self) -> None:
        pass


# -- the Ray face ----------------------------------------------------------------------


class _Board:
    """A Ray actor holding the shared lists and events of the Ray face's tests (async:
    a wait for an event must not stop its set from running)."""

    def __init__(self) -> None:
        self.lists: dict[int, list[Any]] = {}
        self.events: dict[int, asyncio.Event] = {}

    async def append(self, key: int, value: Any) -> None:
        self.lists.setdefault(key, []).append(value)

    async def snapshot(self, key: int) -> list[Any]:
        return list(self.lists.get(key, []))

    async def set(self, key: int) -> None:
        self.events.setdefault(key, asyncio.Event()).set()

    async def is_set(self, key: int) -> bool:
        return key in self.events and self.events[key].is_set()

    async def wait(self, key: int, timeout: float) -> bool:
        event = self.events.setdefault(key, asyncio.Event())
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            return False
        return True


_board: Any = None
_keys = iter(range(1, 1 << 62))  # next() on a range iterator: atomic


def board() -> Any:
    """The session's board actor (the ray_cluster fixture has started Ray)."""
    global _board
    if _board is None:
        import ray  # noqa: PLC0415  # only where Ray is

        _board = ray.remote(num_cpus=0)(_Board).remote()
    return _board


class RemoteList:
    """A list any process can append to; ``snapshot()`` reads it."""

    def __init__(self) -> None:
        self.board, self.key = board(), next(_keys)

    def append(self, value: Any) -> None:
        import ray  # noqa: PLC0415

        ray.get(self.board.append.remote(self.key, value), timeout=WAIT)

    def snapshot(self) -> list[Any]:
        import ray  # noqa: PLC0415

        return list(ray.get(self.board.snapshot.remote(self.key), timeout=WAIT))


class RemoteEvent:
    """A :class:`threading.Event` any process can set and wait for."""

    def __init__(self) -> None:
        self.board, self.key = board(), next(_keys)

    def set(self) -> None:
        import ray  # noqa: PLC0415

        ray.get(self.board.set.remote(self.key), timeout=WAIT)

    def is_set(self) -> bool:
        import ray  # noqa: PLC0415

        return bool(ray.get(self.board.is_set.remote(self.key), timeout=WAIT))

    def wait(self, timeout: float) -> bool:
        import ray  # noqa: PLC0415

        return bool(ray.get(self.board.wait.remote(self.key, timeout), timeout=timeout + WAIT))


class RayWorkerFace(cf.Executor):
    """:class:`threadkit.ray.RayWorker` as an executor, like :class:`WorkerFace`."""

    stdlib_words = False
    same_process = False

    def __init__(self, **kwargs: Any) -> None:
        from threadkit.ray import RayWorker  # noqa: PLC0415  # only where Ray is

        self.errors: list[BaseException] = []
        kwargs.setdefault("error_hook", self.errors.append)
        self.worker: Any = RayWorker(kwargs.pop("factory", object), **kwargs).start()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        assert not kwargs, "the adapter passes positional arguments only"
        return self.worker.submit(_without_resource, fn, *args)  # type: ignore[no-any-return]

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.worker.shutdown(wait, cancel_futures=cancel_futures)

    def shared_list(self) -> RemoteList:
        return RemoteList()

    def shared_event(self) -> RemoteEvent:
        return RemoteEvent()

    @property
    def token(self) -> threadkit.CancelToken | None:
        return None

    @property
    def owner(self) -> threading.Thread | None:
        return None

    @property
    def reported(self) -> list[BaseException]:
        return self.errors

    def forget(self) -> None:
        pass


def _ray_importable() -> bool:
    if importlib.util.find_spec("ray") is not None:
        return True
    if os.environ.get("THREADKIT_REQUIRE_RAY") == "1":
        raise ImportError("THREADKIT_REQUIRE_RAY=1 but ray is not importable")
    return False


RAY = _ray_importable()

# name -> constructor (keyword arguments are the face's own, e.g. a ResourceWorker's
# factory or close); the contract suite runs once per entry.
FACES: dict[str, Callable[..., Any]] = {
    "ResourceWorker": WorkerFace,
    "SerialExecutor": SerialExecutorFace,
}
# The faces whose requests run in this process, on the test's own objects: the
# ones the stdlib oracle can compare on generated programs (tests/test_oracle_executor.py).
IN_PROCESS_FACES: dict[str, Callable[..., Any]] = dict(FACES)
if RAY:
    FACES["RayWorker"] = RayWorkerFace
