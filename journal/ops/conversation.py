"""The two export formats as pure functions: a session's state to its document, and a document
back to the one batch of entries that makes the session again (FORMAT.md, "Export files").

Strategy: both formats carry every message as its record's data plus ``"timestamp"`` (the
record's ts), so role, content, metadata, tool fields and any other key come back exactly.
Times are kept to the microsecond, as the log keeps them: the archive writes them as numbers
(a float prints and parses back to itself), the portable format as ISO-8601 strings with six
decimals, parsed back through `Decimal` so no float rounding creeps in. Reading is tolerant of
the shapes the docs' recipe and PraisonAI write (ISO times, missing timestamps, PraisonAI's
session fields at the top level) and strict about types: anything else is a `BadDocument`
naming the spot. No I/O here.
"""

from __future__ import annotations

import calendar
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from ..log.record import MAX_TS, MESSAGE, META, MIN_TS, Record
from ..log.state import SessionState
from .protocol import Entry

ARCHIVE_VERSION = 1  # of the archive format; written as VERSION_KEY (the docs' readers ignore it)
VERSION_KEY = "journal_archive_version"
PORTABLE_VERSION = 1  # PraisonAI's portable format
JOURNAL_KEY = "_journal"  # a message whose own data holds "timestamp" or "_journal" keeps it here

# PraisonAI's session-level fields, which journal keeps as keys of the session metadata
# (`store.session_data` names them from here).
GATEWAY_KEY, RUNTIME_KEY, CHECKPOINT_KEY = "gateway_session_id", "runtime_state", "last_compaction"
RESERVED_KEYS = ("agent_name", "user_id", "agent_id", GATEWAY_KEY, RUNTIME_KEY, CHECKPOINT_KEY)
# Metadata keys PraisonAI's `SessionData.to_dict` also writes at the top level when present.
MIRRORED_KEYS = ("model", "llm", "total_tokens", "token_count", "cost", "source", "reasoning_effort")

_ARCHIVE_SESSION = ("session_id", "created_at", "updated_at", "metadata")
_PORTABLE_SESSION = ("session_id", "messages", "archived_messages", "created_at", "updated_at", "metadata")


