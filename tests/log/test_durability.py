"""Durability modes, group commit, and what a failed write or fsync does (STYLE habit 5)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from _core_helpers import CountingFileSystem, FaultyFileSystem, active_segment, contents, message, snapshot

from journal import DurabilityError, Journal, JournalError

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
