"""The zero-filled tail of a preallocated active segment (FORMAT.md, "Segments").

Strategy: an fdatasync that must also commit a new file size costs a journal commit on ext4
(about 1.5x the sync of bytes inside the file), so a writer that will sync writes zeros ahead
of the segment's end, at most `Options.preallocate` bytes and never more than the segment
holds already (a small session stays small), then writes its records over them with pwrite.
The data ends at the last whole line before the NUL bytes: `scan` stops there (a record line
never holds a NUL). Nothing else in the format changes, so readers that know no more than the
recovery rules see a torn tail of zeros and cut it, losing no record.

A handle caches where the data ends (`seg_size`) and where the file ends (`seg_alloc`). Under
the lock, new records from other processes sit at `seg_size`: one byte read there tells
whether any came (a NUL: none; a writer writes whole lines under the lock, in order). Only a
handle that has scanned the segment from its start relies on that; after a power loss the
first open reads it all, so zeros followed by bytes are judged by the recovery rules. Before
the handle leaves a sealed segment the zeros after the seal are cut and synced, before the next
segment's name exists: a closed segment ends in its seal, as before.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from ..errors import UnsafePathError
from .fs import FileSystem
from .scan import Scan, scan

PAGE = 4096
_WINDOW = 4096  # a catch-up reads new bytes a window at a time (x4 each) until the zeros start
_SETTLE_READS = 6  # reads of bytes that look damaged before a lock-free reader believes them


@dataclass
class Tail:
    """One handle's view of its active segment's preallocated tail."""

    fs: FileSystem
    ahead: int  # Options.preallocate: 0 disables
    known: bool = False  # this handle scanned the segment from its start
    alloc: int = 0  # the file's size as last seen (the data ends at `SessionLog.seg_size`)
    pwrite: Callable[[int, bytes, int], None] | None = field(default=None, repr=False)
    path: str = ""  # the segment's, for errors

    def open(self, path: str, mode: int, read_only: bool) -> int:
        """Open the segment at `path` (creating it), for pwrite when preallocation is on:
        only a file system that offers `open_positional` and `pwrite` (the OS, where it has
        pwrite, and the simulated disk) preallocates; any other appends as before."""
        opener = getattr(self.fs, "open_positional", None)
        on = self.ahead > 0 and not read_only and opener is not None and _pairs(type(self.fs))
        self.pwrite = getattr(self.fs, "pwrite", None) if on else None
        self.alloc, self.known, self.path = 0, False, path
        if self.pwrite is not None and opener is not None:
            fd: int = opener(path, create=True, mode=mode)
            return fd
        return self.fs.open(path, create=True, mode=mode)

    def new_bytes(self, fd: int, start: int, size: int) -> bytes:
        """The bytes from `start` (the end of the data this handle knows) that a catch-up must
        scan: none if a NUL is there; else a window at a time until one holding a NUL (the
        zeros start in it) or the file's end. A handle that has not read the segment from its
        start yet reads everything: after a power loss zeros may come before other bytes."""
        self.alloc = size
        if not self.known:
            self.known = True
            return self.fs.pread(fd, size - start, start)
        if self.fs.pread(fd, 1, start) == b"\0":
            return b""
        window = _WINDOW
        while True:
            want = min(window, size - start)
            data = self.fs.pread(fd, want, start)
            if len(data) < want or len(data) == size - start or data.find(0) >= 0:
                return data  # (shorter than asked: the file ends there)
            window *= 4

    def write(self, fd: int, lines: bytes, end: int, extend: bool) -> None:
        """Write `lines` where the data ends (`end`); with `extend` (the write will be synced),
        first fill zeros ahead when they would not cover it. A failed zero fill is only a
        missed speed-up: the zeros it wrote are the tail, and the record write goes on. A
        handle that appends (no pwrite) first cuts zeros another handle left: unsynced, as a
        power loss that keeps the append and loses the cut leaves zeros after it, a tail."""
        if not self.known:  # entered by a roll, never read: empty, unless journal did not make it
            if self.fs.size(fd) > end:  # (a file linked at the next segment's name): write nothing
                raise UnsafePathError(self.path, "a file journal did not write is at this segment's name")
            self.known = True
        if self.pwrite is None:
            if self.alloc > end:  # another handle's zeros: an append would land after them
                self.fs.truncate(fd, end)
                self.alloc = end
            self.fs.append(fd, lines)
            return
        need = end + len(lines)
        if extend and need > self.alloc:
            ahead = min(self.ahead, max(end, PAGE))
            target = (need + ahead + PAGE - 1) // PAGE * PAGE
            try:
                self.pwrite(fd, bytes(target - self.alloc), self.alloc)
                self.alloc = target
            except OSError:
                self.alloc = self.fs.size(fd)
        self.pwrite(fd, lines, end)
        if need > self.alloc:
            self.alloc = need

    def trim(self, fd: int, end: int) -> None:
        """Before leaving a sealed segment: cut its zeros after the seal, durably."""
        if self.fs.size(fd) > end:
            self.fs.truncate(fd, end)
            self.fs.sync(fd)
        self.alloc = end


def _pairs(cls: type) -> bool:
    """Does `cls` write through `pwrite` as it appends, and open for it as it opens? A subclass
    that changes `append` or `open` (to count or fail them) and not its twin keeps appending:
    its own `append` and `open` stay the ones used."""
    if not hasattr(os, "pwrite"):
        return False
    return all(
        _owner(cls, twin) is not object and issubclass(_owner(cls, twin), _owner(cls, name))
        for name, twin in (("append", "pwrite"), ("open", "open_positional"))
    )


def _owner(cls: type, name: str) -> type:
    return next((k for k in cls.__mro__ if name in vars(k)), object)


def scan_settled(read: Callable[[], bytes], base: int, next_seq: int, path: str) -> tuple[bytes, Scan]:
    """`scan` for a reader that does not hold the session lock. A writer filling the zeros of
    a preallocated segment copies its bytes page by page, so such a reader can see a later
    page written and an earlier one still zeros: damage followed by valid records. Bytes that
    look so while holding a NUL are read again, a little later each time; damage still there
    after a few reads is what the file holds, and is reported."""
    for attempt in range(_SETTLE_READS):
        data = read()
        result = scan(data, base, next_seq, path)
        problem = result.problem
        if problem is None or problem.kind != "corruption" or data.find(0) < 0:
            break
        time.sleep(0.0005 * (1 << attempt))
    return data, result


class Handle(Protocol):
    """What `trim_at_rest` uses of a `SessionLog` (which imports this module)."""

    fs: FileSystem
    tail: Tail
    lock_fd: int
    seg_fd: int
    seg_size: int
    generation: int
    broken: bool

    @property
    def poisoned(self) -> object: ...

    def _catch_up(self) -> None: ...


def trim_at_rest(log: Handle) -> None:
    """On closing a handle that preallocated: cut the zeros after the data, so a session at
    rest holds none. Only if the lock is free now, caught up first (another process may have
    written into them); any failure leaves the zeros, a valid tail. Unsynced: a power loss
    that loses the cut leaves that same valid tail."""
    if log.tail.pwrite is None or log.tail.alloc <= log.seg_size or log.lock_fd < 0:
        return
    try:
        log.fs.lock(log.lock_fd, 0)
    except Exception:  # busy (LockTimeout) or failing: the zeros stay
        return
    try:
        if log.fs.size(log.lock_fd) == log.generation and not log.broken and log.poisoned is None:
            log._catch_up()
            if log.fs.size(log.seg_fd) > log.seg_size:
                log.fs.truncate(log.seg_fd, log.seg_size)
    except Exception:  # the next open judges the segment as it is
        pass
    finally:
        log.fs.unlock(log.lock_fd)
