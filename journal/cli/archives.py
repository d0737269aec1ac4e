"""Moving conversations between stores: export, import, import-praisonai.

Strategy: `export` reads the store read-only and writes one archive file (the docs' archive
format, or PraisonAI's portable one); `import` and `import-praisonai` check their source before
anything is written and create the store if it is missing (`opening` removes it again if the
import fails before writing anything).
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

from ..native import Journal
from . import progress
from .args import add_json, command
from .opening import CREATE, READ
from .output import FAILED, OK, Failure, Output, error
from .reading import require

if TYPE_CHECKING:  # `journal remote export` runs export on one
    from ..replication.remote import RemoteReplica

PRAISONAI_SESSIONS = os.path.join("~", ".praisonai", "sessions")


def add_parsers(commands: Any) -> None:
    export = command(
        commands,
        "export",
        export_archive,
        READ,
        help="write sessions to one archive file (.json or .json.zst)",
        example="journal export backup.json.zst\n"
        "journal export --format portable support.json support-42 support-43",
    )
    export.add_argument("file", metavar="FILE", help="the archive to write (.zst: compressed)")
    export.add_argument("session_ids", nargs="*", metavar="ID", help="the sessions to export (default: all)")
    export.add_argument(
        "--format",
        choices=["archive", "portable"],
        default="archive",
        help="archive: the docs' export_timestamp/conversations file (default);"
        " portable: PraisonAI's {version, sessions} file",
    )
    add_json(export, "the report as one JSON document")
    import_ = command(
        commands,
        "import",
        import_archive,
        CREATE,
        help="read an archive written by `journal export` (either format) into the store",
        example="journal --dir ./restored import backup.json.zst\n"
        "journal import support.json --on-conflict replace",
    )
    import_.add_argument("file", metavar="FILE", help="the archive to read")
    import_.add_argument(
        "--on-conflict",
        choices=["skip", "append", "replace"],
        default="skip",
        help="a session already in the store: skip it (default), append the messages it lacks, or replace it",
    )
    add_json(import_, "the report as one JSON document")
    praisonai = command(
        commands,
        "import-praisonai",
        import_praisonai,
        CREATE,
        help="copy a directory of PraisonAI session files into the store",
        description="Copy every PraisonAI session file (<safe_id>.json) of DIR into the"
        " store; DIR is only read, and sessions already in the store are skipped.",
        example="journal import-praisonai ~/.praisonai/sessions --dry-run",
    )
    praisonai.add_argument(
        "source", metavar="DIR", nargs="?", default=PRAISONAI_SESSIONS, help=f"default {PRAISONAI_SESSIONS}"
    )
    praisonai.add_argument(
        "--dry-run", action="store_true", help="report what would be imported, change nothing"
    )


def export_archive(journal: Journal | RemoteReplica, args: argparse.Namespace, out: Output) -> int:
    for session_id in args.session_ids:
        require(journal, session_id)
    with progress.bar("exporting") as advance:
        report = journal.export_archive(
            args.file, args.session_ids or None, format=args.format, progress=advance
        )
    if out.json:
        out.document(
            {
                "file": args.file,
                "format": args.format,
                "sessions": report.sessions,
                "messages": report.messages,
                "bytes": report.bytes,
                "skipped": list(report.skipped),
            }
        )
    else:
        out.line(
            f"exported {report.sessions} session(s), {report.messages} message(s) to {args.file}"
            f" ({report.bytes:,} bytes)"
        )
    return OK  # a session left out was reported with a warning: `main` exits 1 then


def import_archive(journal: Journal, args: argparse.Namespace, out: Output) -> int:
    if not os.path.isfile(args.file):
        raise Failure(f"no such file: {args.file}")
    with progress.bar("importing") as advance:
        report = journal.import_archive(args.file, on_conflict=args.on_conflict, progress=advance)
    if out.json:
        out.document(
            {
                "file": args.file,
                "imported": report.imported,
                "skipped": report.skipped,
                "replaced": report.replaced,
                "appended": report.appended,
                "messages": report.messages,
            }
        )
    else:
        out.line(
            f"imported {report.imported} new session(s), skipped {report.skipped}, replaced"
            f" {report.replaced}, appended to {report.appended}: {report.messages} message(s) written"
        )
    return OK


def import_praisonai(journal: Journal, args: argparse.Namespace, out: Output) -> int:
    source = os.path.expanduser(args.source)
    if not os.path.isdir(source):
        raise Failure(f"no directory {source}")
    # The import reports no progress of its own: the bar only says it is working.
    with progress.bar("importing", unit="") as advance:
        report = journal.import_praisonai(source, dry_run=args.dry_run)
        if advance is not None:
            advance(1, 1)
    verb = "would import" if args.dry_run else "imported"
    out.line(
        f"{verb} {len(report.sessions)} session(s), {report.messages} message(s) from {source}"
        f" into {journal.root}"
    )
    for name, reason in sorted(report.skipped.items()):
        out.line(f"skipped {name}: {reason}")
    for name, reason in sorted(report.refused.items()):
        error(f"not imported {name}: {reason}")
    return FAILED if report.refused else OK
