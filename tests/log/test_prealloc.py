"""The zero-filled tail of a preallocated segment (FORMAT.md, "Segments"), on real files.

A writer in `always` or `batch` mode keeps zeros ahead of the active segment's data so its
fsyncs commit no size change. These tests check the format's side of it: the zeros are where
the data ends (never torn, never quarantined), a closed segment ends in its seal, a session at
rest holds no zeros, a writer that cannot pwrite cuts them before appending, and a reader
without the lock reads a writer's half-copied bytes again rather than calling them damage.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

from _core_helpers import CountingFileSystem, active_segment, contents, message, segment_paths

from journal import DefaultSessionStore, Journal, RecoveryWarning
from journal.log.naming import QUARANTINE_DIR
from journal.log.prealloc import scan_settled
from journal.log.record import encode

PREALLOC = 64 * 1024  # preallocation is opt-in (README "Durability modes"): these tests turn it on

SID = "chat"

# Appends in `always` mode and dies without closing anything: the zeros stay, as after kill -9.
WRITER = """
import os, sys
from journal import Journal
journal = Journal(sys.argv[1], preallocate=64 * 1024, durability=sys.argv[2], segment_bytes=int(sys.argv[3]))
for n in range(int(sys.argv[4])):
    journal.append("chat", {"role": "user", "content": f"m{n}"})
os._exit(0)
"""


def write_and_die(root: Path, count: int, durability: str = "always", segment_bytes: int = 1 << 26) -> None:
    args = [str(root), durability, str(segment_bytes), str(count)]
    subprocess.run([sys.executable, "-c", WRITER, *args], check=True)


def data_end(path: Path) -> int:
    return len(path.read_bytes().rstrip(b"\0"))


def test_zeros_after_the_last_record_are_its_end_not_a_torn_tail(tmp_path: Path) -> None:
    write_and_die(tmp_path, 40)
    session = tmp_path / SID
    segment = active_segment(session)
    size, end = segment.stat().st_size, data_end(segment)
    assert size > end and segment.read_bytes()[end - 1 :] == b"\n" + bytes(size - end)  # preallocated
    with warnings.catch_warnings():
        warnings.simplefilter("error", RecoveryWarning)  # nothing is cut
        with Journal(tmp_path, preallocate=PREALLOC) as journal:
            assert contents(journal.read(SID)) == [f"m{n}" for n in range(40)]
            assert journal.verify(SID).ok
            assert journal.append(SID, message("after")) == 41  # written where the data ends
        assert contents(Journal(tmp_path, preallocate=PREALLOC).read(SID))[-2:] == ["m39", "after"]
    assert not (session / QUARANTINE_DIR).exists()


def test_a_closed_segment_ends_in_its_seal_and_a_session_at_rest_holds_no_zeros(tmp_path: Path) -> None:
    write_and_die(tmp_path, 120, segment_bytes=2000)
    segments = segment_paths(tmp_path / SID)
    assert len(segments) > 3
    for closed in segments[:-1]:  # cut before the next segment was created
        assert b"\0" not in closed.read_bytes() and closed.read_bytes().endswith(b"\n")
        assert b'"kind":"seal"' in closed.read_bytes().splitlines()[-1]
    assert b"\0" in segments[-1].read_bytes()  # the dead writer's zeros are still there
    with Journal(tmp_path, preallocate=PREALLOC, durability="batch") as journal:
        journal.append(SID, message("one more"))
    assert b"\0" not in active_segment(tmp_path / SID).read_bytes()  # closing cut them
    assert contents(Journal(tmp_path, preallocate=PREALLOC).read(SID))[-1] == "one more"


def test_a_writer_that_appends_cuts_another_writers_zeros_first(tmp_path: Path) -> None:
    """A file system that counts appends does not preallocate (its `append` is the one that
    must see every write): it appends after the data, not after the zeros."""
    write_and_die(tmp_path, 10)
    fs = CountingFileSystem()
    with Journal(tmp_path, preallocate=PREALLOC, durability="always", fs=fs) as journal:
        assert [journal.append(SID, message(f"a{n}")) for n in range(3)] == [11, 12, 13]
        assert fs.appends == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error", RecoveryWarning)
        with Journal(tmp_path, preallocate=PREALLOC) as journal:
            assert contents(journal.read(SID)) == [f"m{n}" for n in range(10)] + ["a0", "a1", "a2"]
            assert journal.verify(SID).ok


def test_two_processes_take_turns_writing_into_the_zeros(tmp_path: Path) -> None:
    """An open handle learns another process's records under the lock by the byte at its data
    end: they went into its zeros, so the file's size did not change."""
    expected: list[str] = []
    with Journal(tmp_path, preallocate=PREALLOC, durability="always") as journal:
        for round_ in range(4):
            journal.append(SID, message(f"parent {round_}"))
            size = active_segment(tmp_path / SID).stat().st_size
            write_and_die(tmp_path, 3)
            assert active_segment(tmp_path / SID).stat().st_size == size  # all in the zeros
            expected += [f"parent {round_}", "m0", "m1", "m2"]
        assert contents(journal.read(SID)) == expected
    with Journal(tmp_path, preallocate=PREALLOC) as journal:
        assert contents(journal.read(SID)) == expected
        assert journal.verify(SID).ok


