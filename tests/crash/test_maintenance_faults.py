"""Faults in the middle of a compaction: each must leave a session that opens, reads what it
held, and takes appends; nothing the failed compaction made is left behind.

Strategy: the simulated disk fails the n-th write (ENOSPC), directory fsync, rename or unlink
(EIO) of one compaction, for every n until the compaction gets through without meeting the
fault; after each failure the session is checked in place, reopened, and (for the non-fatal
faults) put through a power loss. The crash state machine draws such faults at random; these
walk every position deterministically.
"""

from __future__ import annotations

import contextlib
import errno
import random

import orjson
import pytest
from _core_helpers import message
from simdisk import SimDisk

from journal import Journal, JournalError
from journal.log.fs import TEMP_MARK
from journal.log.record import SEAL

SID = "chat"


def filled(disk: SimDisk) -> tuple[Journal, list[tuple[int, str, object]]]:
    journal = Journal("/store", durability="always", segment_bytes=600, fs=disk)
    for n in range(30):
        journal.append(SID, message(f"{n}:" + "x" * 40))
    return journal, history(journal)


def history(journal: Journal) -> list[tuple[int, str, object]]:
    return [(r.seq, r.kind, r.data) for r in journal.read(SID) if r.kind != SEAL]


def seals(journal: Journal) -> int:
    return sum(r.kind == SEAL for r in journal.read(SID))


def temps_left(disk: SimDisk, session: str) -> list[str]:
    """Temp files no committed compaction names (those the next open renames into place)."""
    try:
        pending = {
            temp for temp, _ in orjson.loads(disk.read_bytes(f"{session}/compaction.json")).get("pending", [])
        }
    except FileNotFoundError:
        pending = set()
    found = []
    for sub in ("", "/log", "/archive", "/quarantine"):
        prefix = sub.lstrip("/") + "/" if sub else ""
        found += [prefix + n for n in disk.listdir(session + sub) if TEMP_MARK in n]
    return [t for t in found if t not in pending]


def test_a_compaction_that_runs_out_of_space_leaves_no_temp_files_and_appends_go_on() -> None:
    """ENOSPC at each write of a compaction in turn: it raises, the session reads the same
    and takes the next append, and by then every temp file the compaction made is gone (a
    full disk stays full of them otherwise, and no later append fits)."""
    failures = 0
    for n in range(200):
        disk = SimDisk()
        journal, before = filled(disk)
        session = journal.session_path(SID)
        disk.fail_append(n, 0)
        try:
            journal.compact(SID)
        except (JournalError, OSError):
            failures += 1
        disk.clear_faults()
        if disk.appends_failed == 0:
            break  # the compaction made fewer than n writes: every position was tried
        # The next append (which reopens the session if the compaction got as far as
        # publishing) finds no temp file: a full disk is not kept full by them.
        journal.append(SID, message("after"))
        assert temps_left(disk, session) == [], f"write {n}"
        assert history(journal) == [*before, (len(before) + 1 + seals(journal), "message", message("after"))]
        journal.close()
    assert failures > 5, "the fault never hit the compaction"


@pytest.mark.filterwarnings("ignore::journal.RecoveryWarning")
@pytest.mark.parametrize("call", ["sync_dir", "rename", "unlink"])
@pytest.mark.parametrize("code", [errno.EIO, errno.ENOSPC])
def test_a_compaction_failing_at_any_directory_fsync_rename_or_unlink_loses_nothing(
    call: str, code: int
) -> None:
    """A non-fatal EIO/ENOSPC at each directory fsync, rename or unlink of a compaction in
    turn: whether it failed before or after its manifest was stored, the next open finishes
    or discards it (never `CorruptionError` for temps it removed although the stored manifest
    names them), the history is unchanged, and so it is after a power loss too."""
    hits = 0
    for n in range(100):
        disk = SimDisk()
        journal, before = filled(disk)
        disk.fail_call(call, n, code)
        with contextlib.suppress(JournalError, OSError):
            journal.compact(SID)
        disk.clear_faults()
        if disk.calls_failed == 0:
            break  # past the compaction's last such call
        hits += 1
        journal.close()
        with Journal("/store", fs=disk) as reopened:
            assert history(reopened) == before, f"{call} {n}"
            assert reopened.verify(SID).ok
        disk.crash(random.Random(n))
        with Journal("/store", fs=disk) as after_crash:
            assert history(after_crash) == before, f"{call} {n}, then power loss"
            assert after_crash.verify(SID).ok
    assert hits > 0, f"the compaction made no {call} call"


