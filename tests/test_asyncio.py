"""The asyncio bridge: acall() and asubmit() on real event loops."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from typing import Any

import pytest

import threadkit

from .conftest import WAIT


def identity(_r: object, value: Any) -> Any:
    return value


def test_import_threadkit_does_not_import_asyncio_until_acall_needs_it() -> None:
    # In a child interpreter: this one imported asyncio long ago.
    body = (
        "import sys, threadkit\n"
        "print('asyncio' in sys.modules)\n"
        "async def main(w):\n"
        "    return await w.acall(len)\n"
        "with threadkit.ResourceWorker(list) as w:\n"
        "    import asyncio\n"
        "    print(asyncio.run(main(w)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", body], capture_output=True, text=True, timeout=WAIT, check=False
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "False\n0\n", "")


def test_acall_returns_the_result_and_reraises_the_exception() -> None:
    def boom(_r: object) -> None:
        raise LookupError("nope")

    async def main(w: threadkit.ResourceWorker[object]) -> Any:
        value = await w.acall(identity, 42)
        with pytest.raises(LookupError, match="nope"):
            await w.acall(boom)
        return value

    with threadkit.ResourceWorker(object) as w:
        assert asyncio.run(main(w)) == 42


def test_the_event_loop_keeps_running_while_a_request_waits() -> None:
    # The request can only finish after a coroutine on the same loop ran:
    # if acall() blocked the loop, this would never complete.
    async def main(w: threadkit.ResourceWorker[object]) -> bool:
        unblock = threading.Event()
        pending = asyncio.ensure_future(w.acall(lambda _r: unblock.wait(WAIT)))
        await asyncio.sleep(0)
        unblock.set()
        return await asyncio.wait_for(pending, WAIT)

    with threadkit.ResourceWorker(object) as w:
        assert asyncio.run(main(w)) is True


def test_cancelling_acall_before_the_request_starts_withdraws_it() -> None:
    ran: list[str] = []

    async def main(w: threadkit.ResourceWorker[object], release: threading.Event) -> None:
        task = asyncio.ensure_future(w.acall(lambda _r: ran.append("late")))
        await asyncio.sleep(0)  # one loop turn: the task has queued its request
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        release.set()

    with threadkit.ResourceWorker(object) as w:
        started, release = threading.Event(), threading.Event()
        w.submit(lambda _r: (started.set(), release.wait(WAIT)))
        assert started.wait(WAIT)
        asyncio.run(main(w, release))
        w.call(lambda _r: None)  # every earlier request has been dealt with
    assert ran == []


def test_cancelling_an_asubmit_future_withdraws_the_request_at_the_next_loop_turn() -> None:
    ran: list[str] = []

    async def main(w: threadkit.ResourceWorker[object], release: threading.Event) -> None:
        fut = w.asubmit(lambda _r: ran.append("late"))
        fut.cancel()
        await asyncio.sleep(0)  # asyncio passes the cancellation on in this turn
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await fut

    with threadkit.ResourceWorker(object) as w:
        started, release = threading.Event(), threading.Event()
        w.submit(lambda _r: (started.set(), release.wait(WAIT)))
        assert started.wait(WAIT)
        asyncio.run(main(w, release))
        w.call(lambda _r: None)
    assert ran == []


def test_cancelling_a_started_request_lets_it_finish_in_the_owner_thread() -> None:
    finished = threading.Event()

    async def main(w: threadkit.ResourceWorker[object]) -> None:
        started, release = threading.Event(), threading.Event()

        def slow(_r: object) -> str:
            started.set()
            release.wait(WAIT)
            finished.set()
            return "done"

        task = asyncio.ensure_future(w.acall(slow))
        assert await asyncio.to_thread(started.wait, WAIT)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        release.set()

    with threadkit.ResourceWorker(object) as w:
        asyncio.run(main(w))
    assert finished.is_set()


def test_event_loops_in_several_threads_share_one_worker() -> None:
    results: dict[int, list[int]] = {}

    async def client(w: threadkit.ResourceWorker[list[int]], k: int) -> list[int]:
        return [await w.acall(lambda log, i: (log.append(i), i)[1], k * 100 + i) for i in range(20)]

    def run_loop(w: threadkit.ResourceWorker[list[int]], k: int) -> None:
        results[k] = asyncio.run(client(w, k))

    with threadkit.ResourceWorker(list) as w:
        threads = [threading.Thread(target=run_loop, args=(w, k)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT)
        log = w.call(list)
    assert results == {k: [k * 100 + i for i in range(20)] for k in range(4)}
    for k in range(4):
        assert [v for v in log if v // 100 == k] == results[k]


def test_asubmit_outside_an_event_loop_raises_runtime_error() -> None:
    with (
        threadkit.ResourceWorker(object) as w,
        pytest.raises(RuntimeError, match="no running event loop"),
    ):
        w.asubmit(identity, 1)
