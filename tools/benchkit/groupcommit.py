"""Strategy: the ceiling of thread group commit on this machine, as a contender handle.

The flat combining and gather of journal's `batch` mode in a few lines of Python, with no file
lock, sequence numbers, checks or error paths (BENCHMARKS.md, "Appends", tells how it was
found): appenders queue their lines, one leader writes them all and fsyncs once; a leader
that finds fewer queued than its last round served waits for them, at most half a sync.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from typing import Any

from benchkit.contenders import raw_line


class _Waiter:
    __slots__ = ("gate", "lead", "line")

    def __init__(self, line: bytes) -> None:
        self.line, self.lead = line, False
        self.gate = threading.Lock()
        self.gate.acquire()


class GroupCommitHandle:
    """One shared handle; `append` returns once its line is fdatasync'ed."""

    def __init__(self, root: str) -> None:
        os.makedirs(root, exist_ok=True)
        self.fd = os.open(os.path.join(root, "raw.jsonl"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self.guard = threading.Lock()
        self.queue: list[_Waiter] = []
        self.leading, self.awaited, self.last, self.sync = False, 0, 0, 0.0
        self.seq = itertools.count()

    def append(self, sid: str, msg: dict[str, Any]) -> None:
        me = _Waiter(raw_line(next(self.seq), msg))
        with self.guard:
            self.queue.append(me)
            lead, self.leading = not self.leading, True
            if len(self.queue) == self.awaited:
                self.awaited = 0
                self.queue[0].gate.release()
        if not lead:
            me.gate.acquire()
            if not me.lead:
                return
        with self.guard:
            gather = len(self.queue) < self.last
            self.awaited = self.last if gather else 0
        if gather:
            me.gate.acquire(timeout=min(self.sync / 2, 0.001))
        with self.guard:
            served = self.queue[:]
            self.queue.clear()
            self.last, self.awaited = len(served), 0
        os.write(self.fd, b"".join(waiter.line for waiter in served))
        started = time.perf_counter()
        os.fdatasync(self.fd)
        self.sync = time.perf_counter() - started
        self._hand_over(me, served)

    def _hand_over(self, me: _Waiter, served: list[_Waiter]) -> None:
        with self.guard:
            heir = self.queue[0] if self.queue else None
            self.leading = heir is not None
        if heir is not None:
            heir.lead = True
            heir.gate.release()
        for waiter in served:
            if waiter is not me:
                waiter.gate.release()

    def close(self) -> None:
        os.close(self.fd)
