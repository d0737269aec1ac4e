"""Group commit under stress: threads in `batch` mode, segment rolls, evictions, failed fsyncs,
power cuts.

Each rule here was broken once: a thread rolling the segment waited for an fsync with the
session's file lock held, and another thread of the process (same lock descriptor, so flock
let it in) wrote after the seal; an evicted handle was closed under a roll.
"""

from __future__ import annotations

import errno
import random
import threading
from pathlib import Path

import pytest
from simdisk import PowerCut, SimDisk

from journal import DurabilityError, Journal
from journal.fs import OsFileSystem

THREADS = 8
PER_THREAD = 150


class EveryNthSyncFails(OsFileSystem):
    def __init__(self, every: int) -> None:
        super().__init__()
        self.every = every
        self.calls = 0
        self._count = threading.Lock()

    def sync(self, fd: int) -> None:
        with self._count:
            self.calls += 1
            fail = self.every and self.calls % self.every == 0
        if fail:
            raise OSError(errno.EIO, "injected fsync failure")
        super().sync(fd)


def hammer(journal: Journal, sessions: list[str]) -> tuple[list[tuple[str, str]], list[BaseException]]:
    """THREADS threads append PER_THREAD messages each; return what was acknowledged and
    every exception that was not a DurabilityError."""
    acked: list[tuple[str, str]] = []
    unexpected: list[BaseException] = []
    guard = threading.Lock()

    def work(thread: int) -> None:
        for n in range(PER_THREAD):
            session = sessions[(thread + n) % len(sessions)]
            text = f"{thread}-{n}"
            try:
                journal.append(session, {"role": "user", "content": text})
            except DurabilityError:
                journal.reopen(session)
                continue
            except BaseException as exc:  # the test reports these
                with guard:
                    unexpected.append(exc)
                return
            with guard:
                acked.append((session, text))

    workers = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert not any(worker.is_alive() for worker in workers), "a thread hung"
    return acked, unexpected


def on_disk(root: Path, sessions: list[str]) -> dict[tuple[str, str], int]:
    seen: dict[tuple[str, str], int] = {}
    with Journal(root) as journal:
        for session in sessions:
            assert journal.verify(session).ok
            for record in journal.read(session):
                if record.kind == "message":
                    key = (session, record.data["content"])
                    seen[key] = seen.get(key, 0) + 1
    return seen


def test_threads_rolling_segments_in_batch_mode_never_write_after_a_seal(ram_path: Path) -> None:
    with Journal(ram_path, durability="batch", segment_bytes=2048) as journal:
        acked, unexpected = hammer(journal, ["s"])
    assert unexpected == []
    seen = on_disk(ram_path, ["s"])
    assert sorted(seen) == sorted(acked)
    assert set(seen.values()) == {1}


def test_evictions_and_failed_fsyncs_lose_no_acknowledged_append(ram_path: Path) -> None:
    sessions = ["a", "b", "c"]
    fs = EveryNthSyncFails(every=53)
    journal = Journal(ram_path, durability="batch", segment_bytes=4096, max_open_sessions=1, fs=fs)
    acked, unexpected = hammer(journal, sessions)
    journal.close()
    assert unexpected == []
    seen = on_disk(ram_path, sessions)
    assert set(acked) <= set(seen)  # an append that raised may or may not be there
    assert set(seen.values()) == {1}  # but nothing is there twice


class SlowSync(OsFileSystem):
    """An fsync that takes `seconds`, so threads started together queue behind one leader."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.syncs = 0

    def sync(self, fd: int) -> None:
        self.syncs += 1
        threading.Event().wait(self.seconds)
        super().sync(fd)


def test_a_lone_appender_after_a_crowded_round_is_not_kept_waiting_for_the_crowd(ram_path: Path) -> None:
    # A leader waits for as many appenders as the last round served; when they do not come
    # back it must give up after a bounded wait, not hang.
    fs = SlowSync(0.05)
    with Journal(ram_path, durability="batch", fs=fs) as journal:
        journal.append("s", {"role": "user", "content": "create"})
        start = threading.Barrier(THREADS)

        def crowd(t: int) -> None:
            start.wait()
            journal.append("s", {"role": "user", "content": f"crowd {t}"})

        workers = [threading.Thread(target=crowd, args=(t,)) for t in range(THREADS)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert fs.syncs < 1 + THREADS  # the crowd shared fsyncs
        lone = threading.Thread(target=journal.append, args=("s", {"role": "user", "content": "lone"}))
        lone.start()
        lone.join(timeout=30)  # a liveness bound, not a timing: the wait is capped at 1 ms
        assert not lone.is_alive()
        contents = [r.data["content"] for r in journal.read("s") if r.kind == "message"]
    assert contents[0] == "create" and contents[-1] == "lone"
    assert sorted(contents[1:-1]) == sorted(f"crowd {t}" for t in range(THREADS))


@pytest.mark.filterwarnings("ignore::journal.RecoveryWarning")  # torn tails are expected here
@pytest.mark.parametrize("seed", range(40))
def test_a_power_cut_during_threaded_group_commit_keeps_every_acknowledged_append(seed: int) -> None:
    """8 threads append in `batch` mode on a simulated disk until the power goes off at a
    random file system call; after the crash, each thread's messages are a gapless prefix of
    what it sent that holds every append acknowledged to it (at most the one in flight more)."""
    rng = random.Random(seed)
    disk = SimDisk()
    journal = Journal("/store", durability="batch", segment_bytes=rng.choice([600, 1 << 20]), fs=disk)
    journal.append("s", {"role": "user", "content": "create"})
    disk.cut_power_after(rng.randrange(3, 300))
    acked = [0] * THREADS

    def writer(t: int) -> None:
        for i in range(40):
            try:
                journal.append("s", {"role": "user", "content": f"{t}:{i}"})
            except PowerCut:
                return
            acked[t] = i + 1

    workers = [threading.Thread(target=writer, args=(t,)) for t in range(THREADS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    disk.crash(rng)
    with Journal("/store", fs=disk) as after:
        texts = [r.data["content"] for r in after.read("s") if r.kind == "message"]  # recovers
        assert after.verify("s").ok
    assert texts[0] == "create"
    for t in range(THREADS):
        mine = [int(text.split(":")[1]) for text in texts[1:] if text.startswith(f"{t}:")]
        assert mine == list(range(len(mine)))
        assert acked[t] <= len(mine) <= acked[t] + 1
