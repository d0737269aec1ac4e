"""`journal remote ls|show|cat|search|export URL ...`: a replica read in place, no restore.

Strategy: each subcommand opens the replica as a `RemoteReplica` (read-only: nothing is
written to the bucket or to the disk, but the export file) and runs the local command's own
code on it (`reading.show`/`cat`, `querying.search`, `archives.export_archive`), so it prints
exactly what the local command prints of the store the replica was shipped from; `ls` folds
each session (a replica keeps no summary files). The bucket's credentials and endpoint come
from the client library's usual sources (`AWS_*` for S3), as for `journal restore`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import JournalError
from . import archives, querying, reading
from .args import Parser, add_dir, add_json, command, count, moment, positive
from .output import FAILED, OK, Output, iso, warn

if TYPE_CHECKING:
    from ..replication.remote import RemoteReplica

HELP = "read a replica in place (ls, show, cat, search, export), restoring nothing"


def add_parsers(commands: Any) -> None:
    """`journal remote` and its subcommands."""
    group = commands.add_parser(
        "remote",
        help=HELP,
        description=HELP[0].upper() + HELP[1:] + ". See 'journal remote COMMAND --help'.",
        epilog="example:\n  journal remote ls s3://bucket/agents\n"
        "  journal remote search s3://bucket/agents refund --role user --json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_dir(group)  # accepted as by every command; a replica needs no store
    sub = group.add_subparsers(dest="remote_command", required=True, parser_class=Parser)
    ls_ = _command(sub, "ls", ls, "list the replica's sessions: id, messages, last update", "ls --json")
    add_json(ls_, "one JSON object per session")
    show_ = _command(sub, "show", reading.show, "print a session's fields and messages", "show support-42")
    show_.add_argument("session_id", metavar="ID")
    show_.add_argument("--tail", type=count, metavar="N", help="only the last N messages")
    add_json(show_, "the session as one JSON document (as in an export archive)")
    cat_ = _command(
        sub, "cat", reading.cat, "print every record of a session as JSON lines", "cat support-42"
    )
    cat_.add_argument("session_id", metavar="ID")
    cat_.add_argument("--json", action="store_true", help="accepted for symmetry: cat always prints JSON")
    _search_parser(
        _command(sub, "search", querying.search, "find messages by text or pattern", "search refund")
    )
    export_ = _command(
        sub, "export", archives.export_archive, "write sessions to one new file", "export backup.json.zst"
    )
    export_.add_argument("file", metavar="FILE", help="the archive to write (.zst: compressed)")
    export_.add_argument("session_ids", nargs="*", metavar="ID", help="the sessions to export (default: all)")
    export_.add_argument("--format", choices=("archive", "portable"), default="archive")
    add_json(export_, "the report as one JSON document")


def _command(
    sub: Any, name: str, local: Callable[..., int], help: str, example: str
) -> argparse.ArgumentParser:
    """Subcommand `name`: `local(replica, args, out)` run on the replica of its URL."""

    def run(_root: str, args: argparse.Namespace, out: Output) -> int:
        from ..replication.remote import RemoteReplica  # imported when used: a cheap start

        with RemoteReplica(args.url, to_time=args.to_time) as replica:
            return local(replica, args, out)

    parser = command(
        sub,
        name,
        run,
        "none",
        help=help,
        example=f"journal remote {name} s3://bucket/prefix {example[len(name) + 1 :]}",
    )
    parser.add_argument(
        "url", metavar="URL", help="the replica: s3://bucket/prefix, gs://, az://, file:///dir"
    )
    parser.add_argument(
        "--to-time",
        type=moment,
        metavar="T",
        help="read the sessions as they were at T (as `restore --to-time`)",
    )
    return parser


def _search_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("query", metavar="QUERY", help="the text to find (case-insensitive)")
    parser.add_argument("--regex", action="store_true", help="QUERY is a Python regular expression")
    parser.add_argument("--role", metavar="ROLE", help="only messages of this role")
    parser.add_argument("--since", type=moment, metavar="DATE", help="only messages at or after DATE")
    parser.add_argument("--until", type=moment, metavar="DATE", help="only messages before DATE")
    parser.add_argument(
        "--session", action="append", dest="sessions", metavar="ID", help="only this session (repeatable)"
    )
    parser.add_argument("--limit", type=positive, metavar="N", help="stop after N matches")
    add_json(parser, "one JSON object per match")


def ls(replica: RemoteReplica, args: argparse.Namespace, out: Output) -> int:
    """One row per session, as `journal ls` prints them; each session is read whole."""
    rows, code = [], OK
    for session_id in replica.sessions():
        try:
            state = replica.state(session_id)
        except JournalError as exc:
            warn(f"{session_id}: cannot be read: {exc}")
            code = FAILED
            continue
        if state is None:  # only objects a lease's fence rules out
            continue
        if out.json:
            item = {"session_id": session_id, "messages": len(state.messages)}
            out.item({**item, "created_at": iso(state.created_at), "updated_at": iso(state.updated_at)})
        else:
            rows.append([session_id, len(state.messages), iso(state.updated_at, millis=False)])
    if not out.json:
        out.table(["ID", "MESSAGES", "UPDATED"], rows, right=[1])
    return code
