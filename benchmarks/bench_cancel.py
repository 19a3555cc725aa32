"""Wake-up latency of CancelToken.wait(), against threading.Event for reference.

One thread blocks in ``token.wait()``; the main thread calls ``token.cancel()``
and we time from just before ``cancel()`` to the moment ``wait()`` has returned
in the other thread.  The same is measured for ``Event.set()`` /
``Event.wait()``.  Before each round the harness makes sure the waiter is
really parked on its condition variable (it looks at the private waiter list,
which is fine for a benchmark), so a wake-up is measured, not a fast path.

Run: ``python benchmarks/bench_cancel.py [rounds]`` (default 2000).
"""

from __future__ import annotations

import queue
import statistics
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import threadkit


def _parked(event: threading.Event | None) -> bool:
    return event is not None and len(event._cond._waiters) > 0  # type: ignore[attr-defined]


def measure(
    make: Callable[[], Any],
    wait: Callable[[Any], object],
    fire: Callable[[Any], object],
    parked: Callable[[Any], bool],
    rounds: int,
) -> list[float]:
    """Return the wake-up latencies in microseconds."""
    inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
    woke: queue.SimpleQueue[int] = queue.SimpleQueue()

    def waiter() -> None:
        while (item := inbox.get()) is not None:
            wait(item)
            woke.put(time.perf_counter_ns())

    thread = threading.Thread(target=waiter, name="bench-waiter")
    thread.start()
    latencies = []
    try:
        for _ in range(rounds):
            obj = make()
            inbox.put(obj)
            while not parked(obj):
                time.sleep(20e-6)  # harness only: let the waiter reach its wait
            start = time.perf_counter_ns()
            fire(obj)
            latencies.append((woke.get() - start) / 1000)
    finally:
        inbox.put(None)
        thread.join()
    return latencies


def summary(name: str, latencies: list[float]) -> tuple[float, float]:
    latencies.sort()
    median = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(f"{name:<34} median {median:8.1f} us   p99 {p99:8.1f} us")
    return median, p99


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    print(f"Python {sys.version.split()[0]}, {rounds} rounds, latency from fire to wait returning")
    event = summary(
        "threading.Event set() -> wait()",
        measure(threading.Event, lambda e: e.wait(), lambda e: e.set(), _parked, rounds),
    )
    token = summary(
        "CancelToken cancel() -> wait()",
        measure(
            threadkit.CancelToken,
            lambda t: t.wait(),
            lambda t: t.cancel(),
            lambda t: _parked(t._event),
            rounds,
        ),
    )

    # A child does not keep its parent alive: the harness does.
    parents: list[threadkit.CancelToken] = []

    def make_linked() -> threadkit.CancelToken:
        parents.append(threadkit.CancelToken())
        return parents[-1].child()

    linked = summary(
        "parent cancel() -> child wait()",
        measure(
            make_linked,
            lambda t: t.wait(),
            lambda t: parents[-1].cancel(),
            lambda t: _parked(t._event),
            rounds,
        ),
    )
    print(
        f"ratio to Event (median): token {token[0] / event[0]:.2f}x, "
        f"linked child {linked[0] / event[0]:.2f}x"
    )


if __name__ == "__main__":
    main()
