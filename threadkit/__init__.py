"""threadkit: thread-coordination helpers built on the standard library.

Everything public is importable from here; the submodules are private, except
:mod:`threadkit.checks`, which switches the checks of threadkit's locks.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from threadkit import checks
from threadkit._errors import (
    DeadlockError,
    LockOrderError,
    LockOwnershipError,
    LockTimeoutError,
    MailboxFull,
    WorkerClosed,
)
from threadkit._sync import (
    BoundedSemaphore,
    Condition,
    ConditionStatistics,
    Event,
    EventStatistics,
    Lock,
    LockStatistics,
    RLock,
    Semaphore,
    SemaphoreStatistics,
)
from threadkit._worker import ResourceWorker

__all__ = [
    "BoundedSemaphore",
    "Condition",
    "ConditionStatistics",
    "DeadlockError",
    "Event",
    "EventStatistics",
    "Lock",
    "LockOrderError",
    "LockOwnershipError",
    "LockStatistics",
    "LockTimeoutError",
    "MailboxFull",
    "RLock",
    "ResourceWorker",
    "Semaphore",
    "SemaphoreStatistics",
    "WorkerClosed",
    "checks",
]

try:
    __version__ = version("threadkit")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

# Tracebacks, reprs and the Sphinx reference show the public name
# (threadkit.ResourceWorker), never the private module it lives in.
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type):
        _obj.__module__ = __name__
del _name, _obj
