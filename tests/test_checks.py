"""threadkit.checks: lock order, ownership, timeouts with a story, the registry."""

from __future__ import annotations

import gc
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

import threadkit
from threadkit import checks

from .conftest import WAIT

HERE = re.escape(__file__)
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def checks_on() -> Iterator[None]:
    was = checks.enabled()
    checks.enable()
    try:
        yield
    finally:
        if not was:
            checks.disable()


@pytest.fixture
def checks_off() -> Iterator[None]:
    was = checks.enabled()
    checks.disable()
    try:
        yield
    finally:
        if was:
            checks.enable()


def in_thread(fn: Callable[[], object], name: str) -> None:
    """Run ``fn`` in a new thread named ``name`` and wait for it (bounded)."""
    errors: list[BaseException] = []

    def body() -> None:
        try:
            fn()
        except BaseException as exc:  # routed to the test thread below
            errors.append(exc)

    t = threading.Thread(target=body, name=name)
    t.start()
    t.join(WAIT)
    assert not t.is_alive()
    if errors:
        raise errors[0]


def edges(*locks: threadkit.Lock | threadkit.RLock) -> set[tuple[str, str]]:
    """The recorded edges among ``locks``, by label (other tests' locks may linger)."""
    keys = {lock._tracker.key: lock._tracker.label for lock in locks if lock._tracker}
    return {
        (keys[a], keys[b])
        for a, succ in checks._out.items()
        if a in keys
        for b in succ
        if b in keys
    }


def line_after() -> int:
    """The line number just after the caller's line."""
    return sys._getframe(1).f_lineno + 1


# -- enabling ---------------------------------------------------------------------


def test_enable_and_disable_decide_the_mode_of_locks_created_afterwards(
    checks_off: None,
) -> None:
    fast = threadkit.Lock()
    assert not checks.enabled()
    checks.enable()
    try:
        assert checks.enabled()
        checked = threadkit.Lock()
        assert threadkit.RLock().statistics().checked
    finally:
        checks.disable()
    assert not checks.enabled()
    assert checked.statistics().checked
    assert not fast.statistics().checked
    assert not threadkit.Lock().statistics().checked


@pytest.mark.parametrize(("value", "expected"), [("1", "True"), ("0", "False"), (None, "False")])
def test_the_environment_variable_enables_checks_at_import(
    value: str | None, expected: str
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "THREADKIT_CHECKS"}
    env["PYTHONPATH"] = str(ROOT)
    if value is not None:
        env["THREADKIT_CHECKS"] = value
    out = subprocess.run(
        [sys.executable, "-c", "import threadkit; print(threadkit.checks.enabled())"],
        env=env,
        capture_output=True,
        text=True,
        timeout=WAIT * 3,
        check=True,
    )
    assert out.stdout.strip() == expected


def test_a_forked_child_can_use_the_graph_even_if_the_parent_held_its_lock() -> None:
    code = (
        "import os, sys\n"
        "from threadkit import checks\n"
        "checks._graph_lock.acquire()\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    checks._graph_size()\n"
        "    os._exit(0)\n"
        "checks._graph_lock.release()\n"
        "_, status = os.waitpid(pid, 0)\n"
        "sys.exit(os.waitstatus_to_exitcode(status))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", code], env=env, timeout=WAIT * 3, check=True)


def test_locks_created_with_checks_off_ignore_the_lock_order(checks_off: None) -> None:
    a, b = threadkit.Lock(), threadkit.Lock()
    with a, b:
        pass
    with b, a:
        pass


# -- lock order ---------------------------------------------------------------------


def test_an_inverted_pair_raises_before_blocking_naming_both_edges(checks_on: None) -> None:
    a, b = threadkit.Lock(name="a"), threadkit.Lock(name="b")
    first_line = 0

    def first() -> None:
        nonlocal first_line
        with a:
            first_line = line_after()
            with b:
                pass

    in_thread(first, "first")
    with a, b:  # the same order again: the first site stays the one reported
        pass
    holding_a = threading.Event()
    done = threading.Event()

    def holder() -> None:
        with a:
            holding_a.set()
            done.wait(WAIT)

    t = threading.Thread(target=holder, name="holder")
    t.start()
    try:
        assert holding_a.wait(WAIT)
        with b:
            here = line_after() + 1
            with pytest.raises(threadkit.LockOrderError) as info:
                a.acquire()  # would block until `holder` gives up, were it not refused
    finally:
        done.set()
        t.join(WAIT)
    assert str(info.value) == (
        "acquiring Lock 'a' while holding Lock 'b' would close a lock-order cycle:\n"
        f"  Lock 'b' -> Lock 'a'  (this acquisition, at {__file__}:{here} in thread"
        " 'MainThread')\n"
        f"  Lock 'a' -> Lock 'b'  (first recorded at {__file__}:{first_line} in thread"
        " 'first')"
    )
    assert isinstance(info.value, threadkit.DeadlockError)
    assert isinstance(info.value, RuntimeError)


