"""`verify` (report, change nothing) and `repair` (salvage) of a whole session directory.

Strategy: both walk every log segment in order with the pure `scan`, each segment having to
number on from the one before and every closed segment having to end in a seal. `verify`
only collects `Problem`s. `repair` first copies a damaged file into the session's quarantine
directory, then rewrites the segment atomically from every record that still checks out,
filling each sequence number it could not save with a "lost" record so numbering stays
gapless and the loss stays visible. It then bumps the lock file's generation so every open
handle, in any process, reopens the repaired files.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import orjson

from ..errors import UnsupportedFormatError
from . import naming
from .fs import FileSystem, read_file, write_atomic
from .linecheck import clean_segment
from .manifest import folded_through
from .record import LOST, SEAL, Header, encode, first_bad_payload, records_in_line
from .scan import Problem, scan
from .session import IDENTITY_FORMATS, Options, quarantine


@dataclass
class Report:
    """What `verify` found or `repair` did. `ok` is True when nothing is (left) wrong."""

    ok: bool
    problems: list[Problem] = field(default_factory=list)
    salvaged: int = 0
    lost: list[int] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)


def _segments(fs: FileSystem, path: str) -> list[int]:
    names = fs.listdir(os.path.join(path, naming.LOG_DIR))
    return sorted(s for s in map(naming.segment_first_seq, names) if s is not None)


def _segment_path(path: str, first: int) -> str:
    return os.path.join(path, naming.LOG_DIR, naming.segment_name(first))


def identity_problems(fs: FileSystem, path: str, session_id: str) -> list[Problem]:
    """Is `identity.json` there, readable, of a known format, and naming this session?"""
    identity_path = os.path.join(path, naming.IDENTITY_FILE)
    try:
        raw = read_file(fs, identity_path)
    except OSError as exc:
        return [Problem(identity_path, 0, "corruption", f"cannot read the identity file: {exc}")]
    if raw is None:
        if _segments(fs, path):
            return [Problem(identity_path, 0, "corruption", "identity file missing")]
        return []
    try:
        identity = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return [Problem(identity_path, 0, "corruption", "identity file is not JSON")]
    version = identity.get("format") if isinstance(identity, dict) else None
    if version not in IDENTITY_FORMATS:
        return [Problem(identity_path, 0, "unsupported-format", f"unsupported format version {version!r}")]
    if identity.get("session_id") != session_id:
        reason = f"identity file names session {identity.get('session_id')!r}"
        return [Problem(identity_path, 0, "corruption", reason)]
    return []


def find_problems(fs: FileSystem, path: str) -> list[Problem]:
    """Every problem in the session's log; changes nothing."""
    problems: list[Problem] = []
    log_dir = os.path.join(path, naming.LOG_DIR)
    st = fs.stat(log_dir)
    if st is not None and not st.is_dir:
        return [Problem(log_dir, 0, "corruption", "log/ is not a directory")]
    # After a compaction the live log starts just past the snapshot; names before it are
    # archived (a folded segment not yet unlinked is left to the next open to finish).
    snapshot_seq = folded_through(fs, path)
    segments = [s for s in _segments(fs, path) if s > snapshot_seq]
    expected = snapshot_seq + 1  # a log that starts later has lost its first segments
    for index, first in enumerate(segments):
        seg_path = _segment_path(path, first)
        if first != expected:
            problems.append(
                Problem(seg_path, 0, "corruption", f"segment starts at {first}, expected {expected}")
            )
        data = read_file(fs, seg_path) or b""
        result = clean_segment(data, first)  # the usual segment, payloads too, in one fast pass
        if result is None:
            result = scan(data, 0, first, seg_path)
            problems += _payload_problems(data[: result.end], seg_path)
        if result.problem is not None:
            problems.append(_as_closed(result.problem, index < len(segments) - 1))
        elif index < len(segments) - 1 and not result.sealed:
            problems.append(Problem(seg_path, result.end, "corruption", "closed segment has no seal record"))
        # After damage the scan stopped early; the next segment's name still says where it
        # should start, so judge it on its own rather than report it for its neighbour's loss.
        damaged = result.problem is not None or not result.sealed
        has_next = index + 1 < len(segments)
        expected = segments[index + 1] if damaged and has_next else result.next_seq
    return problems


def _payload_problems(data: bytes, path: str) -> list[Problem]:
    """Records whose checksum holds but whose payload a read cannot parse (not JSON, nested
    past orjson's limit): a read of them raises `CorruptionError`, so verify reports them."""
    bad = first_bad_payload(data)  # the scan checked every checksum and header already
    return [] if bad is None else [Problem(path, bad[0], "corruption", bad[1])]


def _as_closed(problem: Problem, closed: bool) -> Problem:
    """A torn tail is only a torn tail in the active segment; in a closed one it is damage."""
    if closed and problem.kind == "torn-tail":
        return Problem(problem.path, problem.offset, "corruption", f"{problem.reason} in a closed segment")
    return problem


