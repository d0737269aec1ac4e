"""Recovery (FORMAT.md, "Recovery rules"): a torn tail is cut back and kept in quarantine,
damage followed by valid records is corruption, `verify` reports and `repair` salvages."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
from _core_helpers import (
    active_segment,
    contents,
    line_ends,
    message,
    quarantined,
    segment_paths,
    snapshot,
)

from journal import CorruptionError, Journal, RecoveryWarning
from journal.log.record import decode, encode, encode_payload

SID = "chat"


def build_log(root: Path, count: int = 50) -> tuple[Path, bytes]:
    """A session of `count` messages of varying length; its dir and active segment bytes."""
    with Journal(root, durability="none") as journal:
        for i in range(count):
            journal.append(SID, {"content": "x" * (i % 3) + f"m{i}"})
        session = Path(journal.session_path(SID))
    return session, active_segment(session).read_bytes()


def read_all(root: Path) -> list[str]:
    with Journal(root, durability="none") as journal:
        return contents(journal.read(SID))


def read_quietly(root: Path) -> tuple[list[str], list[str]]:
    """The session's contents, and the RecoveryWarnings opening it raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        found = read_all(root)
    return found, [str(w.message) for w in caught if issubclass(w.category, RecoveryWarning)]


def expected_messages(count: int) -> list[str]:
    return ["x" * (i % 3) + f"m{i}" for i in range(count)]


def overwrite(path: Path, data: bytes) -> None:
    """Make the file hold `data`, in place: truncating to zero and rewriting instead makes
    ext4 flush the file on close (auto_da_alloc), a disk wait per call in long loops."""
    with path.open("r+b") as file:
        file.write(data)
        file.truncate()


def flip(path: Path, offset: int, mask: int = 0x10) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= mask
    path.write_bytes(bytes(data))


# -- torn tails ------------------------------------------------------------------------------


def test_truncation_at_any_offset_keeps_exactly_the_complete_records(ram_path: Path) -> None:
    root = ram_path / "store"
    session, data = build_log(root)
    ends = [0, *line_ends(data)]
    assert len(ends) == 51
    segment = active_segment(session)
    quarantine = session / "quarantine"
    complete = 0
    for cut in range(len(data) + 1):
        while complete < 50 and ends[complete + 1] <= cut:
            complete += 1
        overwrite(segment, data[:cut])
        for saved in quarantine.glob("*") if quarantine.exists() else []:
            saved.unlink()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with Journal(root, durability="none") as journal:
                assert contents(journal.read(SID)) == expected_messages(complete), cut
                assert journal.append(SID, message("after")) == complete + 1, cut
        torn = data[ends[complete] : cut]
        assert bool(caught) == bool(torn), cut
        assert quarantined(session) == ([torn] if torn else []), cut
        # What a reopen finds is decided by the bytes: the kept records, then the new one.
        after = segment.read_bytes()
        assert after[: ends[complete]] == data[: ends[complete]], cut
        added = decode(after[ends[complete] :])
        assert (added.seq, added.kind, added.data["content"]) == (complete + 1, "message", "after"), cut
        if cut in ends or cut - 1 in ends:  # and a real reopen, once for each outcome
            with Journal(root, durability="none") as journal:
                assert contents(journal.read(SID)) == [*expected_messages(complete), "after"], cut


