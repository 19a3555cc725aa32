"""Acquire/release cost of threadkit's locks against the standard library's.

Run: ``python benchmarks/bench_sync.py [--number N] [--repeat R]``.

Each row times one uncontended acquire/release pair, in two spellings
(``lock.acquire(); lock.release()`` and ``with lock: pass``), as the best of
``repeat`` runs of ``number`` pairs, and prints it as a ratio to the same
spelling on the standard library's lock of the same kind
(:class:`threading.Lock` for the Lock rows, :class:`threading.RLock` for the
RLock rows: what a drop-in replacement is compared with).  "checks on" locks are created after
:func:`threadkit.checks.enable`; the "nested" rows hold one other checked lock
(acquired first, so every pair also looks up one known edge of the order
graph); the "token bound" rows run with a cancellable
:func:`threadkit.current_token` (as in a task), to show that an uncontended
acquisition never looks at it.  Targets (issue 5): checks off <= 1.5x,
checks on <= 10x.  Since issue 15 (cancellable waits) an unchecked lock's
``acquire`` is one Python frame around the C call, so the
``acquire/release`` spelling of an unchecked Lock pays that frame; the
``with`` spelling does not show it.  No Python frame meets the 1.5x target
for that spelling: on one machine, 3.11 to 3.13, the cheapest conceivable
one (no parameters, one C call) measured 1.8x-2.2x, and the C lock's own
bound method in the slot 1.2x-1.5x; but a thread blocked in that C call
cannot be woken by a cancel, so the frame stays.
"""

from __future__ import annotations

import argparse
import sys
import threading
import timeit
from collections.abc import Callable
from typing import Any

import threadkit
from threadkit import checks
from threadkit._cancel import _bind_token

CALLS = "lock.acquire(); lock.release()"
WITH = "with lock: pass"


def best(stmt: str, lock: Any, number: int, repeat: int) -> float:
    """Seconds per pair: the best of ``repeat`` runs."""
    return min(timeit.repeat(stmt, globals={"lock": lock}, number=number, repeat=repeat)) / number


def make(factory: Callable[..., Any], *, checked: bool) -> Any:
    if checked:
        checks.enable()
    try:
        return factory()
    finally:
        checks.disable()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    n, r = args.number, args.repeat

    rows: list[tuple[str, Any, Any]] = [
        ("threading.Lock", threading.Lock(), None),
        ("threadkit.Lock, checks off", make(threadkit.Lock, checked=False), None),
        ("threadkit.Lock, checks off, token bound", make(threadkit.Lock, checked=False), "token"),
        ("threadkit.Lock, checks on", make(threadkit.Lock, checked=True), None),
        ("threadkit.Lock, checks on, nested", make(threadkit.Lock, checked=True), "outer"),
        ("threading.RLock", threading.RLock(), None),
        ("threadkit.RLock, checks off", make(threadkit.RLock, checked=False), None),
        ("threadkit.RLock, checks off, token bound", make(threadkit.RLock, checked=False), "token"),
        ("threadkit.RLock, checks on", make(threadkit.RLock, checked=True), None),
        ("threadkit.RLock, checks on, nested", make(threadkit.RLock, checked=True), "outer"),
    ]
    outer = make(threadkit.Lock, checked=True)

    print(f"Python {sys.version.split()[0]}; best of {r} x {n} uncontended pairs")
    print(f"{'lock':42} {'acquire/release':>18} {'with':>18}")
    base_calls = base_with = 0.0
    for label, lock, nested in rows:
        binding = _bind_token(threadkit.CancelToken()) if nested == "token" else None
        if binding is not None:
            binding.__enter__()
        elif nested:
            outer.acquire()
        try:
            calls = best(CALLS, lock, n, r)
            with_ = best(WITH, lock, n, r)
        finally:
            if binding is not None:
                binding.__exit__(None, None, None)
            elif nested:
                outer.release()
        if label.startswith("threading."):
            base_calls, base_with = calls, with_
        print(
            f"{label:42} {calls * 1e9:7.0f} ns {calls / base_calls:6.2f}x"
            f" {with_ * 1e9:7.0f} ns {with_ / base_with:6.2f}x"
        )
    print(
        "ratios are to the threading lock of the same kind, same spelling;"
        " targets: checks off <= 1.5x, checks on <= 10x"
    )


if __name__ == "__main__":
    main()
