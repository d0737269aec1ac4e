"""Locks for `journal.integrations.adk`: lock files across processes, call order within a loop.

Strategy: a write that must check the log and then append (ADK's stale-session check, a
read-modify-write of shared state) holds an exclusive `flock` on a file of its own, one per
journal session, through the journal's file-system interface (so links are refused); each
holder opens the file anew, so threads of one process exclude each other as well. A delete
removes its lock file while holding it; a waiter that then gets the lock finds its file no
longer at the path (`same_file`) and locks the new one. Within one event loop, calls on one
session run one at a time in the order they were made: an `asyncio.Lock` (FIFO) per session,
dropped once no call holds or waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import weakref
from collections.abc import AsyncIterator, Iterator
from typing import Any

from ..errors import ReadOnlyError
from ..log import naming
from ..log.fs import make_dirs
from ..native import Journal

__all__ = ["CallOrder", "LockFiles"]


class LockFiles:
    """Cross-process exclusive locks on names, as files in the directory `directory` of the
    store root (a name that is not a session's: FORMAT.md, "Google ADK sessions")."""

    def __init__(self, journal: Journal, directory: str) -> None:
        self._journal = journal
        self._dir = os.path.join(journal.root, directory)

    @contextlib.contextmanager
    def hold(self, key: str, *, remove: bool = False) -> Iterator[None]:
        """Hold the lock of `key`; with `remove`, its file is removed before it is released
        (a waiter then finds its file gone from the path and takes the new one)."""
        journal = self._journal
        if journal.read_only:
            raise ReadOnlyError(journal.root, "cannot write ADK sessions: the store is open read-only")
        path = os.path.join(self._dir, naming.encode_id(key))
        fd = self._acquire(path)
        try:
            yield
            if remove:
                with contextlib.suppress(OSError):  # Windows keeps an open file: it stays, harmless
                    journal.fs.unlink(path)
        finally:
            journal.fs.unlock(fd)
            journal.fs.close(fd)

    def _acquire(self, path: str) -> int:
        fs, options = self._journal.fs, self._journal.options
        while True:
            try:
                fd = fs.open(path, create=True, mode=options.file_mode)
            except FileNotFoundError:  # the first lock of the store: make its directory
                make_dirs(fs, self._dir, options.dir_mode)
                continue
            try:
                fs.lock(fd, options.lock_timeout)
                if fs.same_file(fd, path):
                    return fd
                fs.unlock(fd)  # removed by a delete while we waited: lock the new file
            except BaseException:
                fs.close(fd)
                raise
            fs.close(fd)


class CallOrder:
    """One call at a time per session, in call order, within each event loop."""

    def __init__(self) -> None:
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, list[Any]]] = (
            weakref.WeakKeyDictionary()
        )

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        locks = self._locks.setdefault(asyncio.get_running_loop(), {})
        entry = locks.setdefault(key, [asyncio.Lock(), 0])  # [lock, calls holding or waiting]
        entry[1] += 1
        try:
            async with entry[0]:  # asyncio.Lock is FIFO: calls run in the order they came
                yield
        finally:
            entry[1] -= 1
            if not entry[1]:
                del locks[key]
