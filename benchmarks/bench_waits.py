"""The cost of waits-for detection when there is no cycle.

Run from a checkout (the ``bench`` nox session does this)::

    python benchmarks/bench_waits.py

Times ``ResourceWorker.call()`` round trips as shipped (with detection on),
then the bookkeeping alone: ``wait_begins`` + ``wait_ends`` when the awaited
thread waits for nobody (the fast path; ``call()`` does the same inline), and
when it waits for another thread (a walk of two edges).  Reports medians and
the fast path's share of a round trip.
"""

from __future__ import annotations

import platform
import statistics
import sys
import time

import threadkit
from threadkit import _waits


def noop(_r: object) -> None:
    pass


def round_trips(w: threadkit.ResourceWorker[object], n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        w.call(noop)
    return (time.perf_counter() - t) / n


def bookkeeping(n: int) -> float:
    begins, ends = _waits.wait_begins, _waits.wait_ends
    t = time.perf_counter()
    for _ in range(n):
        begins(-1, "x")
        ends()
    return (time.perf_counter() - t) / n


def main() -> int:
    print(f"python {platform.python_version()}, command: python benchmarks/bench_waits.py")
    with threadkit.ResourceWorker(object) as w:
        round_trips(w, 2000)
        trips = [round_trips(w, 1000) for _ in range(15)]
    n = 200_000
    fast = statistics.median(bookkeeping(n // 10) for _ in range(10))
    # A chain to walk: the awaited thread (-1) waits for one (-2) that waits for nobody.
    _waits.edges[-1] = (-2, None)
    try:
        walk = statistics.median(bookkeeping(n // 10) for _ in range(10))
    finally:
        del _waits.edges[-1]
    call = statistics.median(trips)
    print(f"call() round trip, detection on: {call * 1e6:.2f} us")
    print(f"bookkeeping alone, no cycle possible (fast path): {fast * 1e9:.0f} ns per wait")
    print(f"bookkeeping alone, a walk of 2 edges: {walk * 1e9:.0f} ns per wait")
    print(f"fast path / round trip: {fast / call:.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
