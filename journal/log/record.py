"""Pure encode/decode of one log line (FORMAT.md, "Record lines"). No I/O here.

Strategy: a line is written as

    {"xxh3":"<16 hex>","v":<1|2>,"seq":<int>,"ts":<float>,"kind":"<kind>"[,"more":<int>],"data":<json>}\n

The checksum covers every byte after ``","`` that follows the hex digits, up to but not
including the newline: the header fields and the payload exactly as written. Verifying a line
is a slice and a hash; no JSON is re-serialized. The header has a fixed shape so that scanning
a segment reads seq/kind/more with one regex and parses the payload only when it is needed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import xxhash

from ..errors import InvalidRecordError, RecordTooLargeError

FORMAT_VERSION = 1  # of identity.json and of every record kind of version 1
SUPPORTED_VERSIONS = frozenset({1})  # identity.json formats this reader knows

MESSAGE = "message"
META = "meta"
CLEAR = "clear"
SEAL = "seal"
LOST = "lost"
EDIT = "edit"  # record version 2 (FORMAT.md, "Edit records")
POP = "pop"  # record version 3 (FORMAT.md, "Pop records")
KINDS = frozenset({MESSAGE, META, CLEAR, SEAL, LOST, EDIT, POP})
# Record versions this reader knows. A record is written with the lowest version that has its
# kind, so a log without edit records still reads with a version-1 reader, and a version-1
# reader refuses an edit record (UnsupportedFormatError) instead of misreading the history
# (likewise a version-2 reader and a pop record).
RECORD_VERSIONS = frozenset({1, 2, 3})
_KIND_VERSION = {EDIT: 2, POP: 3}

_PREFIX = b'{"xxh3":"'
# One record to write: its kind, its encoded payload, and its ts (None: the time of the write).
Item = tuple[str, bytes, "float | None"]
MIN_TS, MAX_TS = -62135596800.0, 253402300799.0  # 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z
_BODY_START = len(_PREFIX) + 16 + 2  # prefix, 16 hex digits, then '",'
_VERSION = re.compile(rb'"v":(0|[1-9]\d{0,8}),')
_HEADER = re.compile(
    rb'"seq":([1-9]\d{0,18}),"ts":(-?\d{1,12}\.\d{6}),'
    rb'"kind":"([a-z]{1,16})",(?:"more":([1-9]\d{0,8}),)?"data":'
)
# The whole header of a line of a version this reader knows, for `decode_header`'s fast path:
# _PREFIX, the checksum, then _VERSION and _HEADER as they follow each other.
_LINE = re.compile(
    rb'\{"xxh3":"([0-9a-f]{16})","v":(\d{1,9}),"seq":([1-9]\d{0,18}),'
    rb'"ts":(-?\d{1,12}\.\d{6}),"kind":"([a-z]{1,16})",(?:"more":([1-9]\d{0,8}),)?"data":'
)
# b"<version><kind>" -> (version, kind) for every kind a version of this reader has.
_KNOWN_VERSION_KIND = {
    b"%d%s" % (version, kind.encode()): (version, kind)
    for version in RECORD_VERSIONS
    for kind in KINDS
    if version >= _KIND_VERSION.get(kind, 1)
}
_CLOSE_BRACE = ord("}")
_ORJSON_OPTS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


@dataclass(slots=True)
class Record:
    """One decoded record: what `Journal.read` yields. Treat it as read-only. (Not a frozen
    dataclass: building one costs 0.16 us instead of 0.62 us, and a cold read of a long
    history builds one per message.)"""

    seq: int
    ts: float
    kind: str
    data: Any
    more: int = 0


@dataclass(slots=True)
class Header:
    """What a scan needs from a line without parsing its payload. Treat it as read-only.
    (Not a frozen dataclass, like `Record`: a scan or a compaction builds one a line.)"""

    version: int
    seq: int
    ts: float
    kind: str
    more: int
    data_start: int  # offset of the payload inside the line


class BadLine(Exception):
    """Internal: a line that is not a valid record. `reason` says why, for reports."""

    def __init__(self, reason: str, version: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.version = version


def encode_payload(data: object, max_bytes: int) -> bytes:
    """Serialize a payload exactly, or raise `InvalidRecordError` naming the bad spot."""
    try:
        payload = orjson.dumps(data, option=_ORJSON_OPTS)
    except (TypeError, orjson.JSONEncodeError):
        raise _explain(data, "data") from None
    # orjson writes NaN and Infinity as null: only then is a walk needed to refuse them.
    if b"null" in payload:
        _refuse_non_finite(data, "data")
    if len(payload) > max_bytes:
        raise RecordTooLargeError(f"payload is {len(payload)} bytes, over the limit of {max_bytes}")
    if b"\0" in payload:  # only an orjson.Fragment can hold one: a NUL ends a segment's data
        raise InvalidRecordError("holds a raw NUL byte (an orjson.Fragment?); JSON writes it \\u0000")
    return payload


def encode(seq: int, ts: float, kind: str, payload: bytes, more: int = 0) -> bytes:
    """One complete line, newline included, for an already-encoded payload."""
    # One format each for the body and the line (this runs once per record appended): 0.85 us
    # instead of 1.1 for the pieces formatted and concatenated one by one.
    version = _KIND_VERSION.get(kind, FORMAT_VERSION)
    if more:
        body = b'"v":%d,"seq":%d,"ts":%.6f,"kind":"%s","more":%d,"data":%s}' % (
            version,
            seq,
            ts,
            kind.encode(),
            more,
            payload,
        )
    else:
        body = b'"v":%d,"seq":%d,"ts":%.6f,"kind":"%s","data":%s}' % (
            version,
            seq,
            ts,
            kind.encode(),
            payload,
        )
    return b'{"xxh3":"%s",%s\n' % (xxhash.xxh3_64_hexdigest(body).encode(), body)


def encode_batch(first: int, ts: float, items: list[Item]) -> bytes:
    """The lines of one all-or-nothing batch: `more` counts the records still to come; an
    item's own ts, if it has one, is kept instead of `ts`."""
    if len(items) == 1:
        kind, payload, stamp = items[0]
        return encode(first, ts if stamp is None else stamp, kind, payload)
    last = len(items) - 1
    return b"".join(
        encode(first + i, ts if stamp is None else stamp, kind, payload, more=last - i)
        for i, (kind, payload, stamp) in enumerate(items)
    )


