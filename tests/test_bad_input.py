"""Bad input: every public call with wrong types, wrong values and in wrong states.

Each case raises :class:`TypeError`, :class:`ValueError` or a threadkit error
*at the call*, with the exact message (which names the argument, or says what
the caller did), and leaves the object usable: a valid call on the same object
follows every case.  Hypothesis then throws values of every wrong type at each
typed argument.

The cases are also the docs' table of errors: ``docs/errors_table.rst`` is
generated from :data:`CASES` and a test fails when it is stale.  Regenerate it
with ``python -m tests.test_bad_input > docs/errors_table.rst``.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import re
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import threadkit

from .conftest import WAIT

TABLE = Path(__file__).parent.parent / "docs" / "errors_table.rst"


@dataclass
class World:
    """Live objects a case may misuse; each is checked to be usable afterwards."""

    worker: threadkit.ResourceWorker[list[int]]
    new_worker: threadkit.ResourceWorker[list[int]]
    closed_worker: threadkit.ResourceWorker[list[int]]
    executor: threadkit.SerialExecutor
    closed_executor: threadkit.SerialExecutor
    token: threadkit.CancelToken
    task: threadkit.Task[int]
    group: threadkit.TaskGroup


@pytest.fixture
def world() -> Iterator[World]:
    closed_worker = threadkit.ResourceWorker(list, name="closed").start()
    closed_worker.shutdown()
    closed_executor = threadkit.SerialExecutor()
    closed_executor.shutdown()
    task = threadkit.spawn(int, 7)
    task.join(WAIT)
    w = World(
        worker=threadkit.ResourceWorker(list, name="db").start(),
        new_worker=threadkit.ResourceWorker(list, name="new"),
        closed_worker=closed_worker,
        executor=threadkit.SerialExecutor(),
        closed_executor=closed_executor,
        token=threadkit.CancelToken(),
        task=task,
        group=threadkit.TaskGroup(name="g"),
    )
    yield w
    w.worker.shutdown()
    w.new_worker.shutdown()
    w.executor.shutdown()


@dataclass(frozen=True)
class Case:
    """One bad call: what is called, with what, and what it raises."""

    call: str
    bad: str
    exc: type[BaseException]
    message: str
    attempt: Callable[[World], object]
    # A valid call afterwards, on the same object where there is one.
    then: Callable[[World], object]


def _worker(**kwargs: Any) -> object:
    return threadkit.ResourceWorker(list, **kwargs)


def _executor(**kwargs: Any) -> object:
    return threadkit.SerialExecutor(**kwargs)


def _valid_worker(_: World) -> object:
    w = threadkit.ResourceWorker(list, name="ok").start()
    w.shutdown()
    return w


def _valid_executor(_: World) -> object:
    with threadkit.SerialExecutor() as ex:
        return ex.submit(int).result(WAIT)


def _worker_still_works(w: World) -> object:
    assert w.worker.call(lambda r: (r.append(1), len(r))[1]) >= 1
    return w


def _executor_still_works(w: World) -> object:
    assert w.executor.submit(int, "3").result(WAIT) == 3
    return w


def _token_still_works(w: World) -> object:
    assert w.token.cancel("ok")
    assert w.token.wait(0)
    return w


def _task_still_works(w: World) -> object:
    assert w.task.result(WAIT) == 7
    return w


def _call_from_owner(w: World) -> object:
    return w.worker.call(lambda _r: w.worker.call(len))


def _spawn_twice_entered(w: World) -> object:
    with w.group:
        pass
    with w.group:
        pass
    return None


def _enter_then_spawn_after(w: World) -> object:
    with w.group:
        pass
    return w.group.spawn(int)


def _group_still_works(w: World) -> object:
    with threadkit.TaskGroup() as g:
        t = g.spawn(int, 5)
    assert t.result(0) == 5
    return w


def _start_then_call(w: World) -> object:
    w.new_worker.start()
    assert w.new_worker.call(len) == 0
    return w


def _closed_stays_closed(w: World) -> object:
    w.closed_worker.shutdown()  # idempotent
    assert w.closed_worker.closed
    return w


def _task_result_from_inside(w: World) -> object:
    box: list[threadkit.Task[object]] = []
    ready = threading.Event()

    def body() -> object:
        ready.wait(WAIT)
        return box[0].result()

    box.append(threadkit.spawn(body))
    ready.set()
    return box[0].result(WAIT)


def _group_spawn_bad(w: World) -> object:
    # Caught inside the block, which would otherwise wrap it in an
    # ExceptionGroup; the group then takes a valid task all the same.
    error: TypeError | None = None
    with w.group as g:
        try:
            g.spawn(3)  # type: ignore[arg-type]
        except TypeError as exc:
            error = exc
        assert g.spawn(int, 4).result(WAIT) == 4
    assert error is not None
    raise error


class Client:
    """A resource that happens to be callable (as a ``sqlite3.Connection`` is)."""

    def __call__(self, query: str) -> str:
        return query


class OldStyle(threadkit.ResourceWorker[list[int]]):
    """A subclass written for the hooks' old names, which would be ignored."""

    def close(self, resource: list[int]) -> None:
        resource.clear()


