from __future__ import annotations

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
