"""Pure decoding of a snapshot's message lines for a cold `get_chat_history` (FORMAT.md,
"Compaction"). No I/O here.

Strategy: a cold chat read needs each line's LLM view, not its `Record`: `decode_chat` parses
`messages.json` a region at a time (`snapshot._parsed_regions`), makes the chat dicts while
the region is in the CPU cache, and drops the parsed lines, keeping only the file's bytes in a
`Lines` that parses them again if records or views are ever asked for. `decode_lines` keeps
the parsed lines instead. Both refuse (`BadSnapshot`) any line not in the very form
`snapshot.encode_message` writes; the caller then decodes the file the strict way.
"""

from __future__ import annotations

import operator
from typing import Any

from .chat import llm_message
from .record import Record
from .snapshot import (
    _EXACT_KEYS,
    _STAMP,
    JOURNAL_KEY,
    REGION_BYTES,
    BadSnapshot,
    _joined_stamps,
    _parsed_regions,
    decode_messages,
    message_records,
)

_GET_STAMP = operator.itemgetter(JOURNAL_KEY)


class Lines:
    """A snapshot's message lines as `decode_lines` parsed and checked them, not made into
    records, and what each reads as for its role, content and tool fields (`line_view`).
    Never changed once made, so states share it; `records()` makes the records. Made by
    `unparsed` (a cold `get_chat_history`), it holds the checked bytes instead and parses
    them again only if the lines or views are asked for."""

    __slots__ = ("_count", "_lines", "_raw", "_verified", "_views")

    def __init__(self, lines: list[dict[str, Any]], views: list[Any]) -> None:
        self._lines: list[dict[str, Any]] | None = lines
        self._views: list[Any] | None = views
        self._raw, self._count, self._verified = b"", len(lines), False

    @classmethod
    def unparsed(cls, raw: bytes, count: int, verified: bool) -> Lines:
        """The `count` lines of `raw`, a whole messages.json `decode_lines` accepts."""
        made = cls([], [])
        made._lines, made._views, made._raw, made._count, made._verified = None, None, raw, count, verified
        return made

    def __len__(self) -> int:
        return self._count

    @property
    def lines(self) -> list[dict[str, Any]]:
        if self._lines is None:
            self._parse()
        assert self._lines is not None
        return self._lines

    @property
    def views(self) -> list[Any]:
        if self._views is None:
            self._parse()
        assert self._views is not None
        return self._views

    def _parse(self) -> None:
        # The same bytes that were checked: they parse the same (two threads may both parse).
        parsed, _ = decode_lines(self._raw, verified=self._verified)
        self._lines, self._views = parsed.lines, parsed.views

    def records(self) -> list[Record]:
        """The `Record` each line stands for; the lines are left as they are."""
        if self._lines is None:  # the bytes parse straight into records, no copy needed
            return decode_messages(self._raw)[0]
        return message_records([dict(line) for line in self._lines])


def decode_lines(
    raw: bytes,
    region_bytes: int = REGION_BYTES,
    chat: list[dict[str, Any]] | None = None,
    verified: bool = False,
) -> tuple[Lines, dict[str, Any]]:
    """`decode_messages` for a cold `get_chat_history`: the message lines as parsed and
    checked, not made into records, and into `chat`, if given, `llm_message` of each, made
    while its region is still in the CPU cache. Raise `BadSnapshot` as `decode_messages`
    does, and also for any line not in the very form `encode_message` writes (the caller then
    decodes the file the strict way). `verified`: `raw` has the xxh3 compaction recorded for
    it, so its lines are the ones `encode_message` wrote (`_string_stamps`)."""
    regions, trailer = _parsed_regions(raw, region_bytes)
    lines: list[dict[str, Any]] = []
    views: list[Any] = []
    for messages in regions:
        stamped = (verified and _string_stamps(messages)) or _joined_stamps(messages) is not None
        region_views = messages if stamped else [line_view(message) for message in messages]
        if chat is not None:
            chat += [llm_message(view) for view in region_views]
        lines += messages
        views += region_views
    return Lines(lines, views), trailer


def decode_chat(
    raw: bytes, chat: list[dict[str, Any]], region_bytes: int = REGION_BYTES, verified: bool = False
) -> tuple[Lines, dict[str, Any]]:
    """`decode_lines` for a cold `get_chat_history`, keeping only `chat` (`llm_message` of
    each line, appended) and `raw`: the lines of each region are dropped once their chat
    dicts are made, so the next region reuses their memory (no fresh pages to fault in) and
    the cyclic collector never walks them (together about a third of a cold read). The
    `Lines` returned parse `raw` again if records or views are ever needed (`Journal.state`
    after a cold chat read). Raise `BadSnapshot` as `decode_lines` does."""
    regions, trailer = _parsed_regions(raw, region_bytes)
    count = 0
    for messages in regions:
        stamped = (verified and _string_stamps(messages)) or _joined_stamps(messages) is not None
        views = messages if stamped else [line_view(message) for message in messages]
        chat += [llm_message(view) for view in views]
        count += len(messages)
    return Lines.unparsed(raw, count, verified), trailer


def _string_stamps(messages: list[Any]) -> bool:
    """Is every message's stamp a string? For a messages.json whose hash is the one
    compaction recorded, that is all `_joined_stamps` checks that is not known already
    (`_stamp` checked each stamp's grammar as it wrote it), in one C-level pass (0.3 ms for
    10,000 lines instead of 2.5). A message that is not a dict, or has no stamp, says no."""
    try:
        return set(map(type, map(_GET_STAMP, messages))) == {str}
    except (KeyError, TypeError, IndexError):
        return False


def line_view(line: Any) -> Any:
    """What a parsed line of `encode_message` reads as for its role, content and tool fields:
    the line itself (its two added keys are neither), or the data it keeps whole. Raise
    `BadSnapshot` for anything but the form `encode_message` writes."""
    try:
        exact = line[JOURNAL_KEY]
        if type(exact) is str and _STAMP.fullmatch(exact) and type(line) is dict:
            return line
        seq, ts, size = exact["seq"], exact["ts"], len(exact)
    except (KeyError, TypeError, IndexError):
        raise BadSnapshot(f"not a journal message: {str(line)[:80]!r}") from None
    if type(seq) is int and type(ts) is float and type(line) is dict:
        if size == 2 or (size == 3 and type(exact.get("more")) is int):
            return line
        if (
            exact.keys() <= _EXACT_KEYS
            and type(exact.get("more", 0)) is int
            and exact.get("keeps_timestamp", True) is True
        ):
            return exact.get("data", line)
    raise BadSnapshot(f"not a journal message: {str(line)[:80]!r}")