async def fetch(resource: object = None) -> None:
    """What a newcomer passes by mistake: a coroutine function."""


_NOT_RUN = (
    ": it would not run in a thread; in an async function await it directly, or pass a "
    "function that runs it with asyncio.run() (asyncio.run_coroutine_threadsafe() for a "
    "loop in another thread)"
)


def _coroutine_refused(lead: str, what: str = "coroutine function 'fetch'") -> str:
    return f"{lead} a synchronous callable, got {what}{_NOT_RUN}"


CASES: list[Case] = [
    # -- ResourceWorker() --
    Case(
        "ResourceWorker()",
        "no factory",
        TypeError,
        "ResourceWorker() needs a factory callable (or a subclass overriding on_open())",
        lambda w: threadkit.ResourceWorker(),
        _valid_worker,
    ),
    Case(
        "ResourceWorker subclass",
        "defines close()",
        TypeError,
        "OldStyle defines close(), which is not a hook: override on_close() (the hooks are "
        "on_open, on_close, on_begin_batch and on_end_batch)",
        lambda w: OldStyle(list),
        _valid_worker,
    ),
    Case(
        "ResourceWorker(factory).start()",
        "a resource, not a factory",
        TypeError,
        "the factory of worker 'db' is a 'Client' object, whose call failed: pass a function "
        "that makes the resource, such as lambda: sqlite3.connect(path), not the resource "
        "itself; the factory is called in the owner thread, so that the resource belongs to it",
        lambda w: threadkit.ResourceWorker(Client(), name="db").start(),  # type: ignore[arg-type]
        _valid_worker,
    ),
    Case(
        "ResourceWorker(factory)",
        "factory=3",
        TypeError,
        "factory must be callable, got 'int'",
        lambda w: threadkit.ResourceWorker(3),  # type: ignore[arg-type]
        _valid_worker,
    ),
    *[
        Case(
            f"ResourceWorker({arg}=...)",
            f"{arg}='x'",
            TypeError,
            f"{arg} must be callable, got 'str'",
            lambda w, arg=arg: _worker(**{arg: "x"}),  # type: ignore[misc]
            _valid_worker,
        )
        for arg in ("close", "error_hook", "begin_batch", "end_batch")
    ],
    Case(
        "ResourceWorker(name=...)",
        "name=3",
        TypeError,
        "name must be a str or None, got 'int'",
        lambda w: _worker(name=3),
        _valid_worker,
    ),
    Case(
        "ResourceWorker(maxsize=...)",
        "maxsize='8'",
        TypeError,
        "maxsize must be an int, got 'str'",
        lambda w: _worker(maxsize="8"),
        _valid_worker,
    ),
    Case(
        "ResourceWorker(maxsize=...)",
        "maxsize=True",
        TypeError,
        "maxsize must be an int, got 'bool'",
        lambda w: _worker(maxsize=True),
        _valid_worker,
    ),
    Case(
        "ResourceWorker(maxsize=...)",
        "maxsize=-1",
        ValueError,
        "maxsize must be >= 0, got -1",
        lambda w: _worker(maxsize=-1),
        _valid_worker,
    ),
    Case(
        "ResourceWorker(max_batch=...)",
        "max_batch=0",
        ValueError,
        "max_batch must be >= 1, got 0",
        lambda w: _worker(max_batch=0),
        _valid_worker,
    ),
    Case(
        "ResourceWorker(max_batch=...)",
        "max_batch=2.5",
        TypeError,
        "max_batch must be an int, got 'float'",
        lambda w: _worker(max_batch=2.5),
        _valid_worker,
    ),
    Case(
        "ResourceWorker(put_timeout=...)",
        "put_timeout='1', maxsize=1",
        TypeError,
        "put_timeout must be a number or None, got 'str'",
        lambda w: _worker(maxsize=1, put_timeout="1"),
        _valid_worker,
    ),
    Case(
        "ResourceWorker(put_timeout=...)",
        "put_timeout=-1, maxsize=1",
        ValueError,
        "put_timeout must be >= 0, got -1",
        lambda w: _worker(maxsize=1, put_timeout=-1),
        _valid_worker,
    ),
    Case(
        "ResourceWorker(put_timeout=...)",
        "put_timeout=1, maxsize=0",
        ValueError,
        "put_timeout needs a bounded mailbox (maxsize > 0)",
        lambda w: _worker(put_timeout=1),
        _valid_worker,
    ),
    # -- ResourceWorker methods --
    *[
        Case(
            f"ResourceWorker.{method}(fn)",
            "fn=3",
            TypeError,
            f"{method}() needs a callable, got 'int'",
            lambda w, method=method: getattr(w.worker, method)(3),  # type: ignore[misc]
            _worker_still_works,
        )
        for method in ("submit", "call", "post")
    ],
    Case(
        "ResourceWorker.start()",
        "started twice",
        RuntimeError,
        "worker 'db' can only be started once",
        lambda w: w.worker.start(),
        _worker_still_works,
    ),
    Case(
        "ResourceWorker.submit(fn)",
        "before start()",
        threadkit.WorkerClosed,
        "cannot submit to worker 'new' before start(); "
        "call start() or use the worker in a with block",
        lambda w: w.new_worker.submit(len),
        _start_then_call,
    ),
    *[
        Case(
            f"ResourceWorker.{method}(fn)",
            "after shutdown()",
            threadkit.WorkerClosed,
            f"cannot {verb} worker 'closed' after shutdown",
            lambda w, method=method: getattr(w.closed_worker, method)(len),  # type: ignore[misc]
            _closed_stays_closed,
        )
        for method, verb in (("submit", "submit to"), ("call", "call"), ("post", "post to"))
    ],
    Case(
        "ResourceWorker.call(fn)",
        "from the owner thread",
        threadkit.DeadlockError,
        "call() from the owner thread of worker 'db' would wait for itself forever; "
        "call the function on the resource directly, or use submit()",
        _call_from_owner,
        _worker_still_works,
    ),
    Case(
        "ResourceWorker.asubmit(fn)",
        "no running event loop",
        RuntimeError,
        "no running event loop",
        lambda w: w.worker.asubmit(len),
        _worker_still_works,
    ),
    # -- SerialExecutor --
    Case(
        "SerialExecutor(max_workers)",
        "max_workers=0",
        ValueError,
        "max_workers must be greater than 0",
        lambda w: _executor(max_workers=0),
        _valid_executor,
    ),
    Case(
        "SerialExecutor(max_workers)",
        "max_workers=2",
        ValueError,
        "SerialExecutor runs one task at a time: max_workers must be 1 or None, got 2",
        lambda w: _executor(max_workers=2),
        _valid_executor,
    ),
    Case(
        "SerialExecutor(max_workers)",
        "max_workers='1'",
        TypeError,
        "max_workers must be an int, got 'str'",
        lambda w: _executor(max_workers="1"),
        _valid_executor,
    ),
    Case(
        "SerialExecutor(thread_name_prefix)",
        "thread_name_prefix=3",
        TypeError,
        "thread_name_prefix must be a str, got 'int'",
        lambda w: _executor(thread_name_prefix=3),
        _valid_executor,
    ),
    Case(
        "SerialExecutor(initializer)",
        "initializer=3",
        TypeError,
        "initializer must be callable, got 'int'",
        lambda w: _executor(initializer=3),
        _valid_executor,
    ),
    Case(
        "SerialExecutor(initargs)",
        "initargs=[1]",
        TypeError,
        "initargs must be a tuple, got 'list'",
        lambda w: _executor(initializer=print, initargs=[1]),
        _valid_executor,
    ),
    Case(
        "SerialExecutor(name=...)",
        "name=b'x'",
        TypeError,
        "name must be a str or None, got 'bytes'",
        lambda w: _executor(name=b"x"),
        _valid_executor,
    ),
    Case(
        "SerialExecutor(maxsize=...)",
        "maxsize=-3",
        ValueError,
        "maxsize must be >= 0, got -3",
        lambda w: _executor(maxsize=-3),
        _valid_executor,
    ),
    Case(
        "SerialExecutor(put_timeout=...)",
        "put_timeout=1, maxsize=0",
        ValueError,
        "put_timeout needs a bounded mailbox (maxsize > 0)",
        lambda w: _executor(put_timeout=1),
        _valid_executor,
    ),
    Case(
        "SerialExecutor.submit(fn)",
        "fn=None",
        TypeError,
        "submit() needs a callable, got 'NoneType'",
        lambda w: w.executor.submit(None),  # type: ignore[arg-type]
        _executor_still_works,
    ),
    Case(
        "SerialExecutor.map(fn)",
        "fn=3",
        TypeError,
        "map() needs a callable, got 'int'",
        lambda w: w.executor.map(3, [1]),  # type: ignore[arg-type]
        _executor_still_works,
    ),
    Case(
        "SerialExecutor.map(timeout=...)",
        "timeout='1'",
        TypeError,
        "timeout must be a number or None, got 'str'",
        lambda w: w.executor.map(int, ["1"], timeout="1"),  # type: ignore[arg-type]
        _executor_still_works,
    ),
    Case(
        "SerialExecutor.submit(fn)",
        "after shutdown()",
        threadkit.WorkerClosed,
        "cannot schedule new futures after shutdown",
        lambda w: w.closed_executor.submit(int),
        lambda w: w.closed_executor.shutdown(),
    ),
    # -- coroutines where a thread needs a function --
    *[
        Case(
            f"ResourceWorker.{method}(fn)",
            "fn=an async def",
            TypeError,
            _coroutine_refused(f"{method}() needs"),
            lambda w, method=method: getattr(w.worker, method)(fetch),  # type: ignore[misc]
            _worker_still_works,
        )
        for method in ("submit", "call", "post")
    ],
    Case(
        "ResourceWorker.submit(fn)",
        "fn=fetch()",
        TypeError,
        _coroutine_refused("submit() needs", "a coroutine object 'fetch'"),
        lambda w: w.worker.submit(fetch()),  # type: ignore[arg-type]
        _worker_still_works,
    ),
    Case(
        "ResourceWorker(factory)",
        "factory=an async def",
        TypeError,
        _coroutine_refused("factory must be"),
        lambda w: threadkit.ResourceWorker(fetch),
        _valid_worker,
    ),
    Case(
        "SerialExecutor.submit(fn)",
        "fn=an async def",
        TypeError,
        _coroutine_refused("submit() needs"),
        lambda w: w.executor.submit(fetch),
        _executor_still_works,
    ),
    Case(
        "SerialExecutor(initializer=...)",
        "initializer=an async def",
        TypeError,
        _coroutine_refused("initializer must be"),
        lambda w: threadkit.SerialExecutor(initializer=fetch),
        _valid_executor,
    ),
    Case(
        "spawn(fn)",
        "fn=an async def",
        TypeError,
        _coroutine_refused("spawn() needs"),
        lambda w: threadkit.spawn(fetch),
        _task_still_works,
    ),
    # -- spawn, Task, TaskGroup --
    Case(
        "spawn(fn)",
        "fn=3",
        TypeError,
        "spawn() needs a callable, got 'int'",
        lambda w: threadkit.spawn(3),  # type: ignore[arg-type]
        _task_still_works,
    ),
    Case(
        "Task.name = ...",
        "name=3",
        TypeError,
        "name must be a str, got 'int'",
        lambda w: setattr(w.task, "name", 3),
        _task_still_works,
    ),
    *[
        Case(
            f"Task.{method}(timeout)",
            "timeout=-1",
            ValueError,
            "timeout must be >= 0, got -1",
            lambda w, method=method: getattr(w.task, method)(-1),  # type: ignore[misc]
            _task_still_works,
        )
        for method in ("result", "exception", "join")
    ],
    Case(
        "Task.result(timeout)",
        "timeout='5'",
        TypeError,
        "timeout must be a number or None, got 'str'",
        lambda w: w.task.result("5"),  # type: ignore[arg-type]
        _task_still_works,
    ),
    Case(
        "Task.result()",
        "from the task itself",
        threadkit.DeadlockError,
        "result() of task 'Task-N (_task_result_from_inside.<locals>.body)' was called "
        "from the task itself; it would wait forever",
        _task_result_from_inside,
        _task_still_works,
    ),
    Case(
        "TaskGroup(name=...)",
        "name=3",
        TypeError,
        "name must be a str or None, got 'int'",
        lambda w: threadkit.TaskGroup(name=3),  # type: ignore[arg-type]
        _group_still_works,
    ),
    Case(
        "TaskGroup(name)",
        "a positional name",
        TypeError,
        "TaskGroup.__init__() takes 1 positional argument but 2 were given",
        lambda w: threadkit.TaskGroup("g"),  # type: ignore[misc]
        _group_still_works,
    ),
    Case(
        "TaskGroup(daemon=...)",
        "daemon='yes'",
        TypeError,
        "daemon must be a bool or None, got 'str'",
        lambda w: threadkit.TaskGroup(daemon="yes"),  # type: ignore[arg-type]
        _group_still_works,
    ),
    Case(
        "TaskGroup(timeout=...)",
        "timeout=-0.5",
        ValueError,
        "timeout must be >= 0, got -0.5",
        lambda w: threadkit.TaskGroup(timeout=-0.5),
        _group_still_works,
    ),
    Case(
        "TaskGroup(timeout=...)",
        "timeout='1'",
        TypeError,
        "timeout must be a number or None, got 'str'",
        lambda w: threadkit.TaskGroup(timeout="1"),  # type: ignore[arg-type]
        _group_still_works,
    ),
    Case(
        "TaskGroup.spawn(fn)",
        "before the with block",
        threadkit.GroupClosed,
        "cannot spawn into task group 'g' before its with block is entered",
        lambda w: w.group.spawn(int),
        _group_still_works,
    ),
    Case(
        "TaskGroup.spawn(fn)",
        "after the with block",
        threadkit.GroupClosed,
        "cannot spawn into task group 'g' after it has ended",
        _enter_then_spawn_after,
        _group_still_works,
    ),
    Case(
        "TaskGroup.__enter__()",
        "entered twice",
        RuntimeError,
        "task group 'g' can only be entered once",
        _spawn_twice_entered,
        _group_still_works,
    ),
    Case(
        "TaskGroup.spawn(fn)",
        "fn=3",
        TypeError,
        "spawn() needs a callable, got 'int'",
        _group_spawn_bad,
        _group_still_works,
    ),
    # -- CancelToken, current_token --
    Case(
        "CancelToken(parent=...)",
        "parent=3",
        TypeError,
        "parent must be a CancelToken or None, got 'int'",
        lambda w: threadkit.CancelToken(parent=3),  # type: ignore[arg-type]
        _token_still_works,
    ),
    Case(
        "CancelToken.wait(timeout)",
        "timeout=-1",
        ValueError,
        "timeout must be >= 0, got -1",
        lambda w: w.token.wait(-1),
        _token_still_works,
    ),
    Case(
        "CancelToken.wait(timeout)",
        "timeout=[1]",
        TypeError,
        "timeout must be a number or None, got 'list'",
        lambda w: w.token.wait([1]),  # type: ignore[arg-type]
        _token_still_works,
    ),
    Case(
        "CancelToken.on_cancel(callback)",
        "callback=3",
        TypeError,
        "on_cancel() needs a callable, got 'int'",
        lambda w: w.token.on_cancel(3),  # type: ignore[arg-type]
        _token_still_works,
    ),
    Case(
        "current_token().cancel()",
        "outside any task",
        RuntimeError,
        "cannot cancel the token current_token() returns outside any task; "
        "create a CancelToken() to cancel",
        lambda w: threadkit.current_token().cancel(),
        _token_still_works,
    ),
]


