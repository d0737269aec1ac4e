"""`gc_paused`: CPython's cyclic garbage collector held off while many objects are built:
while a snapshot is decoded, and while a history is mapped to LLM messages.

Strategy: the collector runs after every few hundred container objects allocated, and now and
then walks every object of the process. Decoding a 10,000-message snapshot allocates tens of
thousands of dicts and records, all reachable, so those runs find no garbage: they only cost
time (measured: about 40% of a cold `get_chat_history`, most of it one walk of the whole
heap). Holding the collector off for such a burst is what Mercurial's ``util.nogc`` does. The
new objects are then examined by the first collection after the pause, as any young objects
are. Only CPU-bound work on data already in memory is done paused, never a wait on a lock or
a file: a pause lasts as long as the decoding (about 15 ms for 10,000 messages).

One thread pauses at a time and pauses never nest: a thread that finds the collector already
off (paused by another thread, or by the program) runs without pausing. So the collector is on
whenever no decoding pauses it, and back-to-back reads of several threads cannot keep it off
for longer than one decode. A program that turns the collector off while a pause runs finds it
on again afterwards.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

_TURN = threading.Lock()  # makes "is it on? then turn it off" one step


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Run the body with the cyclic collector off, if it was on; then turn it back on."""
    paused = False
    try:
        with _TURN:
            if gc.isenabled():
                paused = True  # first: an interrupt right after the next call still re-enables
                gc.disable()
        yield
    finally:
        if paused:
            gc.enable()
