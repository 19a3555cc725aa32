"""threadkit: thread-coordination helpers built on the standard library.

Everything public is importable from here; the submodules are private, except
:mod:`threadkit.checks` and :mod:`threadkit.ray` (which imports Ray only when a
worker starts).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from types import ModuleType

from threadkit import checks, ray
from threadkit._cancel import CancelRegistration, CancelToken, current_token, queue_get
from threadkit._dump import dump, dump_path, install_dump_handler
from threadkit._errors import (
    BatchError,
    Cancelled,
    DeadlockError,
    GroupClosed,
    LockOrderError,
    LockOwnershipError,
    LockTimeoutError,
    MailboxFull,
    WorkerClosed,
)
from threadkit._executor import SerialExecutor
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
from threadkit._task import Task, TaskGroup, spawn
from threadkit._worker import ResourceWorker

__all__ = [
    "BatchError",
    "BoundedSemaphore",
    "CancelRegistration",
    "CancelToken",
    "Cancelled",
    "Condition",
    "ConditionStatistics",
    "DeadlockError",
    "Event",
    "EventStatistics",
    "GroupClosed",
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
    "SerialExecutor",
    "Task",
    "TaskGroup",
    "WorkerClosed",
    "checks",
    "current_token",
    "dump",
    "dump_path",
    "install_dump_handler",
    "queue_get",
    "ray",
    "spawn",
]

try:
    __version__ = version("threadkit")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

# Tracebacks, reprs and the Sphinx reference show the public name
# (threadkit.ResourceWorker), never the private module it lives in.
for _name in __all__:
    _obj = globals()[_name]
    if not isinstance(_obj, ModuleType):  # classes and functions, not threadkit.checks
        _obj.__module__ = __name__
del _name, _obj
