"""`gc`: the retention the docs ask for, "automatic cleanup of old or empty sessions".

Strategy: each session's last activity and message count come from its summary
(`log.summary.read_summary`: session_id.json plus the few records after it), or from
`Store.state` when the files cannot say it cheaply; a candidate is deleted through
`Store.delete` right after it is examined, and only without `dry_run`. Nothing else is ever
removed: gc deletes whole sessions, the way `Journal.delete` does, and reports the rest.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from ..errors import JournalError, ReadOnlyError
from ..log.snapshot import iso
from ..log.summary import read_summary
from .protocol import Progress, Store
from .scanning import listed_sessions


@dataclass
class GcReport:
    """What `gc` found and did. `candidates`: (session id, why) of every session the rules
    select; `deleted`: the ids deleted (none with `dry_run`); `problems`: (session id,
    reason) of sessions that could not be examined or deleted."""

    dry_run: bool
    candidates: list[tuple[str, str]] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: tuples as lists."""
        return {
            "dry_run": self.dry_run,
            "candidates": [[session_id, reason] for session_id, reason in self.candidates],
            "deleted": list(self.deleted),
            "problems": [[session_id, reason] for session_id, reason in self.problems],
        }


def gc(
    store: Store,
    *,
    older_than: timedelta | float | None = None,
    empty: bool = False,
    dry_run: bool = True,
    progress: Progress | None = None,
) -> GcReport:
    """Select old or empty sessions and, without `dry_run`, delete them.

    A session is a candidate when `older_than` is given and its last activity (the time of
    its last record: `SessionState.updated_at`) is more than `older_than` ago, or when
    `empty` is set and its current history holds no message (never written, cleared, or
    metadata only). With both, either rule selects it. A session without any record has no
    last activity: only `empty` selects it.

    Args:
        older_than: a `timedelta` or seconds (>= 0).
        empty: select sessions without messages.
        dry_run: only report (the default); False deletes the candidates (`Journal.delete`).
        progress: called with (sessions done, sessions in all) after each session.

    Returns:
        A `GcReport`. A session appended to between its examination and its deletion
        (microseconds apart) is deleted with that message.

    Raises:
        ValueError: neither `older_than` nor `empty` (a gc that would select nothing, or by
            mistake everything, is refused), or a negative `older_than`.
        ReadOnlyError: `dry_run=False` on a store opened read-only (nothing is examined).
    """
    seconds = _seconds(older_than)
    if seconds is None and not empty:
        raise ValueError("gc needs older_than, empty, or both: it selects nothing else")
    if not dry_run and store.read_only:
        raise ReadOnlyError(store.root, "cannot delete sessions: the store is open read-only")
    cutoff = None if seconds is None else time.time() - seconds
    chosen, unreadable = listed_sessions(store)
    report = GcReport(dry_run=dry_run, problems=unreadable)
    for done, session_id in enumerate(chosen, 1):
        try:
            reason = _why(store, session_id, cutoff, empty)
            if reason is not None:
                report.candidates.append((session_id, reason))
                if not dry_run and store.delete(session_id):
                    report.deleted.append(session_id)
        except (JournalError, OSError) as exc:
            report.problems.append((session_id, str(exc)))
        if progress is not None:
            progress(done, len(chosen))
    return report


def _seconds(older_than: timedelta | float | None) -> float | None:
    if older_than is None:
        return None
    if isinstance(older_than, timedelta):
        seconds = older_than.total_seconds()
    elif isinstance(older_than, (int, float)) and not isinstance(older_than, bool):
        seconds = float(older_than)
    else:
        raise TypeError(f"older_than must be a timedelta or seconds, not {type(older_than).__name__}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"older_than must be a finite duration >= 0, not {older_than!r}")
    return seconds


def _why(store: Store, session_id: str, cutoff: float | None, empty: bool) -> str | None:
    """Why the rules select the session, or None (also when it is gone)."""
    summary = read_summary(store.fs, store.session_path(session_id))
    if summary is not None:
        count, updated = summary.message_count, summary.updated_at
    else:  # the files cannot say it cheaply and for sure: fold it
        state = store.state(session_id)
        if state is None:
            return None
        count, updated = len(state.messages), state.updated_at
    reasons = []
    if cutoff is not None and updated is not None and updated < cutoff:
        reasons.append(f"last activity {iso(updated)}")
    if empty and count == 0:
        reasons.append("no messages")
    return "; ".join(reasons) or None
