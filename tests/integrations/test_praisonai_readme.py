"""The README's "Use with PraisonAI" snippet, run as written against the fake model server."""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

import pytest
from fake_openai import FakeOpenAI

import journal

README = Path(__file__).resolve().parents[2] / "README.md"

# Keep in step with README.md, "Use with PraisonAI" (test_the_readme_shows_this_snippet).
SNIPPET = """\
from praisonaiagents import Agent, MemoryConfig

from journal.integrations.praisonai import use_journal

store = use_journal("./sessions")  # every Agent of this process now persists here


def assistant() -> Agent:
    return Agent(
        name="Assistant",
        instructions="Answer briefly.",
        model="gpt-4o-mini",
        memory=MemoryConfig(session_id="support-42"),
    )


assistant().start("My order number is 1234.")
# A new Agent (or a new process) with the same session id resumes the conversation:
assistant().start("What is my order number?")  # the model is sent the earlier turns too
print(len(store.get_chat_history("support-42")))  # 4
store.close()
"""


def test_the_snippet_runs_and_persists_the_conversation(
    praisonai: ModuleType, fake_llm: FakeOpenAI, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exec(compile(SNIPPET, "README.md", "exec"), {"__name__": "__readme__"})

    assert capsys.readouterr().out.strip().splitlines()[-1] == "4"
    second_request = fake_llm.chat_requests[1]["messages"]
    assert [m["content"] for m in second_request[1:]] == [
        "My order number is 1234.",
        "You said: My order number is 1234.",
        "What is my order number?",
    ]
    with journal.DefaultSessionStore(tmp_path / "sessions") as store:
        assert len(store.get_chat_history("support-42")) == 4


def test_the_readme_shows_this_snippet() -> None:
    text = README.read_text()
    assert "## Use with PraisonAI" in text
    section = text.split("## Use with PraisonAI", 1)[1]
    block = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert block is not None and block.group(1) == SNIPPET