def _pattern(message: str) -> str:
    # Task names carry a counter; the table shows it as N.
    return "^" + re.escape(message).replace("Task\\-N", r"Task-\d+") + "$"


@pytest.mark.parametrize("case", CASES, ids=[f"{c.call} {c.bad}" for c in CASES])
def test_bad_input_raises_at_the_call_with_a_message_and_the_object_stays_usable(
    case: Case, world: World
) -> None:
    with pytest.raises(case.exc, match=_pattern(case.message)) as info:
        case.attempt(world)
    assert type(info.value) is case.exc
    case.then(world)


# -- hypothesis: every wrong type, for every typed argument -----------------------

# A value of any of many types; each property below filters out the right ones.
anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.complex_numbers(allow_nan=False),
    st.text(max_size=5),
    st.binary(max_size=5),
    st.lists(st.integers(), max_size=3),
    st.tuples(st.integers()),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.sets(st.integers(), max_size=2),
    st.builds(object),
    st.from_type(type).filter(lambda t: not callable(t)),
)


def _type_name(value: object) -> str:
    return type(value).__name__


CALLABLE_ARGS: dict[str, Callable[[object], object]] = {
    "factory": threadkit.ResourceWorker,
    "close": lambda v: _worker(close=v),
    "error_hook": lambda v: _worker(error_hook=v),
    "begin_batch": lambda v: _worker(begin_batch=v),
    "end_batch": lambda v: _worker(end_batch=v),
    "initializer": lambda v: _executor(initializer=v),
}


