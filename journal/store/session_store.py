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
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..compaction.protocol import CompactionReport, CompactionResult
from ..compaction.views import with_view_lag
from ..log.chat import llm_message, message_role
from ..log.gcpause import gc_paused
from ..log.record import CLEAR, MESSAGE, META, encode_payload
from ..native import Journal
from . import listing
from .messages import message_data, message_from_dict
from .mirror import MirrorWriter, mirror_records
from .portable import ImportReport, PortableMixin
from .praisonai_api import PraisonApiMixin
from .recall import RecallMixin, SessionHit, SessionSummary
from .records import append_records
from .session_data import (
    CHECKPOINT_KEY,
    CompactionCheckpoint,
    SessionData,
    SessionMessage,
    window_start,
)
from .streaming import StreamingMixin

if TYPE_CHECKING:
    from ..ops.protocol import Progress
    from ..ops.transfer import ExportReport, TransferReport

__all__ = [
    "CompactionCheckpoint",
    "DefaultSessionStore",
    "ImportReport",
    "SessionData",
    "SessionHit",
    "SessionMessage",
    "SessionSummary",
    "message_data",
]

DEFAULT_MAX_MESSAGES = 100
RETENTIONS = ("compact", "truncate", "keep_all")


class DefaultSessionStore(StreamingMixin, PraisonApiMixin, RecallMixin, PortableMixin):
    """Conversation sessions under `session_dir`, one append-only journal per session.

    A drop-in for PraisonAI's ``praisonaiagents.session.store.DefaultSessionStore`` (1.7 API):
    change only the import line. Usable as a context manager; `close()` compacts and closes.
    The full history is always kept: `retention` and `active_window` only shape what
    `get_chat_history` returns.

    Args:
        session_dir: the store directory, created if missing.
        max_messages: the default limit of `get_working_history` and of the window.
        lock_timeout: seconds to wait for a session lock before `LockTimeout`.
        retention: "keep_all" (the default, unless `max_messages` is not 100: then
            "truncate", as in PraisonAI), "truncate" or "compact": with either of the last two,
            `get_chat_history` without `max_messages` returns the last `active_window` messages.
        active_window: the window of "truncate"/"compact" (default `max_messages`; None or
            <= 0: no window).
        mirror: an optional sink with PraisonAI's `SessionMirrorProtocol` (`append(sid,
            records)`): persisted messages are also handed to it on a background thread.
        cache_maxsize: how many sessions are kept open and folded in memory (0: the
            journal's default, 256).
        durability: "batch" (default: group commit, each write returns after the fsync
            covering it), "always" (an fsync per write) or "none" (survives a process crash,
            not a power loss).
        view_lag: messages.json, session_id.json and metadata.json of the sessions this
            store writes hold every message older than this many seconds (a background
            thread compacts them; a messages.json over 8 MiB trails proportionally more);
            None: only `close()`, `compact()` and the compaction policy write them.
        read_only: list, read and export a store this process cannot or must not write
            (`Journal`'s `read_only`): no view thread, `close()` writes nothing, and every
            write raises `ReadOnlyError`.
        **journal_options: further keyword arguments of `Journal` (``lock_timeout``,
            ``segment_bytes``, ``max_open_sessions``, ``fs``, ...).

    Raises:
        StoreRootError: `session_dir` is a file or cannot be written (read-only: is missing).
    """

    def __init__(
        self,
        session_dir: str | os.PathLike[str] | None = "./sessions",
        max_messages: int = DEFAULT_MAX_MESSAGES,
        lock_timeout: float = 5.0,
        retention: str | None = None,
        active_window: int | None = None,
        mirror: Any = None,
        cache_maxsize: int = 256,
        *,
        durability: str = "batch",
        view_lag: float | None = 10.0,
        read_only: bool = False,
        **journal_options: Any,
    ) -> None:
        if retention is None:
            retention = "truncate" if max_messages != DEFAULT_MAX_MESSAGES else "keep_all"
        if retention not in RETENTIONS:
            raise ValueError(f"Invalid retention {retention!r}; expected one of {', '.join(RETENTIONS)}")
        self.session_dir = os.fspath(session_dir if session_dir is not None else "./sessions")
        self.max_messages, self.lock_timeout, self.retention = max_messages, lock_timeout, retention
        self.active_window = active_window if active_window is not None else max_messages
        if cache_maxsize and cache_maxsize > 0:
            journal_options.setdefault("max_open_sessions", cache_maxsize)
        # The views (messages.json, ...) of the sessions written here trail by at most view_lag s.
        view_lag = None if read_only else view_lag
        journal_options["compaction"] = with_view_lag(journal_options.get("compaction"), view_lag)
        self._journal = Journal(
            self.session_dir,
            durability=durability,
            lock_timeout=lock_timeout,
            read_only=read_only,
            **journal_options,
        )
        self._mirror_writer = MirrorWriter(mirror) if mirror is not None else None
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
            content: the text (a list of content parts is accepted too; None only on an
                assistant message with tool_calls, a turn that only calls tools).
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
        # `Journal.append` without its checks of the message, which `message_data` made.
        journal = self._journal
        journal._append(
            session_id, [(MESSAGE, encode_payload(data, journal.options.max_record_bytes), None)], None
        )
        if self._mirror_writer is not None:
            self._mirror_messages(session_id, [SessionMessage.from_dict(data)])
        return True

    def _mirror_messages(self, session_id: str, messages: list[SessionMessage]) -> None:
        """Hand persisted messages to the mirror, if there is one (never fails a write)."""
        if self._mirror_writer is not None:
            self._mirror_writer.enqueue(session_id, mirror_records(session_id, messages))

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
        "tool_call_id"); a missing or None content is "" (None stays on an assistant tool-call
        turn). The new messages are stamped with the time of this call. The compaction
        checkpoint, which indexed the old messages, is removed in the same batch.
        """
        items = [message_from_dict(index, item) for index, item in enumerate(messages)]
        records = [(CLEAR, {}), *self._drop_checkpoint(session_id), *((MESSAGE, item) for item in items)]
        append_records(self._journal, session_id, records)
        self._mirror_messages(session_id, [SessionMessage.from_dict(item) for item in items])
        return True

    def clear_session(self, session_id: str) -> bool:
        """Empty the session's history with a logged "clear" event; its metadata stays, but for
        the compaction checkpoint, removed in the same batch."""
        append_records(self._journal, session_id, [(CLEAR, {}), *self._drop_checkpoint(session_id)])
        return True

    def _drop_checkpoint(self, session_id: str) -> list[tuple[str, Any]]:
        """The record removing the session's checkpoint, if it has one."""
        state = self._journal.state(session_id)
        return (
            [(META, {CHECKPOINT_KEY: None})] if state is not None and CHECKPOINT_KEY in state.metadata else []
        )

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
            max_messages: return only the last this many (0: all; None: all, or the last
                `active_window` with retention "truncate" or "compact"), dropping leading
                tool results whose assistant tool call fell outside the window. The stored
                history is never truncated.
        """
        window_start([], max_messages)  # check the argument even for an unknown session
        if max_messages is None and self.retention != "keep_all" and (self.active_window or 0) > 0:
            max_messages = self.active_window
        state = self._journal._chat_state(session_id)
        if state is None:
            return []
        chat = state.chat  # new dicts made for this call (`SessionState.hand_off`)
        if chat is None:
            with gc_paused():
                chat = [llm_message(view) for view in state.views()]
        if not max_messages:
            return chat
        # A chat message's role reads as its message's does (`message_role`): the window is
        # found without the views, which a cold read no longer keeps parsed.
        return chat[window_start([message_role(m) for m in chat], max_messages) :]

    def session_exists(self, session_id: str) -> bool:
        return self._journal.exists(session_id)

    def list_sessions(self, limit: int | None = 50) -> list[dict[str, Any]]:
        """The `limit` (default 50, as PraisonAI's; None: all) most recently updated
        sessions, newest first, read from the views and live logs, not the histories.

        Each entry has session_id (and its alias id), path (the session directory),
        created_at and updated_at (ISO-8601 strings), modified (a `datetime`, local time),
        message_count, agent_name, agent_id and user_id, and PraisonAI's title, source,
        parent_id, parent_session_id, agent_key, model, total_tokens and cost from the
        session metadata (None when absent). A damaged session is left out with a warning.
        """
        return listing.list_sessions(self._journal, limit)

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

    def export_archive(
        self,
        path: str | os.PathLike[str],
        sessions: Iterable[str] | None = None,
        *,
        format: str = "archive",
        progress: Progress | None = None,
    ) -> ExportReport:
        """The docs' `export_conversations_to_archive`, streamed: `Journal.export_archive`."""
        return self._journal.export_archive(path, sessions, format=format, progress=progress)

    def import_archive(
        self, path: str | os.PathLike[str], *, on_conflict: str = "skip", progress: Progress | None = None
    ) -> TransferReport:
        """The docs' `import_conversations_from_archive`, exact and idempotent:
        `Journal.import_archive`."""
        return self._journal.import_archive(path, on_conflict=on_conflict, progress=progress)

    def close(self) -> None:
        """Bring the documented JSON files of the sessions this store wrote up to date (not
        the whole store's), then close the journal's files.

        The store stays usable: a later call reopens what it needs.
        """
        _OPEN_STORES.discard(self)
        try:
            self._journal.compact_written()
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
