"""Durability modes, group commit, and what a failed write or fsync does (STYLE habit 5)."""

from __future__ import annotations

import errno
import os
import random
import threading
from pathlib import Path

import pytest
from _core_helpers import CountingFileSystem, FaultyFileSystem, active_segment, contents, message, snapshot
from simdisk import SimDisk

from journal import DurabilityError, Journal, JournalError
from journal.log.fs import OsFileSystem

SID = "chat"


@pytest.mark.parametrize("mode", ["always", "batch", "none"])
def test_every_mode_acknowledges_a_seq_readable_by_another_journal(root: Path, mode: str) -> None:
    with Journal(root, durability=mode) as writer, Journal(root) as reader:
        assert writer.append(SID, message("one")) == 1
        assert writer.append_many(SID, [message("two"), message("three")]) == [2, 3]
        assert contents(reader.read(SID)) == ["one", "two", "three"]


@pytest.mark.parametrize("mode", ["always", "batch", "none"])
def test_a_per_call_durability_overrides_the_journal_default(root: Path, mode: str) -> None:
    fs = CountingFileSystem()
    with Journal(root, durability="none", fs=fs) as journal:
        journal.append(SID, message("create"))
        fs.syncs = 0
        journal.append(SID, message("x"), durability=mode)
    assert (fs.syncs > 0) == (mode != "none")


def test_always_syncs_at_least_once_per_append(root: Path) -> None:
    fs = CountingFileSystem()
    with Journal(root, durability="always", fs=fs) as journal:
        journal.append(SID, message("create"))
        fs.syncs = 0
        for i in range(20):
            journal.append(SID, message(f"m{i}"))
            assert fs.syncs >= i + 1


