"""One contract, every face: FIFO, exactly-once, shutdown, errors and leaks.

Each test takes the ``face`` fixture, a constructor from :data:`tests.faces.FACES`;
a new face runs the whole suite by adding one adapter there.  Tests of a
ResourceWorker-only call (``call``, ``post``, batches) say so in their name.

The lists and events a request touches come from ``ex.shared_list()`` and
``ex.shared_event()``, so that the same test runs on a face whose requests
run in another process (RayWorker); a test that needs more of this process
is marked ``same_process``.
"""

from __future__ import annotations

import concurrent.futures as cf
import gc
import itertools
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import threadkit

from .conftest import WAIT
from .faces import FACES, IN_PROCESS_FACES

Face = Callable[..., Any]


@pytest.fixture(
    params=[
        pytest.param(name, marks=() if FACES[name].same_process else pytest.mark.ray)
        for name in sorted(FACES)
    ]
)
def face(request: pytest.FixtureRequest) -> Iterator[Face]:
    if not FACES[request.param].same_process:
        if request.node.get_closest_marker("same_process"):
            pytest.skip("the test needs the request to run in this process")
        request.getfixturevalue("ray_cluster")
    made: list[Any] = []

    def make(**kwargs: Any) -> Any:
        ex = FACES[request.param](**kwargs)
        made.append(ex)
        return ex

    make.same_process = FACES[request.param].same_process  # type: ignore[attr-defined]
    yield make
    for ex in made:
        ex.forget()


