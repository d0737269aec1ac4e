"""`DefaultSessionStore.list_sessions`: every session's summary, without reading histories.

Strategy: a session's summary comes from its compaction views plus its live log
(`log.summary.read_summary`: one small file, one stat, and the few records written since
the views), never from folding the history; only a session whose files cannot say it for
sure (a compaction publishing meanwhile, views of an older version, damage) is read the
locked way, through `Journal.state`. The summaries are sorted by last update and only the
`limit` newest become entries. One unreadable session is left out with a warning.
"""

from __future__ import annotations

import os
import warnings
from datetime import datetime
from typing import Any

from ..errors import JournalError
from ..log import naming
from ..log.summary import Summary, read_summary
from ..native import Journal
from .session_data import iso_time

# PraisonAI's list_sessions keys taken from the session metadata (None when absent).
_METADATA_KEYS = (
    "title",
    "source",
    "parent_id",
    "parent_session_id",
    "agent_key",
    "model",
    "total_tokens",
    "cost",
)


def list_sessions(journal: Journal, limit: int | None) -> list[dict[str, Any]]:
    """The `limit` (None: all) most recently updated sessions, newest first, as entries."""
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
        raise ValueError(f"limit must be None or an int >= 0, not {limit!r}")
    found = _from_views(journal)
    if found is None:  # entries only `Journal.sessions` understands (another store's files)
        found = []
        for session_id in journal.sessions():
            summary = _summary(journal, session_id)
            if summary is not None:
                found.append((summary.updated_at or 0.0, session_id, summary))
    found.sort(key=lambda item: item[0], reverse=True)
    chosen = found if limit is None else found[:limit]
    return [entry(journal, session_id, summary) for _, session_id, summary in chosen]


def _from_views(journal: Journal) -> list[tuple[float, str, Summary]] | None:
    """The fast path: every directory of the root read as a journal session; None if an
    entry is something else (then `Journal.sessions` says which are sessions)."""
    found: list[tuple[float, str, Summary]] = []
    prefix = journal.root + os.sep
    for name in journal.fs.listdir(journal.root):
        if name.startswith("."):  # never a session: a leading dot is escaped (".trash-...")
            continue
        session_id = naming.decode_id(name)
        if session_id is None:
            return None
        summary = read_summary(journal.fs, prefix + name)
        if summary is None:
            if journal.fs.stat(prefix + name + os.sep + naming.IDENTITY_FILE) is None:
                return None
            summary = _summary(journal, session_id)  # a session: read it the locked way
        if summary is not None:
            found.append((summary.updated_at or 0.0, session_id, summary))
    return found


def _summary(journal: Journal, session_id: str) -> Summary | None:
    """The session's summary from its files, else from its folded state; None (with a
    warning for damage) when it cannot be read or no longer exists."""
    summary = read_summary(journal.fs, journal.session_path(session_id))
    if summary is not None:
        return summary
    try:
        state = journal.state(session_id)
    except JournalError as exc:  # one damaged session must not hide all the others
        warnings.warn(f"session {session_id!r} left out of list_sessions: {exc}", stacklevel=4)
        return None
    if state is None:  # deleted since it was listed
        return None
    return Summary(state.created_at, state.updated_at, len(state.messages), state.metadata, state.last_seq)


def entry(journal: Journal, session_id: str, summary: Summary) -> dict[str, Any]:
    """One `list_sessions` entry: journal's keys and PraisonAI's."""
    updated = summary.updated_at or 0.0
    metadata = summary.metadata
    row: dict[str, Any] = {
        "session_id": session_id,
        "id": session_id,
        "path": journal.session_path(session_id),
        "created_at": iso_time(summary.created_at),
        "updated_at": iso_time(updated),
        "modified": datetime.fromtimestamp(updated),
        "message_count": summary.message_count,
        "agent_name": metadata.get("agent_name"),
        "agent_id": metadata.get("agent_id"),
        "user_id": metadata.get("user_id"),
    }
    for key in _METADATA_KEYS:
        row[key] = metadata.get(key)
    return row
