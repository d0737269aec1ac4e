"""Adoption (FORMAT.md, "Adopted sessions"): a store root that holds sessions another store
wrote (the docs' layout, PraisonAI's flat files) shows them through every API from the first
call, keeps their history, times and fields, never writes over or deletes their files, and takes
each in exactly once.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import orjson
import pytest
from _core_helpers import snapshot

from journal import DefaultSessionStore, ForeignStoreError, Journal, RecoveryWarning

# The docs page's example session (`../shared/seed/json-file-persistence.md`, "File Format").
DOCS_SESSION_INFO = {
    "session_id": "example-session",
    "agent_id": "FileBot",
    "created_at": "2024-01-15T10:30:00.000Z",
    "updated_at": "2024-01-15T10:35:00.000Z",
    "metadata": {"user_id": "user123", "conversation_topic": "General assistance", "agent_version": "1.0.0"},
    "settings": {"auto_save": True, "include_timestamps": True},
}
DOCS_MESSAGES = {
    "messages": [
        {
            "role": "user",
            "content": "Hello! How are you?",
            "timestamp": "2024-01-15T10:30:15.000Z",
            "metadata": {"source": "web_interface", "ip_address": "192.168.1.1"},
        },
        {
            "role": "assistant",
            "content": "Hello! I'm doing well, thank you for asking. How can I help you today?",
            "timestamp": "2024-01-15T10:30:18.000Z",
            "metadata": {"model": "gpt-4", "response_time_ms": 1200, "token_count": 23},
        },
    ],
    "total_messages": 2,
    "last_updated": "2024-01-15T10:30:18.000Z",
}
DOCS_METADATA = {"preferences": {"language": "en"}, "agent_config": {"temperature": 0.2}}
T_CREATED = 1705314600.0  # 2024-01-15T10:30:00Z


def write_docs_session(root: Path, name: str = "example-session") -> dict[str, bytes]:
    """A session in the docs' layout, written by hand as another tool would; its files' bytes."""
    directory = root / name
    directory.mkdir(parents=True)
    files = {
        "session_id.json": json.dumps(DOCS_SESSION_INFO, indent=2).encode(),
        "messages.json": json.dumps(DOCS_MESSAGES, indent=2).encode(),
        "metadata.json": json.dumps(DOCS_METADATA, indent=2).encode(),
    }
    for file_name, raw in files.items():
        (directory / file_name).write_bytes(raw)
    return files


def praisonai_session(session_id: str, messages: int = 3, archived: int = 2) -> dict[str, Any]:
    """A session file as praisonaiagents 1.7 writes it (retention moved `archived` aside)."""

    def message(i: int, prefix: str) -> dict[str, Any]:
        role = "user" if i % 2 == 0 else "assistant"
        return {"role": role, "content": f"{prefix} {i}", "timestamp": 1700000000.0 + i, "metadata": {}}

    return {
        "session_id": session_id,
        "messages": [message(i, "live") for i in range(archived, archived + messages)],
        "created_at": "2023-11-14T22:13:20+00:00",
        "updated_at": "2023-11-14T22:20:00+00:00",
        "agent_name": "Helper",
        "user_id": "u-7",
        "metadata": {"title": "Trip planning", "model": "gpt-4o-mini"},
        "gateway_session_id": "gw-1",
        "agent_id": "agent-9",
        "runtime_state": {},
        "archived_messages": [message(i, "old") for i in range(archived)],
    }


def write_praisonai_file(directory: Path, body: dict[str, Any]) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in body["session_id"])
    path = directory / f"{safe}.json"
    directory.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(body, indent=2))
    return path


# -- the docs' layout ----------------------------------------------------------------------------


def test_a_docs_layout_session_is_visible_at_once_with_its_history_times_and_fields(tmp_path: Path) -> None:
    write_docs_session(tmp_path)
    store = DefaultSessionStore(session_dir=tmp_path)
    assert store.session_exists("example-session")
    history = store.get_chat_history("example-session")
    assert [m["content"] for m in history] == [m["content"] for m in DOCS_MESSAGES["messages"]]
    session = store.get_session("example-session")
    assert session.agent_id == "FileBot"
    assert session.metadata["conversation_topic"] == "General assistance"
    assert session.metadata["preferences"] == {"language": "en"}  # from metadata.json
    assert session.messages[0].metadata == {"source": "web_interface", "ip_address": "192.168.1.1"}
    assert session.messages[0].timestamp == pytest.approx(T_CREATED + 15)
    assert "example-session" in [row["session_id"] for row in store.list_sessions()]
    store.close()


def test_adding_to_an_adopted_docs_session_keeps_the_old_messages_first_and_its_creation_time(
    tmp_path: Path,
) -> None:
    originals = write_docs_session(tmp_path)
    with DefaultSessionStore(session_dir=tmp_path) as store:
        store.add_message("example-session", "user", "And now?")
    directory = tmp_path / "example-session"
    messages = orjson.loads((directory / "messages.json").read_bytes())["messages"]
    assert [m["content"] for m in messages] == [m["content"] for m in DOCS_MESSAGES["messages"]] + [
        "And now?"
    ]
    assert messages[0]["timestamp"].startswith("2024-01-15T10:30:15")
    info = orjson.loads((directory / "session_id.json").read_bytes())
    assert info["agent_id"] == "FileBot"
    assert info["created_at"].startswith("2024-01-15T10:30:00")
    assert orjson.loads((directory / "metadata.json").read_bytes())["preferences"] == {"language": "en"}
    for name, raw in originals.items():  # kept verbatim beside, never overwritten or deleted
        assert (directory / f"{name}.adopted").read_bytes() == raw


def test_the_native_api_sees_an_adopted_session_through_read_state_and_sessions(tmp_path: Path) -> None:
    write_docs_session(tmp_path)
    with Journal(tmp_path) as j:
        assert list(j.sessions()) == ["example-session"]
        state = j.state("example-session")
        assert state is not None and state.created_at == pytest.approx(T_CREATED)
        assert [r.kind for r in j.read("example-session")] == ["meta", "message", "message", "meta", "seal"]
        assert j.verify("example-session").ok


def test_a_session_is_adopted_once_whatever_opens_it_next(tmp_path: Path) -> None:
    write_docs_session(tmp_path)
    for _ in range(3):
        with Journal(tmp_path) as j:
            assert j.exists("example-session")
            state = j.state("example-session")
            assert state is not None and len(state.messages) == 2
    with DefaultSessionStore(session_dir=tmp_path) as store:
        assert len(store.get_chat_history("example-session")) == 2


def test_a_docs_file_that_is_not_json_is_an_error_naming_it_and_nothing_changes(tmp_path: Path) -> None:
    write_docs_session(tmp_path)
    broken = tmp_path / "example-session" / "messages.json"
    broken.write_text('{"messages": [')
    before = snapshot(tmp_path)
    with Journal(tmp_path) as j:
        with pytest.raises(ForeignStoreError) as caught:
            j.state("example-session")
        assert str(broken) in str(caught.value)
        with pytest.raises(ForeignStoreError):
            j.append("example-session", {"role": "user", "content": "x"})
        with pytest.warns(RecoveryWarning, match="messages.json"):
            assert list(j.sessions()) == []
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    ("name", "body", "reason"),
    [
        ("messages.json", {"messages": {"0": "hi"}}, '"messages" is not a list'),
        ("messages.json", {"messages": [{"content": "no role"}]}, "no string role"),
        ("messages.json", {"messages": [{"role": "user", "content": {"a": 1}}]}, "content"),
        ("messages.json", {"messages": [{"role": "user", "content": "x", "timestamp": "yesterday"}]}, "time"),
        ("session_id.json", ["not", "an", "object"], "not an object"),
        ("session_id.json", {"created_at": "10000-01-01T00:00:00Z"}, "time"),
        ("metadata.json", "a string", "not an object"),
    ],
)
def test_a_docs_file_of_an_unknown_shape_is_an_error_naming_it_and_nothing_changes(
    tmp_path: Path, name: str, body: Any, reason: str
) -> None:
    write_docs_session(tmp_path)
    (tmp_path / "example-session" / name).write_text(json.dumps(body))
    before = snapshot(tmp_path)
    with Journal(tmp_path) as j, pytest.raises(ForeignStoreError, match=reason) as caught:
        j.exists("example-session")
    assert caught.value.path.endswith(name)
    assert snapshot(tmp_path) == before


def test_the_engine_never_starts_a_session_over_files_it_did_not_write(tmp_path: Path) -> None:
    from journal.log.fs import OsFileSystem
    from journal.log.session import Options, SessionLog

    write_docs_session(tmp_path)
    log = SessionLog(OsFileSystem(), str(tmp_path / "example-session"), "example-session", Options())
    with pytest.raises(ForeignStoreError):
        log.open(create=True)
    assert not (tmp_path / "example-session" / "identity.json").exists()


# -- PraisonAI's flat files ---------------------------------------------------------------------


def test_a_praisonai_file_in_the_root_is_a_session_with_its_archived_messages_first(tmp_path: Path) -> None:
    body = praisonai_session("trip/42 plan")
    source = write_praisonai_file(tmp_path, body)
    raw = source.read_bytes()
    lock = source.with_name(source.name + ".lock")
    lock.write_bytes(b"")
    store = DefaultSessionStore(session_dir=tmp_path)
    assert store.session_exists("trip/42 plan")
    assert [m["content"] for m in store.get_chat_history("trip/42 plan")] == [
        "old 0",
        "old 1",
        "live 2",
        "live 3",
        "live 4",
    ]
    session = store.get_session("trip/42 plan")
    assert (session.agent_name, session.user_id, session.agent_id) == ("Helper", "u-7", "agent-9")
    assert session.metadata["title"] == "Trip planning"
    assert session.gateway_session_id == "gw-1"
    assert not source.exists()
    assert Path(str(source) + ".adopted").read_bytes() == raw  # renamed aside, verbatim
    assert lock.exists()  # PraisonAI's lock file is not ours to remove
    store.close()


def test_listing_adopts_every_praisonai_file_and_leaves_a_broken_one_named_and_untouched(
    tmp_path: Path,
) -> None:
    for i in range(3):
        write_praisonai_file(tmp_path, praisonai_session(f"s{i}", messages=2, archived=0))
    (tmp_path / "broken.json").write_text("{not json")
    with (
        DefaultSessionStore(session_dir=tmp_path) as store,
        pytest.warns(RecoveryWarning, match="broken.json"),
    ):
        rows = store.list_sessions()
    assert sorted(row["session_id"] for row in rows) == ["s0", "s1", "s2"]
    assert (tmp_path / "broken.json").read_text() == "{not json"


def test_a_praisonai_file_of_a_session_already_in_the_journal_is_left_where_it_is(tmp_path: Path) -> None:
    with Journal(tmp_path) as j:
        j.append("s1", {"role": "user", "content": "native"})
    stray = write_praisonai_file(tmp_path, praisonai_session("s1"))
    with Journal(tmp_path) as j:
        assert list(j.sessions()) == ["s1"]
        state = j.state("s1")
        assert state is not None and [m.data["content"] for m in state.messages] == ["native"]
    assert stray.exists()


# -- import-praisonai ----------------------------------------------------------------------------


def test_import_praisonai_copies_every_session_reports_what_it_skipped_and_a_second_run_adds_nothing(
    tmp_path: Path,
) -> None:
    source = tmp_path / "praisonai"
    for i in range(3):
        write_praisonai_file(source, praisonai_session(f"s{i}", messages=3, archived=1))
    (source / "notes.json").write_text('["not a session"]')
    (source / "s0.json.lock").write_bytes(b"")
    before = snapshot(source)
    with Journal(tmp_path / "store") as j:
        dry = j.import_praisonai(source, dry_run=True)
        assert (dry.sessions, dry.messages) == (["s0", "s1", "s2"], 12)
        assert list(j.sessions()) == []
        report = j.import_praisonai(source)
        assert (sorted(report.sessions), report.messages) == (["s0", "s1", "s2"], 12)
        assert set(report.refused) == {"notes.json"} and report.skipped == {}
        again = j.import_praisonai(source)
        assert again.sessions == [] and set(again.skipped) == {"s0.json", "s1.json", "s2.json"}
        state = j.state("s1")
        assert state is not None and [m.data["content"] for m in state.messages] == [
            "old 0",
            "live 1",
            "live 2",
            "live 3",
        ]
    assert snapshot(source) == before  # the source is only read
    assert (tmp_path / "store" / "s2" / "messages.json").exists()


def test_import_praisonai_of_a_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    from journal import StoreRootError

    with Journal(tmp_path / "store") as j, pytest.raises(StoreRootError, match="not a directory"):
        j.import_praisonai(tmp_path / "nowhere")


def test_files_written_by_the_real_praisonai_store_are_adopted_whole(tmp_path: Path) -> None:
    from praisonaiagents.session import store as praison

    theirs = praison.DefaultSessionStore(session_dir=str(tmp_path), retention="compact", active_window=4)
    for i in range(10):
        theirs.add_message("chat-1", "user" if i % 2 == 0 else "assistant", f"turn {i}")
    theirs.set_agent_info("chat-1", agent_name="Planner", user_id="u1")
    raw = json.loads((tmp_path / "chat-1.json").read_text())
    assert raw["archived_messages"]  # PraisonAI moved turns aside
    with DefaultSessionStore(session_dir=tmp_path) as store:
        contents = [m["content"] for m in store.get_chat_history("chat-1")]
    assert [c for c in contents if c.startswith("turn")] == [f"turn {i}" for i in range(10)]
    assert os.path.exists(tmp_path / "chat-1.json.adopted")
