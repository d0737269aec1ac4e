"""Compaction over a whole store: every session, the sessions open at close, a background thread.

Strategy: these run above one session's compaction but below the `Journal` facade, so they take
the facade as a small protocol (`Compactable`) rather than importing it; one session's failure
is logged and reported, and the pass goes on with the others.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Protocol

from ..errors import JournalError
from ..log import manifest as mf
from ..log.fs import FileSystem
from .protocol import CompactionReport, CompactionResult, live_bytes

log = logging.getLogger("journal.compaction")


class Compactable(Protocol):
    """What a pass over the store uses of the `Journal` it runs for."""

    fs: FileSystem

    def sessions(self) -> Iterator[str]: ...

    def session_path(self, session_id: str) -> str: ...

    def compact(self, session_id: str) -> CompactionResult: ...

    def maybe_compact(self, session_id: str) -> CompactionResult | None: ...


def compact_all(journal: Compactable, only_due: bool) -> CompactionReport:
    """Compact every session with new records (`only_due`: only those the policy wants)."""
    report = CompactionReport()
    for session_id in list(journal.sessions()):
        try:
            path = journal.session_path(session_id)
            if live_bytes(journal.fs, path, mf.load(journal.fs, path).snapshot_seq) == 0:
                continue
            result = journal.maybe_compact(session_id) if only_due else journal.compact(session_id)
        except (JournalError, OSError) as exc:
            log.warning("compaction of session %r failed: %s", session_id, exc)
            report.errors[session_id] = str(exc)
            continue
        if result is not None:
            report.results.append(result)
    return report


def compact_sessions(journal: Compactable, session_ids: list[str]) -> CompactionReport:
    """Compact each of `session_ids` that has new records (`compact_on_close`)."""
    report = CompactionReport()
    for session_id in session_ids:
        try:
            result = journal.compact(session_id)
        except (JournalError, OSError) as exc:
            log.warning("compaction of session %r on close failed: %s", session_id, exc)
            report.errors[session_id] = str(exc)
            continue
        report.results.append(result)
    return report


class BackgroundCompactor:
    """A daemon thread calling `run` (a pass over the store) every `interval` seconds."""

    def __init__(self, run: Callable[[], object], interval: float) -> None:
        self.run, self.interval = run, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="journal-compactor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.run()
            except Exception:  # the thread must outlive one bad pass; the failure is logged
                log.exception("background compaction pass failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()
