"""Group commit: one SQLite writer with batches, against a lock and against no batching.

Run from a checkout (the ``bench`` nox session does this)::

    python benchmarks/bench_sqlite.py [--threads 8] [--rows 2000] [--journal-mode WAL]
        [--write-docs]

``--write-docs`` also writes the table to ``docs/bench_sqlite.rst``, which
docs/howto/sqlite.rst includes.

8 threads each insert 2,000 rows into one SQLite file, three ways, each on a
fresh file in a temporary directory, in one run:

- ``lock``: one shared connection (``check_same_thread=False``) guarded by a
  :class:`threading.Lock`, one ``COMMIT`` per insert;
- ``worker``: a :class:`threadkit.ResourceWorker` owning the connection, one
  ``COMMIT`` per insert (no batching);
- ``group commit``: the same worker with ``max_batch=256``,
  ``begin_batch`` = ``BEGIN`` and ``end_batch`` = ``COMMIT``.

Each writer thread waits for every insert to be committed (it keeps the
futures and waits for them), so "done" means durable in all three.  Afterwards
the rows are counted with a new connection: every row must be there.
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, wait
from pathlib import Path

import threadkit

SQL_INSERT = "INSERT INTO t (writer, n) VALUES (?, ?)"


def connect(path: Path, journal_mode: str, *, check_same_thread: bool = True) -> sqlite3.Connection:
    # isolation_level=None: autocommit, so BEGIN/COMMIT are ours to issue.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=check_same_thread)
    conn.execute(f"PRAGMA journal_mode={journal_mode}")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE IF NOT EXISTS t (writer INTEGER, n INTEGER)")
    return conn


def insert_commit(conn: sqlite3.Connection, writer: int, n: int) -> None:
    conn.execute("BEGIN")
    conn.execute(SQL_INSERT, (writer, n))
    conn.execute("COMMIT")


def insert(conn: sqlite3.Connection, writer: int, n: int) -> None:
    conn.execute(SQL_INSERT, (writer, n))


def run_threads(threads: int, body: Callable[[int], None]) -> float:
    start = threading.Barrier(threads + 1)

    def target(k: int) -> None:
        start.wait()
        body(k)

    ts = [threading.Thread(target=target, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in ts:
        t.join()
    return time.perf_counter() - t0


def bench_lock(path: Path, journal_mode: str, threads: int, rows: int) -> float:
    conn = connect(path, journal_mode, check_same_thread=False)
    lock = threading.Lock()

    def body(k: int) -> None:
        for n in range(rows):
            with lock:
                insert_commit(conn, k, n)

    try:
        return run_threads(threads, body)
    finally:
        conn.close()


def bench_worker(path: Path, journal_mode: str, threads: int, rows: int, *, batch: bool) -> float:
    kwargs: dict[str, object] = {}
    if batch:
        kwargs = {
            "max_batch": 256,
            "begin_batch": lambda c: c.execute("BEGIN"),
            "end_batch": lambda c: c.execute("COMMIT"),
        }
    fn = insert if batch else insert_commit
    worker = threadkit.ResourceWorker(
        lambda: connect(path, journal_mode), close=lambda c: c.close(), **kwargs
    )
    with worker:

        def body(k: int) -> None:
            futures: list[Future[None]] = [worker.submit(fn, k, n) for n in range(rows)]
            done, not_done = wait(futures)
            assert not not_done
            for f in done:
                f.result()

        return run_threads(threads, body)


def count(path: Path) -> tuple[int, int]:
    with sqlite3.connect(path) as conn:
        rows, writers = conn.execute("SELECT count(*), count(DISTINCT writer) FROM t").fetchone()
    conn.close()
    return rows, writers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--rows", type=int, default=2000, help="rows per thread")
    parser.add_argument("--journal-mode", default="WAL")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument(
        "--write-docs",
        action="store_true",
        help="also write the table to docs/bench_sqlite.rst, which the docs include",
    )
    args = parser.parse_args(argv)

    header = [
        f"command: python benchmarks/bench_sqlite.py {' '.join(argv or sys.argv[1:])}".rstrip(),
        f"date: {time.strftime('%Y-%m-%d %H:%M %Z')}",
        f"python {platform.python_version()} ({platform.python_implementation()}), "
        f"sqlite {sqlite3.sqlite_version}, {platform.system()} {platform.machine()}, "
        f"os.cpu_count()={os.cpu_count()}",
        f"{args.threads} threads x {args.rows} rows, journal_mode={args.journal_mode}, "
        f"synchronous=FULL, median of {args.reps} runs, each on a new file",
    ]
    for line in header:
        print(line)
    expected = args.threads * args.rows
    ways: dict[str, Callable[[Path], float]] = {
        "lock, commit per insert": lambda p: bench_lock(
            p, args.journal_mode, args.threads, args.rows
        ),
        "worker, commit per insert": lambda p: bench_worker(
            p, args.journal_mode, args.threads, args.rows, batch=False
        ),
        "worker, group commit": lambda p: bench_worker(
            p, args.journal_mode, args.threads, args.rows, batch=True
        ),
    }
    times: dict[str, list[float]] = {label: [] for label in ways}
    lost = 0
    with tempfile.TemporaryDirectory(prefix="threadkit-bench-") as tmp:
        for rep in range(args.reps):
            for i, (label, way) in enumerate(ways.items()):
                path = Path(tmp) / f"{rep}-{i}.db"
                times[label].append(way(path))
                rows, writers = count(path)
                lost += expected - rows
                if (rows, writers) != (expected, args.threads):
                    print(f"  {label}: {rows} rows from {writers} writers, expected {expected}")
    base = statistics.median(times["lock, commit per insert"])
    print(f"{'way':<28}{'time':>10}{'rows/s':>12}{'vs lock':>10}")
    for label, samples in times.items():
        t = statistics.median(samples)
        print(f"{label:<28}{t:>9.3f}s{expected / t:>12,.0f}{base / t:>9.1f}x")
    ratio = base / statistics.median(times["worker, group commit"])
    verdict = "PASS" if ratio >= 10 and lost == 0 else "MISS"
    print(f"group commit vs lock: {ratio:.1f}x (target >= 10x), rows lost: {lost} -> {verdict}")
    if args.write_docs:
        write_docs(header, times, expected, ratio, lost)
    return 0 if lost == 0 else 1


def write_docs(
    header: list[str], times: dict[str, list[float]], expected: int, ratio: float, lost: int
) -> None:
    """Write the table as an reStructuredText include (docs/bench_sqlite.rst)."""
    path = Path(__file__).parent.parent / "docs" / "bench_sqlite.rst"
    names = {
        "lock, commit per insert": "one shared connection and a :class:`threading.Lock`, "
        "a commit per insert",
        "worker, commit per insert": "a ``ResourceWorker``, a commit per insert",
        "worker, group commit": "a ``ResourceWorker`` with group commit (``max_batch=256``)",
    }
    lines = [
        ".. Generated by benchmarks/bench_sqlite.py --write-docs; do not edit by hand.",
        "",
        "The figures below come from one run of the benchmark:",
        "",
        *(f"| {line}" for line in header),
        "",
        ".. list-table::",
        "   :header-rows: 1",
        "",
        f"   * - {expected:,} inserts, each writer waiting until its rows are committed",
        "     - time (median)",
        "     - rows per second",
    ]
    for label, samples in times.items():
        t = statistics.median(samples)
        lines += [f"   * - {names[label]}", f"     - {t:.3f} s", f"     - {expected / t:,.0f}"]
    lost_text = "no row was" if lost == 0 else f"{lost} rows were"
    lines += [
        "",
        f"In this run group commit was {ratio:.1f} times as fast as the lock (time with the "
        f"lock over time with group commit), and {lost_text} lost in any of the three.",
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
