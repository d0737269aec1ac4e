"""LangChain: `JournalChatMessageHistory`, a chat message history kept in a journal.

    from journal.integrations.langchain import JournalChatMessageHistory

    history = JournalChatMessageHistory("user-42", "./sessions")
    history.add_messages([HumanMessage("Hi"), AIMessage("Hello!")])
    history.messages            # the same messages, in this or any later process

A thin bridge: LangChain deprecated `BaseChatMessageHistory` (langchain-core 1.6.4) in favour
of LangGraph's persistence, so this class only maps that interface onto a journal session and
adds nothing of its own; new code should use LangGraph with a checkpointer instead. It
implements `messages`, `add_messages` and `clear` and their async twins (`aget_messages`,
`aadd_messages`, `aclear`) for langchain-core 1.8, one journal session per history, of the same
id. Install with ``pip install 'journal[langchain]'``.

How messages are stored: each message is one message record whose data is

    {"role": <"user", "assistant", "system", "tool", ...>, "content": <its text>,
     "message": <langchain-core's message_to_dict(message)>}

``message`` is LangChain's own serialization, so every message type (system, human, AI with
its tool calls, usage, ``additional_kwargs``, ``response_metadata`` and ``id``, tool, function,
chat, and the chunks) reads back equal, through ``messages_from_dict``. ``role`` and
``content`` are for people and tools (`journal show`, `journal search`, ``messages.json``): the
role as OpenAI names it (a `ChatMessage`'s own role), the content the message's text. A message
record without ``message`` (appended by other means, such as ``journal append ID user TEXT``)
reads as the message its role and content make (`convert_to_messages`), or a `ChatMessage`.

`add_messages` appends its messages as one all-or-nothing batch; `clear` logs a ``clear``
record (earlier messages stay in the log and its archives). The async methods run on a thread
pool, never on the event loop, one at a time per session id and in the order they were called;
every history of a process on one directory shares one `Journal`, closed (its views written)
by the last `close()` or at exit.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import orjson
from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import (
    BaseMessage,
    ChatMessage,
    convert_to_messages,
    message_to_dict,
    messages_from_dict,
)

from ..native import Journal
from ._journals import acquire, release, strand_for

__all__ = ["JournalChatMessageHistory"]

MESSAGE = "message"  # the data key holding message_to_dict(message)
_ROLES = {  # message type -> the role OpenAI gives it (the other types are their own role)
    "human": "user",
    "ai": "assistant",
    "HumanMessageChunk": "user",
    "AIMessageChunk": "assistant",
    "SystemMessageChunk": "system",
    "ToolMessageChunk": "tool",
    "FunctionMessageChunk": "function",
}
_FOREIGN_KEYS = ("role", "content", "tool_calls", "tool_call_id", "name")  # what convert_to_messages reads


class JournalChatMessageHistory(BaseChatMessageHistory):
    """A LangChain chat message history stored in a journal (see the module docstring).

    Args:
        session_id: the conversation's id; also the journal session's id.
        session_dir: the store directory, created if missing.
        journal: an open `Journal` to use instead; it is not closed by `close()`.

    Raises:
        InvalidSessionIdError: `session_id` cannot name a session.
        StoreRootError: `session_dir` is a file or cannot be written.
    """

    def __init__(
        self,
        session_id: str,
        session_dir: str | os.PathLike[str] = "./sessions",
        *,
        journal: Journal | None = None,
    ) -> None:
        super().__init__()
        self.session_id = session_id
        self._owned = journal is None
        self.journal = journal if journal is not None else acquire(session_dir, "batch")
        try:
            self.journal.session_path(session_id)  # a bad id fails here, not on first use
        except BaseException:
            self.close()
            raise
        self._strand = strand_for(self.journal, session_id)

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]  # a property, as documented
        """The session's messages, oldest first (new objects on every call)."""
        state = self.journal.state(self.session_id)
        return [_message(record.data) for record in (state.messages if state is not None else [])]

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Append `messages`, all or none of them.

        Raises:
            InvalidRecordError: a message cannot be stored as JSON exactly.
        """
        records = [_record(message) for message in messages]
        if records:
            self.journal.append_many(self.session_id, records)

    def clear(self) -> None:
        """Remove every message: a "clear" record (the log keeps what came before)."""
        state = self.journal.state(self.session_id)
        if state is not None and state.messages:
            self.journal.clear(self.session_id)

    async def aget_messages(self) -> list[BaseMessage]:
        """`messages`, read on a thread after the session's earlier calls."""
        return await self._strand.run(lambda: self.messages)

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        """`add_messages` on a thread, after the session's earlier calls."""
        records = [_record(message) for message in messages]  # now, before the caller changes them
        if records:
            await self._strand.write(lambda: self.journal.append_many(self.session_id, records))

    async def aclear(self) -> None:
        """`clear` on a thread, after the session's earlier calls."""
        await self._strand.write(self.clear)

    def close(self) -> None:
        """Let go of the store (its views are written when its last history closes)."""
        if self._owned:
            self._owned = False
            release(self.journal)


def _record(message: BaseMessage) -> dict[str, Any]:
    """The message record data of one message (see the module docstring)."""
    if not isinstance(message, BaseMessage):
        raise TypeError(f"a chat message must be a BaseMessage, not {type(message).__name__}")
    role = getattr(message, "role", None)
    role = role if isinstance(role, str) else _ROLES.get(message.type, message.type)
    # message_to_dict builds new dicts and lists: later changes to `message` do not reach them.
    return {"role": role, "content": str(message.text), MESSAGE: message_to_dict(message)}


def _message(data: Any) -> BaseMessage:
    """The message a record stands for, built anew (records are shared, messages mutable)."""
    payload = data.get(MESSAGE) if isinstance(data, dict) else None
    if isinstance(payload, dict):
        return messages_from_dict([orjson.loads(orjson.dumps(payload))])[0]
    fields = {key: data[key] for key in _FOREIGN_KEYS if isinstance(data, dict) and key in data}
    fields["content"] = fields.get("content") or ""
    try:
        return convert_to_messages([orjson.loads(orjson.dumps(fields))])[0]
    except (ValueError, TypeError, NotImplementedError, KeyError):  # a role LangChain has no class for
        return ChatMessage(role=str(fields.get("role", "")), content=fields["content"])