def decode_header(line: bytes) -> Header:
    """Check one line (without its newline) and read its header; raise `BadLine` if invalid."""
    # The usual line (a known version, a well-formed header) is read with one regex; anything
    # else takes the step-by-step path below, which names what is wrong. Both accept the
    # same lines and read them alike.
    match = _LINE.match(line)
    if match is not None and line[-1] == _CLOSE_BRACE:
        digest, version_text, seq, ts_text, kind_name, more = match.groups()
        known = _KNOWN_VERSION_KIND.get(version_text + kind_name)  # version and kind at once
        ts = float(ts_text)
        if (
            known is not None
            and known[0] in RECORD_VERSIONS  # read at each call: tests narrow it to an older reader's
            and MIN_TS <= ts <= MAX_TS
            and xxhash.xxh3_64_hexdigest(line[_BODY_START:]).encode() == digest
        ):
            return Header(known[0], int(seq), ts, known[1], int(more) if more else 0, match.end())
    return _decode_header_slowly(line)


def _decode_header_slowly(line: bytes) -> Header:
    if not line.startswith(_PREFIX) or len(line) < _BODY_START + 2:
        raise BadLine("not a record line")
    if line[_BODY_START - 2 : _BODY_START] != b'",' or not line.endswith(b"}"):
        raise BadLine("not a record line")
    body = line[_BODY_START:]
    if xxhash.xxh3_64_hexdigest(body).encode() != line[len(_PREFIX) : _BODY_START - 2]:
        raise BadLine("checksum mismatch")
    vmatch = _VERSION.match(body)
    if vmatch is None:
        raise BadLine("malformed header")
    version = int(vmatch[1])
    if version not in RECORD_VERSIONS:
        raise BadLine(f"unsupported format version {version}", version=version)
    match = _HEADER.match(body, vmatch.end())
    if match is None:
        raise BadLine("malformed header")
    kind = match[3].decode()
    if kind not in KINDS or version < _KIND_VERSION.get(kind, 1):
        raise BadLine(f"unknown record kind {kind!r} in a version {version} record")
    ts = float(match[2])
    if not MIN_TS <= ts <= MAX_TS:  # every reader turns ts into a date: years 1 to 9999
        raise BadLine(f"timestamp {match[2].decode()} is outside years 1 to 9999")
    return Header(
        version=version,
        seq=int(match[1]),
        ts=ts,
        kind=kind,
        more=int(match[4]) if match[4] else 0,
        data_start=_BODY_START + match.end(),
    )


