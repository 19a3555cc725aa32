"""The engine under both faces: its lifecycle table and the defects of the first release.

Each defect test was written against the first release and failed there
(the interleavings are forced with events where they can be; the rest are
bounded stress loops that failed in most runs under ``THREADKIT_SWITCH_INTERVAL=1e-6``).
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import (
    ALL_COMPLETED,
    Future,
    ThreadPoolExecutor,
    as_completed,
    wait,
)
from typing import Any

import pytest

import threadkit
from threadkit import _engine, _waits
from threadkit._engine import TRANSITIONS, State, Step

from .conftest import WAIT

# -- the lifecycle table -------------------------------------------------------------


def test_every_state_and_step_pair_is_either_in_the_table_or_refused() -> None:
    core: _engine.Core[None] = _engine.Core("table", lambda: None)
    for state in State:
        for step in Step:
            core.state = state
            expected = TRANSITIONS.get((state, step))
            if expected is None:
                with pytest.raises(
                    RuntimeError,
                    match=rf"^threadkit bug: worker 'table' cannot {step.value} when "
                    rf"{state.value}$",
                ):
                    core._step(step)
                assert core.state is state
            else:
                assert core._step(step) is state
                assert core.state is expected


def test_the_table_in_the_module_docstring_is_the_table_in_the_code() -> None:
    doc = _engine.__doc__ or ""
    rows = set()
    for line in doc.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[2] == "->" and parts[0] in State.__members__:
            rows.add((State[parts[0]], Step[parts[1]], State[parts[3]]))
    table = {(s, e, t) for (s, e), t in TRANSITIONS.items() if e is not Step.FORKED}
    assert rows == table


def test_accepting_and_stopped_are_derived_from_the_state_by_every_step() -> None:
    for accept_early in (False, True):
        for (state, step), after in TRANSITIONS.items():
            core: _engine.Core[None] = _engine.Core("c", lambda: None, accept_early=accept_early)
            core.state = state
            core._step(step)
            accepting = after is State.RUNNING or (after is State.STARTING and accept_early)
            assert core.accepting is accepting
            assert core.stopped is (after in (State.CLOSING, State.CLOSED))


# -- the lock-free submit path ----------------------------------------------------------


@pytest.mark.parametrize("how", ["submit", "call", "post", "executor"])
def test_a_request_put_after_the_owner_stopped_is_refused_not_lost(how: str) -> None:
    # The producer passes the "accepting" check, then loses the CPU while
    # shutdown() runs to completion; its put lands in a mailbox nobody reads.
    # Without the reclaim after the put (the engine's module docstring), the
    # call would return and the request would neither run nor be cancelled.
    face: Any = (
        threadkit.SerialExecutor(name="x")
        if how == "executor"
        else threadkit.ResourceWorker(object, name="x").start()
    )
    at_put, go = threading.Event(), threading.Event()
    real_put = face._put

    def held_put(item: tuple[Any, ...]) -> None:
        at_put.set()  # past the accepting check
        assert go.wait(WAIT)
        real_put(item)

    face._put = held_put
    ran: list[int] = []
    out: list[object] = []

    def produce() -> None:
        try:
            if how == "executor":
                out.append(face.submit(ran.append, 1))
            else:
                out.append(getattr(face, how)(lambda _r: ran.append(1)))
        except threadkit.WorkerClosed as exc:
            out.append(exc)

    t = threading.Thread(target=produce)
    t.start()
    assert at_put.wait(WAIT)
    face.shutdown(wait=True)
    assert not face.thread.is_alive()
    go.set()
    t.join(WAIT)
    [outcome] = out
    assert isinstance(outcome, threadkit.WorkerClosed), outcome
    assert ran == []


# -- 1. wait() and as_completed() count each threadkit future once --------------------


def _faces() -> Iterator[
    tuple[str, Callable[[], Any], Callable[[Any, Callable[[], int]], Future[int]]]
]:
    yield "executor", threadkit.SerialExecutor, lambda ex, fn: ex.submit(fn)
    yield (
        "worker",
        lambda: threadkit.ResourceWorker(object).start(),
        lambda w, fn: w.submit(lambda _r: fn()),
    )


@pytest.mark.parametrize(("make", "submit"), [f[1:] for f in _faces()], ids=["executor", "worker"])
def test_wait_and_as_completed_count_each_of_200_futures_once(
    make: Callable[[], Any], submit: Callable[[Any, Callable[[], int]], Future[int]]
) -> None:
    # The first release published a result outside the Condition and
    # notified afterwards: wait() could count a future twice (returning
    # while another still ran) and as_completed() raised KeyError.
    face = make()
    try:
        for _ in range(40):
            fs = [submit(face, lambda i=i: i) for i in range(200)]  # type: ignore[misc]
            _, not_done = wait(fs, timeout=WAIT, return_when=ALL_COMPLETED)
            assert not not_done
            assert all(f.done() for f in fs)
            fs = [submit(face, lambda i=i: i) for i in range(200)]  # type: ignore[misc]
            seen = [f.result() for f in as_completed(fs, timeout=WAIT)]
            assert sorted(seen) == list(range(200))
    finally:
        face.shutdown()


# -- 2. no DeadlockError where no cycle exists -----------------------------------------


def test_a_worker_may_call_back_into_a_worker_whose_call_it_just_answered() -> None:
    # A's owner waits in B.call(f1); B finishes f1 and goes on with a request
    # that calls into A, usually before A's owner has woken up.  The first
    # release still saw the edge A -> B then and refused B -> A as a cycle.
    for _ in range(20):
        started, go = threading.Event(), threading.Event()
        with (
            threadkit.ResourceWorker(dict, name="A") as a,
            threadkit.ResourceWorker(dict, name="B") as b,
        ):

            def f1(_b: object, started: threading.Event = started, go: threading.Event = go) -> int:
                started.set()
                assert go.wait(WAIT)
                return 1

            fa = a.submit(lambda _a, b=b, f1=f1: b.call(f1))
            assert started.wait(WAIT)
            fb = b.submit(lambda _b, a=a: a.call(lambda _a: "g"))  # queued on B behind f1
            go.set()
            assert fa.result(WAIT) == 1
            assert fb.result(WAIT) == "g"


def test_an_edge_whose_wait_is_satisfied_is_not_followed() -> None:
    # The interleaving above, forced: thread X's wait for Y is satisfied
    # (its predicate holds) but X has not woken to withdraw its edge.
    y_ident: list[int] = []
    x_recorded, y_done = threading.Event(), threading.Event()
    satisfied = [False]
    out: list[BaseException | None] = []

    def x() -> None:
        _waits.wait_begins(y_ident[0], "x waits for y", lambda: satisfied[0])
        x_recorded.set()
        assert y_done.wait(WAIT)
        _waits.wait_ends()

    def y() -> None:
        y_ident.append(threading.get_ident())
        tx = threading.Thread(target=x)
        tx.start()
        assert x_recorded.wait(WAIT)
        try:
            with pytest.raises(threadkit.DeadlockError):
                _waits.wait_begins(tx.ident, "y waits for x")  # x waits for y: a cycle
            satisfied[0] = True  # y satisfies x's wait; x has not woken yet
            _waits.wait_begins(tx.ident, "y waits for x")  # no cycle any more
            _waits.wait_ends()
            out.append(None)
        except BaseException as exc:  # handed to the test
            out.append(exc)
        finally:
            y_done.set()
            tx.join(WAIT)

    ty = threading.Thread(target=y)
    ty.start()
    ty.join(WAIT)
    assert out == [None]


def test_the_same_program_on_thread_pools_returns_too() -> None:
    # The oracle for the test above.
    started, go = threading.Event(), threading.Event()
    with ThreadPoolExecutor(1) as a, ThreadPoolExecutor(1) as b:

        def f1() -> int:
            started.set()
            assert go.wait(WAIT)
            return 1

        fa = a.submit(lambda: b.submit(f1).result())
        assert started.wait(WAIT)
        fb = b.submit(lambda: a.submit(lambda: "g").result())
        go.set()
        assert fa.result(WAIT) == 1
        assert fb.result(WAIT) == "g"


def test_a_real_cycle_is_still_refused() -> None:
    entered = threading.Event()
    with (
        threadkit.ResourceWorker(dict, name="A") as a,
        threadkit.ResourceWorker(dict, name="B") as b,
    ):

        def in_b(_b: object) -> object:
            entered.set()
            # A's owner is blocked in b.call(): this could never return.
            return a.call(lambda _a: None)

        fa = a.submit(lambda _a: b.call(in_b))
        with pytest.raises(
            threadkit.DeadlockError,
            match=r"^call\(\) on worker 'A' would deadlock: worker 'B' -> worker 'A' -> "
            r"worker 'B' \(each waits for the next\)$",
        ):
            fa.result(WAIT)
        assert entered.is_set()


# -- 3. shutdown(cancel_futures=True) cancels everything queued ------------------------


@pytest.mark.parametrize("batching", [False, True], ids=["plain", "group-commit"])
def test_cancel_futures_cancels_every_queued_request_although_a_callback_raises(
    batching: bool,
) -> None:
    hooks: dict[str, Any] = {"end_batch": lambda _r: None, "max_batch": 4} if batching else {}
    ran: list[int] = []
    started, gate = threading.Event(), threading.Event()
    w = threadkit.ResourceWorker(object, **hooks).start()
    w.submit(lambda _r: (started.set(), gate.wait(WAIT)))
    assert started.wait(WAIT)
    fs = [w.submit(lambda _r, i=i: ran.append(i)) for i in range(6)]  # type: ignore[misc]

    def interrupt(_f: Future[Any]) -> None:
        raise KeyboardInterrupt

    fs[0].add_done_callback(interrupt)
    fs[2].add_done_callback(interrupt)
    with pytest.raises(KeyboardInterrupt):
        w.shutdown(wait=False, cancel_futures=True)
    assert all(f.cancelled() for f in fs)
    gate.set()
    w.shutdown()
    assert ran == []


# -- 4. failed requests are freed by reference counting --------------------------------


class _Thing:
    """Something a weakref can watch."""


class Boom(ValueError):
    """A failure a weakref can watch (builtin exceptions take no weakrefs)."""


def _fail(_r: object, arg: _Thing) -> None:
    raise Boom("no")


@pytest.mark.usefixtures("no_automatic_gc")
@pytest.mark.parametrize("how", ["submit", "call", "post", "batch", "executor"])
def test_a_failed_request_keeps_nothing_alive_once_its_outcome_is_dropped(how: str) -> None:
    resource, arg = _Thing(), _Thing()
    resource_ref, arg_ref = weakref.ref(resource), weakref.ref(arg)
    errors: list[str] = []
    hooks: dict[str, Any] = {"end_batch": lambda _r: None} if how == "batch" else {}
    face: Any
    if how == "executor":
        face = threadkit.SerialExecutor()
        future = face.submit(_fail, resource, arg)
    else:
        holder = [resource]
        face = threadkit.ResourceWorker(
            holder.pop, error_hook=lambda exc: errors.append(repr(exc)), **hooks
        ).start()
        future = None
        if how == "call":
            with pytest.raises(Boom, match=r"^no$"):
                face.call(_fail, arg)
        elif how == "post":
            face.post(_fail, arg)
        else:
            future = face.submit(_fail, arg)
    del resource, arg
    try:
        if future is not None:
            exc_ref = weakref.ref(future.exception(WAIT))
            with pytest.raises(Boom, match=r"^no$"):
                future.result()
            del future
            assert exc_ref() is None
    finally:
        face.shutdown()
    if how == "post":
        assert errors == ["Boom('no')"]
    assert arg_ref() is None
    del face
    assert resource_ref() is None


@pytest.mark.usefixtures("no_automatic_gc")
def test_a_failed_factory_keeps_nothing_alive_once_the_worker_is_dropped() -> None:
    def factory() -> object:
        raise Boom("no")

    w = threadkit.ResourceWorker(factory, name="broken")
    with pytest.raises(Boom) as info:
        w.start()
    exc_ref = weakref.ref(info.value)
    del info
    w_ref = weakref.ref(w)
    del w
    assert w_ref() is None
    assert exc_ref() is None


# -- 5. shutdown() from a callback does not hang ---------------------------------------


def _bounded(fn: Callable[[], object]) -> None:
    out: list[BaseException] = []

    def run() -> None:
        try:
            fn()
        except BaseException as exc:  # handed to the test
            out.append(exc)

    t = threading.Thread(target=run)
    t.start()
    t.join(WAIT)
    assert not t.is_alive(), "hung"
    if out:
        raise out[0]


@pytest.mark.parametrize("wait_in_callback", [True, False])
def test_shutdown_from_a_token_callback_returns(wait_in_callback: bool) -> None:
    w = threadkit.ResourceWorker(object).start()
    w.token.on_cancel(lambda: w.shutdown(wait=wait_in_callback))
    _bounded(w.shutdown)
    assert w.closed
    assert not w.running


def test_shutdown_from_the_done_callback_of_a_cancelled_future_returns() -> None:
    started, gate = threading.Event(), threading.Event()
    w = threadkit.ResourceWorker(object).start()
    w.submit(lambda _r: (started.set(), gate.wait(WAIT)))
    assert started.wait(WAIT)
    f = w.submit(lambda _r: None)
    f.add_done_callback(lambda _f: (gate.set(), w.shutdown()))
    _bounded(lambda: w.shutdown(cancel_futures=True))
    assert f.cancelled()


def test_shutdown_from_a_done_callback_in_the_owner_thread_returns() -> None:
    ex = threadkit.SerialExecutor()
    ex.submit(int).add_done_callback(lambda _f: ex.shutdown())
    _bounded(ex.shutdown)


# -- 6. shutdown() racing start() ------------------------------------------------------


def test_shutdown_racing_start_never_fails_and_always_closes() -> None:
    for _ in range(100):
        closed: list[object] = []
        w = threadkit.ResourceWorker(object, close=closed.append)
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []

        def start(
            w: threadkit.ResourceWorker[object] = w,
            barrier: threading.Barrier = barrier,
            errors: list[BaseException] = errors,
        ) -> None:
            barrier.wait(WAIT)
            try:
                w.start()
            except RuntimeError as exc:  # refused: shutdown() came first
                errors.append(exc)

        t = threading.Thread(target=start)
        t.start()
        barrier.wait(WAIT)
        w.shutdown()
        t.join(WAIT)
        assert not t.is_alive()
        assert all(str(e) == f"worker {w.name!r} can only be started once" for e in errors), errors
        assert w.closed
        # Either it never started (nothing to close) or it closed once.
        assert len(closed) == (0 if errors else 1)


# -- 10. smaller ones --------------------------------------------------------------------


def test_a_close_error_is_raised_once_not_by_every_later_shutdown() -> None:
    def close(_r: object) -> None:
        raise OSError("disk gone")

    w = threadkit.ResourceWorker(object, close=close).start()
    with pytest.raises(OSError, match=r"^disk gone$"):
        w.shutdown()
    w.shutdown()  # quiet: the error was delivered
    w.shutdown(wait=False)


def test_repr_and_pending_follow_the_lifecycle() -> None:
    w = threadkit.ResourceWorker(object, name="db")
    assert repr(w) == "<ResourceWorker 'db' new, 0 pending>"
    w.start()
    assert repr(w) == "<ResourceWorker 'db' running, 0 pending>"
    w.shutdown()
    assert repr(w) == "<ResourceWorker 'db' closed, 0 pending>"


def _fork_and_exit() -> int | None:
    ctx = multiprocessing.get_context("fork")
    p = ctx.Process(target=int)
    p.start()
    p.join(WAIT)
    return p.exitcode


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")
@pytest.mark.parametrize("face", ["worker", "executor"])
def test_a_process_forked_from_inside_a_request_exits_cleanly(face: str) -> None:
    # The child's exit hook used to join the inherited owner thread, which in
    # the child is the current thread: "cannot join current thread", status 1.
    if face == "executor":
        with threadkit.SerialExecutor() as ex:
            assert ex.submit(_fork_and_exit).result(WAIT) == 0
    else:
        with threadkit.ResourceWorker(object) as w:
            assert w.call(lambda _r: _fork_and_exit()) == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")
def test_in_a_forked_child_an_inherited_executor_names_the_fork() -> None:
    r, wfd = os.pipe()
    with threadkit.SerialExecutor(name="pool") as ex:
        ex.submit(int).result(WAIT)  # its thread starts with the first submit()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            try:
                ex.submit(int)
            except RuntimeError as exc:
                os.write(wfd, str(exc).encode())
            finally:
                os._exit(0)
        os.close(wfd)
        _, status = os.waitpid(pid, 0)
        message = os.read(r, 1000).decode()
        os.close(r)
    assert os.waitstatus_to_exitcode(status) == 0
    assert message == (
        "cannot submit to executor 'pool' in a forked child process: its owner thread "
        "exists only in the parent; create a new executor here"
    )
