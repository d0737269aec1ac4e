"""Damaged or edited compaction files (issue #12, items 4, 5, 7, 8, 9): each is a precise
`JournalError` or a `verify` problem, never a raw exception, a lost record or a wrong read."""

from __future__ import annotations

import os
import tracemalloc
import warnings
from pathlib import Path

import orjson
import pytest
import xxhash
import zstandard

from journal import CorruptionError, DefaultSessionStore, Journal, JournalError, RecoveryWarning
from journal.log.record import MESSAGE

SID = "chat"


def _compacted(root: Path, count: int = 3) -> Path:
    with Journal(root, durability="none") as j:
        for i in range(count):
            j.append(SID, {"role": "user", "content": f"m{i}"})
        j.compact(SID)
        return Path(j.session_path(SID))


def _contents(j: Journal) -> list[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RecoveryWarning)
        return [r.data["content"] for r in j.read(SID) if r.kind == MESSAGE]


# -- 4: decompression bombs ------------------------------------------------------------------


def test_an_archive_declaring_more_than_its_records_allow_is_corruption_read_without_the_memory(
    tmp_path: Path,
) -> None:
    session = _compacted(tmp_path, count=1)  # archive 1 holds two records: at most ~32 MiB
    (archive,) = (session / "archive").iterdir()
    archive.write_bytes(zstandard.ZstdCompressor(write_checksum=True).compress(b"\0" * (96 << 20)))
    assert archive.stat().st_size < 64 * 1024
    with Journal(tmp_path) as j:
        tracemalloc.start()
        try:
            with pytest.raises(CorruptionError) as raised:
                list(j.read(SID))
            problems = j.verify(SID).problems
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert raised.value.path == str(archive) and "declares" in raised.value.reason
    assert [p.path for p in problems] == [str(archive)] and "declares" in problems[0].reason
    assert peak < 16 << 20  # the 96 MiB were never materialized


# -- 5: a manifest naming a file it did not fold ---------------------------------------------


def test_a_manifest_naming_the_live_segment_as_folded_is_refused_and_nothing_is_unlinked(
    tmp_path: Path,
) -> None:
    session = _compacted(tmp_path)
    with Journal(tmp_path, durability="always") as j:
        for i in range(3, 6):
            j.append(SID, {"role": "user", "content": f"m{i}"})
    (live,) = os.listdir(session / "log")
    body = orjson.loads((session / "compaction.json").read_bytes())
    body["folded"] = [live]
    (session / "compaction.json").write_bytes(orjson.dumps(body))
    with Journal(tmp_path) as j, pytest.raises(CorruptionError) as raised:
        j.state(SID)
    assert raised.value.path == str(session / "log" / live)
    assert os.listdir(session / "log") == [live]
    body.pop("folded")
    (session / "compaction.json").write_bytes(orjson.dumps(body))
    with Journal(tmp_path) as j:
        assert _contents(j) == [f"m{i}" for i in range(6)]


def test_a_manifest_naming_a_segment_the_archives_do_not_hold_is_refused(tmp_path: Path) -> None:
    session = _compacted(tmp_path)
    with Journal(tmp_path, durability="always") as j:
        j.append(SID, {"role": "user", "content": "m3"})
        j.compact(SID)  # seq 5 is now archived; the live segment starts at 7
    forged = session / "log" / f"{2:020d}.jsonl"  # a segment "inside" the snapshot range...
    forged.write_bytes((session / "log" / f"{7:020d}.jsonl").read_bytes())  # ...not archived
    body = orjson.loads((session / "compaction.json").read_bytes())
    body["folded"] = [forged.name]
    (session / "compaction.json").write_bytes(orjson.dumps(body))
    with Journal(tmp_path) as j, pytest.raises(CorruptionError):
        j.state(SID)
    assert forged.exists()