@settings(max_examples=60)
@given(arg=st.sampled_from(sorted(CALLABLE_ARGS)), value=anything)
def test_every_non_callable_is_refused_naming_the_argument(arg: str, value: object) -> None:
    # None means "not given" for every one of them but factory.
    assume(value is not None and not callable(value))
    with pytest.raises(TypeError, match=rf"^{arg} must be callable, got '{_type_name(value)}'$"):
        CALLABLE_ARGS[arg](value)


INT_ARGS: dict[str, Callable[[object], object]] = {
    "maxsize": lambda v: _worker(maxsize=v),
    "max_batch": lambda v: _worker(max_batch=v),
}


@settings(max_examples=60)
@given(arg=st.sampled_from(sorted(INT_ARGS)), value=anything)
def test_every_non_int_count_is_refused_naming_the_argument(arg: str, value: object) -> None:
    assume(isinstance(value, bool) or not isinstance(value, int))
    with pytest.raises(TypeError, match=rf"^{arg} must be an int, got '{_type_name(value)}'$"):
        INT_ARGS[arg](value)


@settings(max_examples=60)
@given(arg=st.sampled_from(["maxsize", "max_batch"]), value=st.integers(max_value=-1))
def test_every_negative_count_is_refused_naming_the_argument_and_the_value(
    arg: str, value: int
) -> None:
    minimum = 0 if arg == "maxsize" else 1
    with pytest.raises(ValueError, match=rf"^{arg} must be >= {minimum}, got {value}$"):
        INT_ARGS[arg](value)


