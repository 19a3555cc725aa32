"""Shared fixtures.

``THREADKIT_SWITCH_INTERVAL`` (set by the ``tests_dev`` nox session)
lowers the GIL switch interval for the whole run, so that threads interleave
far more often than they do by default and races show up as failures.
"""

from __future__ import annotations

import gc
import importlib.util
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from time import monotonic

import pytest
from hypothesis import HealthCheck, settings

_interval = os.environ.get("THREADKIT_SWITCH_INTERVAL")
if _interval:
    sys.setswitchinterval(float(_interval))

settings.register_profile(
    "threadkit",
    deadline=None,  # thread wake-ups make example durations noisy
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "ci", parent=settings.get_profile("threadkit"), max_examples=50, derandomize=True
)
settings.load_profile("ci" if os.environ.get("CI") == "true" else "threadkit")

# Every blocking wait inside a test is bounded by this many seconds.
WAIT = 10.0


@pytest.fixture(autouse=True)
def no_thread_left_behind() -> Iterator[None]:
    """Fail a test that leaves a threadkit thread running after it ends."""
    before = set(threading.enumerate())
    yield
    leftover = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    for t in leftover:
        t.join(WAIT)
    still = [t.name for t in leftover if t.is_alive()]
    assert not still, f"threads left running: {still}"


@pytest.fixture(scope="session", autouse=True)
def ray_first(request: pytest.FixtureRequest) -> None:
    """Start Ray before the first test that needs it (marked ``ray``) counts threads.

    Without Ray, those tests skip themselves; skipping here would skip them all.
    """
    wanted = any(item.get_closest_marker("ray") for item in request.session.items)
    if wanted and importlib.util.find_spec("ray") is not None:
        request.getfixturevalue("ray_cluster")


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    """One embedded Ray for the whole run (starting it costs seconds), warmed up.

    The warm-up makes Ray start the threads it keeps in this process (the one
    that completes its futures among them) before any test counts threads.
    """
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'threadkit[ray]')")
    from threadkit.ray import RayWorker  # noqa: PLC0415  # only where Ray is

    with RayWorker(object, name="warm-up") as w:
        w.submit(id).result(WAIT)
    yield
    ray.shutdown()


@pytest.fixture
def no_automatic_gc() -> Iterator[None]:
    """Collect only where the test says so (the face is freed by the cycle collector)."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def interrupt_child(code: str, *args: str) -> tuple[int, str, str]:
    """Run ``python -c code *args``, wait for its ``ready`` line, Ctrl-C it; return (rc, out, err).

    The child runs with ``-X faulthandler``, so that one that hangs shows where
    (:func:`interrupt_until_it_reacts`); the ``with`` block closes its pipes
    even when the test fails, so that no ResourceWarning lands in a later test.
    """
    with subprocess.Popen(
        [sys.executable, "-X", "faulthandler", "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline() == "ready\n"
            out, err = interrupt_until_it_reacts(proc)
        finally:
            proc.kill()
            proc.wait(WAIT)
    return proc.returncode, out, err


def interrupt_until_it_reacts(proc: subprocess.Popen[str], every: float = 2.0) -> tuple[str, str]:
    """Send SIGINT to *proc*, again while it has printed nothing; return its output.

    CPython notices a signal in the main thread when the C call it is in
    returns with EINTR; one that lands after the last check and before a
    blocking wait begins (a lock's, with no timeout) is noticed only when
    that wait ends, which in these children is never (a user would press
    Ctrl-C again).  So the signal is repeated, at an interval far longer
    than the child's reaction takes, until the child shows it reacted.

    A child that has not exited by the deadline is sent SIGABRT, and the
    test fails with what it printed: run with ``-X faulthandler``, it prints
    the stack of every thread, which says where it hung.
    """
    deadline = monotonic() + WAIT
    proc.send_signal(signal.SIGINT)
    while True:
        try:
            return proc.communicate(timeout=every)
        except subprocess.TimeoutExpired as exc:
            if monotonic() > deadline:
                proc.send_signal(signal.SIGABRT)
                out, err = proc.communicate(timeout=WAIT)
                raise AssertionError(
                    f"the child did not exit within {WAIT} s of the first SIGINT;"
                    f" stdout: {out!r}; stderr:\n{err}"
                ) from None
            if not exc.output:
                proc.send_signal(signal.SIGINT)
