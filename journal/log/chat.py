"""The LLM view of a session's messages: what `DefaultSessionStore.get_chat_history` returns.

Pure functions of a message's data, shared by the store facade, the folded state and the
snapshot decoder (which makes the view of a cold read in the same pass as the parse).
"""

from __future__ import annotations

from typing import Any


def llm_message(data: Any) -> dict[str, Any]:
    """A message's data as an LLM chat message: {"role", "content"}, plus "tool_calls" and
    "tool_call_id" when set. What `SessionMessage.from_record(r).to_llm_message()` gives,
    without the objects: this runs once per message of every `get_chat_history`."""
    if not isinstance(data, dict):
        return {"role": "user", "content": ""}
    message = {"role": data.get("role", "user"), "content": data.get("content", "")}
    if data.get("tool_calls"):
        message["tool_calls"] = data["tool_calls"]
    if data.get("tool_call_id") is not None:
        message["tool_call_id"] = data["tool_call_id"]
    return message


def message_role(data: Any) -> str:
    """The role a history window sees: the data's "role" if it is a string, else "user"."""
    role = data.get("role") if isinstance(data, dict) else None
    return role if isinstance(role, str) else "user"
