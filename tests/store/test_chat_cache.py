"""`get_chat_history` keeps the LLM messages of a session it has read and copies them on each
call (`SessionState.chat`): every call must still return new dicts, and whatever changes the
history (a new message, a clear, a pop, a streamed edit, a write by another store) must show
exactly as a cold read of the same store shows it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from journal import DefaultSessionStore


def cold(root: Path, sid: str = "s") -> list[dict[str, Any]]:
    with DefaultSessionStore(root, view_lag=None) as fresh:
        return fresh.get_chat_history(sid)


def test_each_read_returns_new_dicts_and_a_changed_dict_does_not_reach_the_next_read(tmp_path: Path) -> None:
    with DefaultSessionStore(tmp_path, durability="none") as store:
        store.add_message("s", "user", "hi")
        store.add_message("s", "assistant", "hello", tool_calls=None)
        first = store.get_chat_history("s")
        first[0]["content"] = "changed by the caller"
        first[1]["role"] = "system"
        first.append({"role": "user", "content": "not stored"})
        second = store.get_chat_history("s")
        assert second == [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
        assert all(a is not b for a, b in zip(first[:2], second, strict=True))


def test_after_a_cold_read_the_history_follows_every_kind_of_change(tmp_path: Path) -> None:
    with DefaultSessionStore(tmp_path, durability="none") as writer:
        writer.set_chat_history("s", [{"role": "user", "content": f"m{i}"} for i in range(20)])
    with DefaultSessionStore(tmp_path, durability="none", view_lag=None) as store:
        assert len(store.get_chat_history("s")) == 20  # from the snapshot: the chat is made here
        store.add_message("s", "assistant", "new")
        assert store.get_chat_history("s") == cold(tmp_path)
        store.upsert_partial_assistant_message("s", "stream")
        store.upsert_partial_assistant_message("s", "streamed text")  # an edit of the last message
        assert store.get_chat_history("s")[-1] == {"role": "assistant", "content": "streamed text"}
        assert store.get_chat_history("s") == cold(tmp_path)
        store.discard_partial_assistant_message("s")
        assert store.get_chat_history("s")[-1]["content"] == "new"
        assert store.get_chat_history("s") == cold(tmp_path)
        state = store.journal.state("s")
        assert state is not None
        store.journal.append_batch("s", [("pop", {"of": state.messages[-1].seq}, None)])
        assert store.get_chat_history("s")[-1]["content"] == "m19"
        assert store.get_chat_history("s") == cold(tmp_path)
        store.clear_session("s")
        assert store.get_chat_history("s") == [] == cold(tmp_path)
        store.add_message("s", "user", "after the clear")
        assert store.get_chat_history("s") == [{"role": "user", "content": "after the clear"}]


def test_a_write_by_another_store_shows_in_the_next_read(tmp_path: Path) -> None:
    with (
        DefaultSessionStore(tmp_path, durability="none", view_lag=None) as reader,
        DefaultSessionStore(tmp_path, durability="none", view_lag=None) as writer,
    ):
        writer.add_message("s", "user", "one")
        assert [m["content"] for m in reader.get_chat_history("s")] == ["one"]
        writer.add_message("s", "assistant", "two")
        writer.set_chat_history("s", [{"role": "user", "content": "replaced"}])
        assert [m["content"] for m in reader.get_chat_history("s")] == ["replaced"]
        assert reader.get_chat_history("s", max_messages=1) == [{"role": "user", "content": "replaced"}]
