"""The standard library is the oracle: one generated program, run on every executor face.

Each program is a list of operations on one executor: submit a task (that
returns, raises an Exception or a BaseException, and may block on a gate the
program opens later), cancel, the future's accessors, ``wait`` (every
``return_when``), ``as_completed``, ``map``, ``add_done_callback`` (callbacks
that record, raise, or shut the executor down) and ``shutdown(wait,
cancel_futures)``.  It runs on :class:`tests.faces.DocumentedPool` (the
stdlib's ``ThreadPoolExecutor(max_workers=1)``), on
:class:`threadkit.SerialExecutor` and on :class:`threadkit.ResourceWorker`,
and everything observable must agree: the value or exception of every call,
each future's final state, the order tasks ran, which callbacks ran how often
and in which kind of thread, what ``wait``/``as_completed`` returned, and
what went to the error hook.

Determinism without sleeping: after every operation the interpreter waits
(bounded) until the executor is *quiescent*: every task that can run has run
and its callbacks have finished, and the owner thread either idles or blocks
inside a task on a closed gate.  The state is then a function of the program,
so a query with timeout 0 has one right answer.  A wait that would block for
ever on a correct executor gets a short timeout instead, decided from that
state (the decision is part of the observation).

Where the stdlib's behaviour is undefined, the oracle is threadkit's
documented behaviour (see ``DocumentedPool``): a done-callback raising a
BaseException; ``shutdown(cancel_futures=True)`` meeting such a callback;
futures cancelled by that shutdown counting as done for ``wait``.
"""

from __future__ import annotations

import concurrent.futures as cf
import concurrent.futures._base as cf_base
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from .conftest import WAIT
from .faces import IN_PROCESS_FACES as FACES
from .faces import DocumentedPool

GATES = 3
SHORT = 0.01  # the timeout given to a wait that would otherwise never end

# -- programs -------------------------------------------------------------------------

TASK_KINDS = ("value", "exception", "system_exit", "keyboard_interrupt")
CALLBACK_KINDS = (
    "record",
    "exception",
    "system_exit",
    "keyboard_interrupt",
    "shutdown",
    "shutdown_cancel",
)
RETURN_WHEN = (cf.ALL_COMPLETED, cf.FIRST_COMPLETED, cf.FIRST_EXCEPTION)
TIMEOUTS = (None, 0.0, SHORT)

