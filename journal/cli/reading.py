"""The commands that read one session or list them: ls, show, cat, tail.

Strategy: each opens the store read-only (`opening.READ`): nothing is created or changed, and
a backup or another user's store can be inspected. `tail -f` polls `Journal.read(id, next)`,
which sees every acknowledged append of any process, until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..errors import JournalError, RecoveryWarning, UnreadableSessionWarning
from ..log.record import MESSAGE, SEAL, Record
from ..log.summary import read_summary
from ..native import Journal
from .args import add_json, command, count
from .opening import READ
from .output import FAILED, OK, Failure, Output, dumps, iso, warn

if TYPE_CHECKING:  # `journal remote` runs show and cat on one
    from ..replication.remote import RemoteReplica

POLL_SECONDS = 0.2  # how often `tail -f` looks for new records


def add_parsers(commands: Any) -> None:
    command(
        commands,
        "ls",
        ls,
        READ,
        help="list the sessions: id, messages, last update",
        example="journal ls\njournal ls --json | jq -r .session_id",
    )
    add_json(commands.choices["ls"], "one JSON object per session")
    show_ = command(
        commands,
        "show",
        show,
        READ,
        help="print a session's fields and messages",
        example="journal show support-42 --tail 5\njournal show support-42 --json > s.json",
    )
    show_.add_argument("session_id", metavar="ID")
    show_.add_argument("--tail", type=count, metavar="N", help="only the last N messages")
    add_json(show_, "the session as one JSON document (as in an export archive)")
    cat_ = command(
        commands,
        "cat",
        cat,
        READ,
        help="print every record of a session's log as JSON lines",
        example="journal cat support-42 | head",
    )
    cat_.add_argument("session_id", metavar="ID")
    cat_.add_argument("--json", action="store_true", help="accepted for symmetry: cat always prints JSON")
    tail_ = command(
        commands,
        "tail",
        tail,
        READ,
        help="print a session's last records; -f: follow new ones",
        example="journal tail -f support-42\njournal tail -n 50 support-42 --json",
    )
    tail_.add_argument("session_id", metavar="ID")
    tail_.add_argument(
        "-n", "--lines", type=count, default=10, metavar="N", help="records to show first (10)"
    )
    tail_.add_argument(
        "-f", "--follow", action="store_true", help="print records as they are appended, until Ctrl-C"
    )
    add_json(tail_, "one JSON object per record, as `cat` does")


def require(journal: Journal | RemoteReplica, session_id: str) -> None:
    """A `Failure` unless `session_id` is a session of the store."""
    if not journal.exists(session_id):
        raise Failure(f"no session {session_id!r} in {journal.root}")


# -- ls, show, cat ------------------------------------------------------------------------------


def ls(journal: Journal, args: argparse.Namespace, out: Output) -> int:
    """One row per session; a session that cannot be read is reported and the rest listed."""
    rows, code = [], OK
    for session_id in journal.sessions():
        try:
            created, updated, messages = _summary(journal, session_id)
        except (JournalError, OSError) as exc:
            warn(f"{session_id}: cannot be read: {exc}")
            code = FAILED
            continue
        if out.json:
            item = {"session_id": session_id, "messages": messages}
            out.item({**item, "created_at": iso(created), "updated_at": iso(updated)})
        else:
            rows.append([session_id, messages, iso(updated, millis=False)])
    if not out.json:
        out.table(["ID", "MESSAGES", "UPDATED"], rows, right=[1])
    return code


def _summary(journal: Journal, session_id: str) -> tuple[float | None, float | None, int]:
    """(created, updated, message count), from the session's summary files when they can
    say it cheaply, else by folding the session."""
    summary = read_summary(journal.fs, journal.session_path(session_id))
    if summary is not None:
        return summary.created_at, summary.updated_at, summary.message_count
    state = journal.state(session_id)
    if state is None:
        raise JournalError("it vanished while listed")
    return state.created_at, state.updated_at, len(state.messages)


def show(journal: Journal | RemoteReplica, args: argparse.Namespace, out: Output) -> int:
    require(journal, args.session_id)
    if out.json:
        from ..ops.transfer import session_document

        document = session_document(journal, args.session_id)
        if args.tail is not None:  # `message_count` stays the session's total
            document["messages"] = document["messages"][len(document["messages"]) - args.tail :]
        out.document(document)
        return OK
    state = journal.state(args.session_id)
    if state is None:
        raise Failure(f"no session {args.session_id!r} in {journal.root}")
    out.line(f"session   {args.session_id}")
    out.line(f"created   {iso(state.created_at)}")
    out.line(f"updated   {iso(state.updated_at)}")
    out.line(f"messages  {len(state.messages)}")
    if state.metadata:
        out.line(f"metadata  {dumps(state.metadata)}")
    shown = state.messages if args.tail is None else state.messages[len(state.messages) - args.tail :]
    if shown:
        out.line()
    for record in shown:
        out.line(record_line(record))
    return OK


def record_line(record: Record) -> str:
    """A record as one line of text: `seq  time  role: content` for a message."""
    head = f"{record.seq:>6}  {iso(record.ts)}"
    if record.kind != MESSAGE:
        return f"{head}  [{record.kind}] {dumps(record.data)}"
    data = record.data
    content = data.get("content")
    text = content if isinstance(content, str) else dumps(content)
    calls = data.get("tool_calls")
    extra = f"  [{len(calls)} tool call(s)]" if isinstance(calls, list) and calls else ""
    return f"{head}  {data.get('role', '?')}: {text}{extra}"


def record_item(record: Record) -> dict[str, Any]:
    """A record as `cat`, `tail --json` print it."""
    return {"seq": record.seq, "ts": record.ts, "kind": record.kind, "data": record.data}


def cat(journal: Journal | RemoteReplica, args: argparse.Namespace, out: Output) -> int:
    require(journal, args.session_id)
    for record in journal.read(args.session_id):
        out.item(record_item(record))
    return OK


# -- tail ----------------------------------------------------------------------------------------


def tail(journal: Journal, args: argparse.Namespace, out: Output) -> int:
    """The last N records (seals left out), then, with -f, each new one as it is appended."""
    session_id = args.session_id
    require(journal, session_id)
    last = _last_seq(journal, session_id)
    next_seq = _print_from(journal, session_id, max(0, last - args.lines + 1), out)
    next_seq = max(next_seq, last + 1)
    if not args.follow:
        return OK
    with _interrupted_by_sigterm(), warnings.catch_warnings():
        # A reader polling a log being written sees a batch half-written now and then: that is
        # not damage, so the torn-tail notes are not printed (an unreadable session still is).
        warnings.simplefilter("ignore", RecoveryWarning)
        warnings.simplefilter("default", UnreadableSessionWarning)
        try:
            while True:
                seen = _print_from(journal, session_id, next_seq, out)
                sys.stdout.flush()
                if seen == next_seq and not journal.exists(session_id):
                    raise Failure(f"session {session_id!r} was deleted")
                next_seq = seen
                time.sleep(POLL_SECONDS)
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the way to stop following
            return OK


def _last_seq(journal: Journal, session_id: str) -> int:
    summary = read_summary(journal.fs, journal.session_path(session_id))
    if summary is not None:
        return summary.last_seq
    state = journal.state(session_id)
    return 0 if state is None else state.last_seq


def _print_from(journal: Journal, session_id: str, start: int, out: Output) -> int:
    """Print the records from `start` on; return the seq after the last one read."""
    next_seq = start
    for record in journal.read(session_id, start):
        next_seq = record.seq + 1
        if record.kind != SEAL:
            if out.json:
                out.item(record_item(record))
            else:
                out.line(record_line(record))
    return next_seq


@contextmanager
def _interrupted_by_sigterm() -> Iterator[None]:
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
