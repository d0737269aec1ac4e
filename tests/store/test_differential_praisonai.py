"""Differential test: journal's store and PraisonAI 1.7.17's (retention="keep_all") driven by the
same random operations give the same histories, working histories, listings and exports.

Documented differences (README "Differences from PraisonAI's store") are normalized here:
timestamps and times (journal stamps a record when it is written), and a None content that
PraisonAI's set_chat_history turns into "" (journal keeps None on an assistant tool-call turn).
"""

from __future__ import annotations

import tempfile
import warnings
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from journal import DefaultSessionStore

praison_store = pytest.importorskip("praisonaiagents.session.store")

SIDS = ("s1", "s/2")
TOOL_CALL = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
text = st.text(alphabet="ab ", max_size=6)
sid = st.sampled_from(SIDS)

message = st.one_of(
    st.tuples(st.sampled_from(["user", "assistant", "system"]), text, st.none(), st.none()),
    st.tuples(st.just("assistant"), st.sampled_from(["", None]), st.just([TOOL_CALL]), st.none()),
    st.tuples(st.just("tool"), text, st.none(), st.just("call_1")),
)
operation = st.one_of(
    st.tuples(
        st.just("add"), sid, message, st.dictionaries(st.sampled_from(["k", "name"]), text, max_size=1)
    ),
    st.tuples(st.just("upsert"), sid, text, st.booleans()),
    st.tuples(st.just("extend"), sid, text, st.booleans()),
    st.tuples(st.just("discard"), sid),
    st.tuples(
        st.just("meta"), sid, st.dictionaries(st.sampled_from(["model", "k", "title"]), text, min_size=1)
    ),
    st.tuples(st.just("agent"), sid, st.sampled_from(["bot", "other"])),
    st.tuples(st.just("gateway"), sid, st.sampled_from(["gw1", "gw2"])),
    st.tuples(st.just("runtime"), sid, st.sampled_from(["t1", "t2"]), st.integers(0, 3)),
    st.tuples(st.just("checkpoint"), sid, text),
    st.tuples(st.just("rename"), sid, text),
    st.tuples(st.just("clear"), sid),
    st.tuples(st.just("history"), sid, st.lists(message, max_size=3)),
    st.tuples(st.just("delete"), sid),
)


def apply(store: Any, op: tuple[Any, ...], streamed: dict[str, str]) -> None:
    kind, session_id, *args = op
    if kind == "add":
        (role, content, tool_calls, tool_call_id), metadata = args
        store.add_message(
            session_id, role, content, metadata, tool_calls=tool_calls, tool_call_id=tool_call_id
        )
    elif kind in ("upsert", "extend"):
        content, finalize = args
        if kind == "extend":
            content = streamed.get(session_id, "") + content
        streamed[session_id] = content
        store.upsert_partial_assistant_message(session_id, content, finalize=finalize)
    elif kind == "discard":
        store.discard_partial_assistant_message(session_id)
    elif kind == "meta":
        store.update_session_metadata(session_id, **args[0])
    elif kind == "agent":
        store.set_agent_info(session_id, agent_name=args[0], user_id="u")
    elif kind == "gateway":
        store.set_gateway_info(session_id, gateway_session_id=args[0], agent_id="ag")
    elif kind == "runtime":
        store.set_runtime_state(session_id, "native", args[0], {"n": args[1]})
    elif kind == "checkpoint":
        store.append_compaction_checkpoint(session_id, args[0], tokens_before=5)
    elif kind == "rename":
        store.rename_session(session_id, args[0])
    elif kind == "clear":
        store.clear_session(session_id)
    elif kind == "history":
        items = [{"role": r, "content": c, "tool_calls": t, "tool_call_id": i} for r, c, t, i in args[0]]
        store.set_chat_history(session_id, items)
    elif kind == "delete":
        store.delete_session(session_id)


def normalized(value: Any) -> Any:
    """Times removed, None content as "" (see the module docstring)."""
    if isinstance(value, dict):
        out = {
            k: normalized(v) for k, v in value.items() if k not in ("timestamp", "created_at", "updated_at")
        }
        if "content" in out and out["content"] is None:
            out["content"] = ""
        return out
    if isinstance(value, list):
        return [normalized(v) for v in value]
    return value


def observe(store: Any) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for session_id in SIDS:
        seen[session_id] = normalized(
            {
                "exists": store.session_exists(session_id),
                "chat": store.get_chat_history(session_id),
                "chat2": store.get_chat_history(session_id, max_messages=2),
                "working": store.get_working_history(session_id, max_messages=3),
                "export": store.export_session(session_id),
                "runtime": store.get_runtime_state(session_id, "native"),
                "model": store.get_session_model(session_id),
            }
        )
    rows = store.list_sessions()
    seen["list"] = sorted((r["session_id"], r["message_count"], r["agent_name"], r["agent_id"]) for r in rows)
    seen["by_agent"] = sorted(store.list_sessions_by_agent("bot"))
    gateway = store.get_by_gateway_session("gw1")
    seen["gateway"] = None if gateway is None else gateway.session_id
    return seen


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(operation, max_size=12))
def test_journal_store_matches_praisonai_store_on_random_operations(ops: list[tuple[Any, ...]]) -> None:
    with tempfile.TemporaryDirectory() as theirs_dir, tempfile.TemporaryDirectory() as ours_dir:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = praison_store.DefaultSessionStore(session_dir=theirs_dir, retention="keep_all")
        ours = DefaultSessionStore(ours_dir, durability="none")
        try:
            streamed_theirs: dict[str, str] = {}
            streamed_ours: dict[str, str] = {}
            for op in ops:
                apply(theirs, op, streamed_theirs)
                apply(ours, op, streamed_ours)
            assert observe(ours) == observe(theirs)
        finally:
            ours.journal.close()