def test_a_lock_free_reader_reads_again_over_a_writer_half_way_through_zeros(tmp_path: Path) -> None:
    """A reader without the lock can copy a page the writer has not reached yet (zeros) and a
    later one it has: valid records after zeros. Read again, the bytes are whole; damage that
    stays is reported."""
    lines = [encode(n, 1.0, "message", b'{"content":"%d"}' % n) for n in range(1, 6)]
    whole = b"".join(lines) + bytes(200)
    hole = b"".join(lines[:2]) + bytes(len(lines[2])) + b"".join(lines[3:]) + bytes(200)
    reads = iter([hole, hole, whole])
    data, found = scan_settled(lambda: next(reads), 0, 1, "segment")
    assert data == whole and found.problem is None and found.count == 5
    data, found = scan_settled(lambda: hole, 0, 1, "segment")
    assert found.problem is not None and found.problem.kind == "corruption" and found.count == 2


def test_every_reader_stops_at_the_zeros_a_killed_writer_left(tmp_path: Path) -> None:
    """The read-only store, search (the lock-free segment scan), the listing (session
    summaries) and stats read a segment with a zero tail as its data, and change nothing."""
    write_and_die(tmp_path, 12)
    segment = active_segment(tmp_path / SID)
    before = segment.read_bytes()
    assert before.endswith(b"\0")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RecoveryWarning)
        with Journal(tmp_path, preallocate=PREALLOC, read_only=True) as reader:
            assert contents(reader.read(SID)) == [f"m{n}" for n in range(12)]
            assert reader.verify(SID).ok
            assert [hit.seq for hit in reader.search("m1")] == [2, 11, 12]
            assert reader.stats().total_messages == 12 and not reader.stats().problems
        store = DefaultSessionStore(tmp_path, read_only=True)
        assert [row["session_id"] for row in store.list_sessions(limit=None)] == [SID]
    assert segment.read_bytes() == before


def test_a_payload_holding_a_raw_nul_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    """A record line never holds a NUL byte (it ends a segment's data); only a caller's
    `orjson.Fragment` could carry one, so it is refused like any payload that is not JSON."""
    import orjson
    import pytest

    from journal import InvalidRecordError

    with Journal(tmp_path, preallocate=PREALLOC, durability="always") as journal:
        journal.append(SID, {"role": "user", "content": "first"})
        with pytest.raises(InvalidRecordError, match="NUL"):
            journal.append(SID, {"role": "user", "content": "x", "blob": orjson.Fragment(b'"\x00y"')})
        journal.append(SID, {"role": "user", "content": "after"})
    assert contents(Journal(tmp_path).read(SID)) == ["first", "after"]
