"""Benchmark threadkit.ResourceWorker against the standard library, side by side.

Run from a checkout (the ``bench`` nox session does this)::

    python benchmarks/bench_worker.py [--reps N] [--scale F] [--write-docs]

``--write-docs`` also writes the table to ``docs/bench_worker.rst``, which the
docs include (``python -m nox -s bench -- --write-docs`` does it for every
benchmark that has such a table): the docs' figures come from one run, never
from typing.

Every row is measured in the same run for every implementation, interleaved
repetition by repetition (the order rotates each time) so that a noisy
neighbour slows all of them alike.  A timed row reports the median over the
repetitions of the *paired* ratio ``time(TPE) / time(implementation)``, TPE
being ``ThreadPoolExecutor(max_workers=1)``: above 1 is faster than TPE.
Memory rows report bytes per queued request and the fraction of TPE's bytes:
below 1 is smaller.

Implementations (columns):

- ``threadkit``: :class:`threadkit.ResourceWorker` (unbounded mailbox).
- ``SimpleQueue`` / ``Queue``: a hand-written ``Thread`` reading tuples from a
  :class:`queue.SimpleQueue` / :class:`queue.Queue`, one stock
  :class:`concurrent.futures.Future` per request (``call`` is
  ``submit().result()``), nothing on top: the floor the library adds to.
- ``pykka``: a ``pykka.ThreadingActor`` (``ask`` / ``ask(block=False)`` /
  ``tell``), if pykka is installed.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from queue import Queue, SimpleQueue
from typing import Any, Protocol

import threadkit

try:
    import pykka
except ImportError:  # pykka is only in the "bench" dependency group
    pykka = None


def noop(*_: object) -> None:
    """The request every benchmark sends: the cost measured is the machinery's."""


# -- the implementations, behind one small interface -------------------------------


class Impl(Protocol):
    def call(self, fn: Callable[..., Any], /, *args: Any) -> Any: ...
    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Any: ...
    def result(self, handle: Any) -> Any: ...
    def post(self, fn: Callable[..., Any], /, *args: Any) -> None: ...
    def shutdown(self) -> None: ...


class TPE:
    label = "TPE"

    def __init__(self) -> None:
        self._ex = ThreadPoolExecutor(max_workers=1)
        # The executor starts its thread on the first submit; make it exist now.
        self._ex.submit(noop).result()
        # Bound methods straight from the executor: no adapter layer in the loop.
        self.submit = self._ex.submit  # type: ignore[method-assign]
        self.post = self._ex.submit  # type: ignore[method-assign,assignment]

    def call(self, fn: Callable[..., Any], /, *args: Any) -> Any:
        return self._ex.submit(fn, *args).result()

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Any:
        return self._ex.submit(fn, *args)

    def result(self, handle: Any) -> Any:
        return handle.result()

    def post(self, fn: Callable[..., Any], /, *args: Any) -> None:
        self._ex.submit(fn, *args)

    def shutdown(self) -> None:
        self._ex.shutdown(wait=True)


class Threadkit:
    label = "threadkit"

    def __init__(self) -> None:
        self._w: threadkit.ResourceWorker[None] = threadkit.ResourceWorker(
            lambda: None, name="bench"
        ).start()
        self.call = self._w.call  # type: ignore[method-assign,assignment]
        self.submit = self._w.submit  # type: ignore[method-assign,assignment]
        self.post = self._w.post  # type: ignore[method-assign,assignment]

    def call(self, fn: Callable[..., Any], /, *args: Any) -> Any:
        return self._w.call(fn, *args)

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Any:
        return self._w.submit(fn, *args)

    def result(self, handle: Any) -> Any:
        return handle.result()

    def post(self, fn: Callable[..., Any], /, *args: Any) -> None:
        self._w.post(fn, *args)

    def shutdown(self) -> None:
        self._w.shutdown(wait=True)


