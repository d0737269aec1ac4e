"""Exhaustive byte-level damage to one segment (FORMAT.md, "Recovery rules").

Strategy: a real 16-record segment is written by a real `Journal`. The sweeps (every
truncation offset, every bit of the last record, every bit of a middle record, zero and
garbage tails, a torn line run into a complete record) classify the damaged bytes with the
pure `journal.scan.scan`, which is what a handle opening the segment runs; a handful of the
same damages then go through a real `Journal` on the real file. The rule under test: damage
after the last valid record is a torn tail and is cut; damage with a valid record after it is
corruption and is reported, never skipped.
"""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import pytest

from journal import CorruptionError, Journal, RecoveryWarning
from journal.log.naming import LOG_DIR, QUARANTINE_DIR
from journal.log.scan import scan

SID = "chat"
COUNT = 16
MIDDLE = 7  # index of the middle record that is damaged


def write_log(root: Path) -> tuple[Path, bytes]:
    with Journal(root, durability="none") as journal:
        for i in range(COUNT):
            journal.append(SID, {"role": "user", "content": f"message {i} " + "x" * (i * 3 % 17)})
        segment = sorted((Path(journal.session_path(SID)) / LOG_DIR).glob("*.jsonl"))[-1]
    return segment, segment.read_bytes()


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes, list[int]]:
    """The segment path, its bytes, and the offset where each line starts (plus the end)."""
    segment, data = write_log(tmp_path_factory.mktemp("exhaustive") / "store")
    starts = [0] + [i + 1 for i, byte in enumerate(data) if byte == ord("\n")]
    assert len(starts) == COUNT + 1
    return segment, data, starts


def classify(data: bytes) -> tuple[str, int, int]:
    """(problem kind or "clean", where the valid records end, how many there are)."""
    result = scan(data, 0, 1, "segment")
    kind = "clean" if result.problem is None else result.problem.kind
    return kind, result.end, result.count


def test_truncation_at_every_offset_keeps_exactly_the_complete_records(
    log: tuple[Path, bytes, list[int]],
) -> None:
    _, data, starts = log
    for cut in range(len(data) + 1):
        complete = max(i for i, start in enumerate(starts) if start <= cut)
        expected = "clean" if cut == starts[complete] else "torn-tail"
        assert classify(data[:cut]) == (expected, starts[complete], complete), cut


def test_every_bit_flip_in_the_last_record_is_a_torn_tail(log: tuple[Path, bytes, list[int]]) -> None:
    _, data, starts = log
    last = starts[COUNT - 1]
    for offset in range(last, len(data)):
        for bit in range(8):
            damaged = bytearray(data)
            damaged[offset] ^= 1 << bit
            assert classify(bytes(damaged)) == ("torn-tail", last, COUNT - 1), (offset, bit)


def test_every_bit_flip_in_a_middle_record_is_corruption_at_that_record(
    log: tuple[Path, bytes, list[int]],
) -> None:
    _, data, starts = log
    begin, end = starts[MIDDLE], starts[MIDDLE + 1]
    for offset in range(begin, end):
        for bit in range(8):
            damaged = bytearray(data)
            damaged[offset] ^= 1 << bit
            result = scan(bytes(damaged), 0, 1, "segment")
            assert result.problem is not None, (offset, bit)
            assert (result.problem.kind, result.problem.offset) == ("corruption", begin), (offset, bit)
            assert (result.end, result.count) == (begin, MIDDLE), (offset, bit)


