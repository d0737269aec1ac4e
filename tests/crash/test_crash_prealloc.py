"""Power cuts at every file system call while a writer preallocates (FORMAT.md, "Segments").

A writer in `always` or `batch` mode fills zeros ahead of the active segment's data, writes
its records over them with pwrite, and cuts the zeros after a seal (durably) before the next
segment's name exists. The simulated disk's power goes off at each call in turn: in the middle
of a zero fill, of a record written into the zeros, of a cut, of a roll. After each cut, for
a power loss that keeps exactly what was synced and for random ones (torn writes padded with
zeros, garbage or the old bytes; unsynced cuts lost or kept), a fresh `Journal` must read every
acknowledged record, in order, nothing that was not written, and `verify` must pass.
"""

from __future__ import annotations

import random
import warnings
from typing import Any

from simdisk import PowerCut, SimDisk

from journal import Journal, RecoveryWarning
from journal.log.record import MESSAGE

PREALLOC = 64 * 1024  # preallocation is opt-in (README "Durability modes"): these tests turn it on

ROOT, SID = "/store", "chat"
SEEDS = 1  # random power losses per cut point, besides the one that keeps only what was synced


def batches(segment_bytes: int) -> list[list[dict[str, Any]]]:
    """Appends of 1-3 messages; with large segments they cross several zero fills (4 KiB,
    then as much again as the segment holds), with small ones several rolls."""
    size = 300 if segment_bytes > 10_000 else 60
    return [[{"n": n, "k": k, "pad": "x" * size} for k in range(1 + n % 3)] for n in range(24)]


def run(disk: SimDisk, mode: str, segment_bytes: int, cut: int | None) -> tuple[list[Any], list[Any]]:
    """Append until the power goes off after `cut` calls (None: never); return what was
    acknowledged and what was handed to the journal."""
    acked: list[Any] = []
    written: list[Any] = []
    journal = Journal(ROOT, preallocate=PREALLOC, durability=mode, segment_bytes=segment_bytes, fs=disk)
    if cut is not None:
        disk.cut_power_after(cut)
    try:
        for items in batches(segment_bytes):
            written += items
            journal.append_many(SID, items)
            acked += items
        journal.close()
    except PowerCut:
        pass
    return acked, written


def check_recovered(disk: SimDisk, acked: list[Any], written: list[Any], what: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RecoveryWarning)  # a torn tail may be cut
        if disk.listdir(ROOT):  # first a read-only reader, which cuts nothing (zeros after a seal)
            with Journal(ROOT, preallocate=PREALLOC, fs=disk, read_only=True) as reader:
                seen = [r.data for r in reader.read(SID) if r.kind == MESSAGE]
            assert seen[: len(acked)] == acked and seen == written[: len(seen)], f"{what}: read-only"
        journal = Journal(ROOT, preallocate=PREALLOC, fs=disk)
        found = [r.data for r in journal.read(SID) if r.kind == MESSAGE]
        report = journal.verify(SID)
        assert found[: len(acked)] == acked, f"{what}: acknowledged records lost"
        assert found == written[: len(found)], f"{what}: records that were not written"
        assert report.ok, f"{what}: {report.problems}"
        journal.append(SID, {"after": what})  # and the log takes appends again
        journal.close()
        assert [r.data for r in Journal(ROOT, preallocate=PREALLOC, fs=disk).read(SID)][-1] == {"after": what}


def calls_of_a_whole_run(mode: str, segment_bytes: int) -> int:
    disk = SimDisk()
    disk.cut_power_after(10**9)
    run(disk, mode, segment_bytes, None)
    left = disk._ops_left
    assert left is not None
    return 10**9 - left


def test_a_power_cut_at_any_call_keeps_every_acknowledged_record() -> None:
    for mode in ("always", "batch"):
        for segment_bytes in (1500, 1 << 20):
            calls = calls_of_a_whole_run(mode, segment_bytes)
            for cut in range(calls):
                for seed in range(-1, SEEDS):
                    disk = SimDisk()
                    acked, written = run(disk, mode, segment_bytes, cut)
                    if seed < 0:
                        disk.crash_losing_unsynced()
                    else:
                        disk.crash(random.Random(cut * 10 + seed))
                    check_recovered(disk, acked, written, f"{mode} {segment_bytes} cut {cut} seed {seed}")


def test_the_writer_preallocates_and_cuts_on_the_simulated_disk() -> None:
    """The proof above is only one if the writer really wrote zeros ahead and cut them."""
    disk = SimDisk()
    journal = Journal(ROOT, preallocate=PREALLOC, durability="always", segment_bytes=1 << 20, fs=disk)
    journal.append_many(SID, batches(1 << 20)[0])
    path = f"{journal.session_path(SID)}/log/{disk.listdir(journal.session_path(SID) + '/log')[-1]}"
    data = disk.read_bytes(path)
    assert len(data) >= 4096 and data.rstrip(b"\0").endswith(b"\n") and data.endswith(b"\0")
    journal.close()
    assert b"\0" not in disk.read_bytes(path)