TIMEOUT_ARGS: dict[str, Callable[[object], object]] = {
    "TaskGroup(timeout=...)": lambda v: threadkit.TaskGroup(timeout=v),  # type: ignore[arg-type]
    "CancelToken().wait(...)": lambda v: threadkit.CancelToken().wait(v),  # type: ignore[arg-type]
    "Task.result(...)": lambda v: _finished_task().result(v),  # type: ignore[arg-type]
    "Task.join(...)": lambda v: _finished_task().join(v),  # type: ignore[arg-type]
}


def _finished_task() -> threadkit.Task[int]:
    task = threadkit.spawn(int)
    task.join(WAIT)
    return task


@settings(max_examples=60)
@given(where=st.sampled_from(sorted(TIMEOUT_ARGS)), value=anything)
def test_every_timeout_that_is_not_a_number_is_refused(where: str, value: object) -> None:
    assume(value is not None)
    assume(isinstance(value, bool) or not isinstance(value, int | float))
    with pytest.raises(
        TypeError, match=rf"^timeout must be a number or None, got '{_type_name(value)}'$"
    ):
        TIMEOUT_ARGS[where](value)


@settings(max_examples=60)
@given(
    where=st.sampled_from(sorted(TIMEOUT_ARGS)),
    value=st.one_of(st.integers(max_value=-1), st.floats(max_value=-1e-9, allow_nan=False)),
)
def test_every_negative_timeout_is_refused_with_its_value(where: str, value: float) -> None:
    with pytest.raises(ValueError, match=rf"^timeout must be >= 0, got {re.escape(str(value))}$"):
        TIMEOUT_ARGS[where](value)


