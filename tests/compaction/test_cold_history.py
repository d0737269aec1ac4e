"""A cold `get_chat_history`: messages.json's lines are read as they are, not made into
records, and give exactly what the records give; the stamp string of format 2 and the object
stamp of format 1 both read."""

from __future__ import annotations

import errno
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from journal import DefaultSessionStore, Journal, UnsupportedFormatError
from journal.log import archive, reader
from journal.log.chat import llm_message
from journal.log.coldread import decode_lines
from journal.log.manifest import MANIFEST_FORMAT
from journal.log.record import MESSAGE, Record
from journal.log.snapshot import (
    BadSnapshot,
    MessagesReader,
    decode_message,
    decode_messages,
    encode_message,
    encode_messages,
)
from journal.log.state import SessionState

SID = "chat"
DATA: list[Any] = [
    {"role": "user", "content": "x", "metadata": {"i": 1}},
    {"role": "assistant", "content": None, "tool_calls": [{"id": "c1"}]},
    {"role": "tool", "content": "42", "tool_call_id": "c1"},
    {"role": "user", "content": "x", "timestamp": "mine"},
    {"role": "user", "content": "x", "_journal": {"seq": -1}},
    {"role": 7, "content": ["part"]},
    "not a dict",
    {},
]
RECORDS = [Record(i + 1, 1705314615.123456 + i, MESSAGE, DATA[i % len(DATA)], i % 3) for i in range(24)]


def streamed(whole: bytes) -> list[Record]:
    return list(MessagesReader([whole]).records())


# -- the stamp ---------------------------------------------------------------------------------


def test_a_plain_message_carries_its_stamp_as_one_string_the_golden_line() -> None:
    record = Record(41, 1705314615.0, MESSAGE, {"role": "user", "content": "Hi"}, 2)
    line = encode_message(record)
    assert line == (
        b'{"role":"user","content":"Hi","timestamp":"2024-01-15T10:30:15.000Z","_journal":"41,1705314615.0,2"}'
    )
    assert decode_message(line) == record
    alone = Record(42, 1705314615.123456, MESSAGE, {"role": "user", "content": "Hi"})
    assert orjson.loads(encode_message(alone))["_journal"] == "42,1705314615.123456"


def test_data_that_a_string_stamp_cannot_carry_keeps_the_object_stamp() -> None:
    for record in RECORDS:
        stamp = orjson.loads(encode_message(record))["_journal"]
        plain = isinstance(record.data, dict) and not {"timestamp", "_journal"} & record.data.keys()
        assert isinstance(stamp, str) == plain
        assert decode_message(encode_message(record)) == record


def test_a_ts_that_does_not_print_as_plain_decimals_keeps_the_object_stamp() -> None:
    record = Record(3, 1e-7, MESSAGE, {"role": "user", "content": "x"})
    assert isinstance(orjson.loads(encode_message(record))["_journal"], dict)
    assert decode_message(encode_message(record)) == record


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(min_value=-1e12, max_value=1e12, allow_nan=False),
            st.integers(0, 10**9 - 1),
            st.integers(1, 10**18),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_a_run_of_stamps_converted_at_once_gives_what_each_stamp_gives_alone(
    stamps: list[tuple[float, int, int]],
) -> None:
    records = [Record(seq, ts, MESSAGE, {"role": "user", "content": "x"}, more) for ts, more, seq in stamps]
    whole = encode_messages(records, 1.5, 99)
    lines = [line.strip().rstrip(b",") for line in whole.split(b"\n")[2 : 2 + len(records)]]
    assert [decode_message(line) for line in lines] == records  # a regex and conversions a line
    assert decode_messages(whole)[0] == records  # one regex and one orjson.loads a region
    assert streamed(whole) == records


# -- decode_lines gives what the records give ----------------------------------------------------


