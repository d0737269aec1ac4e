"""Checking a message before anything is written: the record data of one message.

Rules (the store's "Bad input"): role a str; content a str, a list of content parts, or None
only on an assistant message that carries tool_calls (a turn that only calls tools; "" is
always valid); metadata a dict; tool_calls a list; tool_call_id a str. Anything else raises
`InvalidRecordError` naming the argument, and nothing is written.
"""

from __future__ import annotations

from typing import Any

from ..errors import InvalidRecordError


def message_data(
    role: Any,
    content: Any,
    metadata: Any = None,
    tool_calls: Any = None,
    tool_call_id: Any = None,
) -> dict[str, Any]:
    """The record data of one message; raise `InvalidRecordError` for a field of a wrong type."""
    # The usual call (str role and content, metadata None or a dict, tool fields None or of
    # their exact types) is checked in one expression: the five named checks cost ~10% of an
    # OS-buffered append. Any other call takes the named checks, which say what is wrong.
    if (
        type(role) is str
        and type(content) is str
        and (metadata is None or type(metadata) is dict)
        and (tool_calls is None or type(tool_calls) is list)
        and (tool_call_id is None or type(tool_call_id) is str)
    ):
        fast = {"role": role, "content": content, "metadata": dict(metadata) if metadata else {}}
        if tool_calls:
            fast["tool_calls"] = tool_calls
        if tool_call_id is not None:
            fast["tool_call_id"] = tool_call_id
        return fast
    _check_type("role", role, (str,), "a str")
    _check_type("content", content, (str, list, type(None)), "a str (or a list of content parts)")
    _check_type("metadata", metadata, (dict, type(None)), "a dict")
    _check_type("tool_calls", tool_calls, (list, type(None)), "a list of dicts")
    _check_type("tool_call_id", tool_call_id, (str, type(None)), "a str")
    if content is None and not (role == "assistant" and tool_calls):
        raise InvalidRecordError(
            f"content of a {role!r} message must be a str (None only on an assistant message"
            " with tool_calls)",
            "content",
        )
    data: dict[str, Any] = {"role": role, "content": content, "metadata": dict(metadata or {})}
    if tool_calls:
        data["tool_calls"] = tool_calls
    if tool_call_id is not None:
        data["tool_call_id"] = tool_call_id
    return data


def _check_type(name: str, value: Any, types: tuple[type, ...], expected: str) -> None:
    if not isinstance(value, types):
        raise InvalidRecordError(f"{name} must be {expected}, not {type(value).__name__}", name)


def message_from_dict(index: int, item: Any) -> dict[str, Any]:
    """The record data of item `index` of `set_chat_history`. As in PraisonAI a missing role
    is "user" and a missing or None content is "" (but None stays on an assistant tool-call
    turn, where it is valid)."""
    if not isinstance(item, dict):
        raise InvalidRecordError(f"a message must be a dict, not {type(item).__name__}", f"messages[{index}]")
    role, tool_calls = item.get("role", "user"), item.get("tool_calls")
    content = item.get("content")
    if content is None and not (role == "assistant" and tool_calls):
        content = ""
    return message_data(role, content, item.get("metadata"), tool_calls, item.get("tool_call_id"))