@pytest.mark.parametrize("filler", ["zeros", "garbage", "garbage-lines"])
def test_a_zero_or_garbage_filled_tail_is_torn(log: tuple[Path, bytes, list[int]], filler: str) -> None:
    """Unsynced blocks that came back as zeros or garbage, after the records or over the last."""
    _, data, starts = log
    rng = random.Random(filler)
    for length in (1, 7, 100, 512, 4096):
        if filler == "zeros":
            tail = bytes(length)
        elif filler == "garbage":
            tail = rng.randbytes(length)
        else:
            tail = b"\n".join(rng.randbytes(rng.randint(0, 40)) for _ in range(length // 20 + 1)) + b"\n"
        # Zeros after the last whole line are a preallocated tail (FORMAT.md, "Segments"): the
        # data ends there, nothing to cut; zeros over a part of the last record still tear it.
        verdict = "clean" if filler == "zeros" else "torn-tail"
        assert classify(data + tail) == (verdict, len(data), COUNT), (length, filler)
        for cut in (starts[COUNT - 1], starts[COUNT - 1] + 1, len(data) - 1):  # the last record torn
            torn = "clean" if filler == "zeros" and cut == starts[COUNT - 1] else "torn-tail"
            assert classify(data[:cut] + tail) == (torn, starts[COUNT - 1], COUNT - 1), (length, cut)


def torn_then_complete(data: bytes, starts: list[int], cut: int) -> bytes:
    """Record MIDDLE torn after `cut` bytes, then, with no newline between, the records from
    MIDDLE on written again complete (a writer that died mid-line, then the next writer)."""
    begin = starts[MIDDLE]
    return data[:begin] + data[begin : begin + cut] + data[begin:]


def test_a_torn_line_run_into_a_complete_record_is_corruption_not_dropped(
    log: tuple[Path, bytes, list[int]],
) -> None:
    _, data, starts = log
    line = starts[MIDDLE + 1] - starts[MIDDLE]
    for cut in range(1, line - 1):
        result = scan(torn_then_complete(data, starts, cut), 0, 1, "segment")
        assert result.problem is not None and result.problem.kind == "corruption", cut
        assert result.problem.offset == starts[MIDDLE], cut


def test_a_torn_line_run_into_the_last_record_is_still_corruption(log: tuple[Path, bytes, list[int]]) -> None:
    """Even at the very end of the file: the complete record after the tear must not be cut."""
    _, data, starts = log
    begin = starts[COUNT - 1]
    damaged = data[:begin] + data[begin : begin + 30] + data[begin:]
    result = scan(damaged, 0, 1, "segment")
    assert result.problem is not None and result.problem.kind == "corruption"


# -- the same damage through a real Journal on the real file ---------------------------------


def reopen_and_read(root: Path) -> tuple[list[str], list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Journal(root, durability="always") as journal:
            found = [r.data["content"] for r in journal.read(SID)]
    return found, [str(w.message) for w in caught if issubclass(w.category, RecoveryWarning)]


@pytest.mark.parametrize("cut_back", [1, 40, "zeros", "garbage"])
def test_journal_cuts_a_torn_last_record_and_quarantines_it(tmp_path: Path, cut_back: int | str) -> None:
    root = tmp_path / "store"
    segment, data = write_log(root)
    last = data.rfind(b"\n", 0, len(data) - 1) + 1
    if cut_back == "zeros":
        damaged = data[: last + 20] + bytes(600)
    elif cut_back == "garbage":
        damaged = data + random.Random(3).randbytes(600).replace(b"{", b"(")
    else:
        assert isinstance(cut_back, int)
        damaged = data[: len(data) - cut_back]
    segment.write_bytes(damaged)
    found, warned = reopen_and_read(root)
    keep = COUNT if cut_back == "garbage" else COUNT - 1
    assert len(found) == keep and len(warned) == 1
    assert segment.read_bytes() == data[: last if keep < COUNT else len(data)]
    assert [p.read_bytes() for p in (segment.parent.parent / QUARANTINE_DIR).iterdir()] == [
        damaged[len(segment.read_bytes()) :]
    ]
    assert reopen_and_read(root) == (found, [])  # recovery is idempotent


@pytest.mark.parametrize("damage", ["flip-middle", "torn-then-complete", "flip-last-newline-run-on"])
def test_journal_reports_damage_before_valid_records_and_changes_nothing(tmp_path: Path, damage: str) -> None:
    root = tmp_path / "store"
    segment, data = write_log(root)
    starts = [0] + [i + 1 for i, byte in enumerate(data) if byte == ord("\n")]
    damaged = bytearray(data)
    if damage == "flip-middle":
        damaged[starts[MIDDLE] + 30] ^= 0x04
    elif damage == "torn-then-complete":
        damaged = bytearray(torn_then_complete(data, starts, 50))
    else:  # the newline between the last two records: they run into one line
        damaged[starts[COUNT - 1] - 1] ^= 0x01
    segment.write_bytes(bytes(damaged))
    with pytest.raises(CorruptionError) as raised:
        reopen_and_read(root)
    assert raised.value.path == str(segment)
    with Journal(root) as journal:
        report = journal.verify(SID)
    assert not report.ok and [p.kind for p in report.problems] == ["corruption"]
    assert segment.read_bytes() == bytes(damaged)  # reported, nothing cut, nothing skipped
