"""Pure encode/decode of the compaction snapshot files (FORMAT.md, "Compaction"). No I/O here.

Strategy: `messages.json` is written as a stream. Its layout is fixed so that every
message is exactly one line inside the ``"messages"`` array:

    {
      "messages": [
        {"role":"user","content":"Hi","timestamp":"2024-01-15T10:30:15.000Z","_journal":{...}},
        {"role":"assistant",...}
      ],
      "total_messages": 2,
      "last_updated": "2024-01-15T10:30:18.000Z",
      "journal_seq": 41
    }

so a writer appends one line per message (and can restart the array after a "clear") and a
reader parses runs of whole lines, never one line at a time in Python: `decode_messages` cuts
a file held in memory into regions of about 256 KiB, and `MessagesReader` streams a file too
big to hold, so a 1 GB history is never held as one JSON document. Each line is the record's
data plus the documented ``"timestamp"`` plus ``"_journal"`` holding the exact seq/ts/more, so
the reader rebuilds the very `Record`s the log held. `session_id.json` and `metadata.json` are
small and written whole.
"""

from __future__ import annotations

import functools
import itertools
import re
import time
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from .record import MESSAGE, Record

JOURNAL_KEY = "_journal"
# The stamp "<seq>,<ts>[,<more>]" (FORMAT.md): seq and more as in the log grammar, ts as orjson
# prints a float in plain decimals.
_SEQ, _TS, _MORE = r"[1-9][0-9]{0,18}", r"-?(?:0|[1-9][0-9]{0,16})\.[0-9]{1,17}", r"[1-9][0-9]{0,8}"
_STAMP_SHAPE = f"{_SEQ},{_TS}(?:,{_MORE})?"
_STAMP = re.compile(f"({_SEQ}),({_TS})(?:,({_MORE}))?")
_STAMP_BYTES = re.compile(_STAMP_SHAPE.encode())
_STRING_STAMP_KEY = b',"_journal":"'
_STAMPS = re.compile(f"(?:{_STAMP_SHAPE}\n)*{_STAMP_SHAPE}")
_EXACT_KEYS = frozenset({"seq", "ts", "more", "keeps_timestamp", "data"})
HEAD = b'{\n  "messages": ['
_ELEMENT_INDENT = b"\n    "
_EMPTY_END = b'  "messages": [],'
_ARRAY_END = b"  ],\n"
# Parse this much of the array at a time: the objects orjson builds are still in the CPU cache
# when they become records, and its working memory is reused instead of grown per file.
REGION_BYTES = 256 * 1024


class BadSnapshot(Exception):
    """Internal: a snapshot file that does not have the layout `journal` writes."""


def iso(ts: float | None) -> str:
    """ISO-8601 UTC with milliseconds and a ``Z``, as the docs show; now if `ts` is None."""
    ts = time.time() if ts is None else ts
    seconds, ms = divmod(int(ts * 1000), 1000)
    return f"{_iso_seconds(seconds)}.{ms:03d}Z"


@functools.lru_cache(maxsize=4096)
def _iso_seconds(seconds: int) -> str:  # a chat's messages share seconds: format each once
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def encode_message(record: Record) -> bytes:
    """One message of the array, on one line, without separators."""
    data = record.data
    stamp = _stamp(record.seq, record.ts, record.more)
    if stamp is not None and isinstance(data, dict) and JOURNAL_KEY not in data and "timestamp" not in data:
        message = dict(data)
        message["timestamp"] = iso(record.ts)
        message[JOURNAL_KEY] = stamp.decode()
        return orjson.dumps(message)
    exact: dict[str, Any] = {"seq": record.seq, "ts": record.ts}
    if record.more:
        exact["more"] = record.more
    if isinstance(data, dict) and JOURNAL_KEY not in data:
        message = dict(data)
        if "timestamp" in data:
            exact["keeps_timestamp"] = True
        else:
            message["timestamp"] = iso(record.ts)
    else:  # not representable as "data plus two keys": keep the data whole
        message = dict(data) if isinstance(data, dict) else {"content": data}
        message.setdefault("timestamp", iso(record.ts))
        exact["data"] = data
    message[JOURNAL_KEY] = exact
    return orjson.dumps(message)


def _stamp(seq: int, ts: float, more: int) -> bytes | None:
    """The stamp string "<seq>,<ts>[,<more>]" of a record, or None if the ts does not print
    as plain decimals (then the object form is written)."""
    stamp = b"%d,%s,%d" % (seq, orjson.dumps(ts), more) if more else b"%d,%s" % (seq, orjson.dumps(ts))
    return stamp if _STAMP_BYTES.fullmatch(stamp) else None


