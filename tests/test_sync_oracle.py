"""The standard library is the oracle: one program on threading's primitives and on threadkit's.

A hypothesis state machine generates a program over one to three primitives
(``Lock``, ``RLock``, ``Condition`` over its default lock or over a ``Lock``,
``threading.Condition`` over the world's ``RLock`` or ``Lock``, ``Semaphore``,
``BoundedSemaphore``, ``Event``) and one to four threads, and
runs every step on two *worlds*: one built from :mod:`threading`, one from
:mod:`threadkit`.  Each world has its own worker threads; a step is handed to
the same worker in both worlds, and the return value or exception (type and
message) of every call is compared, as is the final state of every primitive.

Threads are driven step by step so that both worlds run the same schedule.
A small model of the primitives (:class:`Model`) decides, before a step is
handed out, whether it will return at once or *park* (block until another
step releases it), and which parked threads a step wakes; the harness waits
(bounded) for exactly the calls that must return.  The model only schedules:
the outcomes compared are those the two worlds produce.  Steps whose outcome
would depend on timing are never generated:

- a timed wait is generated only where nothing can end it early, so it times
  out in both worlds; the harness waits for it before the next step;
- at most one thread contends for a lock (or a semaphore) at a time, so the
  thread that gets it is known;
- a thread that starts waiting on a condition is known to be registered once
  another thread has taken the lock it released (a probe by the spare thread);
- a ``wait_for`` is woken only when its predicate is true (else it would wait
  again at a moment no step waits for);
- with checks on, a thread blocks on a lock only while it holds no other, so
  its lock-order check has nothing to record whenever it runs;
- no step may leave parked threads waiting for each other in a cycle, and a
  thread never blocks for ever on a ``Lock`` it holds itself (the stdlib would
  hang; with checks on, threadkit raises, which is tested).

With checks on, threadkit raises where the documentation says it is stricter
(:class:`~threadkit.LockOrderError`, :class:`~threadkit.DeadlockError`,
:class:`~threadkit.LockOwnershipError`, and a condition over a ``Lock`` used
by a thread that does not hold it).  The model predicts each such step; the
harness runs it on threadkit only and asserts exactly that error, and every
other step must agree with the stdlib.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

import threadkit
from threadkit import checks

from .conftest import WAIT

# A timed wait the schedule lets expire: short, because each one costs its length.
TICK = 0.002

# "threading.Condition(...)" is threading's Condition over the world's lock: the
# stdlib's Condition driving a threadkit lock through its private protocol.
CONDITIONS = (
    "Condition",
    "Condition(Lock)",
    "threading.Condition(RLock)",
    "threading.Condition(Lock)",
)
LOCKS = ("Lock", "RLock", *CONDITIONS)
SEMAPHORES = ("Semaphore", "BoundedSemaphore")
REENTRANT = ("RLock", "Condition", "threading.Condition(RLock)")
HAS_LOCKED = {  # RLock.locked() and Condition.locked() are new in 3.14
    "Lock": True,
    "RLock": hasattr(threading.RLock(), "locked"),
    **dict.fromkeys(CONDITIONS, hasattr(threading.Condition(), "locked")),
}

Op = tuple[Any, ...]
Outcome = tuple[Any, ...]


# -- the two worlds ----------------------------------------------------------------------


def build(lib: Any, kind: str, value: int) -> Any:
    if kind == "Condition(Lock)":
        return lib.Condition(lib.Lock())
    if kind.startswith("threading.Condition("):
        return threading.Condition(getattr(lib, kind[len("threading.Condition(") : -1])())
    if kind in SEMAPHORES:
        return getattr(lib, kind)(value)
    return getattr(lib, kind)()


def perform(world: World, op: Op) -> Any:  # noqa: PLR0911 - one return per kind of call
    """Run one step's call on ``world``'s primitive, in the calling worker thread."""
    name, i, *args = op
    p = world.prims[i]
    if name == "acquire":
        return p.acquire(*args)
    if name == "release":
        return p.release(*args)
    if name == "enter":
        return p.__enter__()
    if name == "exit":  # leaving a with block, normally or by an exception
        exc = ValueError("raised in the block") if args else None
        return p.__exit__(type(exc) if exc else None, exc, None)
    if name in ("locked", "is_set", "set", "clear", "notify_all"):
        return getattr(p, name)()
    if name in ("wait", "notify"):
        return getattr(p, name)(*args)
    if name == "wait_for":
        return p.wait_for(lambda: world.values[i], *args)
    if name == "set_value":
        world.values[i] = args[0]
        return None
    if name == "probe":  # wait until the lock is free, and leave it free
        p.acquire()
        return p.release()
    assert name == "state", name
    return observe(p, world.kinds[i])


def observe(p: Any, kind: str) -> Any:
    """The final state of a primitive, through its public methods only."""
    if kind == "Event":
        return p.is_set()
    if kind in SEMAPHORES:
        n = 0
        while n < 10 and p.acquire(False):
            n += 1
        for _ in range(n):
            p.release()
        return n
    got = p.acquire(False)
    if got:
        p.release()
    return got


class Call:
    """One step's call, run by a worker; its outcome is what the worlds compare."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn
        self.done = threading.Event()
        self.outcome: Outcome = ()

    def __call__(self) -> None:
        try:
            value = self.fn()
        except Exception as exc:
            self.outcome = ("raised", type(exc), str(exc))
        else:
            self.outcome = ("returned", value)
        finally:
            self.done.set()