NAMED: dict[str, Callable[[object], object]] = {
    "ResourceWorker": lambda v: _worker(name=v),
    "SerialExecutor": lambda v: _executor(name=v),
    "TaskGroup": lambda v: threadkit.TaskGroup(name=v),  # type: ignore[arg-type]
}


@settings(max_examples=60)
@given(where=st.sampled_from(sorted(NAMED)), value=anything)
def test_every_name_that_is_not_a_string_is_refused(where: str, value: object) -> None:
    assume(value is not None and not isinstance(value, str))
    with pytest.raises(
        TypeError, match=rf"^name must be a str or None, got '{_type_name(value)}'$"
    ):
        NAMED[where](value)


@settings(max_examples=60)
@given(method=st.sampled_from(["submit", "call", "post"]), value=anything)
def test_every_request_that_is_not_callable_is_refused_and_the_worker_goes_on(
    method: str, value: object
) -> None:
    assume(not callable(value))
    with threadkit.ResourceWorker(list) as w:
        with pytest.raises(
            TypeError, match=rf"^{method}\(\) needs a callable, got '{_type_name(value)}'$"
        ):
            getattr(w, method)(value)
        assert w.call(len) == 0


class _AsyncCall:
    async def __call__(self, resource: object = None) -> None:
        pass

    async def method(self, resource: object = None) -> None:
        pass