class BadDocument(Exception):
    """Internal: a conversation that is not in an export's shape; `reason` says where and why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Conversation:
    """One session read from an export: what the batch that imports it is made of."""

    session_id: str
    metadata: dict[str, Any] = field(default_factory=dict)
    created: float | None = None
    updated: float | None = None
    messages: list[tuple[dict[str, Any], float | None]] = field(default_factory=list)  # (data, ts)

    def entries(self, fallback: float) -> list[Entry]:
        """The session as one batch: its metadata stamped with its creation time, each message
        with its own, then an empty "meta" at `updated` if that is not the last time already,
        so `SessionState.created_at`/`updated_at` come back as exported. A missing time is the
        one before it (the creation time, else the first message's, else `fallback`)."""
        first = next((ts for _, ts in self.messages if ts is not None), None)
        created = _first_of(self.created, first, self.updated, fallback)
        entries: list[Entry] = [(META, self.metadata, created)]
        last = created
        for data, ts in self.messages:
            last = ts if ts is not None else last
            entries.append((MESSAGE, data, last))
        if self.updated is not None and self.updated != last:
            entries.append((META, {}, self.updated))
        return entries


def _first_of(*times: float | None) -> float:
    return next(ts for ts in times if ts is not None)


# -- writing: a session's state as a document --------------------------------------------------


def message_document(record: Record) -> dict[str, Any]:
    """A message as exported: its data plus its record's ts as ``"timestamp"``. Data that has
    a "timestamp" (or "_journal") key of its own is kept whole under ``"_journal": {"data"}``."""
    data = record.data if isinstance(record.data, dict) else {}
    if "timestamp" not in data and JOURNAL_KEY not in data:
        return {**data, "timestamp": record.ts}
    visible = {k: v for k, v in data.items() if k not in ("timestamp", JOURNAL_KEY)}
    return {**visible, "timestamp": record.ts, JOURNAL_KEY: {"data": data}}


def archive_head(session_id: str, state: SessionState) -> dict[str, Any]:
    """The archive's ``session_metadata``: id, times as numbers, the metadata as the log has it."""
    return {
        "session_id": session_id,
        "created_at": state.created_at,
        "updated_at": state.updated_at,
        "metadata": dict(state.metadata),
    }


def archive_document(session_id: str, state: SessionState) -> dict[str, Any]:
    """One conversation of the archive format, whole (`export_archive` streams the same)."""
    messages = [message_document(record) for record in state.messages]
    return {
        "session_metadata": archive_head(session_id, state),
        "messages": messages,
        "message_count": len(messages),
    }


def portable_fields(state: SessionState) -> dict[str, Any]:
    """PraisonAI's session dict (`SessionData.to_dict`) but for ``session_id`` and
    ``messages``, which come first: times as exact ISO strings, the session fields at the top
    level, the rest of the metadata under ``"metadata"``, the mirrored keys at both."""
    meta = state.metadata
    fields: dict[str, Any] = {
        "created_at": iso_exact(state.created_at),
        "updated_at": iso_exact(state.updated_at),
        "agent_name": meta.get("agent_name"),
        "user_id": meta.get("user_id"),
        "metadata": {k: v for k, v in meta.items() if k not in RESERVED_KEYS},
        GATEWAY_KEY: meta.get(GATEWAY_KEY),
        "agent_id": meta.get("agent_id"),
        RUNTIME_KEY: meta.get(RUNTIME_KEY, {}),
        "archived_messages": [],
    }
    if CHECKPOINT_KEY in meta:
        fields[CHECKPOINT_KEY] = meta[CHECKPOINT_KEY]
    fields.update({key: meta[key] for key in MIRRORED_KEYS if key in meta})
    return fields


# -- reading: a document as a Conversation -------------------------------------------------------


def from_archive(session_id: Any, body: Any) -> Conversation:
    """A member of the archive's ``"conversations"``: ours, or the docs' recipe's (whose
    session_metadata is `SessionData.__dict__` dumped with ``default=str``)."""
    if not isinstance(session_id, str) or not session_id:
        raise BadDocument(f"conversation id {session_id!r} is not a non-empty string")
    where = f"conversation {session_id!r}"
    if not isinstance(body, dict):
        raise BadDocument(f"{where} is a JSON {_kind(body)}, not an object")
    head = _object(body.get("session_metadata"), f"{where}: session_metadata")
    if head.get("session_id", session_id) != session_id:
        raise BadDocument(f"{where}: session_metadata names session {head['session_id']!r}")
    messages = body.get("messages", [])
    if not isinstance(messages, list):
        raise BadDocument(f"{where}: messages is a JSON {_kind(messages)}, not an array")
    count = body.get("message_count", len(messages))
    if count != len(messages) or isinstance(count, bool):
        raise BadDocument(f"{where}: message_count is {count!r} but it holds {len(messages)} messages")
    # The docs' recipe dumps PraisonAI's fields at the top (`messages` and a non-dict checkpoint
    # only as str() of objects: of no use); ours has none there.
    fields = _fields(head, (*_ARCHIVE_SESSION, "messages", "archived_messages"))
    if not isinstance(fields.get(CHECKPOINT_KEY, {}), dict):
        del fields[CHECKPOINT_KEY]
    return _conversation(session_id, head, fields, messages, where)


def from_portable(index: int, body: Any) -> Conversation:
    """Element `index` of the portable format's ``"sessions"`` (PraisonAI's session dict)."""
    where = f"sessions[{index}]"
    if not isinstance(body, dict):
        raise BadDocument(f"{where} is a JSON {_kind(body)}, not an object")
    session_id = body.get("session_id")
    if not isinstance(session_id, str) or not session_id:
        raise BadDocument(f"{where} has no session_id string")
    where = f"{where} (session {session_id!r})"
    messages = []
    for key in ("archived_messages", "messages"):  # PraisonAI's retention moved the first aside
        part = body.get(key, [])
        if not isinstance(part, list):
            raise BadDocument(f"{where}: {key} is a JSON {_kind(part)}, not an array")
        messages += part
    metadata = body.get("metadata")
    fields = _fields(body, (*_PORTABLE_SESSION, *MIRRORED_KEYS))
    for key in MIRRORED_KEYS:  # the top-level copy counts only where metadata lacks the key
        if body.get(key) is not None and not (isinstance(metadata, dict) and key in metadata):
            fields[key] = body[key]
    return _conversation(session_id, body, fields, messages, where)


def _fields(body: dict[str, Any], known: tuple[str, ...]) -> dict[str, Any]:
    """The session fields stored at the top level (PraisonAI's agent_name, user_id, ...): each
    becomes a metadata key, as adoption does. None is no value; so is an empty object or array,
    but for the session fields journal knows (an empty runtime_state is PraisonAI's "none")."""
    fields: dict[str, Any] = {}
    for key, value in body.items():
        if key in known or value is None or (key == RUNTIME_KEY and value == {}):
            continue
        if key in RESERVED_KEYS or not (isinstance(value, (dict, list)) and not value):
            fields[key] = value
    return fields


def _conversation(
    session_id: str, body: dict[str, Any], fields: dict[str, Any], messages: list[Any], where: str
) -> Conversation:
    metadata = _object(body.get("metadata"), f"{where}: metadata")
    fields.update({k: v for k, v in metadata.items() if v is not None})  # None would remove a key
    conversation = Conversation(
        session_id,
        fields,
        created=parse_time(body.get("created_at"), f"{where}: created_at"),
        updated=parse_time(body.get("updated_at"), f"{where}: updated_at"),
    )
    for index, message in enumerate(messages):
        conversation.messages.append(_message(message, f"{where}: messages[{index}]"))
    return conversation


def _message(message: Any, where: str) -> tuple[dict[str, Any], float | None]:
    if not isinstance(message, dict):
        raise BadDocument(f"{where} is a JSON {_kind(message)}, not an object")
    kept = message.get(JOURNAL_KEY)
    if isinstance(kept, dict) and isinstance(kept.get("data"), dict):
        data = kept["data"]
    else:
        data = {k: v for k, v in message.items() if k != "timestamp"}
    if "role" in data and not isinstance(data["role"], str):
        raise BadDocument(f"{where}: role is a JSON {_kind(data['role'])}, not a string")
    content = data.get("content")
    if content is not None and not isinstance(content, (str, list)):
        raise BadDocument(f"{where}: content is a JSON {_kind(content)}, not a string or an array")
    return data, parse_time(message.get("timestamp"), f"{where}: timestamp")


def _object(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadDocument(f"{where} is a JSON {_kind(value)}, not an object")
    return value


def _kind(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


# -- times ----------------------------------------------------------------------------------------

_ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?\s*(Z|[+-]\d{2}:?\d{2})?"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def parse_time(value: Any, where: str) -> float | None:
    """Seconds since the epoch of a number or an ISO-8601 string (UTC when it has no zone),
    rounded to the microsecond as the log keeps it; None for None."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        ts = float(value)
    elif isinstance(value, str) and (match := _ISO.fullmatch(value.strip())):
        ts = _iso_seconds(match, value, where)
    else:
        raise BadDocument(f"{where} is not a time: {value!r:.60}")
    if not (math.isfinite(ts) and MIN_TS <= ts <= MAX_TS):
        raise BadDocument(f"{where} is not a time in the years 1 to 9999: {value!r:.60}")
    return float(f"{ts:.6f}")


def _iso_seconds(match: re.Match[str], value: str, where: str) -> float:
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    parts = (int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0))
    try:
        datetime(*parts)  # refuses the 31st of April and the like
    except ValueError as exc:
        raise BadDocument(f"{where} is not a time: {value!r:.60} ({exc})") from None
    seconds = calendar.timegm(parts)
    if zone and zone != "Z":
        digits = zone[1:].replace(":", "")
        seconds -= (int(digits[:2]) * 60 + int(digits[2:])) * 60 * (1 if zone[0] == "+" else -1)
    # Decimal: the fraction is added exactly, then rounded once to the nearest float.
    return float(Decimal(seconds) + Decimal("0." + (fraction or "0")))


def iso_exact(ts: float | None) -> str | None:
    """`ts` as ISO-8601 UTC with six decimals and a ``Z``: `parse_time` gives `ts` back exactly."""
    if ts is None:
        return None
    micros = int(Decimal(f"{ts:.6f}") * 1_000_000)
    moment = _EPOCH + timedelta(microseconds=micros)
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T"
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}.{moment.microsecond:06d}Z"
    )
