"""The README's command table and `journal --help` name the same commands, both ways."""

from __future__ import annotations

import re
from pathlib import Path

from cli_helpers import run

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_commands() -> list[str]:
    """The first word after `journal` in each row of the table of README's "Command line"."""
    section = README.read_text().split("\n## Command line\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `journal ")]
    return [re.match(r"\| `journal (\S+?)[ `]", row)[1] for row in rows]  # type: ignore[index]


def test_the_readme_table_lists_exactly_the_commands_of_help(tmp_path: Path) -> None:
    shown = run("--help", cwd=tmp_path).stdout
    commands = shown.split("{", 1)[1].split("}", 1)[0].split(",")
    options = set(re.findall(r"^  (--[a-z-]+)", shown, re.MULTILINE)) - {"--help", "--dir"}
    listed = readme_commands()
    assert len(listed) == len(set(listed))  # each once
    assert sorted(listed) == sorted([*commands, *options])
    assert "--version" in options
