"""Group commit: begin_batch / end_batch around ready requests."""

from __future__ import annotations

import concurrent.futures as cf
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import threadkit

from .conftest import WAIT


class Log:
    """A resource that records the batches the owner thread ran."""

    def __init__(self) -> None:
        self.batches: list[list[object]] = []
        self.current: list[object] | None = None

    def begin(self) -> None:
        assert self.current is None
        self.current = []

    def end(self) -> None:
        assert self.current is not None
        self.batches.append(self.current)
        self.current = None

    def run(self, value: object) -> object:
        assert self.current is not None, "request ran outside a batch"
        self.current.append(value)
        return value


def batching_worker(log: Log, **kwargs: Any) -> threadkit.ResourceWorker[Log]:
    return threadkit.ResourceWorker(
        lambda: log,
        begin_batch=lambda r: r.begin(),
        end_batch=lambda r: r.end(),
        **kwargs,
    )


@pytest.fixture
def held() -> Iterator[Callable[[threadkit.ResourceWorker[Log]], threading.Event]]:
    """Block a worker's owner thread so that the requests queued next are all ready at once."""
    releases: list[threading.Event] = []

    def hold(worker: threadkit.ResourceWorker[Log]) -> threading.Event:
        started, release = threading.Event(), threading.Event()
        releases.append(release)

        def block(log: Log) -> None:
            started.set()
            assert release.wait(WAIT)

        worker.submit(block)
        assert started.wait(WAIT)
        return release

    yield hold
    for release in releases:
        release.set()


def test_ready_requests_run_in_one_batch_and_resolve_after_end_batch(held: Any) -> None:
    log = Log()
    unresolved_at_end: list[int] = []
    futures: list[cf.Future[object]] = []

    def end(r: Log) -> None:
        unresolved_at_end.append(sum(not f.done() for f in futures))
        r.end()

    with threadkit.ResourceWorker(
        lambda: log, begin_batch=lambda r: r.begin(), end_batch=end, max_batch=100
    ) as w:
        release = held(w)
        futures.extend(w.submit(Log.run, i) for i in range(10))
        release.set()
        assert [f.result(WAIT) for f in futures] == list(range(10))
    assert log.batches[-1] == list(range(10))
    # When end_batch ran, none of the batch's futures had resolved yet.
    assert unresolved_at_end[-1] == 10


def test_batches_are_cut_at_max_batch(held: Any) -> None:
    log = Log()
    with batching_worker(log, max_batch=4) as w:
        release = held(w)
        futures = [w.submit(Log.run, i) for i in range(10)]
        release.set()
        cf.wait(futures, WAIT)
    assert log.batches[1:] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_an_idle_worker_commits_a_lone_request_at_once() -> None:
    log = Log()
    with batching_worker(log, max_batch=100) as w:
        assert w.call(Log.run, "only") == "only"
        # The batch ended before call() returned: it did not wait for company.
        assert log.batches == [["only"]]


@given(st.lists(st.integers(), max_size=40), st.integers(1, 8))
def test_batching_keeps_fifo_order_and_never_exceeds_max_batch(
    values: list[int], max_batch: int
) -> None:
    log = Log()
    with batching_worker(log, max_batch=max_batch) as w:
        futures = [w.submit(Log.run, v) for v in values]
        cf.wait(futures, WAIT)
    assert [v for batch in log.batches for v in batch] == values
    assert all(1 <= len(batch) <= max_batch for batch in log.batches)


def test_a_failing_end_batch_fails_every_request_of_the_batch_and_the_worker_goes_on(
    held: Any,
) -> None:
    log = Log()
    commit_error = OSError("disk full")

    def end(r: Log) -> None:
        r.end()
        if 1 in r.batches[-1]:
            raise commit_error

    def boom(r: Log) -> None:
        r.run("boom")
        raise KeyError("own")

    with threadkit.ResourceWorker(
        lambda: log, begin_batch=lambda r: r.begin(), end_batch=end, max_batch=10
    ) as w:
        release = held(w)
        ok = w.submit(Log.run, 1)
        own = w.submit(boom)
        release.set()
        with pytest.raises(threadkit.BatchError) as info:
            ok.result(WAIT)
        assert info.value.__cause__ is commit_error
        assert str(info.value) == (f"end_batch() of worker {w.name!r} failed: OSError('disk full')")
        # A request that failed on its own keeps its own exception.
        with pytest.raises(KeyError, match="own"):
            own.result(WAIT)
        assert w.call(Log.run, 2) == 2


def test_a_failing_begin_batch_runs_no_request_of_the_batch(held: Any) -> None:
    log = Log()
    fail = threading.Event()

    def begin(r: Log) -> None:
        if fail.is_set():
            fail.clear()
            raise OSError("locked")
        r.begin()

    with threadkit.ResourceWorker(
        lambda: log, begin_batch=begin, end_batch=lambda r: r.end(), max_batch=10
    ) as w:
        release = held(w)
        futures = [w.submit(Log.run, i) for i in range(3)]
        fail.set()
        release.set()
        for f in futures:
            with pytest.raises(threadkit.BatchError, match=r"^begin_batch\(\) of worker"):
                f.result(WAIT)
        assert w.call(Log.run, "after") == "after"
    assert [0, 1, 2] not in log.batches
    assert log.batches[-1] == ["after"]


def test_a_request_that_raises_fails_only_itself_within_a_batch(held: Any) -> None:
    log = Log()

    def boom(r: Log) -> None:
        raise ValueError("mine")

    with batching_worker(log, max_batch=10) as w:
        release = held(w)
        a, b, c = w.submit(Log.run, "a"), w.submit(boom), w.submit(Log.run, "c")
        release.set()
        assert a.result(WAIT) == "a"
        assert c.result(WAIT) == "c"
        with pytest.raises(ValueError, match="mine"):
            b.result(WAIT)
    assert log.batches[-1] == ["a", "c"]


def test_a_post_in_a_failed_batch_reaches_the_error_hook(held: Any) -> None:
    log = Log()
    reported: list[BaseException] = []

    def end(r: Log) -> None:
        r.end()
        raise OSError("commit failed")

    w = threadkit.ResourceWorker(
        lambda: log,
        begin_batch=lambda r: r.begin(),
        end_batch=end,
        max_batch=10,
        error_hook=reported.append,
    )
    with w:
        w.post(Log.run, "p")
    assert len(reported) == 1
    assert isinstance(reported[0], threadkit.BatchError)
    assert isinstance(reported[0].__cause__, OSError)


def test_the_subclass_form_can_define_the_batch_hooks() -> None:
    class Journal(threadkit.ResourceWorker[Log]):
        def on_open(self) -> Log:
            return Log()

        def on_begin_batch(self, resource: Log) -> None:
            resource.begin()

        def on_end_batch(self, resource: Log) -> None:
            resource.end()

    with Journal(max_batch=5) as j:
        assert j.call(Log.run, 1) == 1
        assert j.call(lambda r: list(r.batches)) == [[1]]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"max_batch": 0}, ValueError, r"^max_batch must be >= 1, got 0$"),
        ({"max_batch": 2.0}, TypeError, r"^max_batch must be an int, got 'float'$"),
        ({"begin_batch": "BEGIN"}, TypeError, r"^begin_batch must be callable, got 'str'$"),
        ({"end_batch": 1}, TypeError, r"^end_batch must be callable, got 'int'$"),
    ],
)
def test_bad_batch_arguments_are_refused_at_construction(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        threadkit.ResourceWorker(object, **kwargs)
