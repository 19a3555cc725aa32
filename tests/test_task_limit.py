"""Bounded task groups: TaskGroup(limit=N) runs at most N tasks at once, on at most N threads."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from concurrent.futures import CancelledError
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import threadkit
from threadkit._task import task_snapshots

from .conftest import WAIT


class Gauge:
    """Counts the tasks running at once, and the most ever."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = 0
        self.most = 0

    def __enter__(self) -> None:
        with self._lock:
            self.now += 1
            self.most = max(self.most, self.now)

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            self.now -= 1


@pytest.mark.parametrize(
    ("limit", "error", "message"),
    [
        (0, ValueError, r"^limit must be >= 1, got 0$"),
        (-3, ValueError, r"^limit must be >= 1, got -3$"),
        (2.0, TypeError, r"^limit must be an int or None, got 'float'$"),
        (True, TypeError, r"^limit must be an int or None, got 'bool'$"),
    ],
)
def test_limit_must_be_a_positive_int(limit: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        threadkit.TaskGroup(limit=limit)


def test_ten_thousand_spawns_with_limit_8_use_at_most_8_threads() -> None:
    gauge = Gauge()
    before = threading.active_count()
    threads_seen: list[int] = []

    def work() -> None:
        with gauge:
            threads_seen.append(threading.active_count() - before)

    with threadkit.TaskGroup(limit=8) as group:
        tasks = [group.spawn(work) for _ in range(10_000)]
    assert all(t.done() and not t.cancelled() for t in tasks)
    assert gauge.most <= 8
    assert max(threads_seen) <= 8
    assert len({id(t.thread) for t in tasks}) <= 8


def test_spawn_returns_at_once_and_queued_tasks_start_in_order() -> None:
    release = threading.Event()
    started: list[int] = []

    def first() -> None:
        release.wait(WAIT)

    with threadkit.TaskGroup(limit=1, name="one") as group:
        blocker = group.spawn(first)
        tasks = [group.spawn(started.append, i) for i in range(50)]
        states = {s.name: s.state for s in task_snapshots() if s.group == "one"}
        assert all(not t.running() and not t.done() for t in tasks)
        assert {states[t.name] for t in tasks} == {"queued"}
        message = (
            rf"^task {re.escape(repr(tasks[0].name))} has not started: it is queued in its group$"
        )
        with pytest.raises(RuntimeError, match=message):
            tasks[0].thread  # noqa: B018
        release.set()
    assert blocker.result() is None
    assert started == list(range(50))


def test_a_queued_task_cancelled_never_starts_and_is_cancelled_at_once() -> None:
    release = threading.Event()
    ran: list[str] = []
    with threadkit.TaskGroup(limit=1) as group:
        group.spawn(release.wait, WAIT)
        queued = group.spawn(ran.append, "queued")
        assert queued.cancel() is True
        assert queued.done()
        assert queued.cancelled()
        release.set()
    assert ran == []


def test_the_first_failure_cancels_the_queued_tasks_which_never_start() -> None:
    release = threading.Event()
    ran: list[int] = []

    def fail() -> None:
        release.wait(WAIT)
        raise ValueError("boom")

    queued: list[threadkit.Task[None]] = []

    def body() -> None:
        with threadkit.TaskGroup(limit=1) as group:
            group.spawn(fail)
            queued.extend(group.spawn(ran.append, i) for i in range(20))
            release.set()

    with pytest.raises(ExceptionGroup) as info:
        body()
    assert [type(e) for e in info.value.exceptions] == [ValueError]
    assert ran == []
    assert all(t.cancelled() for t in queued)


def test_cancelling_the_group_ends_its_queued_tasks_before_the_running_ones_end() -> None:
    release = threading.Event()
    started = threading.Barrier(3)

    def runs() -> bool:
        started.wait(WAIT)
        return release.wait(WAIT)

    with threadkit.TaskGroup(limit=2) as group:
        running = [group.spawn(runs) for _ in range(2)]
        queued = [group.spawn(release.wait, WAIT) for _ in range(5)]
        # Running, not only taken by a thread: a task taken but not yet
        # started when the group is cancelled never starts (seen on 3.15).
        started.wait(WAIT)
        group.cancel("enough")
        assert all(t.cancelled() for t in queued)
        assert not any(t.done() for t in running)
        release.set()
    assert [t.result() for t in running] == [True, True]


def test_the_block_waits_for_tasks_spawned_by_tasks_while_it_exits() -> None:
    ran: list[int] = []

    def parent(group: threadkit.TaskGroup, depth: int) -> None:
        ran.append(depth)
        if depth < 20:
            group.spawn(parent, group, depth + 1)

    with threadkit.TaskGroup(limit=2) as group:
        group.spawn(parent, group, 0)
    assert ran == list(range(21))


def test_below_the_limit_a_task_waiting_for_a_later_sibling_gets_it_a_thread() -> None:
    # A thread is counted free only once it has finished a task: counted at
    # its start, the busy first thread would take the sibling's turn, and
    # the two would wait for each other although the limit allows both.
    for _ in range(50):
        later_ran = threading.Event()
        with threadkit.TaskGroup(limit=2) as group:
            first = group.spawn(later_ran.wait, WAIT)
            group.spawn(later_ran.set)
        assert first.result() is True


def test_join_of_a_task_in_a_bounded_group_waits_for_the_task_not_its_thread() -> None:
    release = threading.Event()
    with threadkit.TaskGroup(limit=1) as group:
        first = group.spawn(release.wait, WAIT)
        second = group.spawn(lambda: "second")
        assert second.join(timeout=0.01) is False
        release.set()
        assert first.join(timeout=WAIT) is True
        assert second.join(timeout=WAIT) is True
    assert second.result() == "second"


def test_a_task_waiting_for_a_queued_sibling_is_released_by_a_cancel() -> None:
    # With every slot taken by tasks that wait for queued siblings the group
    # would never end; a cancel reaches the waits.
    later: list[threadkit.Task[str]] = []
    spawned = threading.Event()

    def wait_for_later() -> str:
        spawned.wait(WAIT)
        try:
            return later[0].result()
        except CancelledError:
            return "sibling cancelled"  # the cancel reached the sibling first

    with threadkit.TaskGroup(limit=1) as group:
        waiter = group.spawn(wait_for_later)
        later.append(group.spawn(lambda: "later"))
        spawned.set()
        group.cancel("unstick")
    assert waiter.cancelled() or waiter.result() == "sibling cancelled"
    assert later[0].cancelled()


# -- the lifecycle, as a state machine -------------------------------------------------


class BoundedGroup(RuleBasedStateMachine):
    """Spawn, release, cancel and fail tasks of a bounded group in any order.

    Invariants: never more than ``limit`` tasks run at once; a task
    cancelled before it started never starts; at the end every task has
    ended.  (Start order is pinned with limit 1 above: with two threads, the
    order in which they report starting is theirs to choose.)
    """

    LIMIT = 2

    def __init__(self) -> None:
        super().__init__()
        self.group = threadkit.TaskGroup(limit=self.LIMIT)
        self.group.__enter__()
        self.gauge = Gauge()
        self.started: list[int] = []
        self.gates: list[threading.Event] = []
        self.tasks: list[threadkit.Task[Any]] = []

    def _body(self, i: int, fail: bool) -> Callable[[], None]:
        def run() -> None:
            with self.gauge:
                self.started.append(i)
                self.gates[i].wait(WAIT)
            if fail:
                raise ValueError(f"task {i}")

        return run

    @rule(fail=st.booleans())
    def spawn(self, fail: bool) -> None:
        i = len(self.tasks)
        self.gates.append(threading.Event())
        self.tasks.append(self.group.spawn(self._body(i, fail)))

    @precondition(lambda self: self.tasks)
    @rule(data=st.data())
    def release(self, data: Any) -> None:
        i = data.draw(st.integers(0, len(self.tasks) - 1))
        self.gates[i].set()

    @precondition(lambda self: self.tasks)
    @rule(data=st.data())
    def cancel(self, data: Any) -> None:
        i = data.draw(st.integers(0, len(self.tasks) - 1))
        self.tasks[i].cancel()

    @invariant()
    def at_most_limit_run(self) -> None:
        assert self.gauge.most <= self.LIMIT

    def teardown(self) -> None:
        for gate in self.gates:
            gate.set()
        failures: list[BaseException] = []
        try:
            self.group.__exit__(None, None, None)
        except ExceptionGroup as eg:
            failures.extend(eg.exceptions)
        assert all(isinstance(e, ValueError) for e in failures)
        assert all(t.done() for t in self.tasks)
        # The bodies ignore their tokens: a task that started is never
        # cancelled, so a cancelled one never started.
        cancelled = {i for i, t in enumerate(self.tasks) if t.cancelled()}
        assert not cancelled & set(self.started)
        assert self.gauge.most <= self.LIMIT


TestBoundedGroup = BoundedGroup.TestCase
TestBoundedGroup.settings = settings(max_examples=30, stateful_step_count=15)


def test_each_task_of_a_bounded_group_is_named_in_the_waits_for_report_on_a_shared_thread() -> None:
    # The group's one thread runs both tasks: the report made while each
    # waits must name that task, not the one before it.
    def first(_r: object) -> str:
        return threadkit.dump()

    def second(_r: object) -> str:
        return threadkit.dump()

    with threadkit.ResourceWorker(object, name="db") as w, threadkit.TaskGroup(limit=1) as group:
        tasks = [group.spawn(w.call, fn) for fn in (first, second)]
        reports = [task.result(WAIT) for task in tasks]
    assert tasks[0].thread is tasks[1].thread
    for report, task in zip(reports, tasks, strict=True):
        waits = [line for line in report.splitlines() if "waits for worker 'db'" in line]
        assert waits == [f"  task {task.name!r} waits for worker 'db'"], report


def test_a_queued_task_can_be_renamed_and_its_thread_takes_the_new_name() -> None:
    release = threading.Event()
    with threadkit.TaskGroup(limit=1) as group:
        group.spawn(release.wait, WAIT)
        queued = group.spawn(lambda: threading.current_thread().name)
        queued.name = "renamed"
        assert queued.name == "renamed"
        release.set()
    assert queued.result() == "renamed"


def test_renaming_a_task_that_has_ended_leaves_its_thread_to_the_next_task() -> None:
    started, go = threading.Event(), threading.Event()

    def second() -> str:
        started.set()
        go.wait(WAIT)
        return threading.current_thread().name

    with threadkit.TaskGroup(limit=1) as group:
        first = group.spawn(lambda: None)
        later = group.spawn(second)
        later.name = "second"
        assert started.wait(WAIT)  # the one thread has moved on from `first`
        first.name = "first, renamed after it ended"
        go.set()
    assert first.name == "first, renamed after it ended"
    assert later.result() == "second"


def test_a_group_whose_thread_cannot_start_ends_the_queued_task_and_its_block(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spawned: list[BaseException] = []
    start = threading.Thread.start

    def refuse(self: threading.Thread) -> None:
        if not self.name.startswith("stranded "):
            start(self)  # another thread of the test process
            return
        raise RuntimeError("can't start new thread")

    def block() -> None:
        with threadkit.TaskGroup(limit=2, name="stranded") as group, monkeypatch.context() as m:
            m.setattr(threading.Thread, "start", refuse)
            try:
                group.spawn(print)
            except RuntimeError as exc:
                spawned.append(exc)

    thread = threading.Thread(target=block)
    thread.start()
    thread.join(WAIT)
    # The task that no thread would ever take was withdrawn: the block ended.
    assert not thread.is_alive()
    assert [str(e) for e in spawned] == ["can't start new thread"]
