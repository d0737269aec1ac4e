"""A cold `get_chat_history` (a new process reading a compacted session): it decodes the very
bytes whose hash it checked, keeps none of the parsed snapshot lines (only the bytes, parsed
again if records are asked for), and every later read still sees exactly the records."""

from __future__ import annotations

import gc
import os
from pathlib import Path
from typing import Any

import pytest

from journal import DefaultSessionStore, Journal
from journal.log.chat import llm_message
from journal.log.coldread import decode_chat
from journal.log.fs import OsFileSystem
from journal.log.record import MESSAGE, Record
from journal.log.snapshot import JOURNAL_KEY, decode_messages, encode_messages

SID = "cold"


def _history(tag: str, count: int) -> list[dict[str, Any]]:
    """Messages whose lines the collector tracks (a metadata dict each), some with tool fields."""
    out: list[dict[str, Any]] = []
    for i in range(count):
        message: dict[str, Any] = {"role": "user", "content": f"{tag}-{i}", "metadata": {"i": i}}
        if i % 5 == 3:
            call = [{"id": f"c{i}", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
            message = {"role": "assistant", "content": f"{tag}-{i}", "metadata": {}, "tool_calls": call}
        elif i % 5 == 4:
            message = {"role": "tool", "content": f"{tag}-{i}", "metadata": {}, "tool_call_id": f"c{i - 1}"}
        out.append(message)
    return out


def _compacted(root: Path, messages: list[dict[str, Any]]) -> None:
    with DefaultSessionStore(root) as store:  # closing writes messages.json
        store.set_chat_history(SID, messages)
    assert (root / SID / "messages.json").exists()


def _live_lines(tag: str) -> int:
    """Parsed snapshot lines of this test still alive: dicts holding a stamp and our content."""
    gc.collect()
    return sum(
        1
        for o in gc.get_objects()
        if type(o) is dict and JOURNAL_KEY in o and str(o.get("content", "")).startswith(tag)
    )


def test_a_cold_history_keeps_no_parsed_snapshot_line_and_later_reads_see_every_record(
    tmp_path: Path,
) -> None:
    tag = f"keep-none-{os.getpid()}"
    messages = _history(tag, 60)
    _compacted(tmp_path, messages)
    with DefaultSessionStore(tmp_path) as store:
        history = store.get_chat_history(SID)
        assert history == [llm_message(m) for m in messages]
        assert _live_lines(tag) == 0  # the lines were dropped region by region, not kept
        # The window is found from the chat dicts' roles, as from the messages'.
        assert store.get_chat_history(SID, max_messages=7) == history[-7:]
        assert store.get_chat_history(SID, max_messages=6) == history[-5:]  # not on a tool result
        history[0]["content"] = "changed by the caller"
        assert store.get_chat_history(SID)[0]["content"] == f"{tag}-0"  # new dicts each call
        # Records asked for later: parsed again from the bytes that were checked.
        state = store.journal.state(SID)
        assert state is not None and [r.data for r in state.messages] == messages
        assert [r.seq for r in state.messages] == [
            r.seq for r in store.journal.read(SID) if r.kind == "message"
        ]
        store.add_message(SID, "user", "one more")
        assert store.get_chat_history(SID) == [llm_message(m) for m in messages] + [
            {"role": "user", "content": "one more"}
        ]


def test_a_pop_after_a_cold_history_removes_the_snapshot_last_message(tmp_path: Path) -> None:
    tag = f"pop-{os.getpid()}"
    messages = _history(tag, 12)
    _compacted(tmp_path, messages)
    with DefaultSessionStore(tmp_path) as store:
        assert len(store.get_chat_history(SID)) == 12 and _live_lines(tag) == 0  # lines not kept
        last = store.journal.state(SID)
        assert last is not None
        store.journal.append_batch(SID, [("pop", {"of": last.messages[-1].seq}, None)])
        assert store.get_chat_history(SID) == [llm_message(m) for m in messages[:-1]]


class _EditsOnSecondOpen(OsFileSystem):
    """messages.json reads as written on its first open; from the second, one message differs
    (same length, still journal's layout): what a hand edit racing a reader could show."""

    def __init__(self) -> None:
        super().__init__()
        self.opens: dict[int, int] = {}
        self.count = 0

    def open(self, path: str, *, create: bool, mode: int) -> int:
        fd = super().open(path, create=create, mode=mode)
        if path.endswith("messages.json"):
            self.count += 1
            self.opens[fd] = self.count
        else:
            self.opens.pop(fd, None)
        return fd

    def pread(self, fd: int, size: int, offset: int) -> bytes:
        data = super().pread(fd, size, offset)
        return data.replace(b"orig-1", b"EDIT-1") if self.opens.get(fd, 0) > 1 else data


def test_a_cold_history_decodes_the_very_bytes_whose_hash_it_checked(tmp_path: Path) -> None:
    messages = [{"role": "user", "content": f"orig-{i}", "metadata": {}} for i in range(3)]
    _compacted(tmp_path, messages)
    fs = _EditsOnSecondOpen()
    with DefaultSessionStore(tmp_path, fs=fs) as store:
        history = store.get_chat_history(SID)
    # Read twice (hashed, then decoded), the edit would be returned as if compaction wrote it.
    assert [m["content"] for m in history] == ["orig-0", "orig-1", "orig-2"]
    assert fs.count == 1


def test_a_journal_state_after_a_cold_chat_read_equals_a_cold_state(tmp_path: Path) -> None:
    tag = f"same-{os.getpid()}"
    messages = _history(tag, 25)
    _compacted(tmp_path, messages)
    with Journal(tmp_path) as plain:
        expected = plain.state(SID)
    del plain
    with DefaultSessionStore(tmp_path) as store:
        store.get_chat_history(SID)
        assert _live_lines(tag) == 0  # only the bytes are kept: the records come from them
        state = store.journal.state(SID)
    assert expected is not None and state is not None
    assert state.messages == expected.messages and state.metadata == expected.metadata
    assert state.last_seq == expected.last_seq and state.lines is None


DATA: list[Any] = [
    {"role": "user", "content": "x", "metadata": {"_journal": {"seq": 1}}},  # a nested stamp key
    {"role": "assistant", "content": None, "tool_calls": [{"id": "c1"}]},
    {"role": "user", "content": "x", "timestamp": "mine"},  # an object stamp keeps it
    {"role": "user", "content": "x", "_journal": {"seq": -1}},  # the data kept whole
    "not a dict",
    {},
]


@pytest.mark.parametrize("verified", [True, False])
@pytest.mark.parametrize("region_bytes", [1, 1 << 20])
def test_the_chat_of_a_cold_read_is_the_strict_decoders_whatever_the_stamps(
    verified: bool, region_bytes: int
) -> None:
    records = [Record(i + 1, 1705314615.25 + i, MESSAGE, DATA[i % len(DATA)], i % 2) for i in range(12)]
    whole = encode_messages(records, 1.5, 12)
    chat: list[dict[str, Any]] = []
    lines, trailer = decode_chat(whole, chat, region_bytes, verified)
    strict, strict_trailer = decode_messages(whole)
    assert strict == records and trailer == strict_trailer and len(lines) == len(records)
    assert chat == [llm_message(r.data) for r in records]
    assert lines.records() == records  # parsed again from the bytes
    assert [llm_message(view) for view in lines.views] == chat
