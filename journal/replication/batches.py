"""A session's record lines in a replica up to a point in time, in whole batches: what a
restore writes and a catch-up appends.

Strategy: `chain.pieces` gives the history run by run, each piece whole batches; a piece wholly
before the point is handed on as it is, only the one the point falls in is cut, line by line,
back to a whole batch. `to_seq` keeps the records through that seq, `to_time` the longest
prefix of records whose ts are all <= `to_time`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from ..log.record import decode_header
from .chain import Fence, pieces
from .objects import ObjectStore

_TS = re.compile(rb'^\{"xxh3":"[0-9a-f]{16}","v":\d+,"seq":\d+,"ts":(-?[0-9.]+),', re.MULTILINE)


def replica_batches(
    store: ObjectStore,
    dir_name: str,
    session_id: str,
    to_seq: int | None,
    to_time: float | None,
    fence: Fence | None,
) -> Iterator[tuple[bytes, int]]:
    """The replica's lines up to the point in time, in chunks of whole batches, each with
    its last seq. A piece wholly before the point is handed on as it is (pieces are whole
    batches); only the one the point falls in is cut, line by line."""
    for piece in pieces(store, dir_name, session_id, fence):
        raw = piece.lines()
        before_time = to_time is None or max(float(ts) for ts in _TS.findall(raw)) <= to_time
        if before_time and (to_seq is None or piece.hi <= to_seq):
            yield raw, piece.hi
            continue
        cut, last = _cut(raw, to_seq, to_time)
        if cut:
            yield cut, last
        return


def _cut(raw: bytes, to_seq: int | None, to_time: float | None) -> tuple[bytes, int]:
    """The whole batches of `raw` before the first record past the point in time."""
    pos = good = last = 0
    while pos < len(raw):
        end = raw.index(b"\n", pos) + 1
        header = decode_header(raw[pos : end - 1])  # checked by decode_run already
        if (to_seq is not None and header.seq > to_seq) or (to_time is not None and header.ts > to_time):
            break
        pos = end
        if header.more == 0:
            good, last = end, header.seq
    return raw[:good], last