class _HandWritten:
    """The tutorial's worker: a thread, a queue of tuples, a stock Future each."""

    label = "?"

    def __init__(self, mailbox: SimpleQueue[Any] | Queue[Any]) -> None:
        self._q = mailbox
        self._put = mailbox.put
        self._thread = threading.Thread(target=self._run, name=f"bench-{self.label}")
        self._thread.start()

    def _run(self) -> None:
        get = self._q.get
        while (item := get()) is not None:
            fut, fn, args = item
            if fut is None:
                try:
                    fn(*args)
                except Exception as exc:
                    print(f"post failed: {exc!r}", file=sys.stderr)
                continue
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args)
            except BaseException as exc:  # delivered to the future
                fut.set_exception(exc)
            else:
                fut.set_result(result)

    def call(self, fn: Callable[..., Any], /, *args: Any) -> Any:
        return self.submit(fn, *args).result()

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Any:
        fut: Future[Any] = Future()
        self._put((fut, fn, args))
        return fut

    def result(self, handle: Any) -> Any:
        return handle.result()

    def post(self, fn: Callable[..., Any], /, *args: Any) -> None:
        self._put((None, fn, args))

    def shutdown(self) -> None:
        self._put(None)
        self._thread.join()


class HandSimpleQueue(_HandWritten):
    label = "SimpleQueue"

    def __init__(self) -> None:
        super().__init__(SimpleQueue())


class HandQueue(_HandWritten):
    label = "Queue"

    def __init__(self) -> None:
        super().__init__(Queue())


if pykka is not None:

    class _Actor(pykka.ThreadingActor):
        def on_receive(self, message: Any) -> Any:
            fn, args = message
            return fn(*args)


class Pykka:
    label = "pykka"

    def __init__(self) -> None:
        self._ref = _Actor.start()

    def call(self, fn: Callable[..., Any], /, *args: Any) -> Any:
        return self._ref.ask((fn, args))

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Any:
        return self._ref.ask((fn, args), block=False)

    def result(self, handle: Any) -> Any:
        return handle.get()

    def post(self, fn: Callable[..., Any], /, *args: Any) -> None:
        self._ref.tell((fn, args))

    def shutdown(self) -> None:
        self._ref.stop()


class PingPong:
    """The floor of a round trip: two threads handing the turn over through two locks.

    It has a ``call`` only; like the workers, its thread lives for the whole run.
    """

    label = "ping-pong"

    def __init__(self) -> None:
        self._ping, self._pong = threading.Lock(), threading.Lock()
        self._ping.acquire()
        self._pong.acquire()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="bench-ping-pong")
        self._thread.start()

    def _run(self) -> None:
        ping, pong = self._ping, self._pong
        while True:
            ping.acquire()
            if self._stop:
                return
            pong.release()

    def call(self, fn: Callable[..., Any], /, *args: Any) -> None:
        self._ping.release()
        self._pong.acquire()

    def shutdown(self) -> None:
        self._stop = True
        self._ping.release()
        self._thread.join()


IMPLS: list[type[Any]] = [TPE, Threadkit, HandSimpleQueue, HandQueue]
if pykka is not None:
    IMPLS.append(Pykka)
COLUMNS = [cls.label for cls in IMPLS if cls is not TPE]


# -- the measurements: each returns seconds per operation ----------------------------


def bench_call(impl: Impl, n: int) -> float:
    call = impl.call
    t0 = time.perf_counter()
    for _ in range(n):
        call(noop)
    return (time.perf_counter() - t0) / n


