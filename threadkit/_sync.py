"""Lock, RLock, Condition, Semaphore, BoundedSemaphore, Event: the stdlib's, checked.

Design notes
------------
*A lock's behaviour is bound at construction.*  ``threading.Lock`` is a C
type that cannot be subclassed, and a Python method around its ``acquire``
doubles the cost of every acquisition.  So :class:`Lock` and :class:`RLock`
keep their behaviour in *slots*: ``acquire``, ``release``, ``__enter__``,
``__exit__`` (and the private methods :class:`threading.Condition` looks
for) are instance attributes filled in by ``__init__``.  With checks off,
``release`` and ``__exit__`` are the bound methods of the underlying C lock,
so they cost one slot read and one C call (the interpreter looks ``__exit__``
up on the type, finds the slot's member descriptor, and calls what the slot
holds); ``acquire`` and ``__enter__`` are one Python frame around the C
lock's non-blocking ``acquire``, because a blocking acquisition must see
whether the thread's token can be cancelled (see *Cancellable waits*).  With checks on (or
``raise_on_timeout``) they are the bound methods of a *tracker*
(:class:`_LockTracker`, :class:`_RLockTracker`), which keeps the owner and
talks to :mod:`threadkit.checks`.  The tracker never references the public
object, so a lock is freed by reference counting alone (no cycle), and its
weak reference in the lock-order graph dies with it.

*Condition, Semaphore, BoundedSemaphore and Event subclass the threading
classes*, which are written in Python over a lock: they inherit the exact
semantics (and the bug fixes of every Python version) and add a name, a live
``repr`` and ``statistics()``.  :class:`threading.Condition` works with a
threadkit lock, and :class:`Condition` with a threading lock, through the
``_is_owned``/``_release_save``/``_acquire_restore`` protocol that
``threading.Condition`` already uses.

*Cancellable waits.*  A blocking wait in a thread whose token can be
cancelled (:func:`threadkit._cancel._cancellable`) raises
:class:`~threadkit.Cancelled` when the token is.  Condition waits (and so
Semaphore and Event, whose ``_cond`` is replaced by a cancellable one) put a
``_Waiter`` in the condition's waiter list, which ``notify`` and the cancel
callback race to claim (see ``threadkit._cancel._Waiter``).  A C lock has no
waiter list and cannot be interrupted, so a contended acquisition by such a
thread is made by a helper thread that hands the lock over (see
``_acquire_cancellable``).  A thread without a token takes exactly the
stdlib's path.
"""

from __future__ import annotations

import functools
import os
import re
import sys
import threading
from _thread import RLock as _CRLock
from _thread import allocate_lock, get_ident
from collections.abc import Callable
from dataclasses import dataclass
from queue import Empty, SimpleQueue
from time import monotonic
from types import TracebackType
from typing import TYPE_CHECKING, Any

from threadkit import checks
from threadkit._cancel import (
    _W_CANCELLED,
    _W_NOTIFIED,
    _W_TIMED_OUT,
    _cancellable,
    _wait_condition,
    _Waiter,
)
from threadkit._errors import Cancelled, DeadlockError, LockOwnershipError, LockTimeoutError
from threadkit.checks import _EMPTY, _local, _nodes, _out, _waiting

__all__ = [
    "BoundedSemaphore",
    "Condition",
    "ConditionStatistics",
    "Event",
    "EventStatistics",
    "Lock",
    "LockStatistics",
    "RLock",
    "Semaphore",
    "SemaphoreStatistics",
]


def _bind(obj: object, **methods: object) -> None:
    # The behaviour slots of Lock and RLock.  Through setattr, because type
    # checkers see those names as methods (declared under TYPE_CHECKING).
    for name, method in methods.items():
        setattr(obj, name, method)


def _check_name(name: str | None) -> None:
    if name is not None and not isinstance(name, str):
        raise TypeError(f"name must be a str or None, got {type(name).__name__!r}")


def _check_timeout_args(blocking: bool, timeout: float) -> None:
    # The C lock's own argument errors, with its own messages (which differ
    # between Python versions): a fresh unlocked lock either raises them or is
    # acquired at once, never waiting.  Run before any edge is recorded.
    allocate_lock().acquire(blocking, timeout)


# -- cancellable acquisition ---------------------------------------------------------

# A thread blocked in a C lock's acquire() wakes only when the lock is
# released: nothing else can interrupt it.  So a thread whose token can be
# cancelled does not block there itself when the lock is taken: a helper
# thread does, and hands the lock over; the waiter blocks on a _Waiter that
# the helper (lock taken, or timed out) or a cancel callback settles,
# whichever comes first.  A helper that takes the lock for a waiter that has
# already given up releases it at once: no acquisition is ever lost or
# leaked.  Helpers are reused: they wait for work on a queue and exit after
# _HELPER_IDLE seconds without any (a burst of contention reuses them; none
# stays around once it is over).
_HELPER_IDLE = 0.1
_helper_jobs: SimpleQueue[Callable[[], None]] = SimpleQueue()
_helper_lock = allocate_lock()
_helper_idle = 0  # helpers waiting for a job; changed under _helper_lock


