"""threadkit.dump(): a readable report of every live threadkit object, for a hung program.

Design notes
------------
The report is for a program that is stuck, and it is often asked for from a
signal handler, which runs in the main thread *between two bytecodes of
whatever it was doing*.  So producing it must never block, never raise into
the interrupted code, and never crash the process.  Three rules follow.

*Snapshots, not fields.*  Each module exports a snapshot function that copies
what it knows without blocking (one atomic ``dict.copy()`` of its registry,
then plain attribute reads) and tolerates half-made objects:
:func:`threadkit._task.task_snapshots` and ``group_snapshots``,
:func:`threadkit._sync.lock_snapshots`, and the workers' (see
:func:`_worker_snapshots`).  This module only formats them; it reads no
other module's private state and calls no ``repr()`` that could take a lock.
Iterating a :class:`weakref.WeakSet` that other threads add to raises
``RuntimeError: Set changed size during iteration``; taking an object's own
lock deadlocks when the interrupted main thread holds it.

*No lock anywhere.*  Not even :func:`threading.enumerate` (it takes
``threading``'s ``_active_limbo_lock``, which ``Thread.start()`` holds for a
moment: a signal arriving then would deadlock the handler on it).  Thread
names come from one copy of ``threading._active``.

*Stacks from faulthandler.*  Walking other threads' live frames through
:func:`sys._current_frames` while they run crashed CPython 3.11 in stress
runs; :func:`faulthandler.dump_traceback` is made to be called in a signal
handler while other threads are stuck, reads the frames without creating
objects, and writes to a file descriptor (here an anonymous in-memory file).
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import re
import signal
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from time import monotonic
from types import FrameType
from typing import IO, Any, TextIO

from threadkit import _engine, _sync, _task, _waits

__all__ = ["dump", "dump_path", "install_dump_handler"]

# Computed once here: tempfile takes a lock the first time it looks for the
# temporary directory, and the signal handler must take none.
_TEMPDIR = tempfile.gettempdir()


# -- threads ---------------------------------------------------------------------


def _thread_names() -> dict[int, str]:
    """Thread ident -> name, without threading.enumerate()'s lock."""
    active = getattr(threading, "_active", None)
    if not isinstance(active, dict):
        return {}
    return {ident: thread.name for ident, thread in active.copy().items()}


_STACK_HEADER = re.compile(r"^(?:Current thread|Thread) 0x([0-9a-fA-F]+)")


def _scratch_file() -> IO[bytes]:
    """An anonymous file for faulthandler to write to (it needs a real descriptor)."""
    memfd_create = getattr(os, "memfd_create", None)
    if memfd_create is not None:
        return open(memfd_create("threadkit-dump", os.MFD_CLOEXEC), "w+b", buffering=0)
    return tempfile.TemporaryFile(dir=_TEMPDIR, buffering=0)


