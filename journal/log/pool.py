"""The open sessions of one store: a bounded cache of `SessionLog` handles.

Strategy: a host with thousands of live sessions must not run out of file descriptors or
memory, so at most `max_open` sessions stay open (two descriptors each) and their folded states
together hold at most `max_cached` messages; past either bound the least recently used are
closed, and read again from disk when next used. A handle that finds itself stale (the session
was deleted or repaired by another process) or closed is dropped and the action retried on a
fresh one. A handle poisoned by a failed fsync leaves its error behind, so the session refuses
appends until `forgive` (`Journal.reopen`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TypeVar

from ..errors import CorruptionError, DurabilityError, JournalError, StoreRootError
from . import naming
from .fs import FileSystem
from .session import Closed, Options, SessionLog, Stale

T = TypeVar("T")
_RETRIES = 100  # an attempt fails only when another thread evicted or reopened the handle


class SessionPool:
    """The open `SessionLog`s of the store at `root`, least recently used first."""

    def __init__(
        self,
        fs: FileSystem,
        root: str,
        options: Options,
        max_open: int,
        max_cached: int,
        prepare: Callable[[str], object] | None = None,
    ) -> None:
        self.fs, self.root, self.options = fs, root, options
        self.prepare = prepare  # run before a session is opened (the facade adopts foreign files)
        self.max_open, self.max_cached = max_open, max_cached
        self.lock = threading.Lock()
        self.cached = 0  # the sum of `counted` over the open sessions
        self.open: OrderedDict[str, SessionLog] = OrderedDict()
        self.poisoned: dict[str, DurabilityError] = {}

    def current(self, session_id: str) -> SessionLog | None:
        """The open handle of `session_id`, if any, now the most recently used (the hot path).

        Raises:
            DurabilityError: an earlier fsync of the session failed and was not forgiven.
        """
        with self.lock:
            if self.poisoned and session_id in self.poisoned:
                raise self.poisoned[session_id]
            log = self.open.get(session_id)
            if log is not None:
                self.open.move_to_end(session_id)
            return log

    def with_log(self, session_id: str, create: bool, action: Callable[[SessionLog | None], T]) -> T:
        """`action` on the session's current handle (None: no such session and not `create`)."""
        for _ in range(_RETRIES):
            log = self.get(session_id, create)
            try:
                return action(log)
            except (Stale, Closed):
                if log is not None:
                    self.drop(session_id, log)
        raise JournalError(f"session {session_id!r} kept changing on disk; try again")

    def get(self, session_id: str, create: bool) -> SessionLog | None:
        with self.lock:
            log = self.open.get(session_id)
            if log is not None:
                self.open.move_to_end(session_id)
                return log
            if create and session_id in self.poisoned:
                raise self.poisoned[session_id]
        if self.prepare is not None:
            self.prepare(session_id)
        log = SessionLog(self.fs, self.path(session_id), session_id, self.options)
        try:
            if not log.open(create):
                return None
        except PermissionError as exc:
            raise StoreRootError(f"cannot open session {session_id!r} under {self.root}: {exc}") from exc
        except OSError as exc:
            if exc.errno in (errno.EEXIST, errno.EISDIR, errno.ENOTDIR):  # file vs directory mix-up
                raise CorruptionError(log.path, 0, f"damaged layout: {exc}") from exc
            # ENOSPC/EIO writing the identity file or cutting a torn tail
            raise DurabilityError(f"cannot open session {session_id!r}: {exc}") from exc
        return self._remember(session_id, log)

    def path(self, session_id: str) -> str:
        return os.path.join(self.root, naming.encode_id(session_id))

    def _remember(self, session_id: str, log: SessionLog) -> SessionLog:
        with self.lock:
            existing = self.open.get(session_id)
            if existing is not None:
                evicted = [log]
                log = existing
            else:
                self.open[session_id] = log
                evicted = []
                while len(self.open) > self.max_open:
                    evicted.append(self._forget(next(iter(self.open))))
        for old in evicted:
            self._retire(old)
        return log

    def drop(self, session_id: str, log: SessionLog | None = None) -> None:
        """Close the session's handle (only if it is still `log`, when given)."""
        with self.lock:
            current = self.open.get(session_id)
            if current is not None and (log is None or current is log):
                self._forget(session_id)
                log = current
        if log is not None:
            self._retire(log)

    def forgive(self, session_id: str) -> None:
        """Forget a failed fsync of the session: the next open recovers it from disk."""
        with self.lock:
            self.poisoned.pop(session_id, None)

    def count(self, log: SessionLog) -> None:
        """Count the messages `log`'s state holds; while the open sessions hold more than
        `max_cached`, close the least recently used others."""
        evicted: list[SessionLog] = []
        with self.lock:
            if self.open.get(log.session_id) is not log:
                return  # evicted or dropped meanwhile: no longer counted
            self.cached += log.held - log.counted
            log.counted = log.held
            for session_id, other in list(self.open.items()):  # least recently used first
                if self.cached <= self.max_cached:
                    break
                if other is not log and other.counted:
                    evicted.append(self._forget(session_id))
        for old in evicted:
            self._retire(old)

    def after_fork(self) -> None:
        """In a forked child: forget the parent's handles without unlocking anything (see
        `SessionLog.abandon`); the child opens its own on first use. The pool's lock is a new
        one: a parent thread may have held it at the fork."""
        self.lock = threading.Lock()
        logs, self.open, self.cached = list(self.open.values()), OrderedDict(), 0
        for log in logs:
            _abandon(log)

    def open_ids(self) -> list[str]:
        with self.lock:
            return list(self.open)

    def close(self) -> None:
        """Close every open handle."""
        with self.lock:
            logs = [self._forget(session_id) for session_id in list(self.open)]
        for log in logs:
            log.close()

    def _forget(self, session_id: str) -> SessionLog:
        """Take a session out of the cache (`lock` held); the caller retires its handle."""
        log = self.open.pop(session_id)
        self.cached -= log.counted
        return log

    def _retire(self, log: SessionLog) -> None:
        log.close()
        if log.poisoned is not None:
            with self.lock:
                self.poisoned[log.session_id] = log.poisoned


def _abandon(log: SessionLog) -> None:
    """In a forked child: drop a handle inherited from the parent. Its descriptors are closed,
    never unlocked: the parent still holds its flock through the same open file description,
    and closing the child's copy leaves that lock held. Its locks are new ones: a parent
    thread may have held them at the fork, and no such thread runs here."""
    log.cond = threading.Condition(threading.Lock())
    log.queue_lock = threading.Lock()
    log.queue, log.in_lock, log.lock_waiters, log.leading = [], False, 0, False
    log.closed = True
    for fd in (log.seg_fd, log.lock_fd):
        if fd >= 0:
            with contextlib.suppress(OSError):
                log.fs.close(fd)
    log.seg_fd = log.lock_fd = -1