def _helper() -> None:
    global _helper_idle
    while True:
        try:
            job = _helper_jobs.get(timeout=_HELPER_IDLE)
        except Empty:
            with _helper_lock:
                # A job put (under this lock) since the get() timed out was
                # counted on an idle helper: maybe this one, so stay.
                if not _helper_jobs.empty():
                    continue
                _helper_idle -= 1
                return
        job()
        del job
        with _helper_lock:
            _helper_idle += 1


def _run_in_helper(job: Callable[[], None]) -> None:
    global _helper_idle
    # Put under the lock, so that an idle helper retiring at this moment
    # sees the job (see _helper) and stays.
    with _helper_lock:
        _helper_jobs.put(job)
        start = not _helper_idle
        if not start:
            _helper_idle -= 1  # reserved: one waiting helper will take a job
    if start:
        threading.Thread(target=_helper, name="threadkit lock helper", daemon=True).start()


def _reset_helpers_in_child() -> None:
    global _helper_jobs, _helper_lock, _helper_idle
    # The helpers did not survive the fork.
    _helper_jobs = SimpleQueue()
    _helper_lock = allocate_lock()
    _helper_idle = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_helpers_in_child)


def _acquire_cancellable(
    token: Any,
    grab: Callable[[float], bool],
    give_back: Callable[[], None],
    timeout: float,
    hand_over: Callable[[], None] | None = None,
) -> bool:
    """Acquire through a helper thread, so that cancelling *token* wakes the waiter.

    *grab(timeout)* blocks to take the underlying lock (as the helper);
    *give_back()* releases it (as the helper); *hand_over()*, if given, makes
    it the waiting thread's (an owned lock).  The lock is the waiter's only
    if the helper claims the wait first; a cancel that claims it first wins,
    and the helper then releases the lock as soon as it gets it (until then
    the lock has one more contender than the program can see).

    Raises:
        Cancelled: *token* was cancelled before the lock was taken.
    """
    token.raise_if_cancelled()
    waiter = _Waiter()
    # The helper alone decides a timeout (the waiter blocks without one): a
    # waiter that timed out on its own would leave the helper waiting in
    # grab(), to take the lock later for nobody, and the lock would look held
    # after this acquire() returned False (CPython's lock_tests
    # test_state_after_timeout).  A cancel can still leave it so: see below.
    deadline = monotonic() + timeout if timeout >= 0 else None

    def job() -> None:
        if not grab(-1 if deadline is None else max(0.0, deadline - monotonic())):
            waiter.settle(_W_TIMED_OUT)
        elif not waiter.claim():
            give_back()  # the waiter gave up first: never keep a lock for nobody
        else:
            # Claimed: the waiter waits for the hand-over, cancel or not.
            try:
                if hand_over is not None:
                    hand_over()
            finally:
                waiter.open(_W_NOTIFIED)

    try:
        with token.on_cancel(waiter.cancel):
            _run_in_helper(job)
            outcome = waiter.block(None)
    finally:
        # Left by an interrupt: the helper gives the lock back when it gets it.
        waiter.settle(_W_TIMED_OUT)
    if outcome == _W_CANCELLED:
        raise Cancelled(token.reason)
    return outcome == _W_NOTIFIED


def _identify(lock: object, kind: str, name: str | None, *, order: bool) -> tuple[int, str]:
    """The registry key (0 if unregistered) and the label of a tracked lock."""
    key = next(checks._keys) if order else 0
    if name is not None:
        label = f"{kind} {name!r}"
    else:
        # Unnamed locks are told apart by number and by where they were made.
        filename, lineno = checks._caller()
        label = f"{kind}{f'#{key}' if key else ''} (created at {filename}:{lineno})"
    if order:
        checks._register(lock, key, label)
    return key, label


# -- statistics ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LockStatistics:
    """A snapshot of a :class:`Lock` or :class:`RLock`, from ``statistics()``.

    Fields that only a checked lock knows are ``None`` for a lock created with
    checks off.

    Attributes:
        name: The lock's name, or ``None``.
        locked: Whether some thread holds the lock.
        count: How many times the holder has acquired it (0 or 1 for a :class:`Lock`).
        owner: The name of the thread that holds it; ``None`` if free or not known.
        held_for: Seconds since the holder acquired it; ``None`` if free or not tracked.
        waiting: How many threads are blocked acquiring it; ``None`` if not checked.
        checked: Whether the lock takes part in lock-order and ownership checks.

    .. versionadded:: 0.1
    """

    name: str | None
    locked: bool
    count: int
    owner: str | None
    held_for: float | None
    waiting: int | None
    checked: bool


@dataclass(frozen=True, slots=True)
class ConditionStatistics:
    """A snapshot of a :class:`Condition`, from :meth:`Condition.statistics`.

    Attributes:
        name: The condition's name, or ``None``.
        waiting: How many threads are inside :meth:`~threading.Condition.wait` (notified or not).
        lock: The statistics of its lock, if it is a threadkit lock.

    .. versionadded:: 0.1
    """

    name: str | None
    waiting: int
    lock: LockStatistics | None


@dataclass(frozen=True, slots=True)
class SemaphoreStatistics:
    """A snapshot of a :class:`Semaphore` or :class:`BoundedSemaphore`.

    Attributes:
        name: The semaphore's name, or ``None``.
        value: The counter: how many ``acquire()`` calls would succeed at once.
        bound: The initial value a :class:`BoundedSemaphore` may not exceed; ``None`` if unbounded.

    .. versionadded:: 0.1
    """

    name: str | None
    value: int
    bound: int | None