def _stacks() -> dict[int, list[str]]:
    """Every thread's stack, most recent call first, as faulthandler prints it, by ident."""
    with _scratch_file() as scratch:
        faulthandler.dump_traceback(scratch.fileno(), all_threads=True)
        scratch.seek(0)
        text = scratch.read().decode("ascii", "replace")
    stacks: dict[int, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        header = _STACK_HEADER.match(line)
        if header is not None:
            current = stacks.setdefault(int(header[1], 16), [])
        elif current is not None and line.strip():
            current.append(line.strip())
    return stacks


# -- the report ------------------------------------------------------------------------


class _Report:
    """The lines of one report, and the threads that they mention."""

    def __init__(self) -> None:
        self.now = monotonic()
        self.names = _thread_names()
        waiting, labels = _waits.snapshot(), _waits.labels()
        self.waiting: dict[int, int] = waiting
        self.labels: dict[int, str] = labels
        self.relevant: set[int] = set()
        self.lines = [f"threadkit report, process {os.getpid()}, {len(self.names)} threads"]

    def thread(self, ident: int | None) -> str:
        if ident is None:
            return "no thread"
        self.relevant.add(ident)
        return f"thread {self.names.get(ident, ident)!r}"

    def describe(self, ident: int) -> str:
        """A thread by its role (``worker 'db'``, ``task 'zip'``) if it has one."""
        self.relevant.add(ident)
        label = self.labels.get(ident)
        return label if label is not None else self.thread(ident)

    def section(self, title: str, build: Callable[[], list[str]]) -> None:
        self.lines.append("")
        try:
            body = build()
        except Exception as exc:  # routed into the report: a report never raises
            body = [f"{title}:", f"  (could not be read: {type(exc).__name__}: {exc})"]
        self.lines.extend(body)

    def workers(self) -> list[str]:
        snapshots = _engine.worker_snapshots()
        lines = [f"workers ({len(snapshots)}):"]
        for w in snapshots:
            doing = "idle" if w.running is None else f"running {w.running}"
            lines.append(
                f"  worker {w.name!r} {w.state}, {self.thread(w.owner_ident)}, "
                f"{w.pending} queued, {doing}"
            )
        return lines

    def tasks(self) -> list[str]:
        tasks = _task.task_snapshots()
        groups = _task.group_snapshots()
        lines = [f"tasks ({len(tasks)} not done) and task groups ({len(groups)}):"]
        for g in groups:
            extra = ", cancelled" if g.cancelled else ""
            lines.append(
                f"  <TaskGroup {g.name!r} {g.state}, {g.running} running, {g.failed} failed{extra}>"
            )
        for t in tasks:
            lines.append(f"  <Task {t.name!r} {t.state}> on {self.thread(t.thread_ident)}")
        return lines

    def locks_and_waits(self) -> list[str]:
        locks = _sync.lock_snapshots()
        held = [lock for lock in locks if lock.owner_ident is not None]
        lines = [f"checked locks held ({len(held)}):"]
        for lock in held:
            label = f"lock {lock.name!r}" if lock.name is not None else lock.label
            held_for = "" if lock.since is None else f" for {self.now - lock.since:.3f} s"
            waiting = f", {len(lock.waiters)} waiting" if lock.waiters else ""
            lines.append(f"  {label}: held by {self.thread(lock.owner_ident)}{held_for}{waiting}")
        lines.append("")
        lines.append("waits:")
        count = 0
        for ident, target in self.waiting.items():
            lines.append(f"  {self.describe(ident)} waits for {self.describe(target)}")
            count += 1
        for lock in locks:
            for ident, since in lock.waiters:
                lines.append(
                    f"  {self.thread(ident)} waits for {lock.label} since "
                    f"{self.now - since:.3f} s ago"
                )
                count += 1
        if not count:
            lines.append("  none")
        return lines

    def stacks(self) -> list[str]:
        stacks = _stacks()
        lines = ["stacks (most recent call first):"]
        for ident in sorted(self.relevant, key=lambda i: self.names.get(i, "")):
            stack = stacks.get(ident)
            if stack is None:
                continue
            title = f"thread {self.names.get(ident, ident)!r}"
            role = self.labels.get(ident)
            lines.append(f"  {title}:" if role is None else f"  {title} ({role}):")
            lines.extend("    " + line for line in stack)
        return lines


def dump() -> str:
    """Return a report of every live threadkit object and the threads involved.

    The report lists the workers (name, state, owner thread, queued requests,
    the request running now and for how long), the tasks not yet done and
    the task groups whose block runs, the checked locks that are held (by
    whom, for how long, how many wait), which threads are blocked on which (a
    worker, a task, a checked lock), and the current stack of every thread
    that appears in it.

    It is safe to call from any thread, from a signal handler, and while other
    threads are deadlocked or creating threadkit objects: it takes no lock,
    reads snapshots that each part of threadkit takes without blocking, and
    reads the stacks through :mod:`faulthandler`.  Figures may be a moment
    apart.  A part that cannot be read says so in the report instead of
    raising.

    Returns:
        The report, several lines of text ending with a newline.

    .. versionadded:: 0.1
    """
    report = _Report()
    report.section("workers", report.workers)
    report.section("tasks", report.tasks)
    report.section("checked locks", report.locks_and_waits)
    # Last: it shows the stacks of the threads the sections above mention.
    report.section("stacks", report.stacks)
    return "\n".join(report.lines) + "\n"


def dump_path(pid: int | None = None) -> Path:
    """Where :func:`install_dump_handler`'s handler of process *pid* writes its report.

    ``<tempdir>/threadkit-dump-<pid>.txt``; *pid* defaults to this process.

    .. versionadded:: 0.1
    """
    return Path(_TEMPDIR) / f"threadkit-dump-{os.getpid() if pid is None else pid}.txt"


def _write(out: TextIO, report: str) -> None:
    """Write *report* to *out* without going through its buffer if it has a descriptor.

    The interrupted main thread may be inside ``out.write()`` itself: a
    buffered stream then raises ``RuntimeError: reentrant call``.  ``os.write``
    to its descriptor bypasses the buffer (and its lock).
    """
    try:
        fd = out.fileno()
    except (OSError, ValueError, AttributeError):  # io.UnsupportedOperation is both
        out.write(report)
        out.flush()
        return
    data = report.encode(getattr(out, "encoding", None) or "utf-8", "replace")
    while data:
        data = data[os.write(fd, data) :]


# Popped (atomic) by the handler while it writes a report: a second signal
# that arrives meanwhile (its handler runs nested, in the same thread) finds
# it empty and returns; the report being written covers it.
_handler_idle = [True]


def install_dump_handler(
    signum: int = getattr(signal, "SIGUSR1", 0), *, file: TextIO | None = None
) -> Callable[..., Any] | int | None:
    """Make signal *signum* write :func:`dump` to *file* and to :func:`dump_path`.

    With the handler installed, ``kill -USR1 <pid>`` (or ``python -m threadkit
    dump <pid>``) makes a hung program report what its threads are doing and
    waiting for, without stopping it.  The report goes to *file* (default
    :data:`sys.stderr`; written to its file descriptor directly when it has
    one) and, replacing the previous one, to :func:`dump_path`, where ``python
    -m threadkit dump`` reads it.  Pair it with :func:`faulthandler.register`
    on another signal for the C-level view when even the main thread cannot
    run Python code.

    The handler never raises into the code it interrupts: if the report
    cannot be made or written, a one-line note goes to the standard error
    descriptor instead.  A signal that arrives while the handler is writing a
    report is absorbed by that report.

    Must be called from the main thread (a rule of :func:`signal.signal`).
    Python runs the handler in the main thread between bytecodes; a main
    thread blocked in a threadkit wait is interrupted for it and then resumes.

    Args:
        signum: The signal (default ``SIGUSR1``).
        file: Where to write the report besides :func:`dump_path`.

    Returns:
        The previous handler of *signum*, as :func:`signal.signal` returns it.

    Raises:
        ValueError: Not called from the main thread, or *signum* is not a
            valid signal.

    .. versionadded:: 0.1
    """
    path = dump_path()
    partial = path.with_suffix(".partial")

    def handler(_signum: int, _frame: FrameType | None) -> None:
        try:
            _handler_idle.pop()
        except IndexError:
            return  # nested in the handler of an earlier signal
        try:
            report = dump()
            # A closed or busy stream: the file below still gets the report.
            with contextlib.suppress(OSError, ValueError, RuntimeError):
                _write(sys.stderr if file is None else file, report)
            partial.write_text(report, encoding="utf-8")
            partial.replace(path)  # readers see a whole report or the previous one
        except Exception as exc:  # routed to stderr: never raised into the interrupted code
            with contextlib.suppress(OSError):
                os.write(2, f"threadkit: the dump handler failed: {exc!r}\n".encode())
        finally:
            _handler_idle.append(True)

    return signal.signal(signum, handler)