def ends(fn: Callable[[], object], ex: Any = None) -> dict[str, Any]:
    """Run fn in a daemon thread; fail (without hanging the run) if it does not end in time.

    If it hangs and *ex* is given, the owner thread is sent a stop marker
    through the face's private core, so that the run can still exit.
    """
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["result"] = fn()
        except BaseException as exc:  # handed to the test through out
            out["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(WAIT)
    if t.is_alive() and ex is not None:
        core = getattr(getattr(ex, "worker", ex), "_core", None)
        if core is not None and hasattr(core, "put_stop"):
            core.put_stop()  # rescue only: the test fails below either way
    assert not t.is_alive(), f"{fn!r} hung"
    return out


# -- FIFO ---------------------------------------------------------------------------


def test_requests_of_one_producer_run_in_submission_order(face: Face) -> None:
    ex = face()
    ran = ex.shared_list()
    fs = [ex.submit(ran.append, i) for i in range(200)]
    ex.shutdown(wait=True)
    assert all(f.done() for f in fs)
    assert ran.snapshot() == list(range(200))


def test_a_request_submitted_after_another_returned_runs_after_it_across_producers(
    face: Face,
) -> None:
    ex = face()
    clock = itertools.count()  # next() on a count: atomic
    log = ex.shared_list()
    stamps: dict[tuple[int, int], tuple[int, int]] = {}
    start = threading.Barrier(4)

    def produce(p: int) -> None:
        start.wait(WAIT)
        for k in range(100):
            called = next(clock)
            ex.submit(log.append, (p, k))
            stamps[p, k] = (called, next(clock))

    producers = [threading.Thread(target=produce, args=(p,)) for p in range(4)]
    for t in producers:
        t.start()
    for t in producers:
        t.join(WAIT)
    ex.shutdown(wait=True)
    ran = [tuple(key) for key in log.snapshot()]
    assert sorted(ran) == sorted(stamps)
    position = {key: i for i, key in enumerate(ran)}
    for p in range(4):
        assert [k for q, k in ran if q == p] == list(range(100))
    by_return = sorted(stamps, key=lambda key: stamps[key][1])
    for a, b in itertools.pairwise(by_return):
        if stamps[a][1] < stamps[b][0]:  # a's submit returned before b's was called
            assert position[a] < position[b], f"{b} ran before {a}"


# -- exactly once ------------------------------------------------------------------------


def _race_shutdown(ex: Any, per_producer: int, producers: int, shutdown_after: int) -> None:
    log = ex.shared_list()
    accepted: dict[tuple[int, int], cf.Future[Any]] = {}
    refused: set[tuple[int, int]] = set()
    submitted = threading.Semaphore(0)
    start = threading.Barrier(producers + 1)

    def produce(p: int) -> None:
        start.wait(WAIT)
        for k in range(per_producer):
            try:
                accepted[p, k] = ex.submit(log.append, (p, k))
            except RuntimeError:
                refused.add((p, k))
            submitted.release()

    threads = [threading.Thread(target=produce, args=(p,)) for p in range(producers)]
    for t in threads:
        t.start()
    start.wait(WAIT)
    for _ in range(shutdown_after):
        assert submitted.acquire(timeout=WAIT)
    ex.shutdown(wait=True, cancel_futures=True)
    for t in threads:
        t.join(WAIT)
    ex.shutdown(wait=True)
    ran = [tuple(key) for key in log.snapshot()]
    assert len(ran) == len(set(ran)), "a request ran twice"
    for key, f in accepted.items():
        assert f.done(), f"{key} neither ran nor was cancelled"
        assert f.cancelled() != (key in ran), f"{key}: cancelled {f.cancelled()}, ran {key in ran}"
    assert not refused & set(ran), "a refused request ran"
    for p in range(producers):
        outcome = [
            "ran" if (p, k) in ran else "cancelled" if (p, k) in accepted else "refused"
            for k in range(per_producer)
        ]
        # Per producer: what was accepted (ran or cancelled), then what was
        # refused: once shutdown began, no request is accepted again.  Which of
        # the accepted ones ran is not ordered by more than the standard
        # library orders it: the owner thread may take a queued request while
        # shutdown(cancel_futures=True) drains the queue, as a
        # ThreadPoolExecutor's worker may, so a later request can run while an
        # earlier one was cancelled.
        accepted_first = ["refused" if o == "refused" else "accepted" for o in outcome]
        assert accepted_first == sorted(accepted_first), outcome


@given(
    producers=st.integers(1, 4),
    per_producer=st.integers(1, 30),
    shutdown_after=st.integers(0, 120),
)
def test_every_accepted_request_runs_once_or_is_cancelled_under_a_concurrent_shutdown(
    producers: int, per_producer: int, shutdown_after: int
) -> None:
    # The faces in this process only: a Ray actor per example would take minutes.
    for name in sorted(IN_PROCESS_FACES):
        ex = IN_PROCESS_FACES[name]()
        try:
            _race_shutdown(
                ex, per_producer, producers, min(shutdown_after, producers * per_producer)
            )
        finally:
            ex.forget()


def test_exactly_once_under_concurrent_shutdown_stress(face: Face) -> None:
    # Fewer, farther apart, for a face in another process: each round starts a process.
    step = 1 if face.same_process else 6  # type: ignore[attr-defined]
    for round_ in range(0, 30, step):
        _race_shutdown(face(), 50, 3, round_ * 5)


# -- shutdown ------------------------------------------------------------------------------


def test_shutdown_is_idempotent(face: Face) -> None:
    ex = face()
    ex.submit(int)
    for _ in range(3):
        ex.shutdown(wait=True)
        ex.shutdown(wait=False, cancel_futures=True)


def test_concurrent_shutdowns_all_return_after_the_owner_exited(face: Face) -> None:
    ex = face()
    gate = ex.shared_event()
    ex.submit(gate.wait, WAIT)
    outs: list[dict[str, Any]] = []
    threads = [threading.Thread(target=lambda: outs.append(ends(ex.shutdown))) for _ in range(4)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join(WAIT)
    assert [out for out in outs if "error" in out] == []
    assert len(outs) == 4
    assert not ex.same_process or not ex.owner.is_alive()


@pytest.mark.same_process
def test_shutdown_from_inside_a_request_does_not_hang(face: Face) -> None:
    ex = face()
    f = ex.submit(ex.shutdown)
    assert ends(lambda: f.result(WAIT)) == {"result": None}
    assert ends(ex.shutdown) == {"result": None}


@pytest.mark.parametrize("cancel_futures", [False, True])
def test_shutdown_with_wait_from_a_done_callback_does_not_hang(
    face: Face, cancel_futures: bool
) -> None:
    ex = face()
    gate = ex.shared_event()
    first = ex.submit(gate.wait, WAIT)
    called = threading.Event()

    def callback(_f: object) -> None:
        ex.shutdown(wait=True, cancel_futures=cancel_futures)
        called.set()

    first.add_done_callback(callback)
    later = ex.submit(int)
    gate.set()
    assert ends(lambda: called.wait(WAIT)) == {"result": True}
    assert ends(ex.shutdown) == {"result": None}
    assert later.done()


def test_shutdown_with_wait_from_the_callback_of_a_future_it_cancels_does_not_hang(
    face: Face,
) -> None:
    ex = face()
    gate = ex.shared_event()
    entered = ex.shared_event()

    def block() -> bool:
        entered.set()
        return bool(gate.wait(WAIT))

    ex.submit(block)
    queued = ex.submit(int)

    def callback(_f: object) -> None:
        gate.set()  # the inner shutdown waits for the running request: let it end
        ex.shutdown(wait=True)

    queued.add_done_callback(callback)
    assert entered.wait(WAIT)
    assert ends(lambda: ex.shutdown(wait=True, cancel_futures=True), ex) == {"result": None}
    assert queued.cancelled()


@pytest.mark.same_process
def test_shutdown_from_the_token_callback_does_not_hang(face: Face) -> None:
    ex = face()
    ex.token.on_cancel(ex.shutdown)
    ex.submit(int)
    assert ends(ex.shutdown, ex) == {"result": None}
    assert not ex.owner.is_alive()


def test_shutdown_racing_start_never_raises_and_closes_the_worker() -> None:
    for _ in range(200):
        w = threadkit.ResourceWorker(object)
        out: dict[str, Any] = {}
        starter = threading.Thread(target=lambda: out.update(ends(w.start)))  # noqa: B023
        starter.start()
        assert ends(w.shutdown) == {"result": None}
        starter.join(WAIT)
        if "error" in out:  # refused: shut down first is a legitimate outcome
            assert isinstance(out["error"], RuntimeError)
            assert "cannot join thread" not in str(out["error"])
        assert ends(w.shutdown) == {"result": None}
        assert w.thread is None or not w.thread.is_alive()


@pytest.mark.parametrize("interrupt", [SystemExit, KeyboardInterrupt])
def test_cancel_futures_cancels_every_queued_request_even_when_a_callback_raises_base_exception(
    face: Face, interrupt: type[BaseException]
) -> None:
    ex = face()
    gate = ex.shared_event()
    entered = ex.shared_event()
    ran = ex.shared_list()

    def block() -> bool:
        entered.set()
        return bool(gate.wait(WAIT))

    running = ex.submit(block)
    queued = [ex.submit(ran.append, i) for i in range(5)]

    def raising(_f: object) -> None:
        raise interrupt("callback")

    queued[1].add_done_callback(raising)
    assert entered.wait(WAIT)
    with pytest.raises(interrupt, match=r"^callback$"):
        ex.shutdown(wait=False, cancel_futures=True)
    gate.set()
    ex.shutdown(wait=True)
    assert running.result(0) is True
    assert ran.snapshot() == []
    assert [f.cancelled() for f in queued] == [True] * 5


# -- errors ---------------------------------------------------------------------------------


def test_a_request_that_raises_fails_only_its_own_future_with_the_same_exception(
    face: Face,
) -> None:
    ex = face()
    errors = [ValueError(i) for i in range(3)]

    def fail(exc: BaseException) -> None:
        raise exc

    fs = [ex.submit(fail, errors[0]), ex.submit(pow, 2, 3), ex.submit(fail, errors[1])]
    fs.append(ex.submit(fail, SystemExit(2)))
    fs.append(ex.submit(pow, 2, 4))
    ex.shutdown(wait=True)

    def same(exc: BaseException | None, expected: BaseException) -> bool:
        # In another process, a copy: the same type and arguments.
        if ex.same_process:
            return exc is expected
        return type(exc) is type(expected) and exc.args == expected.args

    assert same(fs[0].exception(0), errors[0])
    assert fs[1].result(0) == 8
    assert same(fs[2].exception(0), errors[1])
    assert type(fs[3].exception(0)) is SystemExit
    assert fs[4].result(0) == 16


def test_close_error_is_raised_by_the_first_waiting_shutdown_only() -> None:
    def close(_r: object) -> None:
        raise OSError("close failed")

    w = threadkit.ResourceWorker(object, close=close).start()
    with pytest.raises(OSError, match=r"^close failed$"):
        w.shutdown(wait=True)
    w.shutdown(wait=True)  # the error was delivered once already


# -- leaks -------------------------------------------------------------------------------------


class Marker:
    """Something weakly referenceable, to see when it is freed."""


@pytest.fixture
def no_gc() -> Iterator[None]:
    # Reference counting alone must free these; the cyclic GC would hide a cycle.
    gc.collect()
    gc.disable()
    yield
    gc.enable()


class Boom(Exception):
    """A request's failure, carrying a marker."""

    def __init__(self, marker: Marker) -> None:
        super().__init__("boom")
        self.marker = marker


def _raise_with(marker: Marker) -> None:
    raise Boom(marker)


def test_a_failed_request_frees_its_exception_and_arguments_once_read(
    face: Face, no_gc: None
) -> None:
    ex = face()
    arg = Marker()
    f = ex.submit(_raise_with, arg)
    exc = f.exception(WAIT)
    assert isinstance(exc, Boom)
    exc_ref, arg_ref = weakref.ref(exc), weakref.ref(arg)
    del exc, f, arg
    ex.shutdown(wait=True)
    assert arg_ref() is None, "the request's argument outlived its future"
    assert exc_ref() is None, "the request's exception outlived its future"


@pytest.mark.parametrize("how", ["call", "post", "batch"])
def test_a_failed_worker_request_frees_exception_arguments_and_resource(
    how: str, no_gc: None
) -> None:
    arg = Marker()
    hooked: list[BaseException] = []
    batching: dict[str, Any] = {"max_batch": 4, "end_batch": lambda _r: None}
    w = threadkit.ResourceWorker(
        Marker, error_hook=hooked.append, **(batching if how == "batch" else {})
    ).start()

    def fail(_r: object, marker: Marker) -> None:
        raise Boom(marker)

    resource_ref: weakref.ref[Marker] = w.call(weakref.ref)
    exc_ref: weakref.ref[BaseException]

    if how == "call":
        with pytest.raises(Boom) as info:
            w.call(fail, arg)
        exc_ref = weakref.ref(info.value)
        del info
    elif how == "post":
        w.post(fail, arg)
        w.shutdown(wait=True)
        exc_ref = weakref.ref(hooked.pop())
    else:
        f = w.submit(fail, arg)
        exc = f.exception(WAIT)
        assert exc is not None
        exc_ref = weakref.ref(exc)
        del exc, f
    w.shutdown(wait=True)
    arg_ref = weakref.ref(arg)
    del w, arg
    assert arg_ref() is None, "the request's argument outlived it"
    assert exc_ref() is None, "the request's exception outlived it"
    assert resource_ref() is None, "the resource outlived its dropped worker"
