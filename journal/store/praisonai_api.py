"""The rest of PraisonAI 1.7's store API: checkpoints, session fields, look-ups, runtime state.

Strategy: every session-level field (title, gateway_session_id, agent_id, runtime_state,
last_compaction) is a key of the session metadata, written with `Journal.update_metadata` as
one "meta" record: nothing lives outside the log. A field that is a dict (runtime_state, a
metadata map) is written whole, merged here from the current state. Look-ups by agent or
gateway fold each session, as PraisonAI reads each file.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..errors import JournalError
from ..native import Journal
from .mirror import MirrorWriter
from .session_data import CHECKPOINT_KEY, GATEWAY_KEY, RUNTIME_KEY, SessionData, working_window


class PraisonApiMixin:
    """PraisonAI 1.7's store methods beyond the JSON store's basic ones."""

    _journal: Journal
    max_messages: int
    _mirror_writer: MirrorWriter | None

    if TYPE_CHECKING:

        def get_session(self, session_id: str) -> SessionData: ...

        def get_chat_history(
            self, session_id: str, max_messages: int | None = None
        ) -> list[dict[str, Any]]: ...

        def _merge_metadata(self, session_id: str, fields: dict[str, Any]) -> bool: ...

    # -- compaction checkpoint -----------------------------------------------------------------

    def append_compaction_checkpoint(
        self,
        session_id: str,
        summary: str,
        *,
        role: str = "system",
        tokens_before: int = 0,
        tokens_after: int = 0,
        metadata: dict[str, Any] | None = None,
    ) -> bool:
        """Record an in-run compaction's summary, anchored at the current end of the history
        (replacing any earlier checkpoint). A blank summary writes nothing and returns False."""
        summary = summary or ""
        if not summary.strip():
            return False
        state = self._journal.state(session_id)
        checkpoint = {
            "summary": summary,
            "message_index": len(state.messages) if state is not None else 0,
            "role": role,
            "tokens_before": tokens_before,
            "tokens_after": tokens_after,
            "timestamp": time.time(),
            "metadata": dict(metadata or {}),
        }
        return self._merge_metadata(session_id, {CHECKPOINT_KEY: checkpoint})

    def get_working_history(self, session_id: str, max_messages: int | None = None) -> list[dict[str, Any]]:
        """The checkpoint's summary then the messages after it, at most `max_messages` (default
        the store's `max_messages`); `get_chat_history` of as many when there is no checkpoint."""
        limit = max_messages or self.max_messages
        state = self._journal.state(session_id)
        checkpoint = state.metadata.get(CHECKPOINT_KEY) if state is not None else None
        if not isinstance(checkpoint, dict) or not checkpoint:
            return self.get_chat_history(session_id, limit)
        session = self.get_session(session_id)
        assert session.last_compaction is not None
        index = max(0, min(session.last_compaction.message_index, len(session.messages)))
        tail = [m.to_llm_message() for m in session.messages[index:]]
        return working_window(session.last_compaction.as_message(), tail, limit)

    # -- session fields ------------------------------------------------------------------------

    def merge_session_metadata_map(
        self, session_id: str, key: str, updates: dict[str, Any], *, defaults: dict[str, Any] | None = None
    ) -> bool:
        """`metadata[key] = {**defaults, **current (if a dict), **updates}`."""
        state = self._journal.state(session_id)
        current = state.metadata.get(key) if state is not None else None
        merged = {**(defaults or {}), **(current if isinstance(current, dict) else {}), **updates}
        return self._merge_metadata(session_id, {key: merged})

    def rename_session(self, session_id: str, title: str) -> bool:
        """Set `metadata["title"]` to the stripped `title`; a blank title removes it."""
        title = (title or "").strip()
        if title:
            return self._merge_metadata(session_id, {"title": title})
        self._journal.update_metadata(session_id, {"title": None})
        return True

    def set_gateway_info(
        self, session_id: str, gateway_session_id: str | None = None, agent_id: str | None = None
    ) -> bool:
        """Link the session to a gateway session and/or agent; empty values are ignored."""
        fields = {GATEWAY_KEY: gateway_session_id, "agent_id": agent_id}
        return self._merge_metadata(session_id, {k: v for k, v in fields.items() if v})

    def get_session_model(self, session_id: str) -> str | None:
        """The session's metadata "model" (or "llm"), else the newest message's metadata
        "model", else None."""
        return self._recorded(session_id, ("model", "llm"))

    def get_session_reasoning_effort(self, session_id: str) -> str | None:
        """As `get_session_model`, for "reasoning_effort"."""
        return self._recorded(session_id, ("reasoning_effort",))

    def _recorded(self, session_id: str, keys: tuple[str, ...]) -> str | None:
        try:
            session = self.get_session(session_id)
        except JournalError:
            return None
        for key in keys:
            value = session.metadata.get(key)
            if isinstance(value, str) and value:
                return value
        for message in reversed(session.messages):
            value = (message.metadata or {}).get(keys[0])
            if isinstance(value, str) and value:
                return value
        return None

    # -- runtime state -------------------------------------------------------------------------

    def set_runtime_state(
        self,
        session_id: str,
        runtime_id: str,
        turn_id: str,
        state: dict[str, Any],
        mirror_enabled: bool = True,
    ) -> bool:
        """`runtime_state[runtime_id][turn_id] = state` (a copy); nothing written unless
        `mirror_enabled`."""
        if not mirror_enabled:
            return True
        runtime = self._runtime_state(session_id)
        runtime.setdefault(runtime_id, {})[turn_id] = copy.deepcopy(state)
        return self._merge_metadata(session_id, {RUNTIME_KEY: runtime})

    def get_runtime_state(
        self, session_id: str, runtime_id: str, turn_id: str | None = None
    ) -> dict[str, Any]:
        """A copy of one turn's state, or of all turns of `runtime_id`; {} when missing."""
        turns = self._runtime_state(session_id).get(runtime_id, {})
        found = turns if turn_id is None else turns.get(turn_id, {})
        return copy.deepcopy(found) if isinstance(found, dict) else {}

    def clear_runtime_state(self, session_id: str, runtime_id: str | None = None) -> bool:
        """Remove all runtime state, or only that of `runtime_id`."""
        runtime = self._runtime_state(session_id)
        if runtime_id is not None:
            runtime.pop(runtime_id, None)
        self._journal.update_metadata(session_id, {RUNTIME_KEY: runtime or None})
        return True

    def _runtime_state(self, session_id: str) -> dict[str, Any]:
        state = self._journal.state(session_id)
        runtime = state.metadata.get(RUNTIME_KEY) if state is not None else None
        return copy.deepcopy(runtime) if isinstance(runtime, dict) else {}

    # -- look-ups by agent and gateway -----------------------------------------------------------

    def list_sessions_by_agent(self, agent_name: str, limit: int = 50) -> list[str]:
        """Ids of the sessions whose agent_name is `agent_name`, at most `limit`."""
        return [sid for sid, meta in self._metadata_of_all() if meta.get("agent_name") == agent_name][:limit]

    def get_sessions_by_agent(self, agent_name: str, limit: int = 10) -> list[SessionData]:
        return [self.get_session(sid) for sid in self.list_sessions_by_agent(agent_name, limit)]

    def get_agent_chat_history(
        self, agent_name: str, max_messages: int | None = None, max_sessions: int = 5
    ) -> list[dict[str, Any]]:
        """The chat history of the agent's sessions, each message tagged with its session_id
        and agent_name."""
        return [
            {**message, "session_id": session.session_id, "agent_name": agent_name}
            for session in self.get_sessions_by_agent(agent_name, max_sessions)
            for message in session.get_chat_history(max_messages)
        ]

    def get_by_gateway_session(self, gateway_session_id: str) -> SessionData | None:
        """The first session linked to `gateway_session_id`, or None."""
        for sid, meta in self._metadata_of_all():
            if meta.get(GATEWAY_KEY) == gateway_session_id:
                return self.get_session(sid)
        return None

    def list_sessions_by_gateway_agent(self, agent_id: str, limit: int = 50) -> list[str]:
        """Ids of the sessions whose agent_id is `agent_id`, at most `limit`."""
        return [sid for sid, meta in self._metadata_of_all() if meta.get("agent_id") == agent_id][:limit]

    def _metadata_of_all(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """(id, metadata) of every session that reads; a damaged one is left out."""
        for session_id in self._journal.sessions():
            try:
                state = self._journal.state(session_id)
            except JournalError:
                continue
            if state is not None:
                yield session_id, state.metadata

    # -- cache and mirror ------------------------------------------------------------------------

    def invalidate_cache(self, session_id: str | None = None) -> None:
        """Nothing to do: every read is current (the log is folded incrementally); kept for
        PraisonAI's API."""

    def flush_mirror(self, timeout: float | None = None) -> bool:
        """Wait until queued mirror records are handed to the mirror; True without a mirror."""
        return True if self._mirror_writer is None else self._mirror_writer.flush(timeout)

    def close_mirror(self) -> None:
        """Stop the mirror thread after draining its queue."""
        if self._mirror_writer is not None:
            self._mirror_writer.close()