@dataclass(frozen=True, slots=True)
class EventStatistics:
    """A snapshot of an :class:`Event`, from :meth:`Event.statistics`.

    Attributes:
        name: The event's name, or ``None``.
        is_set: Whether the flag is set.

    .. versionadded:: 0.1
    """

    name: str | None
    is_set: bool


# -- trackers: the checked behaviour of Lock and RLock ------------------------------------


class _LockTracker:
    """The behaviour of a checked (or timeout-raising) :class:`Lock`.

    ``owner`` and ``since`` are written only by the thread that holds
    ``lock``, right after acquiring it and right before releasing it; other
    threads read them only for reports, where a stale value is harmless.
    ``order`` says whether the lock takes part in lock-order and ownership
    checks (checks were on when it was created).

    The methods are the hot path of a checked lock: they inline what they
    could call, because each Python call costs as much as the C lock itself.
    """

    __slots__ = ("key", "label", "lock", "order", "owner", "raise_on_timeout", "since")

    def __init__(self, label: str, key: int, *, order: bool, raise_on_timeout: bool) -> None:
        self.lock = allocate_lock()
        self.label = label
        self.key = key
        self.order = order
        self.raise_on_timeout = raise_on_timeout
        self.owner: int | None = None
        self.since = 0.0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if timeout != -1:
            _check_timeout_args(blocking, timeout)
        me = get_ident()
        if not self.order:
            if self.lock.acquire(False) or (blocking and self._wait(me, timeout)):
                self.owner = me
                self.since = monotonic()
                return True
            return False
        try:
            held: list[int] = _local.held
        except AttributeError:
            held = _local.held = []
        if blocking:
            if self.owner == me and timeout == -1:
                raise DeadlockError(
                    f"acquiring {self.label} again in the thread that holds it would wait "
                    "forever; use an RLock, or pass a timeout"
                )
            key = self.key
            for h in held:
                if key not in _out.get(h, _EMPTY) and h != key:
                    checks._check_order(key, held)
                    break
        if self.lock.acquire(False) or (blocking and self._wait(me, timeout)):
            self.owner = me
            self.since = monotonic()
            held.append(self.key)
            return True
        return False

    def _wait(self, me: int, timeout: float, *, cancellable: bool = True) -> bool:
        # A zero timeout does not wait, so it is not cancelled.
        token = _cancellable() if cancellable and timeout != 0 else None
        lock = self.lock
        if self.order:
            _waiting[me] = (self.key, monotonic())
            try:
                if token is None:
                    got = lock.acquire(True, timeout)
                else:
                    got = _acquire_cancellable(token, self._take, lock.release, timeout)
            finally:
                del _waiting[me]
        elif token is None:
            got = lock.acquire(True, timeout)
        else:
            got = _acquire_cancellable(token, self._take, lock.release, timeout)
        if not got and self.raise_on_timeout:
            raise LockTimeoutError(self._timeout_message(timeout))
        return got

    def _take(self, timeout: float) -> bool:
        return self.lock.acquire(True, timeout)

    def _timeout_message(self, timeout: float) -> str:
        owner, since = self.owner, self.since
        if owner is None:
            holder = "it was released just as the wait ended"
        else:
            holder = (
                f"held by thread {checks._thread_name(owner)!r} for {monotonic() - since:.2f} s"
            )
        return f"timed out after {timeout:g} s acquiring {self.label}: {holder}"

    def _not_owner(self, owner: int) -> LockOwnershipError:
        return LockOwnershipError(
            f"cannot release {self.label}: it is held by thread "
            f"{checks._thread_name(owner)!r}, not by this thread"
        )

    def release(self) -> None:
        if self.order:
            owner = self.owner
            if owner != get_ident():
                if owner is None:
                    raise RuntimeError("release unlocked lock")
                raise self._not_owner(owner)
            held: list[int] = _local.held
            key = self.key
            if held[-1] == key:
                held.pop()
            else:
                held.remove(key)
        self.owner = None
        # Without checks: raises the stdlib's "release unlocked lock" if free.
        self.lock.release()

    def exit(self, *exc_info: object) -> None:
        self.release()

    def is_owned(self) -> bool:
        return self.owner == get_ident()

    def release_save(self) -> Any:
        self.release()

    def acquire_restore(self, _state: Any) -> None:
        # The re-acquisition at the end of Condition.wait(): no edge is
        # recorded (threadkit's Condition.wait checked the order up front).
        me = get_ident()
        if not self.lock.acquire(False):
            # Not cancellable: Condition.wait must hold the lock again when
            # it returns or raises.
            self._wait(me, -1, cancellable=False)
        self.owner = me
        self.since = monotonic()
        if self.order:
            _held().append(self.key)

    def at_fork_reinit(self) -> None:
        # In the child only the forking thread is left: forget the old holder.
        if self.order and self.owner == get_ident():
            _unhold(self.key)
        self.owner = None
        self.lock._at_fork_reinit()  # type: ignore[attr-defined]  # private, exists since 3.9


