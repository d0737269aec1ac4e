"""The README's "Use with LangGraph" snippet, taken from README.md and run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from journal.integrations.langgraph import JournalSaver

README = Path(__file__).resolve().parents[2] / "README.md"


def snippet() -> str:
    section = README.read_text().split("## Use with LangGraph\n", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert found is not None, "no python block in the README's LangGraph section"
    return found.group(1)


def test_the_readme_snippet_runs_and_the_thread_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(snippet(), "README.md", "exec"), {"__name__": "__readme__"})

    assert capsys.readouterr().out.strip().splitlines()[-1] == "4"
    with JournalSaver(tmp_path / "sessions") as saver:
        latest = saver.get_tuple({"configurable": {"thread_id": "support-7"}})
        assert latest is not None
        assert [m.content for m in latest.checkpoint["channel_values"]["messages"]] == [
            "My order is 1234.",
            "You said: My order is 1234.",
            "What was my order?",
            "You said: What was my order?",
        ]
