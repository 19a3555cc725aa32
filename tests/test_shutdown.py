"""Guarantee 4, shutdown: refuse new requests, run or cancel the accepted ones, close once."""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import CancelledError, Future
from typing import Any

import pytest

from threadkit import ResourceWorker, WorkerClosed

from .conftest import WAIT
from .worker_helpers import Gate, in_thread, run_until_blocked


class Closer:
    """A close callable that records where, when and how often it ran."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, threading.Thread]] = []
        self.done = threading.Event()

    def __call__(self, resource: object) -> None:
        self.calls.append((resource, threading.current_thread()))
        self.done.set()


REFUSALS = [
    ("submit", "cannot submit to worker 'db' {}"),
    ("call", "cannot call worker 'db' {}"),
    ("post", "cannot post to worker 'db' {}"),
]


@pytest.mark.parametrize(("method", "message"), REFUSALS)
def test_requests_before_start_are_refused(method: str, message: str) -> None:
    w = ResourceWorker(lambda: None, name="db")
    expected = message.format("before start(); call start() or use the worker in a with block")
    with pytest.raises(WorkerClosed, match=f"^{re.escape(expected)}$"):
        getattr(w, method)(lambda r: None)


@pytest.mark.parametrize(("method", "message"), REFUSALS)
@pytest.mark.parametrize("wait", [True, False])
def test_requests_after_shutdown_began_are_refused_and_never_run(
    method: str, message: str, wait: bool
) -> None:
    w = ResourceWorker(lambda: None, name="db").start()
    gate = Gate()
    w.submit(gate)
    gate.wait_entered()
    w.shutdown(wait=False)
    ran: list[int] = []
    with pytest.raises(WorkerClosed, match=f"^{message.format('after shutdown')}$"):
        getattr(w, method)(lambda r: ran.append(1))
    gate.open()
    w.shutdown(wait=wait)
    w.shutdown()
    with pytest.raises(WorkerClosed, match=f"^{message.format('after shutdown')}$"):
        getattr(w, method)(lambda r: ran.append(1))
    assert ran == []


def test_graceful_shutdown_runs_every_accepted_request_then_closes_once_in_the_owner_thread() -> (
    None
):
    closer = Closer()
    resource = object()
    order: list[str] = []
    w = ResourceWorker(lambda: resource, close=closer).start()
    gate = Gate()
    w.submit(gate)
    gate.wait_entered()
    futures = [w.submit(lambda r, i=i: order.append(f"submit{i}")) for i in range(3)]
    w.post(lambda r: order.append("post"))
    caller, out = run_until_blocked(w.call, lambda r: order.append("call"))
    w.shutdown(wait=False)
    gate.open()
    w.shutdown()
    caller.join(WAIT)
    assert out == {"result": None, "done": True}
    assert all(f.done() and not f.cancelled() for f in futures)
    assert order == ["submit0", "submit1", "submit2", "post", "call"]
    assert closer.calls == [(resource, w.thread)]


def test_close_runs_after_the_last_request() -> None:
    events: list[str] = []
    w = ResourceWorker(lambda: None, close=lambda r: events.append("close")).start()
    gate = Gate()
    w.submit(gate)
    gate.wait_entered()
    for i in range(5):
        w.post(lambda r, i=i: events.append(f"request{i}"))
    w.shutdown(wait=False)
    gate.open()
    w.shutdown()
    assert events == [f"request{i}" for i in range(5)] + ["close"]


def test_shutdown_with_wait_returns_only_after_close_finished_and_the_thread_exited() -> None:
    in_close = threading.Event()
    release_close = threading.Event()
    close_finished = threading.Event()

    def close(r: None) -> None:
        in_close.set()
        assert release_close.wait(WAIT)
        close_finished.set()

    w = ResourceWorker(lambda: None, close=close).start()
    t, out = in_thread(w.shutdown)
    assert in_close.wait(WAIT)
    # shutdown(wait=True) is still waiting while close runs.
    assert "done" not in out
    release_close.set()
    t.join(WAIT)
    assert out == {"result": None, "done": True}
    assert close_finished.is_set()
    assert w.thread is not None
    assert not w.thread.is_alive()
    assert not w.running


def test_shutdown_without_wait_returns_while_close_is_still_running() -> None:
    in_close = threading.Event()
    release_close = threading.Event()

    def close(r: None) -> None:
        in_close.set()
        assert release_close.wait(WAIT)

    w = ResourceWorker(lambda: None, close=close).start()
    w.shutdown(wait=False)
    assert in_close.wait(WAIT)
    assert w.closed
    assert w.running
    release_close.set()
    w.shutdown()
    assert not w.running


def test_shutdown_is_idempotent() -> None:
    closer = Closer()
    w = ResourceWorker(lambda: None, close=closer).start()
    w.shutdown()
    w.shutdown()
    w.shutdown(wait=False)
    w.shutdown(cancel_futures=True)
    assert len(closer.calls) == 1


def test_concurrent_shutdowns_from_many_threads_close_once_and_all_wait_for_the_end() -> None:
    closer = Closer()
    w = ResourceWorker(lambda: None, close=closer).start()
    gate = Gate()
    w.submit(gate)
    gate.wait_entered()
    queued = [w.submit(lambda r, i=i: i) for i in range(20)]
    n = 8
    barrier = threading.Barrier(n + 1)
    saw_end: list[bool] = []

    def stopper(i: int) -> None:
        barrier.wait(WAIT)
        w.shutdown(wait=i % 2 == 0, cancel_futures=i % 3 == 0)
        if i % 2 == 0:
            # This waiter returned: close has run and the thread is gone.
            assert w.thread is not None
            saw_end.append(closer.done.is_set() and not w.thread.is_alive())

    threads = [threading.Thread(target=stopper, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    barrier.wait(WAIT)
    gate.open()
    for t in threads:
        t.join(WAIT)
    w.shutdown()
    assert saw_end == [True] * (n // 2)
    assert len(closer.calls) == 1
    # cancel_futures was among the shutdowns: each queued request either ran or
    # was cancelled, never left pending.
    assert all(f.done() for f in queued)
    assert all(f.cancelled() or f.result(0) == i for i, f in enumerate(queued))


@pytest.mark.parametrize("wait", [True, False])
@pytest.mark.parametrize("cancel_futures", [False, True])
def test_shutdown_from_the_owner_thread_inside_a_request_returns_and_completes_later(
    wait: bool, cancel_futures: bool
) -> None:
    closer = Closer()
    w = ResourceWorker(lambda: None, close=closer).start()
    gate = Gate()
    w.submit(gate)
    gate.wait_entered()
    after_shutdown: list[str] = []

    def stop_from_inside(r: None) -> str:
        w.shutdown(wait=wait, cancel_futures=cancel_futures)
        # No self-join: shutdown returned, and close has not run yet.
        after_shutdown.append("returned")
        assert not closer.done.is_set()
        return "stopped"

    stopping = w.submit(stop_from_inside)
    queued = w.submit(lambda r: "queued")
    gate.open()
    assert stopping.result(WAIT) == "stopped"
    assert closer.done.wait(WAIT)
    w.shutdown()
    assert after_shutdown == ["returned"]
    assert len(closer.calls) == 1
    if cancel_futures:
        assert queued.cancelled()
    else:
        assert queued.result(0) == "queued"


def test_shutdown_from_close_in_the_owner_thread_does_not_self_join() -> None:
    holder: list[ResourceWorker[None]] = []
    closed = threading.Event()

    def close(r: None) -> None:
        holder[0].shutdown()
        closed.set()

    w = ResourceWorker(lambda: None, close=close).start()
    holder.append(w)
    w.shutdown()
    assert closed.is_set()


def test_an_idle_worker_shuts_down_promptly() -> None:
    # The owner thread blocks on its mailbox with no timeout, so the stop
    # marker wakes it at once: nothing to wait out.  The bound is generous
    # (a 1 s poll would fail it, a loaded machine would not).
    workers = [ResourceWorker(lambda: None).start() for _ in range(5)]
    t0 = time.perf_counter()
    for w in workers:
        w.shutdown()
    assert time.perf_counter() - t0 < 1.0


def test_shutdown_before_start_closes_the_worker_without_running_the_factory() -> None:
    factory_ran: list[int] = []
    closer = Closer()
    w = ResourceWorker(lambda: factory_ran.append(1), close=closer, name="db")
    # Regression: a second shutdown() looked for an owner thread (wait=True
    # failed an assertion) and queued a stop marker nobody would take.
    w.shutdown()
    w.shutdown()
    w.shutdown(wait=False, cancel_futures=True)
    assert w.closed
    assert not w.running
    assert repr(w) == "<ResourceWorker 'db' closed, 0 pending>"
    with pytest.raises(WorkerClosed, match=r"^cannot submit to worker 'db' after shutdown$"):
        w.submit(lambda r: None)
    with pytest.raises(RuntimeError, match=r"^worker 'db' can only be started once$"):
        w.start()
    assert factory_ran == []
    assert closer.calls == []
    assert w.thread is None


def test_start_twice_raises_runtime_error() -> None:
    w = ResourceWorker(lambda: None, name="db").start()
    with pytest.raises(RuntimeError, match=r"^worker 'db' can only be started once$"):
        w.start()
    w.shutdown()
    with pytest.raises(RuntimeError, match=r"^worker 'db' can only be started once$"):
        w.start()


def test_shutdown_while_the_factory_runs_closes_the_resource_without_accepting() -> None:
    in_factory = threading.Event()
    release = threading.Event()
    closer = Closer()
    resource = object()

    def factory() -> object:
        in_factory.set()
        assert release.wait(WAIT)
        return resource

    w = ResourceWorker(factory, close=closer, name="db")
    starter, started = in_thread(w.start)
    assert in_factory.wait(WAIT)
    stopper, stopped = in_thread(w.shutdown)
    # The stopper is waiting for the end; it cannot come before the factory returns.
    assert "done" not in stopped
    release.set()
    starter.join(WAIT)
    stopper.join(WAIT)
    assert started == {"result": w, "done": True}
    assert stopped == {"result": None, "done": True}
    assert closer.calls == [(resource, w.thread)]
    with pytest.raises(WorkerClosed, match=r"^cannot submit to worker 'db' after shutdown$"):
        w.submit(lambda r: None)


def test_cancel_futures_cancels_the_queued_requests_while_the_running_one_finishes() -> None:
    closer = Closer()
    w = ResourceWorker(lambda: None, close=closer).start()
    gate = Gate()
    running = w.submit(gate)
    gate.wait_entered()
    queued = [w.submit(lambda r, i=i: i) for i in range(5)]
    posted: list[int] = []
    w.post(lambda r: posted.append(1))
    w.shutdown(wait=False, cancel_futures=True)
    assert all(f.cancelled() for f in queued)
    assert w.pending == 0
    # The running request is unaffected and finishes.
    assert not running.done()
    gate.open()
    w.shutdown()
    assert running.result(0) == "gate"
    assert posted == []
    assert len(closer.calls) == 1


def test_a_call_pending_when_cancel_futures_shuts_down_raises_cancelled_error() -> None:
    w = ResourceWorker(lambda: None, name="db").start()
    gate = Gate()
    w.submit(gate)
    gate.wait_entered()
    ran: list[int] = []
    caller, out = run_until_blocked(w.call, lambda r: ran.append(1))
    w.shutdown(wait=False, cancel_futures=True)
    caller.join(WAIT)
    gate.open()
    w.shutdown()
    assert isinstance(out["error"], CancelledError)
    with pytest.raises(CancelledError, match=r"^worker 'db' was shut down before this call ran$"):
        raise out["error"]
    assert ran == []


def test_future_cancel_before_the_request_starts_withdraws_it() -> None:
    w = ResourceWorker(lambda: None).start()
    gate = Gate()
    w.submit(gate)
    gate.wait_entered()
    ran: list[int] = []
    f = w.submit(lambda r: ran.append(1))
    after = w.submit(lambda r: "after")
    assert f.cancel()
    gate.open()
    assert after.result(WAIT) == "after"
    w.shutdown()
    assert f.cancelled()
    assert ran == []


def test_future_cancel_fails_once_the_request_is_running() -> None:
    w = ResourceWorker(lambda: None).start()
    gate = Gate()
    f = w.submit(gate)
    gate.wait_entered()
    assert not f.cancel()
    assert f.running()
    gate.open()
    assert f.result(WAIT) == "gate"
    w.shutdown()


def test_the_with_block_shuts_down_gracefully_when_its_body_raises() -> None:
    closer = Closer()
    ran: list[int] = []
    w = ResourceWorker(lambda: None, close=closer)

    def body() -> None:
        with w:
            gate = Gate()
            w.submit(gate)
            gate.wait_entered()
            w.post(lambda r: ran.append(1))
            gate.open()
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        body()
    assert ran == [1]
    assert len(closer.calls) == 1


def test_a_request_accepted_just_before_the_owner_stopped_is_never_lost() -> None:
    """Regression (white-box): a refused producer's reclaim() stole an accepted request.

    Producer X puts its request before the owner thread sets ``stopped`` and
    returns it as accepted; producer Y puts after, reads ``stopped`` and
    reclaims.  If Y's reclaim swept the queue before the owner's final sweep,
    it carried X's request off with its own, and X's future stayed pending
    forever.  The owner is paused (by a profile hook) where its final sweep
    begins, until Y has either finished or is blocked waiting for it.
    """
    w = ResourceWorker(lambda: None, name="db", maxsize=2)
    core: Any = w._core
    real_lock = core._orphan_lock
    y_settled = threading.Event()
    paused = threading.Event()

    class SpyLock:
        def __enter__(self) -> None:
            if not real_lock.acquire(blocking=False):
                if threading.get_ident() != core.owner_ident:
                    y_settled.set()  # Y waits for the owner's sweep
                real_lock.acquire()

        def __exit__(self, *exc_info: object) -> None:
            real_lock.release()

    core._orphan_lock = SpyLock()

    def pause_at_the_final_sweep(frame: Any, event: str, arg: Any) -> None:
        name = (
            frame.f_code.co_name
            if event == "call"
            else getattr(arg, "__name__", "")
            if event == "c_call"
            else ""
        )
        if name == "get_nowait" and core.stopped and not paused.is_set():
            paused.set()
            assert y_settled.wait(WAIT)

    threading.setprofile(pause_at_the_final_sweep)
    try:
        w.start()
    finally:
        threading.setprofile(None)

    gate = Gate()
    w.submit(gate)
    gate.wait_entered()
    x_returned = threading.Event()
    w.post(lambda r: None)
    # The owner takes this one only after X (woken by the room it leaves) returned.
    w.post(lambda r: x_returned.wait(WAIT))
    ran: dict[int, int] = {}
    settled: list[int] = []
    settled_lock = threading.Lock()

    def produce(i: int) -> Future[None]:
        try:
            return w.submit(lambda r: ran.__setitem__(i, ran.get(i, 0) + 1))
        finally:
            with settled_lock:
                settled.append(i)
                (x_returned if len(settled) == 1 else y_settled).set()

    producers = [run_until_blocked(produce, i) for i in range(2)]
    w.shutdown(wait=False)
    gate.open()
    for t, _ in producers:
        t.join(WAIT)
    w.shutdown()
    assert paused.is_set()
    for i, (_, out) in enumerate(producers):
        if "error" in out:
            assert isinstance(out["error"], WorkerClosed)
            assert i not in ran
        else:
            assert out["result"].done(), f"accepted request {i} was lost"
            assert ran[i] == 1
