"""Ctrl-C (SIGINT) while the main thread waits on threadkit: the program stops cleanly.

Each test runs a child interpreter that blocks in one of threadkit's waits
(``call()``, ``result()``, a task group's exit, ``shutdown(wait=True)``,
``Task.join()``),
prints ``ready`` just before it blocks, and is sent SIGINT.  The
``KeyboardInterrupt`` must reach the main thread, the process must exit
promptly (the live worker is drained at exit, its running request ends when
the worker's token is cancelled), and stderr must hold nothing but the
``KeyboardInterrupt`` itself: no thread traceback, no "Exception ignored".
"""

from __future__ import annotations

import signal
import sys
import textwrap

import pytest

from .conftest import interrupt_child

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

_CHILD = textwrap.dedent(
    """
    import sys, threading, threadkit
    mode, catch = sys.argv[1], sys.argv[2] == "catch"

    def ready():
        print("ready", flush=True)

    def until_shutdown(_resource):
        # Runs in the owner thread; ends when the worker's token is cancelled,
        # which shutdown (here: the one at interpreter exit) does.
        ready()
        threadkit.current_token().wait(60)

    try:
        if mode == "call":
            w = threadkit.ResourceWorker(object, name="w").start()
            w.call(until_shutdown)
        elif mode == "result":
            w = threadkit.ResourceWorker(object, name="w").start()
            w.submit(until_shutdown).result()
        elif mode == "group":
            def task():
                token = threadkit.current_token()
                ready()
                token.wait(60)
                token.raise_if_cancelled()
            with threadkit.TaskGroup(name="g") as group:
                group.spawn(task)
        elif mode == "shutdown":
            w = threadkit.ResourceWorker(object, name="w").start()
            gate = threading.Event()

            def ignores_the_token(_resource):
                # The worker's token is cancelled when shutdown begins: main
                # is then about to wait (it holds the GIL until it blocks).
                threadkit.current_token().wait(60)
                ready()
                gate.wait(60)  # ignores the token: shutdown really waits for it

            try:
                w.submit(ignores_the_token)
                w.shutdown(wait=True)
            finally:
                # Interrupted, shutdown(wait=True) must leave the owner thread
                # known to be alive, so that the interpreter's exit waits for
                # it (Thread.join() on 3.11/3.12 did not: CPython gh-90882).
                if not w.thread.is_alive():
                    print("owner thread taken for stopped", flush=True)
                gate.set()
        elif mode == "join":
            joining, gate = threading.Event(), threading.Event()

            def waits_for_the_gate():
                joining.wait(60)
                # Runs on only once main has dropped the GIL: blocked in join().
                ready()
                gate.wait(60)

            try:
                task = threadkit.spawn(waits_for_the_gate)
                joining.set()
                task.join()
            finally:
                if not task.thread.is_alive():  # as for "shutdown"
                    print("task thread taken for stopped", flush=True)
                gate.set()
        print("not interrupted", flush=True)
    except KeyboardInterrupt:
        if not catch:
            raise
        print("interrupted", flush=True)
    """
)


def _interrupt(mode: str, catch: str) -> tuple[int, str, str]:
    return interrupt_child(_CHILD, mode, catch)


MODES = ["call", "result", "group", "shutdown", "join"]


@pytest.mark.parametrize("mode", MODES)
def test_ctrl_c_while_waiting_raises_keyboard_interrupt_in_main_and_the_program_exits(
    mode: str,
) -> None:
    returncode, out, err = _interrupt(mode, "catch")
    assert (returncode, out, err) == (0, "interrupted\n", "")


@pytest.mark.parametrize("mode", MODES)
def test_an_uncaught_ctrl_c_while_waiting_ends_the_program_with_only_its_traceback(
    mode: str,
) -> None:
    returncode, out, err = _interrupt(mode, "uncaught")
    assert out == ""
    # An uncaught KeyboardInterrupt ends the process by SIGINT, as CPython does.
    assert returncode == -signal.SIGINT, err
    assert err.startswith("Traceback (most recent call last):\n"), err
    assert err.endswith("\nKeyboardInterrupt\n"), err
    assert err.count("Traceback") == 1, err
    assert "Exception ignored" not in err
    assert "Exception in thread" not in err
