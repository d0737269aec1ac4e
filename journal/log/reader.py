"""Reading a session through its open `SessionLog` (an `OpenLog` here), its lock held.

Strategy: two readers share one decoder. `advance_state` keeps the session's folded state
current by parsing only bytes past its cursor (`log.reader`), starting from the compaction
snapshot when there is one; `read_from` returns raw records, from archives for sequence numbers
compaction folded and from the live segments for the rest, resuming where the last read ended
(`log.read_hint`). Closed segments must end in their seal; anything else is corruption.
"""

from __future__ import annotations

from typing import Protocol

from ..errors import CorruptionError
from . import archive
from .fs import FileSystem
from .manifest import Manifest
from .record import SEAL, Record
from .scan import decode_run
from .state import SessionState


class OpenLog(Protocol):
    """What the readers use of an open session (`session.SessionLog`), its lock held."""

    fs: FileSystem
    path: str
    state: SessionState
    manifest: Manifest
    reader: tuple[int, int, int]  # where `state` is folded through: segment, offset, next seq
    read_hint: tuple[int, int, int]  # where the last raw read ended: next seq, segment, offset
    seg_first: int
    seg_size: int
    seg_fd: int
    next_seq: int
    max_record_bytes: int  # the record size limit: bounds what an archive may expand to

    def segment_path(self, first_seq: int) -> str: ...

    def segments(self) -> list[int]: ...


def advance_state(log: OpenLog, chat: bool = False) -> None:
    """Fold every record not folded yet into `log.state`; start from the snapshot after a
    compaction (with `chat`, decoding the snapshot also makes the state's `chat`)."""
    if log.state.last_seq < log.manifest.snapshot_seq:  # compacted: start from the snapshot
        log.state = archive.load_snapshot(log.fs, log.path, log.manifest, chat, log.max_record_bytes)
    seg, offset, seq = log.reader
    while True:
        active = seg == log.seg_first
        records, offset = records_in(log, seg, offset, log.seg_size if active else -1, seq)
        for record in records:
            log.state.apply(record)
        seq += len(records)
        if active:
            break
        if log.state.last_seq != seq - 1 or not records or records[-1].kind != SEAL:
            path = log.segment_path(seg)
            raise CorruptionError(path, offset, "a closed segment does not end in a seal record")
        seg, offset = seq, 0
    log.reader = (seg, offset, seq)


def records_in(log: OpenLog, seg: int, offset: int, end: int, seq: int) -> tuple[list[Record], int]:
    """Decode the records of segment `seg` from `offset` to `end` (-1: the file's end),
    checking that they number on from `seq`; return them and the offset reached."""
    path = log.segment_path(seg)
    fd = log.seg_fd if seg == log.seg_first else log.fs.open(path, create=False, mode=0)
    try:
        if end < 0:
            end = log.fs.size(fd)
        data = log.fs.pread(fd, end - offset, offset)
    finally:
        if fd != log.seg_fd:
            log.fs.close(fd)
    return decode_run(data, offset, seq, path)


def read_from(log: OpenLog, start: int) -> list[Record]:
    """Every record with seq >= start: from archives, then the live segments."""
    segments = [s for s in log.segments() if s <= log.seg_first]
    out: list[Record] = []
    if start <= log.manifest.snapshot_seq:  # records folded by compaction live in archives
        out = archive.read_archived(log.fs, log.path, log.manifest, start, log.max_record_bytes)
    origin, offset, seq = read_origin(log, start, segments)
    for index, seg in enumerate(segments):
        if seg < origin:
            continue
        end = log.seg_size if seg == log.seg_first else -1
        records, reached = records_in(log, seg, offset, end, seq)
        # A closed segment must end in its seal, numbered just before the next segment:
        # otherwise records cut from its end would be skipped without a word.
        following = segments[index + 1 :]
        if following and (not records or records[-1].kind != SEAL or records[-1].seq != following[0] - 1):
            path = log.segment_path(seg)
            raise CorruptionError(path, reached, "a closed segment does not end in a seal record")
        out.extend(r for r in records if r.seq >= start)
        offset, seq = 0, (records[-1].seq + 1 if records else seq)
    log.read_hint = (log.next_seq, log.seg_first, log.seg_size)
    return out


def read_origin(log: OpenLog, start: int, segments: list[int]) -> tuple[int, int, int]:
    """Where to start parsing for `start`: where the last read ended when that is not
    past `start` (a reader tailing the log parses only new bytes), else a segment's start."""
    hint_seq, hint_seg, hint_offset = log.read_hint
    if hint_seq <= start and hint_seg in segments:
        return hint_seg, hint_offset, hint_seq
    first = max([s for s in segments if s <= start] or segments[:1] or [log.seg_first])
    return first, 0, first