class World:
    """The primitives of one library and the worker threads that call them."""

    def __init__(self, lib: Any, kinds: list[tuple[str, int]], threads: int) -> None:
        self.lib = lib.__name__
        self.kinds = [kind for kind, _ in kinds]
        self.prims = [build(lib, kind, value) for kind, value in kinds]
        self.values = [0] * len(kinds)  # what each condition's wait_for predicate returns
        self.inboxes: list[queue.SimpleQueue[Call | None]] = []
        self.threads: list[threading.Thread] = []
        self.calls: dict[int, Call] = {}
        for t in range(threads):
            inbox: queue.SimpleQueue[Call | None] = queue.SimpleQueue()
            thread = threading.Thread(
                target=self._work, args=(inbox,), name=f"{self.lib}-{t}", daemon=True
            )
            thread.start()
            self.inboxes.append(inbox)
            self.threads.append(thread)

    @staticmethod
    def _work(inbox: queue.SimpleQueue[Call | None]) -> None:
        while (call := inbox.get()) is not None:
            call()

    def start(self, t: int, op: Op) -> None:
        call = self.calls[t] = Call(functools.partial(perform, self, op))
        self.inboxes[t].put(call)

    def finish(self, t: int) -> Outcome:
        call = self.calls.pop(t)
        assert call.done.wait(WAIT), f"{self.lib}: thread {t} still blocked in {call.fn}"
        return call.outcome

    def close(self, *, join: bool) -> None:
        for inbox in self.inboxes:
            inbox.put(None)
        for thread in self.threads if join else ():
            thread.join(WAIT)


# -- the model that schedules ---------------------------------------------------------------


@dataclass
class Parked:
    """A thread blocked in a call: on a lock, a semaphore, an event or a condition."""

    what: str
    i: int
    notified: bool = False  # a condition waiter that now waits for the lock
    wait_for: bool = False
    count: int = 1  # the lock count a condition waiter gets back


@dataclass(frozen=True)
class Refusal:
    """A documented checks-on error: threadkit raises it, the stdlib call is not made."""

    error: type[Exception]
    message: str | None = None


