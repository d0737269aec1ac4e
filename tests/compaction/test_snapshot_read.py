"""Reading messages.json: the in-memory decoder gives what the streaming reader gives, or
leaves the verdict to it; the collector pause it runs under is undone whatever happens."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from journal.log import archive
from journal.log.fs import OsFileSystem
from journal.log.gcpause import gc_paused
from journal.log.record import MESSAGE, Record
from journal.log.snapshot import BadSnapshot, MessagesReader, decode_message, decode_messages, encode_messages

DATA: list[Any] = [
    {"role": "user", "content": "x", "metadata": {"i": 1}},
    {"role": "user", "content": "x", "timestamp": "mine"},
    {"role": "user", "content": "x", "_journal": {"seq": -1}},
    {"content": ["part"], "tool_calls": [{"id": 1}], "extra": None},
    "not a dict",
    {},
]
RECORDS = [Record(i + 1, 1705314615.123456 + i, MESSAGE, DATA[i % len(DATA)], i % 3) for i in range(20)]


def streamed(whole: bytes) -> tuple[list[Record], dict[str, Any]]:
    reader = MessagesReader([whole])
    return list(reader.records()), reader.trailer


@pytest.mark.parametrize("region_bytes", [1, 7, 64, 300, 1 << 20])
@pytest.mark.parametrize("count", [1, 2, len(RECORDS)])
def test_decode_messages_gives_the_records_and_trailer_the_streaming_reader_gives(
    region_bytes: int, count: int
) -> None:
    whole = encode_messages(RECORDS[:count], 1.5, 99)
    records, trailer = decode_messages(whole, region_bytes)
    assert records == RECORDS[:count]
    assert (records, trailer) == streamed(whole)
    assert trailer["journal_seq"] == 99 and trailer["total_messages"] == count


def _edited(whole: bytes, old: bytes, new: bytes) -> bytes:
    assert old in whole
    return whole.replace(old, new)


def _pretty(whole: bytes) -> bytes:
    """The second message spread over several lines, as an editor could leave it."""
    lines = whole.split(b"\n")
    lines[3] = orjson.dumps(orjson.loads(lines[3].rstrip(b",")), option=orjson.OPT_INDENT_2) + b","
    return b"\n".join(lines)


WHOLE = encode_messages(RECORDS[:3], 1.5, 9)
OTHER_LAYOUTS = {
    "no messages": encode_messages([], 1.5, 9),
    "a trailing comma": _edited(WHOLE, b"}\n  ],", b"},\n  ],"),
    "re-saved on one line": orjson.dumps(orjson.loads(WHOLE)),
    "Windows line ends": WHOLE.replace(b"\n", b"\r\n"),
    "a message over several lines": _pretty(WHOLE),
    "no trailer": WHOLE[: WHOLE.rfind(b"\n  ],\n") + 7],
    "a second array end": _edited(WHOLE, b"},\n", b"}\n  ],\n"),
}


@pytest.mark.parametrize("name", OTHER_LAYOUTS)
def test_decode_messages_reads_only_the_journal_layout_and_never_returns_other_records(name: str) -> None:
    whole = OTHER_LAYOUTS[name]
    for region_bytes in (1, 1 << 20):
        try:
            decoded = decode_messages(whole, region_bytes)
        except BadSnapshot:
            continue
        assert decoded == streamed(whole)  # it may read an edited file, but only as the reader does


@pytest.mark.parametrize("name", OTHER_LAYOUTS)
def test_read_messages_gives_the_streaming_verdict_on_other_layouts(tmp_path: Path, name: str) -> None:
    path = tmp_path / "messages.json"
    path.write_bytes(OTHER_LAYOUTS[name])
    try:
        expected: Any = streamed(OTHER_LAYOUTS[name])
    except BadSnapshot as exc:
        expected = str(exc)
    try:
        got: Any = archive.read_messages(OsFileSystem(), str(path))
    except BadSnapshot as exc:
        got = str(exc)
    assert got == expected


def test_read_messages_decodes_a_small_file_whole_and_streams_a_big_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "messages.json"
    path.write_bytes(encode_messages(RECORDS, 1.5, 99))
    whole_reads: list[int] = []

    def spy(raw: bytes) -> tuple[list[Record], dict[str, Any]]:
        whole_reads.append(len(raw))
        return decode_messages(raw)

    monkeypatch.setattr(archive, "decode_messages", spy)
    monkeypatch.setattr(archive, "CHUNK_BYTES", 100)
    for limit, decoded_whole in ((1 << 20, True), (path.stat().st_size - 1, False)):
        whole_reads.clear()
        monkeypatch.setattr(archive, "WHOLE_FILE_BYTES", limit)
        records, trailer = archive.read_messages(OsFileSystem(), str(path))
        assert records == RECORDS and trailer["journal_seq"] == 99
        assert bool(whole_reads) == decoded_whole


def test_a_journal_field_of_another_json_type_is_converted_as_before() -> None:
    record = decode_message(b'{"role":"user","_journal":{"seq":true,"ts":2,"more":3}}')
    assert record == Record(1, 2.0, MESSAGE, {"role": "user"}, 3)
    assert type(record.seq) is int and type(record.ts) is float


# -- the collector pause -----------------------------------------------------------------------


@pytest.fixture
def collector_on() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


@pytest.mark.usefixtures("collector_on")
def test_gc_paused_turns_the_collector_off_inside_and_back_on_after_even_on_error() -> None:
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(ValueError), gc_paused():
        raise ValueError
    assert gc.isenabled()


@pytest.mark.usefixtures("collector_on")
def test_gc_paused_leaves_a_collector_the_program_turned_off_off() -> None:
    gc.disable()
    with gc_paused():
        pass
    assert not gc.isenabled()


@pytest.mark.usefixtures("collector_on")
def test_pauses_never_nest_so_reads_of_several_threads_cannot_keep_the_collector_off() -> None:
    inside, release = threading.Event(), threading.Event()

    def other() -> None:
        with gc_paused():  # begins during the main thread's pause: runs without its own
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=other)
    with gc_paused():
        thread.start()
        assert inside.wait(10)
        assert not gc.isenabled()
    assert gc.isenabled()  # back on although the other thread is still inside
    release.set()
    thread.join(10)
    assert gc.isenabled()
