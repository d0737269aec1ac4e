"""Pure folding of records into a session's current state (messages, metadata, times).

Strategy: the log is the truth; a session's state is `fold(records)`. A "clear" record empties
the message list, a "meta" record merges its fields into the metadata (a field set to None is
removed), an "edit" record changes the last message if it is the partial one it names
(`log.edit`), a "pop" record removes the last message if it is the one it names (`log.pop`),
"seal" and "lost" records carry no user data. The same fold serves reads, the
`DefaultSessionStore` facade and the compactor's snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .chat import llm_message
from .coldread import Lines
from .edit import applies, apply_edit
from .gcpause import gc_paused
from .pop import pop_applies
from .record import CLEAR, EDIT, LOST, MESSAGE, META, POP, SEAL, Record


@dataclass
class SessionState:
    """The current messages and metadata of one session, up to `last_seq`."""

    messages: list[Record] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: float | None = None
    updated_at: float | None = None
    last_seq: int = 0
    # Internal, for `get_chat_history` (never in a state `Journal.state` returns):
    # - `lines`: the snapshot's message lines as parsed and checked (coldread.decode_lines),
    #   not yet made into records: the messages are those lines, then `messages`. Never
    #   changed in place, so copies share it.
    # - `chat`: `llm_message` of every message, made while the snapshot was parsed (one pass
    #   over data still in the CPU cache, not two) and handed to the first `hand_off`
    #   that asks for it, which keeps copies of them as `llm`; any other drops it.
    # - `llm`: the same, made by the next `hand_off` that asks for a chat and kept up to date
    #   by `apply`, so that later ones copy these dicts (one C call each) instead of making
    #   them again from every message. Never handed out: a caller may change its dicts.
    lines: Lines | None = field(default=None, repr=False, compare=False)
    chat: list[dict[str, Any]] | None = field(default=None, repr=False, compare=False)
    llm: list[dict[str, Any]] | None = field(default=None, repr=False, compare=False)

    def apply(self, record: Record) -> None:
        self.last_seq = record.seq
        if record.kind in (SEAL, LOST):
            return
        if self.created_at is None:
            self.created_at = record.ts
        self.updated_at = record.ts
        if record.kind == MESSAGE:
            self.messages.append(record)
            if self.chat is not None:
                self.chat.append(llm_message(record.data))
            if self.llm is not None:
                self.llm.append(llm_message(record.data))
        elif record.kind == CLEAR:
            self.messages, self.lines = [], None
            if self.chat is not None:
                self.chat = []
            if self.llm is not None:
                self.llm = []
        elif record.kind == META:
            merge_metadata(self.metadata, record.data)
        elif record.kind == EDIT:
            self._edit(record)
        elif record.kind == POP:
            self._pop(record)

    def _last_message(self) -> Record | None:
        """The last message, made a record first if it is still a snapshot line."""
        if self.lines is not None and not self.messages:
            with gc_paused():
                self.messages = self.lines.records()
            self.lines = None
        return self.messages[-1] if self.messages else None

    def _pop(self, record: Record) -> None:
        """Fold a pop record (`log.pop`): the last message goes, if it is the one it names."""
        if pop_applies(record.data, self._last_message()):
            self.messages.pop()
            for chat in (self.chat, self.llm):
                if chat is not None:
                    chat.pop()

    def _edit(self, record: Record) -> None:
        """Fold an edit record into the last message (`log.edit`), if it applies to it."""
        last = self._last_message()
        if last is None or not applies(record.data, last):
            return
        edited = apply_edit(record.data, last, record.ts)
        if edited is None:
            self.messages.pop()
        else:
            self.messages[-1] = edited
        for chat in (self.chat, self.llm):
            if chat is None:
                continue
            if edited is None:
                chat.pop()
            else:
                chat[-1] = llm_message(edited.data)

    def copy(self) -> SessionState:
        """A copy whose lists and metadata can be changed without touching this state."""
        return SessionState(
            messages=list(self.messages),
            metadata=dict(self.metadata),
            created_at=self.created_at,
            updated_at=self.updated_at,
            last_seq=self.last_seq,
            lines=self.lines,
        )

    def hand_off(self, chat: bool = False) -> SessionState:
        """Internal: a `copy` for a reader. With `chat` (for `get_chat_history`) the copy
        keeps `lines` and has `chat`: the snapshot's, if a cold read just made it, else
        copies of `llm`'s dicts (made now if there is none), so no two callers share them.
        Without, the snapshot lines are made into records first, here, so later copies find
        them made, and the copy is what `Journal.state` documents."""
        if self.lines is not None and not chat:
            with gc_paused():
                self.messages = self.lines.records() + self.messages
            self.lines = None
        taken, self.chat = self.chat, None
        copy = self.copy()
        if chat and taken is not None:
            copy.chat = taken
            if self.llm is None:  # copied before the caller may change them; the lines are
                with gc_paused():  # no longer parsed (`coldread.decode_chat`) to make it later
                    self.llm = list(map(dict.copy, taken))
        elif chat:
            with gc_paused():
                if self.llm is None:
                    self.llm = [llm_message(view) for view in self.views()]
                copy.chat = list(map(dict.copy, self.llm))
        return copy

    def views(self) -> list[Any]:
        """What each message reads as for its role, content and tool fields, in order: its
        data, or for a snapshot line one that reads the same (`coldread.Lines`)."""
        views = self.lines.views if self.lines is not None else []
        return views + [record.data for record in self.messages]


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
