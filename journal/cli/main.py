"""The `journal` command line: demo, ls, cat, verify, repair, compact, import-praisonai.

Strategy: a thin argparse layer over `Journal`; every command prints plain text (or JSON
lines for `cat`) and exits 0 when all is well, 1 when something is wrong, 2 on bad usage.
The read commands (ls, cat, verify) open a store this process cannot write read-only, so a
backup or another user's store can be inspected. A session that cannot be read is reported
(an `UnreadableSessionWarning`, or a line of verify's report) and the command goes on with
the others, exiting 1 at the end.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence

import orjson

from ..errors import InvalidSessionIdError, JournalError, UnreadableSessionWarning
from ..native import Journal


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="journal", description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="./sessions", help="store directory (default ./sessions)")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="concurrent agents, a crash, recovery and compaction")
    demo.add_argument("--agents", type=_positive, default=4)
    demo.add_argument("--messages", type=_positive, default=200)
    commands.add_parser("ls", help="list session ids")
    cat = commands.add_parser("cat", help="print a session's records as JSON lines")
    cat.add_argument("session_id")
    verify = commands.add_parser("verify", help="check sessions without changing them")
    verify.add_argument("session_ids", nargs="*", help="default: every session")
    repair = commands.add_parser("repair", help="salvage a damaged session")
    repair.add_argument("session_id")
    compact = commands.add_parser("compact", help="write messages.json etc. and fold segments into archives")
    compact.add_argument("session_ids", nargs="*", help="default: every session with new records")
    migrate = commands.add_parser(
        "import-praisonai",
        help="copy a directory of PraisonAI session files into the store",
        description="Copy every PraisonAI session file (<safe_id>.json) of DIR into the store; DIR"
        " is only read, and sessions already in the store are skipped."
        " Example: journal --root ./sessions import-praisonai ~/.praisonai/sessions --dry-run",
    )
    migrate.add_argument(
        "source", nargs="?", default=PRAISONAI_SESSIONS, help=f"default {PRAISONAI_SESSIONS}"
    )
    migrate.add_argument(
        "--dry-run", action="store_true", help="report what would be imported, change nothing"
    )
    return parser


PRAISONAI_SESSIONS = os.path.join("~", ".praisonai", "sessions")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    unreadable: list[str] = []

    def show(message: Warning | str, category: type[Warning], *_: object, **__: object) -> None:
        if issubclass(category, UnreadableSessionWarning):
            unreadable.append(str(message))
        _show_warning(message, category)

    warnings.showwarning = show
    try:
        code = _run(args)
        return 1 if unreadable and code == 0 else code
    except (InvalidSessionIdError, TypeError) as exc:
        print(f"journal: {exc}", file=sys.stderr)
        return 2
    except JournalError as exc:
        print(f"journal: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # the reader went away (journal cat | head): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:
        print(f"journal: {exc}", file=sys.stderr)
        return 1


def _show_warning(message: Warning | str, category: type[Warning], *_: object, **__: object) -> None:
    print(f"journal: {category.__name__}: {message}", file=sys.stderr)


def _run(args: argparse.Namespace) -> int:
    if args.command == "demo":
        from .demo import run_demo

        return 0 if run_demo(args.root, args.agents, args.messages)["ok"] else 1
    if args.command == "import-praisonai":
        return _import_praisonai(args.root, os.path.expanduser(args.source), args.dry_run)
    if not os.path.isdir(args.root):  # read-only commands must not create a store
        print(f"journal: no store at {args.root}", file=sys.stderr)
        return 1
    writable = os.access(args.root, os.W_OK | os.X_OK)
    with Journal(args.root, read_only=args.command in READ_COMMANDS and not writable) as journal:
        for session_id in _named(args):
            if not journal.exists(session_id):
                print(f"journal: no session {session_id!r} in {args.root}", file=sys.stderr)
                return 1
        if args.command == "ls":
            for session_id in journal.sessions():
                print(session_id)
            return 0
        if args.command == "cat":
            for record in journal.read(args.session_id):
                line = {"seq": record.seq, "ts": record.ts, "kind": record.kind, "data": record.data}
                sys.stdout.write(orjson.dumps(line).decode() + "\n")
            return 0
        if args.command == "verify":
            return _verify(journal, args.session_ids or list(journal.sessions()))
        if args.command == "compact":
            return _compact(journal, args.session_ids)
        report = journal.repair(args.session_id)
        print(
            f"{args.session_id}: {len(report.problems)} problem(s), {report.salvaged} record(s) salvaged,"
            f" {len(report.lost)} lost, damaged files kept in {report.quarantined}"
        )
        return 1 if report.problems else 0


READ_COMMANDS = ("ls", "cat", "verify")


def _named(args: argparse.Namespace) -> list[str]:
    """The session ids the command names explicitly (they must exist)."""
    one = getattr(args, "session_id", None)
    return [one] if one is not None else list(getattr(args, "session_ids", []))


def _compact(journal: Journal, session_ids: list[str]) -> int:
    if not session_ids:
        report = journal.compact_all()
        results, errors = report.results, report.errors
    else:
        results, errors = [journal.compact(s) for s in session_ids], {}
    for result in results:
        if result.compacted:
            print(f"{result.session_id}: through seq {result.snapshot_seq}, {result.messages} message(s),"
                  f" {result.folded_bytes:,} log bytes -> {result.archive_bytes:,} archived")  # fmt: skip
    for session_id, error in errors.items():
        print(f"{session_id}: {error}", file=sys.stderr)
    return 1 if errors else 0


def _verify(journal: Journal, session_ids: list[str]) -> int:
    bad = 0
    for session_id in session_ids:
        try:
            report = journal.verify(session_id)
        except (JournalError, OSError) as exc:  # one unreadable session: report it, go on
            print(f"{session_id}: cannot be verified: {exc}")
            bad += 1
            continue
        for problem in report.problems:
            print(f"{session_id}: {problem.kind} at {problem.path}:{problem.offset}: {problem.reason}")
        bad += not report.ok
    print(f"{len(session_ids)} session(s) verified, {bad} with problems")
    return 1 if bad else 0


def _import_praisonai(root: str, source: str, dry_run: bool) -> int:
    if not os.path.isdir(source):
        print(f"journal: no directory {source}", file=sys.stderr)
        return 1
    with Journal(root) as journal:
        report = journal.import_praisonai(source, dry_run=dry_run)
    verb = "would import" if dry_run else "imported"
    print(f"{verb} {len(report.sessions)} session(s), {report.messages} message(s) from {source} into {root}")
    for name, reason in sorted(report.skipped.items()):
        print(f"skipped {name}: {reason}")
    for name, reason in sorted(report.refused.items()):
        print(f"journal: not imported {name}: {reason}", file=sys.stderr)
    return 1 if report.refused else 0
