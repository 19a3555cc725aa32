"""How a request travels: its arguments and keyword arguments, and the name it goes by.

A request is queued as ``(tag, fn, *args)`` with its keyword arguments bound
into *fn* beforehand (threadkit._engine), so these tests pin what that must
not change: every keyword reaches the function whatever its name, and a
request is named after the user's function in error notes and in dump().
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

import pytest

import threadkit
from tests.conftest import WAIT
from threadkit import _engine
from threadkit._future import LazyFuture


def echo(*args: Any, **kwargs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return args, kwargs


# Names a careless binding would take for its own: the method's, partial's, ours.
AWKWARD = {"fn": 1, "self": 2, "func": 3, "args": 4, "keywords": 5, "kwargs": 6}


def test_keyword_arguments_reach_a_worker_request_whatever_their_names() -> None:
    with threadkit.ResourceWorker(lambda: "db") as w:
        assert w.call(echo, 7, **AWKWARD) == (("db", 7), AWKWARD)
        assert w.submit(echo, **AWKWARD).result(WAIT) == (("db",), AWKWARD)
        seen: list[Any] = []
        w.post(lambda r, **kw: seen.append((r, kw)), **AWKWARD)
        w.call(echo)  # FIFO: the post has run
    assert seen == [("db", AWKWARD)]


def test_keyword_arguments_reach_an_executor_task_whatever_their_names() -> None:
    with threadkit.SerialExecutor() as ex:
        assert ex.submit(echo, 7, **AWKWARD).result(WAIT) == ((7,), AWKWARD)


def test_a_failing_post_with_keyword_arguments_is_named_after_its_function() -> None:
    errors: list[BaseException] = []

    def fail(_r: object, *, why: str) -> None:
        raise ValueError(why)

    with threadkit.ResourceWorker(object, error_hook=errors.append, name="p") as w:
        w.post(fail, why="no")
    assert [str(e) for e in errors] == ["no"]
    assert errors[0].__notes__ == [
        "(raised by post(test_a_failing_post_with_keyword_arguments_is_named_after_its_function"
        ".<locals>.fail) in threadkit worker 'p')"
    ]


@pytest.mark.parametrize("with_kwargs", [False, True])
def test_dump_names_the_function_a_worker_runs(with_kwargs: bool) -> None:
    started, release = threading.Event(), threading.Event()

    def stuck_request(_r: object, **_kw: object) -> None:
        started.set()
        release.wait(WAIT)

    with threadkit.ResourceWorker(object, name="db") as w:
        kwargs = {"table": "t"} if with_kwargs else {}
        w.post(stuck_request, **kwargs)
        assert started.wait(WAIT)
        try:
            report = threadkit.dump()
        finally:
            release.set()
    line = next(x for x in report.splitlines() if x.startswith("  worker 'db'"))
    assert line.endswith(
        "running test_dump_names_the_function_a_worker_runs.<locals>.stuck_request()"
    )


class _Thing:
    """Something a weakref can watch."""


class Boom(ValueError):
    """A failure a weakref can watch."""


@pytest.mark.usefixtures("no_automatic_gc")
def test_a_late_request_that_failed_keeps_nothing_alive_once_its_outcome_is_dropped() -> None:
    """White-box: the final sweep's requests run in the same loop, fed by a generator.

    The exception's traceback holds the loop's frame, and that frame the
    generator that holds the swept requests: unless the loop drops its
    getter, exc -> traceback -> frame -> generator -> request -> future -> exc
    keeps them all until the cycle collector runs.
    """
    w = threadkit.ResourceWorker(object, name="late")  # never started: its core will do
    core = w._core
    arg = _Thing()
    arg_ref = weakref.ref(arg)

    def fail(_r: object, _arg: _Thing) -> None:
        raise Boom("late")

    future: LazyFuture[None] = LazyFuture()
    future._core = core
    late = [(future, fail, None, arg)]
    del arg
    _engine.execute_all(core, _engine._late_requests(core, late).__next__)
    exc = future.exception(0)
    assert exc is not None
    exc_ref = weakref.ref(exc)
    del future, late, exc
    assert exc_ref() is None
    assert arg_ref() is None
