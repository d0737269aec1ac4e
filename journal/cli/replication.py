"""The commands that replicate a store to object storage and back: replicate, restore,
status, handoff.

Strategy: each opens the store itself (mode "none"), because it needs a `Journal` with a
replica (`replicate`, `handoff`) or a replica beside it (`restore`, `status`). The bucket's
credentials and endpoint come from the client library's usual sources (for S3 the `AWS_*`
environment variables, `AWS_ENDPOINT_URL` included). `replicate` runs until Ctrl-C or SIGTERM,
then syncs once more and exits 0 (1 if that last sync fails): the way `litestream replicate`
runs beside an application. `restore` refuses a session the store has, before writing anything.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
from typing import Any

from ..native import Journal
from ..replication.lease import lease_fence
from ..replication.restore import SessionRestore, restore
from ..replication.status import remote_status
from ..replication.stores import open_store
from . import replica_compact
from .args import add_json, command, moment, positive
from .opening import CACHED_MESSAGES, CREATE, READ
from .opening import open_store as open_journal
from .output import FAILED, OK, Failure, Output, error, iso

ENV_REPLICA = "JOURNAL_REPLICA"
FINAL_SYNC_SECONDS = 60.0  # `replicate`'s last sync on the way out gives up after this


def add_parsers(commands: Any) -> None:
    replicate_ = command(
        commands,
        "replicate",
        replicate,
        "none",
        help="ship every session to a replica until Ctrl-C or SIGTERM (then sync once more)",
        example="journal --dir /var/lib/agents replicate s3://bucket/agents\n"
        "AWS_ENDPOINT_URL=http://127.0.0.1:9000 journal replicate s3://bucket/agents",
    )
    replicate_.add_argument("url", metavar="URL", help="s3://bucket/prefix, gs://..., az://..., file:///dir")
    replicate_.add_argument(
        "--interval", type=float, default=1.0, metavar="S", help="seconds between shipping passes (1)"
    )
    restore_ = command(
        commands,
        "restore",
        run_restore,
        "none",
        help="rebuild sessions from a replica in the store (all of them by default)",
        example="journal --dir ./new restore s3://bucket/agents\n"
        "journal restore s3://bucket/agents support-42 --to-time 2024-05-01T12:30 --dry-run",
    )
    restore_.add_argument("url", metavar="URL", help="the replica")
    restore_.add_argument("session_ids", nargs="*", metavar="ID", help="the sessions to restore")
    restore_.add_argument("--to-time", type=moment, metavar="T", help="as it was at this time (DATE)")
    restore_.add_argument("--to-seq", type=positive, metavar="N", help="through this seq")
    restore_.add_argument("--dry-run", action="store_true", help="download and check, write nothing")
    restore_.add_argument(
        "--catch-up",
        action="store_true",
        help="append what a session here lacks (its copy a prefix of the replica's)",
    )
    add_json(restore_, '{"dry_run", "sessions": [{"session_id", "last_seq", "records", "bytes", "action"}]}')
    status_ = command(
        commands,
        "status",
        status,
        "none",
        help="how far a replica is behind the store, per session (seqs and seconds)",
        example=f"journal status s3://bucket/agents\n{ENV_REPLICA}=s3://bucket/agents journal status --json",
    )
    status_.add_argument("url", metavar="URL", nargs="?", help=f"the replica (default: ${ENV_REPLICA})")
    status_.add_argument("--session", dest="session_ids", action="append", metavar="ID", help="only these")
    add_json(status_, "one JSON object per session")
    handoff_ = command(
        commands,
        "handoff",
        handoff,
        "none",
        help="sync a session to a replica and release its lease, for another host to take",
        example="journal handoff support-42 s3://bucket/agents --wait 30",
    )
    handoff_.add_argument("session_id", metavar="ID")
    handoff_.add_argument("url", metavar="URL", help="the replica")
    handoff_.add_argument(
        "--wait", type=float, default=0.0, metavar="S", help="wait this long for another holder's lease (0)"
    )
    handoff_.add_argument("--timeout", type=float, metavar="S", help="give the sync up after S seconds")
    add_json(handoff_, '{"session_id", "synced_seq"}')
    replica_compact.add_parsers(commands)  # retention in the bucket: its own module


# -- replicate -----------------------------------------------------------------------------------


def replicate(root: str, args: argparse.Namespace, out: Output) -> int:
    if not os.path.isdir(root):
        raise Failure(f"no store at {root}")
    if not args.interval > 0:
        raise Failure("--interval must be a positive number of seconds", 2)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with Journal(
            root, replica=args.url, replica_interval=args.interval, max_cached_messages=CACHED_MESSAGES
        ) as journal:
            out.line(f"replicating {root} to {args.url} every {args.interval:g} s (Ctrl-C to stop)")
            sys.stdout.flush()
            try:
                while not stop.wait(0.2):  # a timed wait: the handlers run between its rounds
                    pass
            except KeyboardInterrupt:
                pass  # Ctrl-C is the way to stop, as SIGTERM is
            try:
                journal.sync_replica(timeout=FINAL_SYNC_SECONDS)
            except Exception as exc:
                error(f"the last sync failed: {exc}")
                return FAILED
        out.line("stopped; the replica holds every record")
        return OK
    finally:
        signal.signal(signal.SIGTERM, previous)


# -- restore -------------------------------------------------------------------------------------


def run_restore(root: str, args: argparse.Namespace, out: Output) -> int:
    store = open_store(args.url)
    ids = args.session_ids or None
    options: dict[str, Any] = {"to_seq": args.to_seq, "to_time": args.to_time, "fence": lease_fence(store)}
    options["catch_up"] = args.catch_up
    if args.dry_run and not os.path.isdir(root):
        with tempfile.TemporaryDirectory() as empty, Journal(empty) as journal:
            report = restore(journal, store, ids, dry_run=True, **options)
    else:
        with open_journal(root, READ if args.dry_run else CREATE) as journal:
            report = restore(journal, store, ids, dry_run=args.dry_run, **options)
    if not report.sessions:  # nothing asked for by name, and nothing there: a mistyped URL?
        raise Failure(f"no sessions in {args.url}")
    if out.json:
        items = [vars(done) for done in report.sessions]
        out.document({"dry_run": report.dry_run, "sessions": items})
        return OK
    verb = "would restore" if report.dry_run else "restored"
    for done in report.sessions:
        if done.action != "restored":
            out.line(_caught_up_line(done, report.dry_run))
        elif done.last_seq:
            out.line(f"{verb} {done.session_id} through seq {done.last_seq} ({done.records} records)")
        else:
            out.line(f"{done.session_id}: nothing to restore")
    return OK


def _caught_up_line(done: SessionRestore, dry_run: bool) -> str:
    """What `--catch-up` did to a session the store had (see `replication.catchup`)."""
    if done.action == "caught-up":
        verb = "would catch up" if dry_run else "caught up"
        return f"{verb} {done.session_id} through seq {done.last_seq} ({done.records} records appended)"
    if done.action == "ahead":
        return f"{done.session_id}: this store is ahead of the replica (seq {done.last_seq}); left alone"
    return f"{done.session_id}: already current through seq {done.last_seq}"


# -- status --------------------------------------------------------------------------------------


def status(root: str, args: argparse.Namespace, out: Output) -> int:
    url = args.url or os.environ.get(ENV_REPLICA)
    if not url:
        raise Failure(f"no replica: give URL or set ${ENV_REPLICA}", 2)
    if not os.path.isdir(root):
        raise Failure(f"no store at {root}")
    code, rows = OK, []
    with open_journal(root, READ) as journal:
        for item in remote_status(journal, open_store(url), args.session_ids):
            if item.error is not None:
                code = FAILED
            if out.json:
                out.item({**item.to_dict(), "lease_expires_at": iso(item.lease_expires_at)})
            else:
                rows.append(_status_row(item))
    if not out.json:
        headers = ["ID", "LOCAL", "REPLICA", "BEHIND", "SECONDS", "LEASE"]
        out.table(headers, rows, right=[1, 2, 3, 4])
    return code


def _status_row(item: Any) -> list[object]:
    if item.error is not None:
        return [item.session_id, "", "", "", "", f"error: {item.error}"]
    lease = "" if item.lease_holder is None else f"{item.lease_holder} until {iso(item.lease_expires_at)}"
    seconds = f"{item.behind_seconds:.1f}"
    return [item.session_id, item.local_seq, item.replicated_seq, item.behind_seqs, seconds, lease]


# -- handoff -------------------------------------------------------------------------------------


def handoff(root: str, args: argparse.Namespace, out: Output) -> int:
    if not os.path.isdir(root):
        raise Failure(f"no store at {root}")
    with Journal(
        root, replica=args.url, lease=True, lease_wait=args.wait, max_cached_messages=CACHED_MESSAGES
    ) as journal:
        if not journal.exists(args.session_id):
            raise Failure(f"no session {args.session_id!r} in {root}")
        synced = journal.handoff(args.session_id, timeout=args.timeout)
    if out.json:
        out.document({"session_id": args.session_id, "synced_seq": synced})
    else:
        out.line(f"handed {args.session_id} off: the replica holds it through seq {synced}; lease released")
    return OK
