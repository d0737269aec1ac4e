"""`JournalSession` end to end: the SDK's `Runner` against `FakeOpenAI` on 127.0.0.1 (every other
connection refused), two real processes sharing one session, the `journal` CLI reading what
the SDK stored, and the README's snippet run as written."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agents import Agent, Runner, SQLiteSession, function_tool, set_default_openai_api, set_tracing_disabled
from fake_openai import PROXY_VARIABLES, FakeOpenAI, NetworkGuard

from journal.integrations.openai_agents import JournalSession

README = Path(__file__).resolve().parents[2] / "README.md"
SID = "support-42"


@function_tool
def get_weather(city: str) -> str:
    """Get the weather of a city."""
    return f"Sunny in {city}"


@pytest.fixture
def agents_offline(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake_llm: FakeOpenAI, no_network: NetworkGuard
) -> Iterator[None]:
    """The SDK's default client pointed at `fake_llm` through chat completions (the fake server
    has no Responses API), tracing off, run inside `tmp_path`."""
    monkeypatch.chdir(tmp_path)
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", fake_llm.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    set_tracing_disabled(True)
    set_default_openai_api("chat_completions")
    yield
    set_default_openai_api("responses")
    assert no_network.refused == [], "something tried to leave this machine"


def weather_agent() -> Agent[Any]:
    return Agent(name="Assistant", instructions="Answer briefly.", model="gpt-4o-mini", tools=[get_weather])


async def two_runs(first: Any, second: Any) -> None:
    await Runner.run(weather_agent(), "What is the weather in Paris?", session=first)
    await Runner.run(weather_agent(), "And in Rome?", session=second)


def test_the_second_run_sends_the_first_runs_turns_as_with_sqlite_session(
    agents_offline: None, fake_llm: FakeOpenAI, tmp_path: Path
) -> None:
    store = tmp_path / "sessions"
    first = JournalSession(SID, store)
    second = JournalSession(SID, store)  # another object on the same store: as another process

    asyncio.run(two_runs(first, second))
    journal_requests = [r["messages"] for r in fake_llm.chat_requests]
    sqlite = SQLiteSession(SID)
    asyncio.run(two_runs(sqlite, sqlite))
    sqlite_requests = [r["messages"] for r in fake_llm.chat_requests[len(journal_requests) :]]

    # run 1: the question, then the tool's result; run 2 opens with all of run 1 before it
    assert len(journal_requests) == 4
    opening = journal_requests[2]
    assert [m["role"] for m in opening] == ["system", "user", "assistant", "tool", "assistant", "user"]
    assert opening[1]["content"] == "What is the weather in Paris?"
    assert opening[2]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert opening[3]["content"] == "Sunny in Paris"
    assert opening[-1]["content"] == "And in Rome?"
    assert journal_requests == sqlite_requests  # the SDK sends the same with either session
    reader = JournalSession(SID, store)
    assert asyncio.run(reader.get_items()) == asyncio.run(sqlite.get_items())
    for session in (first, second, reader):
        session.close()


def cli(store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "journal", *args, "--dir", str(store)],
        capture_output=True,
        text=True,
        check=True,
    )


def test_the_journal_cli_shows_searches_and_exports_what_the_sdk_stored(
    agents_offline: None, tmp_path: Path
) -> None:
    store = tmp_path / "sessions"
    session = JournalSession(SID, store)
    asyncio.run(two_runs(session, session))
    items = asyncio.run(session.get_items())
    session.close()

    shown = json.loads(cli(store, "show", SID, "--json").stdout)
    assert [m["item"] for m in shown["messages"]] == items
    roles = [m["role"] for m in shown["messages"]]
    assert roles[:4] == ["user", "function_call", "function_call_output", "assistant"]
    assert shown["messages"][1]["content"] == 'get_weather({"city": "Paris"})'

    hits = [json.loads(line) for line in cli(store, "search", "paris", "--json").stdout.splitlines()]
    found = {(h["session_id"], h["role"]) for h in hits}
    assert found == {(SID, role) for role in ("user", "function_call", "function_call_output", "assistant")}

    cli(store, "export", str(tmp_path / "all.json"))
    exported = json.loads((tmp_path / "all.json").read_text())
    assert [m["item"] for m in exported["conversations"][SID]["messages"]] == items

    view = json.loads((store / SID / "messages.json").read_text())  # written by close()
    assert [m["item"] for m in view["messages"]] == items


WORKER = """
import asyncio, json, sys
from journal.integrations.openai_agents import JournalSession

store, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
sys.stdin.readline()  # start together


async def main():
    session = JournalSession("shared", store, durability="batch")
    popped = []
    for i in range(count):
        call = {"type": "function_call_output", "call_id": f"{name}-{i}", "output": "ok"}
        await session.add_items([{"role": "user", "content": f"{name}-{i}"}, call])
        if i % 3 == 2:
            popped.append(await session.pop_item())
    session.close()
    print(json.dumps(popped))


asyncio.run(main())
"""


def run_together(store: Path, *names: str, count: int) -> list[Any]:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(store), name, str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for name in names
    ]
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    outputs = [proc.communicate(timeout=120)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * len(procs)
    return [json.loads(out) for out in outputs]


def key(item: dict[str, Any]) -> str:
    """One name per item: a writer's message "a-1" and its tool output (call id "a-1") differ."""
    return f"call {item['call_id']}" if "call_id" in item else str(item.get("content"))


def test_two_processes_adding_and_popping_one_session_lose_and_repeat_nothing(tmp_path: Path) -> None:
    filler = JournalSession("shared", tmp_path, durability="none")
    base = [{"role": "user", "content": f"base-{n}"} for n in range(20)]
    asyncio.run(filler.add_items(base))
    filler.close()

    popped_a, popped_b = run_together(tmp_path, "a", "b", count=30)
    left = asyncio.run(JournalSession("shared", tmp_path).get_items())

    popped = popped_a + popped_b
    assert len(popped) == 20 and None not in popped
    added = {key(item) for item in base} | {
        f"{p}{w}-{i}" for p in ("", "call ") for w in "ab" for i in range(30)
    }
    taken, kept = [key(i) for i in popped], [key(i) for i in left]
    assert len(set(taken)) == len(taken)  # no item popped twice
    assert len(taken) + len(kept) == 20 + 2 * 30 * 2  # nothing lost, nothing repeated
    assert set(taken) | set(kept) == added
    assert kept[:20] == [key(item) for item in base]  # under the top, the order is untouched
    for writer in "ab":
        users = [item["content"] for item in left if item.get("content", "").startswith(f"{writer}-")]
        assert users == sorted(users, key=lambda text: int(text.split("-")[1]))  # in each writer's order


def readme_snippet(section: str) -> str:
    text = README.read_text()
    assert f"## {section}\n" in text
    block = re.search(r"```python\n(.*?)```", text.split(f"## {section}\n", 1)[1], re.DOTALL)
    assert block is not None
    return block.group(1)


def test_the_readme_snippet_runs_and_resumes_the_conversation(
    agents_offline: None, fake_llm: FakeOpenAI, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    snippet = readme_snippet("Use with the OpenAI Agents SDK")
    exec(compile(snippet, "README.md", "exec"), {"__name__": "__readme__"})

    assert capsys.readouterr().out.strip().splitlines()[-1] == "4"
    second = fake_llm.chat_requests[1]["messages"]
    assert [m["content"] for m in second[1:]] == [
        "My order number is 1234.",
        "You said: My order number is 1234.",
        "What is my order number?",
    ]
    assert (tmp_path / "sessions" / SID / "messages.json").exists()
