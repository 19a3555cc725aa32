"""Cancellable waits: a blocking wait in threadkit raises Cancelled when the thread's token is.

The contract, for every wait that promises it: while a thread's
``current_token()`` can be cancelled, a wait that would block raises
:class:`threadkit.Cancelled` (with the token's reason) when the token is
cancelled, woken by the cancel itself; a wait that need not block does not
raise; a thread without a token waits exactly as before.  Races between a
cancel and what would satisfy the wait lose nothing: no wake-up, no permit,
no lock.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import threadkit
from threadkit import _cancel, checks
from threadkit._cancel import _bind_token

from .conftest import WAIT
from .faces import IN_PROCESS_FACES

# The faces whose requests run in this process, on the test's own objects: the
# race below blocks the owner thread on a threading.Event.
LOCAL_FACES: dict[str, Callable[..., Any]] = IN_PROCESS_FACES


class InTask:
    """Run ``fn(about_to_wait)`` in a thread whose current token is ``self.token``."""

    def __init__(self, fn: Callable[[threading.Event], object], token: Any = None) -> None:
        self.token = threadkit.CancelToken() if token is None else token
        self.about_to_wait = threading.Event()
        self.outcome: tuple[str, Any] | None = None
        self.thread = threading.Thread(target=self._run, args=(fn,), name="in-task")
        self.thread.start()

    def _run(self, fn: Callable[[threading.Event], object]) -> None:
        with _bind_token(self.token):
            try:
                self.outcome = ("returned", fn(self.about_to_wait))
            except BaseException as exc:  # routed: recorded for the test to assert on
                self.outcome = ("raised", exc)

    def finish(self) -> tuple[str, Any]:
        self.thread.join(WAIT)
        assert not self.thread.is_alive(), "the wait did not end"
        assert self.outcome is not None
        return self.outcome


@dataclass
class Wait:
    """One kind of blocking wait: how to block on it, and how to satisfy it."""

    name: str
    make: Callable[[], Any]  # a fresh primitive, in the state where waiting blocks
    wait: Callable[[Any], object]  # the blocking wait (run in the task)
    satisfy: Callable[[Any], None]  # what ends the wait normally (run outside)
    keeps: bool = False  # a lock the waiter got, which it releases itself


def _unchecked(factory: Callable[[], Any]) -> Callable[[], Any]:
    def make() -> Any:
        was = checks.enabled()
        checks.disable()
        try:
            return factory()
        finally:
            checks.enable() if was else checks.disable()

    return make


def _checked(factory: Callable[[], Any]) -> Callable[[], Any]:
    def make() -> Any:
        was = checks.enabled()
        checks.enable()
        try:
            return factory()
        finally:
            checks.enable() if was else checks.disable()

    return make


def _held(factory: Callable[[], Any]) -> Callable[[], Any]:
    def make() -> Any:
        lock = factory()
        lock.acquire()
        return lock

    return make


def _with(lock: Any) -> bool:
    with lock:
        pass
    return True


def _cond_wait(cond: threadkit.Condition) -> bool:
    with cond:
        # A notify before the wait reaches nobody: the flag says it came.
        return getattr(cond, "ready", False) or cond.wait()


def _cond_wait_for(cond: threadkit.Condition) -> bool:
    with cond:
        return cond.wait_for(lambda: getattr(cond, "ready", False))


def _notify(cond: threadkit.Condition) -> None:
    with cond:
        cond.ready = True  # type: ignore[attr-defined]
        cond.notify_all()


def _release(x: Any) -> None:
    x.release()


def _acquire(x: Any) -> bool:
    return bool(x.acquire())


def _acquire_timed(x: Any) -> bool:
    return bool(x.acquire(timeout=WAIT))


_lock, _clock = _held(_unchecked(threadkit.Lock)), _held(_checked(threadkit.Lock))
_rlock, _crlock = _held(_unchecked(threadkit.RLock)), _held(_checked(threadkit.RLock))
WAITS = [
    Wait("Lock.acquire", _lock, _acquire, _release, True),
    Wait("with Lock", _lock, _with, _release),
    Wait("Lock.acquire timeout", _lock, _acquire_timed, _release, True),
    Wait("checked Lock.acquire", _clock, _acquire_timed, _release, True),
    Wait("with checked Lock", _clock, _with, _release),
    Wait("RLock.acquire", _rlock, _acquire, _release, True),
    Wait("RLock.acquire timeout", _rlock, _acquire_timed, _release, True),
    Wait("checked RLock.acquire", _crlock, _acquire, _release, True),
    Wait("Semaphore.acquire", lambda: threadkit.Semaphore(0), _acquire, _release),
    Wait("BoundedSemaphore.acquire", _held(threadkit.BoundedSemaphore), _acquire_timed, _release),
    Wait("Event.wait", threadkit.Event, lambda x: x.wait(), lambda x: x.set()),
    Wait("Condition.wait", threadkit.Condition, _cond_wait, _notify),
    Wait("Condition.wait_for", threadkit.Condition, _cond_wait_for, _notify),
]
LOCK_WAITS = [w for w in WAITS if "Lock" in w.name]


def _waiter(kind: Wait, obj: Any) -> Callable[[threading.Event], object]:
    def run(about_to_wait: threading.Event) -> object:
        about_to_wait.set()
        got = kind.wait(obj)
        if kind.keeps and got:
            obj.release()  # a checked lock or an RLock belongs to the waiter's thread
        return got

    return run


@pytest.fixture(autouse=True)
def checks_restored() -> Iterator[None]:
    was = checks.enabled()
    yield
    checks.enable() if was else checks.disable()


@pytest.mark.parametrize("kind", WAITS, ids=lambda w: w.name)
def test_a_blocked_wait_raises_cancelled_with_the_reason_when_the_token_is_cancelled(
    kind: Wait,
) -> None:
    obj = kind.make()
    task = InTask(_waiter(kind, obj))
    assert task.about_to_wait.wait(WAIT)
    task.token.cancel("stop now")
    how, exc = task.finish()
    assert how == "raised"
    assert isinstance(exc, threadkit.Cancelled)
    assert exc.reason == "stop now"
    # Nothing was taken: what satisfies a waiter now satisfies a new one.
    kind.satisfy(obj)
    again = InTask(_waiter(kind, obj))
    assert again.finish() == ("returned", True)


@pytest.mark.parametrize("kind", WAITS, ids=lambda w: w.name)
def test_a_wait_on_an_already_cancelled_token_raises_at_once(kind: Wait) -> None:
    obj = kind.make()
    token = threadkit.CancelToken()
    token.cancel("early")
    how, exc = InTask(_waiter(kind, obj), token).finish()
    assert how == "raised"
    assert isinstance(exc, threadkit.Cancelled)
    assert exc.reason == "early"


@pytest.mark.parametrize("kind", WAITS, ids=lambda w: w.name)
def test_a_satisfied_wait_returns_normally_in_a_cancellable_thread(kind: Wait) -> None:
    obj = kind.make()
    task = InTask(_waiter(kind, obj))
    assert task.about_to_wait.wait(WAIT)
    kind.satisfy(obj)
    assert task.finish() == ("returned", True)


@pytest.mark.parametrize(
    ("make", "wait"),
    [
        (threadkit.Lock, lambda x: x.acquire()),
        (threadkit.RLock, lambda x: x.acquire()),
        (lambda: threadkit.Semaphore(1), lambda x: x.acquire()),
        (threadkit.Event, lambda x: (x.set(), x.wait())[1]),
    ],
    ids=["Lock", "RLock", "Semaphore", "Event"],
)
def test_a_wait_that_need_not_block_does_not_raise_even_when_cancelled(
    make: Callable[[], Any], wait: Callable[[Any], object]
) -> None:
    # Decided: Cancelled comes from waiting, not from touching a primitive;
    # code checks its token itself where it wants to stop.
    token = threadkit.CancelToken()
    token.cancel()
    obj = make()
    assert InTask(lambda _: wait(obj), token).finish() == ("returned", True)


def test_the_token_outside_any_task_is_one_singleton() -> None:
    seen: list[threadkit.CancelToken] = []
    thread = threading.Thread(target=lambda: seen.append(threadkit.current_token()))
    thread.start()
    thread.join(WAIT)
    assert seen[0] is threadkit.current_token() is _cancel._NEVER


def test_a_thread_without_a_token_takes_the_uncancellable_path() -> None:
    assert _cancel._cancellable() is None
    with _bind_token(threadkit.CancelToken()) as token:
        assert _cancel._cancellable() is token
    assert _cancel._cancellable() is None


def test_a_cancelled_condition_wait_holds_the_lock_again_when_it_raises() -> None:
    cond = threadkit.Condition(threadkit.Lock())
    held_after: list[bool] = []

    def run(about_to_wait: threading.Event) -> None:
        with cond:
            about_to_wait.set()
            try:
                cond.wait()
            finally:
                held_after.append(cond._is_owned())  # type: ignore[attr-defined]

    task = InTask(run)
    assert task.about_to_wait.wait(WAIT)
    task.token.cancel()
    assert task.finish()[0] == "raised"
    assert held_after == [True]
    assert cond.acquire(timeout=WAIT)  # and released it on the way out
    cond.release()


# -- races: nothing lost ------------------------------------------------------------


def _race(mine: Callable[[], object], *others: Callable[[], object]) -> None:
    """Run *mine* in this thread and each of *others* in a thread of its own, at once."""
    barrier = threading.Barrier(1 + len(others))

    def go(action: Callable[[], object]) -> None:
        barrier.wait(WAIT)
        action()

    threads = [threading.Thread(target=go, args=(a,)) for a in others]
    for t in threads:
        t.start()
    go(mine)
    for t in threads:
        t.join(WAIT)
        assert not t.is_alive()


@pytest.mark.parametrize(
    "make", [_lock, _clock, _rlock, _crlock], ids=["Lock", "checked Lock", "RLock", "checked RLock"]
)
def test_a_timed_out_acquire_leaves_no_one_to_take_the_lock_after_it(
    make: Callable[[], Any],
) -> None:
    # CPython's lock_tests test_state_after_timeout, made likely to hit: the
    # release comes right after the timed-out acquire returns.  A timeout the
    # waiter decided alone left the helper thread in its own timed wait, to
    # take the lock a moment later for nobody.
    for _ in range(100):
        lock = make()  # held by this thread
        task = InTask(lambda about_to_wait, lock=lock: lock.acquire(timeout=0.005))
        how, got = task.finish()
        lock.release()
        assert (how, got) == ("returned", False)
        assert lock.acquire(blocking=False)  # not held by anyone (RLock has no locked())
        lock.release()


@settings(max_examples=25)
@given(kind=st.sampled_from(LOCK_WAITS))
def test_a_cancel_racing_a_release_never_leaks_the_lock(kind: Wait) -> None:
    lock = kind.make()
    task = InTask(_waiter(kind, lock))
    assert task.about_to_wait.wait(WAIT)
    _race(lock.release, task.token.cancel)  # released by its holder, this thread
    how, value = task.finish()
    assert (how, value) == ("returned", True) or isinstance(value, threadkit.Cancelled)
    # Whoever got it released it: the lock is free for the next taker.
    again = InTask(_waiter(kind, lock))
    assert again.finish() == ("returned", True)


@settings(max_examples=25)
@given(
    waiters=st.integers(1, 5),
    cancels=st.data(),
    bounded=st.booleans(),
)
def test_cancels_racing_releases_never_lose_or_leak_a_permit(
    waiters: int, cancels: st.DataObject, bounded: bool
) -> None:
    sem = threadkit.BoundedSemaphore(waiters) if bounded else threadkit.Semaphore(waiters)
    for _ in range(waiters):
        sem.acquire()
    cancelled = cancels.draw(st.sets(st.integers(0, waiters - 1)), label="cancelled")
    tasks = [InTask(lambda ready: (ready.set(), sem.acquire())[1]) for _ in range(waiters)]
    for t in tasks:
        assert t.about_to_wait.wait(WAIT)
    _race(
        lambda: sem.release(waiters),
        *(lambda i=i: tasks[i].token.cancel() for i in sorted(cancelled)),
    )
    outcomes = [t.finish() for t in tasks]
    got = sum(1 for how, _ in outcomes if how == "returned")
    for i, (how, value) in enumerate(outcomes):
        if how == "raised":
            assert i in cancelled
            assert isinstance(value, threadkit.Cancelled)
    # Every permit is either held by a waiter that returned or still free.
    assert sem.statistics().value == waiters - got


@settings(max_examples=25)
@given(waiters=st.integers(1, 5), data=st.data())
def test_a_cancel_racing_a_notify_never_swallows_the_wake_up(
    waiters: int, data: st.DataObject
) -> None:
    cancelled = data.draw(st.sets(st.integers(0, waiters - 1)), label="cancelled")
    notified = data.draw(st.integers(0, waiters - len(cancelled)), label="notified")
    cond = threadkit.Condition(threadkit.Lock())
    parked = threading.Semaphore(0)

    def run(_: threading.Event) -> bool:
        with cond:
            parked.release()
            return cond.wait()

    tasks = [InTask(run) for _ in range(waiters)]
    for _ in tasks:
        assert parked.acquire(timeout=WAIT)
    with cond:
        pass  # every waiter has released the lock: each is in wait()

    def notify() -> None:
        with cond:
            cond.notify(notified)

    _race(notify, *(lambda i=i: tasks[i].token.cancel() for i in sorted(cancelled)))
    for t in tasks:
        t.token.cancel("clean up")  # ends the waits no one notified
    outcomes = [t.finish() for t in tasks]
    woken = sum(1 for how, _ in outcomes if how == "returned")
    # There were always enough uncancelled waiters to take every notification.
    assert woken == notified


@settings(max_examples=25)
@given(waiters=st.integers(1, 4), data=st.data())
def test_a_cancel_racing_set_wakes_every_other_event_waiter(
    waiters: int, data: st.DataObject
) -> None:
    cancelled = data.draw(st.sets(st.integers(0, waiters - 1)), label="cancelled")
    event = threadkit.Event()
    tasks = [InTask(lambda ready: (ready.set(), event.wait())[1]) for _ in range(waiters)]
    for t in tasks:
        assert t.about_to_wait.wait(WAIT)
    _race(event.set, *(lambda i=i: tasks[i].token.cancel() for i in sorted(cancelled)))
    for i, t in enumerate(tasks):
        how, value = t.finish()
        assert (how, value) == ("returned", True) or (i in cancelled and how == "raised")


# -- futures, tasks, workers ---------------------------------------------------------


@pytest.fixture
def busy_worker() -> Iterator[tuple[threadkit.ResourceWorker[dict[str, Any]], threading.Event]]:
    """A worker whose owner thread is busy until the event is set."""
    release = threading.Event()
    started = threading.Event()
    with threadkit.ResourceWorker(dict, name="busy") as worker:
        worker.post(lambda _: (started.set(), release.wait(WAIT)))
        assert started.wait(WAIT)
        yield worker, release
        release.set()


def _cancel_while_waiting(wait: Callable[[], object]) -> Any:
    task = InTask(lambda ready: (ready.set(), wait())[1])
    assert task.about_to_wait.wait(WAIT)
    task.token.cancel("caller gave up")
    how, exc = task.finish()
    assert how == "raised"
    assert isinstance(exc, threadkit.Cancelled)
    assert exc.reason == "caller gave up"
    return exc


def test_a_call_cancelled_before_its_request_started_never_runs(
    busy_worker: tuple[threadkit.ResourceWorker[dict[str, Any]], threading.Event],
) -> None:
    worker, release = busy_worker
    ran: list[str] = []
    _cancel_while_waiting(lambda: worker.call(lambda _: ran.append("withdrawn")))
    release.set()
    worker.call(lambda _: ran.append("later"))  # FIFO: the withdrawn one would run first
    assert ran == ["later"]


def test_a_call_cancelled_while_its_request_runs_lets_it_finish_and_drops_the_outcome() -> None:
    running = threading.Event()
    finish = threading.Event()
    finished: list[str] = []

    def request(_: object) -> str:
        running.set()
        finish.wait(WAIT)
        finished.append("done")
        return "dropped"

    with threadkit.ResourceWorker(dict, name="slow") as worker:
        task = InTask(lambda _: worker.call(request))
        assert running.wait(WAIT)
        task.token.cancel("caller gave up")
        how, exc = task.finish()
        assert (how, type(exc)) == ("raised", threadkit.Cancelled)
        finish.set()
        worker.call(lambda _: None)
    assert finished == ["done"]


@pytest.mark.parametrize("method", ["result", "exception"])
def test_waiting_for_a_worker_future_is_cancellable_and_leaves_the_request_queued(
    busy_worker: tuple[threadkit.ResourceWorker[dict[str, Any]], threading.Event],
    method: str,
) -> None:
    worker, release = busy_worker
    future = worker.submit(lambda _: "value")
    _cancel_while_waiting(getattr(future, method))
    release.set()
    assert future.result(WAIT) == "value"


@pytest.mark.parametrize("method", ["result", "exception", "join"])
def test_waiting_for_another_task_is_cancellable_and_leaves_that_task_running(
    method: str,
) -> None:
    release = threading.Event()
    other = threadkit.spawn(lambda: release.wait(WAIT) and "other")
    try:
        _cancel_while_waiting(getattr(other, method))
        assert not other.done()
    finally:
        release.set()
    assert other.result(WAIT) == "other"


def test_a_timed_wait_for_a_task_still_times_out_in_a_cancellable_thread() -> None:
    release = threading.Event()
    other = threadkit.spawn(release.wait, WAIT)
    try:
        task = InTask(lambda _: other.join(timeout=0.01))
        assert task.finish() == ("returned", False)
        task = InTask(lambda _: other.result(timeout=0.01))
        how, exc = task.finish()
        assert (how, type(exc)) == ("raised", TimeoutError)
    finally:
        release.set()
    assert other.result(WAIT) is True


# -- queue_get ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [queue.Queue, queue.LifoQueue, queue.PriorityQueue])
def test_queue_get_returns_an_item_that_is_put_while_it_waits(kind: type[queue.Queue[int]]) -> None:
    q = kind()
    task = InTask(lambda ready: (ready.set(), threadkit.queue_get(q))[1])
    assert task.about_to_wait.wait(WAIT)
    q.put(7)
    assert task.finish() == ("returned", 7)


def test_queue_get_raises_cancelled_and_takes_nothing() -> None:
    q: queue.Queue[int] = queue.Queue()
    _cancel_while_waiting(lambda: threadkit.queue_get(q))
    q.put(1)
    assert q.get_nowait() == 1


def test_queue_get_with_an_item_returns_it_even_when_cancelled() -> None:
    q: queue.Queue[int] = queue.Queue()
    q.put(1)
    token = threadkit.CancelToken()
    token.cancel()
    assert InTask(lambda _: threadkit.queue_get(q), token).finish() == ("returned", 1)


def test_queue_get_times_out_with_queue_empty() -> None:
    q: queue.Queue[int] = queue.Queue()
    how, exc = InTask(lambda _: threadkit.queue_get(q, timeout=0.01)).finish()
    assert (how, type(exc)) == ("raised", queue.Empty)
    with pytest.raises(queue.Empty):
        threadkit.queue_get(q, timeout=0)  # outside any task: q.get(timeout=0)


def test_queue_get_refuses_what_is_not_a_queue() -> None:
    with pytest.raises(TypeError, match=r"^queue_get\(\) needs a queue.Queue, got 'list'$"):
        threadkit.queue_get([])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^timeout must be >= 0, got -1$"):
        threadkit.queue_get(queue.Queue(), timeout=-1)


@settings(max_examples=25)
@given(consumers=st.integers(1, 4), data=st.data())
def test_cancels_racing_puts_never_lose_an_item(consumers: int, data: st.DataObject) -> None:
    cancelled = data.draw(st.sets(st.integers(0, consumers - 1)), label="cancelled")
    q: queue.Queue[int] = queue.Queue()
    tasks = [
        InTask(lambda ready: (ready.set(), threadkit.queue_get(q))[1]) for _ in range(consumers)
    ]
    for t in tasks:
        assert t.about_to_wait.wait(WAIT)
    _race(
        lambda: [q.put(i) for i in range(consumers)],
        *(lambda i=i: tasks[i].token.cancel() for i in sorted(cancelled)),
    )
    outcomes = [t.finish() for t in tasks]
    taken = [value for how, value in outcomes if how == "returned"]
    left = [q.get_nowait() for _ in range(q.qsize())]
    assert sorted(taken + left) == list(range(consumers))
    for i, (how, _) in enumerate(outcomes):
        assert how == "returned" or i in cancelled


# -- the contract over every face: cancels racing shutdowns ------------------------------


@settings(max_examples=20)
@given(face=st.sampled_from(sorted(LOCAL_FACES)), cancel_futures=st.booleans())
def test_a_cancelled_wait_for_a_future_racing_shutdown_loses_nothing(
    face: str, cancel_futures: bool
) -> None:
    ex = LOCAL_FACES[face]()
    try:
        gate = threading.Event()
        ran: list[int] = []
        ex.submit(gate.wait, WAIT)  # holds the owner thread: the next request is queued
        future = ex.submit(ran.append, 1)
        task = InTask(lambda ready: (ready.set(), future.result())[1])
        assert task.about_to_wait.wait(WAIT)
        _race(
            lambda: ex.shutdown(wait=False, cancel_futures=cancel_futures),
            task.token.cancel,
            gate.set,
        )
        how, value = task.finish()
        ex.shutdown(wait=True)
        assert future.done()
        # The request ran exactly when its future says it finished.
        assert ran == ([] if future.cancelled() else [1])
        if how == "returned":
            assert value is None
        else:
            assert isinstance(value, threadkit.Cancelled | CancelledError)
            assert isinstance(value, threadkit.Cancelled) or future.cancelled()
    finally:
        ex.forget()


def test_a_workers_close_waits_for_a_lock_although_shutdown_cancelled_the_token() -> None:
    lock = threadkit.Lock()
    closing = threading.Event()
    seen: list[object] = []

    def close(_: object) -> None:
        closing.set()
        seen.append(threadkit.current_token().cancelled)
        with lock:
            seen.append("closed")

    lock.acquire()
    worker = threadkit.ResourceWorker(dict, close=close, name="closing")
    worker.start()
    done = threading.Thread(target=worker.shutdown)
    done.start()
    assert closing.wait(WAIT)
    lock.release()
    done.join(WAIT)
    assert seen == [True, "closed"]


def test_a_request_waits_are_cancelled_by_the_workers_shutdown() -> None:
    lock = threadkit.Lock()
    lock.acquire()
    waiting = threading.Event()

    def request(_: object) -> None:
        waiting.set()
        with lock:
            pass

    with threadkit.ResourceWorker(dict, name="stopping") as worker:
        future = worker.submit(request)
        assert waiting.wait(WAIT)
    assert isinstance(future.exception(WAIT), threadkit.Cancelled)
    lock.release()


def _cond_wait_zero(cond: threadkit.Condition) -> bool:
    with cond:
        return cond.wait(0)


@pytest.mark.parametrize(
    ("make", "wait"),
    [
        (_lock, lambda x: x.acquire(timeout=0)),
        (_clock, lambda x: x.acquire(timeout=0)),
        (_rlock, lambda x: x.acquire(timeout=0)),
        (lambda: threadkit.Semaphore(0), lambda x: x.acquire(timeout=0)),
        (threadkit.Event, lambda x: x.wait(0)),
        (threadkit.Condition, _cond_wait_zero),
    ],
    ids=["Lock", "checked Lock", "RLock", "Semaphore", "Event", "Condition"],
)
def test_a_zero_timeout_does_not_wait_and_is_not_cancelled(
    make: Callable[[], Any], wait: Callable[[Any], object]
) -> None:
    obj = make()  # a lock is held by this thread, not by the task
    token = threadkit.CancelToken()
    token.cancel()
    assert InTask(lambda _: wait(obj), token).finish() == ("returned", False)
