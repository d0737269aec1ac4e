"""End to end: real praisonaiagents Agents persist their sessions through `journal`.

Each test runs Agents against `FakeOpenAI` (conftest.py) on 127.0.0.1 with every other
connection refused, and checks the journal store, a second store opened on the same directory
(what a new process would read), and the requests the model server received.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest
from fake_openai import PROXY_VARIABLES, TOOL_CALL, FakeOpenAI, NetworkGuard

from journal import DefaultSessionStore
from journal.integrations.praisonai import use_journal


def get_weather(city: str) -> str:
    """Get the weather of a city."""
    return f"Sunny in {city}"


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": text}


@pytest.fixture
def store(praisonai: ModuleType, tmp_path: Path) -> Iterator[DefaultSessionStore]:
    store = use_journal(tmp_path / "sessions")
    yield store
    store.close()


def make_agent(praisonai: ModuleType, session_id: str, **options: Any) -> Any:
    return praisonai.Agent(
        name="Journaled",
        instructions="Answer briefly.",
        model="gpt-4o-mini",
        memory=praisonai.MemoryConfig(session_id=session_id, user_id="u1"),
        output="silent",
        **options,
    )


def read_back(store: DefaultSessionStore, session_id: str) -> list[dict[str, Any]]:
    """The history as a second store on the same directory (another process) reads it."""
    with DefaultSessionStore(store.session_dir) as other:
        return other.get_chat_history(session_id)


def test_the_turns_of_an_agent_persist_in_the_journal(
    praisonai: ModuleType, store: DefaultSessionStore, tmp_path: Path
) -> None:
    agent = make_agent(praisonai, "s1")
    assert agent.start("What is a journal?") == "You said: What is a journal?"

    expected = [user("What is a journal?"), assistant("You said: What is a journal?")]
    assert store.get_chat_history("s1") == expected
    logs = sorted((tmp_path / "sessions" / "s1" / "log").glob("*.jsonl"))
    assert "What is a journal?" in "".join(path.read_text() for path in logs)  # appended, not rewritten
    assert read_back(store, "s1") == expected
    session = store.get_session("s1")
    assert (session.agent_name, session.user_id) == ("Journaled", "u1")
    # praisonaiagents' own JSON store was not used
    assert not list((tmp_path / "praisonai-home").rglob("s1.json"))


def test_a_new_agent_with_the_same_session_id_resumes_the_history(
    praisonai: ModuleType, store: DefaultSessionStore, fake_llm: FakeOpenAI
) -> None:
    first = [user("My order number is 1234."), assistant("You said: My order number is 1234.")]
    assert make_agent(praisonai, "s2").start(first[0]["content"]) == first[1]["content"]

    again = make_agent(praisonai, "s2")
    assert again.start("What is my order number?") == "You said: What is my order number?"

    request = fake_llm.chat_requests[-1]["messages"]
    assert request[0]["role"] == "system"
    assert request[1:] == [*first, user("What is my order number?")]
    second = [user("What is my order number?"), assistant("You said: What is my order number?")]
    assert read_back(store, "s2") == [*first, *second]


def test_a_streamed_answer_persists_as_one_assistant_message(
    praisonai: ModuleType, store: DefaultSessionStore, fake_llm: FakeOpenAI
) -> None:
    chunks = list(make_agent(praisonai, "s3").start("Stream this answer please", stream=True))

    text = "".join(chunks)
    assert text == "You said: Stream this answer please"
    assert len(chunks) > 1 and fake_llm.chat_requests[-1]["stream"] is True
    expected = [user("Stream this answer please"), assistant(text)]
    assert store.get_chat_history("s3") == expected
    assert read_back(store, "s3") == expected
    assert "partial" not in store.get_session("s3").messages[-1].metadata


def test_a_stream_stopped_midway_leaves_its_partial_turn_in_the_store(
    praisonai: ModuleType, store: DefaultSessionStore
) -> None:
    stream = make_agent(praisonai, "s4").start("Stream this answer please", stream=True)
    first = next(stream)
    # Already durable before the consumer sees the chunk: a crash now keeps it.
    assert read_back(store, "s4") == [user("Stream this answer please"), assistant(first)]

    stream.close()  # the consumer stops reading (e.g. Ctrl-C)
    last = store.get_session("s4").messages[-1]
    assert (last.role, last.content, last.metadata.get("partial")) == ("assistant", first, True)
    assert len(store.get_chat_history("s4")) == 2


def test_a_tool_call_turn_persists_with_its_tool_result(
    praisonai: ModuleType, store: DefaultSessionStore, fake_llm: FakeOpenAI
) -> None:
    agent = make_agent(praisonai, "s5", tools=[get_weather])
    text = "".join(agent.start("Weather in Paris?", stream=True))

    assert text == "The weather: Sunny in Paris"
    tool_call_turn = {"role": "assistant", "content": "", "tool_calls": [TOOL_CALL]}
    tool_result = {"role": "tool", "content": "Sunny in Paris", "tool_call_id": "call_1"}
    followup = fake_llm.chat_requests[-1]["messages"]
    assert [m["role"] for m in followup[-2:]] == ["assistant", "tool"]
    assert followup[-1]["tool_call_id"] == "call_1"
    expected = [user("Weather in Paris?"), tool_call_turn, tool_result, assistant(text)]
    assert store.get_chat_history("s5") == expected
    assert read_back(store, "s5") == expected


def test_nothing_leaves_this_machine(
    praisonai: ModuleType, store: DefaultSessionStore, fake_llm: FakeOpenAI, no_network: NetworkGuard
) -> None:
    for name in (*PROXY_VARIABLES, "OPENAI_API_BASE"):
        assert name not in os.environ
    agent = make_agent(praisonai, "s6")
    agent.start("ping")
    "".join(agent.start("ping again", stream=True))

    assert urlsplit(str(agent._openai_client.sync_client.base_url)).hostname == "127.0.0.1"
    assert [(r["method"], r["path"], r["client"]) for r in fake_llm.requests] == [
        ("POST", "/v1/chat/completions", "127.0.0.1")
    ] * 2
    assert no_network.refused == []
    # the guard itself refuses what it should
    with pytest.raises(OSError):
        socket.create_connection(("192.0.2.1", 80), timeout=1)
    assert no_network.refused
    no_network.refused.clear()
