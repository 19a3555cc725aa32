"""CPython's own executor tests, bound to SerialExecutor at run time, and map() against the stdlib.

The interpreter's ``test.test_concurrent_futures`` package is the standard an
Executor must meet.  Its generic test classes are parametrised by a mixin that
names the executor type; here that mixin names :class:`threadkit.SerialExecutor`
with one worker.  Nothing is copied: the tests run from the installed ``test``
package, so they are skipped where the interpreter ships without it (pyenv's
3.11 and 3.12 builds; 3.13 has it, and so do Debian's 3.14 and 3.15 with
``libpython3.X-testsuite``, which CI's chroot installs).

A few tests cannot apply to an executor with one thread, or test
``ThreadPoolExecutor`` itself rather than the Executor contract; each is
skipped by name below, with the reason.

``map()`` is also compared with ``ThreadPoolExecutor(max_workers=1).map()`` on
generated calls, on every version: its signature is the running Python's
(``buffersize`` from 3.14 on), and so are its errors and its results.
"""

from __future__ import annotations

import inspect
import itertools
import re
import unittest
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import threadkit

try:
    from test.test_concurrent_futures import (
        executor,
        test_as_completed,
        test_init,
        test_shutdown,
        test_thread_pool,
        test_wait,
    )
    from test.test_concurrent_futures import util as cf_tests
except ImportError:  # the interpreter ships without CPython's test package
    cf_tests = None

# test name -> why it does not apply to SerialExecutor
NOT_APPLICABLE = {
    # They count or name ThreadPoolExecutor's threads, or tune its pool size.
    "test_default_workers": "ThreadPoolExecutor's default pool size",
    "test_saturation": "needs 5 threads running at once",
    "test_idle_thread_reuse": "ThreadPoolExecutor's thread reuse",
    "test_threads_terminate": "needs 3 threads running at once",
    "test_thread_names_default": "expects the name 'ThreadPoolExecutor-N_M'",
    # They import the executor class by name from concurrent.futures.
    "test_interpreter_shutdown": "imports the executor from concurrent.futures",
    "test_hang_issue39205": "imports the executor from concurrent.futures",
    "test_cancel_futures_wait_false": "imports the executor from concurrent.futures",
    "test_hang_gh83386": "imports the executor from concurrent.futures",
    "test_submit_after_interpreter_shutdown": "imports the executor from concurrent.futures",
    "test_hang_global_shutdown_lock": "imports concurrent.futures.thread internals",
}


if cf_tests is not None:
    # Built on the interpreter's own ThreadPoolMixin, not on ExecutorMixin: what a thread-based
    # executor's tests need beyond the executor type comes from there, on every version (3.14 moved
    # create_event(), which test_wait calls, from the generic test classes into these mixins).
    class SerialMixin(cf_tests.ThreadPoolMixin):  # type: ignore[misc,name-defined]
        executor_type = threadkit.SerialExecutor
        worker_count = 1

        def setUp(self) -> None:
            name = self._testMethodName
            if name in NOT_APPLICABLE:
                self.skipTest(NOT_APPLICABLE[name])
            super().setUp()

    def bind(name: str, *generic: type) -> type:
        return type(name, (SerialMixin, *generic, cf_tests.BaseTestCase), {})

    SerialExecutorTest = bind("SerialExecutorTest", executor.ExecutorTest)
    SerialExecutorThreadPoolTest = bind(
        "SerialExecutorThreadPoolTest", test_thread_pool.ThreadPoolExecutorTest
    )
    SerialShutdownTest = bind("SerialShutdownTest", test_shutdown.ThreadPoolShutdownTest)
    SerialWaitTest = bind("SerialWaitTest", test_wait.WaitTests)
    SerialAsCompletedTest = bind("SerialAsCompletedTest", test_as_completed.AsCompletedTests)
    SerialInitializerTest = bind("SerialInitializerTest", test_init.InitializerMixin)
    SerialFailingInitializerTest = bind(
        "SerialFailingInitializerTest", test_init.FailingInitializerMixin
    )

    assert all(issubclass(c, unittest.TestCase) for c in (SerialExecutorTest, SerialWaitTest))