def _marked(resource: object = None) -> object:
    return fetch(resource)


if sys.version_info >= (3, 12):
    inspect.markcoroutinefunction(_marked)


async def _agen(resource: object = None) -> AsyncIterator[None]:
    yield None


ASYNC_FORMS: dict[str, tuple[Callable[[], object], str]] = {
    "async def": (lambda: fetch, "coroutine function 'fetch'"),
    "partial of an async def": (lambda: functools.partial(fetch), "coroutine function 'fetch'"),
    "nested partial": (
        lambda: functools.partial(functools.partial(fetch), None),
        "coroutine function 'fetch'",
    ),
    "async bound method": (lambda: _AsyncCall().method, "coroutine function '_AsyncCall.method'"),
    "async __call__": (_AsyncCall, "coroutine function '_AsyncCall.__call__'"),
    "async generator function": (lambda: _agen, "async generator function '_agen'"),
    "coroutine object": (fetch, "a coroutine object 'fetch'"),
}
if sys.version_info >= (3, 12):
    ASYNC_FORMS["markcoroutinefunction"] = (lambda: _marked, "coroutine function '_marked'")


def _in_group(fn: Any) -> object:
    # Caught inside the block, which would wrap it in an ExceptionGroup; the group then
    # takes a valid task all the same.
    error: TypeError | None = None
    with threadkit.TaskGroup() as g:
        try:
            g.spawn(fn)
        except TypeError as exc:
            error = exc
        assert g.spawn(int, 4).result(WAIT) == 4
    assert error is not None
    raise error


