"""The checked primitives as drop-in replacements, and their own additions.

CPython's generic lock tests (``test.lock_tests``, from the running
interpreter's own test package, which some distributions ship separately:
Debian's ``libpython3.X-testsuite``) are bound to threadkit's primitives at
run time, with checks off and with checks on.  Each version's tests check
that version's API (3.14's pin ``RLock.locked()`` and ``count=`` in an
RLock's repr).
"""

from __future__ import annotations

import dataclasses
import re
import sys
import threading
import unittest
import unittest.mock
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import threadkit
from threadkit import checks
from threadkit._cancel import _bind_token

from .conftest import WAIT

try:
    from test import lock_tests
except ImportError:  # pragma: no cover - a Python without its test package
    lock_tests = None


def with_checks(factory: Callable[..., Any], *, on: bool) -> Callable[..., Any]:
    """``factory``, called with checks on or off (and the global mode restored)."""

    def make(*args: Any, **kwargs: Any) -> Any:
        was = checks.enabled()
        checks.enable() if on else checks.disable()
        try:
            return factory(*args, **kwargs)
        finally:
            checks.enable() if was else checks.disable()

    return make


def checked(factory: Callable[..., Any]) -> Callable[..., Any]:
    return with_checks(factory, on=True)


def unchecked(factory: Callable[..., Any]) -> Callable[..., Any]:
    # Not the bare class: the suite may run under THREADKIT_CHECKS=1.
    return with_checks(factory, on=False)


if lock_tests is None:  # pragma: no cover

    def test_cpython_lock_tests_are_skipped_without_the_test_package() -> None:
        pytest.skip("this Python has no test.lock_tests (its test package is not installed)")

else:
    # What these two stdlib tests assert, a checked lock refuses by design.
    _REACQUIRE = "a checked Lock raises DeadlockError when its holder re-acquires it"
    _HANDOFF = "a checked Lock raises LockOwnershipError when another thread releases it"

    class TestLockChecksOff(lock_tests.LockTests):  # type: ignore[misc]
        locktype = staticmethod(unchecked(threadkit.Lock))

    class TestLockChecksOn(lock_tests.LockTests):  # type: ignore[misc]
        locktype = staticmethod(checked(threadkit.Lock))

        @unittest.skip(_REACQUIRE)
        def test_reacquire(self) -> None: ...

        @unittest.skip(_HANDOFF)
        def test_different_thread(self) -> None: ...

    class TestRLockChecksOff(lock_tests.RLockTests):  # type: ignore[misc]
        locktype = staticmethod(unchecked(threadkit.RLock))

    class TestRLockChecksOn(lock_tests.RLockTests):  # type: ignore[misc]
        locktype = staticmethod(checked(threadkit.RLock))

    class TestConditionChecksOff(lock_tests.ConditionTests):  # type: ignore[misc]
        condtype = staticmethod(unchecked(threadkit.Condition))

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

    class InTasks(unittest.TestCase):
        """Runs a lock_tests suite with a live (never cancelled) token in every thread.

        So every wait takes its cancellable path, and must still behave
        exactly as the stdlib's.
        """

        def setUp(self) -> None:
            super().setUp()
            real = lock_tests.start_new_thread

            def start_in_task(fn: Callable[..., Any], args: tuple[Any, ...]) -> int:
                def bound(*a: Any) -> None:
                    with _bind_token(threadkit.CancelToken()):
                        fn(*a)

                return real(bound, args)  # type: ignore[no-any-return]

            patcher = unittest.mock.patch.object(lock_tests, "start_new_thread", start_in_task)
            patcher.start()
            self.addCleanup(patcher.stop)
            binding = _bind_token(threadkit.CancelToken())
            binding.__enter__()
            self.addCleanup(binding.__exit__, None, None, None)

    class TestLockInTasks(InTasks, lock_tests.LockTests):  # type: ignore[misc]
        locktype = staticmethod(unchecked(threadkit.Lock))

    class TestCheckedLockInTasks(InTasks, lock_tests.LockTests):  # type: ignore[misc]
        locktype = staticmethod(checked(threadkit.Lock))

        @unittest.skip(_REACQUIRE)
        def test_reacquire(self) -> None: ...

        @unittest.skip(_HANDOFF)
        def test_different_thread(self) -> None: ...

    class TestRLockInTasks(InTasks, lock_tests.RLockTests):  # type: ignore[misc]
        locktype = staticmethod(unchecked(threadkit.RLock))

    class TestConditionInTasks(InTasks, lock_tests.ConditionTests):  # type: ignore[misc]
        condtype = staticmethod(unchecked(threadkit.Condition))

    class TestEventInTasks(InTasks, lock_tests.EventTests):  # type: ignore[misc]
        eventtype = staticmethod(threadkit.Event)

    class TestSemaphoreInTasks(InTasks, lock_tests.SemaphoreTests):  # type: ignore[misc]
        semtype = staticmethod(threadkit.Semaphore)

    class TestBoundedSemaphoreInTasks(InTasks, lock_tests.BoundedSemaphoreTests):  # type: ignore[misc]
        semtype = staticmethod(threadkit.BoundedSemaphore)