pick = st.integers(0, 30)  # a future, modulo the number submitted so far
picks = st.lists(pick, min_size=1, max_size=4)
submit = st.tuples(
    st.just("submit"), st.sampled_from(TASK_KINDS), st.none() | st.integers(0, GATES - 1)
)
op = st.one_of(
    submit,
    submit,
    st.tuples(st.just("open"), st.integers(0, GATES - 1)),
    st.tuples(st.just("cancel"), pick),
    st.tuples(
        st.just("query"),
        pick,
        st.sampled_from(("done", "running", "cancelled", "result", "exception")),
        st.sampled_from((0.0, SHORT)),
    ),
    st.tuples(st.just("wait"), picks, st.sampled_from(RETURN_WHEN), st.sampled_from(TIMEOUTS)),
    st.tuples(st.just("as_completed"), picks, st.sampled_from(TIMEOUTS)),
    st.tuples(st.just("map"), st.integers(0, 3), st.booleans()),
    st.tuples(st.just("callback"), pick, st.sampled_from(CALLBACK_KINDS)),
    st.tuples(st.just("callback"), pick, st.sampled_from(CALLBACK_KINDS)),
    st.tuples(
        st.just("open_while_waiting"),
        st.integers(0, GATES - 1),
        picks,
        st.sampled_from(("wait", "as_completed", "result")),
    ),
)
# Futures first (callbacks and waits need them), a shutdown at most twice,
# and the end always shuts down (Run.finish).
programs = st.builds(
    lambda first, ops, shutdowns: [
        *first,
        *ops[: len(ops) // 2],
        *shutdowns,
        *ops[len(ops) // 2 :],
    ],
    st.lists(submit, min_size=1, max_size=5),
    st.lists(op, max_size=16),
    st.lists(st.tuples(st.just("shutdown"), st.booleans(), st.booleans()), max_size=2),
)


# -- the interpreter -----------------------------------------------------------------


def _kind(exc: BaseException) -> str:
    """The name of the most derived stdlib class of exc (WorkerClosed -> RuntimeError)."""
    for cls in type(exc).__mro__:
        if cls.__module__ in ("builtins", "concurrent.futures._base"):
            return cls.__name__
    return type(exc).__name__  # pragma: no cover - every exception derives from a builtin


class _Counter(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("exception calling callback for"):
            self.count += 1


# The states in which wait() and as_completed() count a future as done.
_COUNTED = frozenset({cf_base.FINISHED, cf_base.CANCELLED_AND_NOTIFIED})


@dataclass
class Run:
    """One program's run on one executor, and what it observed."""

    ex: Any
    words: bool
    gates: list[threading.Event] = field(
        default_factory=lambda: [threading.Event() for _ in range(GATES)]
    )
    futures: list[cf.Future[Any]] = field(default_factory=list)
    gate_of: list[int | None] = field(default_factory=list)
    entered: list[bool] = field(default_factory=list)
    attached: list[int] = field(default_factory=list)
    finished_callbacks: list[int] = field(default_factory=list)
    ran: list[object] = field(default_factory=list)
    callbacks: list[tuple[int, int, str]] = field(default_factory=list)
    seen: list[object] = field(default_factory=list)
    progress: threading.Condition = field(default_factory=threading.Condition)
    callers: set[threading.Thread] = field(default_factory=set)

    def note(self, *what: object) -> None:
        self.seen.append(what)

    def raised(self, what: str, exc: BaseException) -> None:
        message = str(exc) if self.words or not isinstance(exc, RuntimeError) else None
        self.note(what, "raised", _kind(exc), message)

    # -- tasks and callbacks (they run in the owner thread) -----------------------

    def task(self, index: int, kind: str, gate: int | None) -> int:
        with self.progress:
            self.entered[index] = True
            self.progress.notify_all()
        if gate is not None:
            assert self.gates[gate].wait(WAIT), "gate never opened"
        with self.progress:
            self.ran.append(index)
        if kind == "exception":
            raise ValueError(index)
        if kind == "system_exit":
            raise SystemExit(index)
        if kind == "keyboard_interrupt":
            raise KeyboardInterrupt(index)
        return index

    def thread_kind(self) -> str:
        return "caller" if threading.current_thread() in self.callers else "owner"

    def callback(self, index: int, serial: int, kind: str) -> Callable[[cf.Future[Any]], None]:
        def callback(_f: cf.Future[Any]) -> None:
            try:
                self.callbacks.append((index, serial, self.thread_kind()))
                if kind == "exception":
                    raise ValueError(serial)
                if kind == "system_exit":
                    raise SystemExit(serial)
                if kind == "keyboard_interrupt":
                    raise KeyboardInterrupt(serial)
                if kind.startswith("shutdown"):
                    self.ex.shutdown(wait=False, cancel_futures=kind == "shutdown_cancel")
            finally:
                with self.progress:
                    self.finished_callbacks[index] += 1
                    self.progress.notify_all()

        return callback

    # -- quiescence ----------------------------------------------------------------

    def notify(self, _f: cf.Future[Any]) -> None:
        with self.progress:
            self.progress.notify_all()

    def blocked(self) -> int | None:
        """The task blocked on a closed gate (the owner is inside it), if any."""
        for i, f in enumerate(self.futures):
            if f.done():
                continue
            gate = self.gate_of[i]
            if self.entered[i] and gate is not None and not self.gates[gate].is_set():
                return i
            return None
        return None

    def _quiet(self) -> bool:
        for i, f in enumerate(self.futures):
            if f.done():
                if self.finished_callbacks[i] != self.attached[i]:
                    return False
                continue
            return self.blocked() == i
        return True

    def settle(self) -> None:
        with self.progress:
            assert self.progress.wait_for(self._quiet, WAIT), (
                "the executor never became quiescent: "
                + repr([(f.done(), e) for f, e in zip(self.futures, self.entered, strict=True)])
            )

    def will_finish(self, after_opening: int | None = None) -> set[int]:
        """Futures wait() counts as done now, or once the gate *after_opening* opens.

        A future cancelled by cancel() is done() at once, but wait() and
        as_completed() count it only once the executor has noticed it
        (CANCELLED_AND_NOTIFIED), which happens when its owner reaches it.
        """
        done = {i for i, f in enumerate(self.futures) if f._state in _COUNTED}
        b = self.blocked()
        if b is not None and after_opening is not None and self.gate_of[b] == after_opening:
            for i in range(b, len(self.futures)):
                if self.futures[i].done():
                    done.add(i)  # finished, or cancelled and noticed when reached
                    continue
                gate = self.gate_of[i]
                closed = (
                    gate is not None and gate != after_opening and not self.gates[gate].is_set()
                )
                if i > b and closed:
                    break
                done.add(i)
        elif b is None:
            # Nothing blocks the owner: every pending future will finish, but a
            # cancelled one that nothing will notice any more (its executor shut
            # down) is never counted.
            done |= {i for i, f in enumerate(self.futures) if not f.done()}
        return done

    def indices(self, fs: Any) -> list[int]:
        return sorted(self.futures.index(f) for f in fs)

    # -- the operations ---------------------------------------------------------------

    def do(self, op: tuple[Any, ...]) -> None:
        name = op[0]
        if name == "submit":
            self.submit(op[1], op[2])
        elif name == "open":
            self.gates[op[1]].set()
            self.note("open", op[1])
        elif name == "map":
            self.map(op[1], op[2])
        elif name == "shutdown":
            self.shutdown(op[1], op[2])
        elif not self.futures:
            return  # the other operations need a future to act on
        elif name == "cancel":
            i = op[1] % len(self.futures)
            try:
                self.note("cancel", i, self.futures[i].cancel())
            except BaseException as exc:  # a callback's, re-raised by cancel()
                self.raised("cancel", exc)
        elif name == "query":
            self.query(op[1] % len(self.futures), op[2], op[3])
        elif name == "wait":
            self.wait(op[1], op[2], op[3])
        elif name == "as_completed":
            self.as_completed(op[1], op[2])
        elif name == "callback":
            i = op[1] % len(self.futures)
            self.attached[i] += 1
            try:
                self.futures[i].add_done_callback(self.callback(i, len(self.seen), op[2]))
                self.note("callback", i)
            except BaseException as exc:  # a callback run at once, in this thread
                self.raised("callback", exc)
        elif name == "open_while_waiting":
            self.open_while_waiting(op[1], op[2], op[3])
        self.settle()

    def submit(self, kind: str, gate: int | None) -> None:
        i = len(self.futures)
        with self.progress:  # the task may start before submit() returns
            self.entered.append(False)
            self.gate_of.append(gate)
            self.attached.append(0)
            self.finished_callbacks.append(0)
        try:
            f = self.ex.submit(self.task, i, kind, gate)
        except BaseException as exc:  # refused: recorded
            with self.progress:
                del self.entered[i], self.gate_of[i], self.attached[i], self.finished_callbacks[i]
            self.raised("submit", exc)
            return
        self.futures.append(f)
        # Wakes settle() when the future's state changes; added first, it runs
        # before the program's callbacks, which count themselves.
        f.add_done_callback(self.notify)
        self.note("submit", i)
        self.settle()

    def query(self, i: int, what: str, timeout: float) -> None:
        f = self.futures[i]
        try:
            if what == "result":
                value: object = f.result(timeout)
            elif what == "exception":
                exc = f.exception(timeout)
                value = None if exc is None else (_kind(exc), exc.args)
            else:
                value = getattr(f, what)()
            self.note(what, i, value)
        except BaseException as err:  # the outcome under test: recorded
            self.note(what, i, "raised", _kind(err), err.args if not self.words else str(err))

    def selection(self, picked: list[int]) -> list[cf.Future[Any]]:
        return [self.futures[p % len(self.futures)] for p in picked]

    def wait(self, picked: list[int], return_when: str, timeout: float | None) -> None:
        fs = self.selection(picked)
        if timeout is None and not self._ends(fs, return_when):
            timeout = SHORT  # would wait for ever, rightly: bound it
        done, not_done = cf.wait(fs, timeout, return_when)
        self.note("wait", return_when, timeout, self.indices(done), self.indices(not_done))

    def _ends(self, fs: list[cf.Future[Any]], return_when: str) -> bool:
        """Whether a wait without timeout returns (at quiescence nothing else finishes)."""
        finishing = self.will_finish()
        ends = [self.futures.index(f) in finishing for f in fs]
        if all(ends) or (return_when == cf.FIRST_COMPLETED and any(ends)):
            return True
        return return_when == cf.FIRST_EXCEPTION and any(
            f.done() and not f.cancelled() and f.exception(0) is not None for f in fs
        )

    def as_completed(self, picked: list[int], timeout: float | None) -> None:
        fs = self.selection(picked)
        if timeout is None and not self._ends(fs, cf.ALL_COMPLETED):
            timeout = SHORT
        got: list[int] = []
        try:
            for f in cf.as_completed(fs, timeout):
                got.append(self.futures.index(f))
            outcome = "all"
        except TimeoutError:
            outcome = "timeout"
        # Each future exactly once; the order among futures already done is the set's.
        assert len(got) == len(set(got)), f"as_completed yielded a future twice: {got}"
        self.note("as_completed", timeout, sorted(got), outcome)

    def map(self, n: int, raises: bool) -> None:
        timeout = None if self.blocked() is None else SHORT

        def fn(x: int) -> int:
            self.ran.append(("map", x))
            if raises and x == n - 1:
                raise ValueError(x)
            return x

        try:
            results = self.ex.map(fn, range(n), timeout=timeout)
        except BaseException as exc:  # refused at the call: recorded
            self.raised("map", exc)
            return
        got: list[object] = []
        try:
            for value in results:
                got.append(value)
        except BaseException as exc:  # raised by the iterator: recorded
            got.append((_kind(exc), exc.args))
        self.note("map", timeout, got)

    def shutdown(self, wait: bool, cancel_futures: bool) -> None:
        if wait and self.blocked() is not None:
            # A shutdown(wait=True) now would wait for a gate only this thread
            # opens: begin it, open the gates, then wait.
            self.call_shutdown(False, cancel_futures)
            for gate in self.gates:
                gate.set()
        self.call_shutdown(wait, cancel_futures)

    def call_shutdown(self, wait: bool, cancel_futures: bool) -> None:
        try:
            self.ex.shutdown(wait=wait, cancel_futures=cancel_futures)
            self.note("shutdown", wait, cancel_futures)
        except BaseException as exc:  # a callback's BaseException, raised after: recorded
            self.raised("shutdown", exc)

    def open_while_waiting(self, gate: int, picked: list[int], how: str) -> None:
        fs = [f for f in self.selection(picked) if self.futures.index(f) in self.will_finish(gate)]
        opener = threading.Thread(target=self.gates[gate].set)
        self.callers.add(opener)
        opener.start()
        if how == "wait":
            done, not_done = cf.wait(fs, WAIT)
            self.note("opened, wait", self.indices(done), self.indices(not_done))
        elif how == "as_completed":
            got = [self.futures.index(f) for f in cf.as_completed(fs, WAIT)]
            assert len(got) == len(set(got)), f"as_completed yielded a future twice: {got}"
            self.note("opened, as_completed", sorted(got))
        else:
            outcomes = []
            for f in fs:
                try:
                    outcomes.append(f.result(WAIT))
                except BaseException as exc:  # the task's outcome: recorded
                    outcomes.append((_kind(exc), exc.args))
            self.note("opened, result", outcomes)
        opener.join(WAIT)

    def finish(self) -> list[object]:
        """Open every gate, shut down, wait; return everything observed."""
        for gate in self.gates:
            gate.set()
        self.call_shutdown(True, False)
        owner = self.ex.owner
        if owner is not None:
            owner.join(WAIT)
            assert not owner.is_alive()
        self.settle()
        final: list[object] = []
        for f in self.futures:
            assert f.done(), "a future is still pending after shutdown(wait=True)"
            if f.cancelled():
                final.append("cancelled")
            else:
                exc = f.exception(0)
                final.append(("raised", _kind(exc), exc.args) if exc else ("value", f.result(0)))
        return [
            self.seen,
            final,
            self.ran,
            sorted(self.callbacks),
            [_kind(exc) for exc in self.ex.reported],
        ]


def run(make: Callable[[], Any], program: list[tuple[Any, ...]], words: bool) -> list[object]:
    logged = _Counter()
    logging.getLogger("concurrent.futures").addHandler(logged)
    ex = make()
    r = Run(ex, words, callers={threading.current_thread()})
    try:
        for operation in program:
            r.do(operation)
        return [*r.finish(), logged.count]
    finally:
        logging.getLogger("concurrent.futures").removeHandler(logged)
        for gate in r.gates:
            gate.set()
        ex.shutdown(wait=True)
        getattr(ex, "forget", lambda: None)()


@pytest.fixture(autouse=True)
def quiet_loggers() -> Iterator[None]:
    # The programs make callbacks and posts raise on purpose; their log
    # records are counted, not printed.
    loggers = [logging.getLogger(n) for n in ("concurrent.futures", "threadkit")]
    before = [lg.propagate for lg in loggers]
    for lg in loggers:
        lg.propagate = False
    yield
    for lg, was in zip(loggers, before, strict=True):
        lg.propagate = was


@pytest.mark.parametrize("name", sorted(FACES))
@given(program=programs)
def test_a_single_producer_program_observes_the_same_on_every_face_as_on_the_stdlib(
    name: str, program: list[tuple[Any, ...]]
) -> None:
    face = FACES[name]
    words = face.stdlib_words  # type: ignore[attr-defined]
    expected = run(DocumentedPool, program, words)
    assert run(face, program, words) == expected


def run_producers(make: Callable[[], Any], plan: list[list[str]]) -> list[object]:
    """Producers submit their tasks at once; observe what no schedule can change."""
    ex = make()
    ran: list[tuple[int, int]] = []
    futures: dict[tuple[int, int], cf.Future[Any]] = {}
    start = threading.Barrier(len(plan))

    def task(p: int, k: int, kind: str) -> tuple[int, int]:
        ran.append((p, k))  # list.append: atomic
        if kind == "exception":
            raise ValueError(p, k)
        return (p, k)

    def produce(p: int) -> None:
        start.wait(WAIT)
        for k, kind in enumerate(plan[p]):
            futures[p, k] = ex.submit(task, p, k, kind)  # dict store of a new key: atomic

    producers = [threading.Thread(target=produce, args=(p,)) for p in range(len(plan))]
    try:
        for t in producers:
            t.start()
        for t in producers:
            t.join(WAIT)
        fs = list(futures.values())
        done, not_done = cf.wait(fs, WAIT)
        assert not not_done, "wait() returned before every future finished"
        assert all(f.done() and not f.running() for f in done)
        yielded = list(cf.as_completed(fs, WAIT))
        assert len(yielded) == len(fs)
        assert set(yielded) == set(fs)
        ex.shutdown(wait=True)
    finally:
        ex.shutdown(wait=True)
        getattr(ex, "forget", lambda: None)()
    outcomes = {}
    for key, f in sorted(futures.items()):
        exc = f.exception(0)
        outcomes[key] = ("raised", _kind(exc), exc.args) if exc else ("value", f.result(0))
    per_producer = [[k for q, k in ran if q == p] for p in range(len(plan))]
    return [per_producer, sorted(ran), len(ran), outcomes]


@pytest.mark.parametrize("name", sorted(FACES))
@given(
    plan=st.lists(
        st.lists(st.sampled_from(("value", "exception")), max_size=8), min_size=1, max_size=4
    )
)
def test_many_producers_observe_the_same_per_producer_order_and_outcomes_as_on_the_stdlib(
    name: str, plan: list[list[str]]
) -> None:
    assert run_producers(FACES[name], plan) == run_producers(DocumentedPool, plan)


ROUNDS = 200


@pytest.mark.parametrize("name", sorted(FACES))
def test_wait_and_as_completed_see_each_of_200_futures_finished_exactly_once(name: str) -> None:
    # A known race (threadkit issue 11): the owner publishes FINISHED before it
    # looks for a waiter, so wait() could count a future twice (and return
    # while another still runs) and as_completed() yield one twice (KeyError).
    for round_ in range(ROUNDS):
        ex = FACES[name]()
        try:
            fs = [ex.submit(int) for _ in range(200)]
            if round_ % 2 == 0:
                _, not_done = cf.wait(fs, WAIT)
                assert not not_done, f"round {round_}: wait() timed out"
                unfinished = [i for i, f in enumerate(fs) if not f.done() or f.running()]
                assert not unfinished, f"round {round_}: wait() returned before {unfinished}"
            yielded = list(cf.as_completed(fs, WAIT))
            assert len(yielded) == 200, f"round {round_}"
            assert set(yielded) == set(fs), f"round {round_}"
        finally:
            ex.shutdown(wait=True)
            getattr(ex, "forget", lambda: None)()