def test_a_cycle_of_three_locks_names_every_lock_and_edge(checks_on: None) -> None:
    a, b, c = (threadkit.RLock(name=n) for n in "abc")
    with a, b:
        pass
    with b, c:
        pass
    with c, pytest.raises(threadkit.LockOrderError) as info:
        a.acquire()
    pattern = (
        r"acquiring RLock 'a' while holding RLock 'c' would close a lock-order cycle:\n"
        rf"  RLock 'c' -> RLock 'a'  \(this acquisition, at {HERE}:\d+ in thread 'MainThread'\)\n"
        rf"  RLock 'a' -> RLock 'b'  \(first recorded at {HERE}:\d+ in thread 'MainThread'\)\n"
        rf"  RLock 'b' -> RLock 'c'  \(first recorded at {HERE}:\d+ in thread 'MainThread'\)"
    )
    assert re.fullmatch(pattern, str(info.value))


def test_an_unnamed_lock_is_named_by_number_and_where_it_was_created(checks_on: None) -> None:
    line = line_after()
    a = threadkit.Lock()
    b = threadkit.Lock(name="b")
    with a, b:
        pass
    with (
        b,
        pytest.raises(
            threadkit.LockOrderError,
            match=rf"^acquiring Lock#\d+ \(created at {HERE}:{line}\) while holding Lock 'b' ",
        ),
    ):
        a.acquire()


def test_a_refused_acquisition_takes_nothing_and_records_nothing(checks_on: None) -> None:
    a, b, c = threadkit.Lock(name="a"), threadkit.Lock(name="b"), threadkit.Lock(name="c")
    with a, b:
        pass
    with c, b, pytest.raises(threadkit.LockOrderError):
        a.acquire()  # c -> a is new and harmless, b -> a closes the cycle
    assert not a.locked()
    assert edges(a, b, c) == {("Lock 'a'", "Lock 'b'"), ("Lock 'c'", "Lock 'b'")}
    with a, c:  # c -> a was not recorded, so this order is still free
        pass


def test_rlock_reentry_is_not_an_edge(checks_on: None) -> None:
    r, a = threadkit.RLock(name="r"), threadkit.Lock(name="a")
    with r, a, r:  # re-entering r while holding a: no a -> r
        pass
    assert edges(r, a) == {("RLock 'r'", "Lock 'a'")}


def test_a_non_blocking_acquisition_adds_no_edge_but_counts_as_held(checks_on: None) -> None:
    a, b, c = threadkit.Lock(name="a"), threadkit.Lock(name="b"), threadkit.Lock(name="c")
    with a:
        assert b.acquire(blocking=False)
        with c:
            pass
        b.release()
    assert edges(a, b, c) == {("Lock 'a'", "Lock 'c'"), ("Lock 'b'", "Lock 'c'")}
    with b, a:  # try-lock against the order is the classic way around it
        pass


def test_collected_locks_leave_the_graph(checks_on: None) -> None:
    gc.collect()  # locks of earlier tests, kept alive by their tracebacks
    nodes, n_edges = checks._graph_size()
    a, b = threadkit.Lock(name="a"), threadkit.Lock(name="b")
    with a, b:
        pass
    assert checks._graph_size() == (nodes + 2, n_edges + 1)
    del a, b  # reference counting frees them: a tracker never points back
    assert checks._graph_size() == (nodes, n_edges)
    a, b = threadkit.Lock(name="a"), threadkit.Lock(name="b")
    with b, a:  # new locks with the old names inherit nothing
        pass


# -- ownership ----------------------------------------------------------------------


def test_reacquiring_a_held_lock_raises_deadlock_error(checks_on: None) -> None:
    lock = threadkit.Lock(name="a")
    with lock:
        with pytest.raises(
            threadkit.DeadlockError,
            match=r"^acquiring Lock 'a' again in the thread that holds it would wait forever; "
            r"use an RLock, or pass a timeout$",
        ):
            lock.acquire()
        assert not lock.acquire(timeout=0.01)  # with a timeout: the stdlib's answer
        assert not lock.acquire(blocking=False)
    assert not lock.locked()


