"""The cost of waits-for detection when there is no cycle.

Run from a checkout (the ``bench`` nox session does this)::

    python benchmarks/bench_waits.py

Times ``ResourceWorker.call()`` round trips as shipped, and with the waits-for
bookkeeping replaced by no-ops, interleaved in chunks so that both see the
same machine; then the bookkeeping alone (``wait_begins`` + ``wait_ends`` on
a chain of two waiting threads).  Reports medians and the overhead.
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


def main() -> int:
    print(f"python {platform.python_version()}, command: python benchmarks/bench_waits.py")
    begins, ends = _waits.wait_begins, _waits.wait_ends
    with_checks: list[float] = []
    without: list[float] = []
    with threadkit.ResourceWorker(object) as w:
        round_trips(w, 2000)
        for _ in range(15):
            with_checks.append(round_trips(w, 1000))
            _waits.wait_begins = lambda target, what: None  # type: ignore[assignment]
            _waits.wait_ends = lambda: None
            try:
                without.append(round_trips(w, 1000))
            finally:
                _waits.wait_begins, _waits.wait_ends = begins, ends
    a, b = statistics.median(with_checks), statistics.median(without)
    print(f"call() round trip with waits-for checks: {a * 1e6:.2f} us")
    print(f"call() round trip without:               {b * 1e6:.2f} us")
    print(f"overhead: {(a - b) * 1e9:+.0f} ns per call ({a / b:.3f}x)")
    n = 200_000
    _waits._waiting[-1] = -2  # a chain to walk: the target itself waits
    t = time.perf_counter()
    for _ in range(n):
        _waits.wait_begins(-1, "x")
        _waits.wait_ends()
    per = (time.perf_counter() - t) / n
    del _waits._waiting[-1]
    print(f"bookkeeping alone (walk of 2 edges): {per * 1e9:.0f} ns per wait")
    return 0


if __name__ == "__main__":
    sys.exit(main())
