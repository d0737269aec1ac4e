"""Objects that must be fixed up in a child made by `fork()`.

Strategy: a child of `fork()` inherits the parent's open descriptors, which share their open
file descriptions (so their flocks) with the parent's, and its locks in whatever state a parent
thread left them, with none of the parent's threads. `register` keeps a weak reference to an
object; after a fork, the child calls `after_fork()` on each one still alive. A hook, not a
pid check on the hot path: it costs appends nothing.
"""

from __future__ import annotations

import os
import weakref
from typing import Protocol


class ForkAware(Protocol):
    def after_fork(self) -> None: ...


_LIVE: weakref.WeakSet[ForkAware] = weakref.WeakSet()


def register(obj: ForkAware) -> None:
    """Call `obj.after_fork()` in every child forked while `obj` is alive."""
    _LIVE.add(obj)


def _after_fork_in_child() -> None:
    for obj in list(_LIVE):
        obj.after_fork()


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork either
    os.register_at_fork(after_in_child=_after_fork_in_child)
