"""threadkit.dump(): a readable report of every live threadkit object, for a hung program.

The report is assembled from registries the objects keep anyway (weak sets of
live workers, tasks and groups; the checked-lock registry of
:mod:`threadkit.checks`; the waits-for edges of :mod:`threadkit._waits`) and
from :func:`sys._current_frames`.  It takes no lock that a stuck thread could
hold: every read is a snapshot of a dict or set copied in one step, so the
report may be a moment stale, but producing it can never hang.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from time import monotonic
from types import FrameType
from typing import Any, TextIO

from threadkit import _task, _waits, _worker, checks

__all__ = ["dump", "dump_path", "install_dump_handler"]


def _thread_names() -> dict[int, str]:
    return {t.ident: t.name for t in threading.enumerate() if t.ident is not None}


def _describe_request(item: tuple[Any, ...] | None) -> str:
    if item is None:
        return "idle"
    fn = item[1]
    name = getattr(fn, "__qualname__", None) or repr(fn)
    return f"running {name}()"


def dump() -> str:
    """Return a report of every live threadkit object and the threads involved.

    The report lists the workers (name, state, owner thread, queued requests,
    the request running now and for how long), the tasks and task groups,
    the checked locks that are held (by whom, for how long, how many wait),
    which threads are blocked on which (a worker, a task, a checked lock),
    and the current stack of every thread that appears in it.

    It is safe to call from any thread, from a signal handler, and while other
    threads are deadlocked: it takes no lock they could hold.  It reads the
    live state without stopping it, so figures may be a moment apart.

    Returns:
        The report, several lines of text ending with a newline.

    .. versionadded:: 0.1
    """
    now = monotonic()
    names = _thread_names()
    relevant: set[int] = set()
    lines = [f"threadkit report, process {os.getpid()}, {len(names)} threads"]

    def thread(ident: int | None) -> str:
        if ident is None:
            return "no thread"
        relevant.add(ident)
        return f"thread {names.get(ident, ident)!r}"

    cores = sorted(list(_worker._live_cores), key=lambda c: c.name)
    lines.append("")
    lines.append(f"workers ({len(cores)}):")
    for core in cores:
        current, since = core.current, core.since
        doing = _describe_request(current)
        if current is not None:
            doing += f" for {now - since:.3f} s"
        lines.append(
            f"  worker {core.name!r} {core.state}, {thread(core.owner_ident)}, "
            f"{core.mailbox.qsize()} queued, {doing}"
        )

    tasks = _task.task_snapshots()
    groups = _task.group_snapshots()
    lines.append("")
    lines.append(f"tasks ({len(tasks)} not done) and task groups ({len(groups)}):")
    for group in groups:
        extra = ", cancelled" if group.cancelled else ""
        lines.append(
            f"  <TaskGroup {group.name!r} {group.state}, {group.running} running, "
            f"{group.failed} failed{extra}>"
        )
    for task in tasks:
        lines.append(f"  <Task {task.name!r} {task.state}> on {thread(task.thread_ident)}")

    held = []
    for lock in checks._live_locks():
        stats = lock.statistics()
        if stats.locked:
            held.append((lock, stats))
    lines.append("")
    lines.append(f"checked locks held ({len(held)}):")
    for lock, stats in held:
        held_for = "" if stats.held_for is None else f" for {stats.held_for:.3f} s"
        waiting = "" if not stats.waiting else f", {stats.waiting} waiting"
        label = f"lock {stats.name!r}" if stats.name is not None else repr(lock)
        lines.append(f"  {label}: held by thread {stats.owner!r}{held_for}{waiting}")
        for ident, name in names.items():
            if name == stats.owner:
                relevant.add(ident)

    lines.append("")
    lines.append("waits:")
    waits = 0
    for ident, target in list(_waits._waiting.items()):
        lines.append(f"  {_waits.describe(ident)} waits for {_waits.describe(target)}")
        relevant.update((ident, target))
        waits += 1
    for ident, (lock, since) in checks._waiters().items():
        lines.append(f"  {thread(ident)} waits for {lock!r} since {now - since:.3f} s ago")
        waits += 1
    if not waits:
        lines.append("  none")

    frames: dict[int, FrameType] = sys._current_frames()
    lines.append("")
    lines.append("stacks:")
    for ident in sorted(relevant, key=lambda i: names.get(i, "")):
        frame = frames.get(ident)
        if frame is None:
            continue
        title = f"thread {names.get(ident, ident)!r}"
        role = _waits.describe(ident)
        lines.append(f"  {title}:" if role == title else f"  {title} ({role}):")
        for entry in traceback.format_stack(frame):
            lines.extend("    " + line for line in entry.rstrip("\n").split("\n"))
    del frames
    return "\n".join(lines) + "\n"


def dump_path(pid: int | None = None) -> Path:
    """Where :func:`install_dump_handler`'s handler of process *pid* writes its report.

    ``<tempdir>/threadkit-dump-<pid>.txt``; *pid* defaults to this process.

    .. versionadded:: 0.1
    """
    return Path(tempfile.gettempdir()) / f"threadkit-dump-{os.getpid() if pid is None else pid}.txt"


def install_dump_handler(
    signum: int = getattr(signal, "SIGUSR1", 0), *, file: TextIO | None = None
) -> Callable[..., Any] | int | None:
    """Make signal *signum* write :func:`dump` to *file* and to :func:`dump_path`.

    With the handler installed, ``kill -USR1 <pid>`` (or ``python -m threadkit
    dump <pid>``) makes a hung program report what its threads are doing and
    waiting for, without stopping it.  The report goes to *file* (default
    :data:`sys.stderr`) and, replacing the previous one, to
    :func:`dump_path`, where ``python -m threadkit dump`` reads it.  Pair it
    with :func:`faulthandler.register` on another signal for the C-level
    view when even the main thread cannot run Python code.

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

    def handler(_signum: int, _frame: FrameType | None) -> None:
        report = dump()
        out = sys.stderr if file is None else file
        try:
            out.write(report)
            out.flush()
        except (OSError, ValueError):  # a closed stream must not crash the program
            pass
        path = dump_path()
        partial = path.with_suffix(".partial")
        try:
            partial.write_text(report, encoding="utf-8")
            partial.replace(path)  # readers see a whole report or the previous one
        except OSError:
            pass

    return signal.signal(signum, handler)