# Every place that runs a callable in a thread, with the words its refusal starts with.
ENTRY_POINTS: dict[str, tuple[Callable[[World, Any], object], str]] = {
    "ResourceWorker.submit": (lambda w, fn: w.worker.submit(fn), "submit() needs"),
    "ResourceWorker.call": (lambda w, fn: w.worker.call(fn), "call() needs"),
    "ResourceWorker.post": (lambda w, fn: w.worker.post(fn), "post() needs"),
    "ResourceWorker.asubmit": (
        lambda w, fn: asyncio.run(_asubmit(w.worker, fn)),
        "asubmit() needs",
    ),
    "ResourceWorker.acall": (lambda w, fn: asyncio.run(w.worker.acall(fn)), "acall() needs"),
    "ResourceWorker(factory)": (lambda w, fn: threadkit.ResourceWorker(fn), "factory must be"),
    "ResourceWorker(close=...)": (lambda w, fn: _worker(close=fn), "close must be"),
    "ResourceWorker(error_hook=...)": (lambda w, fn: _worker(error_hook=fn), "error_hook must be"),
    "ResourceWorker(begin_batch=...)": (
        lambda w, fn: _worker(begin_batch=fn),
        "begin_batch must be",
    ),
    "ResourceWorker(end_batch=...)": (lambda w, fn: _worker(end_batch=fn), "end_batch must be"),
    "SerialExecutor.submit": (lambda w, fn: w.executor.submit(fn), "submit() needs"),
    "SerialExecutor.map": (lambda w, fn: w.executor.map(fn, [1]), "map() needs"),
    "SerialExecutor(initializer=...)": (
        lambda w, fn: _executor(initializer=fn),
        "initializer must be",
    ),
    "spawn": (lambda w, fn: threadkit.spawn(fn), "spawn() needs"),
    "TaskGroup.spawn": (lambda w, fn: _in_group(fn), "spawn() needs"),
}


async def _asubmit(worker: threadkit.ResourceWorker[Any], fn: Any) -> object:
    return worker.asubmit(fn)


@pytest.mark.parametrize("form", sorted(ASYNC_FORMS))
@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_every_async_callable_is_refused_wherever_a_thread_would_run_it(
    entry: str, form: str, world: World
) -> None:
    attempt, lead = ENTRY_POINTS[entry]
    make, described = ASYNC_FORMS[form]
    with pytest.raises(TypeError, match=_pattern(_coroutine_refused(lead, described))):
        attempt(world, make())
    _worker_still_works(world)
    _executor_still_works(world)


def test_a_plain_function_that_returns_a_coroutine_is_still_accepted() -> None:
    # Only what inspect calls asynchronous is refused: a function that happens to return an
    # awaitable is the caller's business.
    def make(resource: object) -> object:
        return resource

    with threadkit.ResourceWorker(list) as w:
        assert w.call(make) == []
        assert w.call(functools.partial(make)) == []


# -- the docs' table ---------------------------------------------------------------------


def _exception_role(exc: type[BaseException]) -> str:
    if exc.__module__ == "threadkit":
        return f":exc:`~threadkit.{exc.__name__}`"
    return f":exc:`{exc.__name__}`"


def render_table() -> str:
    """The reST table of :data:`CASES`, for docs/errors_table.rst."""
    lines = [
        ".. This file is generated from tests/test_bad_input.py (CASES); do not edit it.",
        "   Regenerate: python -m tests.test_bad_input > docs/errors_table.rst",
        "",
        ".. list-table:: Bad input, and the error raised at the call",
        "   :header-rows: 1",
        "   :widths: 25 20 15 40",
        "",
        "   * - Call",
        "     - Bad input",
        "     - Exception",
        "     - Message",
    ]
    for case in CASES:
        lines += [
            f"   * - ``{case.call}``",
            f"     - {case.bad if ' ' in case.bad and '=' not in case.bad else f'``{case.bad}``'}",
            f"     - {_exception_role(case.exc)}",
            f"     - ``{case.message}``",
        ]
    return "\n".join(lines) + "\n"


def test_the_errors_table_in_the_docs_is_generated_from_these_cases() -> None:
    assert TABLE.read_text() == render_table(), (
        "docs/errors_table.rst is stale: python -m tests.test_bad_input > docs/errors_table.rst"
    )


if __name__ == "__main__":
    sys.stdout.write(render_table())


@pytest.mark.parametrize("hook", ["on_open", "on_close", "on_begin_batch", "on_end_batch"])
def test_a_subclass_hook_written_as_async_def_is_refused_at_construction(hook: str) -> None:
    async def body(self: object, *resource: object) -> None:
        pass

    body.__qualname__ = f"Sub.{hook}"
    sub = type("Sub", (threadkit.ResourceWorker,), {hook: body})
    with pytest.raises(
        TypeError,
        match=_pattern(
            _coroutine_refused(f"the {hook}() hook must be", f"coroutine function 'Sub.{hook}'")
        ),
    ):
        sub(list)
