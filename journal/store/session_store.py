"""`DefaultSessionStore`: PraisonAI's JSON session-store API, backed by a `Journal`.

Strategy: every write is one append to the session's log (a message, a "meta" merge, a
"clear", or an all-or-nothing replace batch), never a rewrite of a JSON file, so the cost of
an append does not grow with the session and a crash never loses acknowledged messages.
Reads fold the log through `Journal.state`, which parses only bytes it has not seen, so two
stores (in one process or several) on one directory see each other's writes at once.
The documented JSON files (`messages.json`, `session_id.json`, `metadata.json`) are views
written by the compactor; `close()` brings them up to date.

Layout of the data (each message is one record; its timestamp is the record's `ts`):

- message record data: ``{"role", "content", "metadata": {...}}`` plus ``"tool_calls"`` and
  ``"tool_call_id"`` only when set.
- session metadata (`Journal.update_metadata`): one flat dict. ``agent_name``, ``user_id`` and
  ``agent_id`` are top-level keys that become `SessionData` attributes; every other key is a
  user field from `update_session_metadata` and appears in `SessionData.metadata`.

Bad input raises before anything is written and leaves the session usable: a role, content,
metadata, tool_calls or tool_call_id of the wrong type, or a value that is not JSON, raises
`InvalidRecordError` (a `ValueError`) naming the argument or key; an empty or unencodable
session id raises `InvalidSessionIdError`, a non-str id `TypeError`. Writes return True once
durable per the store's durability mode and raise a `JournalError` (e.g. `DurabilityError`)
when the data could not be made durable: they never return False.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import warnings
import weakref
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from ..compaction.protocol import CompactionReport, CompactionResult
from ..errors import InvalidRecordError, JournalError
from ..log.chat import llm_message, message_role
from ..log.gcpause import gc_paused
from ..log.state import SessionState
from ..native import Journal
from .session_data import SessionData, SessionMessage, iso_time, window_start

__all__ = ["DefaultSessionStore", "SessionData", "SessionMessage"]


class DefaultSessionStore:
    """Conversation sessions under `session_dir`, one append-only journal per session.

    A drop-in for PraisonAI's ``praisonaiagents.session.store.DefaultSessionStore``: change
    only the import line. Usable as a context manager; `close()` compacts and closes.

    Args:
        session_dir: the store directory, created if missing.
        durability: "batch" (default: group commit, each write returns after the fsync
            covering it), "always" (an fsync per write) or "none" (survives a process crash,
            not a power loss).
        **journal_options: further keyword arguments of `Journal` (``lock_timeout``,
            ``segment_bytes``, ``max_open_sessions``, ``fs``, ...).

    Raises:
        StoreRootError: `session_dir` is a file or cannot be written.
    """

    def __init__(
        self,
        session_dir: str | os.PathLike[str] = "./sessions",
        *,
        durability: str = "batch",
        **journal_options: Any,
    ) -> None:
        self.session_dir = os.fspath(session_dir)
        self._journal = Journal(self.session_dir, durability=durability, **journal_options)
        _OPEN_STORES.add(self)  # a store never closed still leaves its JSON files current at exit

    @property
    def journal(self) -> Journal:
        """The underlying `Journal`, for its native API (read, verify, repair, ...)."""
        return self._journal

    # -- writing -----------------------------------------------------------------------------

    def add_message(
        self,
        session_id: str,
        role: str,
        content: Any,
        metadata: dict[str, Any] | None = None,
        tool_calls: list[dict[str, Any]] | None = None,
        tool_call_id: str | None = None,
    ) -> bool:
        """Append one message to the session (created if new).

        Args:
            role: "user", "assistant", "system", "tool", ...
            content: the text (a list of content parts, or None for a tool-call turn, is
                accepted too).
            metadata: per-message metadata, stored as {} when None.
            tool_calls: on an assistant turn, the tool calls it requested.
            tool_call_id: on a "tool" result turn, the id of the call it answers.

        Returns:
            True once the message is durable per the store's durability mode.

        Raises:
            InvalidRecordError: an argument of the wrong type or a value that is not JSON.
            InvalidSessionIdError: the session id is empty or cannot name a directory.
            DurabilityError: the message could not be made durable.
        """
        data = message_data(role, content, metadata, tool_calls, tool_call_id)
        self._journal.append(session_id, data)
        return True

    def add_user_message(self, session_id: str, content: Any, metadata: dict[str, Any] | None = None) -> bool:
        """`add_message` with role "user"."""
        return self.add_message(session_id, "user", content, metadata)

    def add_assistant_message(
        self, session_id: str, content: Any, metadata: dict[str, Any] | None = None
    ) -> bool:
        """`add_message` with role "assistant"."""
        return self.add_message(session_id, "assistant", content, metadata)

    def set_chat_history(self, session_id: str, messages: Iterable[dict[str, Any]]) -> bool:
        """Replace the session's messages with `messages`, all or nothing, even after a crash.

        Each item is a dict with "role" and "content" (and optionally "metadata", "tool_calls",
        "tool_call_id"); the new messages are stamped with the time of this call.
        """
        items = [_message_from_dict(index, item) for index, item in enumerate(messages)]
        self._journal.replace_messages(session_id, items)
        return True

    def clear_session(self, session_id: str) -> bool:
        """Empty the session's history with a logged "clear" event; its metadata stays."""
        self._journal.clear(session_id)
        return True

    def set_agent_info(
        self, session_id: str, agent_name: str | None = None, user_id: str | None = None
    ) -> bool:
        """Record the agent name and/or user id of the session; empty values are ignored."""
        fields = {"agent_name": agent_name, "user_id": user_id}
        return self._merge_metadata(session_id, {k: v for k, v in fields.items() if v})

    def update_session_metadata(self, session_id: str, **fields: Any) -> bool:
        """Merge `fields` into the session's metadata; a value of None is ignored.

        ``agent_name``, ``user_id`` and ``agent_id`` set the `SessionData` attributes of the
        same name; other fields appear in `SessionData.metadata`.
        """
        return self._merge_metadata(session_id, {k: v for k, v in fields.items() if v is not None})

    def _merge_metadata(self, session_id: str, fields: dict[str, Any]) -> bool:
        if fields:
            self._journal.update_metadata(session_id, fields)
        else:
            self._journal.session_path(session_id)  # still refuse a bad id
        return True

    def delete_session(self, session_id: str) -> bool:
        """Remove the session and every file of it, lock included. True also when it did not
        exist (as in the JSON store): afterwards there is no such session."""
        self._journal.delete(session_id)
        return True

    # -- reading -----------------------------------------------------------------------------

    def get_session(self, session_id: str) -> SessionData:
        """The session's messages and info; an empty `SessionData` (nothing created on disk)
        for an unknown id."""
        return SessionData.from_state(session_id, self._journal.state(session_id))

    def get_chat_history(self, session_id: str, max_messages: int | None = None) -> list[dict[str, Any]]:
        """The history as LLM messages ({"role", "content"}, plus tool fields when set).

        Each call returns a new list of new dicts; the values inside them (a content given as
        a list of parts, the tool_calls) are the ones the store keeps for the session's later
        reads in this process: copy them before changing them.

        Args:
            max_messages: return only the last this many (None or 0: all), dropping leading
                tool results whose assistant tool call fell outside the window. The stored
                history is never truncated.
        """
        window_start([], max_messages)  # check the argument even for an unknown session
        state = self._journal._chat_state(session_id)
        if state is None:
            return []
        if state.chat is not None and not max_messages:  # made by a cold read, for this call
            return state.chat
        views = state.views()
        start = window_start([message_role(v) for v in views], max_messages) if max_messages else 0
        if state.chat is not None:
            return state.chat[start:]
        with gc_paused():
            return [llm_message(view) for view in views[start:]]

    def session_exists(self, session_id: str) -> bool:
        return self._journal.exists(session_id)

    def list_sessions(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Every session, newest first by last update, at most `limit` of them.

        Each entry has session_id (and its alias id), path (the session directory),
        created_at and updated_at (ISO-8601 strings), modified (a `datetime`, local time),
        message_count, agent_name, agent_id and user_id.
        """
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise ValueError(f"limit must be None or an int >= 0, not {limit!r}")
        found: list[tuple[float, dict[str, Any]]] = []
        for session_id in self._journal.sessions():
            try:
                state = self._journal.state(session_id)
            except JournalError as exc:  # one damaged session must not hide all the others
                warnings.warn(f"session {session_id!r} left out of list_sessions: {exc}", stacklevel=2)
                continue
            if state is not None:  # None: deleted since it was listed
                found.append((state.updated_at or 0.0, self._summary(session_id, state)))
        found.sort(key=lambda pair: pair[0], reverse=True)
        rows = [row for _, row in found]
        return rows if limit is None else rows[:limit]

    def _summary(self, session_id: str, state: SessionState) -> dict[str, Any]:
        updated = state.updated_at or 0.0
        return {
            "session_id": session_id,
            "id": session_id,
            "path": self._journal.session_path(session_id),
            "created_at": iso_time(state.created_at),
            "updated_at": iso_time(updated),
            "modified": datetime.fromtimestamp(updated),
            "message_count": len(state.messages),
            "agent_name": state.metadata.get("agent_name"),
            "agent_id": state.metadata.get("agent_id"),
            "user_id": state.metadata.get("user_id"),
        }

    # -- maintenance -------------------------------------------------------------------------

    def compact(self, session_id: str | None = None) -> CompactionResult | CompactionReport:
        """Write the documented JSON files (messages.json, session_id.json, metadata.json) of
        `session_id`, or of every session with new records when None, from the journal.

        Raises:
            CorruptionError: a segment to fold is damaged (nothing is published).
        """
        if session_id is None:
            return self._journal.compact_all()
        return self._journal.compact(session_id)

    def close(self) -> None:
        """Bring the documented JSON files up to date, then close the journal's files.

        The store stays usable: a later call reopens what it needs.
        """
        _OPEN_STORES.discard(self)
        try:
            self._journal.compact_all()
        finally:
            self._journal.close()

    def __enter__(self) -> DefaultSessionStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_OPEN_STORES: weakref.WeakSet[DefaultSessionStore] = weakref.WeakSet()


@atexit.register
def _close_open_stores() -> None:
    """The JSON file store wrote its files as it went; scripts that read messages.json expect
    them current after a program ends, even one that never called close()."""
    for store in list(_OPEN_STORES):
        with contextlib.suppress(Exception):  # at exit there is no caller left to tell
            store.close()


def message_data(
    role: Any,
    content: Any,
    metadata: Any = None,
    tool_calls: Any = None,
    tool_call_id: Any = None,
) -> dict[str, Any]:
    """The record data of one message; raise `InvalidRecordError` for a field of a wrong type."""
    _check_type("role", role, (str,), "a str")
    _check_type("content", content, (str, list, type(None)), "a str (or a list of content parts)")
    _check_type("metadata", metadata, (dict, type(None)), "a dict")
    _check_type("tool_calls", tool_calls, (list, type(None)), "a list of dicts")
    _check_type("tool_call_id", tool_call_id, (str, type(None)), "a str")
    data: dict[str, Any] = {"role": role, "content": content, "metadata": dict(metadata or {})}
    if tool_calls:
        data["tool_calls"] = tool_calls
    if tool_call_id is not None:
        data["tool_call_id"] = tool_call_id
    return data


def _check_type(name: str, value: Any, types: tuple[type, ...], expected: str) -> None:
    if not isinstance(value, types):
        raise InvalidRecordError(f"{name} must be {expected}, not {type(value).__name__}", name)


def _message_from_dict(index: int, item: Any) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise InvalidRecordError(f"a message must be a dict, not {type(item).__name__}", f"messages[{index}]")
    return message_data(
        item.get("role", "user"),
        item.get("content", ""),
        item.get("metadata"),
        item.get("tool_calls"),
        item.get("tool_call_id"),
    )
