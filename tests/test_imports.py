"""`import journal` stays light: it imports none of the optional packages (framework
integrations import theirs lazily, inside their own modules)."""

from __future__ import annotations

import json
import subprocess
import sys

OPTIONAL = [
    "praisonaiagents",
    "openai",
    "boto3",
    "langgraph",
    "langchain_core",
    "google.adk",
    "agents",
    "tqdm",
    "rich",
    "matplotlib",
]


def imported_after(statement: str) -> list[str]:
    """The optional packages in sys.modules after `statement`, in a fresh interpreter."""
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(set(sys.modules) & set({OPTIONAL!r}))))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return list(json.loads(done.stdout.splitlines()[-1]))


def test_import_journal_imports_no_optional_package() -> None:
    assert imported_after("import journal") == []


def test_the_integrations_package_imports_no_framework() -> None:
    assert imported_after("import journal.integrations, journal.integrations.praisonai") == []


def test_the_openai_agents_adapter_imports_the_sdk_only_when_a_session_is_made() -> None:
    assert imported_after("import journal.integrations.openai_agents") == []


def test_the_langchain_adapter_imports_langchain_core_and_nothing_else() -> None:
    assert imported_after("import journal.integrations.langchain") == ["langchain_core"]
