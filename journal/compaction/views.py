"""Keeping the documented view files of the sessions a process writes at most a lag behind.

Strategy: the append path only notes, once per session until its views are written again,
the time of its first unviewed append (`Journal` keeps that dict; no compaction work, no
I/O). A daemon thread (`ViewKeeper`) sleeps until the earliest noted session is due, or
until woken by a new note, and compacts the sessions due: a session first written at t is
compacted from t + lag/2 on, so its messages are in messages.json within the lag while the
thread keeps up. A large snapshot is rewritten less often, to bound write amplification: a
messages.json of S > `view_bytes` bytes waits lag x S / view_bytes (at most that far behind).
When started, the thread first queues every session whose live log holds records (views
stale after a crash, or written by a process that did not keep them current).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Protocol

from ..errors import JournalError
from ..log import manifest as mf
from ..log.fs import FileSystem
from .protocol import CompactionPolicy, CompactionResult, live_bytes

log = logging.getLogger("journal.compaction")


class ViewSource(Protocol):
    """What the keeper uses of the `Journal` it runs for."""

    fs: FileSystem

    def sessions(self) -> Iterator[str]: ...

    def session_path(self, session_id: str) -> str: ...

    def compact(self, session_id: str) -> CompactionResult: ...


def view_delay(fs: FileSystem, path: str, lag: float, view_bytes: int) -> float:
    """Seconds after its first unviewed append that a session is compacted."""
    st = fs.stat(os.path.join(path, mf.MESSAGES_FILE))
    size = st.size if st is not None else 0
    return lag / 2 * max(1.0, size / view_bytes)


def is_stale(fs: FileSystem, path: str) -> bool:
    """Does the session's live log hold records its views do not show?"""
    return live_bytes(fs, path, mf.load(fs, path).snapshot_seq) > 0


class ViewKeeper:
    """A daemon thread compacting the sessions noted in `pending` (id -> time of the first
    unviewed append) once they are due; `wake()` after noting one."""

    def __init__(
        self, journal: ViewSource, pending: dict[str, float], lag: float, view_bytes: int, scan: bool
    ) -> None:
        self.journal, self.pending, self.lag, self.view_bytes = journal, pending, lag, view_bytes
        self._scan = scan
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="journal-views", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Stop after the compaction under way, if any."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def _loop(self) -> None:
        if self._scan:
            self._queue_stale()
        while not self._stop.is_set():
            try:
                timeout = self.run_once(time.time())
            except Exception:  # the thread must outlive one bad pass; the failure is logged
                log.exception("view compaction pass failed")
                timeout = self.lag
            self._wake.wait(timeout)
            self._wake.clear()

    def _queue_stale(self) -> None:
        """Queue, as due now, every session whose live log holds records."""
        try:
            for session_id in list(self.journal.sessions()):
                if self._stop.is_set():
                    return
                try:
                    if is_stale(self.journal.fs, self.journal.session_path(session_id)):
                        self.pending.setdefault(session_id, 0.0)
                except (JournalError, OSError) as exc:
                    log.warning("session %r: cannot tell if its views are current: %s", session_id, exc)
        except OSError as exc:
            log.warning("cannot list the store to bring stale views current: %s", exc)

    def run_once(self, now: float) -> float | None:
        """Compact every due session; return the seconds until the next is due (None: none
        noted)."""
        next_due: float | None = None
        for session_id, first in list(self.pending.items()):
            if self._stop.is_set():
                return None
            path = self.journal.session_path(session_id)
            due = first + view_delay(self.journal.fs, path, self.lag, self.view_bytes)
            if due > now:
                next_due = due if next_due is None else min(next_due, due)
                continue
            self.pending.pop(session_id, None)  # appends from now on note the session anew
            self._compact(session_id, path)
        return None if next_due is None else max(0.0, next_due - time.time())

    def _compact(self, session_id: str, path: str) -> None:
        try:
            if is_stale(self.journal.fs, path):
                self.journal.compact(session_id)
        except (JournalError, OSError) as exc:
            log.warning("views of session %r not brought current: %s", session_id, exc)
            self.pending.setdefault(session_id, time.time())  # try again a lag later


class Writes:
    """The sessions a `Journal` appended to: since the last `take_written` (`written`), and
    since their views were last written (`pending`, for the keeper, when the policy sets a
    `max_view_lag`)."""

    def __init__(self, journal: ViewSource, policy: CompactionPolicy) -> None:
        self.journal, self.policy = journal, policy
        self.pending: dict[str, float] = {}
        self.written: set[str] = set()
        self._lock = threading.Lock()  # guards `_keeper`
        self._keeper: ViewKeeper | None = None
        self._scanned = False

    def start(self) -> None:
        """Start the keeper (if the policy has a lag); the first start also queues the
        sessions whose views are stale, from the keeper's thread."""
        lag = self.policy.max_view_lag
        if lag is None:
            return
        with self._lock:
            if self._keeper is None:
                scan, self._scanned = not self._scanned, True
                self._keeper = ViewKeeper(self.journal, self.pending, lag, self.policy.view_bytes, scan)
                self._keeper.start()

    def note(self, session_id: str) -> None:
        """Called after an append to a session not in `pending`: remember it, wake the keeper."""
        self.written.add(session_id)
        self.pending.setdefault(session_id, time.time())
        if self.policy.max_view_lag is not None:
            keeper = self._keeper
            if keeper is None:
                self.start()
            else:
                keeper.wake()

    def forked(self) -> Writes:
        """For a forked child: no keeper thread (the child's first append starts one) and no
        rescan of the store (the parent's keeper does that); the parent's notes stay its own."""
        child = Writes(self.journal, self.policy)
        child._scanned = True
        return child

    def take_written(self) -> list[str]:
        """The sessions appended to since the last call whose views are stale; forget them."""
        taken, self.written = self.written, set()
        for session_id in taken:  # the next append notes it again
            self.pending.pop(session_id, None)
        return [sid for sid in sorted(taken) if _stale_quietly(self.journal, sid)]

    def stop(self) -> None:
        with self._lock:
            keeper, self._keeper = self._keeper, None
        if keeper is not None:
            keeper.stop()


def with_view_lag(policy: CompactionPolicy | None, lag: float | None) -> CompactionPolicy:
    """`policy` (default: the default policy) with `max_view_lag` = `lag` unless it sets one."""
    policy = policy if policy is not None else CompactionPolicy()
    return policy if policy.max_view_lag is not None else replace(policy, max_view_lag=lag)


def _stale_quietly(journal: ViewSource, session_id: str) -> bool:
    try:
        return is_stale(journal.fs, journal.session_path(session_id))
    except (JournalError, OSError):
        return True  # let the compaction say what is wrong
