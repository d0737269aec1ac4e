"""Group commit under stress: threads in `batch` mode, segment rolls, evictions, failed fsyncs,
power cuts.

Each rule here was broken once: a thread rolling the segment waited for an fsync with the
session's file lock held, and another thread of the process (same lock descriptor, so flock
let it in) wrote after the seal; an evicted handle was closed under a roll.
"""

from __future__ import annotations

import errno
import random
import signal
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from simdisk import PowerCut, SimDisk

from journal import DurabilityError, Journal
from journal.log.durability import Slot
from journal.log.fs import OsFileSystem

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


def append_until_cut(journal: Journal) -> list[int]:
    """`THREADS` threads each append up to 40 messages `"<thread>:<i>"` until the power goes
    off; how many each had acknowledged."""
    acked = [0] * THREADS

    def writer(t: int) -> None:
        for i in range(40):
            try:
                journal.append("s", {"role": "user", "content": f"{t}:{i}"})
            except (PowerCut, DurabilityError):  # the leader's thread saw the cut, the others this
                return
            acked[t] = i + 1

    workers = [threading.Thread(target=writer, args=(t,)) for t in range(THREADS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return acked


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
    acked = append_until_cut(journal)
    disk.crash(rng)
    with Journal("/store", fs=disk) as after:
        texts = [r.data["content"] for r in after.read("s") if r.kind == "message"]  # recovers
        assert after.verify("s").ok
    assert texts[0] == "create"
    for t in range(THREADS):
        mine = [int(text.split(":")[1]) for text in texts[1:] if text.startswith(f"{t}:")]
        assert mine == list(range(len(mine)))
        assert acked[t] <= len(mine) <= acked[t] + 1


class Interrupt(BaseException):
    """Stands in for KeyboardInterrupt (which pytest would take as the user's own)."""


class ScriptedSync(OsFileSystem):
    """fsync by thread name: "late" waits for `go` (and says it started), "fails" raises EIO
    and then lets "late" go, "interrupted" raises `Interrupt`."""

    def __init__(self) -> None:
        super().__init__()
        self.started, self.go = threading.Event(), threading.Event()

    def sync(self, fd: int) -> None:
        name = threading.current_thread().name
        if name == "late":
            self.started.set()
            assert self.go.wait(30)
        elif name == "fails":
            self.go.set()
            raise OSError(errno.EIO, "injected write-back error")
        elif name == "interrupted":
            raise Interrupt()
        super().sync(fd)


def in_thread(name: str, call: Callable[[], object]) -> tuple[threading.Thread, dict[str, object]]:
    out: dict[str, object] = {}

    def run() -> None:
        try:
            out["result"] = call()
        except BaseException as exc:  # the outcome is what the test checks
            out["error"] = exc

    thread = threading.Thread(target=run, name=name)
    thread.start()
    return thread, out


def test_a_group_commit_is_not_acknowledged_when_another_fsync_of_the_file_failed_meanwhile(
    tmp_path: Path,
) -> None:
    # Linux reports a write-back error once per open file: the fsync that failed may have been
    # the one told that the leader's bytes were lost, so the leader's own fsync proves nothing.
    fs = ScriptedSync()
    with Journal(tmp_path, durability="batch", fs=fs) as journal:
        journal.append("s", {"role": "user", "content": "create"})
        leader, led = in_thread("late", lambda: journal.append("s", {"role": "user", "content": "L"}))
        assert fs.started.wait(30)  # the leader wrote and is in its fsync
        other, always = in_thread(
            "fails", lambda: journal.append("s", {"role": "user", "content": "A"}, durability="always")
        )
        for thread in (leader, other):
            thread.join(30)
        assert isinstance(always.get("error"), DurabilityError)
        assert isinstance(led.get("error"), DurabilityError), led


def test_an_interrupted_group_commit_leader_leaves_the_session_usable(tmp_path: Path) -> None:
    fs = ScriptedSync()
    journal = Journal(tmp_path, durability="batch", fs=fs)
    journal.append("s", {"role": "user", "content": "create"})
    thread, out = in_thread("interrupted", lambda: journal.append("s", {"role": "user", "content": "I"}))
    thread.join(30)
    assert isinstance(out.get("error"), Interrupt)  # raised in the leader's own thread
    closing = threading.Thread(target=journal.close)
    closing.start()
    closing.join(30)  # liveness: the interrupted fsync does not leave the file marked in use
    assert not closing.is_alive()
    with Journal(tmp_path, durability="batch") as again:
        again.append("s", {"role": "user", "content": "later"})
    assert contents_of(tmp_path)[-1] == "later"


def leader_in_its_fsync(root: Path) -> tuple[ScriptedSync, Journal, threading.Thread]:
    """A `batch` journal whose leader (appending "L") took the queue and waits in its fsync
    until `fs.go` is set."""
    fs = ScriptedSync()
    journal = Journal(root, durability="batch", fs=fs)
    journal.append("s", {"role": "user", "content": "create"})
    leader, _ = in_thread("late", lambda: journal.append("s", {"role": "user", "content": "L"}))
    assert fs.started.wait(30)
    return fs, journal, leader


def test_an_appender_interrupted_while_queued_still_takes_the_leadership_handed_to_it(
    tmp_path: Path,
) -> None:
    fs, journal, leader = leader_in_its_fsync(tmp_path)
    main = threading.get_ident()

    def interrupt_main_once_queued() -> None:
        while not journal._pool.open["s"].queue:  # the main thread queued behind the leader
            threading.Event().wait(0.001)
        threading.Event().wait(0.05)  # and blocked on its gate
        signal.pthread_kill(main, signal.SIGUSR1)
        threading.Event().wait(0.05)
        fs.go.set()

    def handler(signum: int, frame: object) -> None:
        raise Interrupt()

    previous = signal.signal(signal.SIGUSR1, handler)
    try:
        threading.Thread(target=interrupt_main_once_queued).start()
        with pytest.raises(Interrupt):
            journal.append("s", {"role": "user", "content": "M"})
    finally:
        signal.signal(signal.SIGUSR1, previous)
    leader.join(30)
    later, after = in_thread("later", lambda: journal.append("s", {"role": "user", "content": "later"}))
    later.join(30)
    assert after.get("result") is not None, after
    journal.close()
    assert contents_of(tmp_path) == ["create", "L", "M", "later"]  # M was led, then interrupted


def contents_of(root: Path) -> list[str]:
    with Journal(root) as journal:
        return [r.data["content"] for r in journal.read("s") if r.kind == "message"]


def test_an_appender_interrupted_before_it_waits_is_taken_out_of_the_queue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An interrupt that lands after the append queued but before its shielded wait began: the
    # leader must not hand the leadership to a slot whose thread has gone.
    fs, journal, leader = leader_in_its_fsync(tmp_path)
    shielded_wait = Slot.wait

    def interrupted_wait(slot: Slot) -> BaseException | None:
        if threading.current_thread() is threading.main_thread():
            raise Interrupt()
        return shielded_wait(slot)

    monkeypatch.setattr(Slot, "wait", interrupted_wait)
    with pytest.raises(Interrupt):
        journal.append("s", {"role": "user", "content": "M"})
    fs.go.set()
    leader.join(30)
    later, after = in_thread("later", lambda: journal.append("s", {"role": "user", "content": "later"}))
    later.join(30)
    assert after.get("result") is not None, after
    journal.close()
    assert contents_of(tmp_path) == ["create", "L", "later"]  # M never reached the disk


@pytest.mark.filterwarnings("ignore::journal.RecoveryWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
@pytest.mark.parametrize("seed", range(5))
def test_a_power_cut_inside_a_crowded_group_commit_round_loses_no_acknowledged_append(seed: int) -> None:
    """8 threads in `batch` mode; the power goes off inside the leader's fsync of the first
    round that serves more than one appender, and the crash keeps only what was synced. No
    appender of that round may have been acknowledged: each thread's messages on disk hold
    every append acknowledged to it."""
    rng = random.Random(seed)
    disk = SimDisk()
    journal = Journal("/store", durability="batch", segment_bytes=rng.choice([600, 1 << 20]), fs=disk)
    journal.append("s", {"role": "user", "content": "create"})
    log = journal._pool.open["s"]  # the handle whose rounds the hook watches
    crowd = threading.Event()
    cut_in_round: list[int] = []

    def cut_inside_a_crowded_round(fd: int) -> None:
        if fd == log.seg_fd and log.last_served > 1 and not cut_in_round:
            cut_in_round.append(log.last_served)
            # Give the round's appenders a moment to return, as they would if acknowledged
            # before this fsync (correct code keeps them waiting on their gates meanwhile).
            threading.Event().wait(0.05)
            disk.cut_power_now()
        if fd == log.seg_fd and not crowd.is_set():
            # Hold the first fsyncs until several appenders queued: the next round is crowded.
            for _ in range(2000):
                if len(log.queue) > 1:
                    break
                threading.Event().wait(0.001)
            crowd.set()

    disk.sync_hook = cut_inside_a_crowded_round
    acked = append_until_cut(journal)
    assert cut_in_round, "no round served more than one appender: the cut proves nothing"
    disk.crash_losing_unsynced()
    with Journal("/store", fs=disk) as after:
        texts = [r.data["content"] for r in after.read("s") if r.kind == "message"]
        assert after.verify("s").ok
    for t in range(THREADS):
        mine = [int(text.split(":")[1]) for text in texts[1:] if text.startswith(f"{t}:")]
        assert mine == list(range(len(mine)))
        assert len(mine) >= acked[t], f"thread {t}: {acked[t]} acknowledged, {len(mine)} on disk"
