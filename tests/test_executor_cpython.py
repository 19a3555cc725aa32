"""CPython's own executor tests, bound to SerialExecutor at run time.

The interpreter's ``test.test_concurrent_futures`` package is the standard an
Executor must meet.  Its generic test classes are parametrised by a mixin that
names the executor type; here that mixin names :class:`threadkit.SerialExecutor`
with one worker.  Nothing is copied: the tests run from the installed ``test``
package, so they are skipped where the interpreter ships without it (pyenv's
3.11 and 3.12 builds; 3.13 has it).

A few tests cannot apply to an executor with one thread, or test
``ThreadPoolExecutor`` itself rather than the Executor contract; each is
skipped by name below, with the reason.
"""

from __future__ import annotations

import unittest

import pytest

import threadkit

cf_tests = pytest.importorskip(
    "test.test_concurrent_futures.util", reason="no CPython test package"
)

from test.test_concurrent_futures import (  # noqa: E402
    executor,
    test_as_completed,
    test_init,
    test_shutdown,
    test_thread_pool,
    test_wait,
)

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


class SerialMixin(cf_tests.ExecutorMixin):  # type: ignore[misc,name-defined]
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