@dataclass
class Model:
    kinds: list[str]
    checked: bool
    owner: dict[int, int | None] = field(default_factory=dict)
    count: dict[int, int] = field(default_factory=dict)
    value: dict[int, int] = field(default_factory=dict)
    bound: dict[int, int | None] = field(default_factory=dict)
    flag: dict[int, bool] = field(default_factory=dict)
    cond_value: dict[int, int] = field(default_factory=dict)
    waiting: dict[int, list[int]] = field(default_factory=dict)  # condition -> FIFO
    parked: dict[int, Parked] = field(default_factory=dict)
    held: dict[int, list[int]] = field(default_factory=dict)  # checks on: acquisition order
    edges: set[tuple[int, int]] = field(default_factory=set)  # checks on: the lock order

    @classmethod
    def new(cls, kinds: list[tuple[str, int]], checked: bool) -> Model:
        m = cls([kind for kind, _ in kinds], checked)
        for i, (kind, value) in enumerate(kinds):
            if kind in LOCKS:
                m.owner[i], m.count[i] = None, 0
            if kind in CONDITIONS:
                m.cond_value[i], m.waiting[i] = 0, []
            if kind in SEMAPHORES:
                m.value[i] = value
                m.bound[i] = value if kind == "BoundedSemaphore" else None
            if kind == "Event":
                m.flag[i] = False
        return m

    def clone(self) -> Model:
        m = copy.copy(self)
        m.owner, m.count, m.value = dict(self.owner), dict(self.count), dict(self.value)
        m.flag, m.cond_value = dict(self.flag), dict(self.cond_value)
        m.waiting = {i: list(w) for i, w in self.waiting.items()}
        m.parked = {t: dataclasses.replace(p) for t, p in self.parked.items()}
        m.held = {t: list(h) for t, h in self.held.items()}
        m.edges = set(self.edges)
        return m

    # -- queries

    def contenders(self, i: int) -> list[int]:
        return [
            t
            for t, p in self.parked.items()
            if p.i == i and (p.what == "lock" or (p.what == "cond" and p.notified))
        ]

    def reaches(self, a: int, b: int) -> bool:
        seen, todo = {a}, [a]
        while todo:
            node = todo.pop()
            for x, y in self.edges:
                if x == node and y not in seen:
                    if y == b:
                        return True
                    seen.add(y)
                    todo.append(y)
        return False

    def _held(self, t: int) -> list[int]:
        return self.held.setdefault(t, [])

    def _take(self, t: int, i: int, count: int = 1) -> None:
        self.owner[i], self.count[i] = t, count
        self._held(t).append(i)

    def _free(self, i: int) -> None:
        holder = self.owner[i]
        if holder is not None and i in self._held(holder):
            self._held(holder).remove(i)
        self.owner[i], self.count[i] = None, 0

    def _order(self, t: int, i: int) -> Refusal | None:
        """Checks on: record the edges ``held -> i``, or refuse a cycle (recording none)."""
        new = [h for h in self._held(t) if h != i and (h, i) not in self.edges]
        if any(self.reaches(i, h) for h in new):
            return Refusal(threadkit.LockOrderError)
        self.edges.update((h, i) for h in new)
        return None

    # -- one step: None if the step must not be generated here

    def apply(self, t: int, op: Op) -> str | Refusal | None:  # noqa: PLR0911 - a dispatch
        """Change the model by ``op`` run by thread ``t``: "done", "park" or a Refusal."""
        name, i, *args = op
        kind = self.kinds[i]
        if name == "probe":
            return "done" if self.owner[i] is None and not self.contenders(i) else None
        if name == "state":
            return "done"
        if kind in SEMAPHORES:
            return self._semaphore(t, name, i, args)
        if kind == "Event":
            return self._event(t, name, i, args)
        if name in ("acquire", "enter"):
            blocking, timeout = args if name == "acquire" else (True, -1)
            return self._acquire(t, i, blocking, timeout)
        if name in ("release", "exit"):
            return self._release(t, i)
        if name == "locked":
            return "done"
        return self._condition(t, name, i, args)

    # One return per case of the stdlib's contract, in the order the code tests them.
    def _acquire(  # noqa: PLR0911
        self, t: int, i: int, blocking: bool, timeout: float
    ) -> str | Refusal | None:
        if (not blocking or timeout < 0) and timeout != -1:
            return "done"  # ValueError
        owner, reentrant = self.owner[i], self.kinds[i] in REENTRANT
        if reentrant and owner == t:
            self.count[i] += 1
            return "done"
        if self.checked and blocking:
            if owner == t and timeout == -1:
                return Refusal(threadkit.DeadlockError)
            refusal = self._order(t, i)
            if refusal:
                return refusal
        if owner is None:
            self._take(t, i)
            return "done"
        if not blocking or timeout != -1:
            return "done"  # False, at once or after the timeout: nothing can free it
        if owner == t:
            return None  # the stdlib would wait for ever
        if self.contenders(i):
            return None
        if self.checked and any(h != i for h in self._held(t)):
            # Its order check runs whenever the thread gets there, which no step
            # waits for: it must have nothing to record.
            return None
        self.parked[t] = Parked("lock", i)
        return "park"

    def _release(self, t: int, i: int) -> str | Refusal | None:
        owner = self.owner[i]
        if owner is None:
            return "done"  # RuntimeError
        if owner != t:
            if self.checked:
                return Refusal(threadkit.LockOwnershipError)
            if self.kinds[i] in REENTRANT:
                return "done"  # RuntimeError
        self.count[i] -= 1
        if not self.count[i] or self.kinds[i] not in REENTRANT:
            self._free(i)  # a Lock may be released by any thread (checks off)
        return "done"

    def _condition(  # noqa: PLR0911 - as _acquire
        self, t: int, name: str, i: int, args: list[Any]
    ) -> str | Refusal | None:
        if name == "set_value":
            if not args[0] and any(
                p.wait_for and p.notified for p in self.parked.values() if p.i == i
            ):
                return None  # a woken wait_for would wait again, at a moment nobody waits for
            self.cond_value[i] = args[0]
            return "done"
        if name == "wait_for" and self.cond_value[i]:
            return "done"  # returns the predicate's value without waiting
        owner = self.owner[i]
        # threading.Condition's ownership test: exact for an RLock, "held by some
        # thread" for a Lock.  A checked Lock knows its owner and is exact.
        owns = owner == t if self.kinds[i] in REENTRANT else owner is not None
        if not owns:
            return "done"  # RuntimeError
        if self.checked and owner != t:
            verb = "notify" if name.startswith("notify") else "wait"
            return Refusal(RuntimeError, f"cannot {verb} on un-acquired lock")
        if name in ("notify", "notify_all"):
            n = len(self.waiting[i]) if name == "notify_all" else args[0]
            woken, self.waiting[i] = self.waiting[i][:n], self.waiting[i][n:]
            for w in woken:
                self.parked[w].notified = True
                if self.parked[w].wait_for and not self.cond_value[i]:
                    return None  # it would wait again: see set_value
            return "done"
        timeout = args[0]
        if self.checked and not self.kinds[i].startswith("threading."):
            refusal = self._order(t, i)  # threadkit's wait checks re-taking the lock
            if refusal:
                return refusal
        if timeout is not None and self.contenders(i):
            return None  # a contender takes the lock while the wait times out
        count = self.count[i]
        self._free(i)
        if timeout is not None:
            self._take(t, i, count)  # timed out, and the lock taken back
            return "done"
        self.waiting[i].append(t)
        self.parked[t] = Parked("cond", i, wait_for=name == "wait_for", count=count)
        return "park"

    def _semaphore(self, t: int, name: str, i: int, args: list[Any]) -> str | None:
        if name in ("acquire", "enter"):
            blocking, timeout = args if name == "acquire" else (True, None)
            if not blocking and timeout is not None:
                return "done"  # ValueError
            if self.value[i]:
                self.value[i] -= 1
                return "done"
            if not blocking or timeout is not None:
                return "done"
            if any(p.i == i for p in self.parked.values()):
                return None
            self.parked[t] = Parked("sem", i)
            return "park"
        assert name in ("release", "exit"), name
        n = args[0] if name == "release" and args else 1
        bound = self.bound[i]
        if bound is None or self.value[i] + n <= bound:  # else ValueError
            self.value[i] += n
        return "done"

    def _event(self, t: int, name: str, i: int, args: list[Any]) -> str | None:
        if name in ("set", "clear"):
            self.flag[i] = name == "set"
        elif name == "wait" and not self.flag[i] and args[0] is None:
            self.parked[t] = Parked("event", i)
            return "park"
        return "done"

    def settle(self) -> list[int]:
        """Wake the parked threads the state now lets go; return them in wake order."""
        woken: list[int] = []
        progress = True
        while progress:
            progress = False
            for t, p in list(self.parked.items()):
                if p.what in ("lock", "cond") and (p.what == "lock" or p.notified):
                    go = self.owner[p.i] is None
                    if go:
                        self._take(t, p.i, p.count)
                elif p.what == "sem":
                    go = self.value[p.i] > 0
                    if go:
                        self.value[p.i] -= 1
                else:
                    go = p.what == "event" and self.flag[p.i]
                if go:
                    del self.parked[t]
                    woken.append(t)
                    progress = True
        return woken

    def sound(self) -> bool:
        """No lock with two contenders, no parked threads waiting for each other."""
        if any(len(self.contenders(i)) > 1 for i in self.owner):
            return False
        for start in self.parked:
            seen, t = set(), start
            while t in self.parked and t not in seen:
                seen.add(t)
                p = self.parked[t]
                if p.what not in ("lock", "cond"):
                    break
                holder = self.owner[p.i]
                if holder is None:
                    break
                if holder == start:
                    return False
                t = holder
        return True


