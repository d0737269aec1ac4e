"""Pure folding of records into a session's current state (messages, metadata, times).

Strategy: the log is the truth; a session's state is `fold(records)`. A "clear" record empties
the message list, a "meta" record merges its fields into the metadata (a field set to None is
removed), "seal" and "lost" records carry no user data. The same fold serves reads, the
`DefaultSessionStore` facade and the compactor's snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .record import CLEAR, LOST, MESSAGE, META, SEAL, Record


@dataclass
class SessionState:
    """The current messages and metadata of one session, up to `last_seq`."""

    messages: list[Record] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: float | None = None
    updated_at: float | None = None
    last_seq: int = 0

    def apply(self, record: Record) -> None:
        self.last_seq = record.seq
        if record.kind in (SEAL, LOST):
            return
        if self.created_at is None:
            self.created_at = record.ts
        self.updated_at = record.ts
        if record.kind == MESSAGE:
            self.messages.append(record)
        elif record.kind == CLEAR:
            self.messages = []
        elif record.kind == META:
            merge_metadata(self.metadata, record.data)

    def copy(self) -> SessionState:
        return SessionState(
            messages=list(self.messages),
            metadata=dict(self.metadata),
            created_at=self.created_at,
            updated_at=self.updated_at,
            last_seq=self.last_seq,
        )


def merge_metadata(metadata: dict[str, Any], fields: Any) -> None:
    if isinstance(fields, dict):
        for key, value in fields.items():
            if value is None:
                metadata.pop(key, None)
            else:
                metadata[key] = value


def fold(records: Iterable[Record], state: SessionState | None = None) -> SessionState:
    state = state if state is not None else SessionState()
    for record in records:
        state.apply(record)
    return state
