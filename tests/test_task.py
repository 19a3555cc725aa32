from __future__ import annotations

import concurrent.futures as cf
import gc
import logging
import re
import subprocess
import sys
import threading
import weakref
import zipfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import threadkit

from .conftest import WAIT, interrupt_child


def boom(message: str = "boom") -> None:
    raise ValueError(message)


def wait_for_cancel() -> None:
    token = threadkit.current_token()
    assert token.wait(WAIT), "never cancelled"
    token.raise_if_cancelled()


@pytest.fixture
def errors_logged() -> Iterator[list[logging.LogRecord]]:
    """ERROR records of the "threadkit" logger during the test."""
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Collect(logging.ERROR)
    log = logging.getLogger("threadkit")
    log.addHandler(handler)
    try:
        yield records
    finally:
        log.removeHandler(handler)


# -- spawn and Task ---------------------------------------------------------------


def test_spawn_runs_the_function_in_another_thread_and_returns_its_result() -> None:
    task = threadkit.spawn(lambda a, b=0: (a + b, threading.current_thread()), 1, b=2)
    value, thread = task.result(WAIT)
    assert value == 3
    assert thread is task.thread
    assert thread is not threading.current_thread()
    assert task.done()
    assert not task.cancelled()


def test_result_reraises_the_functions_own_exception() -> None:
    exc = ValueError("mine")

    def fail() -> None:
        raise exc

    task = threadkit.spawn(fail)
    with pytest.raises(ValueError, match=r"^mine$") as info:
        task.result(WAIT)
    assert info.value is exc
    assert task.exception() is exc


def test_a_system_exit_in_a_task_is_delivered_not_swallowed() -> None:
    task = threadkit.spawn(sys.exit, 3)
    assert isinstance(task.exception(WAIT), SystemExit)


def test_the_task_and_its_thread_carry_the_name_and_renaming_renames_both() -> None:
    release = threading.Event()
    task = threadkit.spawn(release.wait, WAIT)
    task.name = "zipper"
    assert (task.name, task.thread.name, repr(task)) == (
        "zipper",
        "zipper",
        "<Task 'zipper' running>",
    )
    release.set()
    task.result(WAIT)
    task.name = "zipped"
    assert (task.name, task.thread.name) == ("zipped", "zipped")


def test_name_and_daemon_are_passed_to_the_function_like_any_keyword() -> None:
    def f(*, name: str, daemon: bool) -> tuple[str, bool]:
        return name, daemon

    assert threadkit.spawn(f, name="n", daemon=True).result(WAIT) == ("n", True)
    with threadkit.TaskGroup() as group:
        task = group.spawn(f, name="m", daemon=False)
    assert task.result(0) == ("m", False)
    assert not task.name.startswith(("n", "m"))


def test_a_task_renamed_is_named_so_in_deadlock_reports() -> None:
    ready = threading.Event()
    errors: list[str] = []

    def f() -> None:
        ready.wait(WAIT)
        try:
            holder[0].result()
        except threadkit.DeadlockError as exc:
            errors.append(str(exc))

    holder = [threadkit.spawn(f)]
    holder[0].name = "renamed"
    ready.set()
    holder[0].result(WAIT)
    assert errors == [
        "result() of task 'renamed' was called from the task itself; it would wait forever"
    ]


def test_the_default_name_says_which_function_runs() -> None:
    task = threadkit.spawn(boom, "x")
    task.exception(WAIT)
    assert task.name.startswith("Task-")
    assert task.name.endswith(" (boom)")


def test_a_parameter_named_token_is_never_filled_in_by_spawn() -> None:
    # Usually an auth token: it keeps its default, and current_token() gives the task's.
    def f(x: int, token: str = "secret") -> Any:
        return x, token, threadkit.current_token()

    task = threadkit.spawn(f, 5)
    assert task.result(WAIT) == (5, "secret", task.token)


def test_a_token_keyword_is_forwarded_to_the_function_like_any_other() -> None:
    def f(*, token: str) -> str:
        return token

    assert threadkit.spawn(f, token="abc").result(WAIT) == "abc"
    with threadkit.TaskGroup() as group:
        task = group.spawn(f, token="def")
    assert task.result(0) == "def"


def test_cancel_stops_a_task_that_checks_its_token() -> None:
    running = threading.Event()

    def f() -> None:
        running.set()
        wait_for_cancel()

    task = threadkit.spawn(f)
    assert running.wait(WAIT)
    assert task.running()
    assert task.cancel() is True
    with pytest.raises(cf.CancelledError):
        task.result(WAIT)
    assert task.cancelled()
    assert task.token.reason == f"task {task.name!r} was cancelled"
    assert task.cancel() is False


def test_a_task_that_ignores_cancellation_keeps_its_result() -> None:
    running = threading.Event()
    release = threading.Event()

    def f() -> str:
        running.set()
        release.wait(WAIT)
        return "done anyway"

    task = threadkit.spawn(f)
    assert running.wait(WAIT)
    assert task.cancel() is True
    release.set()
    assert task.result(WAIT) == "done anyway"
    assert not task.cancelled()