_MAYBE_CLASHING = (b'"timestamp"', b'"_journal"', b"\\u")


def splice_message(payload: bytes, seq: int, ts: float, more: int) -> bytes | None:
    """`encode_message` without parsing the payload: its own bytes plus the two keys. None
    when the payload might already hold either key (even escaped): then parse it instead."""
    if not (payload.startswith(b"{") and payload.endswith(b"}")):
        return None
    if any(marker in payload for marker in _MAYBE_CLASHING):
        return None
    stamp = _stamp(seq, ts, more)
    if stamp is None:
        return None
    keys = b'"timestamp":"%s","_journal":"%s"}' % (iso(ts).encode(), stamp)
    return payload[:-1] + (b"," if payload[1:-1].strip() else b"") + keys


def copyable_line(line: bytes) -> bytes:
    """A message line of the previous snapshot as the next one holds it: as it is if it ends
    in a valid stamp string (checked without parsing the line), encoded again if its stamp is
    an object (format 1 wrote every stamp so: this gives a string where the data allows one).
    Raise `BadSnapshot` if its stamp does not read, so damage is not carried forward."""
    at = line.rfind(_STRING_STAMP_KEY)
    if (
        at >= 0
        and line.endswith(b'"}')
        and _STAMP_BYTES.fullmatch(line, at + len(_STRING_STAMP_KEY), len(line) - 2)
    ):
        return line
    return encode_message(decode_message(line))


def decode_message(line: bytes) -> Record:
    """The `Record` a line of `encode_message` stands for; raise `BadSnapshot`."""
    try:
        return message_record(orjson.loads(line))
    except orjson.JSONDecodeError:
        raise BadSnapshot(f"not a journal message line: {line[:80]!r}") from None


def message_record(message: Any) -> Record:
    """The `Record` a parsed message of messages.json stands for; raise `BadSnapshot`."""
    try:
        exact = message.pop(JOURNAL_KEY)
        if type(exact) is str:
            return _stamped_record(message, exact)
        seq, ts = int(exact["seq"]), float(exact["ts"])  # an int and a float come back as they are
    except (KeyError, TypeError, ValueError, AttributeError):
        raise BadSnapshot(f"not a journal message: {str(message)[:80]!r}") from None
    if len(exact) == 2:  # just seq and ts: a message appended alone
        message.pop("timestamp", None)
        return Record(seq, ts, MESSAGE, message)
    try:
        more = int(exact.get("more", 0))
    except (TypeError, ValueError):
        raise BadSnapshot(f"not a journal message: {str(message)[:80]!r}") from None
    if "data" in exact:
        data = exact["data"]
    else:
        if not exact.get("keeps_timestamp"):
            message.pop("timestamp", None)
        data = message
    # Positional: with keywords a call takes 0.32 us instead of 0.14, and every message of a
    # batch (a "more" count) comes this way.
    return Record(seq, ts, MESSAGE, data, more)


def _stamped_record(message: dict[str, Any], stamp: str) -> Record:
    match = _STAMP.fullmatch(stamp)
    if match is None:
        raise BadSnapshot(f"not a journal stamp: {stamp[:80]!r}")
    seq, ts, more = match.groups()
    message.pop("timestamp", None)
    return Record(int(seq), float(ts), MESSAGE, message, int(more) if more else 0)


def message_records(messages: list[Any]) -> list[Record]:
    """`message_record` of each parsed message. A run whose stamps are all valid strings
    (`_joined_stamps`: one regex for all of them) has their numbers parsed by one `orjson.loads`
    instead of a regex and three conversions a line."""
    joined = _joined_stamps(messages)
    try:  # the stamps' numbers are JSON numbers ("seq,ts[,more]" each): parse them as such
        stamps = None if joined is None else orjson.loads("[[" + joined.replace("\n", "],[") + "]]")
    except orjson.JSONDecodeError:  # not if the grammar holds; then let each line decide
        stamps = None
    if stamps is None:
        return [message_record(message) for message in messages]
    return [_stamped(message, stamp) for message, stamp in zip(messages, stamps, strict=True)]


def _stamped(message: dict[str, Any], stamp: list[Any]) -> Record:
    del message[JOURNAL_KEY]
    message.pop("timestamp", None)
    return Record(stamp[0], stamp[1], MESSAGE, message, stamp[2] if len(stamp) == 3 else 0)


