"""Shared fixtures.

``THREADKIT_SWITCH_INTERVAL`` (set by the ``tests_dev`` nox session)
lowers the GIL switch interval for the whole run, so that threads interleave
far more often than they do by default and races show up as failures.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
from collections.abc import Iterator

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


@pytest.fixture
def no_automatic_gc() -> Iterator[None]:
    """Collect only where the test says so (the face is freed by the cycle collector)."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
