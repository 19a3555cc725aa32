"""LazyFuture: a real concurrent.futures.Future whose Condition is made on first use.

These tests race settling against every way of waiting for a future, and
running against cancelling: a lost wake-up shows up as a bounded wait that
times out, a double or missing callback as a wrong count.  The last ones
force the interleavings the publishing protocol exists for.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import concurrent.futures._base as cf_base
import threading
from collections.abc import Callable
from typing import Any

import pytest

import threadkit
from threadkit._future import LazyFuture

from .conftest import WAIT

ROUNDS = 200


def wait_result(f: LazyFuture[int]) -> object:
    return f.result(WAIT)


def wait_exception(f: LazyFuture[int]) -> object:
    return f.exception(WAIT)


def wait_wait(f: LazyFuture[int]) -> object:
    done, _ = cf.wait([f], WAIT)
    return f.result(0) if f in done else "timed out"


def wait_as_completed(f: LazyFuture[int]) -> object:
    return next(cf.as_completed([f], WAIT)).result(0)


def wait_first_completed(f: LazyFuture[int]) -> object:
    done, _ = cf.wait([f], WAIT, return_when=cf.FIRST_COMPLETED)
    return f.result(0) if f in done else "timed out"


WAYS: list[Callable[[LazyFuture[int]], object]] = [
    wait_result,
    wait_wait,
    wait_as_completed,
    wait_first_completed,
]


@pytest.mark.parametrize("way", WAYS, ids=lambda w: w.__name__)
def test_a_waiter_racing_the_owner_never_misses_the_result(
    way: Callable[[LazyFuture[int]], object],
) -> None:
    for i in range(ROUNDS):
        f: LazyFuture[int] = LazyFuture()
        assert f.set_running_or_notify_cancel()
        go = threading.Barrier(2, timeout=WAIT)
        got: list[object] = []

        def waiter(
            f: LazyFuture[int] = f, go: threading.Barrier = go, got: list[object] = got
        ) -> None:
            go.wait()
            got.append(way(f))

        t = threading.Thread(target=waiter)
        t.start()
        go.wait()
        f.set_result(i)
        t.join(WAIT)
        assert got == [i]


def test_an_exception_reaches_a_waiter_racing_the_owner() -> None:
    for _ in range(ROUNDS):
        f: LazyFuture[int] = LazyFuture()
        assert f.set_running_or_notify_cancel()
        go = threading.Barrier(2, timeout=WAIT)
        err = ValueError("x")
        got: list[object] = []

        def waiter(
            f: LazyFuture[int] = f, go: threading.Barrier = go, got: list[object] = got
        ) -> None:
            go.wait()
            got.append(f.exception(WAIT))

        t = threading.Thread(target=waiter)
        t.start()
        go.wait()
        f.set_exception(err)
        t.join(WAIT)
        assert got == [err]
        with pytest.raises(ValueError, match="x"):
            f.result(0)


def test_a_done_callback_added_while_the_owner_settles_runs_exactly_once() -> None:
    for i in range(ROUNDS):
        f: LazyFuture[int] = LazyFuture()
        assert f.set_running_or_notify_cancel()
        go = threading.Barrier(2, timeout=WAIT)
        calls: list[Any] = []

        def adder(
            f: LazyFuture[int] = f, go: threading.Barrier = go, calls: list[Any] = calls
        ) -> None:
            go.wait()
            f.add_done_callback(calls.append)

        t = threading.Thread(target=adder)
        t.start()
        go.wait()
        f.set_result(i)
        t.join(WAIT)
        assert calls == [f]
        assert f.result(0) == i


def test_running_and_cancelling_exclude_each_other() -> None:
    outcomes = {"ran": 0, "cancelled": 0}
    for i in range(ROUNDS):
        f: LazyFuture[int] = LazyFuture()
        go = threading.Barrier(2, timeout=WAIT)
        cancel_said: list[bool] = []

        def canceller(
            f: LazyFuture[int] = f,
            go: threading.Barrier = go,
            cancel_said: list[bool] = cancel_said,
        ) -> None:
            go.wait()
            cancel_said.append(f.cancel())

        t = threading.Thread(target=canceller)
        t.start()
        go.wait()
        ran = f.set_running_or_notify_cancel()
        if ran:
            f.set_result(i)
        t.join(WAIT)
        assert cancel_said == [not ran]
        done, _ = cf.wait([f], WAIT)
        assert f in done
        if ran:
            assert f.result(0) == i
            outcomes["ran"] += 1
        else:
            assert f.cancelled()
            with pytest.raises(cf.CancelledError):
                f.result(0)
            outcomes["cancelled"] += 1
    assert sum(outcomes.values()) == ROUNDS


def test_cancelling_a_pending_future_wakes_its_waiters_and_callbacks() -> None:
    f: LazyFuture[int] = LazyFuture()
    seen: list[bool] = []
    f.add_done_callback(lambda fut: seen.append(fut.cancelled()))
    assert f.cancel()
    assert f.cancel()  # idempotent, as for a stock Future
    assert not f.set_running_or_notify_cancel()
    assert seen == [True]
    assert f.done()
    assert f.cancelled()
    assert not f.running()


def test_a_finished_future_cannot_be_cancelled_or_settled_again() -> None:
    f: LazyFuture[int] = LazyFuture()
    assert f.set_running_or_notify_cancel()
    assert f.running()
    f.set_result(1)
    assert not f.cancel()
    with pytest.raises(cf.InvalidStateError):
        f.set_result(2)
    assert f.result() == 1


def test_a_lazy_future_works_with_asyncio_wrap_future() -> None:
    f: LazyFuture[str] = LazyFuture()

    async def main() -> str:
        wrapped = asyncio.wrap_future(f)
        assert f.set_running_or_notify_cancel()
        threading.Thread(target=f.set_result, args=("hi",)).start()
        return await asyncio.wait_for(wrapped, WAIT)

    assert asyncio.run(main()) == "hi"


def test_a_lazy_future_settled_by_hand_behaves_like_a_stock_future() -> None:
    # Unit-test style use, without set_running_or_notify_cancel().
    f: LazyFuture[int] = LazyFuture()
    f.set_result(5)
    assert f.result() == 5
    g: LazyFuture[int] = LazyFuture()
    g.set_exception(KeyError("k"))
    assert isinstance(g.exception(), KeyError)
    assert "finished raised KeyError" in repr(g)


def test_a_cancelled_future_already_noticed_is_not_run_and_does_not_raise() -> None:
    # threadkit withdraws a request by cancel() + set_running_or_notify_cancel()
    # while it may still sit in the mailbox; the owner thread meets it later.
    f: LazyFuture[int] = LazyFuture()
    assert f.cancel()
    assert not f.set_running_or_notify_cancel()
    assert not f.set_running_or_notify_cancel()
    assert f.cancelled()


class _SpyCondition(threading.Condition):
    """Sets ``others_enter`` when a thread other than its creator starts to enter it."""

    def __init__(self) -> None:
        super().__init__()
        self.creator = threading.get_ident()
        self.others_enter = threading.Event()

    def __enter__(self) -> bool:
        if threading.get_ident() != self.creator:
            self.others_enter.set()
        return super().__enter__()


def test_the_state_never_changes_under_a_condition_that_wait_holds() -> None:
    # concurrent.futures.wait() holds each future's Condition while it reads
    # _state twice (the done set, then the waiter's pending count).  The
    # first release wrote FINISHED before taking the Condition: the two reads
    # disagreed, the waiter's count went to -1, and wait() hung for ever.
    with threadkit.SerialExecutor() as ex:
        started, gate = threading.Event(), threading.Event()
        f = ex.submit(lambda: (started.set(), gate.wait(WAIT)))
        assert started.wait(WAIT)
        spy = _SpyCondition()
        f.__dict__["_condition"] = spy  # made by this thread, as wait() would
        with f._condition:
            assert f._state == cf_base.RUNNING
            gate.set()
            assert spy.others_enter.wait(WAIT)  # the owner is publishing
            assert f._state == cf_base.RUNNING
            waiter = cf_base._create_and_install_waiters({f}, cf.ALL_COMPLETED)
        assert waiter.event.wait(WAIT)
        assert waiter.num_pending_calls == 0


def test_a_future_settled_before_anyone_waited_is_counted_once() -> None:
    # The other half of the protocol: no Condition existed when the owner
    # published, so whoever creates it afterwards finds the state final.
    with threadkit.SerialExecutor() as ex:
        f = ex.submit(int)
        fs = [f, *(ex.submit(int) for _ in range(50))]
        done, not_done = cf.wait(fs, WAIT)
        assert done == set(fs)
        assert not not_done
        assert "_condition" in f.__dict__
        assert [g.result(0) for g in cf.as_completed(fs, WAIT)] == [0] * 51
