"""Soak: sixteen producers, random cancels and a racing shutdown; nothing lost, nothing leaked.

Each producer pushes its share of ``THREADKIT_SOAK_REQUESTS`` requests (default
20,000 per run, a few seconds; ``nox -s soak`` pushes 1,500,000 per run, of
which over a million are accepted) through one worker or one executor,
cancels some of its own futures at random, and keeps pushing while the main
thread shuts the worker down underneath it, three quarters of the way in
(every push after that is refused, and must stay refused).
The owner thread records, per producer, the sequence number of every request
it runs; each producer records what the worker told it about each request
(accepted and then ran or cancelled, or refused at the call).  Afterwards:

* every accepted request ran exactly once or was cancelled (``post()``
  requests dropped by ``shutdown(cancel_futures=True)`` are the documented
  exception: they ran at most once), and every refused one never ran;
* each producer's requests ran in the order it made them;
* memory is back where it started (``tracemalloc``, after ``gc``), and no
  future or call slot survives;
* no thread is left behind.

Bookkeeping is kept in bytearrays and ``array('q')`` so that a million
requests cost the test itself a few megabytes, not the worker's memory.
"""

from __future__ import annotations

import gc
import itertools
import os
import random
import threading
import tracemalloc
from array import array
from collections import deque
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass
from typing import Any

import pytest

import threadkit
from threadkit._engine import CallSlot
from threadkit._engine import _live as _live_cores
from threadkit._future import LazyFuture

from .conftest import WAIT

REQUESTS = int(os.environ.get("THREADKIT_SOAK_REQUESTS", "20000"))
PRODUCERS = 16
# A leak of one small object per request would exceed this many times over.
MEMORY_SLACK = 256 * 1024

# What a producer learnt about each of its requests.
UNTRIED = 0
PENDING = 1  # accepted, outcome not read yet
RAN = 2  # accepted; its result (or call's return) says it ran
CANCELLED = 3  # accepted; cancelled before it ran
REFUSED = 4  # the call raised WorkerClosed: never accepted
POSTED = 5  # accepted by post(): no result to read

# Set just before the run's shutdown begins.
shutdown_begins = threading.Event()
# Set once the run's shutdown(wait=True) has returned: every outcome is final.
face_done = threading.Event()


@dataclass
class Figures:
    pushed: int = 0
    accepted: int = 0
    ran: int = 0
    cancelled: int = 0
    refused: int = 0
    cancel_attempts: int = 0
    memory_before: int = 0
    memory_after: int = 0


class Face:
    """One worker or one executor, with the request function recording runs."""

    def __init__(self, kind: str, maxsize: int) -> None:
        self.kind = kind
        self.ran = [array("q") for _ in range(PRODUCERS)]
        if kind == "worker":
            self.obj: Any = threadkit.ResourceWorker(
                lambda: self.ran, name="soak", maxsize=maxsize
            ).start()
        else:
            self.obj = threadkit.SerialExecutor(name="soak", maxsize=maxsize)

    def submit(self, producer: int, seq: int) -> Future[int]:
        if self.kind == "worker":
            return self.obj.submit(_record, producer, seq)  # type: ignore[no-any-return]
        return self.obj.submit(_record, self.ran, producer, seq)  # type: ignore[no-any-return]


def _record(ran: list[array[int]], producer: int, seq: int) -> int:
    # Runs in the owner thread only, so the arrays need no lock.
    ran[producer].append(seq)
    return seq


def _produce(
    face: Face,
    producer: int,
    count: int,
    *,
    status: bytearray,
    halfway: threading.Event,
    figures: list[int],
) -> None:
    """Push *count* requests; record in *status* what became of each."""
    rng = random.Random(producer)
    worker = face.kind == "worker"
    window: deque[tuple[int, Future[int]]] = deque()
    cancel_attempts = 0
    refused_before = False

    def settle_done() -> None:
        while window and window[0][1].done():
            seq, fut = window.popleft()
            status[seq] = _outcome(fut, seq)

    for seq in range(count):
        if seq == count * 3 // 4:
            halfway.set()
        elif seq == count * 15 // 16:
            # Never finish before the shutdown began: the rest races with it.
            shutdown_begins.wait(WAIT * 6)
        roll = rng.random()
        try:
            if worker and roll < 0.05:
                face.obj.post(_record, producer, seq)
                assert not refused_before, "accepted after a refusal"
                status[seq] = POSTED
            elif worker and roll < 0.06:
                try:
                    assert face.obj.call(_record, producer, seq) == seq
                    assert not refused_before, "accepted after a refusal"
                    status[seq] = RAN
                except CancelledError:
                    status[seq] = CANCELLED
            else:
                fut = face.submit(producer, seq)
                assert not refused_before, "accepted after a refusal"
                status[seq] = PENDING
                window.append((seq, fut))
                if roll > 0.95:
                    # Cancel one of our own recent futures: most are still queued.
                    cancel_attempts += 1
                    _, victim = window[rng.randrange(len(window))]
                    if victim.cancel():
                        assert victim.cancelled()
        except threadkit.WorkerClosed:
            # Once refused, refused for good: every later push must be too.
            status[seq] = REFUSED
            refused_before = True
        if len(window) > 256:
            settle_done()
    halfway.set()
    figures[producer] = cancel_attempts
    # The outcomes still unread are settled once shutdown(wait=True) returned.
    face_done.wait(WAIT * 6)
    while window:
        seq, fut = window.popleft()
        assert fut.done(), f"producer {producer} request {seq} never settled"
        status[seq] = _outcome(fut, seq)


