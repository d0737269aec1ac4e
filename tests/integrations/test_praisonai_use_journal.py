"""`journal.integrations.praisonai.use_journal`: installing the store, idempotence, the error
without praisonaiagents, and the store methods a praisonaiagents Agent calls."""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

import journal
from journal.integrations.praisonai import use_journal

# Every store method praisonaiagents 1.7's Agent calls (API reference, section 6), with the
# parameters it passes by name.
AGENT_CALLS = {
    "get_working_history": ["session_id", "max_messages"],
    "get_chat_history": ["session_id", "max_messages"],
    "set_agent_info": ["session_id", "agent_name", "user_id"],
    "add_user_message": ["session_id", "content"],
    "add_assistant_message": ["session_id", "content"],
    "add_message": ["session_id", "role", "content", "tool_calls", "tool_call_id"],
    "update_session_metadata": [],
    "upsert_partial_assistant_message": ["session_id", "content", "finalize"],
    "discard_partial_assistant_message": ["session_id"],
    "append_compaction_checkpoint": ["session_id", "summary", "tokens_before", "tokens_after"],
    "set_gateway_info": ["session_id", "gateway_session_id"],
}


def test_agents_take_the_store_use_journal_installs(praisonai: ModuleType, tmp_path: Path) -> None:
    store = use_journal(tmp_path / "sessions", durability="none")
    try:
        assert isinstance(store, journal.DefaultSessionStore)
        assert store.session_dir == str(tmp_path / "sessions")
        assert praisonai.session.store.get_default_session_store() is store
        # what Agent._init_session_store calls
        assert importlib.import_module("praisonaiagents.session").get_default_session_store() is store
    finally:
        store.close()


def test_use_journal_is_idempotent_and_installs_a_new_store_for_new_arguments(
    praisonai: ModuleType, tmp_path: Path
) -> None:
    os.chdir(tmp_path)  # the praisonai fixture restores the directory
    opened = [use_journal("sessions")]
    try:
        assert use_journal("sessions") is opened[0]
        assert use_journal(tmp_path / "sessions") is opened[0]  # the same directory
        opened.append(use_journal("sessions", durability="always"))
        assert opened[1] is not opened[0]
        assert praisonai.session.store.get_default_session_store() is opened[1]
        assert use_journal("sessions", durability="always") is opened[1]
        praisonai.session.store._default_store = None  # someone else replaced it: install again
        opened.append(use_journal("sessions", durability="always"))
        assert opened[2] is not opened[1]
        assert praisonai.session.store.get_default_session_store() is opened[2]
    finally:
        for store in opened:
            store.close()


def test_a_relative_directory_is_fixed_when_use_journal_is_called(
    praisonai: ModuleType, tmp_path: Path
) -> None:
    os.chdir(tmp_path)
    store = use_journal("sessions")
    try:
        os.chdir(tmp_path.parent)
        store.add_user_message("s", "hi")
        assert (tmp_path / "sessions" / "s").is_dir()
    finally:
        store.close()


def test_without_praisonaiagents_the_error_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "praisonaiagents.session.store", None)  # "not installed"
    with pytest.raises(ImportError, match=r"pip install 'journal\[praisonai\]'"):
        use_journal(tmp_path / "sessions")
    assert not (tmp_path / "sessions").exists()


@pytest.mark.parametrize("method", sorted(AGENT_CALLS))
def test_the_store_has_every_method_an_agent_calls(method: str, tmp_path: Path) -> None:
    with journal.DefaultSessionStore(tmp_path / "sessions") as store:
        assert callable(getattr(store, method, None)), f"DefaultSessionStore has no {method}"
        parameters = inspect.signature(getattr(store, method)).parameters
        assert all(name in parameters for name in AGENT_CALLS[method]), (method, list(parameters))


def test_the_store_satisfies_praisonai_protocols(praisonai: ModuleType, tmp_path: Path) -> None:
    protocols = importlib.import_module("praisonaiagents.session.protocols")
    with journal.DefaultSessionStore(tmp_path / "sessions") as store:
        assert isinstance(store, protocols.SessionStoreProtocol)
        assert isinstance(store, protocols.IncrementalSessionStoreProtocol)