def test_a_committed_compaction_whose_rolled_to_segment_was_lost_finishes(tmp_path: Path) -> None:
    """Found by a compaction soak: a power loss after a compaction committed, before it
    finished, kept the folded segment but not the (empty, new) segment the seal rolled to.
    The manifest is right: the next open must finish it, not call it corruption."""
    with Journal(tmp_path, durability="always") as j:
        for i in range(3):
            j.append(SID, {"role": "user", "content": f"m{i}"})
        session = Path(j.session_path(SID))
        (folded,) = os.listdir(session / "log")
        kept = (session / "log" / folded).read_bytes().rstrip(b"\0")  # not the preallocated zeros
        j.compact(SID)  # seals the segment: the seal is archived too
    (rolled,) = os.listdir(session / "log")
    assert (session / "log" / rolled).stat().st_size == 0
    (archive,) = (session / "archive").iterdir()
    sealed = zstandard.ZstdDecompressor().decompress(archive.read_bytes())
    assert sealed.startswith(kept)
    (session / "log" / rolled).unlink()  # its directory entry never reached the disk
    (session / "log" / folded).write_bytes(sealed)  # the unlink of the folded one neither
    body = orjson.loads((session / "compaction.json").read_bytes())
    body["folded"] = [folded]
    (session / "compaction.json").write_bytes(orjson.dumps(body))
    with Journal(tmp_path) as j:
        assert _contents(j) == ["m0", "m1", "m2"]
        assert j.verify(SID).ok
    assert not (session / "log" / folded).exists()


# -- 7: raw exceptions -------------------------------------------------------------------------


def test_a_missing_archive_makes_read_raise_corruption_naming_it(tmp_path: Path) -> None:
    session = _compacted(tmp_path)
    (archive,) = (session / "archive").iterdir()
    archive.unlink()
    with Journal(tmp_path) as j, pytest.raises(CorruptionError) as raised:
        list(j.read(SID))
    assert raised.value.path == str(archive) and "missing" in raised.value.reason


@pytest.mark.parametrize("field", ["created_at", "updated_at"])
@pytest.mark.parametrize("value", ["nan", "1.5", True, float("inf")])
def test_a_manifest_time_that_is_not_a_finite_number_is_corruption(
    tmp_path: Path, field: str, value: object
) -> None:
    session = _compacted(tmp_path)
    body = orjson.loads((session / "compaction.json").read_bytes())
    raw = orjson.dumps({**body, field: value}) if value != float("inf") else None
    if raw is None:
        raw = orjson.dumps(body).replace(b'"%s":' % field.encode(), b'"%s":1e999,"x":' % field.encode(), 1)
    (session / "compaction.json").write_bytes(raw)
    with Journal(tmp_path) as j, pytest.raises(CorruptionError) as raised:
        j.state(SID)
    assert raised.value.path == str(session / "compaction.json")


def test_metadata_json_that_is_not_an_object_is_rebuilt_by_the_next_compaction(tmp_path: Path) -> None:
    session = _compacted(tmp_path)
    (session / "metadata.json").write_bytes(b"[1, 2]")
    with Journal(tmp_path) as j:
        j.append(SID, {"role": "user", "content": "m3"})
        with pytest.warns(RecoveryWarning):
            assert j.compact(SID).compacted
        assert orjson.loads((session / "metadata.json").read_bytes()) == {}
        assert j.verify(SID).ok


# -- 8: what makes a read fail, verify finds; compaction never folds it; views heal ------------


def _bad_payload_line(seq: int, payload: bytes) -> bytes:
    body = b'"v":1,"seq":%d,"ts":1.000000,"kind":"message","data":%s}' % (seq, payload)
    return b'{"xxh3":"' + xxhash.xxh3_64_hexdigest(body).encode() + b'",' + body + b"\n"


@pytest.mark.parametrize("payload", [b"{not json}", b"[" * 3000 + b"]" * 3000])
def test_a_checksummed_record_a_read_cannot_parse_is_found_by_verify_and_never_compacted(
    tmp_path: Path, payload: bytes
) -> None:
    with Journal(tmp_path, durability="always") as j:
        j.append(SID, {"role": "user", "content": "m0"})
        session = Path(j.session_path(SID))
    (segment,) = (session / "log").iterdir()
    with open(segment, "ab") as handle:
        handle.write(_bad_payload_line(2, payload))
    with Journal(tmp_path) as j:
        with pytest.raises(CorruptionError):
            list(j.read(SID))
        report = j.verify(SID)
        assert not report.ok and report.problems[0].path == str(segment)
        with pytest.raises(CorruptionError):
            j.compact(SID)
    assert not (session / "compaction.json").exists()
    assert not (session / "archive").exists() or os.listdir(session / "archive") == []


