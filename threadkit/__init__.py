"""threadkit: thread-coordination helpers built on the standard library.

Everything public is importable from here; the submodules are private.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from threadkit._cancel import CancelRegistration, CancelToken, current_token
from threadkit._errors import (
    BatchError,
    Cancelled,
    DeadlockError,
    GroupClosed,
    MailboxFull,
    WorkerClosed,
)
from threadkit._executor import SerialExecutor
from threadkit._task import Task, TaskGroup, spawn
from threadkit._worker import ResourceWorker

__all__ = [
    "BatchError",
    "CancelRegistration",
    "CancelToken",
    "Cancelled",
    "DeadlockError",
    "GroupClosed",
    "MailboxFull",
    "ResourceWorker",
    "SerialExecutor",
    "Task",
    "TaskGroup",
    "WorkerClosed",
    "current_token",
    "spawn",
]

try:
    __version__ = version("threadkit")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

# Tracebacks, reprs and the Sphinx reference show the public name
# (threadkit.ResourceWorker), never the private module it lives in.
for _name in __all__:
    globals()[_name].__module__ = __name__
del _name
