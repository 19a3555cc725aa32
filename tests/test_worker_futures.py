"""The futures submit() returns are real concurrent.futures.Future instances."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import logging
import threading
from typing import Any

import pytest

from threadkit import ResourceWorker

from .conftest import WAIT
from .worker_helpers import Gate


class Boom(Exception):
    pass


def boom(r: object) -> None:
    raise Boom("no")


@pytest.fixture
def held() -> Any:
    """A started worker whose owner thread is held by a gate (opened at teardown)."""
    w = ResourceWorker(lambda: None).start()
    gate = Gate()
    w.submit(gate)
    gate.wait_entered()
    yield w, gate
    gate.open()
    w.shutdown()


def test_submit_returns_a_concurrent_futures_future() -> None:
    with ResourceWorker(lambda: 1) as w:
        f = w.submit(lambda r: r)
        assert isinstance(f, cf.Future)
        assert f.result(WAIT) == 1
        assert not f.running()
        assert f.done()
        assert "finished" in repr(f)


def test_concurrent_futures_wait_sees_pending_and_then_finished_futures(held: Any) -> None:
    w, gate = held
    fs = [w.submit(lambda r, i=i: i) for i in range(5)] + [w.submit(boom)]
    done, not_done = cf.wait(fs, timeout=0)
    assert (done, not_done) == (set(), set(fs))
    gate.open()
    done, not_done = cf.wait(fs, timeout=WAIT)
    assert (done, not_done) == (set(fs), set())
    # And on futures that were finished before wait() began.
    done, _ = cf.wait(fs, timeout=WAIT, return_when=cf.ALL_COMPLETED)
    assert done == set(fs)


def test_concurrent_futures_wait_first_completed_and_first_exception(held: Any) -> None:
    w, gate = held
    first = w.submit(lambda r: "first")
    failing = w.submit(boom)
    never: cf.Future[None] = cf.Future()  # completes only when the test says so
    gate.open()
    done, not_done = cf.wait([never, first], timeout=WAIT, return_when=cf.FIRST_COMPLETED)
    assert (done, not_done) == ({first}, {never})
    done, not_done = cf.wait([never, failing], timeout=WAIT, return_when=cf.FIRST_EXCEPTION)
    assert (done, not_done) == ({failing}, {never})


def test_as_completed_yields_every_future_as_it_finishes(held: Any) -> None:
    w, gate = held
    fs = [w.submit(lambda r, i=i: i) for i in range(10)]
    waiting = cf.as_completed(fs, timeout=WAIT)
    gate.open()
    assert sorted(f.result() for f in waiting) == list(range(10))


def test_asyncio_wrap_future_awaits_results_and_exceptions_in_a_real_event_loop() -> None:
    with ResourceWorker(lambda: 20) as w:

        async def main() -> tuple[int, BaseException | None]:
            value = await asyncio.wait_for(asyncio.wrap_future(w.submit(lambda r: r + 1)), WAIT)
            try:
                await asyncio.wait_for(asyncio.wrap_future(w.submit(boom)), WAIT)
            except Boom as exc:
                return value, exc
            return value, None

        value, exc = asyncio.run(main())
        assert value == 21
        assert isinstance(exc, Boom)


def test_cancelling_the_asyncio_side_withdraws_a_request_that_has_not_started(held: Any) -> None:
    w, gate = held
    ran: list[int] = []
    f = w.submit(lambda r: ran.append(1))

    async def main() -> None:
        wrapped = asyncio.wrap_future(f)
        wrapped.cancel()
        with pytest.raises(asyncio.CancelledError):
            await wrapped

    asyncio.run(main())
    assert f.cancelled()
    gate.open()
    w.call(lambda r: None)
    assert ran == []


def test_a_done_callback_added_before_completion_runs_once_in_the_owner_thread(held: Any) -> None:
    w, gate = held
    calls: list[tuple[cf.Future[int], threading.Thread]] = []
    f = w.submit(lambda r: 5)
    f.add_done_callback(lambda fut: calls.append((fut, threading.current_thread())))
    assert calls == []
    gate.open()
    assert f.result(WAIT) == 5
    w.call(lambda r: None)  # the callback ran before the next request
    assert calls == [(f, w.thread)]


def test_a_done_callback_added_after_completion_runs_at_once_in_the_adding_thread() -> None:
    with ResourceWorker(lambda: None) as w:
        f = w.submit(lambda r: 5)
        f.result(WAIT)
        calls: list[threading.Thread] = []
        f.add_done_callback(lambda fut: calls.append(threading.current_thread()))
        assert calls == [threading.current_thread()]


def test_a_done_callback_on_a_cancelled_future_runs(held: Any) -> None:
    w, _ = held
    f = w.submit(lambda r: None)
    calls: list[bool] = []
    f.add_done_callback(lambda fut: calls.append(fut.cancelled()))
    assert f.cancel()
    assert calls == [True]


def test_a_raising_done_callback_is_logged_by_concurrent_futures_and_the_worker_goes_on(
    caplog: pytest.LogCaptureFixture, held: Any
) -> None:
    caplog.set_level(logging.ERROR, logger="concurrent.futures")
    w, gate = held
    f = w.submit(lambda r: 5)

    def bad_callback(fut: cf.Future[int]) -> None:
        raise Boom("callback")

    f.add_done_callback(bad_callback)
    gate.open()
    assert f.result(WAIT) == 5
    assert w.call(lambda r: "alive") == "alive"
    [record] = [r for r in caplog.records if r.name == "concurrent.futures"]
    assert record.getMessage().startswith("exception calling callback for")
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], Boom)


def test_result_with_a_timeout_is_the_documented_call_with_a_timeout(held: Any) -> None:
    w, gate = held
    ran: list[int] = []
    f = w.submit(lambda r: ran.append(1))
    with pytest.raises(TimeoutError):
        f.result(timeout=0.01)
    # The request stays queued; cancel() withdraws it.
    assert f.cancel()
    gate.open()
    w.call(lambda r: None)
    assert ran == []


def test_result_waiters_in_many_threads_all_wake(held: Any) -> None:
    w, gate = held
    f = w.submit(lambda r: "v")
    results: list[str] = []
    barrier = threading.Barrier(5)

    def waiter() -> None:
        barrier.wait(WAIT)
        results.append(f.result(WAIT))

    threads = [threading.Thread(target=waiter) for _ in range(4)]
    for t in threads:
        t.start()
    barrier.wait(WAIT)
    gate.open()
    for t in threads:
        t.join(WAIT)
    assert results == ["v"] * 4
