"""The bounded mailbox: backpressure, put_timeout, and the owner thread's own full mailbox."""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from typing import Any

import pytest

from threadkit import DeadlockError, MailboxFull, ResourceWorker, WorkerClosed

from .conftest import WAIT
from .worker_helpers import Gate, run_until_blocked


def full_worker(maxsize: int, **kwargs: Any) -> tuple[ResourceWorker[None], Gate]:
    """A started worker held by a gate, with exactly *maxsize* requests queued."""
    w = ResourceWorker(lambda: None, name="db", maxsize=maxsize, **kwargs).start()
    gate = Gate()
    w.submit(gate)
    gate.wait_entered()
    for _ in range(maxsize):
        w.post(lambda r: None)
    assert w.pending == maxsize
    return w, gate


@pytest.mark.parametrize("method", ["submit", "call", "post"])
def test_a_request_blocks_while_the_mailbox_is_full_then_goes_in(method: str) -> None:
    w, gate = full_worker(2)
    ran = threading.Event()
    t, out = run_until_blocked(getattr(w, method), lambda r: ran.set())
    # Blocked, so not queued: the mailbox still holds only the two fillers.
    assert w.pending == 2
    assert not ran.is_set()
    gate.open()
    t.join(WAIT)
    assert out["done"]
    assert "error" not in out
    assert ran.wait(WAIT)
    w.shutdown()


def test_blocked_producers_go_in_in_fifo_order_as_room_appears() -> None:
    w, gate = full_worker(1)
    order: list[int] = []
    threads = []
    for i in range(3):
        t, _ = run_until_blocked(w.post, lambda r, i=i: order.append(i))
        threads.append(t)
    gate.open()
    for t in threads:
        t.join(WAIT)
    w.shutdown()
    # Every blocked request ran exactly once (their relative order is the
    # order in which they got room, which the mailbox does not promise).
    assert sorted(order) == [0, 1, 2]


@pytest.mark.parametrize("method", ["submit", "call", "post"])
def test_put_timeout_raises_mailbox_full_and_the_request_never_runs(method: str) -> None:
    w, gate = full_worker(1, put_timeout=0.01)
    ran: list[str] = []
    with pytest.raises(
        MailboxFull, match=r"^the mailbox of worker 'db' stayed full \(maxsize=1\) for 0\.01 s$"
    ) as info:
        getattr(w, method)(lambda r: ran.append("refused"))
    assert isinstance(info.value, queue.Full)
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__
    gate.open()
    w.shutdown()
    assert ran == []


def test_a_zero_put_timeout_gives_up_at_once() -> None:
    w, gate = full_worker(1, put_timeout=0)
    with pytest.raises(
        MailboxFull, match=r"^the mailbox of worker 'db' stayed full \(maxsize=1\) for 0 s$"
    ):
        w.submit(lambda r: None)
    gate.open()
    w.shutdown()


def test_put_timeout_does_not_apply_while_there_is_room() -> None:
    with ResourceWorker(lambda: 1, maxsize=1, put_timeout=0) as w:
        assert w.call(lambda r: r) == 1
        assert w.submit(lambda r: r + 1).result(WAIT) == 2


def test_mailbox_full_is_a_queue_full() -> None:
    assert issubclass(MailboxFull, queue.Full)


@pytest.mark.parametrize("method", ["submit", "post"])
def test_the_owner_thread_putting_into_its_own_full_mailbox_raises_deadlock_error(
    method: str,
) -> None:
    w = ResourceWorker(lambda: None, name="db", maxsize=1).start()

    def fill_own_mailbox(r: None) -> str:
        getattr(w, method)(lambda r: None)  # fits: the mailbox was empty
        try:
            getattr(w, method)(lambda r: None)
        except DeadlockError as exc:
            return str(exc)
        return "no error"

    message = w.submit(fill_own_mailbox).result(WAIT)
    assert message == "the owner thread of worker 'db' cannot wait for room in its own full mailbox"
    with pytest.raises(
        DeadlockError,
        match=r"^the owner thread of worker 'db' cannot wait for room in its own full mailbox$",
    ):
        raise DeadlockError(message)
    # The worker goes on.
    assert w.call(lambda r: "alive") == "alive"
    w.shutdown()


@pytest.mark.parametrize("cancel_futures", [False, True])
def test_producers_blocked_on_a_full_mailbox_during_shutdown_are_released(
    cancel_futures: bool,
) -> None:
    # Regression: once the owner thread stopped, it lifted the bound by setting
    # maxsize to 0, which a put already waiting inside queue.Queue.put reads as
    # "full" forever (qsize() >= 0): those producers hung.
    w, gate = full_worker(1)
    runs: dict[int, int] = {}
    producers = [
        run_until_blocked(w.submit, lambda r, i=i: runs.__setitem__(i, 1)) for i in range(6)
    ]
    w.shutdown(wait=False, cancel_futures=cancel_futures)
    gate.open()
    w.shutdown()
    for t, _ in producers:
        t.join(WAIT)
        assert not t.is_alive(), "a producer stayed blocked on the full mailbox"
    for i, (_, out) in enumerate(producers):
        if "error" in out:
            # Refused: it never runs.
            assert isinstance(out["error"], WorkerClosed)
            assert i not in runs
        else:
            # Accepted: run (or cancelled, with cancel_futures) exactly once.
            f: Future[None] = out["result"]
            assert f.done()
            assert f.cancelled() == (i not in runs)
            assert cancel_futures or not f.cancelled()


def test_requests_after_shutdown_are_refused_by_a_bounded_worker_too() -> None:
    w = ResourceWorker(lambda: None, name="db", maxsize=1).start()
    w.shutdown()
    with pytest.raises(WorkerClosed, match=r"^cannot submit to worker 'db' after shutdown$"):
        w.submit(lambda r: None)
    # The bound was lifted for producers that were waiting, but a closed
    # worker still takes nothing.
    assert w.pending == 0
