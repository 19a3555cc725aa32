"""The checked primitives as drop-in replacements, and their own additions.

CPython's generic lock tests (``test.lock_tests``, shipped with the
interpreter on 3.11-3.13 but removed by some distributions) are bound to
threadkit's primitives at run time, with checks off and with checks on.
"""

from __future__ import annotations

import unittest
from collections.abc import Callable
from typing import Any

import pytest

import threadkit
from threadkit import checks

try:
    from test import lock_tests
except ImportError:  # pragma: no cover - a Python without its test package
    lock_tests = None


def checked(factory: Callable[..., Any]) -> Callable[..., Any]:
    """``factory``, called with checks enabled (and the global mode restored)."""

    def make(*args: Any, **kwargs: Any) -> Any:
        was = checks.enabled()
        checks.enable()
        try:
            return factory(*args, **kwargs)
        finally:
            if not was:
                checks.disable()

    return make


if lock_tests is None:  # pragma: no cover

    def test_cpython_lock_tests_are_skipped_without_the_test_package() -> None:
        pytest.skip("this Python has no test.lock_tests (its test package is not installed)")

else:
    # What these two stdlib tests assert, a checked lock refuses by design.
    _REACQUIRE = "a checked Lock raises DeadlockError when its holder re-acquires it"
    _HANDOFF = "a checked Lock raises LockOwnershipError when another thread releases it"

    class TestLockChecksOff(lock_tests.LockTests):  # type: ignore[misc]
        locktype = staticmethod(threadkit.Lock)

    class TestLockChecksOn(lock_tests.LockTests):  # type: ignore[misc]
        locktype = staticmethod(checked(threadkit.Lock))

        @unittest.skip(_REACQUIRE)
        def test_reacquire(self) -> None: ...

        @unittest.skip(_HANDOFF)
        def test_different_thread(self) -> None: ...

    class TestRLockChecksOff(lock_tests.RLockTests):  # type: ignore[misc]
        locktype = staticmethod(threadkit.RLock)

    class TestRLockChecksOn(lock_tests.RLockTests):  # type: ignore[misc]
        locktype = staticmethod(checked(threadkit.RLock))

    class TestConditionChecksOff(lock_tests.ConditionTests):  # type: ignore[misc]
        condtype = staticmethod(threadkit.Condition)

    class TestConditionChecksOn(lock_tests.ConditionTests):  # type: ignore[misc]
        condtype = staticmethod(checked(threadkit.Condition))

    # Semaphores and events take no part in checks (they have no owner), so
    # one run each covers them.
    class TestEvent(lock_tests.EventTests):  # type: ignore[misc]
        eventtype = staticmethod(threadkit.Event)

    class TestSemaphore(lock_tests.SemaphoreTests):  # type: ignore[misc]
        semtype = staticmethod(threadkit.Semaphore)

    class TestBoundedSemaphore(lock_tests.BoundedSemaphoreTests):  # type: ignore[misc]
        semtype = staticmethod(threadkit.BoundedSemaphore)
