"""fork() in a process with live workers: the child does not hang, the parent is unaffected."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from .conftest import WAIT

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def test_an_inherited_worker_refuses_requests_in_the_child_and_the_parent_goes_on() -> None:
    code = textwrap.dedent(
        """
        import os, sys, threadkit, warnings
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() with threads, on 3.12+
        w = threadkit.ResourceWorker(lambda: [], name="db").start()
        w.call(list.append, "before")
        pid = os.fork()
        if pid == 0:
            try:
                w.call(list.append, "child")
            except threadkit.WorkerClosed as e:
                print("child:", e, flush=True)
            w.shutdown()  # must not hang: there is no owner thread here
            print("child: shutdown returned", flush=True)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        print("parent: child exit", os.waitstatus_to_exitcode(status), flush=True)
        w.call(list.append, "parent")
        print("parent:", w.call(list.copy), flush=True)
        w.shutdown()
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=WAIT * 3, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "child: cannot call worker 'db' in a forked child process: its owner thread exists "
        "only in the parent; create a new worker here",
        "child: shutdown returned",
        "parent: child exit 0",
        "parent: ['before', 'parent']",
    ]