@pytest.fixture(params=[False, True], ids=["checks off", "checks on"])
def mode(request: pytest.FixtureRequest) -> Iterator[bool]:
    was = checks.enabled()
    checks.enable() if request.param else checks.disable()
    try:
        yield request.param
    finally:
        checks.enable() if was else checks.disable()


ALL = [
    threadkit.Lock,
    threadkit.RLock,
    threadkit.Condition,
    threadkit.Semaphore,
    threadkit.BoundedSemaphore,
    threadkit.Event,
]


@pytest.mark.parametrize("kind", ALL)
def test_every_primitive_is_public_with_a_name(kind: Callable[..., Any]) -> None:
    assert kind.__module__ == "threadkit"
    assert kind(name="x").name == "x"
    assert kind().name is None


@pytest.mark.parametrize("kind", ALL)
def test_a_name_that_is_not_a_string_is_refused(kind: Callable[..., Any]) -> None:
    with pytest.raises(TypeError, match=r"^name must be a str or None, got 'int'$"):
        kind(name=1)


def test_threadkit_checks_is_importable_as_an_attribute() -> None:
    assert threadkit.checks is checks
    assert checks.__name__ == "threadkit.checks"


def test_a_lock_created_with_checks_off_releases_through_the_c_lock_methods(mode: bool) -> None:
    # The fast path: no Python frame between the caller and the C lock's
    # release; acquire is one frame, which must be able to see a token.
    for lock in (threadkit.Lock(), threadkit.RLock()):
        c_methods = type(lock.release) is type(len)
        assert c_methods is not mode
        assert type(lock.acquire) is not type(len)
        with lock as entered:
            assert entered is True


@pytest.mark.parametrize("kind", [threadkit.Lock, threadkit.RLock])
def test_lock_statistics_describe_the_lock(
    mode: bool, kind: type[threadkit.Lock | threadkit.RLock]
) -> None:
    lock = kind(name="db")
    assert lock.statistics() == threadkit.LockStatistics(
        name="db",
        locked=False,
        count=0,
        owner=None,
        held_for=None,
        waiting=0 if mode else None,
        checked=mode,
    )
    with lock:
        stats = lock.statistics()
    assert (stats.locked, stats.count) == (True, 1)
    assert stats.owner == ("MainThread" if mode or kind is threadkit.RLock else None)
    assert (stats.held_for is not None) is mode
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.locked = False  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (threadkit.Lock, r"<unlocked threadkit\.Lock object 'db' at 0x[0-9a-f]+>"),
        (threadkit.RLock, r"<unlocked threadkit\.RLock object 'db' count=0 at 0x[0-9a-f]+>"),
    ],
)
def test_a_free_lock_has_the_stdlib_repr_with_its_name(
    mode: bool, kind: Callable[..., Any], expected: str
) -> None:
    assert re.fullmatch(expected, repr(kind(name="db")))


def test_a_held_lock_repr_names_its_holder(mode: bool) -> None:
    lock, rlock = threadkit.Lock(name="db"), threadkit.RLock()
    with lock, rlock, rlock:
        held = r" held by thread 'MainThread' for \d+\.\d\d s" if mode else ""
        assert re.fullmatch(
            rf"<locked threadkit\.Lock object 'db'{held} at 0x[0-9a-f]+>", repr(lock)
        )
        held = r" for \d+\.\d\d s" if mode else ""
        assert re.fullmatch(
            rf"<locked threadkit\.RLock object held by thread 'MainThread' count=2{held}"
            r" at 0x[0-9a-f]+>",
            repr(rlock),
        )


def test_an_rlock_repr_shows_its_count_to_every_thread(mode: bool) -> None:
    # As the stdlib's RLock repr does (3.14's lock tests pin "count=").
    rlock = threadkit.RLock()
    seen: list[str] = []
    with rlock, rlock:
        t = threading.Thread(target=lambda: seen.append(repr(rlock)))
        t.start()
        t.join(WAIT)
    assert re.fullmatch(
        r"<locked threadkit\.RLock object held by thread 'MainThread' count=2"
        r"( for \d+\.\d\d s)? at 0x[0-9a-f]+>",
        seen[0],
    )
    assert " count=0 " in repr(rlock)


@pytest.mark.skipif(sys.version_info < (3, 14), reason="RLock.locked() is new in 3.14")
def test_rlock_locked_says_whether_any_thread_holds_it_from_3_14(mode: bool) -> None:
    rlock = threadkit.RLock()
    seen: list[bool] = []
    assert rlock.locked() is False
    with rlock, rlock:
        t = threading.Thread(target=lambda: seen.append(rlock.locked()))
        t.start()
        t.join(WAIT)
        assert rlock.locked() is True
    assert seen == [True]
    assert rlock.locked() is False


