"""Helpers shared by the ResourceWorker tests: gates that hold the owner thread."""

from __future__ import annotations

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
