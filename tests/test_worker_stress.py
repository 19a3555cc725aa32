"""Bounded stress: many producers, shutdowns racing them; nothing is lost or run twice.

Every request carries an id; the owner thread counts runs per id.  A request
is *accepted* when the call that made it returned (or, for call(), raised
CancelledError); every accepted request must have run exactly once or been
cancelled, every refused one (WorkerClosed) never run.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from concurrent.futures import CancelledError, Future
from typing import Any

import pytest

from threadkit import ResourceWorker, WorkerClosed

from .conftest import WAIT

PRODUCERS = 12
PER_PRODUCER = 1500


class Ledger:
    """What each producer made, and what the owner thread ran."""

    def __init__(self) -> None:
        self.runs: Counter[tuple[int, int]] = Counter()
        self.order: list[tuple[int, int]] = []
        self.accepted: dict[tuple[int, int], tuple[str, Any]] = {}
        self.refused: list[tuple[int, int]] = []
        self.cancelled_calls: list[tuple[int, int]] = []
        self.threads: set[threading.Thread] = set()
        # Set once the owner has run a third of what the producers will make:
        # a shutdown then races producers that are still going.
        self.busy = threading.Event()

    def request(self, resource: object, key: tuple[int, int]) -> tuple[int, int]:
        self.runs[key] += 1
        self.order.append(key)
        self.threads.add(threading.current_thread())
        if len(self.order) == PRODUCERS * PER_PRODUCER // 3:
            self.busy.set()
        return key

    def make(self, w: ResourceWorker[None], kind: str, key: tuple[int, int]) -> bool:
        """Make one request; False once the worker refuses."""
        try:
            out = getattr(w, kind)(self.request, key)
        except WorkerClosed:
            self.refused.append(key)
            return False
        except CancelledError:
            self.cancelled_calls.append(key)
            return True
        self.accepted[key] = (kind, out)
        return True

    def check(self, w: ResourceWorker[None], *, may_cancel: bool) -> None:
        assert w.thread is not None
        assert not w.thread.is_alive()
        assert self.threads <= {w.thread}
        assert all(n == 1 for n in self.runs.values()), "a request ran twice"
        for key in self.refused:
            assert key not in self.runs, "a refused request ran"
        for key in self.cancelled_calls:
            assert may_cancel
            assert key not in self.runs
        lost = []
        for key, (kind, out) in self.accepted.items():
            if kind == "submit":
                f: Future[Any] = out
                assert f.done(), f"accepted request {key} is still pending"
                if f.cancelled():
                    assert may_cancel
                    assert key not in self.runs
                else:
                    assert f.result(0) == key
                    assert self.runs[key] == 1
            elif key not in self.runs and not (kind == "post" and may_cancel):
                lost.append(key)
        assert not lost, f"accepted requests never ran: {lost[:10]}"
        # Each producer's requests ran in its order.
        last: dict[int, int] = {}
        for p, i in self.order:
            assert last.get(p, -1) < i
            last[p] = i


def run_producers(
    w: ResourceWorker[None], ledger: Ledger, kinds: tuple[str, ...], *, seed: int
) -> list[threading.Thread]:
    barrier = threading.Barrier(PRODUCERS + 1)

    def producer(p: int) -> None:
        rng = random.Random(seed * 100 + p)
        barrier.wait(WAIT)
        for i in range(PER_PRODUCER):
            if not ledger.make(w, rng.choice(kinds), (p, i)):
                return  # refused: every later request would be too

    threads = [threading.Thread(target=producer, args=(p,)) for p in range(PRODUCERS)]
    for t in threads:
        t.start()
    barrier.wait(WAIT)
    return threads


def join_all(threads: list[threading.Thread]) -> None:
    for t in threads:
        t.join(WAIT * 2)
        assert not t.is_alive(), "a producer hung"


@pytest.mark.parametrize("maxsize", [0, 8])
def test_many_producers_lose_nothing(maxsize: int) -> None:
    ledger = Ledger()
    w = ResourceWorker(lambda: None, maxsize=maxsize).start()
    threads = run_producers(w, ledger, ("submit", "post", "post", "submit", "call"), seed=1)
    join_all(threads)
    w.shutdown()
    assert ledger.refused == []
    assert len(ledger.runs) == PRODUCERS * PER_PRODUCER
    ledger.check(w, may_cancel=False)


@pytest.mark.parametrize("maxsize", [0, 4])
@pytest.mark.parametrize("cancel_futures", [False, True])
def test_a_shutdown_racing_many_producers_loses_nothing(maxsize: int, cancel_futures: bool) -> None:
    ledger = Ledger()
    w = ResourceWorker(lambda: None, maxsize=maxsize).start()
    threads = run_producers(w, ledger, ("submit", "post", "call"), seed=2)
    assert ledger.busy.wait(WAIT)
    w.shutdown(cancel_futures=cancel_futures)
    join_all(threads)
    assert ledger.refused, "the shutdown did not race the producers"
    ledger.check(w, may_cancel=cancel_futures)


def test_shutdowns_from_many_threads_racing_producers_lose_nothing() -> None:
    ledger = Ledger()
    w = ResourceWorker(lambda: None, maxsize=16).start()
    threads = run_producers(w, ledger, ("submit", "post", "call"), seed=3)
    barrier = threading.Barrier(4)

    def stopper(i: int) -> None:
        barrier.wait(WAIT)
        assert ledger.busy.wait(WAIT)
        w.shutdown(wait=i % 2 == 0, cancel_futures=i == 3)

    stoppers = [threading.Thread(target=stopper, args=(i,)) for i in range(4)]
    for t in stoppers:
        t.start()
    join_all(stoppers)
    join_all(threads)
    w.shutdown()
    ledger.check(w, may_cancel=True)


def test_future_cancel_racing_the_owner_thread_never_both_cancels_and_runs() -> None:
    ledger = Ledger()
    w = ResourceWorker(lambda: None).start()
    futures: list[tuple[tuple[int, int], Future[Any]]] = []
    won: list[tuple[int, int]] = []
    for i in range(3000):
        futures.append(((0, i), w.submit(ledger.request, (0, i))))
        if i % 3 == 0:
            key, f = futures[random.Random(i).randrange(len(futures))]
            if f.cancel():
                won.append(key)
    w.shutdown()
    for key, f in futures:
        assert f.done()
        assert f.cancelled() == (key not in ledger.runs)
    assert all(key not in ledger.runs for key in won)
    assert all(n == 1 for n in ledger.runs.values())
