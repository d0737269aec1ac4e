"""Pure decoding of sessions other stores wrote, into the records journal logs for them.

Strategy: two shapes are known (FORMAT.md, "Adopted sessions"). The docs' layout is a directory
`<id>/` with `messages.json` (`{"messages": [...]}`), `session_id.json` and `metadata.json`, any
of them missing. PraisonAI's flat layout is one file `<safe_id>.json` holding the whole session,
its `archived_messages` (moved aside by its retention) before its `messages`. Each becomes one
"meta" record with the session's fields, stamped with its creation time, then one "message"
record a message, stamped with the message's own time. No I/O here: bytes in, records out, and
anything not understood is a `ForeignStoreError` naming the file.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import orjson

from ..errors import ForeignStoreError
from ..log.record import MAX_TS, MESSAGE, META, MIN_TS

DOCS_FILES = ("messages.json", "session_id.json", "metadata.json")
_SESSION_TIMES = ("created_at", "updated_at")
_PRAISONAI_SESSION = ("session_id", "messages", "archived_messages", "created_at", "updated_at", "metadata")


@dataclass
class Foreign:
    """One session of another store, as the records journal will log for it."""

    session_id: str
    records: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)  # (ts, kind, data)
    sources: list[str] = field(default_factory=list)  # the files it came from, as named on disk

    @property
    def messages(self) -> int:
        return sum(1 for _, kind, _ in self.records if kind == MESSAGE)


def praisonai_safe_id(session_id: str) -> str:
    """The file stem PraisonAI 1.7 gives a session id: every character but letters, digits,
    `-` and `_` becomes `_` (so different ids can share a file; the true id is inside)."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in session_id)


def parse_docs_layout(session_id: str, files: dict[str, bytes], fallback_ts: float) -> Foreign:
    """The session in the docs' layout whose files (by name, those present) are `files`."""
    info = _object(files, "session_id.json")
    metadata = _object(files, "metadata.json")
    messages_file = _object(files, "messages.json")
    raw_messages = messages_file.get("messages", [])
    if not isinstance(raw_messages, list):
        raise ForeignStoreError("messages.json", '"messages" is not a list')
    fields = {**metadata, **_dict_field(info, "metadata", "session_id.json")}
    for key, value in info.items():
        if key not in ("session_id", "metadata", *_SESSION_TIMES) and value is not None:
            fields[key] = value
    created = _time(info.get("created_at"), "session_id.json", "created_at")
    foreign = Foreign(session_id, sources=[name for name in DOCS_FILES if name in files])
    _add_session(foreign, fields, created, fallback_ts)
    _add_messages(foreign, raw_messages, "messages.json", "messages")
    _add_update(foreign, _time(info.get("updated_at"), "session_id.json", "updated_at"))
    return foreign


def parse_praisonai(name: str, raw: bytes, fallback_ts: float) -> Foreign:
    """The session in PraisonAI's flat file `name` (its bytes `raw`)."""
    body = _decode(raw, name)
    session_id = body.get("session_id")
    if not isinstance(session_id, str) or not session_id:
        raise ForeignStoreError(name, 'no "session_id" string: not a PraisonAI session file')
    for key in ("messages", "archived_messages"):
        if not isinstance(body.get(key, []), list):
            raise ForeignStoreError(name, f'"{key}" is not a list')
    fields = {k: v for k, v in body.items() if k not in _PRAISONAI_SESSION and v not in (None, {}, [])}
    fields.update(_dict_field(body, "metadata", name))
    _shift_checkpoint(fields, len(body.get("archived_messages", [])))
    foreign = Foreign(session_id, sources=[name])
    _add_session(foreign, fields, _time(body.get("created_at"), name, "created_at"), fallback_ts)
    _add_messages(foreign, body.get("archived_messages", []), name, "archived_messages")
    _add_messages(foreign, body.get("messages", []), name, "messages")
    _add_update(foreign, _time(body.get("updated_at"), name, "updated_at"))
    return foreign


def _shift_checkpoint(fields: dict[str, Any], archived: int) -> None:
    """PraisonAI's compaction checkpoint counts from its live messages; journal keeps the
    archived ones before them, so the index moves on by their number."""
    checkpoint = fields.get("last_compaction")
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("message_index"), int):
        fields["last_compaction"] = {**checkpoint, "message_index": checkpoint["message_index"] + archived}


def _add_session(foreign: Foreign, fields: dict[str, Any], created: float | None, fallback: float) -> None:
    foreign.records.append((created if created is not None else fallback, META, fields))


def _add_messages(foreign: Foreign, messages: list[Any], name: str, key: str) -> None:
    for index, message in enumerate(messages):
        where = f"{key}[{index}]"
        if not isinstance(message, dict):
            raise ForeignStoreError(name, f"{where} is not an object")
        if not isinstance(message.get("role"), str):
            raise ForeignStoreError(name, f"{where} has no string role")
        content = message.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise ForeignStoreError(name, f"{where} content is neither text nor a list of parts")
        data = {k: v for k, v in message.items() if k != "timestamp"}
        data.setdefault("metadata", {})
        ts = _time(message.get("timestamp"), name, f"{where}.timestamp")
        foreign.records.append((ts if ts is not None else foreign.records[-1][0], MESSAGE, data))


def _add_update(foreign: Foreign, updated: float | None) -> None:
    """A session updated after its last message (metadata changed) keeps that time."""
    if updated is not None and updated > max(ts for ts, _, _ in foreign.records):
        foreign.records.append((updated, META, {}))


def _object(files: dict[str, bytes], name: str) -> dict[str, Any]:
    return _decode(files[name], name) if name in files else {}


def _decode(raw: bytes, name: str) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ForeignStoreError(name, f"not JSON ({exc})") from None
    if not isinstance(body, dict):
        raise ForeignStoreError(name, f"a JSON {type(body).__name__}, not an object")
    return body


def _dict_field(body: dict[str, Any], key: str, name: str) -> dict[str, Any]:
    value = body.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ForeignStoreError(name, f'"{key}" is not an object')
    return {k: v for k, v in value.items() if v is not None}


_ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?"
    r"(Z|[+-]\d{2}:?\d{2})?"
)


def _time(value: Any, name: str, where: str) -> float | None:
    """Epoch seconds of a timestamp given as a number or an ISO-8601 string (UTC if no zone)."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        ts = float(value)
    elif isinstance(value, str) and (match := _ISO.fullmatch(value.strip())):
        ts = _iso_seconds(match, name, where)
    else:
        raise ForeignStoreError(name, f"{where} is not a time: {value!r}")
    if not (math.isfinite(ts) and MIN_TS <= ts <= MAX_TS):
        raise ForeignStoreError(name, f"{where} is out of range: {value!r}")
    return ts


def _iso_seconds(match: re.Match[str], name: str, where: str) -> float:
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        moment = datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            tzinfo=timezone.utc,
        )
    except ValueError as exc:
        raise ForeignStoreError(name, f"{where} is not a time: {exc}") from None
    offset = 0
    if zone and zone != "Z":
        digits = zone[1:].replace(":", "")
        offset = (int(digits[:2]) * 60 + int(digits[2:])) * 60 * (1 if zone[0] == "+" else -1)
    return moment.timestamp() - offset + (float("0." + fraction) if fraction else 0.0)
