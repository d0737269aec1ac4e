"""`JournalChatMessageHistory` against the real langchain-core: every message type round-trips
across instances and processes, the async twins keep call order, LangChain's own
`RunnableWithMessageHistory` resumes a conversation from it, and the `journal` CLI reads it."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables.history import RunnableWithMessageHistory

from journal import InvalidRecordError, Journal
from journal.integrations.langchain import JournalChatMessageHistory

README = Path(__file__).resolve().parents[2] / "README.md"
SID = "chat-7"


def every_message() -> list[BaseMessage]:
    return [
        SystemMessage("You are terse.", id="sys-1"),
        HumanMessage(
            [{"type": "text", "text": "Weather in Paris?"}, {"type": "image_url", "image_url": {"url": "x"}}]
        ),
        AIMessage(
            content="",
            tool_calls=[{"name": "get_weather", "args": {"city": "Paris", "days": [1, 2]}, "id": "call_1"}],
            additional_kwargs={"refusal": None, "nested": {"a": [1.5, "ü"]}},
            response_metadata={"model_name": "gpt-4o-mini", "finish_reason": "tool_calls"},
            usage_metadata={"input_tokens": 10, "output_tokens": 3, "total_tokens": 13},
            id="ai-1",
            name="assistant-bot",
        ),
        ToolMessage(
            "Sunny, 18°C",
            tool_call_id="call_1",
            name="get_weather",
            artifact={"raw": [1, 2]},
            status="success",
        ),
        AIMessage("It is sunny in Paris.", id="ai-2", response_metadata={"logprobs": None}),
        ChatMessage(role="critic", content="Could be shorter."),
        FunctionMessage(name="legacy_fn", content='{"ok": true}'),
        AIMessageChunk(content="partial", id="chunk-1"),
    ]


def test_it_is_a_chat_message_history_without_deprecation_noise(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the base class warns only on direct instances
        history = JournalChatMessageHistory(SID, tmp_path)
    assert isinstance(history, BaseChatMessageHistory)
    history.close()


def test_every_message_type_round_trips_exactly_across_instances(tmp_path: Path) -> None:
    messages = every_message()
    writer = JournalChatMessageHistory(SID, tmp_path)
    writer.add_messages(messages[:3])
    writer.add_message(messages[3])
    writer.add_messages(messages[4:])
    writer.close()
    reader = JournalChatMessageHistory(SID, tmp_path)  # a new object reading the same directory
    read = reader.messages
    assert read == messages
    assert [type(m) for m in read] == [type(m) for m in messages]
    assert read[2].tool_calls == messages[2].tool_calls  # type: ignore[attr-defined]
    assert read[3].artifact == {"raw": [1, 2]}  # type: ignore[attr-defined]
    reader.close()


def test_messages_are_new_objects_on_every_read(tmp_path: Path) -> None:
    history = JournalChatMessageHistory(SID, tmp_path)
    message = AIMessage("hi", additional_kwargs={"nested": {"n": 1}})
    history.add_messages([message])
    message.additional_kwargs["nested"]["n"] = 2  # after the add: not what was stored
    history.messages[0].additional_kwargs["nested"]["n"] = 3
    assert history.messages[0].additional_kwargs == {"nested": {"n": 1}}
    history.close()


def test_clear_logs_a_clear_record_and_empties_the_history(tmp_path: Path) -> None:
    history = JournalChatMessageHistory(SID, tmp_path)
    history.add_messages([HumanMessage("a"), AIMessage("b")])
    history.clear()
    history.clear()  # nothing to clear: writes nothing
    assert history.messages == []
    history.add_messages([HumanMessage("c")])
    assert JournalChatMessageHistory(SID, tmp_path).messages == [HumanMessage("c")]
    with Journal(tmp_path) as j:
        assert [r.kind for r in j.read(SID)] == ["message", "message", "clear", "message"]
    history.close()


def test_async_twins_keep_the_order_of_the_calls(tmp_path: Path) -> None:
    history = JournalChatMessageHistory(SID, tmp_path)
    other = JournalChatMessageHistory(SID, tmp_path)  # a second object of the session: same order

    async def scenario() -> list[Any]:
        calls: list[Any] = []
        for i in range(20):
            calls.append((history if i % 2 else other).aadd_messages([HumanMessage(f"m{i}")]))
            if i == 9:
                calls += [history.aget_messages(), other.aclear()]
        return await asyncio.gather(*calls)

    results = asyncio.run(scenario())
    assert [m.content for m in results[10]] == [f"m{i}" for i in range(10)]
    assert [m.content for m in asyncio.run(other.aget_messages())] == [f"m{i}" for i in range(10, 20)]
    history.close()
    other.close()


def test_a_message_that_is_not_json_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    history = JournalChatMessageHistory(SID, tmp_path)
    with pytest.raises(InvalidRecordError):
        history.add_messages([HumanMessage("ok"), AIMessage("x", additional_kwargs={"bad": {1, 2}})])
    assert history.messages == []
    history.close()


def test_records_appended_by_other_means_read_as_langchain_messages(tmp_path: Path) -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    with Journal(tmp_path) as j:
        j.append(SID, {"role": "user", "content": "typed by hand", "metadata": {}})
        j.append(SID, {"role": "assistant", "content": None, "tool_calls": [call]})
        j.append(SID, {"role": "tool", "content": "done", "tool_call_id": "c1"})
        j.append(SID, {"role": "function_call", "content": "f({})"})  # no LangChain class for it
    history = JournalChatMessageHistory(SID, tmp_path)
    read = history.messages
    assert read[0] == HumanMessage("typed by hand")
    assert isinstance(read[1], AIMessage) and read[1].tool_calls[0]["name"] == "f"
    assert read[2] == ToolMessage("done", tool_call_id="c1")
    assert read[3] == ChatMessage(role="function_call", content="f({})")
    history.close()


class SeenPrompts(BaseCallbackHandler):
    """What the chat model was sent, call by call."""

    def __init__(self) -> None:
        self.prompts: list[list[BaseMessage]] = []

    def on_chat_model_start(self, serialized: Any, messages: list[list[BaseMessage]], **kwargs: Any) -> None:
        self.prompts.extend(messages)


def test_runnable_with_message_history_resumes_from_the_journal(tmp_path: Path) -> None:
    prompt = ChatPromptTemplate.from_messages(
        [("system", "Be brief."), MessagesPlaceholder("history"), ("human", "{question}")]
    )
    model = FakeListChatModel(responses=["Noted: 1234.", "It is 1234."])
    seen = SeenPrompts()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # RunnableWithMessageHistory itself is deprecated
        chain = RunnableWithMessageHistory(
            prompt | model,
            lambda session_id: JournalChatMessageHistory(session_id, tmp_path),
            input_messages_key="question",
            history_messages_key="history",
        )
    config: Any = {"configurable": {"session_id": SID}, "callbacks": [seen]}
    chain.invoke({"question": "My order number is 1234."}, config=config)
    asyncio.run(chain.ainvoke({"question": "What is my order number?"}, config=config))

    assert [m.content for m in seen.prompts[1]] == [
        "Be brief.",
        "My order number is 1234.",
        "Noted: 1234.",
        "What is my order number?",
    ]
    stored = JournalChatMessageHistory(SID, tmp_path).messages
    assert [type(m).__name__ for m in stored] == ["HumanMessage", "AIMessage", "HumanMessage", "AIMessage"]


WORKER = """
import sys
from langchain_core.messages import AIMessage, HumanMessage
from journal.integrations.langchain import JournalChatMessageHistory

