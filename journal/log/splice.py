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
"""

from __future__ import annotations

import functools
import re
import time
from typing import Any

import orjson

from .snapshot import _TS, JOURNAL_KEY

_TS_BYTES = re.compile(_TS.encode())  # a ts as the stamp grammar has it (plain decimals)
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