def bench_calls_interleaved(impls: dict[str, Any], order: list[str], n: int) -> dict[str, float]:
    """Round trips, in chunks taken in turn, so each sees the same machine weather.

    A thread wake-up costs a few microseconds when the two threads share a CPU and
    tens when the other CPU must be woken from idle (a virtual machine's halted
    vCPU): the mix drifts over time, so long runs one after another would compare
    different weather.
    """
    chunk = 50
    totals = dict.fromkeys(order, 0.0)
    for _ in range(max(1, n // chunk)):
        for label in order:
            totals[label] += bench_call(impls[label], chunk)
    return {label: t / max(1, n // chunk) for label, t in totals.items()}


def bench_pipelined(impl: Impl, n: int) -> float:
    submit, result = impl.submit, impl.result
    t0 = time.perf_counter()
    handles = [submit(noop) for _ in range(n)]
    for h in handles:
        result(h)
    return (time.perf_counter() - t0) / n


def bench_producers(impl: Impl, n: int, producers: int) -> float:
    """*producers* threads submit n // producers requests each, then wait for them."""
    per = n // producers
    start = threading.Barrier(producers + 1)
    end = threading.Barrier(producers + 1)
    submit, result = impl.submit, impl.result

    def produce() -> None:
        start.wait()
        handles = [submit(noop) for _ in range(per)]
        for h in handles:
            result(h)
        end.wait()

    threads = [threading.Thread(target=produce) for _ in range(producers)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    end.wait()
    elapsed = time.perf_counter() - t0
    for t in threads:
        t.join()
    return elapsed / (per * producers)


def bench_post(impl: Impl, n: int) -> float:
    post = impl.post
    t0 = time.perf_counter()
    for _ in range(n):
        post(noop)
    impl.call(noop)  # every post has run once this returns (FIFO)
    return (time.perf_counter() - t0) / n


def bench_idle_shutdown(cls: type[Any], samples: int) -> float:
    """Median time of shutdown(wait=True) on a started, idle worker."""
    times = []
    for _ in range(samples):
        impl = cls()
        impl.call(noop)
        t0 = time.perf_counter()
        impl.shutdown()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_memory(impl: Impl, n: int, *, kind: str) -> float:
    """Bytes per request queued behind a blocked one, as tracemalloc counts them."""
    running, release = threading.Event(), threading.Event()

    def block(*_: object) -> None:
        running.set()
        release.wait()

    arg = object()  # one argument, allocated beforehand: the request carries it
    impl.post(block)
    running.wait()
    keep: list[Any] = [None] * n
    submit, post = impl.submit, impl.post
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        if kind == "submit":
            for i in range(n):
                keep[i] = submit(noop, arg)
        else:
            for _ in range(n):
                post(noop, arg)
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
        release.set()
    impl.call(noop)
    return (after - before) / n


# -- the run ------------------------------------------------------------------------------


@contextmanager
def pinned() -> Iterator[str]:
    """Run the block, and the threads started in it, on one CPU.

    A round trip is two thread wake-ups.  On a multi-CPU (virtual) machine each
    worker thread settles either on the caller's CPU (a wake-up costs a few
    microseconds) or on another, idle one (tens of microseconds to wake), and
    keeps that placement for a while: unpinned round trips compare placements,
    not implementations.  Threads inherit their creator's affinity.
    """
    if not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2:
        yield "one CPU"
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    try:
        yield f"pinned to CPU {min(before)}"
    finally:
        os.sched_setaffinity(0, before)


@contextmanager
def workers() -> Iterator[tuple[dict[str, Impl], PingPong]]:
    made: dict[str, Impl] = {}
    floor = PingPong()
    try:
        for cls in IMPLS:
            made[cls.label] = cls()
        yield made, floor
    finally:
        floor.shutdown()
        for impl in made.values():
            impl.shutdown()


def rotated(labels: list[str], k: int) -> list[str]:
    k %= len(labels)
    return labels[k:] + labels[:k]


def median_ratio(samples: dict[str, list[float]], label: str, base: str = "TPE") -> float:
    return statistics.median(b / x for b, x in zip(samples[base], samples[label], strict=True))


def run(reps: int, scale: float) -> dict[str, Any]:
    n_call = max(100, int(2000 * scale))
    n_pipe = max(160, int(4800 * scale)) // 16 * 16
    n_post = max(500, int(20000 * scale))
    n_shut = max(5, int(15 * scale))
    n_mem = max(100, int(2000 * scale))
    labels = [cls.label for cls in IMPLS]
    rows: dict[str, dict[str, list[float]]] = {
        key: {label: [] for label in labels}
        for key in ("call", "pipelined", "producers", "post", "shutdown", "mem_submit", "mem_post")
    }
    ping_pong: list[float] = []
    unpinned: dict[str, list[float]] = {label: [] for label in labels}
    # Round trips first, with every thread on one CPU (see pinned()).
    with pinned() as placement, workers() as (impls, floor):
        for impl in [*impls.values(), floor]:
            bench_call(impl, n_call // 10)
        for rep in range(reps):
            order = rotated(labels, rep)
            timed = bench_calls_interleaved(
                {**impls, "ping-pong": floor}, [*order, "ping-pong"], n_call
            )
            ping_pong.append(timed.pop("ping-pong"))
            for label, t in timed.items():
                rows["call"][label].append(t)

    with workers() as (impls, _):
        # Warm-up: every path once, so first-use costs (thread start, lazy
        # imports, specialisation) fall outside the measurements.
        for impl in impls.values():
            bench_call(impl, n_call // 10)
            bench_pipelined(impl, n_pipe // 10)
            bench_post(impl, n_post // 10)

        for rep in range(reps):
            order = rotated(labels, rep)
            gc.collect()
            for label, t in bench_calls_interleaved(impls, order, n_call).items():
                unpinned[label].append(t)
            for label in order:
                rows["pipelined"][label].append(bench_pipelined(impls[label], n_pipe))
            for label in order:
                rows["producers"][label].append(bench_producers(impls[label], n_pipe, 16))
            for label in order:
                rows["post"][label].append(bench_post(impls[label], n_post))
            for label in order:
                cls = next(c for c in IMPLS if c.label == label)
                rows["shutdown"][label].append(bench_idle_shutdown(cls, n_shut))
            print(f"  repetition {rep + 1}/{reps} done", file=sys.stderr, flush=True)

        for _ in range(3):
            for label in labels:
                rows["mem_submit"][label].append(bench_memory(impls[label], n_mem, kind="submit"))
                rows["mem_post"][label].append(bench_memory(impls[label], n_mem, kind="post"))

    return {
        "rows": rows,
        "ping_pong": ping_pong,
        "unpinned": unpinned,
        "placement": placement,
        "sizes": {"call": n_call, "pipe": n_pipe, "post": n_post, "shut": n_shut, "mem": n_mem},
    }


def us(seconds: float) -> str:
    return f"{seconds * 1e6:.2f} us"


@dataclass
class Row:
    """One line of the report: what it measures, the cells, the target and whether it is met."""

    name: str
    measures: str
    base: str  # the TPE cell (or the floor's), absolute
    cells: dict[str, str]
    target: str = ""
    ok: bool | None = None


def build_rows(data: dict[str, Any]) -> list[Row]:
    """The issue's scenarios as ratios, each with its target (threadkit's column is judged)."""
    rows: dict[str, dict[str, list[float]]] = data["rows"]
    pp: list[float] = data["ping_pong"]
    sizes = data["sizes"]
    med = {
        key: {label: statistics.median(v) for label, v in row.items()} for key, row in rows.items()
    }

    def ratios(key: str) -> dict[str, float]:
        return {c: median_ratio(rows[key], c) for c in COLUMNS}

    def x(values: dict[str, float]) -> dict[str, str]:
        return {c: f"{v:.2f}x" for c, v in values.items()}

    out = []
    r = ratios("call")
    out.append(
        Row(
            f"call() round trip ({sizes['call']}, one CPU)",
            "one call() at a time, every thread pinned to one CPU; ratio time(TPE)/time(x)",
            us(med["call"]["TPE"]),
            x(r),
        )
    )
    vs_pp = {
        c: statistics.median(p / t for p, t in zip(pp, rows["call"][c], strict=True))
        for c in COLUMNS
    }
    out.append(
        Row(
            "call() vs two-Lock ping-pong",
            "the same round trips against two threads handing the turn over through two "
            "Locks (the floor); ratio time(floor)/time(x); the first cell is the floor's time",
            us(statistics.median(pp)),
            x(vs_pp),
            ">=0.9x",
            vs_pp["threadkit"] >= 0.9,
        )
    )
    out.append(
        Row(
            "  call(), threads unpinned",
            "the round trips again, threads free to run on any CPU (varies from run to run)",
            us(statistics.median(data["unpinned"]["TPE"])),
            x({c: median_ratio(data["unpinned"], c) for c in COLUMNS}),
        )
    )
    r = ratios("pipelined")
    out.append(
        Row(
            f"pipelined submit() ({sizes['pipe']}, then wait)",
            "one thread submits them all, then waits for each future; ratio time(TPE)/time(x)",
            us(med["pipelined"]["TPE"]),
            x(r),
            ">=3x",
            r["threadkit"] >= 3.0,
        )
    )
    r = ratios("producers")
    out.append(
        Row(
            "16 producers submit()",
            "16 threads submit and wait for the same total; ratio time(TPE)/time(x)",
            us(med["producers"]["TPE"]),
            x(r),
            ">=3x",
            r["threadkit"] >= 3.0,
        )
    )
    scaling = {
        label: statistics.median(
            one / many
            for one, many in zip(rows["pipelined"][label], rows["producers"][label], strict=True)
        )
        for label in ["TPE", *COLUMNS]
    }
    out.append(
        Row(
            "  16-producer / 1-producer throughput",
            "requests per second from 16 producers over those from one (each column its own)",
            f"{scaling['TPE']:.2f}x",
            x({c: scaling[c] for c in COLUMNS}),
            ">=0.75x",
            scaling["threadkit"] >= 0.75,
        )
    )
    r = ratios("post")
    out.append(
        Row(
            f"post() fire-and-forget ({sizes['post']})",
            "one thread posts them all, then one call() (FIFO: all have run when it returns); "
            "for TPE submit() with the future dropped; ratio time(TPE)/time(x)",
            us(med["post"]["TPE"]),
            x(r),
            ">=25x",
            r["threadkit"] >= 25.0,
        )
    )
    vs_loop = {
        c: statistics.median(
            s / t for s, t in zip(rows["post"]["SimpleQueue"], rows["post"][c], strict=True)
        )
        for c in COLUMNS
    }
    out.append(
        Row(
            "  post() vs the SimpleQueue loop",
            "the same posts against the hand-written SimpleQueue loop; ratio "
            "time(loop)/time(x); the first cell is the loop's time",
            us(med["post"]["SimpleQueue"]),
            x(vs_loop),
            ">=0.7x",
            vs_loop["threadkit"] >= 0.7,
        )
    )
    r = ratios("shutdown")
    out.append(
        Row(
            f"idle shutdown(wait=True) (median of {sizes['shut']})",
            "shutdown(wait=True) of a started, idle worker until its thread is joined; "
            "ratio time(TPE)/time(x)",
            us(med["shutdown"]["TPE"]),
            x(r),
            ">=0.9x",
            r["threadkit"] >= 0.9,
        )
    )
    for kind, limit in (("submit", 200), ("post", 100)):
        key = f"mem_{kind}"
        out.append(
            Row(
                f"memory per queued {kind}()",
                f"bytes per {kind}() queued behind a blocked request, one argument each, "
                "as tracemalloc counts them",
                f"{med[key]['TPE']:.0f} B",
                {c: f"{med[key][c]:.0f} B" for c in COLUMNS},
                f"<={limit} B",
                med[key]["threadkit"] <= limit,
            )
        )
    return out


def header_lines(reps: int, argv: list[str]) -> list[str]:
    return [
        f"command: {' '.join(['python', *argv])}",
        f"date: {time.strftime('%Y-%m-%d %H:%M %Z')}",
        f"python {platform.python_version()} ({platform.python_implementation()}), "
        f"{platform.system()} {platform.machine()}, os.cpu_count()={os.cpu_count()}",
        f"{reps} repetitions, implementations interleaved; ratios are medians of paired "
        "ratios, above 1 is better",
    ]


def report(data: dict[str, Any], reps: int, argv: list[str]) -> list[Row]:
    table = build_rows(data)
    print()
    print("threadkit.ResourceWorker benchmark")
    for line in header_lines(reps, argv):
        print(line)
    print("TPE = ThreadPoolExecutor(max_workers=1); reference columns are hand-written workers")
    print()
    width = 15
    header = f"{'row':<38}{'TPE':>{width}}" + "".join(f"{c:>{width}}" for c in COLUMNS)
    header += f"{'target':>10}{'result':>8}"
    print(header)
    print("-" * len(header))
    for row in table:
        verdict = "" if row.ok is None else ("PASS" if row.ok else "MISS")
        cells = "".join(f"{row.cells.get(c, '-'):>{width}}" for c in COLUMNS)
        print(f"{row.name:<38}{row.base:>{width}}{cells}{row.target:>10}{verdict:>8}")
    print()
    med = {k: statistics.median(v["threadkit"]) for k, v in data["rows"].items()}
    print(
        "absolute threadkit medians: "
        f"call {us(med['call'])}, pipelined {us(med['pipelined'])}/op, "
        f"16 producers {us(med['producers'])}/op, "
        f"post {us(med['post'])}/op, idle shutdown {us(med['shutdown'])}"
    )
    print(
        f"round trips: {data['placement']}, all implementations and the ping-pong "
        "interleaved in chunks of 50"
    )
    misses = sum(row.ok is False for row in table)
    print(f"{misses} target(s) missed" if misses else "all targets met")
    return table


def rst_cell(text: str) -> str:
    return text.replace(" us", " µs").strip() or "-"


def write_docs(path: Path, table: list[Row], reps: int, argv: list[str]) -> None:
    """Write the table as an reStructuredText include (docs/bench_worker.rst)."""
    columns = ["TPE", *COLUMNS]
    names = {"TPE": "ThreadPoolExecutor", "pykka": "Pykka"}
    lines = [
        ".. Generated by benchmarks/bench_worker.py --write-docs; do not edit by hand.",
        "",
        "The figures below come from one run of the benchmark:",
        "",
        *(f"| {line}" for line in header_lines(reps, argv)),
        "",
        ".. list-table::",
        "   :header-rows: 1",
        "   :stub-columns: 1",
        "",
        "   * - Scenario (what is measured)",
        *(f"     - {names.get(c, c)}" for c in columns),
        "     - threadkit's target",
    ]
    for row in table:
        verdict = "" if row.ok is None else (" (met)" if row.ok else " (missed)")
        lines.append(f"   * - {row.name.strip()}: {row.measures}")
        lines.append(f"     - {rst_cell(row.base)}")
        lines += [f"     - {rst_cell(row.cells.get(c, '-'))}" for c in COLUMNS]
        lines.append(f"     - {rst_cell(row.target + verdict)}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7, help="repetitions (default 7)")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply every request count (default 1)"
    )
    parser.add_argument(
        "--write-docs",
        action="store_true",
        help="also write the table to docs/bench_worker.rst, which the docs include",
    )
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    data = run(args.reps, args.scale)
    shown = sys.argv if argv is None else ["bench_worker.py", *argv]
    table = report(data, args.reps, shown)
    if args.write_docs:
        write_docs(
            Path(__file__).parent.parent / "docs" / "bench_worker.rst", table, args.reps, shown
        )
    print(f"total time {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