def decode_messages(raw: bytes, region_bytes: int = REGION_BYTES) -> tuple[list[Record], dict[str, Any]]:
    """The records and the trailer of a whole `messages.json` held in memory; raise
    `BadSnapshot` for anything but the layout `journal` writes with at least one message (the
    caller then lets `MessagesReader` decide, as it does for files too big to hold)."""
    regions, trailer = _parsed_regions(raw, region_bytes)
    records: list[Record] = []
    for messages in regions:
        records += message_records(messages)
    return records, trailer


def _joined_stamps(messages: list[Any]) -> str | None:
    """The stamps of `messages` joined by newlines if every one is a valid stamp string, else
    None. One regex over all of them (about 0.2 us a line instead of `line_view`'s 0.3 and
    `_stamped_record`'s 0.7); a stamp holding a newline breaks the count. Only a dict takes a
    string key (orjson makes no other mapping), so each message is a dict."""
    try:
        joined = "\n".join([message[JOURNAL_KEY] for message in messages])
    except (KeyError, TypeError, IndexError):
        return None
    if joined.count("\n") != len(messages) - 1 or _STAMPS.fullmatch(joined) is None:
        return None
    return joined


def _parsed_regions(raw: bytes, region_bytes: int) -> tuple[Iterator[list[Any]], dict[str, Any]]:
    """The trailer of a whole `messages.json`, and its message array parsed a region at a
    time: cut into regions of about `region_bytes` after a line's comma, each parsed with one
    `orjson.loads` and no copy but the region's own. The array's end is looked for from the
    file's end, where the short trailer puts it."""
    end = raw.rfind(b"\n" + _ARRAY_END)  # the newline that ends the last message line
    if not raw.startswith(HEAD + b"\n") or end < len(HEAD):
        raise BadSnapshot("messages.json does not start with the journal layout")
    trailer = decode_trailer(raw[end + 1 + len(_ARRAY_END) :])

    def parsed() -> Iterator[list[Any]]:
        for region in _array_regions(raw, len(HEAD), end, region_bytes):
            try:
                yield orjson.loads(region)
            except orjson.JSONDecodeError:
                raise BadSnapshot("messages.json holds a line that is not JSON") from None

    return parsed(), trailer


def _array_regions(raw: bytes, start: int, end: int, region_bytes: int) -> Iterator[bytes]:
    """The message lines between `start` and `end` as JSON arrays of about `region_bytes`,
    each cut at a line's closing comma. A cut inside a message (which `journal` never writes
    over several lines) leaves a region that is not JSON, never a wrong one."""
    view = memoryview(raw)
    while start < end:
        cut = raw.find(b",\n", start + region_bytes, end)
        cut = end if cut == -1 else cut
        yield b"".join((b"[", view[start:cut], b"]"))
        start = cut + 1


def decode_trailer(rest: bytes) -> dict[str, Any]:
    """The fields after the messages array (`rest` is what follows its closing line)."""
    try:
        trailer = orjson.loads(b"{" + rest)
    except orjson.JSONDecodeError:
        raise BadSnapshot("messages.json has no valid trailer") from None
    if not isinstance(trailer, dict) or not isinstance(trailer.get("journal_seq"), int):
        raise BadSnapshot("messages.json has no journal_seq")
    return trailer


def separator(index: int) -> bytes:
    """What goes before message number `index` (0-based) of the array."""
    return _ELEMENT_INDENT if index == 0 else b"," + _ELEMENT_INDENT


def tail(count: int, last_updated: float | None, journal_seq: int) -> bytes:
    """The end of `messages.json` after `count` messages."""
    trailer = orjson.dumps(
        {"total_messages": count, "last_updated": iso(last_updated), "journal_seq": journal_seq},
        option=orjson.OPT_INDENT_2,
    )
    close = b"\n  ],\n" if count else b"],\n"
    return close + trailer[2:] + b"\n"  # the trailer's own "{\n" gives way to the array's end


def encode_messages(records: Iterable[Record], last_updated: float | None, journal_seq: int) -> bytes:
    """A whole `messages.json` in memory (tests and small sessions)."""
    parts = [HEAD]
    count = 0
    for count, record in enumerate(records, 1):
        parts += [separator(count - 1), encode_message(record)]
    parts.append(tail(count, last_updated, journal_seq))
    return b"".join(parts)


