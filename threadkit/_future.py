"""The future handed out by threadkit: a real :class:`concurrent.futures.Future`, built lazily.

A stock ``Future`` builds a :class:`threading.Condition` (an ``RLock``, a deque and
six bound methods) plus two lists the moment it is created: about 1.6 KB, most of
a queued request's memory, paid even by futures that are never waited on.
:class:`LazyFuture` is a subclass whose ``_condition``, ``_waiters`` and
``_done_callbacks`` appear on first use instead.  Every ``Future`` method, and
:func:`concurrent.futures.wait` / :func:`~concurrent.futures.as_completed`, which
read those attributes directly, go through ordinary attribute access, so they
cannot tell the difference.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from concurrent.futures._base import PENDING
from typing import Any, TypeVar

__all__ = ["LazyFuture"]

T = TypeVar("T")

_LAZY = frozenset({"_condition", "_waiters", "_done_callbacks"})


class LazyFuture(Future[T]):
    """A :class:`concurrent.futures.Future` whose synchronisation state is created on demand."""

    def __init__(self) -> None:
        # Deliberately not calling Future.__init__: it would build the Condition.
        self._state = PENDING
        self._result = None
        self._exception = None

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup fails, i.e. on the first use of one of
        # the lazy attributes.  dict.setdefault is atomic, so two threads racing
        # here agree on one object: the loser's fresh Condition is discarded
        # before anyone could have locked it.
        if name == "_condition":
            return self.__dict__.setdefault(name, threading.Condition())
        if name in _LAZY:
            return self.__dict__.setdefault(name, [])
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
