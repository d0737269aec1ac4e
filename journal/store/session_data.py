"""`SessionMessage` and `SessionData`: the value objects `DefaultSessionStore` returns.

Strategy: plain (non-slots) dataclasses with the field names, defaults and dict shapes of
PraisonAI's JSON store, so user code that reads `session.__dict__`, calls `to_dict()` or
`get_chat_history()` keeps working. Built from a `SessionState` fold; no I/O here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..log.record import Record
from ..log.state import SessionState

# Session metadata keys that are attributes of `SessionData`, not user metadata (the session
# level fields of PraisonAI's file, kept in the log as "meta" records like any metadata), and
# the metadata keys `to_dict` also writes at the top level: named where the export maps them
# (re-exported: portable.py, praisonai_api.py and session_store.py import them from here).
from ..ops.conversation import CHECKPOINT_KEY as CHECKPOINT_KEY
from ..ops.conversation import GATEWAY_KEY as GATEWAY_KEY
from ..ops.conversation import MIRRORED_KEYS as MIRRORED_KEYS
from ..ops.conversation import RESERVED_KEYS as RESERVED_KEYS
from ..ops.conversation import RUNTIME_KEY as RUNTIME_KEY

TOOL_ROLE = "tool"


def iso_time(epoch: float | None = None) -> str:
    """`epoch` (default: now) as UTC ISO-8601 with milliseconds: "2024-01-15T10:30:00.000Z"."""
    moment = datetime.fromtimestamp(time.time() if epoch is None else epoch, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass
class SessionMessage:
    """One message of a session; `timestamp` is seconds since the epoch (the record's ts)."""

    role: str
    content: Any
    timestamp: float = field(default_factory=time.time)
    metadata: dict[str, Any] = field(default_factory=dict)
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """role/content/timestamp/metadata, plus the tool fields only when set."""
        data: dict[str, Any] = {
            "role": self.role,
            "content": self.content,
            "timestamp": self.timestamp,
            "metadata": self.metadata,
        }
        return _with_tool_fields(data, self.tool_calls, self.tool_call_id)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SessionMessage:
        """Tolerant of missing fields, like the JSON store it replaces."""
        return cls(
            role=data.get("role", "user"),
            content=data.get("content", ""),
            timestamp=data.get("timestamp", time.time()),
            metadata=data.get("metadata") or {},
            tool_calls=data.get("tool_calls"),
            tool_call_id=data.get("tool_call_id"),
        )

    @classmethod
    def from_record(cls, record: Record) -> SessionMessage:
        data = record.data if isinstance(record.data, dict) else {}
        return cls.from_dict({**data, "timestamp": record.ts})

    def to_llm_message(self) -> dict[str, Any]:
        """{"role", "content"}, plus tool_calls / tool_call_id when set."""
        return _with_tool_fields(
            {"role": self.role, "content": self.content}, self.tool_calls, self.tool_call_id
        )


def _with_tool_fields(
    data: dict[str, Any], tool_calls: list[dict[str, Any]] | None, tool_call_id: str | None
) -> dict[str, Any]:
    if tool_calls:
        data["tool_calls"] = tool_calls
    if tool_call_id is not None:
        data["tool_call_id"] = tool_call_id
    return data


@dataclass
class CompactionCheckpoint:
    """The summary of an in-run context compaction, anchored at `message_index` (the number of
    messages the session had then): `get_working_history` replays it, then the messages after."""

    summary: str
    message_index: int = 0
    role: str = "system"
    tokens_before: int = 0
    tokens_after: int = 0
    timestamp: float = field(default_factory=time.time)
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "summary": self.summary,
            "message_index": self.message_index,
            "role": self.role,
            "tokens_before": self.tokens_before,
            "tokens_after": self.tokens_after,
            "timestamp": self.timestamp,
            "metadata": self.metadata,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CompactionCheckpoint:
        return cls(
            summary=data.get("summary", ""),
            message_index=data.get("message_index", 0),
            role=data.get("role", "system"),
            tokens_before=data.get("tokens_before", 0),
            tokens_after=data.get("tokens_after", 0),
            timestamp=data.get("timestamp", time.time()),
            metadata=data.get("metadata") or {},
        )

    def as_message(self) -> dict[str, Any]:
        """The summary as an LLM message."""
        return {"role": self.role, "content": self.summary}


def window_start(roles: list[str], max_messages: int | None) -> int:
    """Index where the last `max_messages` begin, moved past leading orphan tool results.

    A window that starts on a "tool" message whose assistant tool call was cut off is an
    invalid transcript for LLM providers, so such results are dropped from the window.
    """
    if max_messages is not None and (not isinstance(max_messages, int) or isinstance(max_messages, bool)):
        raise TypeError(f"max_messages must be None or an int, not {type(max_messages).__name__}")
    if max_messages is not None and max_messages < 0:
        raise ValueError(f"max_messages must be >= 0 or None, not {max_messages}")
    if not max_messages or len(roles) <= max_messages:
        return 0
    start = len(roles) - max_messages
    while start < len(roles) and roles[start] == TOOL_ROLE:
        start += 1
    return start


@dataclass
class SessionData:
    """A session's messages and info. Times are ISO-8601 UTC strings, as in the JSON store."""

    session_id: str
    messages: list[SessionMessage] = field(default_factory=list)
    created_at: str = field(default_factory=iso_time)
    updated_at: str = field(default_factory=iso_time)
    agent_name: str | None = None
    user_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    gateway_session_id: str | None = None
    agent_id: str | None = None
    runtime_state: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    # Always empty: journal never moves messages out of `messages` (kept for the file shape).
    archived_messages: list[SessionMessage] = field(default_factory=list)
    last_compaction: CompactionCheckpoint | None = None

    @classmethod
    def from_state(cls, session_id: str, state: SessionState | None) -> SessionData:
        """The session as folded from its log; an empty session if `state` is None."""
        if state is None:
            return cls(session_id=session_id)
        meta = state.metadata
        return cls(
            session_id=session_id,
            messages=[SessionMessage.from_record(r) for r in state.messages],
            created_at=iso_time(state.created_at),
            updated_at=iso_time(state.updated_at),
            agent_name=meta.get("agent_name"),
            user_id=meta.get("user_id"),
            metadata={k: v for k, v in meta.items() if k not in RESERVED_KEYS},
            gateway_session_id=meta.get(GATEWAY_KEY),
            agent_id=meta.get("agent_id"),
            runtime_state=_dict_or_empty(meta.get(RUNTIME_KEY)),
            last_compaction=_checkpoint(meta.get(CHECKPOINT_KEY)),
        )

    def to_dict(self) -> dict[str, Any]:
        """The shape of PraisonAI's session file (and of an exported session)."""
        data: dict[str, Any] = {
            "session_id": self.session_id,
            "messages": [m.to_dict() for m in self.messages],
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "agent_name": self.agent_name,
            "user_id": self.user_id,
            "metadata": self.metadata,
            "gateway_session_id": self.gateway_session_id,
            "agent_id": self.agent_id,
            "runtime_state": self.runtime_state,
            "archived_messages": [m.to_dict() for m in self.archived_messages],
        }
        if self.last_compaction is not None:
            data[CHECKPOINT_KEY] = self.last_compaction.to_dict()
        data.update({key: self.metadata[key] for key in MIRRORED_KEYS if key in self.metadata})
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SessionData:
        """Tolerant like PraisonAI's: messages that are not objects are skipped, and the
        top-level copies of metadata keys (`MIRRORED_KEYS`) fill metadata where it lacks them."""
        metadata = dict(data.get("metadata") or {})
        for key in MIRRORED_KEYS:
            if key not in metadata and data.get(key) is not None:
                metadata[key] = data[key]
        return cls(
            session_id=data.get("session_id", ""),
            messages=_messages(data.get("messages")),
            created_at=data.get("created_at") or iso_time(),
            updated_at=data.get("updated_at") or iso_time(),
            agent_name=data.get("agent_name"),
            user_id=data.get("user_id"),
            metadata=metadata,
            gateway_session_id=data.get(GATEWAY_KEY),
            agent_id=data.get("agent_id"),
            runtime_state=_dict_or_empty(data.get(RUNTIME_KEY)),
            archived_messages=_messages(data.get("archived_messages")),
            last_compaction=_checkpoint(data.get(CHECKPOINT_KEY)),
        )

    def get_chat_history(self, max_messages: int | None = None) -> list[dict[str, Any]]:
        """The last `max_messages` (all if None or 0) as LLM messages, never opening on an
        orphan tool result."""
        start = window_start([m.role for m in self.messages], max_messages)
        return [m.to_llm_message() for m in self.messages[start:]]

    def get_working_history(self, max_messages: int | None = None) -> list[dict[str, Any]]:
        """The checkpoint's summary then the messages after it (all of `get_chat_history`
        without a checkpoint), at most `max_messages` with the summary always first."""
        checkpoint = self.last_compaction
        if checkpoint is None:
            return self.get_chat_history(max_messages)
        index = max(0, min(checkpoint.message_index, len(self.messages)))
        return working_window(
            checkpoint.as_message(), [m.to_llm_message() for m in self.messages[index:]], max_messages
        )


def working_window(
    summary: dict[str, Any], tail: list[dict[str, Any]], max_messages: int | None
) -> list[dict[str, Any]]:
    """`summary` then `tail`, cut to `max_messages` keeping the summary and never opening the
    rest on an orphan tool result (PraisonAI's `get_working_history`)."""
    history = [summary, *tail]
    if max_messages and len(history) > max_messages:
        body = tail[-(max_messages - 1) :] if max_messages > 1 else []
        while body and body[0].get("role") == TOOL_ROLE:
            body = body[1:]
        history = [summary, *body]
    return history


def _messages(items: Any) -> list[SessionMessage]:
    return (
        [SessionMessage.from_dict(m) for m in items if isinstance(m, dict)] if isinstance(items, list) else []
    )


def _dict_or_empty(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _checkpoint(value: Any) -> CompactionCheckpoint | None:
    return CompactionCheckpoint.from_dict(value) if isinstance(value, dict) and value else None
