"""A real ADK `Runner` keeping its sessions in `JournalSessionService`, against the fake
OpenAI-compatible server (ADK's own `ApigeeLlm` speaks chat completions to it; no extra
package, no network), the journal CLI reading what it wrote, and the README's snippet."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fake_openai import PROXY_VARIABLES, FakeOpenAI, NetworkGuard
from google.adk.agents import LlmAgent
from google.adk.events import Event
from google.adk.models.apigee_llm import ApigeeLlm
from google.adk.runners import Runner
from google.genai import types

from journal.integrations.adk import JournalSessionService

README = Path(__file__).resolve().parents[2] / "README.md"
APP, USER, SESSION = "support", "u42", "chat-1"
KEY = f"adk/{APP}/{USER}/{SESSION}"


def get_weather(city: str) -> dict[str, str]:
    """The weather forecast for a city."""
    return {"city": city, "forecast": "sunny"}


async def one_turn(store: Path, base_url: str, text: str) -> list[Event]:
    """One user turn through a new service and a new Runner, as a restarted process runs it."""
    service = JournalSessionService(store)
    model = ApigeeLlm(model="apigee/openai/gpt-4o-mini", proxy_url=base_url)
    agent = LlmAgent(name="assistant", model=model, instruction="Answer briefly.", tools=[get_weather])
    runner = Runner(agent=agent, app_name=APP, session_service=service, auto_create_session=True)
    message = types.Content(role="user", parts=[types.Part(text=text)])
    try:
        return [e async for e in runner.run_async(user_id=USER, session_id=SESSION, new_message=message)]
    finally:
        await runner.close()
        await service.close()


def journal_cli(store: Path, *args: str) -> Any:
    done = subprocess.run(
        [sys.executable, "-m", "journal", *args, "--dir", str(store)],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, no_network: NetworkGuard) -> NetworkGuard:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return no_network


def test_a_runner_resumes_its_session_from_the_journal_in_a_new_process(
    tmp_path: Path, fake_llm: FakeOpenAI, offline: NetworkGuard
) -> None:
    store = tmp_path / "sessions"
    first = asyncio.run(one_turn(store, fake_llm.base_url, "What is the weather in Paris?"))
    second = asyncio.run(one_turn(store, fake_llm.base_url, "Thanks!"))

    # The second turn's first request carries the first turn, read back from the journal.
    assert len(fake_llm.chat_requests) == 4  # each turn: the tool call, then the answer
    sent = fake_llm.chat_requests[2]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool", "assistant", "user"]
    assert sent[3]["content"] == json.dumps(get_weather("Paris"))
    assert sent[-1]["content"] == "Thanks!"

    async def stored() -> list[Event]:
        async with JournalSessionService(store) as service:
            session = await service.get_session(app_name=APP, user_id=USER, session_id=SESSION)
            assert session is not None
            return session.events

    events = asyncio.run(stored())
    assert [e.id for e in events[1:4] + events[5:]] == [e.id for e in first + second]  # the runner's own
    assert events[1:4] + events[5:] == first + second
    assert [e.author for e in events] == ["user"] + ["assistant"] * 3 + ["user"] + ["assistant"] * 3
    assert offline.refused == []


def test_the_journal_cli_shows_searches_and_exports_adk_sessions(
    tmp_path: Path, fake_llm: FakeOpenAI, offline: NetworkGuard
) -> None:
    store = tmp_path / "sessions"
    asyncio.run(one_turn(store, fake_llm.base_url, "What is the weather in Paris?"))

    shown = json.loads(journal_cli(store, "show", KEY, "--json"))
    assert [(m["role"], m["content"]) for m in shown["messages"]] == [
        ("user", "What is the weather in Paris?"),
        ("model", 'get_weather({"city":"Paris"})'),
        ("tool", 'get_weather -> {"city":"Paris","forecast":"sunny"}'),
        ("model", 'The weather: {"city": "Paris", "forecast": "sunny"}'),
    ]
    assert shown["session_metadata"]["metadata"]["app_name"] == APP

    hits = [
        json.loads(line)
        for line in journal_cli(store, "search", "paris", "--role", "user", "--json").splitlines()
    ]
    assert [(h["session_id"], h["role"]) for h in hits] == [(KEY, "user")]

    journal_cli(store, "export", str(tmp_path / "backup.json"))
    exported = json.loads((tmp_path / "backup.json").read_text())
    assert exported["conversations"][KEY]["message_count"] == 4


# Keep in step with README.md, "Use with Google ADK" (test_the_readme_shows_this_snippet).
SNIPPET = """\
import asyncio

from google.adk.events import Event, EventActions
from google.genai import types

from journal.integrations.adk import JournalSessionService


async def main() -> None:
    service = JournalSessionService("./sessions")  # Runner(..., session_service=service)
    session = await service.create_session(
        app_name="support", user_id="u42", session_id="order-1234", state={"user:language": "en"}
    )
    question = Event(
        author="user",
        content=types.Content(role="user", parts=[types.Part(text="Where is my order?")]),
        actions=EventActions(state_delta={"topic": "delivery"}),
    )
    await service.append_event(session, question)  # what Runner does with every event
    await service.close()

    # A new process (or this one after a restart) resumes the session:
    service = JournalSessionService("./sessions")
    session = await service.get_session(app_name="support", user_id="u42", session_id="order-1234")
    print(len(session.events), session.state)  # 1 {'topic': 'delivery', 'user:language': 'en'}
    await service.close()


asyncio.run(main())
"""


def test_the_snippet_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(SNIPPET, "README.md", "exec"), {"__name__": "__readme__"})
    assert capsys.readouterr().out.strip() == "1 {'topic': 'delivery', 'user:language': 'en'}"
    shown = json.loads(journal_cli(tmp_path / "sessions", "show", "adk/support/u42/order-1234", "--json"))
    assert [(m["role"], m["content"]) for m in shown["messages"]] == [("user", "Where is my order?")]


def test_the_readme_shows_this_snippet() -> None:
    text = README.read_text()
    assert "## Use with Google ADK" in text
    section = text.split("## Use with Google ADK", 1)[1]
    block = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert block is not None and block.group(1) == SNIPPET
