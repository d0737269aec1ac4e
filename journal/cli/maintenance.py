"""Keeping a store healthy: verify, compact, repair, gc.

Strategy: `verify` and `compact` go session by session (the ids given, else every session)
with a progress bar, and one session that fails is reported and the rest still done: exit 1 at
the end. `verify` and `gc --dry-run` open the store read-only; the others need it writable.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from ..errors import JournalError
from ..log.recovery import Report
from ..native import Journal
from . import progress
from .args import add_json, add_selection, command, duration
from .opening import READ, WRITE
from .output import FAILED, OK, USAGE, Failure, Output, error
from .reading import require


def add_parsers(commands: Any) -> None:
    compact_ = command(
        commands,
        "compact",
        compact,
        WRITE,
        help="write messages.json etc. and fold closed log segments into archives",
        example="journal compact --all\njournal compact support-42 support-43",
    )
    add_selection(compact_, "compact")
    add_json(compact_, "one JSON object per session")
    verify_ = command(
        commands,
        "verify",
        verify,
        READ,
        help="check sessions for damage, changing nothing",
        example="journal verify --all || alert-oncall\njournal verify support-42 --json",
    )
    add_selection(verify_, "check")
    add_json(verify_, "one JSON object per session")
    repair_ = command(
        commands,
        "repair",
        repair,
        WRITE,
        help="salvage a damaged session (damaged files kept in its quarantine/)",
        example="journal repair support-42",
    )
    repair_.add_argument("session_id", metavar="ID")
    add_json(repair_, "the repair report as one JSON document")
    gc_ = command(
        commands,
        "gc",
        gc,
        lambda args: READ if args.dry_run else WRITE,
        help="delete sessions not updated for a while, or empty ones",
        example="journal gc --older-than 30d --dry-run\njournal gc --older-than 90d --empty",
    )
    gc_.add_argument(
        "--older-than",
        type=duration,
        metavar="AGE",
        help="last updated longer ago than AGE (30d, 12h, 90m, 3600s)",
    )
    gc_.add_argument("--empty", action="store_true", help="sessions with no messages")
    gc_.add_argument("--dry-run", action="store_true", help="only print what would be deleted")
    add_json(gc_, "the report as one JSON document")


def selected(journal: Journal, args: argparse.Namespace) -> list[str]:
    """The ids given (each must exist), else every session of the store."""
    if args.session_ids and args.all:
        raise Failure("give session ids or --all, not both", USAGE)
    for session_id in args.session_ids:
        require(journal, session_id)
    return list(args.session_ids) or list(journal.sessions())


def each_session(
    session_ids: list[str],
    label: str,
    work: Callable[[str], None],
    report_error: Callable[[str, Exception], None],
) -> int:
    """Run `work` on each session under a progress bar; the number that raised."""
    failed = 0
    with progress.bar(label) as advance:
        if advance is not None:
            advance(0, len(session_ids))
        for done, session_id in enumerate(session_ids, 1):
            try:
                work(session_id)
            except (JournalError, OSError) as exc:  # one bad session: report it, go on
                report_error(session_id, exc)
                failed += 1
            if advance is not None:
                advance(done, len(session_ids))
    return failed


# -- verify, compact, repair ---------------------------------------------------------------------


def verify(journal: Journal, args: argparse.Namespace, out: Output) -> int:
    session_ids = selected(journal, args)
    damaged = 0

    def check(session_id: str) -> None:
        nonlocal damaged
        report = journal.verify(session_id)
        damaged += not report.ok
        if out.json:
            out.item({"session_id": session_id, "ok": report.ok, "problems": _problems(report)})
        for problem in report.problems if not out.json else ():
            out.line(f"{session_id}: {problem.kind} at {problem.path}:{problem.offset}: {problem.reason}")

    def unreadable(session_id: str, exc: Exception) -> None:
        if out.json:
            out.item({"session_id": session_id, "ok": False, "error": str(exc)})
        else:
            out.line(f"{session_id}: cannot be verified: {exc}")

    failed = each_session(session_ids, "verifying", check, unreadable)
    if not out.json:
        out.line(f"{len(session_ids)} session(s) verified, {damaged + failed} with problems")
    return FAILED if damaged or failed else OK


def _problems(report: Report) -> list[dict[str, Any]]:
    return [{"kind": p.kind, "path": p.path, "offset": p.offset, "reason": p.reason} for p in report.problems]


def compact(journal: Journal, args: argparse.Namespace, out: Output) -> int:
    session_ids = selected(journal, args)
    compacted = 0

    def fold(session_id: str) -> None:
        nonlocal compacted
        result = journal.compact(session_id)
        compacted += result.compacted
        if out.json:
            out.item(
                {
                    "session_id": session_id,
                    "compacted": result.compacted,
                    "snapshot_seq": result.snapshot_seq,
                    "messages": result.messages,
                    "folded_bytes": result.folded_bytes,
                    "archive_bytes": result.archive_bytes,
                }
            )
        elif result.compacted:
            out.line(
                f"{session_id}: through seq {result.snapshot_seq}, {result.messages} message(s),"
                f" {result.folded_bytes:,} log bytes -> {result.archive_bytes:,} archived"
            )

    def failed_one(session_id: str, exc: Exception) -> None:
        if out.json:
            out.item({"session_id": session_id, "compacted": False, "error": str(exc)})
        error(f"{session_id}: {exc}")

    failed = each_session(session_ids, "compacting", fold, failed_one)
    if not out.json:
        out.line(f"{compacted} of {len(session_ids)} session(s) compacted, {failed} failed")
    return FAILED if failed else OK


def repair(journal: Journal, args: argparse.Namespace, out: Output) -> int:
    require(journal, args.session_id)
    report = journal.repair(args.session_id)
    if out.json:
        out.document(
            {
                "session_id": args.session_id,
                "ok": report.ok,
                "problems": _problems(report),
                "salvaged": report.salvaged,
                "lost": report.lost,
                "quarantined": report.quarantined,
            }
        )
    else:
        kept = f", damaged files kept in {', '.join(report.quarantined)}" if report.quarantined else ""
        out.line(
            f"{args.session_id}: {len(report.problems)} problem(s) found, {report.salvaged} record(s)"
            f" salvaged, {len(report.lost)} lost{kept}"
        )
    return OK if report.ok else FAILED


# -- gc ------------------------------------------------------------------------------------------


def gc(journal: Journal, args: argparse.Namespace, out: Output) -> int:
    if args.older_than is None and not args.empty:
        raise Failure("say what to delete: --older-than AGE, --empty, or both", USAGE)
    with progress.bar("collecting") as advance:
        report = journal.gc(
            older_than=args.older_than, empty=args.empty, dry_run=args.dry_run, progress=advance
        )
    for session_id, reason in report.problems:
        error(f"{session_id}: {reason}")
    if out.json:
        out.document(report.to_dict())
        return FAILED if report.problems else OK
    verb = "would delete" if args.dry_run else "deleted"
    deleted = set(report.deleted)
    for session_id, reason in report.candidates:
        if args.dry_run or session_id in deleted:
            out.line(f"{verb} {session_id}: {reason}")
    count = len(report.candidates) if args.dry_run else len(report.deleted)
    out.line(f"{verb} {count} session(s), {len(report.problems)} problem(s)")
    return FAILED if report.problems else OK