def decode(line: bytes) -> Record:
    """Decode one line (with or without its newline) into a `Record`; raise `BadLine`."""
    if line.endswith(b"\n"):
        line = line[:-1]
    header = decode_header(line)
    return Record(header.seq, header.ts, header.kind, decode_payload(line, header), header.more)


def decode_payload(line: bytes, header: Header) -> Any:
    """The payload of a line (without its newline) whose header `decode_header` read;
    raise `BadLine` if it is not JSON."""
    try:
        return orjson.loads(line[header.data_start : -1])
    except orjson.JSONDecodeError:
        raise BadLine("payload is not JSON") from None


def first_bad_payload(data: bytes) -> tuple[int, str] | None:
    """The offset of the first line of `data` (whole lines, each ending in a newline) that
    `decode` refuses, and why; None if every line decodes. For lines a scan has already
    checked (`scan.scan`: checksums, headers): their payloads are parsed without checking
    each line's checksum and header again, which is most of what `decode` costs."""
    pos = 0
    for line in data.split(b"\n")[:-1]:
        match = _LINE.match(line)
        try:
            if match is None:
                decode(line)
            else:
                orjson.loads(line[match.end() : -1])
        except BadLine as exc:
            return pos, exc.reason
        except orjson.JSONDecodeError:
            return pos, "payload is not JSON"
        pos += len(line) + 1
    return None


def find_embedded_record(line: bytes) -> int:
    """Offset of a valid record that starts inside `line` after position 0, or -1.

    A torn line directly followed by a complete record has no newline between them; the
    record must not be mistaken for part of the garbage.
    """
    at = line.find(_PREFIX, 1)
    while at != -1:
        try:
            decode_header(line[at:])
            return at
        except BadLine:
            at = line.find(_PREFIX, at + 1)
    return -1


def records_in_line(line: bytes) -> Iterator[tuple[Header, bytes]]:
    """Every valid record a line (without its newline) holds, with its bytes: the line itself
    if it is one, then each record that starts inside it."""
    try:
        header = decode_header(line)
    except BadLine:
        pass
    else:
        yield header, line
    at = find_embedded_record(line)
    while at != -1:
        yield decode_header(line[at:]), line[at:]
        nxt = find_embedded_record(line[at:])
        at = at + nxt if nxt != -1 else -1


_MAX_DEPTH = 254  # orjson refuses deeper nesting (and so every circular reference)


def _explain(value: object, path: str, depth: int = 0) -> InvalidRecordError:
    """Find the first value orjson refused, for an error that names its key."""
    if depth > _MAX_DEPTH:
        return InvalidRecordError(f"nested more than {_MAX_DEPTH} levels deep (or circular)", path)
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return InvalidRecordError(f"key {key!r} is not a string", path)
            if _has_surrogate(key):
                return InvalidRecordError("key is not valid UTF-8 (lone surrogate)", f"{path}[{key!r}]")
            found = _explain_or_none(item, f"{path}[{key!r}]", depth + 1)
            if found is not None:
                return found
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found = _explain_or_none(item, f"{path}[{index}]", depth + 1)
            if found is not None:
                return found
    if isinstance(value, (dict, list, tuple)):  # every part alone is fine: the whole is too deep
        return InvalidRecordError(f"nested more than {_MAX_DEPTH} levels deep (or circular)", path)
    return _leaf_error(value, path)


def _explain_or_none(value: object, path: str, depth: int) -> InvalidRecordError | None:
    if depth > _MAX_DEPTH:
        return _explain(value, path, depth)
    try:
        orjson.dumps(value, option=_ORJSON_OPTS)
    except (TypeError, orjson.JSONEncodeError):
        return _explain(value, path, depth)
    return None


def _leaf_error(value: object, path: str) -> InvalidRecordError:
    if isinstance(value, str):
        return InvalidRecordError("string is not valid UTF-8 (lone surrogate)", path)
    if isinstance(value, int):
        return InvalidRecordError("integer does not fit in 64 bits", path)
    return InvalidRecordError(f"{type(value).__name__} is not JSON serializable", path)


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _refuse_non_finite(value: object, path: str) -> None:
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidRecordError(f"{value!r} is not valid JSON", path)
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_non_finite(item, f"{path}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _refuse_non_finite(item, f"{path}[{index}]")
