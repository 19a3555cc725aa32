"""threadkit.ray.RayWorker: what differs from the in-process worker, and what crosses processes.

The guarantees shared with ResourceWorker and SerialExecutor (FIFO, exactly
once under shutdown, shutdown from callbacks) run in tests/test_contract.py.
Every test here but the first two needs Ray and is skipped without it, unless
``THREADKIT_REQUIRE_RAY=1`` (the ``ray`` nox session), which makes a missing
Ray an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import re
import runpy
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError, Future
from pathlib import Path
from typing import Any, TypeVar

import pytest

import threadkit

from .conftest import WAIT
from .faces import RAY, RemoteEvent, RemoteList

F = TypeVar("F", bound=Callable[..., Any])


def needs_ray(test: F) -> F:
    marked = pytest.mark.ray(
        pytest.mark.skipif(not RAY, reason="ray is not installed (pip install 'threadkit[ray]')")(
            test
        )
    )
    return pytest.mark.usefixtures("ray_cluster")(marked)  # type: ignore[no-any-return]


@contextlib.contextmanager
def raises_remote(error: type[BaseException], message: str) -> Iterator[Any]:
    """``pytest.raises(error, match=...)`` for an exception from the actor.

    ``match`` also searches the notes, and a remote exception carries its
    traceback as one: the message is compared on its own, exactly.
    """
    with pytest.raises(error) as info:
        yield info
    assert str(info.value) == message


def _child(source: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(source)],
        capture_output=True,
        text=True,
        timeout=6 * WAIT,
        check=False,
        env={**os.environ, **env},
    )


# -- without Ray --------------------------------------------------------------------------


def test_importing_threadkit_or_threadkit_ray_never_imports_ray() -> None:
    out = _child(
        """
        import sys
        import threadkit
        import threadkit.ray
        w = threadkit.ray.RayWorker(dict, name="w")
        print("ray" in sys.modules)
        """
    )
    assert (out.returncode, out.stdout, out.stderr) == (0, "False\n", "")


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"factory": 1}, TypeError, r"^factory must be callable, got 'int'$"),
        ({"close": 1}, TypeError, r"^close must be callable, got 'int'$"),
        ({"error_hook": 1}, TypeError, r"^error_hook must be callable, got 'int'$"),
        ({"name": 1}, TypeError, r"^name must be a str or None, got 'int'$"),
        ({"maxsize": -1}, ValueError, r"^maxsize must be >= 0, got -1$"),
        ({"maxsize": 1.5}, TypeError, r"^maxsize must be an int, got 'float'$"),
        ({"put_timeout": 1}, ValueError, r"^put_timeout needs a bounded mailbox \(maxsize > 0\)$"),
    ],
)
def test_bad_arguments_are_refused_with_the_in_process_workers_words(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    from threadkit.ray import RayWorker  # noqa: PLC0415

    kwargs = {"factory": dict, **kwargs}
    with pytest.raises(error, match=message):
        RayWorker(kwargs.pop("factory"), **kwargs)


def test_a_request_before_start_is_refused_without_ray() -> None:
    from threadkit.ray import RayWorker  # noqa: PLC0415

    w = RayWorker(dict, name="early")
    with pytest.raises(
        threadkit.WorkerClosed,
        match=r"^cannot submit to worker 'early' before start\(\); "
        r"call start\(\) or use the worker in a with block$",
    ):
        w.submit(len)
    w.shutdown()  # never started: returns at once
    assert repr(w) == "<RayWorker 'early' stopped, 0 pending>"


# -- the owner process ---------------------------------------------------------------------


@pytest.fixture
def worker() -> Iterator[Any]:
    from threadkit.ray import RayWorker  # noqa: PLC0415

    errors: list[BaseException] = []
    w = RayWorker(dict, name="w", error_hook=errors.append).start()
    w.errors = errors
    yield w
    w.shutdown(wait=True, cancel_futures=True)


def _pid_and_thread(_resource: object) -> tuple[int, int]:
    return os.getpid(), threading.get_ident()


@needs_ray
def test_the_factory_and_every_request_run_in_one_thread_of_another_process() -> None:
    from threadkit.ray import RayWorker  # noqa: PLC0415

    def open_() -> sqlite3.Connection:
        db = sqlite3.connect(":memory:")  # check_same_thread=True: the default
        db.execute("create table t (x)")
        return db

    def insert(db: sqlite3.Connection, x: int) -> tuple[int, int]:
        db.execute("insert into t values (?)", (x,))
        return _pid_and_thread(db)

    with RayWorker(open_, close=sqlite3.Connection.close) as w:
        where: set[tuple[int, int]] = set()
        threads = [
            threading.Thread(target=lambda p=p: where.update(w.call(insert, p) for _ in range(20)))
            for p in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT)
        assert w.call(lambda db: db.execute("select count(*) from t").fetchone()) == (80,)
    assert len(where) == 1
    assert next(iter(where))[0] != os.getpid()


@needs_ray
def test_requests_with_large_arguments_keep_their_order(worker: Any) -> None:
    # Ray moves arguments over 100 KB through its object store, resolved
    # separately from the small ones: the actor must still run them in order.
    fs = [
        worker.submit(dict.__setitem__, i, b"x" * (1_000_000 if i % 5 == 0 else 10))
        for i in range(40)
    ]
    for f in fs:
        f.result(WAIT)
    assert worker.call(list) == list(range(40))


@needs_ray
def test_a_returned_value_is_a_copy_not_the_resource(worker: Any) -> None:
    worker.call(dict.__setitem__, "k", [1])
    first, second = worker.call(dict.get, "k"), worker.call(dict.get, "k")
    assert first == second == [1]
    assert first is not second


# -- errors -----------------------------------------------------------------------------------


def _fail_deep(_resource: object, message: str) -> None:
    raise LookupError(message)


@needs_ray
def test_a_failure_is_reraised_with_its_type_and_the_remote_traceback_as_a_note(
    worker: Any,
) -> None:
    with raises_remote(LookupError, "nope") as info:
        worker.call(_fail_deep, "nope")
    (note,) = info.value.__notes__
    assert note.startswith("remote traceback (RayWorker 'w', pid ")
    assert "in _fail_deep\n" in note
    assert note.endswith("LookupError: nope\n")
    assert "_outcome" not in note, "the worker's own frame is not the user's business"


class Unpicklable(Exception):
    def __reduce__(self) -> Any:
        raise TypeError("not today")


def _fail_unpicklably(_resource: object) -> None:
    raise Unpicklable("odd")


@needs_ray
def test_an_exception_that_cannot_travel_arrives_as_runtime_error_with_its_text(
    worker: Any,
) -> None:
    with raises_remote(
        RuntimeError, "Unpicklable: odd (not picklable: TypeError('not today'))"
    ) as info:
        worker.call(_fail_unpicklably)
    assert "in _fail_unpicklably\n" in info.value.__notes__[0]


@pytest.mark.parametrize("interrupt", [SystemExit, KeyboardInterrupt])
@needs_ray
def test_system_exit_in_a_request_is_delivered_and_does_not_end_the_actor(
    worker: Any, interrupt: type[BaseException]
) -> None:
    def leave(_r: object) -> None:
        raise interrupt(3)

    assert type(worker.submit(leave).exception(WAIT)) is interrupt
    assert worker.call(len) == 0


@needs_ray
def test_a_post_failure_goes_to_the_error_hook_in_the_delivery_thread(worker: Any) -> None:
    where: list[str] = []
    hooked = threading.Event()

    def hook(exc: BaseException) -> None:
        where.append(threading.current_thread().name)
        worker.errors.append(exc)
        hooked.set()

    worker._error_hook = hook
    worker.post(_fail_deep, "posted")
    assert hooked.wait(WAIT)
    (exc,) = worker.errors
    assert type(exc) is LookupError
    assert exc.__notes__[-1] == "(raised by post in threadkit RayWorker 'w')"
    assert where == ["w-delivery"]


# -- lifecycle ---------------------------------------------------------------------------------


@needs_ray
def test_close_runs_once_in_the_owner_process_after_the_last_request() -> None:
    from threadkit.ray import RayWorker  # noqa: PLC0415

    log = RemoteList()

    def close(resource: list[int]) -> None:
        log.append(("close", os.getpid(), list(resource)))

    w = RayWorker(list, close=close).start()
    pid = w.call(lambda _r: os.getpid())
    for i in range(5):
        w.post(list.append, i)
    w.shutdown(wait=True)
    w.shutdown(wait=True)
    assert [tuple(x) for x in log.snapshot()] == [("close", pid, [0, 1, 2, 3, 4])]


@needs_ray
def test_a_close_error_is_raised_by_the_first_waiting_shutdown_only() -> None:
    from threadkit.ray import RayWorker  # noqa: PLC0415

    def close(_r: object) -> None:
        raise OSError("close failed")

    w = RayWorker(object, close=close).start()
    with raises_remote(OSError, "close failed"):
        w.shutdown(wait=True)
    w.shutdown(wait=True)


@needs_ray
def test_a_close_error_with_nobody_waiting_goes_to_the_error_hook() -> None:
    from threadkit.ray import RayWorker  # noqa: PLC0415

    hooked: Future[tuple[BaseException, str]] = Future()

    def close(_r: object) -> None:
        raise OSError("close failed")

    def hook(exc: BaseException) -> None:
        # A hook may look at its worker (it runs outside the worker's lock).
        hooked.set_result((exc, repr(w)))

    w = RayWorker(object, close=close, error_hook=hook, name="c").start()
    w.shutdown(wait=False)
    exc, seen = hooked.result(WAIT)
    assert type(exc) is OSError
    assert exc.__notes__[-1] == "(raised by close in threadkit RayWorker 'c')"
    assert seen == "<RayWorker 'c' stopped, 0 pending>"
    w.shutdown(wait=True)  # delivered once already


@needs_ray
def test_a_failing_factory_is_reraised_by_start_and_the_worker_refuses_requests() -> None:
    from threadkit.ray import RayWorker  # noqa: PLC0415

    def factory() -> None:
        raise PermissionError("no db")

    w = RayWorker(factory, name="bad")
    with raises_remote(PermissionError, "no db"):
        w.start()
    with pytest.raises(
        threadkit.WorkerClosed, match=r"^cannot submit to worker 'bad': its factory failed$"
    ):
        w.submit(len)
    with pytest.raises(RuntimeError, match=r"^worker 'bad' can only be started once$"):
        w.start()
    w.shutdown()


@needs_ray
def test_a_shutdown_during_start_waits_for_it_then_closes_the_resource() -> None:
    from threadkit.ray import RayWorker  # noqa: PLC0415

    entered, gate, log = RemoteEvent(), RemoteEvent(), RemoteList()

    def factory() -> list[int]:
        entered.set()
        gate.wait(WAIT)
        return []

    w = RayWorker(factory, close=lambda _r: log.append("closed"), name="slow")
    starter = threading.Thread(target=w.start)
    starter.start()
    assert entered.wait(WAIT)
    w.shutdown(wait=False)  # begins the shutdown, so the refusal below is certain
    shut: Future[None] = Future()
    stopper = threading.Thread(target=lambda: shut.set_result(w.shutdown(wait=True)))
    stopper.start()
    with pytest.raises(
        threadkit.WorkerClosed, match=r"^cannot submit to worker 'slow' after shutdown$"
    ):
        w.submit(len)
    gate.set()
    assert shut.result(WAIT) is None
    starter.join(WAIT)
    stopper.join(WAIT)
    assert log.snapshot() == ["closed"]
    assert repr(w) == "<RayWorker 'slow' stopped, 0 pending>"


@needs_ray
def test_requests_after_shutdown_are_refused(worker: Any) -> None:
    worker.shutdown()
    for method, what in ((worker.submit, "submit to"), (worker.post, "post to")):
        with pytest.raises(
            threadkit.WorkerClosed, match=rf"^cannot {what} worker 'w' after shutdown$"
        ):
            method(len)
    assert repr(worker) == "<RayWorker 'w' stopped, 0 pending>"


@needs_ray
def test_a_ray_worker_cannot_be_pickled(worker: Any) -> None:
    with pytest.raises(TypeError, match=r"^cannot pickle RayWorker 'w': it serves one process$"):
        pickle.dumps(worker)


# -- cancel and back-pressure -----------------------------------------------------------------


def _block(_resource: object, entered: RemoteEvent, gate: RemoteEvent) -> bool:
    entered.set()
    return gate.wait(WAIT)


@needs_ray
def test_future_cancel_withdraws_a_queued_request_but_not_a_running_one(worker: Any) -> None:
    entered, gate, ran = RemoteEvent(), RemoteEvent(), RemoteList()
    running = worker.submit(_block, entered, gate)
    queued = worker.submit(lambda _r: ran.append("queued"))
    assert entered.wait(WAIT)
    assert worker.pending == 2
    assert queued.cancel() is True
    assert queued.cancelled()
    assert running.cancel() is False
    gate.set()
    assert running.result(WAIT) is True
    assert worker.call(len) == 0
    assert ran.snapshot() == []
    assert worker.pending == 0
    with pytest.raises(CancelledError):
        queued.result(0)


@needs_ray
def test_a_full_worker_refuses_after_put_timeout_and_accepts_once_there_is_room() -> None:
    from threadkit.ray import RayWorker  # noqa: PLC0415

    entered, gate = RemoteEvent(), RemoteEvent()
    with RayWorker(dict, name="small", maxsize=1, put_timeout=0.05) as w:
        running = w.submit(_block, entered, gate)
        assert entered.wait(WAIT)
        with pytest.raises(
            threadkit.MailboxFull,
            match=r"^the mailbox of worker 'small' stayed full \(maxsize=1\) for 0\.05 s$",
        ):
            w.submit(len)
        gate.set()
        assert running.result(WAIT) is True
        assert w.call(len) == 0


# -- the delivery thread ---------------------------------------------------------------------


@needs_ray
def test_waiting_in_a_done_callback_for_a_pending_future_of_the_same_worker_is_refused(
    worker: Any,
) -> None:
    entered, gate = RemoteEvent(), RemoteEvent()
    outcome: Future[BaseException] = Future()
    first = worker.submit(len)
    second = worker.submit(_block, entered, gate)

    def callback(_f: object) -> None:
        errors: list[BaseException] = []
        for wait in (second.result, lambda: worker.call(len)):
            try:
                wait()
            except threadkit.DeadlockError as exc:
                errors.append(exc)
        outcome.set_result(errors)  # type: ignore[arg-type]

    first.add_done_callback(callback)
    errors: Any = outcome.result(WAIT)
    gate.set()
    assert [str(e) for e in errors] == [
        "waiting in the delivery thread of worker 'w' for one of its pending futures "
        "would wait forever; use add_done_callback()",
        "call() from the delivery thread of worker 'w' would wait for itself forever; use submit()",
    ]


@needs_ray
def test_asyncio_callers_await_results_without_blocking_the_loop(worker: Any) -> None:
    async def main() -> list[Any]:
        first = await worker.acall(dict.setdefault, "a", 1)
        return [first, await worker.asubmit(dict.get, "a")]

    assert asyncio.run(main()) == [1, 1]


# -- the actor process dying ---------------------------------------------------------------


@needs_ray
def test_every_pending_request_fails_with_actor_died_when_the_actor_is_killed() -> None:
    import ray  # noqa: PLC0415

    from threadkit.ray import ActorDied, RayWorker  # noqa: PLC0415

    entered, gate = RemoteEvent(), RemoteEvent()
    w = RayWorker(dict, name="doomed").start()
    running = w.submit(_block, entered, gate)
    queued = [w.submit(len) for _ in range(3)]
    assert entered.wait(WAIT)
    ray.kill(w._actor)
    message = r"^the actor of RayWorker 'doomed' died before answering this request$"
    for f in [running, *queued]:
        with pytest.raises(ActorDied, match=message) as info:
            f.result(WAIT)
        assert isinstance(info.value.__cause__, ray.exceptions.RayActorError)
    with pytest.raises(ActorDied, match=message):
        w.shutdown(wait=True)
    assert w.pending == 0


@needs_ray
def test_a_request_that_ends_the_actor_process_fails_with_actor_died() -> None:
    from threadkit.ray import ActorDied, RayWorker  # noqa: PLC0415

    w = RayWorker(dict).start()
    fatal = w.submit(lambda _r: os._exit(1))
    after = w.submit(len)
    for f in (fatal, after):
        assert isinstance(f.exception(WAIT), ActorDied)
    with pytest.raises(ActorDied):
        w.shutdown(wait=True)


# -- interpreter exit -------------------------------------------------------------------------


@needs_ray
def test_a_worker_left_running_at_exit_runs_its_queued_requests_then_close(
    tmp_path: Path,
) -> None:
    out = tmp_path / "closed"
    result = _child(
        f"""
        from threadkit.ray import RayWorker

        def close(lines):
            with open({str(out)!r}, "w") as f:
                f.write(",".join(lines))

        w = RayWorker(list, close=close).start()
        for i in range(3):
            w.post(list.append, str(i))
        """
    )
    assert result.returncode == 0, result.stderr
    assert out.read_text() == "0,1,2"


# -- the docs ----------------------------------------------------------------------------------

DOCS = Path(__file__).resolve().parent.parent / "docs"


@needs_ray
def test_the_how_to_example_runs_and_prints_what_the_page_says(
    capsys: pytest.CaptureFixture[str],
) -> None:
    runpy.run_path(str(DOCS / "examples" / "ray_counter.py"), run_name="__main__")
    assert capsys.readouterr().out == "101\n"
    assert "``101``" in (DOCS / "howto" / "ray.rst").read_text(encoding="utf-8")


def test_the_reference_documents_every_public_name_and_method_of_threadkit_ray() -> None:
    from threadkit import ray as tk_ray  # noqa: PLC0415

    text = (DOCS / "reference" / "ray.rst").read_text(encoding="utf-8")
    for name in tk_ray.__all__:
        assert re.search(rf"^\.\. auto\w+:: threadkit\.ray\.{name}$", text, re.MULTILINE), name
    members = re.search(r"autoclass:: threadkit\.ray\.RayWorker\n\s+:members: (.*)\n", text)
    assert members is not None
    public = {n for n in vars(tk_ray.RayWorker) if not n.startswith("_")}
    assert public == set(members.group(1).replace(",", " ").split())