@pytest.mark.parametrize("region_bytes", [1, 64, 300, 1 << 20])
@pytest.mark.parametrize("count", [1, 2, len(RECORDS)])
def test_lines_make_the_records_and_chat_the_strict_decoder_makes(region_bytes: int, count: int) -> None:
    whole = encode_messages(RECORDS[:count], 1.5, 99)
    chat: list[dict[str, Any]] = []
    lines, trailer = decode_lines(whole, region_bytes, chat)
    records, strict_trailer = decode_messages(whole, region_bytes)
    assert records == RECORDS[:count] and trailer == strict_trailer
    assert lines.records() == records
    assert lines.records() == records  # making records leaves the lines as they were
    assert chat == [llm_message(r.data) for r in records]
    assert [llm_message(view) for view in lines.views] == chat


def _restamped(whole: bytes, stamp: bytes) -> bytes:
    """`whole` with its second message's stamp string replaced by `stamp`."""
    return re.sub(rb'"_journal":"2,[^"]*"', b'"_journal":' + stamp, whole)


ONE = [Record(i, 1705314615.5, MESSAGE, {"role": "user", "content": f"m{i}"}) for i in (1, 2, 3)]
BAD_STAMPS = {
    "a newline inside": b'"2,1705314615.5\\n3,1705314615.5"',
    "a leading zero": b'"02,1705314615.5"',
    "a ts with a leading zero": b'"2,01705314615.5"',
    "a ts without decimals": b'"2,1705314615"',
    "a zero batch count": b'"2,1705314615.5,0"',
    "a trailing comma": b'"2,1705314615.5,"',
    "an exponent": b'"2,1.7e9"',
    "spaces": b'"2, 1705314615.5"',
    "not a string or object": b"[2,1705314615.5]",
    "an object stamp with a string seq": b'{"seq":"2","ts":1705314615.5}',
}


@pytest.mark.parametrize("name", BAD_STAMPS)
@pytest.mark.parametrize("region_bytes", [1, 1 << 20])
def test_lines_refuse_any_stamp_not_as_journal_writes_it_and_leave_the_verdict_to_the_strict_reader(
    name: str, region_bytes: int
) -> None:
    whole = _restamped(encode_messages(ONE, 1.5, 3), BAD_STAMPS[name])
    with pytest.raises(BadSnapshot):
        decode_lines(whole, region_bytes, [])
    try:
        verdict: Any = streamed(whole)
    except BadSnapshot:
        verdict = "bad"
    # the strict reader converts a few (a numeric string seq); it never reads a newline stamp
    assert verdict == "bad" or name == "an object stamp with a string seq"


def test_a_file_mixing_both_stamp_forms_reads_as_the_strict_reader_reads_it() -> None:
    whole = _restamped(encode_messages(ONE, 1.5, 3), b'{"seq":2,"ts":1705314615.5}')
    chat: list[dict[str, Any]] = []
    lines, _ = decode_lines(whole, 1 << 20, chat)
    assert lines.records() == streamed(whole) == ONE
    assert chat == [llm_message(r.data) for r in ONE]


# -- through the store -----------------------------------------------------------------------------

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.sampled_from(["user", "assistant", "tool"]), st.text(max_size=3)),
        st.tuples(st.just("set"), st.integers(0, 4)),
        st.tuples(st.just("clear")),
        st.tuples(st.just("meta"), st.integers(0, 9)),
        st.tuples(st.just("compact")),
    ),
    max_size=25,
)


def _run(store: DefaultSessionStore, ops: list[tuple[Any, ...]]) -> None:
    for number, op in enumerate(ops):
        if op[0] == "add":
            tool = {"tool_call_id": "c"} if op[1] == "tool" else {}
            store.add_message(SID, op[1], op[2], metadata={"n": number}, **tool)
        elif op[0] == "set":
            store.set_chat_history(SID, [{"role": "user", "content": f"{number}.{i}"} for i in range(op[1])])
        elif op[0] == "clear":
            store.clear_session(SID)
        elif op[0] == "meta":
            store.update_session_metadata(SID, n=op[1])
        else:
            store.compact(SID)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS, window=st.integers(0, 6))