def test_cancelled_from_an_unrelated_token_is_a_failure() -> None:
    other = threadkit.CancelToken()
    other.cancel("elsewhere")
    task = threadkit.spawn(other.raise_if_cancelled)
    exc = task.exception(WAIT)
    assert isinstance(exc, threadkit.Cancelled)
    assert not task.cancelled()


def test_tasks_work_with_concurrent_futures_wait_and_as_completed() -> None:
    ok = threadkit.spawn(lambda: 1)
    failed = threadkit.spawn(boom)
    running = threading.Event()

    def cancellable() -> None:
        running.set()
        wait_for_cancel()

    cancelled = threadkit.spawn(cancellable)
    assert running.wait(WAIT)
    cancelled.cancel()
    futures: list[cf.Future[Any]] = [ok, failed, cancelled]
    _, not_done = cf.wait(futures, timeout=WAIT)
    assert not not_done
    assert set(cf.as_completed(futures, timeout=WAIT)) == set(futures)
    assert cancelled.cancelled()
    assert isinstance(failed.exception(), ValueError)


def test_done_callbacks_run_with_the_task() -> None:
    seen: list[cf.Future[int]] = []
    got = threading.Event()
    release = threading.Event()

    def f() -> int:
        release.wait(WAIT)
        return 7

    task = threadkit.spawn(f)

    def callback(fut: cf.Future[int]) -> None:
        seen.append(fut)
        got.set()

    task.add_done_callback(callback)
    release.set()
    assert got.wait(WAIT)
    assert seen == [task]


def test_join_waits_for_the_thread_and_says_whether_it_ended() -> None:
    release = threading.Event()
    task = threadkit.spawn(release.wait, WAIT)
    assert task.join(0.01) is False
    release.set()
    assert task.join(WAIT) is True
    assert not task.thread.is_alive()


def test_waiting_for_a_task_from_inside_it_raises_deadlock_error() -> None:
    holder: list[threadkit.Task[Any]] = []
    ready = threading.Event()
    errors: list[str] = []

    def f() -> None:
        ready.wait(WAIT)
        me = holder[0]
        for call in (me.result, me.exception, me.join):
            try:
                call()
            except threadkit.DeadlockError as exc:
                errors.append(str(exc))

    task = threadkit.spawn(f)
    task.name = "self"
    holder.append(task)
    ready.set()
    task.result(WAIT)
    assert errors == [
        f"{what}() of task 'self' was called from the task itself; it would wait forever"
        for what in ("result", "exception", "join")
    ]


def test_daemon_is_inherited_from_the_spawning_thread_or_set_by_the_group() -> None:
    task = threadkit.spawn(lambda: None)
    assert task.thread.daemon is threading.current_thread().daemon
    inner: list[threadkit.Task[None]] = []
    outer = threading.Thread(
        target=lambda: inner.append(threadkit.spawn(lambda: None)), daemon=True
    )
    outer.start()
    outer.join(WAIT)
    assert inner[0].thread.daemon is True
    for daemon in (True, False):
        with threadkit.TaskGroup(daemon=daemon) as group:
            task = group.spawn(lambda: None)
        assert task.thread.daemon is daemon
    task.join(WAIT)


def test_repr_shows_the_state() -> None:
    release = threading.Event()
    running = threading.Event()

    def f() -> None:
        running.set()
        release.wait(WAIT)

    task = threadkit.spawn(f)
    task.name = "r"
    assert running.wait(WAIT)
    assert repr(task) == "<Task 'r' running>"
    task.cancel()
    assert repr(task) == "<Task 'r' running, cancel requested>"
    release.set()
    task.result(WAIT)
    assert repr(task) == "<Task 'r' finished>"
    failed = threadkit.spawn(boom)
    failed.exception(WAIT)
    failed.name = "f"
    assert repr(failed) == "<Task 'f' failed (ValueError)>"


# -- no failure is lost -----------------------------------------------------------


def test_join_returns_true_for_a_failed_or_cancelled_task_and_tells_nothing_of_the_outcome() -> (
    None
):
    failed = threadkit.spawn(boom)
    release = threading.Event()
    cancelled = threadkit.spawn(
        lambda: (release.wait(WAIT), threadkit.current_token().raise_if_cancelled())
    )
    cancelled.cancel()
    release.set()
    assert failed.join(WAIT) is True
    assert cancelled.join(WAIT) is True
    # Only result() (or exception()) tells them apart.
    with pytest.raises(ValueError, match=r"^boom$"):
        failed.result(0)
    with pytest.raises(cf.CancelledError):
        cancelled.result(0)


def test_an_unretrieved_failure_is_logged_once_when_the_task_is_collected(
    errors_logged: list[logging.LogRecord],
) -> None:
    release = threading.Event()

    def fail() -> None:
        release.wait(WAIT)
        boom("unseen")

    task = threadkit.spawn(fail)
    task.name = "lonely"
    release.set()
    assert task.join(WAIT)
    assert errors_logged == []
    del task
    gc.collect()
    [record] = errors_logged
    assert record.getMessage() == "exception in threadkit task 'lonely' was never retrieved"
    assert record.exc_info is not None
    assert str(record.exc_info[1]) == "unseen"