@pytest.mark.parametrize(
    ("name", "tail"),
    [
        # Zeros right after the last record are a preallocated tail, not torn: test_prealloc.py.
        ("zeros after a newline", b"\n" + b"\x00" * 100),
        ("garbage with newlines", b"garbage\n\xff\xfe more garbage\n\x01"),
        ("half a record", encode(51, 1.0, "message", b'{"content":"torn"}')[:40]),
        ("a record missing only its newline", encode(51, 1.0, "message", b'{"content":"torn"}')[:-1]),
        ("a record with the wrong seq", encode(7, 1.0, "message", b'{"content":"old"}')),
    ],
)
def test_a_garbage_tail_is_cut_with_a_warning_and_kept_in_quarantine(
    tmp_path: Path, name: str, tail: bytes
) -> None:
    root = tmp_path / "store"
    session, data = build_log(root)
    segment = active_segment(session)
    segment.write_bytes(data + tail)
    with pytest.warns(RecoveryWarning) as caught:
        assert read_all(root) == expected_messages(50)
    text = str(caught[0].message)
    assert str(segment) in text
    assert f"offset {len(data)}" in text
    assert f"{len(tail)} bytes" in text
    assert segment.read_bytes() == data
    assert quarantined(session) == [tail]


def test_a_damaged_last_record_is_a_torn_tail(tmp_path: Path) -> None:
    root = tmp_path / "store"
    session, data = build_log(root)
    last = line_ends(data)[-2]
    flip(active_segment(session), last + 40)
    with pytest.warns(RecoveryWarning):
        assert read_all(root) == expected_messages(49)
    assert quarantined(session)[0][:40] == data[last : last + 40]


def test_reading_after_recovery_twice_gives_the_same_result(tmp_path: Path) -> None:
    root = tmp_path / "store"
    session, data = build_log(root)
    active_segment(session).write_bytes(data + b"{" + b"\x00" * 10)  # torn: zeros alone are a tail
    first, warned = read_quietly(root)
    second, warned_again = read_quietly(root)
    with Journal(root, durability="none") as journal:
        assert contents(journal.read(SID)) == contents(journal.read(SID)) == first == second
    assert len(warned) == 1 and warned_again == []
    assert len(quarantined(session)) == 1


def test_an_incomplete_append_many_batch_at_the_tail_is_cut_entirely(ram_path: Path) -> None:
    root = ram_path / "store"
    with Journal(root, durability="none") as journal:
        for i in range(5):
            journal.append(SID, message(f"single {i}"))
        journal.append_many(SID, [message(f"batch {i}") for i in range(4)])
        session = Path(journal.session_path(SID))
    segment = active_segment(session)
    data = segment.read_bytes()
    batch_start = line_ends(data)[4]
    # every cut inside the batch, including right after each of its first three records
    for cut in range(batch_start + 1, len(data)):
        overwrite(segment, data[:cut])
        found, warned = read_quietly(root)
        assert found == [f"single {i}" for i in range(5)], cut
        assert len(warned) == 1, cut
        assert segment.read_bytes() == data[:batch_start], cut
    assert read_all(root) == [f"single {i}" for i in range(5)]


# -- corruption ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "where"),
    [
        ("checksum digit", lambda start, end: start + 12),
        ("header", lambda start, end: start + 40),
        ("payload", lambda start, end: end - 5),
        ("newline", lambda start, end: end - 1),
    ],
)
def test_a_bit_flip_in_the_middle_is_corruption_naming_path_and_offset(
    tmp_path: Path, name: str, where: Callable[[int, int], int]
) -> None:
    root = tmp_path / "store"
    session, data = build_log(root)
    ends = line_ends(data)
    start, end = ends[19], ends[20]  # the 21st record
    segment = active_segment(session)
    flip(segment, where(start, end))
    before = snapshot(session)
    with pytest.raises(CorruptionError) as caught:
        read_all(root)
    assert caught.value.path == str(segment)
    assert caught.value.offset == start
    assert str(segment) in str(caught.value) and str(start) in str(caught.value)
    with pytest.raises(CorruptionError), Journal(root) as journal:
        journal.append(SID, message("refused"))
    assert snapshot(session) == before  # never cut, never skipped