class _RLockTracker(_LockTracker):
    """The behaviour of a checked (or timeout-raising) :class:`RLock`.

    ``count`` is written only by the holder.
    """

    __slots__ = ("count",)

    def __init__(self, label: str, key: int, *, order: bool, raise_on_timeout: bool) -> None:
        super().__init__(label, key, order=order, raise_on_timeout=raise_on_timeout)
        self.count = 0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if timeout != -1:
            _check_timeout_args(blocking, timeout)
        me = get_ident()
        if self.owner == me:
            self.count += 1  # re-entry: it cannot wait, so it is no edge
            return True
        if not self.order:
            if self.lock.acquire(False) or (blocking and self._wait(me, timeout)):
                self.owner = me
                self.count = 1
                self.since = monotonic()
                return True
            return False
        try:
            held: list[int] = _local.held
        except AttributeError:
            held = _local.held = []
        if blocking:
            key = self.key
            for h in held:
                if key not in _out.get(h, _EMPTY):
                    checks._check_order(key, held)
                    break
        if self.lock.acquire(False) or (blocking and self._wait(me, timeout)):
            self.owner = me
            self.count = 1
            self.since = monotonic()
            held.append(self.key)
            return True
        return False

    def _check_held(self, me: int) -> None:
        owner = self.owner
        if owner != me:
            if owner is None:
                raise RuntimeError("cannot release un-acquired lock")
            raise self._not_owner(owner)

    def release(self) -> None:
        owner = self.owner
        if owner != get_ident():
            if owner is None:
                raise RuntimeError("cannot release un-acquired lock")
            raise self._not_owner(owner)
        self.count -= 1
        if not self.count:
            if self.order:
                held: list[int] = _local.held
                key = self.key
                if held[-1] == key:
                    held.pop()
                else:
                    held.remove(key)
            self.owner = None
            self.lock.release()

    def release_save(self) -> Any:
        self._check_held(get_ident())
        state = (self.count, self.owner)
        self.count = 0
        if self.order:
            _unhold(self.key)
        self.owner = None
        self.lock.release()
        return state

    def acquire_restore(self, state: Any) -> None:
        super().acquire_restore(state)
        self.count = state[0]  # the (count, owner) that release_save() returned

    def recursion_count(self) -> int:
        return self.count if self.owner == get_ident() else 0

    def at_fork_reinit(self) -> None:
        super().at_fork_reinit()
        self.count = 0


def _held() -> list[int]:
    try:
        held: list[int] = _local.held
    except AttributeError:
        held = _local.held = []
    return held


def _unhold(key: int) -> None:
    held = _held()
    if held and held[-1] == key:
        held.pop()
    elif key in held:
        held.remove(key)


def _plain_is_owned(lock: Any) -> bool:
    # What threading.Condition does for a lock without an owner: "held by
    # someone" is the best a plain lock can say.
    if lock.acquire(False):
        lock.release()
        return False
    return True


def _plain_acquire_restore(lock: Any, _state: object) -> None:
    lock.acquire()


def _held_for(tracker: _LockTracker) -> float | None:
    return monotonic() - tracker.since if tracker.owner is not None else None


def _waiting_for(tracker: _LockTracker) -> int | None:
    if not tracker.order:
        return None
    return sum(1 for key, _since in list(checks._waiting.values()) if key == tracker.key)


def _lock_repr(obj: Lock | RLock, stats: LockStatistics) -> str:
    state = "locked" if stats.locked else "unlocked"
    name = f" {stats.name!r}" if stats.name is not None else ""
    detail = ""
    if stats.owner is not None:
        detail = f" held by thread {stats.owner!r}"
    if isinstance(obj, RLock):
        # The stdlib's RLock repr shows ``count=N`` on every version, and
        # 3.14's lock tests pin it: there, free and held alike.
        detail += f" count={stats.count}"
    if stats.held_for is not None:
        detail += f" for {stats.held_for:.2f} s"
    if stats.waiting:
        detail += f", {stats.waiting} waiting"
    return f"<{state} threadkit.{type(obj).__qualname__} object{name}{detail} at {id(obj):#x}>"


# -- the public primitives ------------------------------------------------------------------


def _set_up(
    obj: Lock | RLock,
    kind: str,
    name: str | None,
    raise_on_timeout: bool,
    *,
    tracked: Callable[[Any], dict[str, object]],
    plain: Callable[[Any], dict[str, object]],
) -> None:
    """Fill a Lock's or RLock's method slots: the C lock's own, or a tracker's.

    The mode is chosen once, here (see :mod:`threadkit.checks`): with checks
    off the slots hold the C lock's bound methods (``acquire`` and
    ``__enter__``: one Python frame around them, see _plain_acquire).
    *tracked* and *plain* give the slots that differ between the two kinds.
    """
    _check_name(name)
    obj._name = name
    order = checks._enabled
    if order or raise_on_timeout:
        key, label = _identify(obj, kind, name, order=order)
        tracker_type = _LockTracker if kind == "Lock" else _RLockTracker
        t = obj._tracker = tracker_type(label, key, order=order, raise_on_timeout=raise_on_timeout)
        obj._lock = t.lock
        _bind(
            obj,
            acquire=t.acquire,
            release=t.release,
            __enter__=t.acquire,
            __exit__=t.exit,
            _is_owned=t.is_owned,
            _release_save=t.release_save,
            _acquire_restore=t.acquire_restore,
            _at_fork_reinit=t.at_fork_reinit,
            **tracked(t),
        )
    else:
        obj._tracker = None
        lock: Any = allocate_lock() if kind == "Lock" else _CRLock()
        obj._lock = lock
        acquire, enter = _plain_acquire(lock, kind)
        _bind(
            obj,
            acquire=acquire,
            release=lock.release,
            __enter__=enter,
            __exit__=lock.__exit__,
            _at_fork_reinit=lock._at_fork_reinit,
            **plain(lock),
        )