@pytest.mark.parametrize("retrieve", ["result", "exception"])
def test_a_retrieved_failure_is_not_logged(
    errors_logged: list[logging.LogRecord], retrieve: str
) -> None:
    task = threadkit.spawn(boom)
    if retrieve == "result":
        with pytest.raises(ValueError, match=r"^boom$"):
            task.result(WAIT)
    else:
        assert isinstance(task.exception(WAIT), ValueError)
    del task
    gc.collect()
    assert errors_logged == []


def test_a_failure_still_referenced_at_exit_is_logged_exactly_once() -> None:
    code = (
        "import threadkit\n"
        "def boom():\n"
        "    raise ValueError('at exit')\n"
        "t = threadkit.spawn(boom)\n"
        "t.name = 'kept'\n"
        "t.join()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=WAIT, check=False
    )
    assert proc.returncode == 0
    assert proc.stderr.count("exception in threadkit task 'kept' was never retrieved") == 1
    assert "ValueError: at exit" in proc.stderr


# -- argument checks ---------------------------------------------------------------


def test_spawn_rejects_a_non_callable() -> None:
    with pytest.raises(TypeError, match=r"^spawn\(\) needs a callable, got 'int'$"):
        threadkit.spawn(3)  # type: ignore[arg-type]


def test_a_task_name_that_is_not_a_string_is_refused() -> None:
    task = threadkit.spawn(int)
    with pytest.raises(TypeError, match=r"^name must be a str, got 'int'$"):
        task.name = 3  # type: ignore[assignment]
    task.result(WAIT)


def test_task_group_rejects_a_daemon_flag_that_is_not_a_bool() -> None:
    with pytest.raises(TypeError, match=r"^daemon must be a bool or None, got 'str'$"):
        threadkit.TaskGroup(daemon="yes")  # type: ignore[arg-type]


def test_result_and_join_reject_a_negative_timeout() -> None:
    task = threadkit.spawn(lambda: None)
    with pytest.raises(ValueError, match=r"^timeout must be >= 0, got -1$"):
        task.result(-1)
    with pytest.raises(ValueError, match=r"^timeout must be >= 0, got -0.5$"):
        task.join(-0.5)
    with pytest.raises(TypeError, match=r"^timeout must be a number or None, got 'str'$"):
        task.exception("1")  # type: ignore[arg-type]
    task.result(WAIT)


def test_task_group_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"^timeout must be >= 0, got -1$"):
        threadkit.TaskGroup(timeout=-1)
    with pytest.raises(TypeError, match=r"^timeout must be a number or None, got 'str'$"):
        threadkit.TaskGroup(timeout="5")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^name must be a str or None, got 'int'$"):
        threadkit.TaskGroup(name=1)  # type: ignore[arg-type]
    with pytest.raises(
        TypeError, match=r"^TaskGroup.__init__\(\) takes 1 positional argument but 2 were given$"
    ):
        threadkit.TaskGroup("g")  # type: ignore[misc]


@pytest.mark.parametrize(
    ("timeout", "message"),
    [
        (float("nan"), "timeout must be >= 0, got nan"),
        (float("inf"), "timeout must be finite (None waits without limit), got inf"),
        (1e300, "timeout must be <= threading.TIMEOUT_MAX (None waits without limit), got 1e+300"),
    ],
)
def test_task_group_refuses_a_timeout_no_wait_can_use(timeout: float, message: str) -> None:
    with pytest.raises(ValueError, match=rf"^{re.escape(message)}$"):
        threadkit.TaskGroup(timeout=timeout)


@pytest.mark.parametrize("timeout", [float("nan"), float("inf")])
def test_result_exception_and_join_refuse_nan_and_inf(timeout: float) -> None:
    task = threadkit.spawn(lambda: None)
    for wait in (task.result, task.exception, task.join):
        with pytest.raises(ValueError, match=r"^timeout must be "):
            wait(timeout)
    task.result(WAIT)


def test_group_spawn_rejects_a_non_callable() -> None:
    with (
        threadkit.TaskGroup() as group,
        pytest.raises(TypeError, match=r"^spawn\(\) needs a callable, got 'NoneType'$"),
    ):
        group.spawn(None)  # type: ignore[arg-type]


# -- TaskGroup ---------------------------------------------------------------------


def test_a_group_waits_for_every_task_and_joins_its_thread() -> None:
    release = threading.Event()
    with threadkit.TaskGroup() as group:
        tasks = [group.spawn(release.wait, WAIT) for _ in range(3)]
        release.set()
    assert all(t.done() for t in tasks)
    assert not any(t.thread.is_alive() for t in tasks)
    assert [t.result() for t in tasks] == [True, True, True]


