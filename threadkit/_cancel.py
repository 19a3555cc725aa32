"""CancelToken and current_token: cooperative cancellation.

Design notes
------------
Python cannot stop a thread from the outside, so cancellation is a request
that the code being cancelled checks, as with C++20's ``std::stop_token``
(whose callback rules we follow: callbacks run in the thread that requests the
stop; removing a callback that is running in another thread waits for it) and
.NET's linked ``CancellationToken``.  Like Trio's cancel scopes it is
*level-triggered*: a token never becomes un-cancelled, so every later check
raises again, and code that swallowed one :class:`Cancelled` is caught by the
next.

*Waiting does not poll.*  :meth:`CancelToken.wait` blocks on a
:class:`threading.Event` that :meth:`~CancelToken.cancel` sets.  The event is
created by the first waiter, under the token's lock, so tokens nobody waits on
(most task tokens) cost no condition variable.  ``cancel()`` marks the token
under the same lock and then reads the event: either the waiter created it
first (and ``cancel()`` sets it), or the waiter sees ``cancelled`` (and does
not wait).

*Linking.*  A parent holds its children in a :class:`weakref.WeakSet`: a
long-lived parent (a worker's token, a group's) does not keep every child it
ever had alive.  A child holds no reference to its parent.  Cancelling a token
first marks it and its whole subtree cancelled (waking every waiter), then
runs the callbacks, parent's first; so every callback already sees the whole
subtree cancelled.

*Locking.*  Each token's lock is held only to read and change that token's own
fields, never while a callback runs or another token is locked: a callback may
cancel, register on or create any token.  The weakref callbacks that drop
collected children take no lock at all, so a garbage collection that happens
while a lock is held cannot deadlock on it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import queue
import threading
import weakref
from _thread import allocate_lock
from collections.abc import Callable, Iterator
from time import monotonic
from types import TracebackType
from typing import Any, TypeVar

from threadkit._errors import Cancelled

__all__ = ["CancelRegistration", "CancelToken", "current_token", "queue_get"]

logger = logging.getLogger("threadkit")

T = TypeVar("T")

Callback = Callable[[], object]
# What cancel() found to run: each cancelled token with its callbacks.
_Work = list[tuple["CancelToken", list["CancelRegistration"]]]


# The life of a registration.  Changed only under its token's _lock.
_PENDING = 0  # registered, not started: remove() wins and it never runs
_RUNNING = 1  # its callback is running in thread _runner
_DONE = 2  # its callback has returned (or raised)
_REMOVED = 3  # remove() took it out before it started


class CancelRegistration:
    """The handle :meth:`CancelToken.on_cancel` returns: remove the callback with it.

    It is also a context manager that removes the callback on exit, for
    "interrupt this blocking call if cancelled while inside"::

        with token.on_cancel(sock.close):
            data = sock.recv(1024)

    Thread safety: :meth:`remove` may be called from any thread, any number of
    times.

    .. versionadded:: 0.1
    """

    __slots__ = ("_callback", "_finished", "_runner", "_state", "_token")

    def __init__(self, token: CancelToken, callback: Callable[[], object]) -> None:
        self._token = token
        self._callback = callback
        # _state, _runner and _finished change only under _token._lock.
        self._state = _PENDING
        self._runner: int | None = None
        # Made by the first remove() that has to wait for the running
        # callback, set by the thread running it: one event per awaited
        # callback, so a remover waits for its own callback and no other.
        self._finished: threading.Event | None = None

    def remove(self) -> bool:
        """Unregister the callback.

        Removal before the callback starts always wins, even while
        :meth:`CancelToken.cancel` is running the token's other callbacks
        in another thread: the callback then never runs.

        Returns:
            bool: True if this call removed the callback before it started (it
            will never run); False if it has run, is running, or was removed
            already.

        If the callback is running in another thread at that moment, this
        waits until it has returned (as the destructor of C++'s
        ``std::stop_callback`` does), so that once ``remove()`` returns the
        callback is not running; it waits for that callback only, never for
        the token's other callbacks.  Called from the callback itself, or from
        the thread running it, it does not wait.
        """
        token = self._token
        with token._lock:
            state = self._state
            if state == _PENDING:
                self._state = _REMOVED
                callbacks = token._callbacks
                if callbacks is not None:  # else cancel() took the list: it skips us
                    del callbacks[self]
                return True
            if state != _RUNNING or self._runner == threading.get_ident():
                return False
            finished = self._finished
            if finished is None:
                finished = self._finished = threading.Event()
        finished.wait()
        return False

    def __enter__(self) -> CancelRegistration:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.remove()

    def __repr__(self) -> str:
        return f"<{CancelRegistration.__name__} of {self._callback!r}>"


class CancelToken:
    """A request to stop, checked by the code that should stop.

    Python cannot interrupt a thread, so cancellation is *cooperative*: the
    code being cancelled checks its token (``cancelled``,
    :meth:`raise_if_cancelled`), sleeps through it (:meth:`wait` instead of
    :func:`time.sleep`), or registers a callback that unblocks what it waits on
    (:meth:`on_cancel`).  Code that never checks runs to completion.

    Once cancelled, a token stays cancelled.

    Args:
        parent: If given, this token is its *child*: it is cancelled (with the
            parent's reason) when the parent is, and at once if the parent is
            already cancelled.  Cancelling a child does not affect its parent.
            The parent does not keep its children alive.

    Raises:
        TypeError: *parent* is not a :class:`CancelToken`.

    Thread safety: every method may be called from any thread.

    .. versionadded:: 0.1
    """

    __slots__ = (
        "__weakref__",
        "_callbacks",
        "_cancelled",
        "_children",
        "_event",
        "_lock",
        "_reason",
    )

    def __init__(self, *, parent: CancelToken | None = None) -> None:
        if parent is not None and not isinstance(parent, CancelToken):
            raise TypeError(f"parent must be a CancelToken or None, got {type(parent).__name__!r}")
        # _lock must be held whenever any field below changes (see the module
        # docstring for what it is never held across).
        self._lock = threading.Lock()
        self._cancelled = False
        self._reason: object = None
        self._event: threading.Event | None = None
        # The registrations not yet run or removed.  Insertion-ordered (the
        # values are unused), so callbacks run in registration order.  None
        # once the token is cancelled: registrations then run at once.
        self._callbacks: dict[CancelRegistration, None] | None = None
        self._children: weakref.WeakSet[CancelToken] | None = None
        if parent is not None:
            parent._adopt(self)

    def _adopt(self, child: CancelToken) -> None:
        with self._lock:
            if not self._cancelled:
                if self._children is None:
                    self._children = weakref.WeakSet()
                self._children.add(child)
                return
            reason = self._reason
        # Nobody else can see the child yet: no waiter, no callback.
        child._cancelled = True
        child._reason = reason

    def child(self) -> CancelToken:
        """Return a new token that is cancelled when this one is: ``CancelToken(parent=self)``."""
        return CancelToken(parent=self)

    @property
    def cancelled(self) -> bool:
        """True once the token is cancelled (directly or through a parent)."""
        return self._cancelled

    @property
    def reason(self) -> object:
        """The *reason* passed to the :meth:`cancel` that cancelled it, else ``None``."""
        return self._reason

    def cancel(self, reason: object = None) -> bool:
        """Cancel the token and every descendant, and run their callbacks.

        First the token and all its descendants are marked cancelled and every
        thread in :meth:`wait` on any of them is woken; then the callbacks run,
        in *this* thread, this token's first (in registration order), then the
        descendants'.  When ``cancel()`` returns, all of that has happened.

        A callback that raises an :class:`Exception` does not stop the others:
        the exception is logged, with its traceback, at ``ERROR`` level through
        the ``"threadkit"`` :mod:`logging` logger.  Any other
        :class:`BaseException` (say a ``KeyboardInterrupt``) is re-raised here
        once the other callbacks have run.

        Args:
            reason: Any object saying why (a string is friendliest); it becomes
                :attr:`reason` of this token and of its descendants, and of
                the :class:`Cancelled` exceptions they raise.

        Returns:
            True if this call cancelled the token; False if it was already
            cancelled (then nothing happens, and the first reason stays).
        """
        work = self._begin_cancel(reason)
        if work is None:
            return False
        self._finish_cancel(work)
        return True

    def _begin_cancel(self, reason: object) -> _Work | None:
        """The first half of :meth:`cancel`: mark the subtree, wake the waiters.

        Runs no user code, so a caller (a worker's shutdown) can commit its
        own state around it before any callback runs.  Returns the callbacks
        to run with :meth:`_finish_cancel`, or None if already cancelled.
        """
        work: _Work = []
        todo: list[CancelToken] = [self]
        while todo:
            token = todo.pop()
            with token._lock:
                if token._cancelled:
                    if token is self:
                        return None
                    continue
                token._cancelled = True
                token._reason = reason
                event = token._event
                # The registrations stay _PENDING until their turn comes, so
                # that remove() in the meantime still wins (see _run_callbacks).
                callbacks = token._callbacks
                token._callbacks = None
                children = token._children
                token._children = None
                # Copied under the lock: a WeakSet must not change while it
                # is iterated, and adopt() adds to it under this lock.
                kids = list(children) if children else []
            if event is not None:
                event.set()
            if callbacks:
                work.append((token, list(callbacks)))
            todo.extend(reversed(kids))
        return work

    def _finish_cancel(self, work: _Work) -> None:
        """The second half of :meth:`cancel`: run the callbacks (see its docs for errors)."""
        _run_callbacks(work)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the token is cancelled or *timeout* seconds have passed.

        The interruptible replacement for :func:`time.sleep`: ``if
        token.wait(5): return`` pauses five seconds unless cancelled first.
        It wakes as soon as :meth:`cancel` runs (no polling).

        Args:
            timeout: Seconds to wait at most; ``None`` waits until cancelled.

        Returns:
            True if the token is cancelled, False if the timeout expired first.

        Raises:
            TypeError: *timeout* is not a number or ``None``.
            ValueError: *timeout* is negative, nan, or beyond :data:`threading.TIMEOUT_MAX`.
        """
        _check_timeout(timeout)
        if self._cancelled:
            return True
        with self._lock:
            if self._cancelled:
                return True
            event = self._event
            if event is None:
                event = self._event = threading.Event()
        return event.wait(timeout)

    def raise_if_cancelled(self) -> None:
        """Raise :class:`Cancelled` (with this token's :attr:`reason`) if the token is cancelled.

        Raises:
            Cancelled: The token is cancelled.
        """
        if self._cancelled:
            raise Cancelled(self._reason)

    def on_cancel(self, callback: Callable[[], object], /) -> CancelRegistration:
        """Call ``callback()`` when the token is cancelled; at once if it already is.

        The callback runs in the thread that cancels the token (see
        :meth:`cancel` for the order and for what happens if it raises), or,
        if the token is already cancelled, right here in the calling thread,
        with the same error handling.  It runs at most once.  Keep it short
        and non-blocking: unblock what the cancelled code waits on (close a
        socket, set an event, put a sentinel on a queue).

        A registration lives as long as the token: remove it when it is no
        longer needed (or use the handle as a context manager).

        Returns:
            A :class:`CancelRegistration` whose :meth:`~CancelRegistration.remove`
            unregisters the callback.

        Raises:
            TypeError: *callback* is not callable.
        """
        if not callable(callback):
            raise TypeError(f"on_cancel() needs a callable, got {type(callback).__name__!r}")
        registration = CancelRegistration(self, callback)
        with self._lock:
            if not self._cancelled:
                if self._callbacks is None:
                    self._callbacks = {}
                self._callbacks[registration] = None
                return registration
        _run_callbacks([(self, [registration])])
        return registration

    def __repr__(self) -> str:
        if self._cancelled:
            return f"<{CancelToken.__name__} cancelled, reason={self._reason!r}>"
        callbacks = len(self._callbacks or ())
        children = len(self._children or ())
        return (
            f"<{CancelToken.__name__} active, {callbacks} callback{'s' * (callbacks != 1)}, "
            f"{children} child{'ren' * (children != 1)}>"
        )


def _run_callbacks(work: list[tuple[CancelToken, list[CancelRegistration]]]) -> None:
    """Run the callbacks of *work* in order, in this thread, skipping removed ones.

    Each registration goes _PENDING -> _RUNNING under its token's lock, so a
    concurrent remove() either wins (the callback is skipped) or finds it
    running (and waits for it alone).  _RUNNING -> _DONE happens in a
    ``finally``: whatever the callback raises, its removers are released.
    """
    me = threading.get_ident()
    interrupt: BaseException | None = None
    for token, registrations in work:
        for registration in registrations:
            with token._lock:
                if registration._state != _PENDING:
                    continue  # removed after cancel() took the list
                registration._state = _RUNNING
                registration._runner = me
            callback = registration._callback
            try:
                callback()
            except Exception as exc:
                logger.error("cancel callback %r of %r raised", callback, token, exc_info=exc)
            except BaseException as exc:  # re-raised once the other callbacks ran
                if interrupt is None:
                    interrupt = exc
            finally:
                with token._lock:
                    registration._state = _DONE
                    finished = registration._finished
                if finished is not None:
                    finished.set()
    if interrupt is not None:
        try:
            raise interrupt
        finally:
            interrupt = None


class _NeverCancelled(CancelToken):
    """What current_token() returns outside any task: a token nothing can cancel."""

    __slots__ = ()

    def _adopt(self, child: CancelToken) -> None:
        # Its children could never be cancelled through it; tracking them
        # would only make every thread contend on one lock.
        pass

    def cancel(self, reason: object = None) -> bool:
        raise RuntimeError(
            "cannot cancel the token current_token() returns outside any task; "
            "create a CancelToken() to cancel"
        )

    def on_cancel(self, callback: Callback, /) -> CancelRegistration:
        if not callable(callback):
            raise TypeError(f"on_cancel() needs a callable, got {type(callback).__name__!r}")
        # Never stored: it could never run, and would live forever.  remove()
        # still says True once: it will never run.
        return CancelRegistration(self, callback)

    def __repr__(self) -> str:
        return f"<{CancelToken.__name__} never cancelled (no task runs in this thread)>"


_NEVER = _NeverCancelled()


class _Local(threading.local):
    """This thread's token and shield, with their defaults as class attributes.

    ``getattr(local, name, None)`` on a plain :class:`threading.local` that
    lacks the attribute builds an AttributeError and throws it away: about
    5,600 instructions, a third of a ``ResourceWorker.call()`` outside any
    task (callgrind).  A class attribute is found without one.
    """

    token: CancelToken | None = None
    shielded: bool = False


_local = _Local()


def current_token() -> CancelToken:
    """Return the cancel token of the task running in this thread.

    * In a task started by :func:`spawn` or :meth:`TaskGroup.spawn`: the
      task's :attr:`Task.token`.
    * In the ``with`` block of a :class:`TaskGroup`: the group's
      :attr:`TaskGroup.token` (restored when the block ends).
    * In a request running in a :class:`ResourceWorker`'s owner thread: the
      worker's token, which :meth:`ResourceWorker.shutdown` cancels.
    * Anywhere else: a token that is never cancelled, so that code written
      for tasks (``current_token().raise_if_cancelled()``,
      ``current_token().wait(5)``) also runs unchanged outside them, instead
      of every caller testing for ``None``.  Its :meth:`~CancelToken.cancel`
      raises :class:`RuntimeError`: cancelling it could stop nothing.

    .. versionadded:: 0.1
    """
    token: CancelToken | None = _local.token
    return _NEVER if token is None else token


@contextlib.contextmanager
def _bind_token(token: CancelToken) -> Iterator[CancelToken]:
    """Make *token* this thread's :func:`current_token` inside the block, then restore the previous.

    Private: used by the task runner, TaskGroup's ``with`` block, and the
    resource worker's owner loop (bind once around the whole loop, not per
    request).
    """
    if not isinstance(token, CancelToken):
        raise TypeError(f"token must be a CancelToken, got {type(token).__name__!r}")
    previous = _local.token
    _local.token = token
    try:
        yield token
    finally:
        _local.token = previous


def _cancellable() -> CancelToken | None:
    """This thread's token if one is bound (it can be cancelled) and waits are not shielded.

    The test every blocking wait makes first: one thread-local read, so a
    wait outside any task costs what it did before cancellable waits.
    """
    token: CancelToken | None = _local.token
    if token is None or _local.shielded:
        return None
    return token


@contextlib.contextmanager
def _shielded() -> Iterator[None]:
    """Inside the block, this thread's waits are not cancellable; current_token() is unchanged.

    For code that must run to its end although the token is cancelled: a
    worker's *close*, which runs after shutdown has cancelled the worker's
    token.
    """
    previous = _local.shielded
    _local.shielded = True
    try:
        yield
    finally:
        _local.shielded = previous


# The outcomes of a _Waiter, each set once by whoever claims it first.
_W_PENDING = 0
_W_NOTIFIED = 1
_W_CANCELLED = 2
_W_TIMED_OUT = 3


class _Waiter:
    """Stands in a :class:`threading.Condition`'s waiter list for a cancellable wait.

    ``Condition.notify`` calls ``release()`` on the first waiters of its
    deque and skips (without counting) one whose ``release()`` raises
    :class:`RuntimeError` (every supported Python does, since gh-92530).
    Three parties may end the wait: a notify, a cancel callback, the
    waiter's own timeout.  Whoever pops the one-element ``_claim`` first
    (``list.pop`` is atomic) sets ``outcome`` and then releases ``_gate``;
    the others lose.  So a notify that loses to a cancel raises and passes
    the wake-up on to the next waiter: a cancelled wait never swallows one.
    """

    __slots__ = ("_claim", "_gate", "outcome")

    def __init__(self) -> None:
        self._gate = allocate_lock()
        self._gate.acquire()
        self._claim = [True]
        self.outcome = _W_PENDING

    def settle(self, outcome: int) -> bool:
        if not self.claim():
            return False
        self.open(outcome)
        return True

    def claim(self) -> bool:
        """Win the right to settle it, without waking the waiter yet (see open)."""
        try:
            self._claim.pop()
        except IndexError:
            return False
        return True

    def open(self, outcome: int) -> None:
        """Wake the waiter with *outcome*; only after a successful claim()."""
        self.outcome = outcome
        self._gate.release()

    def release(self) -> None:
        # Called by Condition.notify, which holds the condition's lock.
        if not self.settle(_W_NOTIFIED):
            raise RuntimeError("release unlocked lock")

    def cancel(self) -> None:
        self.settle(_W_CANCELLED)

    def block(self, timeout: float | None) -> int:
        """Wait until settled (settling it as timed out if *timeout* expires first)."""
        gate = self._gate
        if timeout is None:
            gate.acquire()
        elif not (timeout > 0 and gate.acquire(True, timeout)) and not self.settle(_W_TIMED_OUT):
            # Another party claimed it just now and releases the gate next.
            gate.acquire()
        return self.outcome


class _Gate(_Waiter):
    """A one-shot gate that a settler opens and a cancel may open first.

    Stands in for the plain lock a settler releases once (a worker's
    ``call()`` slot): ``release()`` opens it unless a cancel did already,
    and then does nothing, so the settler never sees an error.
    """

    __slots__ = ()

    def release(self) -> None:
        self.settle(_W_NOTIFIED)


def _wait_done(future: Any, timeout: float | None, token: CancelToken) -> None:
    """Wait until *future* is done or *timeout* passes, unless *token* is cancelled first.

    For the ``result()`` / ``exception()`` of a future: the caller then asks
    the future itself with timeout 0.  Uses the future's own Condition, which
    every state change to done notifies, as ``Future.result`` does.

    Raises:
        Cancelled: *token* was cancelled before the future was done.
    """
    condition = future._condition
    with condition:
        if not future.done():
            _wait_condition(condition, timeout, token)


def _wait_condition(cond: Any, timeout: float | None, token: CancelToken) -> bool:
    """``cond.wait(timeout)`` that raises :class:`Cancelled` when *token* is cancelled.

    Works on any :class:`threading.Condition` (it uses the protocol that
    ``threading.Condition.wait`` itself uses: ``_waiters``, ``_is_owned``,
    ``_release_save``, ``_acquire_restore``), so the stdlib's ``notify``
    wakes it.  As with the stdlib's, the lock is held again when it returns
    or raises.  A notification that reached this waiter first wins over a
    cancel that lands later: the wait returns True, and the caller sees
    the cancellation at its next wait.

    Raises:
        Cancelled: *token* was cancelled before or during the wait.
        RuntimeError: The lock is not held.
    """
    if timeout is not None and not timeout > 0:
        # Does not block (or is nan, which the running Python's wait refuses or
        # not, as it decides), so it is not cancelled: exactly the stdlib's wait.
        return bool(threading.Condition.wait(cond, timeout))
    if not cond._is_owned():
        raise RuntimeError("cannot wait on un-acquired lock")
    token.raise_if_cancelled()
    waiter = _Waiter()
    cond._waiters.append(waiter)
    saved = cond._release_save()
    try:
        with token.on_cancel(waiter.cancel):
            outcome = waiter.block(timeout)
    finally:
        # An interrupt in block() leaves the waiter unclaimed: claim it so a
        # later notify skips it (and wakes someone else) instead of counting it.
        waiter.settle(_W_TIMED_OUT)
        cond._acquire_restore(saved)
        if waiter.outcome != _W_NOTIFIED:
            with contextlib.suppress(ValueError):  # notify removed it already
                cond._waiters.remove(waiter)
    if outcome == _W_CANCELLED:
        raise Cancelled(token.reason)
    return outcome == _W_NOTIFIED


def queue_get(q: queue.Queue[T], /, *, timeout: float | None = None) -> T:
    """Take an item from *q* like ``q.get(timeout=timeout)``, but cancellable.

    The :class:`queue.Queue` counterpart of threadkit's cancellable waits (see
    :ref:`cancellable-waits`): while :func:`current_token` can be cancelled,
    a wait for an item raises :class:`Cancelled` when the token is cancelled.
    An item is never lost: either the call returns it, or it raises having
    taken nothing, and a :meth:`~queue.Queue.put` that it did not use wakes
    another consumer.  A queue that has an item returns it, cancelled token
    or not.  Outside any task this is exactly ``q.get(timeout=timeout)``.

    It works with :class:`queue.Queue` and its subclasses
    (:class:`~queue.LifoQueue`, :class:`~queue.PriorityQueue`, your own),
    through the hooks :mod:`queue` offers subclasses (``not_empty``,
    ``_qsize``, ``_get``).

    Args:
        q: The queue.
        timeout: Seconds to wait at most; ``None`` waits as long as it takes.

    Returns:
        The item.

    Raises:
        Cancelled: This thread's :func:`current_token` was cancelled while
            the queue was empty.
        queue.Empty: *timeout* passed with the queue empty.
        TypeError: *q* is not a :class:`queue.Queue`, or *timeout* is not a
            number or ``None``.
        ValueError: *timeout* is negative, nan, or beyond :data:`threading.TIMEOUT_MAX`.

    Thread safety: may be called from any thread, on a queue shared with
    any number of producers and consumers.

    .. versionadded:: 0.1
    """
    if not isinstance(q, queue.Queue):
        raise TypeError(f"queue_get() needs a queue.Queue, got {type(q).__name__!r}")
    _check_timeout(timeout)
    token = _cancellable()
    if token is None:
        return q.get(timeout=timeout)
    not_empty = q.not_empty
    with not_empty:
        # What Queue.get does, with a cancellable wait: the loop takes an
        # item only once it holds the queue's mutex and sees one.
        deadline = None if timeout is None else monotonic() + timeout
        while not q._qsize():  # queue's subclass hook
            remaining = None if deadline is None else deadline - monotonic()
            if remaining is not None and remaining <= 0:
                raise queue.Empty
            _wait_condition(not_empty, remaining, token)
        item: T = q._get()  # queue's subclass hook
        q.not_full.notify()
        return item


def _check_timeout(timeout: object, what: str = "timeout") -> None:
    if timeout is None:
        return
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(f"{what} must be a number or None, got {type(timeout).__name__!r}")
    # "not >=" also refuses nan, which no wait can use (a timer with it
    # fires at once).
    if not timeout >= 0:
        raise ValueError(f"{what} must be >= 0, got {timeout}")
    # The stdlib's waits raise OverflowError beyond TIMEOUT_MAX (a timer
    # thread dies of it): refuse such a timeout here, where it is given.
    if timeout == math.inf:
        raise ValueError(f"{what} must be finite (None waits without limit), got {timeout}")
    if timeout > threading.TIMEOUT_MAX:
        raise ValueError(
            f"{what} must be <= threading.TIMEOUT_MAX (None waits without limit), got {timeout}"
        )