@pytest.mark.skipif(cf_tests is None, reason="no CPython test package")
def test_cpython_executor_tests_are_bound_with_the_interpreters_own_mixin() -> None:
    # The binding must give the generic tests every hook they call on this version (3.14's
    # test_wait calls create_event()), from the interpreter's package, not from a copy.
    assert cf_tests is not None
    case = SerialWaitTest("test_first_completed")
    assert type(case).executor_type is threadkit.SerialExecutor
    for hook in ("create_event", "get_context"):
        if hasattr(cf_tests.ThreadPoolMixin, hook):
            assert getattr(type(case), hook) is getattr(cf_tests.ThreadPoolMixin, hook)


# ---------------------------------------------------------------------------------------
# map() against ThreadPoolExecutor(max_workers=1).map(), on the running Python.


def _parameters(fn: Callable[..., object]) -> list[tuple[str, Any, Any]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]


def test_map_has_the_signature_of_the_running_pythons_executor_map() -> None:
    # buffersize from 3.14 on, not before: a drop-in neither lacks nor adds a parameter.
    assert _parameters(threadkit.SerialExecutor.map) == _parameters(Executor.map)
    assert _parameters(threadkit.SerialExecutor.map) == _parameters(ThreadPoolExecutor.map)


def _square_or_fail(x: int) -> int:
    if x < 0:
        raise ArithmeticError(f"negative: {x}")
    return x * x


def _run_map(
    make: Callable[[], Executor], items: list[int], kwargs: dict[str, object], takes: int
) -> list[object]:
    """What a program sees of one map() call: the error at the call, or each step of the
    iteration (the result or the error, and how many items map() had read by then)."""
    read = 0

    def source() -> Iterator[int]:
        nonlocal read
        for item in items:
            read += 1
            yield item

    seen: list[object] = []
    with make() as ex:
        try:
            results = ex.map(_square_or_fail, source(), **kwargs)  # type: ignore[arg-type]
        except (TypeError, ValueError) as e:
            # A version without buffersize names the class in its message; the rest is the
            # interpreter's own wording on both sides.
            return [("at call", type(e).__name__, re.sub(r"^\w+\.map\(\)", "map()", str(e)))]
        seen.append(("read at call", read))
        for _ in range(takes):
            try:
                seen.append(("result", next(results), read))
            except StopIteration:
                seen.append(("stop", read))
                break
            except ArithmeticError as e:
                seen.append(("raised", str(e), read))
                break
        # Closing the iterator cancels what it submitted and did not yield, on both sides.
        results.close()  # type: ignore[attr-defined]
    return seen


_buffersizes = st.one_of(
    st.none(),
    st.integers(-2, 6),
    st.booleans(),
    st.sampled_from([2.0, "2", 1.5]),
)


@given(
    items=st.lists(st.integers(-1, 20), max_size=12),
    buffersize=st.one_of(st.just(inspect.Parameter.empty), _buffersizes),
    takes=st.integers(0, 14),
)
def test_map_behaves_as_the_stdlib_executors_map(
    items: list[int], buffersize: object, takes: int
) -> None:
    # buffersize absent, valid or invalid, on every version: on 3.11-3.13 passing it at all is
    # a TypeError on both sides; from 3.14 on, the same checks, the same lazy reading of the
    # iterables and the same results in the same order.
    kwargs: dict[str, object] = {}
    if buffersize is not inspect.Parameter.empty:
        kwargs["buffersize"] = buffersize
    expected = _run_map(lambda: ThreadPoolExecutor(max_workers=1), items, kwargs, takes)
    assert _run_map(threadkit.SerialExecutor, items, kwargs, takes) == expected


def test_map_with_a_buffersize_reads_an_endless_iterable_as_results_are_taken() -> None:
    if "buffersize" not in inspect.signature(Executor.map).parameters:
        pytest.skip("map() takes buffersize from Python 3.14 on")
    counter = itertools.count()
    with threadkit.SerialExecutor() as ex:
        results = ex.map(str, counter, buffersize=3)  # type: ignore[call-arg,unused-ignore]
        assert [next(results) for _ in range(5)] == ["0", "1", "2", "3", "4"]
        # 3 read at the call, then one more before each result is waited for.
        assert next(counter) == 8
        results.close()  # type: ignore[attr-defined]
