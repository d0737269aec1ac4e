"""Locking and concurrency: threads, several Journals, several processes, many sessions."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from _core_helpers import SlowSyncFileSystem, append_worker, contents, message

from journal import Journal, Record

SID = "shared"


def check_writers(records: list[Record], writers: int, per_writer: int, acked: dict[int, list[int]]) -> None:
    """Gapless seqs, each writer's messages in its own order, each exactly once, and each
    acknowledged seq holding the message that was acknowledged."""
    assert [r.seq for r in records] == list(range(1, writers * per_writer + 1))
    by_writer: dict[int, list[int]] = defaultdict(list)
    for record in records:
        writer, index = record.data["content"][1:].split(":")
        by_writer[int(writer)].append(int(index))
        assert record.seq == acked[int(writer)][int(index)]
    assert dict(by_writer) == {w: list(range(per_writer)) for w in range(writers)}


def test_threads_appending_to_one_session_get_gapless_seqs_in_each_threads_order(root: Path) -> None:
    writers, per_writer = 8, 50
    acked: dict[int, list[int]] = {}
    with Journal(root, durability="batch") as journal:
        start = threading.Barrier(writers)

        def writer(w: int) -> None:
            start.wait()
            acked[w] = [journal.append(SID, message(f"w{w}:{i}")) for i in range(per_writer)]

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        check_writers(list(journal.read(SID)), writers, per_writer, acked)


def test_batch_appends_stay_acknowledged_while_their_session_is_evicted(root: Path) -> None:
    # Eight threads over five sessions with room for two: handles are evicted while their
    # appenders still wait for a group commit, which must still cover them.
    writers, per_writer, sessions = 8, 150, 5
    acked: dict[str, list[tuple[int, str]]] = {f"s{s}": [] for s in range(sessions)}
    errors: list[BaseException] = []
    with Journal(root, durability="batch", max_open_sessions=2, fs=SlowSyncFileSystem()) as journal:
        start = threading.Barrier(writers)

        def writer(w: int) -> None:
            start.wait()
            for i in range(per_writer):
                sid = f"s{(w + i) % sessions}"
                try:
                    acked[sid].append((journal.append(sid, message(f"{w}:{i}")), f"{w}:{i}"))
                except BaseException as exc:
                    errors.append(exc)

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    with Journal(root) as reader:
        for sid, expected in acked.items():
            records = list(reader.read(sid))
            assert sorted(expected) == [(r.seq, r.data["content"]) for r in records]


def test_two_journals_on_one_root_see_each_others_writes_immediately(root: Path) -> None:
    with Journal(root, durability="none") as a, Journal(root, durability="none") as b:
        expected: list[str] = []
        for i in range(20):
            writer, reader = (a, b) if i % 2 == 0 else (b, a)
            assert writer.append(SID, message(f"m{i}")) == i + 1
            expected.append(f"m{i}")
            assert contents(reader.read(SID)) == expected
            state = reader.state(SID)
            assert state is not None and state.last_seq == i + 1


def test_appends_from_several_journals_interleave_without_gaps(root: Path) -> None:
    journals = [Journal(root, durability="none") for _ in range(4)]
    try:
        acked: dict[int, list[int]] = {w: [] for w in range(4)}
        for i in range(25):
            for w, journal in enumerate(journals):
                acked[w].append(journal.append(SID, message(f"w{w}:{i}")))
        check_writers(list(journals[0].read(SID)), 4, 25, acked)
    finally:
        for journal in journals:
            journal.close()


def test_processes_appending_to_one_session_get_gapless_seqs_in_each_writers_order(root: Path) -> None:
    writers, per_writer = 8, 500
    Journal(root).close()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=writers, mp_context=context) as pool:
        futures = [pool.submit(append_worker, str(root), SID, w, per_writer, writers) for w in range(writers)]
        acked = {w: future.result() for w, future in enumerate(futures)}  # re-raises LockTimeout
    with Journal(root) as journal:
        records = list(journal.read(SID))
        assert journal.verify(SID).ok
    assert len(records) == writers * per_writer
    check_writers(records, writers, per_writer, acked)


def open_fds(root: Path) -> int:
    """The files this process holds open under `root`: other tests' background threads (a
    store's view keeper compacting) open files of their own at any moment, elsewhere."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{fd}").startswith(str(root))
    return count


def test_many_sessions_keep_a_bounded_number_of_files_open(root: Path) -> None:
    limit, sessions = 16, 200
    before = open_fds(root)
    with Journal(root, durability="none", max_open_sessions=limit) as journal:
        for round_ in range(2):
            for s in range(sessions):
                journal.append(f"session-{s}", message(f"{s}/{round_}"))
                assert open_fds(root) <= before + 2 * limit + 4
        for s in range(sessions):
            assert contents(journal.read(f"session-{s}")) == [f"{s}/0", f"{s}/1"]
            assert open_fds(root) <= before + 2 * limit + 4
        assert len(list(journal.sessions())) == sessions
    assert open_fds(root) <= before + 1


def test_open_sessions_hold_at_most_max_cached_messages_the_least_recently_read_close(root: Path) -> None:
    with Journal(root, durability="none", max_cached_messages=100) as journal:
        for name in "abc":
            journal.append_many(name, [message(f"{name}{i}") for i in range(60)])
        all_open = open_fds(root)
        assert len(journal.state("a").messages) == 60  # type: ignore[union-attr]
        assert open_fds(root) == all_open  # 60 held: within the bound
        assert len(journal.state("b").messages) == 60  # type: ignore[union-attr]
        assert open_fds(root) == all_open - 2  # 120 held: "a", read least recently, was closed
        state = journal.state("a")  # and is read again when next used
        assert state is not None and contents(state.messages) == [f"a{i}" for i in range(60)]
        assert open_fds(root) == all_open - 2  # now "b" was closed
        journal.append("c", message("c60"))  # appends hold no state: "c" stays open
        assert open_fds(root) == all_open - 2
        assert len(journal.state("c").messages) == 61  # type: ignore[union-attr]
        assert open_fds(root) == all_open - 4  # 121 held: "a" closed; "c" alone exceeds the bound


def test_max_cached_messages_must_be_positive(root: Path) -> None:
    with pytest.raises(ValueError, match="max_cached_messages"):
        Journal(root, max_cached_messages=0)