def test_nothing_is_removed_on_the_word_of_a_manifest_whose_directory_fsync_failed() -> None:
    """Retention stores a manifest without the oldest archive; if the fsync of the directory
    after that rename fails, the new manifest is visible but not durable. The next compaction
    must not remove the old archive as an orphan on its word before making it durable: a power
    loss could then bring the old manifest back without its archive. For each directory fsync
    of the retention: fail it, compact again, lose power keeping only what was synced, and
    every record the manifest in force still covers must read back."""
    from journal import CompactionPolicy

    position = 0
    while True:
        disk = SimDisk()
        policy = CompactionPolicy(keep_archives=1, merge_archive_bytes=0)
        journal = Journal("/store", durability="always", segment_bytes=600, fs=disk, compaction=policy)
        for round_ in range(3):
            for n in range(6):
                journal.append(SID, message(f"{round_}.{n}:" + "x" * 40))
            if round_ < 2:
                journal.compact(SID)
        calls_before = disk.dir_syncs
        disk.fail_call("sync_dir", after=position)
        with contextlib.suppress(JournalError, OSError):
            journal.compact(SID)  # folds round 2; retention drops the oldest archive
        faulted = disk.calls_failed > 0
        disk.clear_faults()
        journal.close()
        with Journal("/store", durability="always", segment_bytes=600, fs=disk, compaction=policy) as again:
            journal_after = again
            journal_after.append(SID, message("after"))
            journal_after.compact(SID)
        disk.crash_losing_unsynced()
        with Journal("/store", durability="always", fs=disk) as reopened:
            records = [r for r in reopened.read(SID) if r.kind != SEAL]  # raises if an archive is gone
            assert records, "everything was lost"
            assert reopened.verify(SID).ok
        if not faulted or disk.dir_syncs - calls_before > 200:
            break
        position += 1
    assert position > 3  # the walk reached the retention's fsyncs


def test_an_open_removes_no_orphan_archive_before_the_manifest_it_trusts_is_durable() -> None:
    """Found by a compaction soak: retention's manifest is renamed into place but the fsync of
    the directory fails, so the rename may still be undone by a power loss. The next open sees
    the oldest archive as an orphan of that manifest; if it removed the archive before making
    the manifest durable, a power loss keeping the unlink but not the rename would bring back
    the old manifest, which lists the removed archive. Every such power loss must read back."""
    import copy

    from journal import CompactionPolicy

    policy = CompactionPolicy(keep_archives=1, merge_archive_bytes=0)
    disk = SimDisk()
    unbounded = CompactionPolicy(merge_archive_bytes=0)  # one archive per compaction, all kept
    with Journal("/store", durability="always", segment_bytes=600, fs=disk, compaction=unbounded) as journal:
        for round_ in range(2):
            for n in range(6):
                journal.append(SID, message(f"{round_}.{n}:" + "x" * 40))
            journal.compact(SID)
        before = history(journal)
    failed = 0
    for position in range(12):
        faulty = copy.deepcopy(disk)
        faulty.fail_call("sync_dir", after=position)
        with contextlib.suppress(JournalError, OSError), Journal("/store", fs=faulty, compaction=policy) as j:
            j.compact(SID)  # nothing new to fold: retention drops the oldest archive
        failed += faulty.calls_failed
        faulty.clear_faults()
        Journal("/store", fs=faulty).close()  # an open, which removes orphans
        with Journal("/store", fs=faulty) as reopened:
            read = history(reopened)
        assert read == before[len(before) - len(read) :]  # retention may have dropped the oldest
        for seed in range(24):
            crashed = copy.deepcopy(faulty)
            crashed.crash(random.Random(seed))
            with Journal("/store", fs=crashed) as after:
                kept = history(after)  # raises CorruptionError if a listed archive is gone
                assert kept == before[len(before) - len(kept) :], f"position {position}, seed {seed}"
    assert failed > 0  # some retention met the fault
