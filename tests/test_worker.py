"""ResourceWorker basics: the owner thread, the lifecycle as introspection shows it, misuse."""

from __future__ import annotations

import concurrent.futures as cf
import re
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

import threadkit
from threadkit import DeadlockError, ResourceWorker, WorkerClosed

from .conftest import WAIT
from .worker_helpers import Gate, in_thread


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


def test_cancel_futures_cancels_the_queue_before_the_token_ends_the_running_request() -> None:
    # Cancelling the worker's token ends a request that waits on it; if that
    # came before the queue was drained, the owner thread could start the
    # next request in between.  The token callback below holds shutdown right
    # after the token is cancelled until the owner has dealt with `queued`.
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


def test_factory_requests_and_close_all_run_in_the_one_owner_thread() -> None:
    seen: list[tuple[str, threading.Thread]] = []
    resource = object()

    def factory() -> object:
        seen.append(("open", threading.current_thread()))
        return resource

    def close(r: object) -> None:
        assert r is resource
        seen.append(("close", threading.current_thread()))

    def request(r: object, tag: str) -> None:
        assert r is resource
        seen.append((tag, threading.current_thread()))

    w = ResourceWorker(factory, close=close)
    with w:
        w.submit(request, "submit").result(WAIT)
        w.call(request, "call")
        w.post(request, "post")
    assert [tag for tag, _ in seen] == ["open", "submit", "call", "post", "close"]
    assert {t for _, t in seen} == {w.thread}
    assert w.thread is not threading.current_thread()


def test_arguments_and_keyword_arguments_reach_the_function() -> None:
    def fn(r: int, a: int, b: int = 0, *, c: int = 0) -> tuple[int, int, int, int]:
        return (r, a, b, c)

    with ResourceWorker(lambda: 7) as w:
        assert w.submit(fn, 1, 2, c=3).result(WAIT) == (7, 1, 2, 3)
        assert w.call(fn, 1, c=3) == (7, 1, 0, 3)
        out: list[Any] = []
        w.post(lambda r, x, *, y: out.append((r, x, y)), 1, y=2)
        w.call(lambda r: None)
        assert out == [(7, 1, 2)]


def test_keyword_arguments_named_like_the_methods_options_go_to_the_function() -> None:
    # fn is positional-only, so "fn", "wait" or "timeout" are free for the function's use.
    def fn(r: None, **kwargs: Any) -> dict[str, Any]:
        return kwargs

    with ResourceWorker(lambda: None) as w:
        assert w.call(fn, fn=1, timeout=2) == {"fn": 1, "timeout": 2}
        assert w.submit(fn, fn=1, wait=2).result(WAIT) == {"fn": 1, "wait": 2}


def test_start_returns_the_worker_and_blocks_until_the_factory_has_returned() -> None:
    factory_returned = threading.Event()

    def factory() -> int:
        factory_returned.set()
        return 1

    w = ResourceWorker(factory)
    assert w.start() is w
    assert factory_returned.is_set()
    assert w.running
    w.shutdown()


def test_the_context_manager_starts_and_shuts_down_gracefully() -> None:
    closed = threading.Event()
    w = ResourceWorker(lambda: 1, close=lambda r: closed.set())
    with w as entered:
        assert entered is w
        gate = Gate()
        w.submit(gate)
        gate.wait_entered()
        queued = w.submit(lambda r: "queued")
        gate.open()
    assert queued.result(0) == "queued"
    assert closed.is_set()
    assert w.thread is not None
    assert not w.thread.is_alive()


def test_introspection_follows_the_lifecycle() -> None:
    w = ResourceWorker(lambda: 1, name="db")
    assert w.name == "db"
    assert (w.running, w.closed, w.thread, w.pending) == (False, False, None, 0)
    assert repr(w) == "<ResourceWorker 'db' new, 0 pending>"

    w.start()
    assert w.running
    assert not w.closed
    assert w.thread is not None
    assert w.thread.name == "db"
    assert w.thread.is_alive()
    assert repr(w) == "<ResourceWorker 'db' running, 0 pending>"

    gate = Gate()
    w.submit(gate)
    gate.wait_entered()
    w.submit(lambda r: None)
    w.post(lambda r: None)
    assert w.pending == 2
    assert repr(w) == "<ResourceWorker 'db' running, 2 pending>"

    w.shutdown(wait=False)
    assert w.closed
    assert w.running
    # The stop marker is queued too, and is not counted.
    assert w.pending == 2
    assert repr(w) == "<ResourceWorker 'db' shutting down, 2 pending>"

    gate.open()
    w.shutdown()
    assert (w.running, w.closed, w.pending) == (False, True, 0)
    assert not w.thread.is_alive()
    assert repr(w) == "<ResourceWorker 'db' closed, 0 pending>"