def test_a_cold_history_is_the_history_the_records_give_before_and_after_either_read(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[Any, ...]], window: int
) -> None:
    root = tmp_path_factory.mktemp("store")
    store = DefaultSessionStore(root)
    _run(store, ops)
    store.journal.close()  # not store.close(): that would compact
    with Journal(root) as journal:
        state = journal.state(SID)
    expected = [llm_message(r.data) for r in state.messages] if state else []
    with DefaultSessionStore(root) as cold:
        assert cold.get_chat_history(SID) == expected  # cold: from the lines
        assert cold.get_chat_history(SID) == expected  # warm: the same lines, viewed
        assert cold.get_chat_history(SID, max_messages=window) == cold.get_session(SID).get_chat_history(
            window
        )
        again = cold.journal.state(SID)
        assert (again.messages if again else []) == (state.messages if state else [])
        assert cold.get_chat_history(SID) == expected  # warm: from the records made meanwhile
    with DefaultSessionStore(root) as cold:
        assert cold.get_chat_history(SID, max_messages=window) == cold.get_session(SID).get_chat_history(
            window
        )


def test_no_two_calls_share_the_messages_they_return(tmp_path: Path) -> None:
    with DefaultSessionStore(tmp_path) as store:
        store.add_user_message(SID, "hi")
    with DefaultSessionStore(tmp_path) as store:
        first = store.get_chat_history(SID)
        first[0]["content"] = "changed by the caller"
        first.append({"role": "user", "content": "added by the caller"})
        assert store.get_chat_history(SID) == [{"role": "user", "content": "hi"}]


def test_a_cold_history_sees_the_records_appended_after_the_snapshot(tmp_path: Path) -> None:
    with DefaultSessionStore(tmp_path) as store:
        store.add_user_message(SID, "before")
    with Journal(tmp_path) as journal:
        journal.append(SID, {"role": "assistant", "content": "after"})
    with DefaultSessionStore(tmp_path) as store:
        assert [m["content"] for m in store.get_chat_history(SID)] == ["before", "after"]
    with Journal(tmp_path) as journal:
        journal.clear(SID)
        journal.append(SID, {"role": "user", "content": "only"})
    with DefaultSessionStore(tmp_path) as store:
        assert store.get_chat_history(SID) == [{"role": "user", "content": "only"}]


# -- format 1 ------------------------------------------------------------------------------------


def _as_format_1(session: Path) -> None:
    """Rewrite a compacted session as journal 0.1 left it: object stamps, manifest format 1."""
    messages = session / "messages.json"

    def object_stamp(match: re.Match[bytes]) -> bytes:
        seq, ts, more = match.groups()
        return b'"_journal":{"seq":%s,"ts":%s%s}' % (seq, ts, b',"more":' + more if more else b"")

    old = re.sub(rb'"_journal":"([0-9]+),([0-9.]+)(?:,([0-9]+))?"', object_stamp, messages.read_bytes())
    assert b'"_journal":"' not in old
    messages.write_bytes(old)
    manifest = session / "compaction.json"
    body = orjson.loads(manifest.read_bytes())
    assert body["format"] == MANIFEST_FORMAT
    del body["views"]  # format 3 records the views' checksums; format 1 did not
    manifest.write_bytes(orjson.dumps({**body, "format": 1}))


def test_a_session_compacted_by_format_1_reads_the_same_and_its_next_compaction_writes_strings(
    tmp_path: Path,
) -> None:
    with DefaultSessionStore(tmp_path) as store:
        store.set_chat_history(SID, [{"role": "user", "content": f"m{i}"} for i in range(3)])
        store.add_assistant_message(SID, "a")
    with Journal(tmp_path) as journal:
        before, history = list(journal.read(SID)), DefaultSessionStore(tmp_path).get_chat_history(SID)
    _as_format_1(tmp_path / SID)
    with Journal(tmp_path) as journal:
        assert list(journal.read(SID)) == before
        assert journal.verify(SID).ok
    with DefaultSessionStore(tmp_path) as store:
        assert store.get_chat_history(SID) == history
        store.add_user_message(SID, "new")
    assert b'"_journal":{' not in (tmp_path / SID / "messages.json").read_bytes()
    assert orjson.loads((tmp_path / SID / "compaction.json").read_bytes())["format"] == MANIFEST_FORMAT
    with DefaultSessionStore(tmp_path) as store:
        assert store.get_chat_history(SID) == [*history, {"role": "user", "content": "new"}]


