"""Tests of a small module that uses threadkit: the patterns of "Testing code that uses threadkit".

Run with ``python -m pytest docs/examples/test_visits.py``; threadkit's own
test suite runs it too (tests/test_docs.py).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import threadkit

# Every blocking wait in a test is bounded: a bug fails the test, it does not
# hang the suite.
WAIT = 10.0


# -- the code under test ---------------------------------------------------------------


def create(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS visits (page TEXT NOT NULL)")


def record(conn: sqlite3.Connection, page: str | None) -> None:
    conn.execute("INSERT INTO visits VALUES (?)", (page,))


def count(conn: sqlite3.Connection, page: str) -> int:
    (n,) = conn.execute("SELECT count(*) FROM visits WHERE page = ?", (page,)).fetchone()
    return int(n)


def open_store(
    path: Path, *, error_hook: Callable[[BaseException], object] | None = None
) -> threadkit.ResourceWorker[sqlite3.Connection]:
    return threadkit.ResourceWorker(
        lambda: sqlite3.connect(path, isolation_level=None),
        close=lambda conn: conn.close(),
        name="visits-db",
        error_hook=error_hook,
    )


# -- fixtures ---------------------------------------------------------------------------


@pytest.fixture
def errors() -> list[BaseException]:
    """What the worker's error hook received: the failures of post() requests."""
    return []


@pytest.fixture
def store(
    tmp_path: Path, errors: list[BaseException]
) -> Iterator[threadkit.ResourceWorker[sqlite3.Connection]]:
    worker = open_store(tmp_path / "visits.db", error_hook=errors.append)
    with worker:  # shut down even when the test fails: no thread outlives the test
        worker.call(create)
        yield worker
    thread = worker.thread
    assert thread is not None
    assert not thread.is_alive()


# -- tests --------------------------------------------------------------------------------


def test_posted_visits_are_counted_without_waiting_for_them(
    store: threadkit.ResourceWorker[sqlite3.Connection],
) -> None:
    for _ in range(100):
        store.post(record, "/home")
    # No sleep: requests run in order, so this call runs after the 100 posts.
    assert store.call(count, "/home") == 100


def test_a_failed_post_reaches_the_error_hook(
    store: threadkit.ResourceWorker[sqlite3.Connection], errors: list[BaseException]
) -> None:
    store.post(record, None)  # violates NOT NULL
    store.call(count, "/home")  # a barrier: the post has run when this returns
    assert len(errors) == 1
    assert isinstance(errors[0], sqlite3.IntegrityError)
    assert "post(record)" in errors[0].__notes__[0]


def test_visits_from_many_threads_are_all_counted(
    store: threadkit.ResourceWorker[sqlite3.Connection],
) -> None:
    start = threading.Barrier(8, timeout=WAIT)  # release all threads at once

    def visit() -> None:
        start.wait()
        for _ in range(50):
            store.call(record, "/shop")

    # timeout: a deadlock fails the test with TimeoutError instead of hanging
    with threadkit.TaskGroup(timeout=WAIT) as group:
        for _ in range(8):
            group.spawn(visit)
    assert store.call(count, "/shop") == 400


def test_a_long_request_stops_when_the_store_shuts_down(tmp_path: Path) -> None:
    started = threading.Event()

    def rebuild(conn: sqlite3.Connection) -> str:
        started.set()
        # Waits on the worker's token, which shutdown() cancels: no sleep.
        stopped = threadkit.current_token().wait(WAIT)
        return "stopped" if stopped else "ran to the end"

    worker = open_store(tmp_path / "visits.db")
    with worker:
        future = worker.submit(rebuild)
        assert started.wait(WAIT)  # bounded, and checked: False means it never started
    assert future.result(timeout=WAIT) == "stopped"
