"""Checking a run of record lines at once (FORMAT.md, "Record lines"), for the passes that
read every line of a log: opening a session (`scan`), verify (`clean_segment`), the archive
check and the compactor's fold (`check_run`). No I/O here.

Strategy: reading a line with `record.decode_header` costs a few microseconds, nearly all of
it interpreter work per line, not C work per byte. `check_run` takes a list of lines and
checks them with a handful of passes that each run in C over the whole list (`map` of one
regular expression, of the checksum, of `orjson.loads`; lists compared at once), and one
short loop only where batches are. It accepts only lines that `decode_header` accepts and
reads them alike, in a strictly narrower grammar (versions 1-3 with their kinds, a ts whose
digits alone keep it inside years 1-9999): whatever it does not accept (a damaged line, a
number out of order, an unusual ts, a payload that is not JSON) makes it answer None, and the
caller runs its line-at-a-time code, which finds and names what is wrong. So a fast pass and
a slow pass always reach the same result; only the time differs.
"""

from __future__ import annotations

import operator
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from itertools import compress, repeat
from typing import cast

import orjson
import xxhash

from . import record
from .scan import Scan
from .scan import scan as scan_each_line

# The header of a line as `record._LINE` reads it, narrower: a version of 1-3 (whether it has
# the kind is checked after), the kind captured only when it is not "message" (None costs no
# object), and a ts of at most 11 integer digits (10 when negative), which is always within
# record.MIN_TS..MAX_TS: other times are legal but rare, and take the caller's slow path. The
# checksum's 16 characters are compared with the digest computed, so they need no class here.
_HEAD = rb'\{"xxh3":"[^"]{16}","v":[123],"seq":([1-9]\d{0,18}),"ts":'
_TS = rb"(?:\d{1,11}|-\d{1,10})\.\d{6}"
_TAIL = rb',"kind":"(?:message"|(meta|clear|seal|lost|edit|pop)"),(?:"more":([1-9]\d{0,8}),)?"data":'
_HEADER = re.compile(_HEAD + _TS + _TAIL)
_HEADER_TS = re.compile(_HEAD + b"(" + _TS + b")" + _TAIL)  # the ts captured too
_VERSIONS = frozenset({1, 2, 3})  # the versions _HEADER accepts
_LOWEST = {b"edit": ord("2"), b"pop": ord("3")}  # kinds newer than version 1 (record._KIND_VERSION)
_VERSION_AT = 31  # offset of the version digit in a line
_BODY = operator.itemgetter(slice(27, None))  # what the checksum covers (record._BODY_START)
_DIGEST = operator.itemgetter(slice(9, 25))  # the 16 hex digits
_GROUPS = re.Match.groups
# line, slice -> the bytes it picks (operator.getitem, typed for `map`)
piece = cast(Callable[[bytes, slice], bytes], operator.getitem)
SEAL = b"seal"


@dataclass(slots=True)
class Run:
    """What `check_run` read from lines that all check out: per line, as written."""

    seqs: tuple[bytes, ...]  # the seq digits
    stamps: tuple[bytes, ...]  # the ts digits (with `stamps`; else empty)
    kinds: tuple[bytes | None, ...]  # None: "message"
    mores: tuple[bytes | None, ...]  # None: no "more" field
    starts: list[int]  # offset of the payload in its line
    batch_left: int  # records of the last batch still to come after the run
    keys_free: list[bool]  # per line: its payload holds none of `check_run`'s `keys` (if given)


def check_run(
    lines: list[bytes],
    seq: int,
    batch_left: int | None = 0,
    payloads: bool = True,
    stamps: bool = False,
    keys: frozenset[str] | None = None,
) -> Run | None:
    """Check `lines` (each without its newline) as consecutive records numbered from `seq`:
    each line a valid record (checksum, header, a payload `orjson` parses with `payloads`),
    batches whole given `batch_left` records of a batch still to come before them (None: do
    not check batches). The `Run` read (with each line's ts digits if `stamps`; whether no
    payload holds any of `keys`), or None when any line is not the usual case."""
    count = len(lines)
    if not count or record.RECORD_VERSIONS != _VERSIONS:  # tests narrow it to an older reader's
        return None
    found = list(map((_HEADER_TS if stamps else _HEADER).match, lines))
    if None in found or not all(map(bytes.endswith, lines, repeat(b"}"))):
        return None
    matches = cast(list[re.Match[bytes]], found)
    checksums = map(str.encode, map(xxhash.xxh3_64_hexdigest, map(_BODY, lines)))
    if list(checksums) != list(map(_DIGEST, lines)):
        return None
    columns = list(zip(*map(_GROUPS, matches), strict=True))
    seqs, kinds, mores = columns[0], columns[-2], columns[-1]
    if list(seqs) != list(map(b"%d".__mod__, range(seq, seq + count))):
        return None
    if kinds.count(None) != count and not _versions_have(lines, kinds):
        return None
    starts = list(map(re.Match.end, matches))
    free: list[bool] = []
    if payloads:
        try:
            free = _parse(lines, starts, keys)
        except orjson.JSONDecodeError:
            return None
    left = 0 if batch_left is None else _batches(mores, batch_left)
    if left < 0:
        return None
    return Run(seqs, columns[1] if stamps else (), kinds, mores, starts, left, free)


