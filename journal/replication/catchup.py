"""Catch-up: bring a local copy of a session that is behind the replica up to it, in place.

Strategy: the local copy counts as behind only if its history is a prefix of the replica's
chain: the replica's record at the local last seq carries the same checksum as the local
one (the checksum covers seq, time, kind, batch mark and payload, and the chain links every
record to the one before, so one checksum vouches for the whole prefix). Then the replica's
lines after it are appended byte for byte, seqs, times and checksums kept, one piece (whole
batches) at a time, each under the session's lock with an fsync (`log.raw_append`, which
checks them again with the log's own rules and refuses them if a local append got in first).
The copy ends up identical to the bucket's, record for record, seals included. A crash in
between leaves whole batches (a torn tail is cut on the next open, as always) and the copy
still a prefix: a rerun appends the rest. A copy holding records the replica lacks, or a
different record at some seq, is "forked" and left untouched; a copy ahead of the replica
(the replica a prefix of it) is "ahead" and left alone. The replica is read from seq 1
(`chain.pieces` checks the chain from its start), so a catch-up downloads the session's
whole chain; only the missing part is written.

Public names (stable): `catch_up_session`, `CatchUp`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Protocol

from ..log import index as listing_index
from ..log import naming
from ..log.fs import FileSystem
from ..log.raw_append import append_lines
from ..log.session import Options, SessionLog
from .batches import replica_batches
from .chain import Fence
from .objects import ObjectStore
from .runs import line_checksum
from .source import LocalLog

CAUGHT_UP, CURRENT, AHEAD, FORKED, MISSING = "caught-up", "current", "ahead", "forked", "missing"


class CatchUpTarget(Protocol):
    """What a catch-up needs of the store it writes to (a `restore.RestoreTarget` has it)."""

    fs: FileSystem
    options: Options

    def session_path(self, session_id: str) -> str: ...


@dataclass(frozen=True)
class CatchUp:
    """What a catch-up found and did: `status` is "caught-up" (records appended; in a dry run,
    would be), "current" (nothing missing), "ahead" (the local copy holds more than the
    replica: left alone), "forked" (the histories differ at `at_seq`: left untouched) or
    "missing" (no local session: restore it instead)."""

    session_id: str
    status: str
    local_seq: int  # the local copy's last seq before
    last_seq: int  # ... and after
    replica_seq: int  # the replica's last seq (through the point in time, if one was given)
    records: int = 0  # appended (in a dry run: that would be)
    bytes: int = 0
    at_seq: int = 0  # forked: the seq whose records differ


def catch_up_session(
    target: CatchUpTarget,
    store: ObjectStore,
    session_id: str,
    *,
    to_seq: int | None = None,
    to_time: float | None = None,
    dry_run: bool = False,
    fence: Fence | None = None,
) -> CatchUp:
    """Append to the local copy of `session_id` the replica's records it lacks (see the module
    docstring); nothing is written unless the copy is a prefix of the replica's history.

    Raises:
        ReplicaCorruptionError, ReplicaConflictError: the replica does not check out (what
            was appended before stays: whole pieces, a prefix of the replica's history).
        RawAppendError: a local append got in between the check and the write.
    """
    dir_name = naming.encode_id(session_id)
    log = SessionLog(target.fs, target.session_path(session_id), session_id, target.options)
    if not log.open(create=False):
        return CatchUp(session_id, MISSING, 0, 0, 0)
    try:
        local = log.next_seq - 1
        mine = _checksum_at(target, session_id, local)
        return _follow(log, store, dir_name, (local, mine), (to_seq, to_time), dry_run, fence)
    finally:
        log.close()


def _follow(
    log: SessionLog,
    store: ObjectStore,
    dir_name: str,
    local: tuple[int, str],
    point: tuple[int | None, float | None],
    dry_run: bool,
    fence: Fence | None,
) -> CatchUp:
    """Walk the replica's batches: check the one holding the local last seq, append after it."""
    session_id, (seq, mine) = log.session_id, local
    first, checked, records, size, last, tail = 1, seq == 0, 0, 0, seq, b""
    for raw, hi in replica_batches(store, dir_name, session_id, point[0], point[1], fence):
        lo, first, tail = first, hi + 1, raw
        if hi < seq:
            continue
        if not checked:  # lo <= seq <= hi: the replica's record at the local last seq
            at = _offset_of(raw, seq - lo)
            end = raw.index(b"\n", at) + 1
            if line_checksum(raw[at:end]) != mine:
                return CatchUp(session_id, FORKED, seq, seq, hi, at_seq=seq)
            checked, raw = True, raw[end:]
            if not raw:
                continue
        records, size = records + raw.count(b"\n"), size + len(raw)
        last = hi if dry_run else append_lines(log, raw)
    replica = first - 1
    if not checked:  # the replica ends before the local copy: is it a prefix of it?
        theirs = line_checksum(tail[tail.rfind(b"\n", 0, len(tail) - 1) + 1 :]) if tail else ""
        local_log = LocalLog(log.fs, log.path, log.max_record_bytes)
        if replica > 0 and _line_checksum(local_log, replica) != theirs:
            return CatchUp(session_id, FORKED, seq, seq, replica, at_seq=replica)
        return CatchUp(session_id, AHEAD, seq, seq, replica)
    if records == 0:
        return CatchUp(session_id, CURRENT, seq, seq, replica)
    if not dry_run:
        listing_index.mark(log.fs, os.path.dirname(log.path), dir_name)
    return CatchUp(session_id, CAUGHT_UP, seq, last, replica, records, size)


def _offset_of(raw: bytes, index: int) -> int:
    """Where the `index`-th line (from 0) of `raw` starts."""
    at = 0
    for _ in range(index):
        at = raw.index(b"\n", at) + 1
    return at


def _checksum_at(target: CatchUpTarget, session_id: str, seq: int) -> str:
    if seq == 0:
        return ""
    local = LocalLog(target.fs, target.session_path(session_id), target.options.max_record_bytes)
    return _line_checksum(local, seq)


def _line_checksum(local: LocalLog, seq: int) -> str:
    line = local.line_at(seq)
    return "" if line is None else line_checksum(line)