def _plain_acquire(lock: Any, kind: str) -> tuple[Callable[..., bool], Callable[[], bool]]:
    """The ``acquire`` and ``__enter__`` of an unchecked lock: the C lock's, made cancellable.

    A lock that is free is taken by one C call, as before; only a blocking
    acquisition of a taken lock reads the thread's token, and only a thread
    with a token takes the helper's way (see _acquire_cancellable).
    """
    try_acquire = lock.acquire
    # A C RLock belongs to a thread: the helper takes it as itself, then
    # (once it has won the wait) hands it over with _release_save and
    # _acquire_restore, which sets the owner.  Another thread may take it in
    # between; the hand-over then waits for it to be released.
    restore: Any = getattr(lock, "_acquire_restore", None)
    save: Any = getattr(lock, "_release_save", None)

    def take(timeout: float) -> bool:
        return try_acquire(True, timeout)  # type: ignore[no-any-return]

    def slow(blocking: bool, timeout: float) -> bool:
        if timeout != -1:
            _check_timeout_args(blocking, timeout)
            if try_acquire(False):
                return True
        if not blocking or timeout == 0:
            return False  # the C lock's answer too: it would not have waited
        token = _cancellable()
        if token is None:
            return try_acquire(True, timeout)  # type: ignore[no-any-return]
        hand_over: Callable[[], None] | None = None
        if kind != "Lock":
            owner = get_ident()

            def transfer() -> None:
                save()
                restore((1, owner))

            hand_over = transfer

        return _acquire_cancellable(token, take, lock.release, timeout, hand_over)

    # The fast path is one Python frame around one C call: every extra
    # operation here shows in benchmarks/bench_sync.py.
    def acquire(blocking: bool = True, timeout: float = -1) -> bool:
        if timeout == -1 and try_acquire(False):
            return True
        return slow(blocking, timeout)

    def enter() -> bool:
        return try_acquire(False) or slow(True, -1)

    return acquire, enter


class Lock:
    """A primitive lock: :class:`threading.Lock`, with a name and optional checks.

    Same methods and semantics as :class:`threading.Lock`: ``acquire(blocking=True,
    timeout=-1)``, ``release()``, ``locked()``, and use in a ``with`` block.  With
    checks off (the default), ``with lock:`` and ``release()`` run at the speed
    of the standard library's lock; ``acquire()`` costs one Python call more,
    because a blocking acquisition must be cancellable (see
    :ref:`cancellable-waits`).

    With checks on when it is created (:mod:`threadkit.checks`), it also

    - raises :class:`~threadkit.LockOrderError` from an acquisition that would
      close a cycle in the lock-order graph, before blocking;
    - raises :class:`~threadkit.DeadlockError` from a blocking acquisition
      without timeout by the thread that already holds it;
    - raises :class:`~threadkit.LockOwnershipError` from ``release()`` by a
      thread other than the holder (so hand-off between threads, which the
      standard library allows, is refused: use a :class:`Semaphore` for that).

    All methods may be called from any thread.

    Args:
        name: A name for reprs, statistics and error messages.
        raise_on_timeout: If true, an ``acquire(timeout=...)`` that times out
            raises :class:`~threadkit.LockTimeoutError` naming the holder thread
            and how long it has held the lock, instead of returning ``False``.
            Such a lock records its holder even with checks off.

    Raises:
        TypeError: If ``name`` is not a string.

    .. versionadded:: 0.1
    """

    __slots__ = (
        "__enter__",
        "__exit__",
        "__weakref__",
        "_acquire_restore",
        "_at_fork_reinit",
        "_is_owned",
        "_lock",
        "_name",
        "_release_save",
        "_tracker",
        "acquire",
        "locked",
        "release",
    )

    _name: str | None
    _lock: Any
    _tracker: _LockTracker | None
    if TYPE_CHECKING:
        # What the slots hold, as type checkers should see it: methods.
        def acquire(self, blocking: bool = True, timeout: float = -1) -> bool: ...
        def release(self) -> None: ...
        def locked(self) -> bool: ...
        def __enter__(self) -> bool: ...
        def __exit__(
            self,
            exc_type: type[BaseException] | None,
            exc: BaseException | None,
            tb: TracebackType | None,
            /,
        ) -> None: ...
        def _is_owned(self) -> bool: ...
        def _release_save(self) -> Any: ...
        def _acquire_restore(self, state: Any, /) -> None: ...
        def _at_fork_reinit(self) -> None: ...

    def __init__(self, *, name: str | None = None, raise_on_timeout: bool = False) -> None:
        _set_up(
            self,
            "Lock",
            name,
            raise_on_timeout,
            tracked=lambda t: {"locked": t.lock.locked},
            plain=lambda lock: {
                "locked": lock.locked,
                # What threading.Condition falls back to for a plain lock.
                "_is_owned": functools.partial(_plain_is_owned, lock),
                "_release_save": lock.release,
                "_acquire_restore": functools.partial(_plain_acquire_restore, lock),
            },
        )

    @property
    def name(self) -> str | None:
        """The name given at construction, or ``None``."""
        return self._name

    def statistics(self) -> LockStatistics:
        """Return a snapshot of the lock's state.

        The owner, how long it has been held and how many threads wait are
        known only to a checked lock (or one with ``raise_on_timeout``).
        """
        t = self._tracker
        if t is None:
            locked = self._lock.locked()
            return LockStatistics(self._name, locked, int(locked), None, None, None, False)
        owner = t.owner
        return LockStatistics(
            name=self._name,
            locked=self._lock.locked(),
            count=int(owner is not None),
            owner=checks._thread_name(owner) if owner is not None else None,
            held_for=_held_for(t),
            waiting=_waiting_for(t),
            checked=t.order,
        )

    def __repr__(self) -> str:
        return _lock_repr(self, self.statistics())