@pytest.mark.skipif(sys.version_info >= (3, 14), reason="RLock.locked() exists from 3.14")
def test_rlock_has_no_locked_before_3_14_as_the_stdlib(mode: bool) -> None:
    assert not hasattr(threading.RLock(), "locked")
    with pytest.raises(AttributeError, match=r"^'RLock' object has no attribute 'locked'$"):
        threadkit.RLock().locked()  # type: ignore[attr-defined]


def test_a_threading_condition_accepts_a_threadkit_rlock(mode: bool) -> None:
    # 3.14's threading.Condition reads lock.locked at construction.
    cond = threading.Condition(threadkit.RLock())  # type: ignore[arg-type]
    with cond:
        assert cond.wait(0) is False
    assert repr(threadkit.Condition()).startswith("<threadkit.Condition at ")


def test_semaphore_event_and_condition_reprs_and_statistics_are_live() -> None:
    sem = threadkit.Semaphore(2, name="pool")
    bounded = threadkit.BoundedSemaphore(3)
    event = threadkit.Event(name="ready")
    cond = threadkit.Condition(threadkit.Lock(), name="cv")
    sem.acquire()
    bounded.acquire()
    assert re.fullmatch(r"<threadkit\.Semaphore at 0x[0-9a-f]+ 'pool': value=1>", repr(sem))
    assert re.fullmatch(r"<threadkit\.BoundedSemaphore at 0x[0-9a-f]+: value=2/3>", repr(bounded))
    assert sem.statistics() == threadkit.SemaphoreStatistics("pool", 1, None)
    assert bounded.statistics() == threadkit.SemaphoreStatistics(None, 2, 3)
    assert re.fullmatch(r"<threadkit\.Event at 0x[0-9a-f]+ 'ready': unset>", repr(event))
    event.set()
    assert re.fullmatch(r"<threadkit\.Event at 0x[0-9a-f]+ 'ready': set>", repr(event))
    assert event.statistics() == threadkit.EventStatistics("ready", True)
    assert re.fullmatch(
        r"<threadkit\.Condition at 0x[0-9a-f]+ 'cv': "
        r"lock=<unlocked threadkit\.Lock object at 0x[0-9a-f]+>, waiting=0>",
        repr(cond),
    )
    assert isinstance(bounded, threadkit.Semaphore)


def test_condition_statistics_count_the_waiting_threads(mode: bool) -> None:
    cond = threadkit.Condition(name="cv")
    waiting = threading.Event()
    go = False

    def waiter() -> None:
        with cond:
            waiting.set()
            cond.wait_for(lambda: go, WAIT)

    t = threading.Thread(target=waiter)
    t.start()
    try:
        assert waiting.wait(WAIT)
        with cond:  # the waiter is inside wait(): it released the lock
            stats = cond.statistics()
            go = True
            cond.notify()
    finally:
        t.join(WAIT)
    assert stats.waiting == 1
    assert stats.name == "cv"
    assert stats.lock is not None
    assert stats.lock.count == 1
    assert cond.statistics().waiting == 0


def test_a_wait_refused_for_not_holding_the_lock_never_counts_as_waiting(mode: bool) -> None:
    # The count was once changed before the ownership check, by a thread that
    # did not hold the lock: a data race on the counter.
    cond = threadkit.Condition()
    seen: list[int] = []
    owned = cond._is_owned  # type: ignore[attr-defined]

    def spy() -> bool:
        seen.append(cond.statistics().waiting)
        return bool(owned())

    cond._is_owned = spy  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError, match=r"^cannot wait on un-acquired lock$"):
        cond.wait(0)
    assert seen == [0]
    with cond:
        assert cond.wait(0) is False
    # Counted between threadkit's ownership check and threading's.
    assert seen == [0, 0, 1]
    assert cond.statistics().waiting == 0


@pytest.mark.parametrize("kind", [threadkit.Lock, threadkit.RLock])
def test_a_threadkit_lock_works_inside_a_threading_condition(
    mode: bool, kind: Callable[..., Any]
) -> None:
    lock = kind()
    cond = threading.Condition(lock)
    ready = threading.Event()
    items: list[int] = []

    def consumer() -> None:
        with cond:
            ready.set()
            assert cond.wait_for(lambda: items, WAIT)

    t = threading.Thread(target=consumer)
    t.start()
    try:
        assert ready.wait(WAIT)
        with cond:
            items.append(1)
            cond.notify()
    finally:
        t.join(WAIT)
    assert not lock._is_owned()
    with pytest.raises(RuntimeError, match=r"^cannot notify on un-acquired lock$"):
        cond.notify()
