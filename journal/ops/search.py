"""`search`: the messages matching a query, over every session's live log, snapshot and
archives (the docs' "File-Based Search" recipe, done on the log).

Strategy: one lock-free pass per session over its stored records (`history.stored_messages`);
for a literal query the bytes of each block are searched first (`scanning.Prefilter`) and
only the lines that can match are decoded, so a scan for a rare word runs at the speed of
`bytes.lower` and `bytes.find` rather than of JSON decoding (BENCHMARKS.md). Each candidate
is then matched on its text with the compiled pattern, which alone decides what is a hit.
"""

from __future__ import annotations

import functools
import math
import re
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import date, datetime, timezone
from typing import Any

from ..errors import InvalidQueryError, JournalError, UnreadableSessionWarning
from ..log.record import Record
from ..log.snapshot import iso
from .history import ReadsOwnMessages, session_reader
from .protocol import Store
from .scanning import Prefilter, texts

PREVIEW_CONTEXT = 50  # characters of text shown on each side of the match, as the docs' recipe
BATCH = 1000  # hits found per hold of a session's compaction lock (`history.SessionReader`)


@dataclass(frozen=True)
class SearchHit:
    """One matching message: where it is, who wrote it, when, and the text around the match
    (``"..."`` marks text cut off on either side). The message itself is `Journal.read(
    session_id, seq)`'s first record, or is in `Journal.state(session_id)` while current."""

    session_id: str
    seq: int
    role: str | None
    timestamp: float  # the message's time, seconds since the epoch (its record's ts)
    preview: str

    def to_dict(self) -> dict[str, Any]:
        """The hit as JSON-ready values, with ``"time"``: the timestamp as ISO-8601 UTC."""
        return {**asdict(self), "time": iso(self.timestamp)}


def search(
    store: Store | ReadsOwnMessages,
    query: str,
    *,
    regex: bool = False,
    role: str | None = None,
    since: datetime | date | float | str | None = None,
    until: datetime | date | float | str | None = None,
    sessions: Iterable[str] | None = None,
    limit: int | None = None,
) -> Iterator[SearchHit]:
    """The messages whose text matches `query`, case-insensitively, session by session
    (sessions in sorted order, messages by seq); at most one hit per message.

    What is searched: every message the store still holds on disk, current or not: those
    in the live log, in the archives, and in the snapshot (messages.json) for the part of
    the history whose archives retention removed. So a message a "clear" (or
    `replace_messages`) took out of the history is still found while its records are on
    disk; a streamed answer is matched as last edited; one its writer dropped is not. Text is
    a string content, or the text parts of a list content; other fields are not searched.

    Args:
        query: a literal (the default) or, with `regex`, a Python regular expression; both
            with `re.IGNORECASE`, as the docs' recipe.
        role: only messages with this role.
        since, until: only messages with `since` <= time < `until`: a datetime (naive: UTC),
            a date (midnight UTC), seconds since the epoch, or an ISO string ("2026-11-29",
            "2026-11-29T10:00:00Z", "2026-11-29T10:00:00+02:00"; no zone: UTC).
        sessions: only these sessions (an id that does not exist finds nothing).
        limit: stop after this many hits (nothing more is read).

    Returns:
        An iterator of `SearchHit`; the arguments are checked when `search` is called, the
        files read as it is iterated. A store opened read-only is only read.

    Raises:
        InvalidQueryError: the regular expression does not compile, or `since` / `until` is
            not a time (raised before anything is read).
        TypeError, ValueError: an argument of the wrong type, a negative `limit`.

    A session that cannot be read (permissions, damage) is left out with an
    `UnreadableSessionWarning`; the others are searched.
    """
    if not isinstance(query, str):
        raise TypeError(f"query must be a str, not {type(query).__name__}")
    if role is not None and not isinstance(role, str):
        raise TypeError(f"role must be a str or None, not {type(role).__name__}")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
        raise ValueError(f"limit must be None or an int >= 0, not {limit!r}")
    pattern = _compile(query, regex)
    window = (parse_time(since, "since"), parse_time(until, "until"))
    chosen = None if sessions is None else sorted(set(_ids(sessions)))
    for session_id in chosen or []:
        store.session_path(session_id)  # an id that cannot name a session raises now
    prefilter = None if regex else Prefilter.for_literal(query)
    return _hits(store, chosen, pattern, prefilter, role, window, limit)


def _ids(sessions: Iterable[str]) -> list[str]:
    if isinstance(sessions, str):
        raise TypeError("sessions must be an iterable of session ids, not one str")
    return list(sessions)


def _compile(query: str, regex: bool) -> re.Pattern[str]:
    try:
        return re.compile(query if regex else re.escape(query), re.IGNORECASE)
    except re.error as exc:
        raise InvalidQueryError(f"invalid regular expression {query!r}: {exc}") from None


def parse_time(value: datetime | date | float | str | None, name: str) -> float | None:
    """`value` as seconds since the epoch (see `search`); None stays None.

    Raises:
        InvalidQueryError: not a time.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
        return aware.timestamp()
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=timezone.utc).timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        text = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
        try:
            return parse_time(datetime.fromisoformat(text), name)
        except ValueError:
            pass
    raise InvalidQueryError(
        f"{name}: {value!r} is not a time (a datetime, seconds since the epoch, or an ISO date"
        " such as 2026-11-29 or 2026-11-29T10:00:00Z)"
    )


def _hits(
    store: Store | ReadsOwnMessages,
    chosen: list[str] | None,
    pattern: re.Pattern[str],
    prefilter: Prefilter | None,
    role: str | None,
    window: tuple[float | None, float | None],
    limit: int | None,
) -> Iterator[SearchHit]:
    found = 0
    for session_id in chosen if chosen is not None else sorted(store.sessions()):
        if found == limit:
            return
        path = store.session_path(session_id)
        reader = session_reader(store, session_id, history=True, prefilter=prefilter)
        keep = functools.partial(_match, session_id, pattern=pattern, role=role, window=window)
        try:
            while True:
                want = BATCH if limit is None else min(BATCH, limit - found)
                batch = reader.read_batch(keep, want)
                if batch is None:
                    break
                yield from batch  # the lock is not held meanwhile
                found += len(batch)
                if found == limit:
                    return
        except (JournalError, OSError) as exc:
            reason = f"{path}: session {session_id!r} left out of the search, it cannot be read: {exc}"
            warnings.warn(UnreadableSessionWarning(reason), stacklevel=2)
        finally:
            reader.close()


def _match(
    session_id: str,
    record: Record,
    *,
    pattern: re.Pattern[str],
    role: str | None,
    window: tuple[float | None, float | None],
) -> SearchHit | None:
    data = record.data
    own_role = data.get("role") if isinstance(data, dict) else None
    if role is not None and own_role != role:
        return None
    since, until = window
    if (since is not None and record.ts < since) or (until is not None and record.ts >= until):
        return None
    for text in texts(data):
        match = pattern.search(text)
        if match is not None:
            shown = own_role if isinstance(own_role, str) else None
            return SearchHit(session_id, record.seq, shown, record.ts, preview(text, match))
    return None


def preview(text: str, match: re.Match[str], context: int = PREVIEW_CONTEXT) -> str:
    """The text around `match`, `context` characters each side, "..." where it is cut (the
    docs' `get_match_preview`)."""
    start = max(0, match.start() - context)
    end = min(len(text), match.end() + context)
    return ("..." if start > 0 else "") + text[start:end] + ("..." if end < len(text) else "")