def test_repr_shows_live_state_while_the_factory_runs() -> None:
    in_factory = threading.Event()
    release = threading.Event()

    def factory() -> int:
        in_factory.set()
        assert release.wait(WAIT)
        return 1

    w = ResourceWorker(factory, name="slow")
    t, out = in_thread(w.start)
    assert in_factory.wait(WAIT)
    assert repr(w) == "<ResourceWorker 'slow' starting, 0 pending>"
    assert not w.running
    assert not w.closed
    release.set()
    t.join(WAIT)
    assert out["result"] is w
    assert w.running
    w.shutdown()


def test_default_names_are_unique_and_name_the_owner_thread() -> None:
    a = ResourceWorker(lambda: 1)
    b = ResourceWorker(lambda: 1)
    assert re.fullmatch(r"ResourceWorker-\d+", a.name)
    assert a.name != b.name
    with a:
        assert a.thread is not None
        assert a.thread.name == a.name


def test_the_owner_thread_is_not_a_daemon() -> None:
    # Guarantee 6 is kept by draining at exit, not by abandoning the thread.
    with ResourceWorker(lambda: 1) as w:
        assert w.thread is not None
        assert not w.thread.daemon


def test_call_from_the_owner_thread_raises_deadlock_error_at_once() -> None:
    with ResourceWorker(lambda: 1, name="db") as w:
        f = w.submit(lambda r: w.call(lambda r: 2))
        exc = f.exception(WAIT)
        assert isinstance(exc, DeadlockError)
        assert isinstance(exc, RuntimeError)
        with pytest.raises(
            DeadlockError,
            match=(
                r"^call\(\) from the owner thread of worker 'db' would wait for itself forever; "
                r"call the function on the resource directly, or use submit\(\)$"
            ),
        ):
            raise exc
        # The worker goes on.
        assert w.call(lambda r: r + 1) == 2


def test_the_owner_thread_may_submit_and_post_to_its_own_worker() -> None:
    with ResourceWorker(lambda: 1) as w:
        out: list[str] = []
        inner = w.call(lambda r: w.submit(lambda r: out.append("submitted")))
        w.call(lambda r: w.post(lambda r: out.append("posted")))
        inner.result(WAIT)
        w.call(lambda r: None)
        assert out == ["submitted", "posted"]


def test_a_thread_that_reuses_a_finished_owner_threads_ident_is_not_the_owner() -> None:
    # Thread idents are recycled (on Linux almost always the next thread gets
    # the dead one's ident): a finished worker must not mistake a new thread
    # for its owner and raise DeadlockError instead of WorkerClosed.
    w = ResourceWorker(lambda: 1, name="db").start()
    w.shutdown()
    errors: list[BaseException] = []
    for _ in range(3):
        t, out = in_thread(w.call, lambda r: r)
        t.join(WAIT)
        errors.append(out["error"])
    for exc in errors:
        assert type(exc) is WorkerClosed, exc


# -- the subclass form and typing ----------------------------------------------------


class Counter(ResourceWorker[list[int]]):
    """The subclass form: on_open() and on_close() overridden, no factory."""

    def __init__(self) -> None:
        super().__init__(name="counter")
        self.opened_in: threading.Thread | None = None
        self.closed_with: list[int] | None = None
        self.closed_in: threading.Thread | None = None

    def on_open(self) -> list[int]:
        self.opened_in = threading.current_thread()
        return []

    def on_close(self, resource: list[int]) -> None:
        self.closed_in = threading.current_thread()
        self.closed_with = list(resource)


def test_the_subclass_form_uses_open_and_close_in_the_owner_thread() -> None:
    w = Counter()
    with w:
        w.post(lambda r: r.append(1))
        w.submit(lambda r: r.append(2)).result(WAIT)
        assert w.call(len) == 2
    assert w.opened_in is w.thread
    assert w.closed_in is w.thread
    assert w.closed_with == [1, 2]
    assert repr(w) == "<Counter 'counter' closed, 0 pending>"


def test_a_subclass_that_overrides_only_close_still_uses_the_factory() -> None:
    closed: list[int] = []

    class Closing(ResourceWorker[int]):
        def on_close(self, resource: int) -> None:
            closed.append(resource)

    with Closing(lambda: 5) as w:
        assert w.call(lambda r: r) == 5
    assert closed == [5]


def test_the_worker_is_generic_at_runtime() -> None:
    alias = ResourceWorker[sqlite3.Connection]
    w = alias(lambda: sqlite3.connect(":memory:"), close=lambda c: c.close())
    assert type(w) is ResourceWorker
    with w:
        assert w.call(lambda c: c.execute("SELECT 1").fetchone()) == (1,)


def test_public_names_are_exported_from_threadkit_with_their_public_module() -> None:
    for name in ("ResourceWorker", "WorkerClosed", "DeadlockError", "MailboxFull"):
        obj = getattr(threadkit, name)
        assert obj.__module__ == "threadkit"
        assert name in threadkit.__all__
    assert issubclass(threadkit.WorkerClosed, RuntimeError)
    assert issubclass(threadkit.DeadlockError, RuntimeError)
