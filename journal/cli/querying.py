"""Questions over the whole store: search and stats.

Strategy: both read the store read-only through the library's streaming passes
(`Journal.search`, `Journal.stats`); this module only checks the arguments (so a bad pattern
or date is a usage error before anything is read) and prints. Search hits are printed as they
are found, one line (or JSON object) each; stats is one result.
"""

from __future__ import annotations

import argparse
import re
from typing import TYPE_CHECKING, Any

from ..native import Journal
from . import progress
from .args import add_json, command, moment, positive
from .opening import READ
from .output import FAILED, OK, USAGE, Failure, Output, iso, warn
from .reading import require

if TYPE_CHECKING:  # `journal remote search` runs search on one
    from ..replication.remote import RemoteReplica


def add_parsers(commands: Any) -> None:
    search_ = command(
        commands,
        "search",
        search,
        READ,
        help="find messages by text or pattern, in live logs, snapshots and archives",
        example='journal search "refund" --role user --since 2024-05-01\n'
        'journal search "order [0-9]+" --regex --limit 20 --json',
    )
    search_.add_argument("query", metavar="QUERY", help="the text to find (case-insensitive)")
    search_.add_argument("--regex", action="store_true", help="QUERY is a Python regular expression")
    search_.add_argument("--role", metavar="ROLE", help="only messages of this role")
    search_.add_argument(
        "--since",
        type=moment,
        metavar="DATE",
        help="only messages at or after DATE (2024-05-01, 7d: 7 days ago)",
    )
    search_.add_argument("--until", type=moment, metavar="DATE", help="only messages before DATE")
    search_.add_argument(
        "--session", action="append", dest="sessions", metavar="ID", help="only this session (repeatable)"
    )
    search_.add_argument("--limit", type=positive, metavar="N", help="stop after N matches")
    add_json(search_, "one JSON object per match")
    stats_ = command(
        commands,
        "stats",
        stats,
        READ,
        help="the docs' analytics: sessions, messages, roles, days, durations, top words",
        example="journal stats\njournal stats --json | jq .messages_by_role",
    )
    add_json(stats_, "the figures as one JSON document")


def search(journal: Journal | RemoteReplica, args: argparse.Namespace, out: Output) -> int:
    if args.regex:
        try:
            re.compile(args.query)
        except re.error as exc:
            raise Failure(f"not a regular expression: {args.query!r}: {exc}", USAGE) from None
    for session_id in args.sessions or ():
        require(journal, session_id)
    hits = journal.search(
        args.query,
        regex=args.regex,
        role=args.role,
        since=args.since,
        until=args.until,
        sessions=args.sessions,
        limit=args.limit,
    )
    for hit in hits:
        if out.json:
            out.item(hit.to_dict())
        else:
            out.line(f"{hit.session_id}  #{hit.seq}  {iso(hit.timestamp)}  {hit.role}: {hit.preview}")
    return OK  # no match is no problem; a session that could not be read was warned about


def stats(journal: Journal, args: argparse.Namespace, out: Output) -> int:
    with progress.bar("counting") as advance:
        figures = journal.stats(progress=advance)
    for session_id, reason in figures.problems:
        warn(f"{session_id}: left out: {reason}")
    if out.json:
        out.document(figures.to_dict())
        return FAILED if figures.problems else OK
    duration = figures.average_duration_minutes
    out.table(
        ["SESSIONS", "MESSAGES", "PER SESSION", "AVERAGE DURATION"],
        [
            [
                figures.total_sessions,
                figures.total_messages,
                f"{figures.average_session_length:.2f}",
                "-" if duration is None else f"{duration:.2f} min",
            ]
        ],
        right=[0, 1, 2, 3],
    )
    _section(
        out, "ROLE", "MESSAGES", sorted(figures.messages_by_role.items(), key=lambda kv: (-kv[1], kv[0]))
    )
    _section(out, "DAY (UTC)", "SESSIONS", sorted(figures.sessions_by_day.items()))
    _section(out, "WORD", "COUNT", figures.top_words)
    return FAILED if figures.problems else OK


def _section(out: Output, name: str, counted: str, rows: list[tuple[str, int]]) -> None:
    if rows:
        out.line()
        out.table([name, counted], rows, right=[1])
