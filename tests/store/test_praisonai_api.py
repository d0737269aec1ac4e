"""journal's DefaultSessionStore offers PraisonAI 1.7.17's whole store API and protocols."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest

from journal import DefaultSessionStore, InvalidRecordError

praison_store = pytest.importorskip("praisonaiagents.session.store")
protocols = pytest.importorskip("praisonaiagents.session.protocols")

TOOL_CALL = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}


@pytest.fixture
def store(tmp_path: Path) -> Any:
    with DefaultSessionStore(session_dir=str(tmp_path / "s"), durability="none") as opened:
        yield opened


def public_methods(cls: type) -> set[str]:
    return {name for name, value in vars(cls).items() if callable(value) and not name.startswith("_")}


def test_every_public_method_of_praisonai_store_exists_on_journal_store() -> None:
    missing = sorted(
        n for n in public_methods(praison_store.DefaultSessionStore) if not hasattr(DefaultSessionStore, n)
    )
    assert missing == []


def test_every_constructor_argument_of_praisonai_store_is_accepted_by_journal_store() -> None:
    theirs = inspect.signature(praison_store.DefaultSessionStore.__init__).parameters
    ours = inspect.signature(DefaultSessionStore.__init__).parameters
    missing = [name for name in theirs if name not in ours]
    assert missing == []
    positional = [n for n, p in theirs.items() if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert [n for n, p in ours.items() if p.kind is p.POSITIONAL_OR_KEYWORD][: len(positional)] == positional


def test_public_method_parameters_match_praisonai_names(tmp_path: Path) -> None:
    for name in public_methods(praison_store.DefaultSessionStore):
        theirs = list(inspect.signature(getattr(praison_store.DefaultSessionStore, name)).parameters)
        ours = list(inspect.signature(getattr(DefaultSessionStore, name)).parameters)
        assert [p for p in theirs if p not in ours] == [], name


@pytest.mark.parametrize(
    "protocol",
    [
        "SessionStoreProtocol",
        "IncrementalSessionStoreProtocol",
        "PortableSessionStoreProtocol",
        "SearchableSessionStoreProtocol",
        "RuntimeStateMirroringProtocol",
    ],
)
def test_store_satisfies_praisonai_protocol(store: DefaultSessionStore, protocol: str) -> None:
    assert isinstance(store, getattr(protocols, protocol))


@pytest.mark.parametrize("role", ["user", "system", "tool", "assistant"])
def test_none_content_without_tool_calls_is_refused_and_nothing_written(
    store: DefaultSessionStore, role: str
) -> None:
    with pytest.raises(InvalidRecordError, match="content"):
        store.add_message("s", role, None)
    assert not store.session_exists("s")


def test_none_content_is_accepted_on_an_assistant_tool_call_turn_and_empty_text_always(
    store: DefaultSessionStore,
) -> None:
    store.add_message("s", "assistant", None, tool_calls=[TOOL_CALL])
    store.add_message("s", "assistant", "", tool_calls=[TOOL_CALL])
    store.add_message("s", "user", "")
    assert [m["content"] for m in store.get_chat_history("s")] == [None, "", ""]


def test_tool_result_with_none_content_is_refused(store: DefaultSessionStore) -> None:
    with pytest.raises(InvalidRecordError):
        store.add_message("s", "tool", None, tool_call_id="call_1")
    assert store.get_chat_history("s") == []


def test_checkpoint_gives_summary_then_later_messages_and_clear_drops_it(store: DefaultSessionStore) -> None:
    store.add_user_message("s", "q1")
    store.add_assistant_message("s", "a1")
    assert store.append_compaction_checkpoint("s", "   ") is False
    assert store.append_compaction_checkpoint("s", "summary", tokens_before=9) is True
    store.add_user_message("s", "q2")
    assert store.get_working_history("s") == [
        {"role": "system", "content": "summary"},
        {"role": "user", "content": "q2"},
    ]
    assert store.get_session("s").last_compaction is not None
    assert len(store.get_chat_history("s")) == 3  # the full history is still there
    store.clear_session("s")
    assert store.get_session("s").last_compaction is None


def test_session_fields_live_in_the_log_and_read_back_in_a_new_store(tmp_path: Path) -> None:
    first = DefaultSessionStore(str(tmp_path), durability="none")
    first.set_gateway_info("s", gateway_session_id="gw-1", agent_id="ag-1")
    first.set_runtime_state("s", "native", "t1", {"ids": [1]})
    first.rename_session("s", "  Title ")
    first.merge_session_metadata_map("s", "flags", {"a": 1}, defaults={"b": 2})
    first.update_session_metadata("s", model="m1", reasoning_effort="high")
    first.close()
    store = DefaultSessionStore(str(tmp_path), durability="none")
    session = store.get_session("s")
    assert (session.gateway_session_id, session.agent_id) == ("gw-1", "ag-1")
    assert store.get_runtime_state("s", "native") == {"t1": {"ids": [1]}}
    assert session.metadata == {
        "title": "Title",
        "flags": {"a": 1, "b": 2},
        "model": "m1",
        "reasoning_effort": "high",
    }
    assert store.get_session_model("s") == "m1"
    assert store.get_session_reasoning_effort("s") == "high"
    assert store.get_by_gateway_session("gw-1").session_id == "s"  # type: ignore[union-attr]
    assert store.list_sessions_by_gateway_agent("ag-1") == ["s"]
    store.clear_runtime_state("s", "native")
    assert store.get_runtime_state("s", "native") == {}
    store.rename_session("s", " ")
    assert "title" not in store.get_session("s").metadata
    store.close()


def test_agent_lookups_find_the_agents_sessions(store: DefaultSessionStore) -> None:
    store.set_agent_info("a", agent_name="bot")
    store.add_user_message("a", "hi")
    store.set_agent_info("b", agent_name="other")
    assert store.list_sessions_by_agent("bot") == ["a"]
    assert [s.session_id for s in store.get_sessions_by_agent("bot")] == ["a"]
    assert store.get_agent_chat_history("bot") == [
        {"role": "user", "content": "hi", "session_id": "a", "agent_name": "bot"}
    ]


def test_search_window_and_recent_have_praisonai_shapes(store: DefaultSessionStore) -> None:
    for i in range(6):
        store.add_user_message("s", f"talk {i} about paris weather")
    store.add_user_message("t", "nothing")
    hits = store.search("paris", window=1)
    assert [h.session_id for h in hits] == ["s"]
    hit = hits[0].as_dict()
    assert set(hit) == set(protocols.SessionHit("x", bookends={"o": []}).as_dict())
    assert [m["index"] for m in hit["messages"]] == [0, 1]
    assert store.search("") == []
    assert [m["index"] for m in store.window("s", "3", window=1)] == [2, 3, 4]
    assert [m["index"] for m in store.window("s", "bogus", window=0)] == [5]
    assert {r.session_id for r in store.recent()} == {"s", "t"}
    assert set(store.recent()[0].as_dict()) == set(protocols.SessionSummary("x").as_dict())


def test_export_import_round_trips_and_reports_skips(tmp_path: Path) -> None:
    source = DefaultSessionStore(str(tmp_path / "a"), durability="none")
    source.add_message("s", "assistant", None, tool_calls=[TOOL_CALL])
    source.add_message("s", "tool", "ok", tool_call_id="call_1")
    source.set_gateway_info("s", gateway_session_id="gw")
    payload = source.export_all()
    assert payload["version"] == 1 and [s["session_id"] for s in payload["sessions"]] == ["s"]
    target = DefaultSessionStore(str(tmp_path / "b"), durability="none")
    report = target.import_sessions(
        {"version": 1, "sessions": [*payload["sessions"], 3, {}, payload["sessions"][0]]}
    )
    assert report.imported == 1
    assert [s["reason"] for s in report.skipped] == [
        "malformed record at index 1",
        "missing session_id at index 2",
        "duplicate in payload",
    ]
    assert target.get_chat_history("s") == source.get_chat_history("s")
    assert target.get_session("s").gateway_session_id is None  # live fields reset
    again = target.import_sessions(payload)
    assert again.skipped == [{"session_id": "s", "reason": "already exists (use overwrite)"}]
    assert target.import_sessions({"version": 2, "sessions": []}).imported == 0
    assert target.export_session("nope") == {"version": 1, "sessions": []}
    source.close()
    target.close()


def test_retention_windows_what_is_returned_never_what_is_kept(tmp_path: Path) -> None:
    store = DefaultSessionStore(str(tmp_path), retention="truncate", active_window=3, durability="none")
    for i in range(10):
        store.add_user_message("s", f"m{i}")
    assert [m["content"] for m in store.get_chat_history("s")] == ["m7", "m8", "m9"]
    assert len(store.get_chat_history("s", max_messages=0)) == 10
    assert len(store.get_session("s").messages) == 10
    with pytest.raises(ValueError, match="retention"):
        DefaultSessionStore(str(tmp_path), retention="forget")
    store.close()


def test_mirror_receives_added_and_finalized_messages_only(tmp_path: Path) -> None:
    class Sink:
        def __init__(self) -> None:
            self.records: list[dict[str, Any]] = []

        def append(self, session_id: str, records: list[dict[str, Any]]) -> None:
            self.records += records

    sink = Sink()
    store = DefaultSessionStore(str(tmp_path), mirror=sink, durability="none")
    store.add_user_message("s", "hi")
    store.upsert_partial_assistant_message("s", "He")
    store.upsert_partial_assistant_message("s", "Hello", finalize=True)
    assert store.flush_mirror(timeout=5)
    assert [(r["role"], r["content"], r["session_id"]) for r in sink.records] == [
        ("user", "hi", "s"),
        ("assistant", "Hello", "s"),
    ]
    store.close_mirror()
    store.close()