@pytest.mark.parametrize("kind", [threadkit.Lock, threadkit.RLock])
def test_releasing_a_lock_another_thread_holds_raises_ownership_error(
    checks_on: None, kind: type[threadkit.Lock | threadkit.RLock]
) -> None:
    lock = kind(name="a")
    held = threading.Event()
    done = threading.Event()

    def holder() -> None:
        with lock:
            held.set()
            done.wait(WAIT)

    t = threading.Thread(target=holder, name="holder")
    t.start()
    try:
        assert held.wait(WAIT)
        with pytest.raises(
            threadkit.LockOwnershipError,
            match=rf"^cannot release {kind.__name__} 'a': it is held by thread 'holder', "
            r"not by this thread$",
        ):
            lock.release()
        assert lock.statistics().owner == "holder"
    finally:
        done.set()
        t.join(WAIT)


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        (threadkit.Lock, "release unlocked lock"),
        (threadkit.RLock, "cannot release un-acquired lock"),
    ],
)
def test_releasing_a_free_checked_lock_raises_the_stdlib_error(
    checks_on: None, kind: type[threadkit.Lock | threadkit.RLock], message: str
) -> None:
    with pytest.raises(RuntimeError, match=rf"^{message}$") as info:
        kind().release()
    assert type(info.value) is RuntimeError


# -- timeouts with a story ---------------------------------------------------------


@pytest.mark.parametrize("enabled", [False, True])
@pytest.mark.parametrize("kind", [threadkit.Lock, threadkit.RLock])
def test_a_timed_out_acquire_names_the_holder_and_how_long_it_held(
    enabled: bool, kind: type[threadkit.Lock | threadkit.RLock]
) -> None:
    was = checks.enabled()
    checks.enable() if enabled else checks.disable()
    try:
        lock = kind(name="db", raise_on_timeout=True)
    finally:
        checks.enable() if was else checks.disable()
    held = threading.Event()
    done = threading.Event()

    def holder() -> None:
        with lock:
            held.set()
            done.wait(WAIT)

    t = threading.Thread(target=holder, name="holder")
    t.start()
    try:
        assert held.wait(WAIT)
        assert not lock.acquire(blocking=False)  # not a timeout: no error
        with pytest.raises(
            threadkit.LockTimeoutError,
            match=rf"^timed out after 0\.05 s acquiring {kind.__name__} 'db': "
            r"held by thread 'holder' for \d+\.\d\d s$",
        ) as info:
            lock.acquire(timeout=0.05)
        assert isinstance(info.value, TimeoutError)
    finally:
        done.set()
        t.join(WAIT)
    assert lock.acquire(timeout=WAIT)
    lock.release()


def test_a_lock_without_raise_on_timeout_returns_false_on_timeout(checks_on: None) -> None:
    lock = threadkit.Lock(name="db")
    in_thread(lock.acquire, "holder")  # the thread ends holding it
    assert not lock.acquire(timeout=0.01)


# -- the registry ---------------------------------------------------------------


class _Signalling:
    """A C lock stand-in that says when a thread is about to block on it."""

    def __init__(self, inner: Any, blocking: threading.Event) -> None:
        self.inner = inner
        self.blocking = blocking

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if blocking:
            self.blocking.set()
        return bool(self.inner.acquire(blocking, timeout))

    def release(self) -> None:
        self.inner.release()

    def locked(self) -> bool:
        return bool(self.inner.locked())


def test_the_registry_shows_holders_and_waiters(checks_on: None) -> None:
    lock = threadkit.Lock(name="db")
    blocking = threading.Event()
    assert lock._tracker is not None
    lock._tracker.lock = _Signalling(lock._tracker.lock, blocking)  # type: ignore[assignment]
    lock._lock = lock._tracker.lock
    assert lock in checks._live_locks()
    with lock:
        t = threading.Thread(target=lambda: lock.acquire(timeout=WAIT) and lock.release())
        t.start()
        try:
            assert blocking.wait(WAIT)
            waiters = checks._waiters()
            assert waiters[t.ident][0] is lock  # type: ignore[index]
            stats = lock.statistics()
            assert (stats.owner, stats.waiting, stats.checked) == ("MainThread", 1, True)
            assert re.fullmatch(
                r"<locked threadkit\.Lock object 'db' held by thread 'MainThread' "
                r"for \d+\.\d\d s, 1 waiting at 0x[0-9a-f]+>",
                repr(lock),
            )
        finally:
            lock.release()
            t.join(WAIT)
            lock.acquire()
    assert checks._waiters() == {}


# -- condition variables -----------------------------------------------------------


@pytest.mark.parametrize("stdlib_condition", [False, True])
def test_condition_wait_releases_and_reacquires_without_spurious_edges(
    checks_on: None, stdlib_condition: bool
) -> None:
    outer = threadkit.Lock(name="outer")
    inner = threadkit.RLock(name="cv")
    cond = threading.Condition(inner) if stdlib_condition else threadkit.Condition(inner)
    flag = False
    waiting = threading.Event()

    def waiter() -> None:
        with outer, cond:
            waiting.set()
            assert cond.wait_for(lambda: flag, WAIT)
            assert inner._is_owned()

    t = threading.Thread(target=waiter)
    t.start()
    try:
        assert waiting.wait(WAIT)
        with cond:  # only possible because wait() released it
            flag = True
            cond.notify()
    finally:
        t.join(WAIT)
    assert edges(outer, inner) == {("Lock 'outer'", "RLock 'cv'")}
    assert not inner.statistics().locked


