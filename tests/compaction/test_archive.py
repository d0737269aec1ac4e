"""Archives of folded segments: verbatim zstd frames the stock tool reads, checked by verify."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import zstandard

from journal import Journal
from journal.compaction.protocol import CompactionPolicy
from journal.log.record import SEAL, decode

SID = "chat"
ZSTD = shutil.which("zstd") or "/usr/bin/zstd"


def _segments(journal: Journal) -> dict[str, bytes]:
    log = Path(journal.session_path(SID)) / "log"
    return {name: (log / name).read_bytes() for name in sorted(os.listdir(log))}


def _compacted(root: Path, level: int = 3, merge: int = 4 << 20) -> tuple[Journal, dict[str, bytes]]:
    """A compacted session and the exact bytes of every segment it folded."""
    policy = CompactionPolicy(level=level, merge_archive_bytes=merge)
    j = Journal(root, durability="none", segment_bytes=1500, compaction=policy)
    for i in range(40):
        j.append(SID, {"role": "user", "content": f"question {i} " * 5, "metadata": {"i": i}})
    j.update_metadata(SID, {"agent_name": "Bot"})
    j.compact(SID)  # the first compaction's seal: the segment bytes below include it
    j.append(SID, {"role": "assistant", "content": "after"})
    segments = _segments(j)
    j.compact(SID)
    return j, segments


def _stock_zstd(path: Path) -> bytes:
    return subprocess.run([ZSTD, "-d", "-c", "-q", str(path)], capture_output=True, check=True).stdout


def test_archives_decompress_with_the_stock_zstd_to_the_exact_segment_bytes(root: Path) -> None:
    journal, segments = _compacted(root, merge=0)  # one archive per segment
    archive = Path(journal.session_path(SID)) / "archive"
    names = sorted(os.listdir(archive))
    assert names[-len(segments) :] == [f"{name}.zst" for name in segments]
    active = list(segments)[-1]
    for name, original in segments.items():
        out = _stock_zstd(archive / f"{name}.zst")
        if name != active:
            assert out == original
        else:  # the compaction sealed the then-active segment before folding it
            assert out.startswith(original)
            assert decode(out[len(original) :]).kind == SEAL
            assert out.count(b"\n") == original.count(b"\n") + 1
    journal.close()


def test_a_small_archive_takes_the_next_segments_and_decompresses_to_them_all_in_order(root: Path) -> None:
    journal = Journal(root, durability="none", segment_bytes=1500)
    folded = b""  # every segment the compactions folded, in order, each sealed
    for round_ in range(3):
        for i in range(15):
            journal.append(SID, {"role": "user", "content": f"question {round_}.{i} " * 5})
        segments = _segments(journal)
        journal.compact(SID)
        seal = next(iter(journal.read(SID, max(r.seq for r in journal.read(SID)))))
        assert seal.kind == SEAL
        folded += b"".join(segments.values())
        archive = Path(journal.session_path(SID)) / "archive"
        assert sorted(os.listdir(archive)) == [f"{1:020d}.jsonl.zst"]
        out = _stock_zstd(archive / f"{1:020d}.jsonl.zst")
        assert out.startswith(folded) and decode(out[len(folded) :]) == seal
        folded = out
    assert [r.seq for r in journal.read(SID)] == list(range(1, max(r.seq for r in journal.read(SID)) + 1))
    assert journal.verify(SID).ok
    journal.close()


def test_every_folded_segment_is_archived_and_the_live_log_holds_only_newer_records(root: Path) -> None:
    journal, _ = _compacted(root)
    path = Path(journal.session_path(SID))
    manifest = (path / "compaction.json").read_text()
    assert all(f"{name[:-4]}" in manifest for name in os.listdir(path / "archive"))
    live = sorted(os.listdir(path / "log"))
    snapshot_seq = max(r.seq for r in journal.read(SID))
    assert live == [f"{snapshot_seq + 1:020d}.jsonl"]
    assert (path / "log" / live[0]).read_bytes() == b""
    journal.close()


def test_verify_checks_archives_without_trusting_the_snapshot(root: Path) -> None:
    journal, _ = _compacted(root)
    assert journal.verify(SID).ok
    archive = Path(journal.session_path(SID)) / "archive" / f"{1:020d}.jsonl.zst"
    original = zstandard.ZstdDecompressor().decompress(archive.read_bytes())
    tampered = original.replace(b"question 3 ", b"question 9 ", 1)  # valid zstd, bad checksum
    archive.write_bytes(zstandard.ZstdCompressor().compress(tampered))
    report = journal.verify(SID)
    assert not report.ok
    assert any("checksum mismatch" in p.reason and p.path == str(archive) for p in report.problems)
    journal.close()


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
def test_a_damaged_or_missing_archive_is_reported_by_verify(root: Path, damage: str) -> None:
    journal, _ = _compacted(root)
    archive = Path(journal.session_path(SID)) / "archive" / f"{1:020d}.jsonl.zst"
    data = archive.read_bytes()
    if damage == "flip":
        archive.write_bytes(data[:20] + bytes([data[20] ^ 0xFF]) + data[21:])
    elif damage == "truncate":
        archive.write_bytes(data[: len(data) // 2])
    else:
        archive.unlink()
    report = journal.verify(SID)
    assert not report.ok and report.problems[0].kind == "corruption"
    assert report.problems[0].path == str(archive)
    journal.close()


def test_a_snapshot_that_disagrees_with_the_manifest_is_reported_by_verify(root: Path) -> None:
    journal, _ = _compacted(root)
    messages = Path(journal.session_path(SID)) / "messages.json"
    messages.write_text(messages.read_text().replace('"journal_seq": ', '"journal_seq": 1'))
    report = journal.verify(SID)
    assert not report.ok and report.problems[0].path == str(messages)
    journal.close()


def test_the_compression_level_is_configurable(tmp_path: Path) -> None:
    sizes = {}
    for level in (1, 19):
        journal, _ = _compacted(tmp_path / str(level), level)
        archive = Path(journal.session_path(SID)) / "archive"
        sizes[level] = sum(f.stat().st_size for f in archive.iterdir())
        assert journal.verify(SID).ok
        journal.close()
    assert sizes[19] < sizes[1]
