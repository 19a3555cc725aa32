"""RayWorker beside the in-process ResourceWorker: what crossing a process costs.

Run from a checkout with Ray installed (``pip install -e '.[ray]'``)::

    python benchmarks/bench_ray.py [--reps 5] [--rst docs/howto/ray_figures.rst]

Rows, each measured for both workers in the same run (median of ``--reps``
repetitions, the two interleaved so that a noisy neighbour slows both):

- *round trip*: one ``call(noop)`` at a time, microseconds per call;
- *pipelined*: 2,000 ``submit(noop)`` then wait for all, requests per second;
- *SQLite writer*: 4 threads x 500 rows into one SQLite file (WAL,
  ``synchronous=NORMAL``), each thread waiting for its rows to be committed:
  one commit per row; and group commit (the in-process worker's
  ``max_batch=256`` with ``BEGIN``/``COMMIT`` hooks; through the actor, each
  request carries 50 rows of one thread in one transaction).

Ray's own start-up (``ray.init`` of an embedded local Ray) and a RayWorker's
start (the actor process) are reported once, not repeated.  With ``--rst``,
the table is also written as a reStructuredText include file whose header
names the command, the date, Python, Ray and the cores: the docs show that
file, never figures typed by hand.
"""

from __future__ import annotations

import argparse
import datetime
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
from typing import Any

import threadkit

try:
    import ray

    from threadkit.ray import RayWorker
except ImportError:
    sys.exit("bench_ray.py needs Ray: pip install -e '.[ray]'")

THREADS, ROWS, CHUNK, PIPELINED, ROUND_TRIPS = 4, 500, 50, 2000, 300


def noop(_resource: object) -> None:
    """The request of the first two rows: the cost measured is the machinery's."""


def connect(path: str) -> sqlite3.Connection:
    # isolation_level=None: autocommit, so BEGIN/COMMIT are ours to issue.
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE IF NOT EXISTS t (writer INTEGER, n INTEGER)")
    return conn


def insert_commit(conn: sqlite3.Connection, writer: int, n: int) -> None:
    conn.execute("BEGIN")
    conn.execute("INSERT INTO t VALUES (?, ?)", (writer, n))
    conn.execute("COMMIT")


def insert(conn: sqlite3.Connection, writer: int, n: int) -> None:
    conn.execute("INSERT INTO t VALUES (?, ?)", (writer, n))


def insert_many(conn: sqlite3.Connection, rows: list[tuple[int, int]]) -> None:
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO t VALUES (?, ?)", rows)
    conn.execute("COMMIT")


def count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM t").fetchone()[0])


# -- one measurement each -------------------------------------------------------------


def round_trip(w: Any) -> float:
    t0 = time.perf_counter()
    for _ in range(ROUND_TRIPS):
        w.call(noop)
    return (time.perf_counter() - t0) / ROUND_TRIPS * 1e6


def pipelined(w: Any) -> float:
    t0 = time.perf_counter()
    fs = [w.submit(noop) for _ in range(PIPELINED)]
    for f in fs:
        f.result()
    return PIPELINED / (time.perf_counter() - t0)


def writers(body: Callable[[int], list[Future[Any]]]) -> float:
    start = threading.Barrier(THREADS + 1)

    def target(k: int) -> None:
        start.wait()
        wait(body(k))

    ts = [threading.Thread(target=target, args=(k,)) for k in range(THREADS)]
    for t in ts:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in ts:
        t.join()
    return THREADS * ROWS / (time.perf_counter() - t0)


def sqlite_rows(make: Callable[[str], Any], grouped: bool, remote: bool) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench.db")
        w = make(path)
        try:
            if not grouped:

                def body(k: int) -> list[Future[Any]]:
                    return [w.submit(insert_commit, k, n) for n in range(ROWS)]
            elif remote:

                def body(k: int) -> list[Future[Any]]:
                    rows = [(k, n) for n in range(ROWS)]
                    return [
                        w.submit(insert_many, rows[i : i + CHUNK]) for i in range(0, ROWS, CHUNK)
                    ]
            else:

                def body(k: int) -> list[Future[Any]]:
                    return [w.submit(insert, k, n) for n in range(ROWS)]

            rate = writers(body)
            assert w.call(count) == THREADS * ROWS, "rows lost"
        finally:
            w.shutdown(wait=True)
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--rst", type=Path, help="also write the table to this include file")
    opts = parser.parse_args()

    t0 = time.perf_counter()
    ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=False)
    ray_start = time.perf_counter() - t0
    t0 = time.perf_counter()
    remote = RayWorker(dict).start()
    actor_start = time.perf_counter() - t0
    local = threadkit.ResourceWorker(dict).start()
    remote.call(noop)  # warm: the first request ships the function

    def group_local(path: str) -> Any:
        return threadkit.ResourceWorker(
            lambda: connect(path),
            close=sqlite3.Connection.close,
            max_batch=256,
            begin_batch=lambda c: c.execute("BEGIN"),
            end_batch=lambda c: c.execute("COMMIT"),
        ).start()

    rows: list[tuple[str, str, Callable[[], float], Callable[[], float]]] = [
        ("round trip", "µs per call", lambda: round_trip(local), lambda: round_trip(remote)),
        ("pipelined", "requests/s", lambda: pipelined(local), lambda: pipelined(remote)),
        (
            "SQLite, commit per row",
            "rows/s",
            lambda: sqlite_rows(
                lambda p: threadkit.ResourceWorker(lambda: connect(p)).start(), False, False
            ),
            lambda: sqlite_rows(lambda p: RayWorker(lambda: connect(p)).start(), False, True),
        ),
        (
            "SQLite, group commit",
            "rows/s",
            lambda: sqlite_rows(group_local, True, False),
            lambda: sqlite_rows(lambda p: RayWorker(lambda: connect(p)).start(), True, True),
        ),
    ]
    table: list[tuple[str, str, float, float]] = []
    for name, unit, in_process, through_ray in rows:
        a: list[float] = []
        b: list[float] = []
        for rep in range(opts.reps):
            pair = [(a, in_process), (b, through_ray)]
            for out, fn in pair if rep % 2 == 0 else pair[::-1]:
                out.append(fn())
        table.append((name, unit, statistics.median(a), statistics.median(b)))
    local.shutdown()
    remote.shutdown()

    def fmt(x: float) -> str:
        return f"{x:,.0f}"

    header = [
        ".. Generated by: python benchmarks/bench_ray.py " + " ".join(sys.argv[1:]),
        f".. {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; "
        f"Python {platform.python_version()}; Ray {ray.__version__}; "
        f"{os.cpu_count()} cores ({platform.machine()}); median of {opts.reps} runs.",
        ".. Do not edit by hand: run the command again.",
    ]
    body = [
        ".. list-table::",
        "   :header-rows: 1",
        "",
        "   * - measure",
        "     - unit",
        "     - ResourceWorker (in process)",
        "     - RayWorker (actor process)",
    ]
    for name, unit, x, y in table:
        body += [f"   * - {name}", f"     - {unit}", f"     - {fmt(x)}", f"     - {fmt(y)}"]
    footer = [
        "",
        f"Measured with Python {platform.python_version()} and Ray {ray.__version__} on "
        f"{os.cpu_count()} cores, on {datetime.datetime.now(datetime.UTC):%Y-%m-%d}. "
        f"Starting the embedded Ray took {ray_start:.1f} s, and each RayWorker's actor "
        f"{actor_start:.2f} s.",
    ]
    text = "\n".join([*header, "", *body, *footer]) + "\n"
    print(text)
    if opts.rst:
        opts.rst.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