@dataclass
class Plan:
    model: Model
    result: str | Refusal
    woken: list[int]


def plan(model: Model, t: int, op: Op) -> Plan | None:
    m = model.clone()
    result = m.apply(t, op)
    if result is None:
        return None
    woken = m.settle()
    if not m.sound():
        return None
    return Plan(m, result, woken)


def ops_for(i: int, kind: str) -> Iterator[Op]:
    if kind in LOCKS:
        for blocking, timeout in [
            (True, -1),
            (False, -1),
            (True, 0),
            (True, TICK),
            (False, TICK),  # ValueError
            (True, -5),  # ValueError
        ]:
            yield ("acquire", i, blocking, timeout)
        yield from [("release", i), ("enter", i), ("exit", i), ("exit", i, "raising")]
        if HAS_LOCKED[kind]:
            yield ("locked", i)
    if kind in CONDITIONS:
        for timeout in (None, 0, TICK):
            yield ("wait", i, timeout)
            yield ("wait_for", i, timeout)
        yield from [("notify", i, 0), ("notify", i, 1), ("notify", i, 2), ("notify_all", i)]
        yield from [("set_value", i, 0), ("set_value", i, 1)]
    if kind in SEMAPHORES:
        for blocking, timeout in [
            (True, None),
            (False, None),
            (True, 0),
            (True, TICK),
            (False, TICK),
            (True, -1),
        ]:
            yield ("acquire", i, blocking, timeout)
        yield from [("release", i), ("release", i, 2), ("enter", i), ("exit", i)]
        yield ("exit", i, "raising")
    if kind == "Event":
        yield from [("set", i), ("clear", i), ("is_set", i)]
        for timeout in (None, 0, TICK):
            yield ("wait", i, timeout)


