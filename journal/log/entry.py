"""Checking and encoding what the facade is asked to write, before any file is touched.

Strategy: pure functions from user values to the `Item`s a batch writes, so bad input raises
(`InvalidRecordError` naming the field, `TypeError` for a wrong container) and writes nothing.
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import InvalidRecordError
from .pop import OF
from .record import CLEAR, MAX_TS, MESSAGE, META, MIN_TS, POP, Item, encode_payload

WRITABLE_KINDS = (MESSAGE, META, CLEAR, POP)  # what `Journal.append_batch` takes


def encode_message(data: Any, limit: int) -> bytes:
    """The payload of one message; its role must be a str and its content a str or a list."""
    if not isinstance(data, dict):
        raise TypeError(f"a message must be a dict, not {type(data).__name__}")
    if "role" in data and not isinstance(data["role"], str):
        raise InvalidRecordError(f"role must be a str, not {type(data['role']).__name__}", "data['role']")
    content = data.get("content")
    if content is not None and not isinstance(content, (str, list)):
        raise InvalidRecordError(
            f"content must be a str (or a list of content parts), not {type(content).__name__}",
            "data['content']",
        )
    return encode_payload(data, limit)


def encode_fields(fields: Any, limit: int) -> bytes:
    """The payload of a metadata update."""
    if not isinstance(fields, dict):
        raise TypeError(f"metadata fields must be a dict, not {type(fields).__name__}")
    return encode_payload(fields, limit)


def encode_entry(index: int, entry: Any, limit: int) -> Item:
    """Entry `index` of a batch, `(kind, data, ts)`: ts None is the time of the write, a
    number is kept (to the microsecond) and must be a time in the years 1 to 9999."""
    if not isinstance(entry, tuple) or len(entry) != 3:
        raise TypeError(f"entry {index} must be a (kind, data, ts) tuple, not {entry!r:.80}")
    kind, data, ts = entry
    where = f"entries[{index}]"
    if kind == MESSAGE:
        payload = encode_message(data, limit)
    elif kind == META:
        payload = encode_fields(data, limit)
    elif kind == CLEAR:
        payload = b"{}"
    elif kind == POP:
        payload = encode_pop(data, where)
    else:
        raise InvalidRecordError(f"kind must be one of {WRITABLE_KINDS}, not {kind!r:.40}", where)
    # A copy of its own size: orjson's result keeps its whole work buffer (4-8 KiB however short
    # the JSON), and a batch holds every payload at once (an import: a whole session's).
    return (kind, bytes(memoryview(payload)), check_ts(ts, where))


def encode_pop(data: Any, where: str) -> bytes:
    """The payload of a pop (FORMAT.md "Pop records"): `{"of": <seq>}`, nothing else."""
    of = data.get(OF) if isinstance(data, dict) else None
    if not isinstance(data, dict) or data.keys() != {OF} or type(of) is not int or not 1 <= of < 2**63:
        raise InvalidRecordError(f'a pop must be {{"of": <seq>}}, not {data!r:.60}', where)
    return b'{"of":%d}' % of


def check_ts(ts: Any, where: str) -> float | None:
    """`ts` as a float, if it is a finite time in the years 1 to 9999 (or None)."""
    if ts is None:
        return None
    if isinstance(ts, bool) or not isinstance(ts, (int, float)):
        raise InvalidRecordError(f"ts must be a number of seconds since the epoch, not {ts!r:.40}", where)
    if not math.isfinite(ts) or not MIN_TS <= ts <= MAX_TS:
        raise InvalidRecordError(f"ts must be a time in the years 1 to 9999, not {ts!r}", where)
    return float(ts)