_RLOCK_STATE = re.compile(r"owner=(\d+) count=(\d+)")
# The stdlib's API of the running version, not a feature probe: RLock.locked()
# is new in 3.14, and threadkit.RLock offers exactly what threading.RLock does.
_RLOCK_HAS_LOCKED = sys.version_info >= (3, 14)


class RLock:
    """A reentrant lock: :class:`threading.RLock`, with a name and optional checks.

    Same methods and semantics as :class:`threading.RLock`; the thread that
    holds it may acquire it again, and must release it as many times.  With
    checks on when it is created it takes part in lock-order checks like
    :class:`Lock` (re-entry is not an edge), and ``release()`` by another
    thread raises :class:`~threadkit.LockOwnershipError` (a
    :class:`RuntimeError`, as the standard library raises).

    All methods may be called from any thread.

    Args:
        name: A name for reprs, statistics and error messages.
        raise_on_timeout: As for :class:`Lock`.

    Raises:
        TypeError: If ``name`` is not a string.

    .. versionadded:: 0.1
    """

    __slots__ = (
        "__enter__",
        "__exit__",
        "__weakref__",
        "_acquire_restore",
        "_at_fork_reinit",
        "_is_owned",
        "_lock",
        "_name",
        "_recursion_count",
        "_release_save",
        "_tracker",
        "acquire",
        "release",
        # threading.RLock has locked() from 3.14 on (and 3.14's
        # threading.Condition reads it from its lock); before, it has none.
        *(("locked",) if _RLOCK_HAS_LOCKED else ()),
    )

    _name: str | None
    _lock: Any
    _tracker: _LockTracker | None
    if TYPE_CHECKING:
        # What the slots hold, as type checkers should see it: methods.
        def acquire(self, blocking: bool = True, timeout: float = -1) -> bool: ...
        def release(self) -> None: ...
        def __enter__(self) -> bool: ...
        def __exit__(
            self,
            exc_type: type[BaseException] | None,
            exc: BaseException | None,
            tb: TracebackType | None,
            /,
        ) -> None: ...
        def _is_owned(self) -> bool: ...
        def _release_save(self) -> Any: ...
        def _acquire_restore(self, state: Any, /) -> None: ...
        def _recursion_count(self) -> int: ...
        def _at_fork_reinit(self) -> None: ...

        if sys.version_info >= (3, 14):

            def locked(self) -> bool: ...

    def __init__(self, *, name: str | None = None, raise_on_timeout: bool = False) -> None:
        _set_up(
            self,
            "RLock",
            name,
            raise_on_timeout,
            tracked=lambda t: {
                "_recursion_count": t.recursion_count,
                # Held by any thread, as the 3.14 stdlib's RLock.locked() says.
                **({"locked": t.lock.locked} if _RLOCK_HAS_LOCKED else {}),
            },
            plain=lambda lock: {
                "_is_owned": lock._is_owned,
                "_release_save": lock._release_save,
                "_acquire_restore": lock._acquire_restore,
                "_recursion_count": lock._recursion_count,
                **({"locked": lock.locked} if _RLOCK_HAS_LOCKED else {}),
            },
        )

    @property
    def name(self) -> str | None:
        """The name given at construction, or ``None``."""
        return self._name

    def statistics(self) -> LockStatistics:
        """Return a snapshot of the lock's state (see :meth:`Lock.statistics`)."""
        t = self._tracker
        if t is None:
            # The C RLock shows its owner and count only in its repr, a format
            # the standard library's own tests pin.
            m = _RLOCK_STATE.search(repr(self._lock))
            ident, count = (int(m[1]), int(m[2])) if m else (0, 0)
            return LockStatistics(
                self._name,
                count > 0,
                count,
                checks._thread_name(ident) if count else None,
                None,
                None,
                False,
            )
        owner = t.owner
        assert isinstance(t, _RLockTracker)
        return LockStatistics(
            name=self._name,
            locked=owner is not None,
            count=t.count if owner is not None else 0,
            owner=checks._thread_name(owner) if owner is not None else None,
            held_for=_held_for(t),
            waiting=_waiting_for(t),
            checked=t.order,
        )

    def __repr__(self) -> str:
        return _lock_repr(self, self.statistics())


