"""A session's summary (times, message count, metadata) without reading its history.

Strategy: the compactor writes the summary at its snapshot into ``session_id.json`` (the
``"_journal"`` key: snapshot seq, message count, exact times; FORMAT.md); what happened
since is the live log, the segments after the snapshot, which views kept current hold few
records. So a summary is one small file read, one stat of the first live segment (empty: done)
and, only when the live log holds records, a fold of those records' kinds and metadata. No
lock is taken: a record still being written (a torn or incomplete last batch) is not counted,
and anything that does not add up (a compaction publishing meanwhile, damage, a session
compacted by an older version) returns None so the caller reads the session the locked way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..errors import CorruptionError
from . import manifest as mf
from . import naming
from .fs import FileSystem, read_file
from .prealloc import scan_settled
from .record import CLEAR, LOST, MESSAGE, META, SEAL, Record
from .scan import decode_run
from .snapshot import JOURNAL_KEY
from .state import merge_metadata

_MAX_INFO_BYTES = 16 * 1024 * 1024
_INFO, _LOG = os.sep + mf.SESSION_INFO_FILE, os.sep + naming.LOG_DIR  # joined by hand: the hot loop
_COUNTED = frozenset({MESSAGE, CLEAR, META, SEAL, LOST})  # kinds a summary folds without messages


@dataclass
class Summary:
    """What a session listing shows of one session."""

    created_at: float | None = None
    updated_at: float | None = None
    message_count: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)
    last_seq: int = 0
    live: bool = True  # the live log held bytes when read (or unknown): re-read it next time

    def apply(self, record: Record) -> bool:
        """Fold one record, as `SessionState.apply` does, keeping only a count of messages;
        False for a kind whose effect needs the messages themselves (an edit)."""
        if record.kind not in _COUNTED:
            return False
        self.last_seq = record.seq
        if record.kind in (SEAL, LOST):
            return True
        if self.created_at is None:
            self.created_at = record.ts
        self.updated_at = record.ts
        if record.kind == MESSAGE:
            self.message_count += 1
        elif record.kind == CLEAR:
            self.message_count = 0
        elif record.kind == META:
            merge_metadata(self.metadata, record.data)
        return True


def read_summary(fs: FileSystem, path: str) -> Summary | None:
    """The summary of the session at `path`, or None when the files cannot say it cheaply
    and for sure (then fold the session under its lock instead)."""
    try:
        summary = _snapshot_summary(fs, path)
        if summary is None:
            return None
        return summary if _fold_live(fs, path, summary) else None
    except (OSError, CorruptionError, ValueError):
        return None


def _snapshot_summary(fs: FileSystem, path: str) -> Summary | None:
    """The summary at the snapshot, from session_id.json; an empty one if never compacted."""
    raw = _read_small(fs, path + _INFO)
    if raw is None:  # never compacted (no manifest either), or not a session at all
        if fs.stat(os.path.join(path, mf.MANIFEST_FILE)) is not None:
            return None
        return Summary() if fs.stat(os.path.join(path, naming.IDENTITY_FILE)) is not None else None
    info = orjson.loads(raw)
    stamp = info.get(JOURNAL_KEY) if isinstance(info, dict) else None
    if not isinstance(stamp, dict) or not isinstance(info.get("metadata"), dict):
        return None  # written by a version before the summary, or edited by hand
    seq, count = stamp.get("seq"), stamp.get("messages")
    created, updated = stamp.get("created"), stamp.get("updated")
    if not (isinstance(seq, int) and isinstance(count, int) and _is_count(seq) and _is_count(count)):
        return None
    if not (_is_time(created) and _is_time(updated)):
        return None
    return Summary(created, updated, count, info["metadata"], seq)


def _fold_live(fs: FileSystem, path: str, summary: Summary) -> bool:
    """Fold the live records into `summary`; False if the live log does not continue the
    snapshot (a compaction published between our reads)."""
    log_dir = path + _LOG
    first = summary.last_seq + 1
    st = fs.stat(log_dir + os.sep + naming.segment_name(first))
    if st is None:
        return False
    if st.size == 0:  # the usual case once the views are current: nothing new
        summary.live = False
        return True
    segments = sorted(s for s in map(naming.segment_first_seq, fs.listdir(log_dir)) if s is not None)
    live = [s for s in segments if s >= first]
    if not live or live[0] != first:
        return False
    for index, seg in enumerate(live):
        records = _segment_records(fs, os.path.join(log_dir, naming.segment_name(seg)), seg)
        closed = index + 1 < len(live)
        if closed and (not records or records[-1].kind != SEAL or records[-1].seq != live[index + 1] - 1):
            return False
        if not all(summary.apply(record) for record in records):
            return False
    return True


def _segment_records(fs: FileSystem, path: str, first: int) -> list[Record]:
    """The committed records of a segment: a batch still being written is left out; damage
    with records after it raises `CorruptionError`."""
    fd = fs.open(path, create=False, mode=0)
    try:  # read again while a writer is seen half way through preallocated zeros
        data, found = scan_settled(lambda: fs.pread(fd, fs.size(fd), 0), 0, first, path)
    finally:
        fs.close(fd)
    if found.problem is not None and found.problem.kind != "torn-tail":
        raise CorruptionError(path, found.problem.offset, found.problem.reason)
    return decode_run(data[: found.end], 0, first, path)[0]


def _read_small(fs: FileSystem, path: str) -> bytes | None:
    return read_file(fs, path, _MAX_INFO_BYTES)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_time(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))