def iter_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The newline-terminated lines of a byte stream, newline included; a last piece
    without a newline is yielded as is."""
    rest = b""
    for chunk in chunks:
        data = rest + chunk if rest else chunk
        start = 0
        while True:
            newline = data.find(b"\n", start)
            if newline == -1:
                break
            yield data[start : newline + 1]
            start = newline + 1
        rest = data[start:]
    if rest:
        yield rest


class MessagesReader:
    """Streams the messages of a `messages.json`; `trailer` is set once they are all read.

    The array is cut at line boundaries into regions of about a chunk each: `records` parses a
    region with one `orjson.loads` (no per-line Python parsing), `lines` splits it for copying.
    """

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self.trailer: dict[str, Any] = {}

    def lines(self) -> Iterator[bytes]:
        """Each message's JSON (no indentation, no separator), in order."""
        for region in self._regions():
            for line in region.split(b"\n"):
                stripped = line.strip()
                if stripped:
                    yield stripped[:-1] if stripped.endswith(b",") else stripped

    def records(self) -> Iterator[Record]:
        for region in self._regions():
            body = region.rstrip().rstrip(b",")
            if not body:
                continue
            try:
                messages = orjson.loads(b"[" + body + b"]")
            except orjson.JSONDecodeError:
                raise BadSnapshot("messages.json holds a line that is not JSON") from None
            yield from message_records(messages)

    def _regions(self) -> Iterator[bytes]:
        """Runs of whole message lines (with their commas and newlines), then the trailer."""
        buffer, empty = self._read_head()
        if empty:
            self._read_trailer(buffer)
            return
        for chunk in itertools.chain([b""], self._chunks):  # the head's chunk may hold it all
            buffer += chunk
            cut = buffer.rfind(b"\n") + 1
            region, buffer = buffer[:cut], buffer[cut:]
            end = 0 if region.startswith(_ARRAY_END) else region.find(b"\n" + _ARRAY_END) + 1
            if end > 0 or region.startswith(_ARRAY_END):
                if end:
                    yield region[:end]
                self._read_trailer(region[end + len(_ARRAY_END) :] + buffer)
                return
            if region:
                yield region
        raise BadSnapshot("messages.json ends inside the messages array")

    def _read_head(self) -> tuple[bytes, bool]:
        """Consume the first two lines; return what follows and whether the array is empty."""
        buffer = b""
        while buffer.count(b"\n") < 2:
            chunk = next(self._chunks, None)
            if chunk is None:
                raise BadSnapshot("messages.json does not start with the journal layout")
            buffer += chunk
        first, second, rest = buffer.split(b"\n", 2)
        if first.rstrip() != b"{" or second.rstrip() not in (HEAD[2:], _EMPTY_END):
            raise BadSnapshot("messages.json does not start with the journal layout")
        return rest, second.rstrip() == _EMPTY_END

    def _read_trailer(self, rest: bytes) -> None:
        self.trailer = decode_trailer(rest + b"".join(self._chunks))


def agent_id(metadata: dict[str, Any]) -> Any:
    """The docs' "agent_id": the metadata's agent_id, else its agent_name, else null."""
    return metadata.get("agent_id", metadata.get("agent_name"))


def encode_session_info(
    session_id: str,
    metadata: dict[str, Any],
    created_at: float | None,
    updated_at: float | None,
    summary: tuple[int, int] | None = None,
) -> bytes:
    """`session_id.json` in the documented shape; with `summary` (snapshot seq, message
    count) also the ``"_journal"`` key a listing reads instead of the history (FORMAT.md)."""
    settings = metadata.get("settings")
    body = {
        "session_id": session_id,
        "agent_id": agent_id(metadata),
        "created_at": iso(created_at),
        "updated_at": iso(updated_at if updated_at is not None else created_at),
        "metadata": metadata,
        "settings": settings if isinstance(settings, dict) else {},
    }
    if summary is not None:
        seq, messages = summary
        body[JOURNAL_KEY] = {"seq": seq, "messages": messages, "created": created_at, "updated": updated_at}
    return orjson.dumps(body, option=orjson.OPT_INDENT_2) + b"\n"


def encode_metadata(metadata: dict[str, Any]) -> bytes:
    return orjson.dumps(metadata, option=orjson.OPT_INDENT_2) + b"\n"


def decode_metadata(raw: bytes) -> dict[str, Any]:
    try:
        metadata = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadSnapshot("metadata.json is not JSON") from None
    if not isinstance(metadata, dict):
        raise BadSnapshot("metadata.json is not an object")
    return metadata
