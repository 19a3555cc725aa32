"""Helpers shared by the ResourceWorker tests: gates that hold the owner thread."""

from __future__ import annotations

import sys
import threading
from typing import Any

from .conftest import WAIT


class Gate:
    """A request that holds the owner thread until the test opens the gate.

    ``entered`` is set when the request starts running in the owner thread;
    the request then waits (bounded) for ``opened``.  While it waits, every
    other request stays queued, so the test controls exactly what is pending.
    """

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()
        self.ran_in: threading.Thread | None = None

    def __call__(self, resource: Any, *args: Any) -> str:
        self.ran_in = threading.current_thread()
        self.entered.set()
        assert self.opened.wait(WAIT), "gate never opened"
        return "gate"

    def wait_entered(self) -> None:
        assert self.entered.wait(WAIT), "gate request never started"

    def open(self) -> None:
        self.opened.set()


def in_thread(fn: Any, *args: Any) -> tuple[threading.Thread, dict[str, Any]]:
    """Run fn(*args) in a new thread; the dict gets 'result' or 'error', then 'done'."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["result"] = fn(*args)
        except BaseException as exc:  # handed to the test through out
            out["error"] = exc
        out["done"] = True

    t = threading.Thread(target=run)
    t.start()
    return t, out


def run_until_blocked(fn: Any, *args: Any) -> tuple[threading.Thread, dict[str, Any]]:
    """Run fn(*args) in a new thread and return once it blocks.

    Proves that the thread *waits* by an event, not by timing: a profile hook
    in that thread sets it when the thread enters
    :meth:`threading.Condition.wait` (where ``queue.Queue.put`` blocks while
    the mailbox is full), acquires a lock from inside
    :meth:`ResourceWorker.call` (where a caller waits for its request), or
    joins a thread (where ``shutdown(wait=True)`` waits for the owner).
    Fails if fn returns without blocking.  The dict gets 'result' or 'error',
    then 'done'.
    """
    blocked = threading.Event()
    wait_code = threading.Condition.wait.__code__
    out: dict[str, Any] = {}

    def hook(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code is wait_code:
            blocked.set()
        elif event == "c_call":
            c_name = getattr(arg, "__name__", None)
            where = (frame.f_code.co_name, frame.f_code.co_filename)
            if (
                # a caller of ResourceWorker.call() waiting for its request
                (c_name == "acquire" and where[0] == "_call" and where[1].endswith("_engine.py"))
                # Thread.join(): 3.11 and 3.12 wait on the thread's tstate lock,
                # 3.13 on its handle
                or (c_name == "acquire" and where[0] == "_wait_for_tstate_lock")
                or (c_name == "join" and where[0] == "join" and where[1].endswith("threading.py"))
            ):
                blocked.set()

    def run() -> None:
        sys.setprofile(hook)
        try:
            out["result"] = fn(*args)
        except BaseException as exc:  # handed to the test through out
            out["error"] = exc
        finally:
            sys.setprofile(None)
            out["done"] = True
            blocked.set()

    t = threading.Thread(target=run)
    t.start()
    assert blocked.wait(WAIT), "the thread neither blocked nor returned"
    assert "done" not in out, f"returned without blocking: {out}"
    return t, out
