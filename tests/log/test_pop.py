"""Pop records (FORMAT.md "Pop records"): the last message removed by a logged record."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from journal import InvalidRecordError, Journal, UnsupportedFormatError
from journal.log.record import BadLine, Record, decode, encode
from journal.log.state import SessionState, fold

FORMAT_MD = Path(__file__).resolve().parents[2] / "FORMAT.md"


def pop_golden_lines() -> list[bytes]:
    section = FORMAT_MD.read_text().split("### Pop records", 1)[1]
    block = re.search(r"```\n(\{\"xxh3.*?)```", section, re.S)
    assert block is not None
    return [line.encode() for line in block.group(1).splitlines()]


def say(text: str, role: str = "user") -> dict[str, Any]:
    return {"role": role, "content": text}


def pop(j: Journal, sid: str, of: int) -> int:
    return j.append_batch(sid, [("pop", {"of": of}, None)])[0]


def contents(state: SessionState | None) -> list[Any]:
    assert state is not None
    return [m.data["content"] for m in state.messages]


def test_pop_golden_example_in_format_md_decodes_and_folds() -> None:
    records = [decode(line) for line in pop_golden_lines()]
    assert [(r.seq, r.kind) for r in records] == [
        (1, "message"),
        (2, "message"),
        (3, "pop"),
        (4, "message"),
        (5, "pop"),
    ]
    state = fold(records)
    assert [(m.seq, m.data["content"]) for m in state.messages] == [(1, "2+2?"), (4, "4")]
    assert state.updated_at == 1732406404.0 and state.last_seq == 5


def test_the_golden_example_is_a_valid_segment_journal_reads(tmp_path: Path) -> None:
    session = tmp_path / "golden"
    (session / "log").mkdir(parents=True)
    (session / "identity.json").write_bytes(orjson.dumps({"format": 1, "session_id": "golden"}))
    (session / "log" / "00000000000000000001.jsonl").write_bytes(b"\n".join(pop_golden_lines()) + b"\n")
    with Journal(tmp_path) as j:
        assert contents(j.state("golden")) == ["2+2?", "4"]
        assert j.verify("golden").ok


def test_pop_record_is_version_3_and_claiming_an_older_version_is_not_a_record() -> None:
    assert b'"v":3,' in encode(3, 1.0, "pop", b'{"of":1}')
    for older in (b'"v":1', b'"v":2'):
        with pytest.raises(BadLine):
            decode(pop_golden_lines()[2].replace(b'"v":3', older))


def test_a_version_2_reader_refuses_a_pop_record_instead_of_showing_the_popped_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import journal.log.record as record

    with Journal(tmp_path, durability="none") as j:
        j.append_many("s", [say("a"), say("b")])
        pop(j, "s", 2)
    monkeypatch.setattr(record, "RECORD_VERSIONS", frozenset({1, 2}))
    with Journal(tmp_path) as old, pytest.raises(UnsupportedFormatError):
        old.state("s")


def test_pops_take_the_last_messages_one_after_another(tmp_path: Path) -> None:
    with Journal(tmp_path, durability="none") as j:
        j.append_many("s", [say("a"), say("b"), say("c")])
        pop(j, "s", 3)
        pop(j, "s", 2)
        assert contents(j.state("s")) == ["a"]
    with Journal(tmp_path) as cold:  # and the same read from disk by a new process
        assert contents(cold.state("s")) == ["a"]


def test_a_pop_of_a_message_that_is_not_the_last_changes_nothing_but_the_time(tmp_path: Path) -> None:
    with Journal(tmp_path, durability="none") as j:
        j.append_many("s", [say("a"), say("b")])
        before = j.state("s")
        seq = pop(j, "s", 1)  # 1 is not the last message
        pop(j, "s", 99)  # no such record
        after = j.state("s")
        assert before is not None and after is not None
        assert after.messages == before.messages
        assert after.updated_at is not None and before.updated_at is not None
        assert after.updated_at >= before.updated_at and after.last_seq == seq + 1


def test_a_pop_after_a_clear_or_on_an_empty_session_changes_nothing(tmp_path: Path) -> None:
    with Journal(tmp_path, durability="none") as j:
        pop(j, "empty", 1)
        assert contents(j.state("empty")) == []
        j.append("s", say("a"))
        j.clear("s")
        pop(j, "s", 1)
        j.append("s", say("b"))
        assert contents(j.state("s")) == ["b"]


def test_a_pop_reaches_into_the_snapshot_after_compaction(tmp_path: Path) -> None:
    with Journal(tmp_path, durability="none") as j:
        j.append_many("s", [say("a"), say("b"), say("c")])
        j.compact("s")
    with Journal(tmp_path, durability="none") as cold:  # its state starts from messages.json
        pop(cold, "s", 3)
        pop(cold, "s", 2)
        assert contents(cold.state("s")) == ["a"]
        assert cold.state("s") == fold(cold.read("s"))


def test_get_chat_history_of_the_store_follows_pops(tmp_path: Path) -> None:
    from journal import DefaultSessionStore

    with DefaultSessionStore(str(tmp_path), durability="none") as store:
        store.add_message("s", "user", "a")
        store.add_message("s", "assistant", "b")
        store.close()  # compacted: "b" is a snapshot line, read through the chat path
        pop(store.journal, "s", 2)
        assert [m["content"] for m in store.get_chat_history("s")] == ["a"]


@pytest.mark.parametrize(
    "data",
    [{}, {"of": 0}, {"of": -1}, {"of": True}, {"of": "1"}, {"of": 1.0}, {"of": 1, "x": 2}, [1], None],
)
def test_a_pop_that_names_no_record_is_refused_and_writes_nothing(tmp_path: Path, data: Any) -> None:
    with Journal(tmp_path, durability="none") as j:
        j.append("s", say("a"))
        with pytest.raises(InvalidRecordError):
            j.append_batch("s", [("pop", data, None)])
        assert [r.kind for r in j.read("s")] == ["message"]


def test_a_pop_in_a_batch_with_messages_applies_in_order(tmp_path: Path) -> None:
    with Journal(tmp_path, durability="none") as j:
        j.append("s", say("a"))
        j.append_batch(
            "s", [("message", say("b"), None), ("pop", {"of": 2}, None), ("message", say("c"), None)]
        )
        assert contents(j.state("s")) == ["a", "c"]
        assert [r.kind for r in j.read("s")] == ["message", "message", "pop", "message"]
        assert all(isinstance(r, Record) for r in j.read("s"))


def test_stats_count_the_current_messages_and_search_still_finds_a_popped_one(tmp_path: Path) -> None:
    with Journal(tmp_path, durability="none") as j:
        j.append_many("s", [say("alpha"), say("beta", "assistant")])
        pop(j, "s", 2)
        stats = j.stats()  # read from the live log: the pop is not compacted yet
        assert (stats.total_messages, stats.messages_by_role) == (1, {"user": 1})
        assert [(h.seq, h.role) for h in j.search("beta")] == [(2, "assistant")]  # still on disk