# (kind, the initial value of a semaphore)
KIND = st.tuples(st.sampled_from(LOCKS + SEMAPHORES + ("Event",)), st.integers(0, 2))


# -- the machine ---------------------------------------------------------------------------


class Oracle(RuleBasedStateMachine):
    """Runs each generated step on the stdlib's primitives and on threadkit's."""

    checked = False

    def __init__(self) -> None:
        super().__init__()
        self.worlds: tuple[World, World] | None = None
        self.broken = False

    @initialize(threads=st.integers(1, 4), kinds=st.lists(KIND, min_size=1, max_size=3))
    def create(self, threads: int, kinds: list[tuple[str, int]]) -> None:
        kinds = [(k, max(v, 1) if k == "BoundedSemaphore" else v) for k, v in kinds]
        self.threads = threads
        self.spare = threads  # the spare thread probes and, at the end, unblocks
        was = checks.enabled()
        checks.enable() if self.checked else checks.disable()
        try:
            mine = World(threadkit, kinds, threads + 1)
        finally:
            checks.enable() if was else checks.disable()
        self.worlds = (World(threading, kinds, threads + 1), mine)
        self.model = Model.new(kinds, self.checked)

    def run(self, t: int, op: Op) -> None:
        """Run ``op`` in thread ``t`` of both worlds and compare what they observe."""
        try:
            self._run(t, op)
        except BaseException:
            # The worlds and the model disagree: teardown must not drive them.
            self.broken = True
            raise

    def _run(self, t: int, op: Op) -> None:
        p = plan(self.model, t, op)
        assert p is not None, f"the harness scheduled a step it cannot predict: {t} {op}"
        assert self.worlds is not None
        stdlib, mine = self.worlds
        if isinstance(p.result, Refusal):
            mine.start(t, op)
            outcome = mine.finish(t)
            assert outcome[:2] == ("raised", p.result.error), (op, outcome)
            if p.result.message is not None:
                assert outcome[2] == p.result.message
            return  # nothing changed: the stdlib's call is not made
        self.model = p.model
        for world in self.worlds:
            world.start(t, op)
        done = ([] if p.result == "park" else [t]) + p.woken
        for u in done:
            expected = stdlib.finish(u)
            assert mine.finish(u) == expected, (u, op)
        # A condition's waiter is registered once it released the lock: a
        # contender woken above saw that; otherwise the spare thread takes the lock.
        if (
            p.result == "park"
            and op[0] in ("wait", "wait_for")
            and op[1] in self.model.waiting
            and self.model.owner[op[1]] not in p.woken
        ):
            self.run(self.spare, ("probe", op[1]))

    @rule(data=st.data())
    def step(self, data: st.DataObject) -> None:
        idle = [t for t in range(self.threads) if t not in self.model.parked]
        choices = [
            (t, op)
            for t in idle
            for i, kind in enumerate(self.model.kinds)
            for op in ops_for(i, kind)
            if plan(self.model, t, op) is not None
        ]
        if not choices:
            self.unblock_one()
            return
        t, op = data.draw(st.sampled_from(choices), label="step")
        self.run(t, op)

    def unblock_one(self) -> bool:
        """One step towards no parked thread and no held lock; False if there is none."""
        m, spare = self.model, self.spare
        for i, owner in m.owner.items():
            if owner is not None and owner not in m.parked:
                self.run(owner, ("release", i))
                return True
        for p in m.parked.values():
            if p.what == "event":
                self.run(spare, ("set", p.i))
                return True
            if p.what == "sem":
                self.run(spare, ("release", p.i))
                return True
        for i, waiters in m.waiting.items():
            if waiters and m.owner[i] is None:
                if not m.cond_value[i]:
                    self.run(spare, ("set_value", i, 1))
                self.run(spare, ("acquire", i, True, -1))
                self.run(spare, ("notify", i, 1))
                self.run(spare, ("release", i))
                return True
        assert not m.parked, f"the program cannot end: {m.parked}"
        return False

    def teardown(self) -> None:
        if self.worlds is None:
            return
        try:
            while not self.broken and self.unblock_one():
                pass
            for i in range(len(self.model.kinds)):
                if not self.broken:
                    self.run(self.spare, ("state", i))
        finally:
            for world in self.worlds:
                # After a failure, threads may be blocked for good (they are daemons).
                world.close(join=not self.broken)


class OracleChecksOn(Oracle):
    checked = True


# max_examples comes from the profile (conftest.py): fewer on CI.  A pass takes
# seconds; the longer timeout is for shrinking a failure that shows as a
# thread blocked for good, which costs WAIT per attempt.
_SETTINGS = settings(stateful_step_count=30)
TestStdlibOracleChecksOff = pytest.mark.timeout(300)(Oracle.TestCase)
TestStdlibOracleChecksOff.settings = _SETTINGS
TestStdlibOracleChecksOn = pytest.mark.timeout(300)(OracleChecksOn.TestCase)
TestStdlibOracleChecksOn.settings = _SETTINGS