def test_a_manifest_of_a_format_this_version_does_not_know_is_refused_clearly(tmp_path: Path) -> None:
    with DefaultSessionStore(tmp_path) as store:
        store.add_user_message(SID, "hi")
    manifest = tmp_path / SID / "compaction.json"
    manifest.write_bytes(orjson.dumps({**orjson.loads(manifest.read_bytes()), "format": MANIFEST_FORMAT + 1}))
    with Journal(tmp_path) as journal, pytest.raises(UnsupportedFormatError):
        journal.state(SID)


def test_a_read_that_fails_half_way_does_not_repeat_records_on_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Journal(tmp_path, segment_bytes=200) as journal:
        for i in range(3):
            journal.append(SID, {"role": "user", "content": f"a{i}"})
        journal.compact(SID)
        for i in range(6):  # several closed segments after the snapshot
            journal.append(SID, {"role": "user", "content": f"b{i}"})
    truth = [f"a{i}" for i in range(3)] + [f"b{i}" for i in range(6)]
    real, calls = reader.records_in, []

    def fails_once(*args: Any) -> Any:
        calls.append(args[1])
        if len(calls) == 2:
            raise OSError(errno.EIO, "transient read error")
        return real(*args)

    monkeypatch.setattr(reader, "records_in", fails_once)
    store = DefaultSessionStore(tmp_path, segment_bytes=200)
    with pytest.raises(OSError):
        store.get_chat_history(SID)
    state = store.journal.state(SID)
    assert state is not None and [r.data["content"] for r in state.messages] == truth
    assert [m["content"] for m in store.get_chat_history(SID)] == truth
    store.journal.close()


def test_only_a_chat_reader_takes_the_chat_and_only_once() -> None:
    whole = encode_messages(ONE, 1.5, 3)
    chat: list[dict[str, Any]] = []
    lines, _ = decode_lines(whole, 1 << 20, chat)
    state = SessionState(lines=lines, chat=chat, last_seq=3)
    plain = state.hand_off()
    assert plain.chat is None and plain.lines is None and plain.messages == ONE
    assert state.chat is None  # dropped: a later chat reader must not get dicts made before
    state = SessionState(lines=lines, chat=list(chat), last_seq=3)
    first, second, third = state.hand_off(chat=True), state.hand_off(chat=True), state.hand_off(chat=True)
    assert first.chat == chat and state.chat is None
    # Later chat readers get copies of the state's own `llm` dicts, never the dicts
    # themselves nor each other's: a caller may change the ones it gets.
    assert second.chat == third.chat == chat and state.llm == chat
    assert second.chat is not None and third.chat is not None
    ids = [{id(m) for m in dicts} for dicts in (first.chat, second.chat, third.chat, state.llm)]
    assert sum(len(i) for i in ids) == len(set().union(*ids))
    assert first.lines is lines and first.messages == []  # the lines stay lines


def test_a_snapshot_too_big_to_read_whole_is_streamed_into_records_for_a_cold_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with DefaultSessionStore(tmp_path) as store:
        store.set_chat_history(SID, [{"role": "user", "content": f"m{i}"} for i in range(50)])
    monkeypatch.setattr(archive, "WHOLE_FILE_BYTES", 100)
    monkeypatch.setattr(archive, "CHUNK_BYTES", 64)
    with DefaultSessionStore(tmp_path) as store:
        state = store.journal._chat_state(SID)
        assert state is not None and state.lines is None  # records instead
        assert [m["content"] for m in store.get_chat_history(SID)] == [f"m{i}" for i in range(50)]
