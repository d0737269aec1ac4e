"""`journal replica-compact URL`: retention in a replica, run from cron.

Strategy: the store directory plays no part (mode "none"): the command opens the bucket,
runs `replication.compact.compact_replica` over every session (or those named) and prints
what it merged and deleted. Registered by `cli/replication.py`, beside the other replica
commands; the work and its rules live in `replication/compact.py`.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..replication.compact import TARGET_BYTES, compact_replica
from ..replication.stores import open_store
from .args import add_json, command
from .output import OK, Failure, Output


def add_parsers(commands: Any) -> None:
    compact_ = command(
        commands,
        "replica-compact",
        replica_compact,
        "none",
        help="merge a replica's small runs and delete superseded objects older than N days",
        example="journal replica-compact s3://bucket/agents --keep-days 7\n"
        "journal replica-compact file:///backups/agents --dry-run --json",
    )
    compact_.add_argument("url", metavar="URL", help="the replica")
    compact_.add_argument("session_ids", nargs="*", metavar="ID", help="only these sessions (default: all)")
    compact_.add_argument(
        "--keep-days", type=float, default=7.0, metavar="N", help="grace before a superseded object goes (7)"
    )
    compact_.add_argument(
        "--target-mib",
        type=float,
        default=TARGET_BYTES / (1 << 20),
        metavar="M",
        help="lines in a merged run (8)",
    )
    compact_.add_argument("--dry-run", action="store_true", help="read and check, write and delete nothing")
    add_json(
        compact_,
        '{"dry_run", "sessions": [{"session_id", "objects_before", "objects_after", "merged", '
        '"deleted", "waiting"}]}',
    )


def replica_compact(root: str, args: argparse.Namespace, out: Output) -> int:
    if args.keep_days < 0 or args.target_mib <= 0:
        raise Failure("--keep-days must be >= 0 and --target-mib > 0", 2)
    report = compact_replica(
        open_store(args.url),
        keep_days=args.keep_days,
        target_bytes=max(1, int(args.target_mib * (1 << 20))),
        sessions=args.session_ids or None,
        dry_run=args.dry_run,
    )
    if out.json:
        out.document(report.to_dict())
        return OK
    would = "would " if report.dry_run else ""
    for done in report.sessions:
        out.line(
            f"{done.session_id}: {done.objects_before} -> {done.objects_after} objects "
            f"({would}merge {len(done.merged)}, {would}delete {len(done.deleted)}, "
            f"{done.waiting} superseded but younger than {args.keep_days:g} days)"
        )
    return OK
