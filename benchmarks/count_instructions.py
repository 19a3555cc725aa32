"""Instructions per request, as callgrind counts them: a figure that other load cannot move.

Run from a checkout, with valgrind installed (not part of ``nox -s bench``: it
takes minutes)::

    python benchmarks/count_instructions.py [post|call|submit|lifecycle ...]

Each scenario runs twice under ``valgrind --tool=callgrind``, with N1 and N2
requests; (I(N2) - I(N1)) / (N2 - N1) is the count per request, every thread
included, start-up cancelled out.  The cyclic garbage collector is off, or a
collection would land in one run and not the other.

- ``post``: posts queued behind a blocked request, then drained: the producer's
  and the owner thread's work, without thread switches in between.
- ``call``: round trips; the two-Lock ping-pong is the floor (two switches).
- ``submit``: submits queued behind a blocked request, then each result().
- ``lifecycle``: construct, start, one call, shutdown(wait=True).

The reference columns are bench_worker.py's: ThreadPoolExecutor, the
hand-written SimpleQueue loop, the ping-pong.
"""

from __future__ import annotations

import argparse
import gc
import re
import subprocess
import sys
import threading
from typing import Any

import bench_worker as b  # beside this file: its implementations are the ones compared

SIZES = {"post": (2000, 6000), "call": (2000, 6000), "submit": (2000, 6000), "lifecycle": (50, 250)}
IMPLS = {
    "post": ["threadkit", "SimpleQueue", "TPE"],
    "call": ["threadkit", "ping-pong", "SimpleQueue", "TPE"],
    "submit": ["threadkit", "SimpleQueue", "TPE"],
    "lifecycle": ["threadkit", "SimpleQueue", "TPE"],
}


def scenario(name: str, label: str, n: int) -> None:
    """Run one scenario in this process (the child valgrind runs)."""
    gc.disable()
    classes: dict[str, Any] = {c.label: c for c in (b.TPE, b.Threadkit, b.HandSimpleQueue)}
    classes["ping-pong"] = b.PingPong
    if name == "lifecycle":
        for _ in range(n):
            impl = classes[label]()
            impl.call(b.noop)
            impl.shutdown()
        return
    impl = classes[label]()
    try:
        if name == "call":
            for _ in range(n):
                impl.call(b.noop)
            return
        running, release = threading.Event(), threading.Event()
        impl.post(lambda *_: (running.set(), release.wait()))
        running.wait()
        if name == "post":
            for _ in range(n):
                impl.post(b.noop)
            release.set()
            impl.call(b.noop)
        else:
            handles = [impl.submit(b.noop) for _ in range(n)]
            release.set()
            for h in handles:
                impl.result(h)
    finally:
        impl.shutdown()


def count(name: str, label: str, n: int) -> int:
    out = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            __file__,
            "--child",
            name,
            label,
            str(n),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    match = re.search(r"Collected : (\d+)", out.stderr)
    assert match, out.stderr
    return int(match.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="*", help=f"some of {', '.join(SIZES)} (default all)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        name, label, n = args.child
        scenario(name, label, int(n))
        return 0
    unknown = set(args.scenarios) - set(SIZES)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    print(f"python {sys.version.split()[0]}; instructions per request, all threads")
    for name in args.scenarios or SIZES:
        n1, n2 = SIZES[name]
        cells = []
        for label in IMPLS[name]:
            per = (count(name, label, n2) - count(name, label, n1)) // (n2 - n1)
            cells.append(f"{label} {per:,}")
        print(f"{name:<10} " + ", ".join(cells), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
