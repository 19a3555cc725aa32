"""The typed API of the checked primitives that depends on the Python version.

``RLock.locked()`` exists exactly where :class:`threading.RLock` has it (3.14
on); the ``type: ignore`` line must stay an error before 3.14.
"""

from __future__ import annotations

import sys

import threadkit


def typed_rlock_locked() -> None:
    rlock = threadkit.RLock()
    if sys.version_info >= (3, 14):
        held: bool = rlock.locked()
        del held
    else:
        rlock.locked()  # type: ignore[attr-defined]