def _precheck_wait(lock: object) -> None:
    """Check, before a Condition waits, that re-taking ``lock`` keeps the order.

    The wait releases ``lock`` and re-acquires it while the thread still holds
    every other lock it held: edges ``other -> lock`` that must not close a
    cycle.  Checked here, where raising leaves the Condition intact, rather
    than inside ``_release_save`` (threading.Condition would leak its waiter).
    """
    if not isinstance(lock, Lock | RLock):
        return
    t = lock._tracker
    if t is None or not t.order or t.owner != get_ident():
        return
    others = [k for k in _held() if k != t.key]
    if others:
        checks._check_order(t.key, others)


class Condition(threading.Condition):
    """A condition variable: :class:`threading.Condition`, with a name and statistics.

    Same methods and semantics as :class:`threading.Condition`.  Its lock is
    a new threadkit :class:`RLock` (named like the condition) unless one is
    given; a :mod:`threading` lock works too.  With a checked lock,
    :meth:`wait` first checks that re-acquiring the lock after the wait, while
    the thread still holds its other locks, keeps the lock order, and raises
    :class:`~threadkit.LockOrderError` (before releasing anything) if not; the
    re-acquisition itself records no edge.  Over a checked :class:`Lock`,
    ``wait`` and ``notify`` by a thread that does not hold the lock raise
    :class:`RuntimeError`, where the standard library, which cannot tell who
    holds a plain lock, lets any thread through while some thread holds it.

    In a thread whose :func:`~threadkit.current_token` can be cancelled (a
    task's, a group's, a worker's request), :meth:`wait` and
    :meth:`~threading.Condition.wait_for` raise :class:`~threadkit.Cancelled`,
    with the lock held again, when that token is cancelled (see
    :ref:`cancellable-waits`).

    All methods may be called from any thread, with the stdlib's rule that
    ``wait`` and ``notify`` need the lock held.


    Args:
        lock: The lock to use, or ``None`` for a new :class:`RLock`.
        name: A name for reprs and statistics.

    Raises:
        TypeError: If ``name`` is not a string.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        lock: Lock | RLock | threading.Lock | threading.RLock | None = None,
        *,
        name: str | None = None,
    ) -> None:
        _check_name(name)
        if lock is None:
            lock = RLock(name=name)
        # threading.Condition duck-types its lock; typeshed lists only its own.
        super().__init__(lock)  # type: ignore[arg-type]
        self._tk_lock = lock
        self._tk_name = name
        # One entry per thread inside wait(), added and removed by single list
        # calls (atomic without the GIL too): a plain Lock lets threading's
        # wait() run in a thread that does not hold it, so no lock guards this.
        # Only its length means anything.
        self._tk_waiters: list[None] = []

    @property
    def name(self) -> str | None:
        """The name given at construction, or ``None``."""
        return self._tk_name

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until notified or until ``timeout`` seconds pass.

        As :meth:`threading.Condition.wait`.

        Raises:
            Cancelled: This thread's :func:`~threadkit.current_token` was
                cancelled before or during the wait (a notification that
                reached this waiter first wins: the wait returns ``True``).
            RuntimeError: If the calling thread does not hold the lock.
            LockOrderError: With a checked lock, if re-acquiring it while
                holding this thread's other locks would close a cycle; nothing
                was released.
        """
        _precheck_wait(self._tk_lock)
        # Checked here too, so that a wait refused for it never counts as waiting.
        if not self._is_owned():  # type: ignore[attr-defined]  # threading's protocol
            raise RuntimeError("cannot wait on un-acquired lock")
        self._tk_waiters.append(None)
        try:
            token = _cancellable()
            if token is None:
                return super().wait(timeout)
            return _wait_condition(self, timeout, token)
        finally:
            self._tk_waiters.pop()

    def statistics(self) -> ConditionStatistics:
        """Return a snapshot of the condition's state."""
        lock = self._tk_lock
        stats = lock.statistics() if isinstance(lock, Lock | RLock) else None
        return ConditionStatistics(self._tk_name, len(self._tk_waiters), stats)

    def __repr__(self) -> str:
        name = f" {self._tk_name!r}" if self._tk_name is not None else ""
        return (
            f"<threadkit.Condition at {id(self):#x}{name}: "
            f"lock={self._tk_lock!r}, waiting={len(self._tk_waiters)}>"
        )


class _CancellableCondition(threading.Condition):
    """The condition inside :class:`Semaphore` and :class:`Event`: its waits are cancellable.

    The stdlib's ``Semaphore.acquire`` and ``Event.wait`` wait on
    ``self._cond``; replacing it with this one makes them cancellable while
    keeping their code, and so their semantics, exactly.
    """

    def wait(self, timeout: float | None = None) -> bool:
        token = _cancellable()
        if token is None:
            return super().wait(timeout)
        return _wait_condition(self, timeout, token)


