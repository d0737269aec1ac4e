"""`stats`: the docs' "Conversation Analytics" in one streaming pass over the store.

Strategy: each session's current history is streamed from its files without opening it
(`history.stored_messages`: messages.json, then the live log; nothing held but one message
and the session's counters): a "clear" in the live log resets the session's counters, which
are added to the totals when the session is done. A messages.json changed by hand is read
through `Store.state` instead, which rebuilds the history from the archives. A session that
cannot be read is reported in `problems` and the pass goes on.
"""

from __future__ import annotations

import heapq
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..errors import JournalError, UnknownSessionError
from ..log.record import CLEAR, Record
from .history import NeedsLockedRead, session_reader
from .protocol import Progress, Store
from .scanning import listed_sessions, texts

TOP_WORDS = 10
BATCH = 10_000  # messages read per hold of a session's compaction lock


@dataclass
class Stats:
    """What `stats` found; the fields are those of the docs' `analyze_json_conversations`.

    `average_duration_minutes` is None when no session has two messages or more (the docs'
    recipe then leaves the key out). Durations and days use the messages' exact timestamps,
    days in UTC. `top_words` ties are in alphabetical order. `problems` lists the sessions
    that could not be read, as (session id, reason); they count nowhere else.
    """

    total_sessions: int = 0
    total_messages: int = 0
    messages_by_role: dict[str, int] = field(default_factory=dict)
    sessions_by_day: dict[str, int] = field(default_factory=dict)
    average_session_length: float = 0.0
    average_duration_minutes: float | None = None
    top_words: list[tuple[str, int]] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: tuples as lists, dicts with sorted keys."""
        return {
            "total_sessions": self.total_sessions,
            "total_messages": self.total_messages,
            "messages_by_role": dict(sorted(self.messages_by_role.items())),
            "sessions_by_day": dict(sorted(self.sessions_by_day.items())),
            "average_session_length": self.average_session_length,
            "average_duration_minutes": self.average_duration_minutes,
            "top_words": [[word, count] for word, count in self.top_words],
            "problems": [[session_id, reason] for session_id, reason in self.problems],
        }


@dataclass
class _Session:
    """The counters of one session's current history."""

    messages: int = 0
    roles: Counter[str] = field(default_factory=Counter)
    words: Counter[str] = field(default_factory=Counter)
    first: float | None = None
    last: float | None = None

    def add(self, record: Record) -> None:
        data = record.data
        role = data.get("role", "unknown") if isinstance(data, dict) else "unknown"
        self.roles[role if isinstance(role, str) else str(role)] += 1
        for text in texts(data):
            self.words.update(text.lower().split())
        if self.first is None:
            self.first = record.ts
        self.last = record.ts
        self.messages += 1


@dataclass
class _Totals:
    sessions: int = 0
    messages: int = 0
    roles: Counter[str] = field(default_factory=Counter)
    days: Counter[str] = field(default_factory=Counter)
    words: Counter[str] = field(default_factory=Counter)
    durations: list[float] = field(default_factory=list)

    def add(self, one: _Session) -> None:
        self.sessions += 1
        self.messages += one.messages
        self.roles.update(one.roles)
        self.words.update(one.words)
        if one.first is not None:
            self.days[time.strftime("%Y-%m-%d", time.gmtime(one.first))] += 1
        if one.messages > 1 and one.first is not None and one.last is not None:
            self.durations.append(one.last - one.first)


def stats(store: Store, *, sessions: Iterable[str] | None = None, progress: Progress | None = None) -> Stats:
    """The docs' conversation analytics over every session (or `sessions`), in one pass:
    sessions, messages, messages by role (``"unknown"`` without one), sessions by the UTC day
    of their first message, average messages per session, average duration in minutes (last
    minus first message time, over sessions with two messages or more), and the 10 most
    common words (lower-cased, split on white space, of the text of every message).

    Counts the current history of each session (what `Journal.state` holds: messages a
    "clear" removed are not counted), as the recipe counts messages.json. A store opened
    read-only is only read.

    Args:
        sessions: only these sessions; one that does not exist is a problem.
        progress: called with (sessions done, sessions in all) after each session.

    Returns:
        `Stats`; a session that cannot be read (permissions, damage) is in `problems`.
    """
    if isinstance(sessions, str):
        raise TypeError("sessions must be an iterable of session ids, not one str")
    if sessions is None:
        chosen, found = listed_sessions(store)
    else:
        chosen, found = sorted(set(sessions)), []
    totals = _Totals()
    for done, session_id in enumerate(chosen, 1):
        try:
            one = _read_session(store, session_id, named=sessions is not None)
        except (JournalError, OSError) as exc:
            found.append((session_id, str(exc)))
        else:
            if one is not None:
                totals.add(one)
        if progress is not None:
            progress(done, len(chosen))
    return _result(totals, found)


def _read_session(store: Store, session_id: str, named: bool) -> _Session | None:
    """The counters of one session; None if it is gone (a listed one deleted meanwhile)."""
    path = store.session_path(session_id)
    if named and not store.exists(session_id):
        raise UnknownSessionError(path, session_id)
    one = _Session()
    reader = session_reader(store, session_id, history=False, prefilter=None)
    try:
        while (batch := reader.read_batch(_keep, BATCH)) is not None:
            for record in batch:
                if record.kind == CLEAR:
                    one = _Session()
                else:
                    one.add(record)
    except NeedsLockedRead:  # messages.json was edited: the store rebuilds the history
        state = store.state(session_id)
        one = _Session()
        for record in state.messages if state is not None else []:
            one.add(record)
    finally:
        reader.close()
    return one if store.fs.stat(path) is not None else None


def _keep(record: Record) -> Record:
    return record


def _result(totals: _Totals, problems: list[tuple[str, str]]) -> Stats:
    ranked = heapq.nsmallest(TOP_WORDS, totals.words.items(), key=lambda item: (-item[1], item[0]))
    durations = totals.durations
    return Stats(
        total_sessions=totals.sessions,
        total_messages=totals.messages,
        messages_by_role=dict(totals.roles),
        sessions_by_day=dict(totals.days),
        average_session_length=totals.messages / totals.sessions if totals.sessions else 0.0,
        average_duration_minutes=sum(durations) / len(durations) / 60 if durations else None,
        top_words=ranked,
        problems=problems,
    )