def _parse(lines: list[bytes], starts: list[int], keys: frozenset[str] | None) -> list[bool]:
    """Parse every payload as a read will (raise `orjson.JSONDecodeError`), keeping none of
    them; with `keys`, whether each surely holds none of them (at its top level)."""
    parsed = map(orjson.loads, map(piece, lines, map(slice, starts, repeat(-1))))
    if keys is None:
        deque(parsed, maxlen=0)
        return []
    try:  # a dict is searched by its keys; the answer matters only for objects
        return list(map(keys.isdisjoint, parsed))
    except TypeError:  # a payload that is no collection, or holds unhashable items
        deque(map(orjson.loads, map(piece, lines, map(slice, starts, repeat(-1)))), maxlen=0)
        return [False] * len(lines)


def _versions_have(lines: list[bytes], kinds: tuple[bytes | None, ...]) -> bool:
    """Does every line's version have its kind ("edit" needs 2, "pop" 3)?"""
    if b"edit" not in kinds and b"pop" not in kinds:
        return True
    return all(lines[i][_VERSION_AT] >= _LOWEST[kind] for i, kind in enumerate(kinds) if kind in _LOWEST)


class _MoreCount(dict[bytes | None, int]):
    """The count a "more" field's digits say; 0 without one. (A dict: `map` reads it in C.)"""

    def __missing__(self, more: bytes | None) -> int:
        if len(self) > 100_000:  # batch sizes repeat; a bound all the same
            self.clear()
        count = self[more] = 0 if more is None else int(more)
        return count


_MORE_COUNT = _MoreCount()


def _batches(mores: tuple[bytes | None, ...], batch_left: int) -> int:
    """Records of the last batch still to come after these lines, or -1 if a batch is cut
    short (a record whose `more` is not one less than the one before it)."""
    if mores.count(None) == len(mores):
        return -1 if batch_left > 1 else 0
    counts = list(map(_MORE_COUNT.__getitem__, mores))
    if batch_left and counts[0] != batch_left - 1:
        return -1
    steps = map(operator.sub, counts, counts[1:])  # each record in a batch: one less than the last
    if not set(compress(steps, counts)) <= {1}:
        return -1
    return counts[-1]


def lines_of(data: bytes, start: int, end: int) -> list[bytes]:
    """The lines of `data[start:end]`, which ends in a newline, without their newlines."""
    lines = data[start:end].split(b"\n")
    lines.pop()
    return lines


def clean_segment(data: bytes, first: int, chunk_bytes: int = 1024 * 1024) -> Scan | None:
    """The `scan.scan` of a segment's bytes that it finds clean (no problem), checked at
    once with their payloads (what verify checks), or None when the segment is not the usual
    case (damage, a torn tail, anything `check_run` leaves to the
    slow path). The data ends at its last newline; only NUL bytes (a preallocated tail) may
    follow it. A seal may only be the last record."""
    end = data.rfind(b"\n") + 1
    if data.count(0, end) != len(data) - end:
        return None
    pos, seq, left = 0, first, 0
    kinds: tuple[bytes | None, ...] = ()
    while pos < end:
        cut = data.rfind(b"\n", pos, pos + chunk_bytes) + 1 or data.find(b"\n", pos + chunk_bytes) + 1
        run = check_run(lines_of(data, pos, cut), seq, left)
        if run is None or SEAL in kinds:  # a seal before these lines: bytes after it
            return None
        kinds, left = run.kinds, run.batch_left
        if SEAL in kinds[:-1]:
            return None
        seq += len(kinds)
        pos = cut
    if left:
        return None
    return Scan(end, seq, seq - first, bool(kinds) and kinds[-1] == SEAL, None)


def scan(data: bytes, base: int, next_seq: int, path: str, chunk_bytes: int = 1024 * 1024) -> Scan:
    """`scan.scan(data, base, next_seq, path)`, the same result, with the usual stretch of
    whole batches before anything else checked at once (`check_run`; payloads are left to
    the reader, as `scan.scan` leaves them). `scan.scan` then reads only from the end of the
    last complete batch of that stretch, where a seal, damage, a batch being written, a torn
    tail or the zeros of a preallocated tail are: it keeps no state across a batch's end, so
    it reads the rest as it would have read it from the start."""
    end = data.rfind(b"\n") + 1
    pos, seq, left = 0, next_seq, 0
    safe, safe_seq = 0, next_seq  # the end of the last complete batch checked at once
    while pos < end:
        cut = data.rfind(b"\n", pos, pos + chunk_bytes) + 1 or data.find(b"\n", pos + chunk_bytes) + 1
        lines = lines_of(data, pos, cut)
        run = check_run(lines, seq, left, payloads=False)
        if run is None or SEAL in run.kinds:
            break
        if None in run.mores:  # a batch ends in this run: after its last line without "more"
            last = len(lines) - 1 - run.mores[::-1].index(None)
            safe, safe_seq = pos + sum(map(len, lines[: last + 1])) + last + 1, seq + last + 1
        pos, seq, left = cut, seq + len(lines), run.batch_left
    if not safe:
        return scan_each_line(data, base, next_seq, path)
    rest = scan_each_line(data[safe:], base + safe, safe_seq, path)
    return replace(rest, count=rest.count + safe_seq - next_seq)
