"""Guarantee 1: requests run in the owner thread, one at a time, in FIFO order."""

from __future__ import annotations

import itertools
import threading
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from threadkit import ResourceWorker

from .conftest import WAIT
from .worker_helpers import Gate

KINDS = ("submit", "call", "post")


def test_submit_call_and_post_from_one_thread_run_in_the_order_they_were_made() -> None:
    log: list[str] = []
    with ResourceWorker(lambda: log) as w:
        gate = Gate()
        w.submit(gate)
        gate.wait_entered()
        # Queued behind the gate: the order is the mailbox's, not the timing's.
        w.post(lambda r: r.append("post1"))
        f1 = w.submit(lambda r: r.append("submit1"))
        w.post(lambda r: r.append("post2"))
        f2 = w.submit(lambda r: r.append("submit2"))
        gate.open()
        w.call(lambda r: r.append("call"))
        w.post(lambda r: r.append("post3"))
        f2.result(WAIT)
        f1.result(WAIT)
    assert log == ["post1", "submit1", "post2", "submit2", "call", "post3"]


def test_requests_run_one_at_a_time() -> None:
    active = [0]
    overlaps: list[int] = []

    def request(r: object) -> None:
        active[0] += 1
        if active[0] != 1:
            overlaps.append(active[0])
        # Give other threads the GIL while "inside" the request.
        threading.Event().wait(0)
        active[0] -= 1

    with ResourceWorker(lambda: None) as w:
        barrier = threading.Barrier(4)

        def producer() -> None:
            barrier.wait(WAIT)
            for _ in range(200):
                w.post(request)

        threads = [threading.Thread(target=producer) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT)
    assert overlaps == []


class Run:
    """Producers' requests, with the order they ran in and when each was made.

    ``stamps[(p, i)] = (begin, end)``: ticks of one global counter taken just
    before the request was made and just after the call that made it
    returned.  ``end(a) < begin(b)`` means a's call returned before b's was
    made, so guarantee 1 says a runs first.
    """

    def __init__(self) -> None:
        self.ticks = itertools.count()
        self.ran: list[tuple[int, int]] = []
        self.threads: set[threading.Thread] = set()
        self.stamps: dict[tuple[int, int], tuple[int, int]] = {}

    def request(self, resource: object, key: tuple[int, int]) -> tuple[int, int]:
        self.ran.append(key)
        self.threads.add(threading.current_thread())
        return key

    def make(self, w: ResourceWorker[None], kind: str, key: tuple[int, int]) -> Any:
        begin = next(self.ticks)
        out = getattr(w, kind)(self.request, key)
        self.stamps[key] = (begin, next(self.ticks))
        return out


@settings(max_examples=40)
@given(
    producers=st.lists(st.lists(st.sampled_from(KINDS), max_size=12), min_size=1, max_size=4),
    maxsize=st.sampled_from([0, 1, 3]),
)
def test_interleaved_producers_see_fifo_order_and_their_own_order_kept(
    producers: list[list[str]], maxsize: int
) -> None:
    run = Run()
    w = ResourceWorker(lambda: None, maxsize=maxsize).start()
    barrier = threading.Barrier(len(producers))
    futures: list[Any] = []

    def producer(p: int, kinds: list[str]) -> None:
        barrier.wait(WAIT)
        for i, kind in enumerate(kinds):
            out = run.make(w, kind, (p, i))
            if kind == "submit":
                futures.append((out, (p, i)))
            elif kind == "call":
                assert out == (p, i)

    threads = [
        threading.Thread(target=producer, args=(p, kinds)) for p, kinds in enumerate(producers)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    w.shutdown()

    expected = {(p, i) for p, kinds in enumerate(producers) for i in range(len(kinds))}
    # Every request ran exactly once, in the owner thread alone.
    assert sorted(run.ran) == sorted(expected)
    assert run.threads <= {w.thread}
    for f, key in futures:
        assert f.result(0) == key
    # Each producer's requests ran in its own order.
    for p in range(len(producers)):
        mine = [i for q, i in run.ran if q == p]
        assert mine == sorted(mine)
    # Happens-before: a request made after another's call returned runs after it.
    position = {key: n for n, key in enumerate(run.ran)}
    for a, (_, a_end) in run.stamps.items():
        for b, (b_begin, _) in run.stamps.items():
            if a_end < b_begin:
                assert position[a] < position[b], (a, b)
