"""Streamed assistant turns: edit records cost the new text only and fold to one message."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import pytest

from journal import DefaultSessionStore, Journal
from journal.log.record import BadLine, decode, encode
from journal.log.state import fold

FORMAT_MD = Path(__file__).resolve().parents[2] / "FORMAT.md"
TOOL_CALL = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}


def edit_golden_lines() -> list[bytes]:
    section = FORMAT_MD.read_text().split("### Edit records", 1)[1]
    block = re.search(r"```\n(\{\"xxh3.*?)```", section, re.S)
    assert block is not None
    return [line.encode() for line in block.group(1).splitlines()]


def log_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("log/*.jsonl"))


def stream(store: DefaultSessionStore, sid: str, text: str, flushes: int) -> None:
    step = max(1, len(text) // flushes)
    for end in range(step, len(text) + 1, step):
        store.upsert_partial_assistant_message(sid, text[:end])


def test_edit_golden_example_in_format_md_decodes_and_folds() -> None:
    records = [decode(line) for line in edit_golden_lines()]
    assert [(r.seq, r.kind) for r in records] == [(1, "message"), (2, "message"), (3, "edit"), (4, "edit")]
    state = fold(records)
    assert [m.data for m in state.messages] == [
        {"role": "user", "content": "Weather?", "metadata": {}},
        {"role": "assistant", "content": "It is sunny today.", "metadata": {}},
    ]
    assert (state.messages[1].seq, state.messages[1].ts) == (2, 1732406401.4)


def test_edit_record_is_version_2_and_other_kinds_stay_version_1() -> None:
    assert b'"v":2,' in encode(3, 1.0, "edit", b'{"of":1}')
    assert b'"v":1,' in encode(3, 1.0, "message", b"{}")


def test_an_edit_record_claiming_version_1_is_not_a_record() -> None:
    line = edit_golden_lines()[2].replace(b'"v":2', b'"v":1')
    with pytest.raises(BadLine):
        decode(line)


def test_200_upserts_of_a_10kb_answer_log_about_its_length_and_fold_to_one_message(tmp_path: Path) -> None:
    text = "".join(f"word{i} " for i in range(1500))[:10_000]
    store = DefaultSessionStore(str(tmp_path), durability="none")
    store.add_user_message("s", "q")
    before = log_bytes(tmp_path)
    stream(store, "s", text, 200)
    store.upsert_partial_assistant_message("s", text, finalize=True)
    written = log_bytes(tmp_path) - before
    assert written < 4 * len(text)  # rewriting the whole text per flush would be ~1 MB
    assert store.get_chat_history("s") == [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": text},
    ]
    assert store.get_session("s").messages[-1].metadata == {}
    store.close()


def test_an_interrupted_stream_keeps_the_last_flushed_text_in_a_new_store(tmp_path: Path) -> None:
    store = DefaultSessionStore(str(tmp_path), durability="none")
    stream(store, "s", "The answer is forty-two.", 6)
    store.journal.close()  # no finalize, no compaction: a crash after the last flush
    again = DefaultSessionStore(str(tmp_path), durability="none")
    last = again.get_session("s").messages[-1]
    assert (last.content, last.metadata) == ("The answer is forty-two.", {"partial": True})
    again.close()


def test_finalize_with_empty_content_removes_the_partial_and_discard_removes_it(tmp_path: Path) -> None:
    store = DefaultSessionStore(str(tmp_path), durability="none")
    store.add_user_message("s", "q")
    store.upsert_partial_assistant_message("s", "half")
    store.upsert_partial_assistant_message("s", "", finalize=True)
    assert store.get_chat_history("s") == [{"role": "user", "content": "q"}]
    store.upsert_partial_assistant_message("s", "again")
    store.discard_partial_assistant_message("s")
    assert store.get_chat_history("s") == [{"role": "user", "content": "q"}]
    store.upsert_partial_assistant_message("s", "", finalize=True)  # no partial: nothing written
    store.discard_partial_assistant_message("s")
    assert len(list(store.journal.read("s"))) == 5
    store.close()


def test_a_non_extending_flush_replaces_the_text(tmp_path: Path) -> None:
    store = DefaultSessionStore(str(tmp_path), durability="none")
    store.upsert_partial_assistant_message("s", "Hello wrld")
    store.upsert_partial_assistant_message("s", "Hello world")
    assert store.get_chat_history("s") == [{"role": "assistant", "content": "Hello world"}]
    store.close()


def test_a_partial_followed_by_another_message_is_never_edited_again(tmp_path: Path) -> None:
    store = DefaultSessionStore(str(tmp_path), durability="none")
    store.upsert_partial_assistant_message("s", "one")
    store.add_user_message("s", "interrupt")
    store.upsert_partial_assistant_message("s", "two", finalize=True)
    session = store.get_session("s")
    assert [(m.content, m.metadata) for m in session.messages] == [
        ("one", {"partial": True}),
        ("interrupt", {}),
        ("two", {}),
    ]
    store.close()


@pytest.mark.parametrize("compact_at", [0, 1, 3, 5])
def test_compaction_folds_partial_and_edits_the_same_as_the_live_fold(
    tmp_path: Path, compact_at: int
) -> None:
    store = DefaultSessionStore(str(tmp_path), durability="none")
    steps: list[Any] = [
        lambda: store.add_user_message("s", "q"),
        lambda: store.upsert_partial_assistant_message("s", "Hel"),
        lambda: store.upsert_partial_assistant_message("s", "Hello"),
        lambda: store.upsert_partial_assistant_message("s", "Hello, wor"),
        lambda: store.upsert_partial_assistant_message("s", "Hello, world", finalize=True),
        lambda: store.upsert_partial_assistant_message("s", "tail"),
        lambda: store.upsert_partial_assistant_message("s", "tail end"),
    ]
    for index, step in enumerate(steps):
        if index == compact_at:
            store.compact("s")
        step()
    live = [(m.role, m.content, m.metadata, m.timestamp) for m in store.get_session("s").messages]
    store.compact("s")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cold = DefaultSessionStore(str(tmp_path), durability="none")
        folded = [(m.role, m.content, m.metadata, m.timestamp) for m in cold.get_session("s").messages]
        assert cold.get_chat_history("s")[-1] == {"role": "assistant", "content": "tail end"}
    assert folded == live
    assert [c for _, c, _, _ in live] == ["q", "Hello, world", "tail end"]
    assert store.journal.verify("s").ok
    store.close()
    cold.close()


def test_an_edit_after_compaction_changes_the_snapshot_message(tmp_path: Path) -> None:
    store = DefaultSessionStore(str(tmp_path), durability="none")
    store.upsert_partial_assistant_message("s", "abc")
    store.close()  # compacts: the partial is now a line of messages.json
    cold = DefaultSessionStore(str(tmp_path), durability="none")
    cold.upsert_partial_assistant_message("s", "abcdef")
    assert cold.get_chat_history("s") == [{"role": "assistant", "content": "abcdef"}]
    fresh = DefaultSessionStore(str(tmp_path), durability="none")
    assert fresh.get_chat_history("s") == [{"role": "assistant", "content": "abcdef"}]
    cold.close()
    fresh.close()


def test_a_version_1_reader_refuses_an_edit_record_instead_of_misreading(
    tmp_path: Path, monkeypatch: Any
) -> None:
    import journal.log.record as record

    store = DefaultSessionStore(str(tmp_path), durability="none")
    store.upsert_partial_assistant_message("s", "a")
    store.upsert_partial_assistant_message("s", "ab")
    store.journal.close()
    monkeypatch.setattr(record, "RECORD_VERSIONS", frozenset({1}))
    from journal import UnsupportedFormatError

    with Journal(tmp_path) as old, pytest.raises(UnsupportedFormatError):
        old.state("s")
