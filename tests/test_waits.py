"""Waits-for detection: cycles of workers and tasks waiting for each other raise, never hang."""

from __future__ import annotations

import re
import threading
from concurrent.futures import Future
from typing import Any

import pytest

import threadkit

from .conftest import WAIT

CYCLE = re.compile(
    r"^(call\(\) on worker '\w+'|result\(\) on a request to worker '\w+'|waiting for task '\w+')"
    r" would deadlock: (?P<chain>.+) \(each waits for the next\)$"
)


def chain_of(exc: BaseException) -> list[str]:
    match = CYCLE.match(str(exc))
    assert match, str(exc)
    return match["chain"].split(" -> ")


def rotations(cycle: list[str]) -> list[list[str]]:
    ring = cycle[:-1]
    return [[*ring[i:], *ring[:i], ring[i]] for i in range(len(ring))]


def run_ring(names: list[str]) -> tuple[list[BaseException], list[object]]:
    """Worker i's request calls into worker i+1 (mod n): a cycle of n workers."""
    workers = [threadkit.ResourceWorker(lambda n=n: n, name=n) for n in names]
    errors: list[BaseException] = []
    results: list[object] = []
    all_in = threading.Barrier(len(names), timeout=WAIT)

    def hop(resource: str, nxt: threadkit.ResourceWorker[str]) -> object:
        all_in.wait()  # every owner is inside a request before anyone calls out
        try:
            return nxt.call(lambda r: r)
        except threadkit.DeadlockError as exc:
            errors.append(exc)
            return exc

    for w in workers:
        w.start()
    try:
        futures: list[Future[object]] = [
            w.submit(hop, workers[(i + 1) % len(workers)]) for i, w in enumerate(workers)
        ]
        results = [f.result(WAIT) for f in futures]
    finally:
        for w in workers:
            w.shutdown()
    return errors, results


@pytest.mark.parametrize("names", [["a", "b"], ["a", "b", "c"], ["a", "b", "c", "d", "e"]])
def test_a_cycle_of_workers_calling_each_other_raises_deadlock_error_naming_the_cycle(
    names: list[str],
) -> None:
    errors, results = run_ring(names)
    assert errors, "some call in the cycle must have been refused"
    expected = [f"worker '{n}'" for n in [*names, names[0]]]
    for exc in errors:
        assert chain_of(exc) in rotations(expected)
    # Once a call in the cycle was refused, the others completed.
    assert len(results) == len(names)


def test_a_chain_of_workers_without_a_cycle_is_not_refused() -> None:
    with (
        threadkit.ResourceWorker(lambda: "c", name="c") as c,
        threadkit.ResourceWorker(lambda: "b", name="b") as b,
        threadkit.ResourceWorker(lambda: "a", name="a") as a,
    ):
        got = a.call(lambda r: r + b.call(lambda r2: r2 + c.call(lambda r3: r3)))
    assert got == "abc"


def test_many_threads_calling_many_workers_in_one_direction_never_see_a_false_cycle() -> None:
    workers = [threadkit.ResourceWorker(lambda i=i: i, name=f"w{i}").start() for i in range(4)]

    def down(r: int, i: int) -> int:
        return r if i + 1 == len(workers) else r + workers[i + 1].call(down, i + 1)

    errors: list[BaseException] = []

    def client() -> None:
        try:
            for _ in range(50):
                assert workers[0].call(down, 0) == 6
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=client) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    for w in workers:
        w.shutdown()
    assert errors == []


def test_result_on_a_pending_future_of_its_own_worker_raises_in_the_owner_thread() -> None:
    def inner(_r: object, w: threadkit.ResourceWorker[object]) -> str:
        later = w.submit(lambda _r: "later")
        with pytest.raises(threadkit.DeadlockError) as info:
            later.result()
        return str(info.value)

    with threadkit.ResourceWorker(object, name="db") as w:
        message = w.call(inner, w)
    assert message == (
        "result() of a pending request, called from the owner thread of worker 'db', "
        "would wait for itself forever"
    )


def test_result_on_another_workers_future_that_waits_for_us_raises() -> None:
    a = threadkit.ResourceWorker(object, name="a").start()
    b = threadkit.ResourceWorker(object, name="b").start()
    both_in = threading.Barrier(2, timeout=WAIT)
    errors: list[BaseException] = []

    def in_b(_r: object) -> None:
        both_in.wait()
        try:
            a.call(lambda _r: None)
        except threadkit.DeadlockError as exc:
            errors.append(exc)

    def in_a(_r: object) -> None:
        fut = b.submit(in_b)
        both_in.wait()
        try:
            fut.result()
        except threadkit.DeadlockError as exc:
            errors.append(exc)

    try:
        a.call(in_a)
    finally:
        a.shutdown()
        b.shutdown()
    assert errors
    assert all(chain_of(e) in rotations(["worker 'a'", "worker 'b'", "worker 'a'"]) for e in errors)


def test_a_task_and_a_worker_waiting_for_each_other_raise_instead_of_hanging() -> None:
    errors: list[BaseException] = []
    holder: dict[str, Any] = {}
    ready = threading.Barrier(2, timeout=WAIT)

    def task_body() -> None:
        ready.wait()
        try:
            holder["w"].call(lambda _r: None)
        except threadkit.DeadlockError as exc:
            errors.append(exc)

    def request(_r: object) -> None:
        task = threadkit.spawn(task_body)
        task.name = "t"
        ready.wait()
        try:
            task.result()
        except threadkit.DeadlockError as exc:
            errors.append(exc)
        task.join(WAIT)

    with threadkit.ResourceWorker(object, name="w") as w:
        holder["w"] = w
        w.call(request)
    assert errors
    assert all(chain_of(e) in rotations(["worker 'w'", "task 't'", "worker 'w'"]) for e in errors)