def test_a_failed_task_cancels_its_siblings_and_the_failures_are_raised_together() -> None:
    started = threading.Barrier(4, timeout=WAIT)

    def sibling() -> None:
        started.wait()
        wait_for_cancel()

    def failing(message: str) -> None:
        started.wait()
        raise ValueError(message)

    with (  # noqa: PT012
        pytest.raises(ExceptionGroup) as info,
        threadkit.TaskGroup(name="g") as group,
    ):
        quiet = group.spawn(sibling)
        group.spawn(failing, "first").name = "f1"
        group.spawn(failing, "second").name = "f2"
        started.wait()
    eg = info.value
    assert str(eg) == "unhandled errors in task group 'g' (2 sub-exceptions)"
    assert sorted(str(e) for e in eg.exceptions) == ["first", "second"]
    assert all(isinstance(e, ValueError) for e in eg.exceptions)
    assert {e.__notes__[0] for e in eg.exceptions} == {
        "(raised by threadkit task 'f1')",
        "(raised by threadkit task 'f2')",
    }
    assert quiet.cancelled()
    assert group.token.reason == "a task of task group 'g' failed"


def test_except_star_picks_failures_out_of_a_group() -> None:
    caught: list[BaseException] = []
    both = threading.Barrier(2, timeout=WAIT)

    def fail(exc: Exception) -> None:
        both.wait()
        raise exc

    try:
        with threadkit.TaskGroup() as group:
            group.spawn(fail, ValueError("v"))
            group.spawn(fail, KeyError("k"))
    except* ValueError as eg:
        caught.extend(eg.exceptions)
    except* KeyError as eg:
        caught.extend(eg.exceptions)
    assert sorted(type(e).__name__ for e in caught) == ["KeyError", "ValueError"]


def test_an_exception_in_the_block_cancels_the_tasks_and_is_raised_first() -> None:
    running = threading.Event()

    def sibling() -> None:
        running.set()
        wait_for_cancel()

    with (  # noqa: PT012
        pytest.raises(ExceptionGroup) as info,
        threadkit.TaskGroup(name="b") as group,
    ):
        task = group.spawn(sibling)
        assert running.wait(WAIT)
        raise RuntimeError("in the block")
    assert [str(e) for e in info.value.exceptions] == ["in the block"]
    assert task.cancelled()
    assert group.token.reason == "the block of task group 'b' raised RuntimeError"


def test_a_keyboard_interrupt_in_the_block_is_reraised_after_the_tasks_ended(
    errors_logged: list[logging.LogRecord],
) -> None:
    running = threading.Event()

    def sibling() -> None:
        token = threadkit.current_token()
        running.set()
        assert token.wait(WAIT)
        raise ValueError("failed while cancelled")

    with (  # noqa: PT012
        pytest.raises(KeyboardInterrupt),
        threadkit.TaskGroup(name="k") as group,
    ):
        task = group.spawn(sibling)
        assert running.wait(WAIT)
        raise KeyboardInterrupt
    assert not task.thread.is_alive()
    [record] = errors_logged
    assert record.getMessage() == (
        "task group 'k' was left by KeyboardInterrupt; "
        "this failure of one of its tasks is not raised"
    )


def test_cancelled_raised_in_the_block_by_the_groups_own_token_is_absorbed() -> None:
    with threadkit.TaskGroup() as group:
        group.cancel("enough")
        threadkit.current_token().raise_if_cancelled()
        pytest.fail("not reached")  # pragma: no cover
    assert group.token.reason == "enough"


def test_group_cancel_is_not_a_failure() -> None:
    with threadkit.TaskGroup() as group:
        task = group.spawn(wait_for_cancel)
        assert group.cancel() is True
    assert task.cancelled()


def test_a_task_spawned_into_a_cancelled_group_never_runs() -> None:
    ran: list[bool] = []
    with threadkit.TaskGroup() as group:
        group.cancel()
        task = group.spawn(lambda: ran.append(True))
    assert task.cancelled()
    assert ran == []


def test_inside_the_block_current_token_is_the_groups_and_is_restored_after() -> None:
    before = threadkit.current_token()
    with threadkit.TaskGroup() as group:
        assert threadkit.current_token() is group.token
        task = group.spawn(threadkit.current_token)
    assert threadkit.current_token() is before
    assert task.result() is task.token
    assert not task.token.cancelled


# The timeouts of the next two tests are long enough for a spawned task's
# thread to reach its function first on a loaded machine: a task whose token
# is cancelled before that never runs (seen with 0.05 s on a busy CI machine),
# and these tests are about tasks that do run.
STARTS_FIRST = 0.5


def test_the_timeout_cancels_the_tasks_and_raises_timeout_error() -> None:
    running = threading.Event()

    def slow() -> None:
        running.set()
        wait_for_cancel()

    with (
        pytest.raises(TimeoutError, match=r"^task group 't' timed out after 0.5 s$"),
        threadkit.TaskGroup(name="t", timeout=STARTS_FIRST) as group,
    ):
        task = group.spawn(slow)
    assert running.is_set()
    assert task.cancelled()
    assert not task.thread.is_alive()