def _outcome(fut: Future[int], seq: int) -> int:
    if fut.cancelled():
        return CANCELLED
    assert fut.result(0) == seq
    return RAN


def _soak(kind: str, maxsize: int, cancel_futures: bool, total: int) -> Figures:
    """One soak run; returns only figures, so that nothing of it stays referenced."""
    face = Face(kind, maxsize)
    per_producer = total // PRODUCERS
    statuses = [bytearray(per_producer) for _ in range(PRODUCERS)]
    halfways = [threading.Event() for _ in range(PRODUCERS)]
    attempts = [0] * PRODUCERS
    face_done.clear()
    shutdown_begins.clear()
    producers = [
        threading.Thread(
            target=_produce,
            args=(face, p, per_producer),
            kwargs={"status": statuses[p], "halfway": halfways[p], "figures": attempts},
            name=f"producer-{p}",
        )
        for p in range(PRODUCERS)
    ]
    for t in producers:
        t.start()
    try:
        # Shut down while every producer still has a quarter of its share to push.
        for event in halfways:
            assert event.wait(WAIT * 6)
        shutdown_begins.set()
        face.obj.shutdown(wait=True, cancel_futures=cancel_futures)
    finally:
        shutdown_begins.set()
        face_done.set()
        for t in producers:
            t.join(WAIT * 6)
    assert not any(t.is_alive() for t in producers)
    assert face.obj.thread is not None
    assert not face.obj.thread.is_alive()

    figures = Figures(cancel_attempts=sum(attempts))
    for producer in range(PRODUCERS):
        status = statuses[producer]
        ran = face.ran[producer]
        # Per-producer order, and at most once: strictly increasing.
        assert all(a < b for a, b in itertools.pairwise(ran)), producer
        ran_set = set(ran)
        for seq, st in enumerate(status):
            if st == UNTRIED:
                break
            figures.pushed += 1
            if st == REFUSED:
                figures.refused += 1
                assert seq not in ran_set, (producer, seq, "refused but ran")
                continue
            figures.accepted += 1
            assert st != PENDING, (producer, seq, "never settled")
            if st == CANCELLED:
                figures.cancelled += 1
                assert seq not in ran_set, (producer, seq, "cancelled but ran")
            elif st == RAN or (st == POSTED and not cancel_futures):
                assert seq in ran_set, (producer, seq, "accepted but never ran")
        figures.ran += len(ran)
    # The shutdown really raced the producers.
    assert figures.refused > 0
    return figures


def _live_count(kind: type) -> int:
    return sum(1 for o in gc.get_objects() if type(o) is kind)


@pytest.mark.parametrize(
    ("kind", "maxsize", "cancel_futures"),
    [
        ("worker", 0, False),
        ("worker", 512, True),
        ("executor", 0, True),
        ("executor", 512, False),
    ],
    ids=[
        "worker-unbounded-graceful",
        "worker-bounded-cancel",
        "executor-unbounded-cancel",
        "executor-bounded-graceful",
    ],
)
def test_every_accepted_request_runs_once_in_order_and_nothing_is_leaked(
    kind: str, maxsize: int, cancel_futures: bool
) -> None:
    # Warm up first: imports, counters and interned names are not a leak.
    _soak(kind, maxsize, cancel_futures, PRODUCERS * 500)
    gc.collect()
    futures_before = _live_count(LazyFuture)
    slots_before = _live_count(CallSlot)
    tracemalloc.start()
    try:
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        figures = _soak(kind, maxsize, cancel_futures, REQUESTS)
        gc.collect()
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    figures.memory_before, figures.memory_after = before, after
    report = (
        f"soak {kind} maxsize={maxsize} cancel_futures={cancel_futures}: "
        f"pushed {figures.pushed}, accepted {figures.accepted}, ran {figures.ran}, "
        f"cancelled {figures.cancelled} (random Future.cancel() calls: "
        f"{figures.cancel_attempts}), refused {figures.refused}, lost 0; "
        f"traced memory: before {before} B, peak {peak / 2**20:.1f} MiB, "
        f"after {after} B ({after - before:+d} B)"
    )
    print(report)
    assert figures.pushed == REQUESTS // PRODUCERS * PRODUCERS
    assert figures.pushed == figures.accepted + figures.refused
    # Every accepted request is accounted for, and nothing else ran.
    posts_dropped = figures.accepted - figures.ran - figures.cancelled
    assert posts_dropped >= 0
    assert cancel_futures or posts_dropped == 0
    assert after - before < MEMORY_SLACK, report
    assert _live_count(LazyFuture) == futures_before
    assert _live_count(CallSlot) == slots_before
    assert not any(core.name == "soak" for core in _live_cores.copy().values())