def test_batch_shares_fsyncs_between_threads_yet_covers_every_append(root: Path) -> None:
    fs = CountingFileSystem()
    threads, per_thread = 8, 50
    with Journal(root, durability="batch", fs=fs) as journal:
        journal.append(SID, message("create"))
        fs.syncs = fs.appends = 0
        start = threading.Barrier(threads)

        def writer(t: int) -> None:
            start.wait()
            for i in range(per_thread):
                journal.append(SID, message(f"{t}:{i}"))

        workers = [threading.Thread(target=writer, args=(t,)) for t in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        # one leader writes the records queued meanwhile in one write, then syncs them once
        assert 0 < fs.syncs <= fs.appends < threads * per_thread
        texts = contents(Journal(root).read(SID))[1:]
        assert sorted(texts) == sorted(f"{t}:{i}" for t in range(threads) for i in range(per_thread))
        for t in range(threads):  # each writer's own order is kept
            mine = [text for text in texts if text.startswith(f"{t}:")]
            assert mine == [f"{t}:{i}" for i in range(per_thread)]


def test_none_never_syncs_on_append(root: Path) -> None:
    fs = CountingFileSystem()
    with Journal(root, durability="none", fs=fs) as journal:
        for i in range(20):
            journal.append(SID, message(f"m{i}"))
            journal.append_many(SID, [message("a"), message("b")])
        created = fs.syncs  # creating the session syncs its directory and identity file
        for i in range(20):
            journal.append(SID, message(f"more {i}"))
        assert fs.syncs == created
        assert len(list(journal.read(SID))) == 80


# -- a failed fsync poisons the session ------------------------------------------------------


@pytest.mark.parametrize("mode", ["always", "batch"])
def test_a_failed_fsync_raises_and_poisons_the_session_for_this_journal(root: Path, mode: str) -> None:
    fs = FaultyFileSystem()
    with Journal(root, durability=mode, fs=fs) as journal:
        journal.append(SID, message("durable"))
        fs.fail_sync = True
        with pytest.raises(DurabilityError):
            journal.append(SID, message("not acknowledged"))
        fs.fail_sync = False  # the disk "recovers", but this handle must not trust it
        for _ in range(3):
            with pytest.raises(DurabilityError):
                journal.append(SID, message("refused"))
        with pytest.raises(DurabilityError):
            journal.append_many(SID, [message("refused")])
        journal.append("other-session", message("unaffected"))


def test_a_poisoned_session_stays_poisoned_after_its_handle_is_evicted(root: Path) -> None:
    fs = FaultyFileSystem()
    with Journal(root, durability="always", max_open_sessions=1, fs=fs) as journal:
        journal.append(SID, message("durable"))
        fs.fail_sync = True
        with pytest.raises(DurabilityError):
            journal.append(SID, message("not acknowledged"))
        fs.fail_sync = False
        for i in range(3):
            journal.append(f"other-{i}", message("evicts the poisoned handle"))
        with pytest.raises(DurabilityError):
            journal.append(SID, message("refused"))


def test_a_new_journal_or_reopen_can_append_after_a_failed_fsync(root: Path) -> None:
    fs = FaultyFileSystem()
    with Journal(root, durability="always", fs=fs) as journal:
        journal.append(SID, message("durable"))
        fs.fail_sync = True
        with pytest.raises(DurabilityError):
            journal.append(SID, message("not acknowledged"))
        fs.fail_sync = False
        with Journal(root, durability="always") as fresh:
            assert fresh.append(SID, message("fresh")) == 3
        journal.reopen(SID)
        assert journal.append(SID, message("reopened")) == 4
    records = contents(Journal(root).read(SID))
    assert records[0] == "durable" and records[2:] == ["fresh", "reopened"]


# -- a failed write leaves nothing behind ----------------------------------------------------


@pytest.mark.parametrize("batch", [1, 5])
def test_a_failed_write_raises_and_leaves_no_partial_bytes(root: Path, batch: int) -> None:
    fs = FaultyFileSystem()
    with Journal(root, durability="always", fs=fs) as journal:
        journal.append(SID, message("before"))
        session = journal.session_path(SID)
        before = snapshot(session)
        fs.fail_write = True
        with pytest.raises(DurabilityError) as caught:
            journal.append_many(SID, [message(f"lost {i}") for i in range(batch)])
        assert isinstance(caught.value, JournalError)
        assert snapshot(session) == before
        fs.fail_write = False
        assert journal.append(SID, message("after")) == 2
    assert contents(Journal(root).read(SID)) == ["before", "after"]
    assert active_segment(session).read_bytes().count(b"\n") == 2


# -- a failed directory fsync is redone before anything depending on it is acknowledged -------


class DirSyncFails(OsFileSystem):
    """The real OS, with the `fail_at`-th directory fsync failing with EIO; records the
    directories fsynced successfully."""

    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.fail_at, self.calls = fail_at, 0
        self.failed: str | None = None
        self.synced_dirs: list[str] = []

    def sync_dir(self, path: str) -> None:
        self.calls += 1
        if self.calls - 1 == self.fail_at:
            self.failed = os.path.abspath(path)
            raise OSError(errno.EIO, "injected directory fsync failure", path)
        super().sync_dir(path)
        self.synced_dirs.append(os.path.abspath(path))


@pytest.mark.parametrize("mode", ["always", "batch"])
@pytest.mark.parametrize("fail_at", range(4))  # the store root, the session (twice), log/
def test_a_directory_whose_fsync_failed_is_fsynced_before_the_next_acknowledgement(
    root: Path, mode: str, fail_at: int
) -> None:
    """EIO on one of the directory fsyncs that create a session: that append raises, and the
    next one fsyncs that directory again before it is acknowledged (each later open found
    the names there and fsynced nothing again; `fail_at` 1, the identity file's, was redone
    by chance before the fix: log/'s mkdir fsyncs the same directory)."""
    root.mkdir()
    fs = DirSyncFails(fail_at)
    with Journal(root, durability=mode, fs=fs) as journal:
        with pytest.raises(DurabilityError):
            journal.append(SID, message("not acknowledged"))
        assert fs.failed is not None
        fs.synced_dirs.clear()
        journal.append(SID, message("acknowledged"))
        assert fs.failed in fs.synced_dirs
        for n in range(3):
            journal.append(SID, message(f"more {n}"))
    assert contents(Journal(root).read(SID))[-4:] == ["acknowledged", "more 0", "more 1", "more 2"]


@pytest.mark.filterwarnings("ignore::journal.RecoveryWarning")
@pytest.mark.parametrize("mode", ["always", "batch"])
@pytest.mark.parametrize("after", range(4))
def test_appends_acknowledged_after_a_failed_directory_fsync_survive_power_loss(
    mode: str, after: int
) -> None:
    """The simulated disk: the `after`-th directory fsync fails, the append raises, 4 more are
    acknowledged; every power loss afterwards keeps those 4 (before the fix, about half of
    the power losses lost all of them with the session's or the segment's name)."""
    for seed in range(10):
        disk = SimDisk()
        journal = Journal("/store", durability=mode, fs=disk)
        disk.fail_call("sync_dir", after)
        with pytest.raises(DurabilityError):
            journal.append(SID, message("not acknowledged"))
        assert disk.calls_failed == 1
        acked = [f"acked {n}" for n in range(4)]
        for text in acked:
            journal.append(SID, message(text))
        disk.crash(random.Random(seed))
        with Journal("/store", fs=disk) as after_crash:
            found = contents(after_crash.read(SID))
            assert found[-4:] == acked, f"seed {seed}: {found}"
            assert after_crash.verify(SID).ok


# -- recovery's cut of a torn tail ---------------------------------------------------------


def tear(disk: SimDisk, session: str, keep: int) -> None:
    """Cut the active segment's last `keep` bytes off, durably: a batch whose last record
    never made it (its first records complete, valid lines)."""
    log_dir = f"{session}/log"
    path = f"{log_dir}/{disk.listdir(log_dir)[-1]}"
    disk.write_bytes(path, disk.read_bytes(path).rstrip(b"\0")[:-keep])  # not the preallocated zeros
    disk.crash_process()


@pytest.mark.filterwarnings("ignore::journal.RecoveryWarning")
def test_the_cut_of_a_torn_tail_is_durable_before_the_next_write_lands_on_it() -> None:
    """A torn batch (two valid lines, the third cut short) is cut by recovery, then a shorter
    record is written at the same offset in `none` mode. A power loss that kept that write
    but not an unsynced cut would leave the rest of the torn batch after it: garbage, then a
    valid record numbered on: `CorruptionError`. The cut is fsynced, so every power loss
    leaves the log readable."""
    for seed in range(200):
        disk = SimDisk()
        journal = Journal("/store", durability="none", fs=disk)
        journal.append(SID, message("kept"))
        journal.append_many(SID, [message("torn " + "x" * 40) for _ in range(3)])
        session = journal.session_path(SID)
        journal.close()
        disk.sync_all()
        tear(disk, session, 10)
        with Journal("/store", durability="none", fs=disk) as after_cut:
            after_cut.append(SID, message("s"))  # the open cut the tail; this lands on it
        disk.crash(random.Random(seed))
        with Journal("/store", fs=disk) as after_crash:
            assert contents(after_crash.read(SID)) in (["kept"], ["kept", "s"]), f"seed {seed}"
            assert after_crash.verify(SID).ok


@pytest.mark.filterwarnings("ignore::journal.RecoveryWarning")
@pytest.mark.parametrize("fault", ["quarantine copy", "cut"])
def test_a_failed_fsync_while_cutting_a_torn_tail_raises_durability_error(fault: str) -> None:
    """The first sync of recovery makes the quarantined copy durable, the second the cut:
    either failing means the cut may not be durable, so opening the session raises
    `DurabilityError` instead of returning records as if the log were sound; the next open
    recovers."""
    disk = SimDisk()
    journal = Journal("/store", durability="always", fs=disk)
    journal.append(SID, message("kept"))
    journal.append_many(SID, [message("torn"), message("torn")])
    session = journal.session_path(SID)
    journal.close()
    tear(disk, session, 5)
    disk.fail_sync(0 if fault == "quarantine copy" else 1)
    with pytest.raises(DurabilityError):
        list(Journal("/store", fs=disk).read(SID))
    assert disk.syncs_failed == 1
    disk.clear_faults()
    with Journal("/store", fs=disk) as recovered:
        assert contents(recovered.read(SID)) == ["kept"]
        assert recovered.verify(SID).ok
