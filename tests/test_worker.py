from __future__ import annotations

import concurrent.futures as cf
import sqlite3
import threading
from pathlib import Path

import threadkit

from .conftest import WAIT


def test_requests_run_in_the_owner_thread_with_a_same_thread_sqlite_connection(
    tmp_path: Path,
) -> None:
    db = threadkit.ResourceWorker(
        lambda: sqlite3.connect(tmp_path / "app.db"), close=lambda c: c.close(), name="db"
    )
    with db:
        db.call(lambda c: c.execute("CREATE TABLE t (x INTEGER)"))
        futures = [
            db.submit(lambda c, i: c.execute("INSERT INTO t VALUES (?)", (i,)), i)
            for i in range(50)
        ]
        for f in futures:
            f.result(WAIT)
        owner = db.call(lambda c: threading.current_thread())
        assert owner is db.thread
        assert owner is not threading.current_thread()
        assert db.call(lambda c: [r[0] for r in c.execute("SELECT x FROM t")]) == list(range(50))


def test_shutdown_cancels_the_token_a_long_request_sees_as_current_token() -> None:
    started = threading.Event()

    def long_request(_r: object) -> tuple[bool, object]:
        token = threadkit.current_token()
        started.set()
        return token.wait(WAIT), token.reason

    w = threadkit.ResourceWorker(object, name="db").start()
    assert w.call(lambda _r: threadkit.current_token()) is w.token
    fut = w.submit(long_request)
    assert started.wait(WAIT)
    assert not w.token.cancelled
    w.shutdown(wait=False)
    assert fut.result(WAIT) == (True, "worker 'db' is shutting down")
    w.shutdown(wait=True)


def test_a_request_taken_after_shutdown_with_cancel_futures_began_is_cancelled_not_run() -> None:
    # The window: shutdown(cancel_futures=True) cancels the worker's token,
    # which ends the running request, before it drains the queue; the owner
    # thread may take the next request in between.  The token callback below
    # holds shutdown in that window until the owner has dealt with `queued`.

    ran: list[str] = []
    started = threading.Event()

    def running(_r: object) -> None:
        started.set()
        threadkit.current_token().wait(WAIT)

    w = threadkit.ResourceWorker(object).start()
    w.submit(running)
    queued = w.submit(lambda _r: ran.append("queued"))
    assert started.wait(WAIT)
    w.token.on_cancel(lambda: cf.wait([queued], WAIT))
    w.shutdown(wait=True, cancel_futures=True)
    assert queued.cancelled()
    assert ran == []


def test_futures_cancelled_by_shutdown_count_as_done_for_wait_and_as_completed() -> None:

    started, release = threading.Event(), threading.Event()
    w = threadkit.ResourceWorker(object).start()
    w.submit(lambda _r: (started.set(), release.wait(WAIT)))
    queued = [w.submit(lambda _r: None) for _ in range(3)]
    assert started.wait(WAIT)
    w.shutdown(wait=False, cancel_futures=True)
    done, not_done = cf.wait(queued, WAIT)
    assert not_done == set()
    assert all(f.cancelled() for f in done)
    assert sorted(map(id, cf.as_completed(queued, WAIT))) == sorted(map(id, queued))
    release.set()
    w.shutdown()
