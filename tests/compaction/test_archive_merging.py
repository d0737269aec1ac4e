"""Archive count stays bounded: a small newest archive takes the next compaction's segments."""

from __future__ import annotations

import os
import time
from pathlib import Path

import orjson
import zstandard

from journal import CompactionPolicy, Journal
from journal.log.record import MESSAGE, SEAL

SID = "chat"


def _archives(j: Journal) -> list[str]:
    return sorted(os.listdir(Path(j.session_path(SID)) / "archive"))


def _manifest(j: Journal) -> dict[str, object]:
    return dict(orjson.loads((Path(j.session_path(SID)) / "compaction.json").read_bytes()))


def _content(path: Path) -> bytes:
    return zstandard.ZstdDecompressor().decompressobj().decompress(path.read_bytes())


def test_two_hundred_compactions_with_appends_between_leave_a_handful_of_archives(ram_path: Path) -> None:
    with Journal(ram_path, durability="none") as j:
        for i in range(200):
            j.append(SID, {"role": "user", "content": f"message {i}"})
            assert j.compact(SID).compacted
        assert len(_archives(j)) <= 2  # default: one archive until it holds 4 MiB of log
        records = list(j.read(SID))
        assert [r.seq for r in records] == list(range(1, 401))  # 200 messages, 200 seals
        assert [r.data["content"] for r in records if r.kind == MESSAGE] == [
            f"message {i}" for i in range(200)
        ]
        assert [r.kind for r in records].count(SEAL) == 200
        assert j.verify(SID).ok


def test_a_full_archive_is_never_extended_and_every_archive_but_the_newest_is_full(ram_path: Path) -> None:
    policy = CompactionPolicy(merge_archive_bytes=2000)
    with Journal(ram_path, durability="none", compaction=policy) as j:
        for i in range(60):
            j.append(SID, {"role": "user", "content": f"message {i} " + "x" * 50})
            j.compact(SID)
        path = Path(j.session_path(SID)) / "archive"
        sizes = [len(_content(path / name)) for name in _archives(j)]
        assert 3 <= len(sizes) <= sum(sizes) // 2000 + 1
        assert all(2000 <= size < 2000 + 400 for size in sizes[:-1])  # full: at most one segment over
        assert [r.seq for r in j.read(SID)] == list(range(1, 121))
        assert j.verify(SID).ok


def test_no_merging_keeps_one_archive_per_folded_segment(ram_path: Path) -> None:
    with Journal(ram_path, durability="none", compaction=CompactionPolicy(merge_archive_bytes=0)) as j:
        for i in range(5):
            j.append(SID, {"role": "user", "content": f"m{i}"})
            j.compact(SID)
        assert len(_archives(j)) == 5
        assert j.verify(SID).ok


def test_retention_by_age_prunes_full_archives_and_keeps_the_one_being_extended(ram_path: Path) -> None:
    policy = CompactionPolicy(merge_archive_bytes=1000)
    with Journal(ram_path, durability="none", compaction=policy) as j:
        for i in range(30):
            j.append(SID, {"role": "user", "content": f"message {i} " + "x" * 50})
            j.compact(SID)
        names = _archives(j)
        assert len(names) >= 3
        archive = Path(j.session_path(SID)) / "archive"
        old = time.time() - 7200
        for name in names[:2]:  # the two oldest were last written two hours ago
            os.utime(archive / name, (old, old))
    aged = CompactionPolicy(merge_archive_bytes=1000, max_archive_age=3600)
    with Journal(ram_path, durability="none", compaction=aged) as j:
        j.append(SID, {"role": "user", "content": "after"})
        result = j.compact(SID)
        assert result.pruned_archives == [name[: -len(".zst")] for name in names[:2]]
        assert _archives(j) == names[2:]  # the newest took the new segment and stays
        first_kept = int(names[2].split(".")[0])
        records = list(j.read(SID))
        assert records[0].seq == first_kept == _manifest(j)["pruned_through"] + 1  # type: ignore[operator]
        assert records[-1].kind == SEAL and records[-2].data["content"] == "after"
        assert j.verify(SID).ok


def test_keep_archives_counts_archive_files_however_many_segments_they_hold(ram_path: Path) -> None:
    policy = CompactionPolicy(merge_archive_bytes=1000, keep_archives=2)
    with Journal(ram_path, durability="none", compaction=policy) as j:
        for i in range(40):
            j.append(SID, {"role": "user", "content": f"message {i} " + "x" * 50})
            j.compact(SID)
        assert len(_archives(j)) == 2
        assert j.verify(SID).ok
        assert list(j.read(SID))[-2].data["content"].startswith("message 39 ")


def test_verify_reports_a_merged_archive_missing_a_record_or_a_seal(ram_path: Path) -> None:
    with Journal(ram_path, durability="none") as j:
        for i in range(4):
            j.append(SID, {"role": "user", "content": f"m{i}"})
            j.compact(SID)
        (name,) = _archives(j)
        path = Path(j.session_path(SID)) / "archive" / name
        lines = _content(path).splitlines(keepends=True)
        assert [orjson.loads(line)["kind"] for line in lines].count("seal") == 4
        for damaged, expected in ((lines[:2] + lines[3:], "sequence number"), (lines[:-1], "seal")):
            path.write_bytes(zstandard.ZstdCompressor(write_checksum=True).compress(b"".join(damaged)))
            report = j.verify(SID)
            assert not report.ok and expected in report.problems[0].reason
            assert report.problems[0].path == str(path)


def test_a_damaged_newest_archive_is_left_for_verify_and_the_new_segments_start_a_new_one(
    ram_path: Path,
) -> None:
    with Journal(ram_path, durability="none") as j:
        j.append(SID, {"role": "user", "content": "m0"})
        j.compact(SID)
        (name,) = _archives(j)
        path = Path(j.session_path(SID)) / "archive" / name
        data = path.read_bytes()
        path.write_bytes(data[:-6] + bytes([data[-6] ^ 0xFF]) + data[-5:])
        j.append(SID, {"role": "user", "content": "m1"})
        assert j.compact(SID).compacted
        assert _archives(j) == [name, f"{3:020d}.jsonl.zst"]
        assert path.read_bytes() != data  # the damage is still there, untouched
        assert [r.data["content"] for r in j.read(SID, 3) if r.kind == MESSAGE] == ["m1"]
        problems = j.verify(SID).problems
        assert [p.path for p in problems] == [str(path)]
