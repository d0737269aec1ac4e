"""A message line of messages.json made from a log payload's own bytes (FORMAT.md,
"Compaction"): what the compactor writes for nearly every message. No I/O here.

Strategy: `snapshot.encode_message` of a record is its data plus the documented "timestamp"
and the "_journal" stamp, serialized again. A compaction has the payload's bytes and has
parsed them anyway (to check a read will parse them), so when the parsed payload is an object
holding neither key, the line is those bytes with the two keys written before the closing
brace: byte for byte what `encode_message` writes (orjson writes a payload the way it writes
it again), at the cost of a few C calls instead of a serialization. The look-up of the two
keys in the parsed object replaces `snapshot.splice_message`'s three searches of the bytes,
which cost as much as the rest of the splice. Anything else (a key already there, a ts that
does not print in plain decimals) is None: the caller encodes the record instead.

`splice_run` does the same for a run of checked lines (`linecheck.check_run`, which looked the
two keys up in each parsed payload as it checked it) at once, each step a C-level pass over
the run (`map` of a format, of `orjson.dumps`, of the cached ISO seconds). A run where any
line is not the usual case is None, and the caller splices it a record at a time.
"""

from __future__ import annotations

import functools
import operator
import re
import time
from collections.abc import Sequence
from itertools import repeat
from typing import Any

import orjson

from .linecheck import Run, piece
from .snapshot import _TS, JOURNAL_KEY

_TS_BYTES = re.compile(_TS.encode())  # a ts as the stamp grammar has it (plain decimals)
_NUMBERS = re.compile(b"(?:%s\n)*%s" % (_TS.encode(), _TS.encode()))  # lines of them
_EMPTY_OBJECT = re.compile(rb"\{\s*\}")


def splice_parsed(payload: bytes, data: Any, seq: int, ts: float, more: int) -> bytes | None:
    """The messages.json line of a message record whose payload `payload` parsed into
    `data`, made from the payload's bytes; None if it must be encoded instead."""
    if type(data) is not dict or "timestamp" in data or JOURNAL_KEY in data:
        return None
    if payload[:1] != b"{" or payload[-1:] != b"}":
        return None
    number = orjson.dumps(ts)
    if _TS_BYTES.fullmatch(number) is None:
        return None
    if not (0 < seq < 10**19 and 0 <= more < 10**9):  # the stamp grammar's seq and more
        return None
    stamp = b"%d,%s,%d" % (seq, number, more) if more else b"%d,%s" % (seq, number)
    comma = b"," if payload[1:2] == b'"' or not _EMPTY_OBJECT.fullmatch(payload) else b""
    seconds, ms = divmod(int(ts * 1000), 1000)  # `snapshot.iso`, as bytes
    return b'%s%s"timestamp":"%s.%03dZ","_journal":"%s"}' % (
        payload[:-1],
        comma,
        _iso_seconds(seconds),
        ms,
        stamp,
    )


@functools.lru_cache(maxsize=4096)
def _iso_seconds(seconds: int) -> bytes:  # a chat's messages share seconds: format each once
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)).encode()


STAMP_KEYS = frozenset({"timestamp", JOURNAL_KEY})  # a payload holding either is not spliced
LINE_END = b'"}'  # the last part of a spliced line
_TIME_PART = b',"timestamp":"%s.%03dZ","_journal":"'  # what splice_parsed adds, up to the stamp


class _MoreSuffix(dict[bytes | None, bytes]):
    """The stamp's ",<more>" by the more field's digits; "" without one."""

    def __missing__(self, more: bytes | None) -> bytes:
        if len(self) > 100_000:  # batch sizes repeat; a bound all the same
            self.clear()
        suffix = self[more] = b"" if more is None else b"," + more
        return suffix


_MORE_SUFFIX = _MoreSuffix()


def splice_run(lines: list[bytes], run: Run, start: int, end: int) -> list[Sequence[bytes]] | None:
    """The messages.json lines of the message records `lines[start:end]` of a run checked
    with its stamps and `STAMP_KEYS`, each what `splice_parsed` writes, as columns of parts:
    line i is its parts joined, then `LINE_END`. None if any of them is not the usual case
    (the caller then takes them one at a time)."""
    free = run.keys_free[start:end]
    if len(free) != end - start or False in free:  # a payload may hold a stamp key
        return None
    if not all(map(bytes.endswith, lines[start:end], repeat(b"}}"))):
        return None  # a payload that ends in a space: splice_parsed decides
    heads = list(map(piece, lines[start:end], map(slice, run.starts[start:end], repeat(-2))))
    if not all(map(bytes.startswith, heads, repeat(b'{"'))):
        return None  # not an object (or an empty one, or one with spaces): splice_parsed decides
    stamps = run.stamps[start:end]
    distinct = list(dict.fromkeys(stamps))  # a batch's records share their ts: each done once
    parts = _time_parts(distinct)
    if parts is None:
        return None
    times, numbers = parts
    if len(distinct) < len(stamps):
        times = list(map(dict(zip(distinct, times, strict=True)).__getitem__, stamps))
        numbers = list(map(dict(zip(distinct, numbers, strict=True)).__getitem__, stamps))
    mores = list(map(_MORE_SUFFIX.__getitem__, run.mores[start:end]))
    return [heads, times, run.seqs[start:end], numbers, mores]


def _time_parts(stamps: list[bytes]) -> tuple[list[bytes], list[bytes]] | None:
    """For each ts (as the log writes it): the "timestamp" key and the start of the stamp,
    and "," with the ts as orjson prints it; None if one does not print in plain decimals."""
    floats = list(map(float, stamps))
    numbers = list(map(orjson.dumps, floats))
    if _NUMBERS.fullmatch(b"\n".join(numbers)) is None:
        return None
    millis = list(map(int, map(operator.mul, floats, repeat(1000))))  # `snapshot.iso`, as bytes
    seconds = map(_iso_seconds, map(operator.floordiv, millis, repeat(1000)))
    fields = zip(seconds, map(operator.mod, millis, repeat(1000)), strict=True)
    return list(map(_TIME_PART.__mod__, fields)), list(map(b",".__add__, numbers))