def test_a_torn_line_followed_by_a_complete_record_is_corruption_and_repair_keeps_the_record(
    tmp_path: Path,
) -> None:
    root = tmp_path / "store"
    session, data = build_log(root, count=10)
    segment = active_segment(session)
    record = encode(11, 1.0, "message", encode_payload(message("survivor"), 1000))
    segment.write_bytes(data + record[:25] + record)  # no newline between the two
    with pytest.raises(CorruptionError) as caught:
        read_all(root)
    assert caught.value.offset == len(data)
    with Journal(root) as journal:
        report = journal.repair(SID)
        assert report.lost == [] and report.salvaged == 11
        assert journal.verify(SID).ok
        assert contents(journal.read(SID)) == [*expected_messages(10), "survivor"]


def test_a_torn_line_followed_by_a_later_record_repairs_with_the_gap_marked_lost(tmp_path: Path) -> None:
    root = tmp_path / "store"
    session, data = build_log(root, count=10)
    torn = encode(11, 1.0, "message", b'{"content":"torn"}')[:30]
    record = encode(12, 1.0, "message", b'{"content":"survivor"}')
    active_segment(session).write_bytes(data + torn + record)
    with pytest.raises(CorruptionError):
        read_all(root)
    with Journal(root) as journal:
        report = journal.repair(SID)
        assert report.lost == [11]
        records = list(journal.read(SID))
    assert [r.seq for r in records] == list(range(1, 13))
    assert records[10].kind == "lost" and records[11].data == {"content": "survivor"}


# -- verify and repair -----------------------------------------------------------------------


def damage_middle(session: Path, data: bytes) -> int:
    """Flip a bit in the 10th record's payload; return that record's offset."""
    ends = line_ends(data)
    flip(active_segment(session), ends[9] - 5)
    return ends[8]


def test_verify_reports_a_clean_session_as_ok(tmp_path: Path) -> None:
    root = tmp_path / "store"
    session, _ = build_log(root)
    before = snapshot(session)
    with Journal(root) as journal:
        report = journal.verify(SID)
        assert journal.verify("no-such-session").ok
    assert report.ok and report.problems == []
    assert snapshot(session) == before


@pytest.mark.parametrize("damage", ["corruption", "torn-tail"])
def test_verify_changes_nothing_and_reports(tmp_path: Path, damage: str) -> None:
    root = tmp_path / "store"
    session, data = build_log(root)
    segment = active_segment(session)
    if damage == "corruption":
        offset = damage_middle(session, data)
    else:
        offset = len(data)
        segment.write_bytes(data + b"{" + b"\x00" * 33)  # torn: zeros alone are a tail
    before = snapshot(session)
    with Journal(root) as journal:
        report = journal.verify(SID)
        assert journal.verify(SID) == report
    assert snapshot(session) == before
    assert not report.ok
    [problem] = report.problems
    assert (problem.kind, problem.path, problem.offset) == (damage, str(segment), offset)
    assert not (session / "quarantine").exists()


def test_repair_quarantines_the_damaged_file_and_salvages_every_valid_record(tmp_path: Path) -> None:
    root = tmp_path / "store"
    session, data = build_log(root)
    damage_middle(session, data)
    damaged = active_segment(session).read_bytes()
    with Journal(root) as journal:
        report = journal.repair(SID)
        assert report.problems and report.problems[0].kind == "corruption"
        assert report.salvaged == 49 and report.lost == [10]
        assert [Path(p).read_bytes() for p in report.quarantined] == [damaged]
        assert quarantined(session) == [damaged]
        assert journal.verify(SID).ok
        records = list(journal.read(SID))
        assert [r.seq for r in records] == list(range(1, 51))
        assert [r.kind for r in records if r.kind != "message"] == ["lost"]
        assert records[9].kind == "lost"
        kept = [r.data["content"] for r in records if r.kind == "message"]
        assert kept == expected_messages(50)[:9] + expected_messages(50)[10:]
        assert journal.append(SID, message("after repair")) == 51
    assert read_all(root)[-1] == "after repair"
    with Journal(root) as journal:
        assert journal.verify(SID).ok