store, name = sys.argv[1], sys.argv[2]
sys.stdin.readline()  # start together
history = JournalChatMessageHistory("shared", store)
for i in range(40):
    history.add_messages([HumanMessage(f"{name}-{i}"), AIMessage(f"re {name}-{i}", id=f"{name}-{i}")])
history.close()
"""


def test_two_processes_adding_to_one_history_lose_nothing(tmp_path: Path) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(tmp_path), name], stdin=subprocess.PIPE, text=True
        )
        for name in ("a", "b")
    ]
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    assert [proc.wait(timeout=60) for proc in procs] == [0, 0]
    messages = JournalChatMessageHistory("shared", tmp_path).messages
    assert len(messages) == 160
    for name in ("a", "b"):
        mine = [
            i for i, m in enumerate(messages) if str(m.content).removeprefix("re ").startswith(f"{name}-")
        ]
        expected = [
            [HumanMessage(f"{name}-{n}"), AIMessage(f"re {name}-{n}", id=f"{name}-{n}")] for n in range(40)
        ]
        assert [messages[i] for i in mine] == [m for pair in expected for m in pair]  # all, in order
        assert all(mine[k + 1] == mine[k] + 1 for k in range(0, len(mine), 2))  # each batch whole


def test_the_journal_cli_shows_searches_and_exports_the_history(tmp_path: Path) -> None:
    store = tmp_path / "sessions"
    history = JournalChatMessageHistory(SID, store)
    messages = every_message()
    history.add_messages(messages)
    history.close()

    def cli(*args: str) -> str:
        command = [sys.executable, "-m", "journal", *args, "--dir", str(store)]
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout

    shown = json.loads(cli("show", SID, "--json"))["messages"]
    assert [m["role"] for m in shown] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
        "critic",
        "function",
        "assistant",
    ]
    assert shown[1]["content"] == "Weather in Paris?"
    hits = [json.loads(line) for line in cli("search", "paris", "--json").splitlines()]
    assert [h["role"] for h in hits] == ["user", "assistant"]
    cli("export", str(tmp_path / "all.json"))
    exported = json.loads((tmp_path / "all.json").read_text())["conversations"][SID]["messages"]
    from langchain_core.messages import messages_from_dict

    assert messages_from_dict([m["message"] for m in exported]) == messages


def test_the_readme_snippet_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    text = README.read_text()
    assert "## Use with LangChain\n" in text
    block = re.search(r"```python\n(.*?)```", text.split("## Use with LangChain\n", 1)[1], re.DOTALL)
    assert block is not None
    exec(compile(block.group(1), "README.md", "exec"), {"__name__": "__readme__"})
    assert capsys.readouterr().out.strip() == "['My order number is 1234.', 'Noted: order 1234.']"
    assert JournalChatMessageHistory(SID, tmp_path / "sessions").messages == [
        HumanMessage("My order number is 1234."),
        AIMessage("Noted: order 1234."),
    ]
