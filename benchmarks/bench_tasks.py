"""Bounded task groups against ThreadPoolExecutor, and how fast a cancel reaches a blocked wait.

Run: ``python benchmarks/bench_tasks.py [--tasks N] [--repeat R] [--rounds K]``.

Part 1 runs the same workload through ``TaskGroup(limit=8)`` (one
``spawn`` per item) and through ``ThreadPoolExecutor(8).map``, and prints
the best of ``repeat`` runs of each, side by side, with their ratio (target,
issue 15: within 1.2x).  Workloads: a no-op, and ``time.sleep(0.001)``.

Part 2 measures the latency from ``token.cancel()`` to the moment a thread
blocked in a threadkit wait has raised :class:`threadkit.Cancelled`, for each
cancellable wait (target: within 10 ms).  Before each round the harness waits
until the waiter is parked (it looks at private state, which is fine for a
benchmark), so a wake-up is measured, not a fast path.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import threadkit
from threadkit._cancel import _bind_token


def noop(_: int) -> None:
    pass


def sleep_1ms(_: int) -> None:
    time.sleep(0.001)


def run_group(fn: Callable[[int], None], n: int) -> float:
    start = time.perf_counter()
    with threadkit.TaskGroup(limit=8) as group:
        for i in range(n):
            group.spawn(fn, i)
    return time.perf_counter() - start


def run_pool(fn: Callable[[int], None], n: int) -> float:
    start = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        for _ in pool.map(fn, range(n)):
            pass
    return time.perf_counter() - start


def throughput(n: int, repeat: int) -> None:
    print(f"Part 1: {n} items, best of {repeat}")
    print(f"{'workload':16} {'TaskGroup(limit=8)':>20} {'TPE(8).map':>14} {'ratio':>7}")
    for name, fn, items in [("no-op", noop, n), ("sleep(1 ms)", sleep_1ms, max(1, n // 10))]:
        group = min(run_group(fn, items) for _ in range(repeat))
        pool = min(run_pool(fn, items) for _ in range(repeat))
        print(f"{name:16} {group * 1e3:17.1f} ms {pool * 1e3:11.1f} ms {group / pool:6.2f}x")
    print("(sleep rows use a tenth of the items; target: ratio <= 1.2)")


# -- part 2 -----------------------------------------------------------------------


Case = tuple[str, Callable[[], Any], Callable[[Any], object]]


def cases() -> tuple[list[Case], Callable[[], None]]:
    """The waits to measure, and what ends the things they wait for."""

    def held(factory: Callable[[], Any]) -> Callable[[], Any]:
        def make() -> Any:
            obj = factory()
            obj.acquire()
            return obj

        return make

    def cond_wait(cond: threadkit.Condition) -> object:
        with cond:
            return cond.wait()

    def join_other(_: object) -> object:
        return other.join()

    release = threading.Event()
    other = threadkit.spawn(release.wait)
    worker: threadkit.ResourceWorker[dict[str, Any]] = threadkit.ResourceWorker(dict, name="bench")
    worker.__enter__()
    worker.post(lambda _: release.wait())  # keeps the owner thread busy: requests stay queued

    def cleanup() -> None:
        release.set()
        worker.__exit__(None, None, None)
        other.result()

    table: list[Case] = [
        ("Lock.acquire", held(threadkit.Lock), lambda x: x.acquire()),
        ("RLock.acquire", held(threadkit.RLock), lambda x: x.acquire()),
        ("Semaphore.acquire", lambda: threadkit.Semaphore(0), lambda x: x.acquire()),
        ("Event.wait", threadkit.Event, lambda x: x.wait()),
        ("Condition.wait", threadkit.Condition, cond_wait),
        ("Task.join", lambda: None, join_other),
        ("ResourceWorker.call", lambda: None, lambda _: worker.call(noop, 0)),
        ("future.result", lambda: worker.submit(noop, 0), lambda f: f.result()),
    ]
    return table, cleanup


def _waiter(
    token: threadkit.CancelToken,
    entered: threading.Event,
    wait: Callable[[Any], object],
    obj: Any,
    raised: list[int],
) -> None:
    with _bind_token(token):
        entered.set()
        try:
            wait(obj)
        except threadkit.Cancelled:
            raised.append(time.perf_counter_ns())


def latency(rounds: int) -> None:
    print(f"\nPart 2: cancel -> Cancelled raised in the blocked thread, {rounds} rounds")
    table, cleanup = cases()
    try:
        for name, make, wait in table:
            samples = []
            for _ in range(rounds):
                obj = make()
                token = threadkit.CancelToken()
                entered = threading.Event()
                raised: list[int] = []

                thread = threading.Thread(target=_waiter, args=(token, entered, wait, obj, raised))
                thread.start()
                entered.wait()
                # Harness only: let the waiter reach its blocking call.
                time.sleep(0.002)
                start = time.perf_counter_ns()
                token.cancel()
                thread.join()
                samples.append((raised[0] - start) / 1e6)
            samples.sort()
            median = statistics.median(samples)
            worst = samples[-1]
            print(f"{name:22} median {median:6.3f} ms   max {worst:6.3f} ms")
    finally:
        cleanup()
    print("(target: within 10 ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    print(f"Python {sys.version.split()[0]}")
    throughput(args.tasks, args.repeat)
    latency(args.rounds)


if __name__ == "__main__":
    main()