def test_a_timeout_with_failures_is_raised_in_the_group_with_them() -> None:
    def fail_when_cancelled() -> None:
        wait_for_cancel()  # raises Cancelled

    def fail_late() -> None:
        token = threadkit.current_token()
        assert token.wait(WAIT)
        raise ValueError("late")

    with (  # noqa: PT012
        pytest.raises(ExceptionGroup) as info,
        threadkit.TaskGroup(name="t", timeout=STARTS_FIRST) as group,
    ):
        group.spawn(fail_when_cancelled)
        group.spawn(fail_late)
    assert [type(e) for e in info.value.exceptions] == [TimeoutError, ValueError]


def test_a_group_that_ends_in_time_does_not_time_out() -> None:
    with threadkit.TaskGroup(timeout=WAIT) as group:
        task = group.spawn(lambda: 1)
    assert task.result() == 1
    assert not group.token.cancelled


def test_spawning_before_entering_or_after_exit_raises_group_closed() -> None:
    group = threadkit.TaskGroup(name="g")
    with pytest.raises(
        threadkit.GroupClosed,
        match=r"^cannot spawn into task group 'g' before its with block is entered$",
    ):
        group.spawn(print)
    with group:
        pass
    with pytest.raises(
        threadkit.GroupClosed, match=r"^cannot spawn into task group 'g' after it has ended$"
    ):
        group.spawn(print)
    assert issubclass(threadkit.GroupClosed, RuntimeError)


def test_a_group_can_be_entered_once() -> None:
    group = threadkit.TaskGroup(name="g")
    with group:
        pass
    with pytest.raises(RuntimeError, match=r"^task group 'g' can only be entered once$"):  # noqa: SIM117
        with group:
            pass


def test_a_task_may_spawn_siblings_while_the_group_waits() -> None:
    holder: list[threadkit.TaskGroup] = []
    children: list[threadkit.Task[int]] = []

    def parent() -> None:
        children.append(holder[0].spawn(lambda: 5))

    with threadkit.TaskGroup() as group:
        holder.append(group)
        group.spawn(parent)
    assert [c.result() for c in children] == [5]
    assert not children[0].thread.is_alive()


def test_a_nested_group_inside_a_task_is_cancelled_with_the_outer_group() -> None:
    inner_running = threading.Event()
    inner_tasks: list[threadkit.Task[None]] = []

    def outer_task() -> None:
        with threadkit.TaskGroup() as inner:
            inner_tasks.append(inner.spawn(wait_for_cancel))
            inner_running.set()
        pytest.fail("the inner group must raise Cancelled")  # pragma: no cover

    with (  # noqa: PT012
        pytest.raises(ExceptionGroup) as info,
        threadkit.TaskGroup() as outer,
    ):
        runner = outer.spawn(outer_task)
        assert inner_running.wait(WAIT)
        outer.spawn(boom, "outer failure")
    assert [str(e) for e in info.value.exceptions] == ["outer failure"]
    assert inner_tasks[0].cancelled()
    assert runner.cancelled()


def test_nested_groups_in_the_block_nest_their_tokens() -> None:
    with threadkit.TaskGroup() as outer:
        with threadkit.TaskGroup() as inner:
            assert threadkit.current_token() is inner.token
            outer.cancel()
            assert inner.token.cancelled
            task = inner.spawn(wait_for_cancel)
        pytest.fail("the inner group must raise Cancelled")  # pragma: no cover
    assert task.cancelled()


def test_a_task_that_ignores_its_token_is_waited_for() -> None:
    cancelled = threading.Event()
    release = threading.Event()

    started = threading.Event()

    def stubborn() -> str:
        started.set()
        release.wait(WAIT)
        return "finished"

    with (  # noqa: PT012
        pytest.raises(ExceptionGroup),
        threadkit.TaskGroup() as group,
    ):
        group.token.on_cancel(cancelled.set)
        task = group.spawn(stubborn)
        # Running first: a task whose group is cancelled before it starts
        # never runs (documented), and this one must be waited for.
        assert started.wait(WAIT)
        group.spawn(boom)
        assert cancelled.wait(WAIT)
        assert not task.done()
        release.set()
    assert task.result() == "finished"
    assert not task.thread.is_alive()


def test_repr_of_a_group_shows_its_state() -> None:
    group = threadkit.TaskGroup(name="g")
    assert repr(group) == "<TaskGroup 'g' new, 0 running, 0 failed>"
    release = threading.Event()
    with group:
        group.spawn(release.wait, WAIT)
        assert repr(group) == "<TaskGroup 'g' open, 1 running, 0 failed>"
        release.set()
    assert repr(group) == "<TaskGroup 'g' closed, 0 running, 0 failed>"


# -- Ctrl-C ------------------------------------------------------------------------

