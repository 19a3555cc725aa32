"""The typed API, as a user sees it: mypy --strict checks this file.

Lines marked ``type: ignore[...]`` must stay errors: with warn_unused_ignores
(part of --strict), mypy fails if one of them starts to type-check.
"""

from __future__ import annotations

import sqlite3
import threading
from concurrent.futures import Future

import threadkit


def insert(conn: sqlite3.Connection, name: str, *, commit: bool = True) -> int:
    return 1


def typed_usage() -> None:
    db: threadkit.ResourceWorker[sqlite3.Connection] = threadkit.ResourceWorker(
        lambda: sqlite3.connect(":memory:"), close=lambda c: c.close()
    )
    with db:
        fut: Future[int] = db.submit(insert, "alice", commit=False)
        n: int = db.call(insert, "bob")
        db.post(insert, "carol")
        db.submit(insert, 3)  # type: ignore[arg-type]
        db.call(insert, "x", commit="yes")  # type: ignore[arg-type]
        s: str = db.call(insert, "dave")  # type: ignore[assignment]
        del fut, n, s


def zip_one(src: str, dst: str, *, name: str = "") -> str:
    return dst


def typed_tasks() -> None:
    # Everything after the function is the function's: name= goes to zip_one.
    task: threadkit.Task[str] = threadkit.spawn(zip_one, "a", "b", name="zip")
    task.name = "zipper"
    threadkit.spawn(zip_one, "a", 3)  # type: ignore[arg-type]
    threadkit.spawn(zip_one, "a", "b", daemon=True)  # type: ignore[call-arg]
    s: str = task.result()
    fut: Future[str] = task
    with threadkit.TaskGroup(name="zips", timeout=5, daemon=True) as group:
        t2 = group.spawn(zip_one, "a", "b")
    n: int = t2.result()  # type: ignore[assignment]
    token = threadkit.current_token()
    child: threadkit.CancelToken = token.child()
    reg: threadkit.CancelRegistration = child.on_cancel(lambda: None)
    ok: bool = reg.remove() and child.cancel("why") and child.wait(1.0)
    del s, fut, n, ok


def typed_sync_usage() -> None:
    lock = threadkit.Lock(name="db", raise_on_timeout=True)
    with lock as entered:
        ok: bool = entered
    got: bool = lock.acquire(timeout=1.0) and lock.acquire(False)
    lock.release()
    rlock = threadkit.RLock()
    cond = threadkit.Condition(rlock, name="cv")
    with cond:
        cond.wait_for(lambda: True, 1.0)
    threadkit.Condition(threading.Lock())
    stats: threadkit.LockStatistics = lock.statistics()
    sem: threadkit.SemaphoreStatistics = threadkit.BoundedSemaphore(2).statistics()
    threadkit.Event(name="ready").wait(1.0)
    threadkit.checks.enable()
    threadkit.Lock("db")  # type: ignore[call-arg]
    lock.acquire(blocking="yes")  # type: ignore[arg-type]
    del ok, got, stats, sem


def typed_executor_and_batching() -> None:
    with threadkit.SerialExecutor(thread_name_prefix="io") as ex:
        f: Future[int] = ex.submit(pow, 2, 10)
        total: int = sum(ex.map(abs, [-1, 2]))
        ex.submit(pow, "2", 10)  # type: ignore[arg-type]
    batched: threadkit.ResourceWorker[sqlite3.Connection] = threadkit.ResourceWorker(
        lambda: sqlite3.connect(":memory:", isolation_level=None),
        max_batch=64,
        begin_batch=lambda c: c.execute("BEGIN"),
        end_batch=lambda c: c.execute("COMMIT"),
    )
    token: threadkit.CancelToken = batched.token
    report: str = threadkit.dump()
    del f, total, token, report


async def typed_asyncio(db: threadkit.ResourceWorker[sqlite3.Connection]) -> None:
    n: int = await db.acall(insert, "eve")
    m: int = await db.asubmit(insert, "frank", commit=True)
    await db.acall(insert, 5)  # type: ignore[arg-type]
    del n, m