def test_repair_reaches_handles_already_open_in_another_journal(tmp_path: Path) -> None:
    root = tmp_path / "store"
    session, data = build_log(root, count=12)
    with Journal(root) as other:
        assert len(list(other.read(SID))) == 12  # cached handle
        damage_middle(session, data)
        with Journal(root) as journal:
            assert journal.repair(SID).lost == [10]
        assert [r.kind for r in other.read(SID)].count("lost") == 1
        assert other.append(SID, message("after")) == 13


def test_repair_of_a_clean_session_changes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "store"
    session, _ = build_log(root)
    before = snapshot(session)
    with Journal(root) as journal:
        report = journal.repair(SID)
    assert report.ok and report.problems == [] and report.quarantined == []
    assert snapshot(session) == before


def test_repair_then_verify_is_ok_for_a_torn_tail_too(tmp_path: Path) -> None:
    root = tmp_path / "store"
    session, data = build_log(root)
    active_segment(session).write_bytes(data + b"junk")
    with Journal(root) as journal:
        report = journal.repair(SID)
        assert report.lost == [] and report.salvaged == 50
        assert journal.verify(SID).ok
        assert journal.append(SID, message("next")) == 51


def test_records_missing_from_the_end_of_a_closed_segment_are_corruption_not_a_gap(tmp_path: Path) -> None:
    root = tmp_path / "store"
    with Journal(root, durability="none", segment_bytes=1000) as journal:
        for i in range(30):
            journal.append(SID, {"content": f"m{i}"})
        session = Path(journal.session_path(SID))
    closed = segment_paths(session)[0]
    data = closed.read_bytes()
    seal = decode(data[line_ends(data)[-2] :])
    assert seal.kind == "seal"
    closed.write_bytes(data[: line_ends(data)[-4]])  # two messages and the seal are gone
    missing = [seal.seq - 2, seal.seq - 1]
    with Journal(root) as journal:
        for read in (
            lambda: list(journal.read(SID)),
            lambda: list(journal.read(SID, 2)),
            lambda: journal.state(SID),
        ):
            with pytest.raises(CorruptionError) as caught:
                read()
            assert caught.value.path == str(closed)
        problem = journal.verify(SID).problems[0]
        assert (problem.kind, problem.path) == ("corruption", str(closed))
        assert journal.repair(SID).lost == missing
        assert journal.verify(SID).ok
        records = list(journal.read(SID))
    assert [r.seq for r in records] == list(range(1, len(records) + 1))
    assert [r.seq for r in records if r.kind == "lost"] == missing


def test_what_repair_leaves_survives_a_power_loss_records_written_in_none_mode_too() -> None:
    """Repair keeps every valid record; a power loss right after it must not take back what it
    kept, even records of an undamaged segment that were written in "none" mode and never
    fsynced before the repair."""
    from simdisk import SimDisk

    disk = SimDisk()
    journal = Journal("/store", durability="none", segment_bytes=300, fs=disk)
    for n in range(12):
        journal.append(SID, {"role": "user", "content": f"m{n}:" + "x" * 30})
    journal.close()
    log_dir = f"/store/{SID}/log"
    first = f"{log_dir}/{sorted(disk.listdir(log_dir))[0]}"
    lines = disk.read_bytes(first).split(b"\n")
    lines[1] = b"x" * len(lines[1])  # a middle line of a closed segment: damage, not a torn tail
    disk.write_bytes(first, b"\n".join(lines))
    disk.crash_process()
    with Journal("/store", durability="none", fs=disk) as journal:
        report = journal.repair(SID)
        repaired = [(r.seq, r.kind, r.data) for r in journal.read(SID)]
    assert report.problems and report.lost
    disk.crash_losing_unsynced()
    with Journal("/store", durability="none", fs=disk) as journal:
        assert [(r.seq, r.kind, r.data) for r in journal.read(SID)] == repaired
