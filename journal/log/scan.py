"""Pure classification of a segment's bytes (FORMAT.md, "Recovery rules"). No I/O here.

Strategy: walk complete lines while each one is a valid record carrying the next expected
sequence number, and only count a batch (records with ``more``) once its last record is there.
At the first line that fails, look for any valid record *after* it that continues or skips
ahead in the sequence: if there is one the damage is corruption (report, never skip); if
there is none, everything from the end of the last complete batch is a torn tail (cut it).
A writer may preallocate the active segment (FORMAT.md, "Segments"): NUL bytes from a line
start to the end of the bytes read are the unwritten tail, where the data ends; a record line
never holds a NUL byte (JSON escapes it), so they are never part of one.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import CorruptionError
from .record import SEAL, BadLine, Record, decode, decode_header, records_in_line


@dataclass(frozen=True)
class Problem:
    """One thing `verify` found. `kind` is "torn-tail", "corruption" or "unsupported-format"."""

    path: str
    offset: int
    kind: str
    reason: str
    length: int = 0


@dataclass(frozen=True)
class Scan:
    """Where the valid records of a byte range end, and what lies after them."""

    end: int  # absolute offset just past the last complete batch
    next_seq: int  # the sequence number the next record must carry
    count: int  # complete records accepted
    sealed: bool  # the last accepted record is a seal: the segment is closed
    problem: Problem | None  # a torn tail, or corruption; None when the range is clean


def scan(data: bytes, base: int, next_seq: int, path: str) -> Scan:
    """Classify `data`, which starts at file offset `base` and must continue at `next_seq`."""
    pos = good_end = 0
    good_seq, batch_left, count, good_count = next_seq, 0, 0, 0
    sealed = False
    bad_at, reason, version = -1, "", None
    end = len(data)
    while pos < end:
        if data[pos] == 0 and zero_from(data, pos):
            end = pos  # the preallocated tail: the data ends here
            break
        if sealed:
            bad_at, reason = pos, "bytes after the segment's seal record"
            break
        newline = data.find(b"\n", pos)
        if newline == -1:
            bad_at, reason = pos, "incomplete record (no newline)"
            break
        try:
            header = decode_header(data[pos:newline])
        except BadLine as exc:
            bad_at, reason, version = pos, exc.reason, exc.version
            break
        if header.seq != next_seq:
            bad_at, reason = pos, f"sequence number {header.seq}, expected {next_seq}"
            if header.seq > next_seq:  # a valid record skipping ahead: records are missing
                return _corrupt(base, good_end, good_seq, good_count, path, bad_at, reason)
            break
        if batch_left and header.more != batch_left - 1:
            bad_at, reason = pos, "batch cut short by another record"
            break
        batch_left = header.more
        next_seq += 1
        count += 1
        pos = newline + 1
        if batch_left == 0:
            good_end, good_seq, good_count = pos, next_seq, count
            sealed = header.kind == SEAL
    if bad_at < 0:
        if good_end == end:
            return Scan(base + good_end, good_seq, good_count, sealed, None)
        reason = "batch incomplete at end of file"
        bad_at = end
    if version is not None:
        problem = Problem(path, base + bad_at, "unsupported-format", reason)
        return Scan(base + good_end, good_seq, good_count, sealed, problem)
    if _valid_record_after(data, bad_at, good_seq):
        return _corrupt(base, good_end, good_seq, good_count, path, bad_at, reason)
    tail = Problem(path, base + good_end, "torn-tail", reason, len(data) - good_end)
    return Scan(base + good_end, good_seq, good_count, sealed, tail)


def zero_from(data: bytes, pos: int) -> bool:
    """Is every byte of `data` from `pos` on a NUL (the unwritten, preallocated tail)?"""
    return data.count(0, pos) == len(data) - pos


def _corrupt(
    base: int, good_end: int, good_seq: int, count: int, path: str, bad_at: int, reason: str
) -> Scan:
    problem = Problem(path, base + bad_at, "corruption", f"{reason}, and valid records follow")
    return Scan(base + good_end, good_seq, count, False, problem)


def _valid_record_after(data: bytes, bad_at: int, min_seq: int) -> bool:
    """Is there a committed (newline-ended) valid record numbered `min_seq` or later from
    `bad_at` on? Such a record may also start inside a damaged line."""
    at = bad_at
    while True:
        newline = data.find(b"\n", at)
        if newline == -1:
            return False
        if _holds_valid(data[at:newline], min_seq):
            return True
        at = newline + 1


def _holds_valid(line: bytes, min_seq: int) -> bool:
    return any(header.seq >= min_seq for header, _ in records_in_line(line))


def decode_run(data: bytes, base: int, seq: int, path: str) -> tuple[list[Record], int]:
    """Decode a run of records already known to be committed (`data` starts at file offset
    `base`), numbering on from `seq`; return them and the offset reached. Any damage here is
    `CorruptionError`: the run lies before a valid end or inside a closed segment."""
    records: list[Record] = []
    pos = 0
    while pos < len(data):
        if data[pos] == 0 and zero_from(data, pos):  # a sealed segment whose zeros were not cut yet
            break
        newline = data.find(b"\n", pos)
        if newline == -1:
            raise CorruptionError(path, base + pos, "incomplete record inside a closed segment")
        try:
            record = decode(data[pos:newline])
        except BadLine as exc:
            raise CorruptionError(path, base + pos, exc.reason) from None
        if record.seq != seq + len(records):
            reason = f"sequence number {record.seq}, expected {seq + len(records)}"
            raise CorruptionError(path, base + pos, reason)
        records.append(record)
        pos = newline + 1
    return records, base + pos