def test_waiting_on_a_condition_while_holding_a_later_lock_is_refused(checks_on: None) -> None:
    cond = threadkit.Condition(name="cv")
    later = threadkit.Lock(name="later")
    with cond, later:
        with pytest.raises(
            threadkit.LockOrderError,
            match=r"^acquiring RLock 'cv' while holding Lock 'later' would close",
        ):
            cond.wait(WAIT)  # refused at once: it never waits
        assert later.locked()
        stats = cond.statistics().lock
        assert stats is not None
        assert (stats.owner, stats.count) == ("MainThread", 1)  # nothing was released
        assert cond.statistics().waiting == 0
    assert not later.locked()


# -- the property -----------------------------------------------------------------

N_LOCKS = 4
RELEASE = -1


def has_cycle(edges: set[tuple[int, int]]) -> bool:
    """Kahn's algorithm: a graph has a cycle iff a topological sort gets stuck."""
    nodes = {n for edge in edges for n in edge}
    indegree = dict.fromkeys(nodes, 0)
    for _a, b in edges:
        indegree[b] += 1
    ready = [n for n in nodes if indegree[n] == 0]
    seen = 0
    while ready:
        n = ready.pop()
        seen += 1
        for a, b in edges:
            if a == n:
                indegree[b] -= 1
                if indegree[b] == 0:
                    ready.append(b)
    return seen < len(nodes)


def model(kinds: list[bool], programs: list[list[int]]) -> list[tuple[int, int, str]]:
    """What the checker must say: (thread, step, "order" or "self") per refusal."""
    edges: set[tuple[int, int]] = set()
    refused = []
    for ti, program in enumerate(programs):
        held: list[int] = []
        for step, op in enumerate(program):
            if op == RELEASE:
                if held:
                    held.pop()
                continue
            if op in held:
                if kinds[op]:  # reentrant: no edge, one more level
                    held.append(op)
                    continue
                refused.append((ti, step, "self"))
                break
            new = {(h, op) for h in held}
            if has_cycle(edges | new):
                refused.append((ti, step, "order"))
                break
            edges |= new
            held.append(op)
    return refused


def intended_edges(kinds: list[bool], programs: list[list[int]]) -> set[tuple[int, int]]:
    edges: set[tuple[int, int]] = set()
    for program in programs:
        held: list[int] = []
        for op in program:
            if op == RELEASE:
                if held:
                    held.pop()
            elif op in held and kinds[op]:
                held.append(op)
            else:
                edges |= {(h, op) for h in held}
                held.append(op)
    return edges


@settings(max_examples=80)
@given(
    kinds=st.lists(st.booleans(), min_size=N_LOCKS, max_size=N_LOCKS),
    programs=st.lists(
        st.lists(st.integers(RELEASE, N_LOCKS - 1), max_size=8), min_size=1, max_size=4
    ),
)
def test_the_checker_flags_exactly_the_acquisitions_that_close_a_cycle(
    kinds: list[bool], programs: list[list[int]]
) -> None:
    was = checks.enabled()
    checks.enable()
    try:
        locks = [
            threadkit.RLock(name=f"L{i}") if reentrant else threadkit.Lock(name=f"L{i}")
            for i, reentrant in enumerate(kinds)
        ]
    finally:
        if not was:
            checks.disable()
    refused: list[tuple[int, int, str]] = []
    for ti, program in enumerate(programs):

        def run(ti: int = ti, program: list[int] = program) -> None:
            held: list[int] = []
            try:
                for step, op in enumerate(program):
                    if op == RELEASE:
                        if held:
                            locks[held.pop()].release()
                        continue
                    try:
                        # Each thread runs alone, so only its own locks are
                        # ever taken: this can block only on a self-deadlock,
                        # which the checker refuses.
                        locks[op].acquire()
                    except threadkit.LockOrderError:
                        refused.append((ti, step, "order"))
                        break
                    except threadkit.DeadlockError:
                        refused.append((ti, step, "self"))
                        break
                    held.append(op)
            finally:
                while held:
                    locks[held.pop()].release()

        in_thread(run, f"T{ti}")
    assert refused == model(kinds, programs)
    event(f"refused: {sorted({kind for _t, _s, kind in refused})}")
    if not any(kind == "self" for _t, _s, kind in refused):
        assert bool(refused) == has_cycle(intended_edges(kinds, programs))
