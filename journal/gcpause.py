"""`gc_paused`: CPython's cyclic garbage collector held off while many objects are built.

Strategy: the collector runs after every few hundred container objects allocated, and now and
then walks every object of the process. Decoding a 10,000-message snapshot allocates tens of
thousands of dicts and records, all reachable, so those runs find no garbage: they only cost
time (measured: about 40% of a cold `get_chat_history`, most of it one walk of the whole
heap). Holding the collector off for such a burst is what Mercurial's ``util.nogc`` does. The
new objects are then examined by the first collection after the pause, as any young objects
are. Only CPU-bound work on data already in memory is done paused, never a wait on a lock or
a file: a pause lasts as long as the decoding (about 14 ms for 10,000 messages). Pauses of
several threads nest: the collector runs again when the last one ends, and only if it was
running when the first began (a program that turns it off meanwhile finds it on again).
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator


class _Pauses:
    """How many threads are inside `gc_paused`, and whether to re-enable the collector."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.holders = 0
        self.resume = False

    def enter(self) -> None:
        with self.lock:
            if self.holders == 0:
                self.resume = gc.isenabled()
                gc.disable()
            self.holders += 1

    def leave(self) -> None:
        with self.lock:
            self.holders -= 1
            if self.holders == 0 and self.resume:
                gc.enable()


_PAUSES = _Pauses()


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Run the body with the cyclic collector off; it is back as it was when the body ends."""
    _PAUSES.enter()
    try:
        yield
    finally:
        _PAUSES.leave()
