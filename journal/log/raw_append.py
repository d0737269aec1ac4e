"""Appending records written elsewhere: raw, already-encoded, checksummed lines that keep
their own seqs, times, kinds, batch marks and checksums (a replica's lines, caught up into a
local copy of the session by `replication.restore`).

Strategy: the lines are checked with the log's own reading rules (`scan`) against the
handle's state under the session's file lock, before a byte is written: every checksum, seq
continuity from the log's next seq, whole batches only, nothing after a seal but the next
segment's records. Then they are written with the handle's own primitives, exactly as an
append would: through `SessionLog._write` (a failed write is cut back, or poisons the
handle), a seal line ends the active segment as `_roll` does (fsync, then the next segment,
created durably), and one fsync at the end covers the rest. A crash in between leaves whole
batches and at most a torn tail, which the next open cuts as always; whatever reached the
disk is a prefix of the lines given, so a rerun appends the rest.
"""

from __future__ import annotations

import contextlib

from ..errors import DurabilityError, JournalError, UnsupportedFormatError
from .record import SEAL, BadLine, decode_header
from .scan import scan
from .session import SessionLog


class RawAppendError(JournalError):
    """Raw lines that the log cannot take as they are: they do not continue it (seq), do not
    check out (checksum, format), or end inside a batch. Nothing was written."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def append_lines(log: SessionLog, lines: bytes) -> int:
    """Append `lines`, whole batches of record lines whose first seq is the log's next one,
    byte for byte, under the session's lock, and fsync them; the last seq now in the log.

    Raises:
        RawAppendError: the lines do not continue the log or do not check out; nothing was
            written (a local append got in first, or the lines are damaged).
        UnsupportedFormatError: a line of a record format this version cannot read.
        DurabilityError: a write or fsync failed (as for an append).
    """
    with log.cond:
        log.lock()
        try:
            if log.poisoned is not None:
                raise log.poisoned
            chunks = _checked(log, lines)
            if not log.dirs_durable:
                log._sync_dirs()
            for chunk, sealed in chunks:
                log._write(chunk)
                log.next_seq = _next_seq_after(log.next_seq, chunk)
                log.written += 1
                if sealed:
                    _enter_next_segment(log)
        finally:
            log.unlock()
        log._make_durable(log.written, "always")
        return log.next_seq - 1


def _checked(log: SessionLog, lines: bytes) -> list[tuple[bytes, bool]]:
    """`lines` split after each seal, every part checked to continue the log; raise if not."""
    where = log.segment_path(log.seg_first)
    if b"\0" in lines:  # a record line never holds one: it would end a segment's data
        raise RawAppendError(where, "lines to append hold a NUL byte")
    parts: list[tuple[bytes, bool]] = []
    pos, seq = 0, log.next_seq
    for end in [*_seal_ends(lines), len(lines)]:
        if end == pos:
            continue
        result = scan(lines[pos:end], 0, seq, where)
        if result.problem is not None:
            if result.problem.kind == "unsupported-format":
                raise UnsupportedFormatError(where, result.problem.reason)
            at = seq + result.count
            reason = f"lines to append do not continue the log at seq {at}: {result.problem.reason}"
            raise RawAppendError(where, reason)
        parts.append((lines[pos:end], result.sealed))
        pos, seq = end, result.next_seq
    return parts


def _seal_ends(lines: bytes) -> list[int]:
    """The offsets just past each line that is a seal record (its header says so, not a
    payload that holds the words); a damaged line is left for `scan` to refuse."""
    ends, at = [], lines.find(_SEAL_KIND)
    while at != -1:
        begin, newline = lines.rfind(b"\n", 0, at) + 1, lines.find(b"\n", at)
        if newline == -1:
            break
        with contextlib.suppress(BadLine):
            if decode_header(lines[begin:newline]).kind == SEAL:
                ends.append(newline + 1)
        at = lines.find(_SEAL_KIND, newline)
    return ends


_SEAL_KIND = b'"kind":"seal",'


def _next_seq_after(first: int, chunk: bytes) -> int:
    return first + chunk.count(b"\n")


def _enter_next_segment(log: SessionLog) -> None:
    """A seal was written: make it durable before the next segment's name, then start that
    segment, as `SessionLog._roll` does after its own seal."""
    try:
        log._sync(log.seg_fd)
        log.synced = log.written
        log._enter_segment(log.next_seq)
    except BaseException as exc:
        # The handle still points at the sealed segment: writing on would put records after
        # the seal. Refuse until the session is reopened (as `_roll` does).
        if log.poisoned is None:
            log.poisoned = DurabilityError(f"{log.path}: could not start a new segment: {exc}")
        if isinstance(exc, OSError):
            raise log.poisoned from exc
        raise