def test_a_log_directory_replaced_by_a_file_is_a_verify_problem(tmp_path: Path) -> None:
    session = _compacted(tmp_path)
    for name in os.listdir(session / "log"):
        os.unlink(session / "log" / name)
    os.rmdir(session / "log")
    (session / "log").write_bytes(b"not a directory")
    with Journal(tmp_path) as j:
        report = j.verify(SID)
    assert not report.ok and report.problems[0].path == str(session / "log")


def test_a_deleted_messages_json_is_written_again_by_the_next_compaction(tmp_path: Path) -> None:
    session = _compacted(tmp_path)
    (session / "messages.json").unlink()
    with Journal(tmp_path) as j:
        assert not j.verify(SID).ok
        assert j.compact(SID).compacted  # nothing new in the log: the view alone is rebuilt
        assert j.verify(SID).ok
        assert _contents(j) == ["m0", "m1", "m2"]
    assert orjson.loads((session / "messages.json").read_bytes())["total_messages"] == 3


# -- 9: hand-edited views ----------------------------------------------------------------------


def _edit_keeping_lines(session: Path) -> bytes:
    path = session / "messages.json"
    path.write_bytes(path.read_bytes().replace(b'"m1"', b'"EDITED"'))
    return path.read_bytes()


def _reindent(session: Path) -> bytes:
    path = session / "messages.json"
    path.write_bytes(orjson.dumps(orjson.loads(path.read_bytes()), option=orjson.OPT_INDENT_2))
    return path.read_bytes()


@pytest.mark.parametrize("edit", [_edit_keeping_lines, _reindent])
def test_an_edited_view_is_detected_reads_follow_the_log_and_compact_rebuilds_it_keeping_the_edit(
    tmp_path: Path, edit: object
) -> None:
    session = _compacted(tmp_path)
    edited = edit(session)  # type: ignore[operator]
    with Journal(tmp_path) as j:
        report = j.verify(SID)
        assert not report.ok and report.problems[-1].path == str(session / "messages.json")
    with DefaultSessionStore(tmp_path) as store, pytest.warns(RecoveryWarning):
        assert [m["content"] for m in store.get_chat_history(SID)] == ["m0", "m1", "m2"]
    with Journal(tmp_path) as j:
        with pytest.warns(RecoveryWarning):
            assert j.compact(SID).compacted
        assert j.verify(SID).ok
    kept = [p.read_bytes() for p in (session / "quarantine").iterdir() if "messages.json" in p.name]
    assert kept == [edited]
    assert b"EDITED" not in (session / "messages.json").read_bytes()


def test_every_failure_above_is_a_journal_error() -> None:
    assert issubclass(CorruptionError, JournalError)


def test_an_archive_of_records_past_the_default_size_limit_reads_where_the_store_allows_them(
    ram_path: Path,
) -> None:
    # One 35 MiB message and the seal: more than two records of the default 16 MiB limit may
    # expand to, well within this store's 40 MiB limit.
    big = 35 * 1024 * 1024
    options = {"max_record_bytes": 40 * 1024 * 1024, "durability": "none"}
    with Journal(ram_path / "store", **options) as journal:  # type: ignore[arg-type]
        journal.append("s", {"role": "user", "content": "x" * big})
        assert journal.compact("s").compacted
    with Journal(ram_path / "store", **options) as journal:  # type: ignore[arg-type]
        records = [r for r in journal.read("s") if r.kind == "message"]
        assert [len(r.data["content"]) for r in records] == [big]
        assert journal.verify("s").ok


@pytest.mark.parametrize("edit", [_edit_keeping_lines, _reindent])
def test_repair_writes_an_edited_view_again_and_keeps_the_edit_aside(tmp_path: Path, edit: object) -> None:
    session = _compacted(tmp_path)
    edited = edit(session)  # type: ignore[operator]
    with Journal(tmp_path) as j:
        assert not j.verify(SID).ok
        with pytest.warns(RecoveryWarning):
            j.repair(SID)
        assert j.verify(SID).ok
    kept = [p.read_bytes() for p in (session / "quarantine").iterdir() if "messages.json" in p.name]
    assert kept == [edited]
    assert b"EDITED" not in (session / "messages.json").read_bytes()