class Semaphore(threading.Semaphore):
    """A semaphore: :class:`threading.Semaphore`, with a name and statistics.

    Same methods and semantics as :class:`threading.Semaphore`.  A semaphore
    has no owner (any thread may release it), so it takes no part in
    lock-order or ownership checks.  A blocking ``acquire()`` is cancellable
    (see :ref:`cancellable-waits`): it raises :class:`~threadkit.Cancelled`
    without taking a permit, and a ``release()`` it would have consumed wakes
    another waiter instead.  All methods may be called from any thread.


    Args:
        value: The initial value of the counter.
        name: A name for reprs and statistics.

    Raises:
        ValueError: If ``value`` is negative.
        TypeError: If ``name`` is not a string.

    .. versionadded:: 0.1
    """

    _tk_bound: int | None = None

    def __init__(self, value: int = 1, *, name: str | None = None) -> None:
        _check_name(name)
        super().__init__(value)
        self._cond = _CancellableCondition(threading.Lock())
        self._tk_name = name

    @property
    def name(self) -> str | None:
        """The name given at construction, or ``None``."""
        return self._tk_name

    def statistics(self) -> SemaphoreStatistics:
        """Return a snapshot of the semaphore's state."""
        return SemaphoreStatistics(self._tk_name, self._value, self._tk_bound)

    def __repr__(self) -> str:
        name = f" {self._tk_name!r}" if self._tk_name is not None else ""
        bound = f"/{self._tk_bound}" if self._tk_bound is not None else ""
        return (
            f"<threadkit.{type(self).__qualname__} at {id(self):#x}{name}: "
            f"value={self._value}{bound}>"
        )


class BoundedSemaphore(Semaphore, threading.BoundedSemaphore):
    """A bounded semaphore: :class:`threading.BoundedSemaphore`, with a name and statistics.

    Same methods and semantics as :class:`threading.BoundedSemaphore`:
    ``release()`` beyond the initial value raises :class:`ValueError`.  All
    methods may be called from any thread.

    Args:
        value: The initial value of the counter, and its bound.
        name: A name for reprs and statistics.

    Raises:
        ValueError: If ``value`` is negative.
        TypeError: If ``name`` is not a string.

    .. versionadded:: 0.1
    """

    def __init__(self, value: int = 1, *, name: str | None = None) -> None:
        super().__init__(value, name=name)
        self._tk_bound = value


class Event(threading.Event):
    """An event: :class:`threading.Event`, with a name and statistics.

    Same methods and semantics as :class:`threading.Event`.  An event has no
    owner, so it takes no part in lock-order checks.  ``wait()`` on an unset
    event is cancellable (see :ref:`cancellable-waits`).  All methods may be
    called from any thread.


    Args:
        name: A name for reprs and statistics.

    Raises:
        TypeError: If ``name`` is not a string.

    .. versionadded:: 0.1
    """

    def __init__(self, *, name: str | None = None) -> None:
        _check_name(name)
        super().__init__()
        self._cond = _CancellableCondition(threading.Lock())
        self._tk_name = name

    @property
    def name(self) -> str | None:
        """The name given at construction, or ``None``."""
        return self._tk_name

    def statistics(self) -> EventStatistics:
        """Return a snapshot of the event's state."""
        return EventStatistics(self._tk_name, self.is_set())

    def __repr__(self) -> str:
        name = f" {self._tk_name!r}" if self._tk_name is not None else ""
        return f"<threadkit.Event at {id(self):#x}{name}: {'set' if self.is_set() else 'unset'}>"


def _tracked_state(lock: object) -> tuple[str | None, int | None, float] | None:
    """(name, holder's ident or None, monotonic time of its acquisition) of a tracked lock.

    For the snapshots of :mod:`threadkit.checks`: plain attribute reads, no
    lock.  ``None`` for a lock that is still being set up (checks registers
    it before its tracker exists) or is not tracked.
    """
    tracker = getattr(lock, "_tracker", None)
    if not isinstance(tracker, _LockTracker):
        return None
    return getattr(lock, "_name", None), tracker.owner, tracker.since


@dataclass(frozen=True, slots=True)
class LockSnapshot:
    """A checked lock as :func:`lock_snapshots` saw it.

    Attributes:
        label: The lock's label in reports and errors (``"Lock 'db'"``, or
            kind, number and where it was created).
        name: The name given to the lock, or ``None``.
        owner_ident: The ident of the thread holding it; ``None`` if free (or
            still being set up).
        since: ``time.monotonic()`` when the holder acquired it, or ``None``.
        waiters: ``(thread ident, monotonic time the wait began)`` of each
            thread blocked acquiring it.
    """

    label: str
    name: str | None
    owner_ident: int | None
    since: float | None
    waiters: tuple[tuple[int, float], ...]


def lock_snapshots() -> list[LockSnapshot]:
    """Snapshots of every live checked lock, oldest first.

    Takes no lock and never blocks: the registry and the table of waiting
    threads are each copied in one atomic ``dict.copy()``, and a lock's
    holder is read from plain attributes, so this is safe in a signal handler
    and while any thread is stuck.  A lock that is still being set up
    (registered before its tracker exists) shows as free.  Fields of one lock
    may be a moment apart.
    """
    waiting: dict[int, list[tuple[int, float]]] = {}
    for ident, (key, since) in _waiting.copy().items():
        waiting.setdefault(key, []).append((ident, since))
    snapshots = []
    for key, node in sorted(_nodes.copy().items()):
        lock = node.ref()
        if lock is None:
            continue
        state = _tracked_state(lock)
        name, owner, since = (None, None, 0.0) if state is None else state
        snapshots.append(
            LockSnapshot(
                label=node.label,
                name=name,
                owner_ident=owner,
                since=None if owner is None else since,
                waiters=tuple(waiting.get(key, ())),
            )
        )
    return snapshots
