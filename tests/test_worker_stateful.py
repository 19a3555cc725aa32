"""Guarantees 1-4 under random lifecycles: a state machine racing producers with shutdowns.

Three producer threads make requests (submit, call, post) from command
queues, so their requests race with each other and with whatever the machine
does next: cancel futures, hold the owner thread behind a gate, shut down
(gracefully, with cancel_futures, without waiting, from several threads at
once, or from the owner thread inside a request).  After every step the
invariants that must hold at *any* moment are checked; at teardown the worker
is always shut down and every request is accounted for exactly.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import CancelledError, Future
from typing import Any

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from threadkit import ResourceWorker, WorkerClosed

from .conftest import WAIT

PRODUCERS = 3
KINDS = ("submit", "call", "post")


def bounded(fn: Any, *args: Any, **kwargs: Any) -> None:
    """Run fn(*args, **kwargs) in a thread; fail if it does not return within WAIT."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            fn(*args, **kwargs)
        except BaseException as exc:  # handed to the machine
            errors.append(exc)

    t = threading.Thread(target=run)
    t.start()
    t.join(WAIT)
    assert not t.is_alive(), f"{fn} did not return within {WAIT} s"
    if errors:
        raise errors[0]


class WorkerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.w: ResourceWorker[None] | None = None

    # -- setup -----------------------------------------------------------------------

    @initialize(maxsize=st.sampled_from([0, 2]))
    def start(self, maxsize: int) -> None:
        self.next_id = 0
        self.runs: dict[int, int] = {}
        self.run_order: list[int] = []
        self.run_threads: set[threading.Thread] = set()
        self.kind: dict[int, str] = {}
        self.issued_by: dict[int, list[int]] = {p: [] for p in range(PRODUCERS)}
        self.outcome: dict[int, str] = {}
        self.futures: dict[int, Future[int]] = {}
        self.cancel_won: set[int] = set()
        self.cancel_futures_requested = False
        self.shutdown_requested = False
        self.shut_down = False  # a shutdown(wait=True) has returned
        # (len(run_order), the thread) for each run of close: one append, so
        # that an invariant running meanwhile never sees half of it (two
        # lists appended one after the other once failed the check below).
        self.closes: list[tuple[int, threading.Thread]] = []
        self.gate_open = threading.Event()
        self.gate_open.set()

        def close(resource: None) -> None:
            self.closes.append((len(self.run_order), threading.current_thread()))

        self.w = ResourceWorker(lambda: None, close=close, maxsize=maxsize).start()
        self.commands: list[queue.SimpleQueue[tuple[str, int] | None]] = [
            queue.SimpleQueue() for _ in range(PRODUCERS)
        ]
        self.producers = [
            threading.Thread(target=self.produce, args=(p,), name=f"producer-{p}")
            for p in range(PRODUCERS)
        ]
        for t in self.producers:
            t.start()

    def request(self, resource: None, rid: int) -> int:
        self.runs[rid] = self.runs.get(rid, 0) + 1
        self.run_order.append(rid)
        self.run_threads.add(threading.current_thread())
        return rid

    def produce(self, p: int) -> None:
        assert self.w is not None
        w = self.w
        while True:
            try:
                # Bounded by the whole test's budget, not by WAIT: a producer
                # may sit idle while the machine waits for other threads.
                command = self.commands[p].get(timeout=6 * WAIT)
            except queue.Empty:
                return  # teardown checks that every command was carried out
            if command is None:
                return
            kind, rid = command
            try:
                out = getattr(w, kind)(self.request, rid)
            except WorkerClosed:
                self.outcome[rid] = "refused"
            except CancelledError:
                self.outcome[rid] = "call cancelled"
            else:
                if kind == "submit":
                    self.futures[rid] = out
                elif kind == "call":
                    assert out == rid
                self.outcome[rid] = "accepted"

    # -- rules -----------------------------------------------------------------------

    @rule(
        p=st.integers(0, PRODUCERS - 1),
        kinds=st.lists(st.sampled_from(KINDS), min_size=1, max_size=10),
    )
    def make_requests(self, p: int, kinds: list[str]) -> None:
        for kind in kinds:
            rid = self.next_id
            self.next_id += 1
            self.kind[rid] = kind
            self.issued_by[p].append(rid)
            self.commands[p].put((kind, rid))

    # Which submits were *issued* is the machine's own state; which of them a
    # producer has made yet is a race, so it must not steer data generation.
    @precondition(lambda self: "submit" in self.kind.values())
    @rule(n=st.integers(0, 1000))
    def cancel_a_future(self, n: int) -> None:
        submits = [rid for rid, kind in self.kind.items() if kind == "submit"]
        f = self.futures.get(submits[n % len(submits)])
        if f is not None and f.cancel():
            self.cancel_won.add(submits[n % len(submits)])

    @precondition(lambda self: self.gate_open.is_set() and not self.shutdown_requested)
    @rule()
    def hold_the_owner_thread(self) -> None:
        assert self.w is not None
        gate_open = threading.Event()
        settled = threading.Event()

        def gate(resource: None) -> None:
            settled.set()
            assert gate_open.wait(WAIT)

        try:
            f = self.w.submit(gate)
        except WorkerClosed:
            return
        f.add_done_callback(lambda f: settled.set())
        self.gate_open = gate_open
        # Wait until it runs (or a racing cancel_futures cancelled it).
        assert settled.wait(WAIT)

    @rule()
    def release_the_owner_thread(self) -> None:
        self.gate_open.set()

    @precondition(lambda self: self.next_id > 0)
    @rule(wait=st.booleans(), cancel_futures=st.booleans())
    def shutdown(self, wait: bool, cancel_futures: bool) -> None:
        assert self.w is not None
        self.shutdown_requested = True
        self.cancel_futures_requested |= cancel_futures
        if wait:
            self.gate_open.set()  # or the wait would never end
            bounded(self.w.shutdown, True, cancel_futures=cancel_futures)
            self.shut_down = True
            self.check_shut_down()
        else:
            self.w.shutdown(wait=False, cancel_futures=cancel_futures)

    @precondition(lambda self: self.next_id > 0)
    @rule(flags=st.lists(st.tuples(st.booleans(), st.booleans()), min_size=2, max_size=4))
    def shutdown_from_many_threads(self, flags: list[tuple[bool, bool]]) -> None:
        assert self.w is not None
        w = self.w
        self.shutdown_requested = True
        self.cancel_futures_requested |= any(c for _, c in flags)
        self.gate_open.set()
        barrier = threading.Barrier(len(flags))

        def stop(wait: bool, cancel_futures: bool) -> None:
            barrier.wait(WAIT)
            w.shutdown(wait=wait, cancel_futures=cancel_futures)

        threads = [threading.Thread(target=stop, args=f) for f in flags]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT)
            assert not t.is_alive()
        if any(wait for wait, _ in flags):
            self.shut_down = True
            self.check_shut_down()

    @precondition(lambda self: self.next_id > 0)
    @rule(wait=st.booleans(), cancel_futures=st.booleans())
    def shutdown_from_the_owner_thread(self, wait: bool, cancel_futures: bool) -> None:
        assert self.w is not None
        w = self.w
        returned = threading.Event()

        def stopper(resource: None) -> None:
            w.shutdown(wait=wait, cancel_futures=cancel_futures)
            returned.set()

        # Flagged first: once queued, the stopper may run at any moment.
        was = (self.shutdown_requested, self.cancel_futures_requested)
        self.shutdown_requested = True
        self.cancel_futures_requested |= cancel_futures
        # Released first: with a full bounded mailbox, submit() waits for room.
        self.gate_open.set()
        try:
            f = w.submit(stopper)
        except WorkerClosed:
            self.shutdown_requested, self.cancel_futures_requested = was
            self.shutdown_requested |= w.closed
            return
        # It runs (no self-join, so it returns) unless an earlier
        # cancel_futures shutdown cancelled it first.
        try:
            f.result(WAIT)
        except CancelledError:
            return
        assert returned.is_set()

    # -- invariants ------------------------------------------------------------------

    @invariant()
    def requests_never_run_twice_or_after_refusal_or_cancellation(self) -> None:
        if self.w is None:
            return
        # The owner thread and the producers add to these while we read: copy
        # first, with one method call (atomic on every build; iterating is not).
        assert all(n == 1 for n in self.runs.copy().values()), self.runs
        for rid, outcome in self.outcome.copy().items():
            if outcome != "accepted":
                assert rid not in self.runs, (rid, outcome)
        for rid in self.cancel_won:
            assert rid not in self.runs
        for rid, f in self.futures.copy().items():
            if f.cancelled():
                assert rid not in self.runs
        assert self.run_threads.copy() <= {self.w.thread}

    @invariant()
    def each_producers_requests_run_in_its_order(self) -> None:
        if self.w is None:
            return
        position = {rid: n for n, rid in enumerate(self.run_order.copy())}
        for rids in self.issued_by.values():
            ran = [position[rid] for rid in rids if rid in position]
            assert ran == sorted(ran)

    @invariant()
    def close_runs_at_most_once_after_the_last_request(self) -> None:
        if self.w is None:
            return
        closes = self.closes.copy()
        assert len(closes) <= 1
        if closes:
            assert closes == [(len(self.run_order), self.w.thread)]
        if self.shutdown_requested:
            assert self.w.closed

    def check_shut_down(self) -> None:
        assert self.w is not None
        assert self.w.thread is not None
        assert not self.w.thread.is_alive()
        assert not self.w.running
        assert self.closes == [(len(self.run_order), self.w.thread)]
        for f in self.futures.copy().values():
            assert f.done()

    # -- teardown ----------------------------------------------------------------------

    def teardown(self) -> None:
        w = self.w
        if w is None:
            return
        try:
            self.gate_open.set()
            for commands in self.commands:
                commands.put(None)
            for t in self.producers:
                t.join(WAIT)
            bounded(w.shutdown)
            stuck = [t.name for t in self.producers if t.is_alive()]
            assert not stuck, f"producers never finished: {stuck}"
            self.check_shut_down()
            self.account_for_every_request()
        finally:
            # Whatever failed above, leave no thread behind.
            self.gate_open.set()
            w.shutdown(wait=False)

    def account_for_every_request(self) -> None:
        cancelling = self.cancel_futures_requested
        for rid, kind in self.kind.items():
            outcome = self.outcome.get(rid)
            ran = self.runs.get(rid, 0)
            event(f"{kind} {outcome}, {'ran' if ran else 'did not run'}")
            assert outcome is not None, f"request {rid} was never made"
            if outcome == "refused":
                assert ran == 0
            elif outcome == "call cancelled":
                assert kind == "call"
                assert cancelling
                assert ran == 0
            elif kind == "submit":
                f = self.futures[rid]
                assert f.done()
                if f.cancelled():
                    assert ran == 0
                    assert rid in self.cancel_won or cancelling
                else:
                    assert ran == 1
                    assert f.result(0) == rid
            elif kind == "call":
                assert ran == 1
            else:  # post: run, or dropped by cancel_futures
                assert ran == 1 or (ran == 0 and cancelling)


WorkerMachine.TestCase.settings = settings(max_examples=80, stateful_step_count=25, deadline=None)
test_worker_lifecycles = WorkerMachine.TestCase