_SIGINT_CHILD = """
import sys, threading, threadkit
started = threading.Barrier(3, timeout=10)
tasks = []

def worker():
    token = threadkit.current_token()
    started.wait()
    token.wait(10)
    token.raise_if_cancelled()

try:
    with threadkit.TaskGroup(name="g") as group:
        tasks.append(group.spawn(worker))
        tasks.append(group.spawn(worker))
        started.wait()
        print("ready", flush=True)
except KeyboardInterrupt:
    print("interrupted", [t.cancelled() for t in tasks],
          [t.thread.is_alive() for t in tasks], flush=True)
    sys.exit(0)
print("not interrupted", flush=True)
sys.exit(1)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_while_a_group_waits_cancels_its_tasks_waits_and_reraises() -> None:
    returncode, out, err = interrupt_child(_SIGINT_CHILD)
    assert out == "interrupted [True, True] [False, False]\n", err
    assert returncode == 0


# -- the tutorial's AsyncZip -------------------------------------------------------


def zip_one(src: Path, dst: Path) -> Path:
    """AsyncZip.run, as a function: zip one file, stopping early if cancelled."""
    token = threadkit.current_token()
    with (
        zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zf,
        src.open("rb") as fin,
        zf.open(src.name, "w") as fout,
    ):
        while chunk := fin.read(64 * 1024):
            token.raise_if_cancelled()
            fout.write(chunk)
    return dst


def test_the_tutorials_async_zip_runs_in_the_background_and_returns_the_archive(
    tmp_path: Path,
) -> None:
    src = tmp_path / "mydata.txt"
    src.write_text("The quick brown fox jumps over the lazy dog.\n" * 5000)
    task = threadkit.spawn(zip_one, src, tmp_path / "myarchive.zip")
    # "The main program continues to run in foreground."
    archive = task.result(WAIT)
    assert archive == tmp_path / "myarchive.zip"
    with zipfile.ZipFile(archive) as zf:
        assert zf.testzip() is None
        assert zf.namelist() == ["mydata.txt"]
        assert zf.read("mydata.txt") == src.read_bytes()


def test_zipping_many_files_in_a_group_then_a_missing_one_fails_the_group(
    tmp_path: Path,
) -> None:
    sources = []
    for i in range(4):
        src = tmp_path / f"data{i}.txt"
        src.write_bytes(f"file {i}\n".encode() * 20000)
        sources.append(src)
    with threadkit.TaskGroup() as group:
        tasks = [group.spawn(zip_one, src, src.with_suffix(".zip")) for src in sources]
    for src, task in zip(sources, tasks, strict=True):
        with zipfile.ZipFile(task.result()) as zf:
            assert zf.read(src.name) == src.read_bytes()

    with (  # noqa: PT012
        pytest.raises(ExceptionGroup) as info,
        threadkit.TaskGroup() as group,
    ):
        group.spawn(zip_one, tmp_path / "missing.txt", tmp_path / "missing.zip")
        others = [group.spawn(zip_one, src, src.with_suffix(".z2")) for src in sources]
    [error] = info.value.exceptions
    assert isinstance(error, FileNotFoundError)
    for task in others:
        # Each sibling either finished its archive or stopped when asked.
        assert task.cancelled() or zipfile.ZipFile(task.result()).testzip() is None


# -- properties: random trees of tasks and groups ----------------------------------

leaves = st.sampled_from(["return", "fail", "wait", "ignore"]).map(lambda kind: ("leaf", kind))


def groups(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    # ("group", children, cancel the group in the block?, index of a task to cancel or None)
    return st.tuples(
        st.just("group"),
        st.lists(children, max_size=4),
        st.booleans(),
        st.none() | st.integers(min_value=0, max_value=3),
    )


trees = groups(st.recursive(leaves, groups, max_leaves=8))


def _flatten(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for e in exc.exceptions:
            yield from _flatten(e)
    else:
        yield exc


_WAITING = ("wait", "ignore")


class _Run:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.raised: list[BaseException] = []
        self.tasks: list[tuple[Any, threadkit.Task[Any]]] = []
        self.outlived: list[str] = []

    def node(self, node: Any) -> Any:
        if node[0] == "group":
            return self.group(node)
        kind = node[1]
        token = threadkit.current_token()
        if kind == "return":
            return "value"
        if kind == "fail":
            exc = ValueError("leaf failure")
            with self.lock:
                self.raised.append(exc)
            raise exc
        assert token.wait(WAIT), "a waiting leaf was never cancelled"
        if kind == "wait":
            token.raise_if_cancelled()
        return "ignored"

    def group(self, node: Any) -> None:
        _, children, cancel_in_block, cancel_one = node
        tasks: list[threadkit.Task[Any]] = []
        try:
            with threadkit.TaskGroup() as group:
                for child in children:
                    tasks.append(group.spawn(self.node, child))
                if cancel_one is not None and tasks:
                    tasks[cancel_one % len(tasks)].cancel()
                # Leaves that wait for cancellation need someone to cancel them.
                if cancel_in_block or any(c[0] == "leaf" and c[1] in _WAITING for c in children):
                    group.cancel()
        finally:
            with self.lock:
                self.tasks.extend(zip(children, tasks, strict=False))
                self.outlived.extend(t.name for t in tasks if t.thread.is_alive())

    def check_outcome(self, node: Any, task: threadkit.Task[Any]) -> None:
        assert task.done()
        if task.cancelled():
            assert node != ("leaf", "ignore") or task.token.cancelled
            return
        exc = task.exception()
        if node[0] == "group":
            assert exc is None or isinstance(exc, BaseExceptionGroup)
        elif node[1] == "fail":
            assert exc is not None
            assert any(exc is e for e in self.raised)
        else:
            assert node[1] != "wait", "a leaf that raised Cancelled must end cancelled"
            assert exc is None
            assert task.result() == {"return": "value", "ignore": "ignored"}[node[1]]


@settings(max_examples=100, deadline=None)
@given(tree=trees)
def test_every_outcome_in_a_tree_of_groups_is_reported_exactly_once(tree: Any) -> None:
    run = _Run()
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Collect(logging.ERROR)
    logging.getLogger("threadkit").addHandler(handler)
    try:
        try:
            run.group(tree)
        except BaseExceptionGroup as eg:
            reported = list(_flatten(eg))
        else:
            reported = []
    finally:
        logging.getLogger("threadkit").removeHandler(handler)
    assert run.outlived == []
    for node, task in run.tasks:
        run.check_outcome(node, task)
    counts = Counter(id(e) for e in reported)
    assert all(n == 1 for n in counts.values())
    assert set(counts) == {id(e) for e in run.raised}
    assert records == []


# -- the public face ---------------------------------------------------------------

_OURS = [
    "CancelRegistration",
    "CancelToken",
    "Cancelled",
    "GroupClosed",
    "Task",
    "TaskGroup",
    "current_token",
    "spawn",
]


@pytest.mark.parametrize("name", _OURS)
def test_each_task_and_cancel_name_is_public_and_in_the_reference(name: str) -> None:
    pages = (Path(__file__).parent.parent / "docs" / "reference").glob("*.rst")
    reference = "\n".join(page.read_text() for page in pages)
    assert name in threadkit.__all__
    assert getattr(threadkit, name).__module__ == "threadkit"
    assert re.search(rf"^\.\. auto\w+:: {name}(\(\))?$", reference, re.MULTILINE)


# -- bookkeeping never depends on user code returning ------------------------------


def _run_block_in_a_thread(block: Any) -> tuple[threading.Thread, list[BaseException | None]]:
    """Run *block* in a daemon thread (so that a hang fails the test, not the run)."""
    outcome: list[BaseException | None] = []

    def body() -> None:
        try:
            block()
        except BaseException as exc:  # routed to the test through outcome
            outcome.append(exc)
        else:
            outcome.append(None)

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread, outcome


@pytest.mark.parametrize("raised", [SystemExit, KeyboardInterrupt, threadkit.Cancelled])
def test_a_done_callback_raising_a_base_exception_does_not_hang_the_group_and_is_logged(
    errors_logged: list[logging.LogRecord], raised: type[BaseException]
) -> None:
    release = threading.Event()
    after: list[str] = []

    def callback(_task: object) -> None:
        raise raised("from the callback")

    def block() -> None:
        with threadkit.TaskGroup(name="g") as group:
            task = group.spawn(release.wait, WAIT)
            task.name = "t"
            task.add_done_callback(callback)
            task.add_done_callback(lambda _t: after.append("later callback"))
            release.set()

    thread, outcome = _run_block_in_a_thread(block)
    thread.join(WAIT)
    assert not thread.is_alive(), "the group hung"
    assert outcome == [None]
    assert after == ["later callback"]
    [record] = errors_logged
    assert record.getMessage() == (
        f"done callback {callback!r} of threadkit task 't' raised {raised.__name__}"
    )
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], raised)


def test_an_exception_in_a_done_callback_is_logged_and_the_next_callback_runs(
    errors_logged: list[logging.LogRecord],
) -> None:
    after: list[str] = []

    def callback(_task: object) -> None:
        raise ValueError("bad callback")

    release = threading.Event()
    task = threadkit.spawn(release.wait, WAIT)
    task.name = "t"
    task.add_done_callback(callback)
    task.add_done_callback(lambda _t: after.append("later callback"))
    release.set()
    assert task.join(WAIT)
    assert after == ["later callback"]
    [record] = errors_logged
    assert record.getMessage() == (
        f"done callback {callback!r} of threadkit task 't' raised ValueError"
    )


@pytest.mark.parametrize("raised", [SystemExit, KeyboardInterrupt])
def test_a_group_token_callback_raising_in_a_failing_task_does_not_hang_the_group(
    errors_logged: list[logging.LogRecord], raised: type[BaseException]
) -> None:
    def callback() -> None:
        raise raised("from the token callback")

    def block() -> None:
        with threadkit.TaskGroup(name="g") as group:
            group.token.on_cancel(callback)
            release = threading.Event()
            group.spawn(lambda: (release.wait(WAIT), boom("task failed"))).name = "t"
            release.set()

    thread, outcome = _run_block_in_a_thread(block)
    thread.join(WAIT)
    assert not thread.is_alive(), "the group hung"
    [error] = outcome
    assert isinstance(error, ExceptionGroup)
    assert [str(e) for e in error.exceptions] == ["task failed"]
    [record] = errors_logged
    assert record.getMessage() == (
        f"a cancel callback of task group 'g' raised {raised.__name__} in threadkit task 't'"
    )
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], raised)


@pytest.mark.parametrize("raised", [threadkit.Cancelled, SystemExit, KeyboardInterrupt])
def test_a_group_token_callback_raising_at_exit_is_raised_only_after_every_task_ended(
    errors_logged: list[logging.LogRecord], raised: type[BaseException]
) -> None:
    parked = threading.Event()
    release = threading.Event()
    block_ended = threading.Event()
    task_done_at_the_end: list[bool] = []

    def callback() -> None:
        raise raised("from the token callback")

    started = threading.Event()

    def stubborn() -> None:
        token = threadkit.current_token()
        started.set()
        assert token.wait(WAIT)
        parked.set()
        release.wait(WAIT)  # ignores its token until released

    def block() -> None:
        try:
            with threadkit.TaskGroup(name="g") as group:
                group.token.on_cancel(callback)
                task = group.spawn(stubborn)
                task.name = "t"
                # Started first: a task whose group is cancelled before it
                # starts never runs (documented), and this one must be running.
                assert started.wait(WAIT)
                raise ValueError("the block failed")
        finally:
            task_done_at_the_end.append(task.done())
            block_ended.set()

    thread, outcome = _run_block_in_a_thread(block)
    try:
        assert parked.wait(WAIT)
        # The block must still be waiting for its task.
        assert not block_ended.wait(0.2)
    finally:
        release.set()
        thread.join(WAIT)
    assert task_done_at_the_end == [True]
    [error] = outcome
    assert type(error) is raised
    assert isinstance(error.__context__, ValueError)
    assert errors_logged == []


def test_a_failed_task_frees_its_arguments_by_reference_counting() -> None:
    class Argument:
        pass

    def fail(_argument: Argument) -> None:
        raise ValueError("failed")

    argument = Argument()
    freed = weakref.ref(argument)
    gc.disable()
    try:
        task = threadkit.spawn(fail, argument)
        del argument
        with pytest.raises(ValueError, match=r"^failed$"):
            task.result(WAIT)
        assert isinstance(task.exception(), ValueError)
        assert task.join(WAIT)
        del task
        assert freed() is None
    finally:
        gc.enable()


# -- Ctrl-C inside spawn() ---------------------------------------------------------


def test_a_ctrl_c_mangled_by_thread_start_surfaces_as_the_interrupt_and_the_task_is_awaited(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """CPython's Condition.wait can turn a signal's exception into RuntimeError.

    A KeyboardInterrupt raised inside Thread.start() just as its wait ends
    leaves it as RuntimeError('release unlocked lock') with the interrupt as
    __context__ (the [group] case of test_signals.py ended with an
    ExceptionGroup that way).  Simulated here after a real start.
    """
    original = threading.Thread.start
    started: list[threading.Thread] = []
    running = threading.Event()

    def mangled_start(self: threading.Thread) -> None:
        original(self)
        started.append(self)
        # The thread has claimed its task (it runs it): the interrupt comes
        # after the launch, the case this test is about.  One that wins the
        # claim first undoes the admission (the next test).
        assert running.wait(WAIT)
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise RuntimeError("release unlocked lock") from None

    group = threadkit.TaskGroup(name="g")

    def task() -> None:
        running.set()
        wait_for_cancel()

    def block() -> None:
        with group:
            monkeypatch.setattr(threading.Thread, "start", mangled_start)
            try:
                group.spawn(task)
            finally:
                monkeypatch.undo()

    with pytest.raises(KeyboardInterrupt):
        block()
    # The launched task was cancelled and waited for, not abandoned.
    [thread] = started
    assert not thread.is_alive()
    assert repr(group) == "<TaskGroup 'g' closed, 0 running, 0 failed, cancelled>"


def test_a_ctrl_c_before_the_thread_launched_undoes_the_admission(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def interrupted_start(self: threading.Thread) -> None:
        raise KeyboardInterrupt

    ran: list[str] = []
    group = threadkit.TaskGroup(name="g")

    def block() -> None:
        with group:
            monkeypatch.setattr(threading.Thread, "start", interrupted_start)
            try:
                group.spawn(ran.append, "ran")
            finally:
                monkeypatch.undo()

    with pytest.raises(KeyboardInterrupt):
        block()
    # The block did not wait for a task that never ran.
    assert repr(group) == "<TaskGroup 'g' closed, 0 running, 0 failed, cancelled>"
    assert ran == []


def test_a_group_token_callback_raising_in_the_timer_thread_is_logged_and_the_group_times_out(
    errors_logged: list[logging.LogRecord],
) -> None:
    def callback() -> None:
        raise KeyboardInterrupt

    def block() -> None:
        with threadkit.TaskGroup(name="g", timeout=0.01) as group:
            group.token.on_cancel(callback)
            group.spawn(wait_for_cancel)

    with pytest.raises(TimeoutError, match=r"^task group 'g' timed out after 0\.01 s$"):
        block()
    [record] = errors_logged
    assert record.getMessage() == (
        "a cancel callback of task group 'g' raised KeyboardInterrupt in its timer thread"
    )