def repair_segments(fs: FileSystem, path: str, options: Options) -> Report:
    """Salvage every damaged segment (caller holds the session lock)."""
    problems = find_problems(fs, path)
    report = Report(ok=True, problems=problems)
    damaged = sorted({p.path for p in problems})
    if any(p.kind == "unsupported-format" for p in problems):
        bad = next(p for p in problems if p.kind == "unsupported-format")
        raise UnsupportedFormatError(bad.path, bad.reason)
    segments = _segments(fs, path)
    first_live = folded_through(fs, path) + 1
    if segments and segments[0] > first_live:
        _fill_missing_start(fs, path, first_live, segments[0], options, report)
    for index, first in enumerate(segments):
        seg_path = _segment_path(path, first)
        if seg_path not in damaged:
            continue
        next_first = segments[index + 1] if index + 1 < len(segments) else None
        _repair_one(fs, path, seg_path, first, next_first, options, report)
    if report.problems:
        _sync_segments(fs, path)
    return report


def _sync_segments(fs: FileSystem, path: str) -> None:
    """Make every segment durable: what repair leaves must be what a power loss leaves, and
    a segment it kept as it was may still hold bytes written in "none" mode, never fsynced."""
    for first in _segments(fs, path):
        fd = fs.open(_segment_path(path, first), create=False, mode=0)
        try:
            fs.sync(fd)
        finally:
            fs.close(fd)
    fs.sync_dir(os.path.join(path, naming.LOG_DIR))


def _fill_missing_start(
    fs: FileSystem, path: str, first: int, found: int, options: Options, report: Report
) -> None:
    """The log's first segments are gone: stand a closed segment of "lost" records in for
    them, so numbering starts where it must and the loss is on record."""
    note = orjson.dumps({"reason": "segment missing when repaired"})
    lines = [encode(seq, time.time(), LOST, note) for seq in range(first, found - 1)]
    lines.append(encode(found - 1, time.time(), SEAL, b"{}"))
    write_atomic(fs, _segment_path(path, first), b"".join(lines), options.file_mode)
    report.lost.extend(range(first, found))


def _repair_one(
    fs: FileSystem,
    path: str,
    seg_path: str,
    first: int,
    next_first: int | None,
    options: Options,
    report: Report,
) -> None:
    data = read_file(fs, seg_path) or b""
    saved = quarantine(fs, path, f"{os.path.basename(seg_path)}.damaged", data, options)
    report.quarantined.append(saved)
    result = scan(data, 0, first, seg_path)
    if next_first is None and result.problem is not None and result.problem.kind == "torn-tail":
        # Only a torn tail: cut it exactly as opening the session would, so an incomplete
        # batch stays all-or-nothing whichever of open and repair comes first.
        write_atomic(fs, seg_path, data[: result.end], options.file_mode)
        report.salvaged += result.count
        return
    kept = _salvage(data, first, next_first)
    if next_first is None:
        kept = _without_open_batch(kept)
    report.salvaged += len(kept)
    out: list[bytes] = []
    seq = first
    note = orjson.dumps({"reason": "damaged record removed by repair", "quarantine": saved})
    for header, line in kept:
        while seq < header.seq:
            out.append(encode(seq, time.time(), LOST, note))
            report.lost.append(seq)
            seq += 1
        out.append(_without_batch(header, line))
        seq += 1
    if next_first is not None and seq < next_first:
        while seq < next_first - 1:
            out.append(encode(seq, time.time(), LOST, note))
            report.lost.append(seq)
            seq += 1
        out.append(encode(seq, time.time(), SEAL, b"{}"))
    write_atomic(fs, seg_path, b"".join(out), options.file_mode)


def _salvage(data: bytes, first: int, next_first: int | None) -> list[tuple[Header, bytes]]:
    """Every record line that checks out, numbered strictly upward inside the segment."""
    kept: list[tuple[Header, bytes]] = []
    last = first - 1
    limit = next_first if next_first is not None else 1 << 63
    for line in data.split(b"\n")[:-1]:  # the last piece has no newline: never committed
        for header, record in records_in_line(line):
            if last < header.seq < limit:
                kept.append((header, record))
                last = header.seq
    return kept


def _without_open_batch(kept: list[tuple[Header, bytes]]) -> list[tuple[Header, bytes]]:
    """Drop a batch at the very end whose last record never made it: it was not committed."""
    end = len(kept)
    while end and kept[end - 1][0].more:
        end -= 1  # walk back over the records that still announce more to come
    return kept[:end]


def _without_batch(header: Header, line: bytes) -> bytes:
    """Salvaged records stand alone: a batch marker could point at a record that is gone."""
    if header.more == 0:
        return line + b"\n"
    return encode(header.seq, header.ts, header.kind, line[header.data_start : -1])
