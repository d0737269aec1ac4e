"""Contracts at the edges: races with delete, poisoned sessions, odd payloads, repair of a torn
batch. Each test here was a bug found by review, reproduced first, then fixed."""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import sys
import threading
import warnings
from pathlib import Path
from typing import Any

import pytest

from journal import (
    CorruptionError,
    DefaultSessionStore,
    DurabilityError,
    InvalidRecordError,
    Journal,
    JournalError,
    RecoveryWarning,
)
from journal.log.fs import OsFileSystem

SID = "s"


def msg(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


class FailNextSync(OsFileSystem):
    fail_next = False

    def sync(self, fd: int) -> None:
        if self.fail_next:
            self.fail_next = False
            raise OSError(errno.EIO, "injected EIO")
        super().sync(fd)


class NoNewSegment(OsFileSystem):
    armed = False

    def open(self, path: str, *, create: bool, mode: int) -> int:
        if self.armed and create and path.endswith(".jsonl") and self.stat(path) is None:
            raise OSError(errno.ENOSPC, "injected ENOSPC", path)
        return super().open(path, create=create, mode=mode)


class DeleteWhenCompactionLocks(OsFileSystem):
    """Deletes and re-creates the session (through another Journal) right after a compactor
    takes its compaction lock: the compactor's lock then guards a directory that is gone."""

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root
        self.fired = False

    def lock(self, fd: int, timeout: float) -> None:
        super().lock(fd, timeout)
        if not self.fired and self.same_file(fd, str(self.root / SID / "compaction.lock")):
            self.fired = True
            with Journal(self.root) as other:
                other.delete(SID)
                other.append(SID, msg("a new session of the same id"))


def test_repair_of_a_torn_batch_keeps_it_all_or_nothing(tmp_path: Path) -> None:
    with Journal(tmp_path, durability="always") as journal:
        journal.append(SID, msg("before"))
        journal.append_many(SID, [msg("b1"), msg("b2"), msg("b3")])
    segment = tmp_path / SID / "log" / "00000000000000000001.jsonl"
    lines = segment.read_bytes().split(b"\n")
    segment.write_bytes(b"\n".join(lines[:3]) + b"\n")  # the batch's last line never landed

    with Journal(tmp_path) as journal:
        journal.repair(SID)
        contents = [r.data["content"] for r in journal.read(SID)]
        assert journal.verify(SID).ok
    assert contents == ["before"]


def test_delete_while_threads_append_leaves_the_session_usable(tmp_path: Path) -> None:
    journal = Journal(tmp_path, durability="batch", segment_bytes=600)
    unexpected: list[BaseException] = []
    stop = threading.Event()

    def append() -> None:
        while not stop.is_set():
            try:
                journal.append(SID, msg("x" * 50))
            except JournalError:
                pass
            except BaseException as exc:  # reported below
                unexpected.append(exc)
                return

    workers = [threading.Thread(target=append) for _ in range(4)]
    for worker in workers:
        worker.start()
    for _ in range(30):
        journal.delete(SID)
    stop.set()
    for worker in workers:
        worker.join(60)
    journal.delete(SID)
    assert unexpected == []
    assert journal.append(SID, msg("after")) == 1
    assert journal.verify(SID).ok
    journal.close()


def test_a_disk_error_starting_a_segment_raises_durability_error(tmp_path: Path) -> None:
    fs = NoNewSegment()
    journal = Journal(tmp_path, durability="always", segment_bytes=300, fs=fs)
    for _ in range(2):  # past segment_bytes: the next append rolls to a new segment
        journal.append(SID, msg("x" * 100))
    fs.armed = True
    with pytest.raises(DurabilityError):
        journal.append(SID, msg("y"))
    with pytest.raises(DurabilityError):  # and it stays refused: the seal is written
        journal.append(SID, msg("z"))
    fs.armed = False
    journal.reopen(SID)
    journal.append(SID, msg("after reopen"))
    assert [r.data["content"] for r in journal.read(SID) if r.kind == "message"][-1] == "after reopen"
    assert journal.verify(SID).ok
    journal.close()


@pytest.mark.parametrize("shape", ["circular", "too deep"])
def test_a_circular_or_too_deep_payload_is_refused_and_nothing_is_written(tmp_path: Path, shape: str) -> None:
    payload: dict[str, Any] = {}
    if shape == "circular":
        payload["self"] = payload
    else:
        inner = payload
        for _ in range(300):
            inner["k"] = {}
            inner = inner["k"]
    with Journal(tmp_path) as journal:
        with pytest.raises(InvalidRecordError, match="levels deep"):
            journal.append(SID, {"role": "user", "content": "x", "meta": payload})
        assert not journal.exists(SID)


def poisoned_journal(root: Path) -> Journal:
    """A Journal (one open session at most) whose session SID had an fsync fail."""
    fs = FailNextSync()
    journal = Journal(root, durability="always", max_open_sessions=1, fs=fs)
    journal.append(SID, msg("one"))
    fs.fail_next = True
    with pytest.raises(DurabilityError):
        journal.append(SID, msg("two"))
    return journal


def test_a_poisoned_session_refuses_appends_until_reopen_even_after_eviction(tmp_path: Path) -> None:
    journal = poisoned_journal(tmp_path)
    journal.append("other", msg("evicts the poisoned handle"))
    assert journal.state(SID) is not None  # a read opens a fresh handle
    with pytest.raises(DurabilityError):
        journal.append(SID, msg("three"))
    journal.reopen(SID)
    journal.append(SID, msg("four"))
    journal.close()


def test_delete_clears_the_poison_so_a_new_session_of_that_id_works(tmp_path: Path) -> None:
    journal = poisoned_journal(tmp_path)
    assert journal.delete(SID)
    assert journal.append(SID, msg("a new session")) == 1
    journal.close()


def test_looking_at_a_directory_that_is_no_session_creates_nothing(tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    with Journal(tmp_path) as journal:
        assert journal.state("notes") is None
        assert list(journal.read("notes")) == []
        assert journal.delete("notes") is False
        assert journal.verify("notes").ok
    assert os.listdir(tmp_path / "notes") == []


def test_compacting_a_session_deleted_and_recreated_meanwhile_raises_and_harms_neither(
    tmp_path: Path,
) -> None:
    with Journal(tmp_path) as journal:
        journal.append_many(SID, [msg(f"old {n}") for n in range(5)])
    fs = DeleteWhenCompactionLocks(tmp_path)
    with Journal(tmp_path, fs=fs) as journal:
        with pytest.raises(JournalError, match="deleted"):
            journal.compact(SID)
        assert fs.fired
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with Journal(tmp_path) as journal:
            assert [r.data["content"] for r in journal.read(SID)] == ["a new session of the same id"]
            assert journal.verify(SID).ok
            assert journal.compact(SID).compacted


def test_an_edited_messages_json_is_rebuilt_from_the_archives_and_rewritten(tmp_path: Path) -> None:
    with Journal(tmp_path) as journal:
        journal.append_many(SID, [msg(f"m{n}") for n in range(5)])
        journal.append("other", msg("fine"))
        journal.compact(SID)
    snapshot = tmp_path / SID / "messages.json"
    snapshot.write_text(json.dumps(json.loads(snapshot.read_text())))  # re-saved by another tool

    with Journal(tmp_path) as journal:
        assert not journal.verify(SID).ok
        with pytest.warns(RecoveryWarning, match="rebuilt from the archives"):
            state = journal.state(SID)
        assert state is not None and [m.data["content"] for m in state.messages] == [
            f"m{n}" for n in range(5)
        ]
        journal.append(SID, msg("m5"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RecoveryWarning)
            assert journal.compact(SID).compacted
        assert journal.verify(SID).ok
    assert len(json.loads(snapshot.read_text())["messages"]) == 6


def test_a_message_re_indented_by_hand_is_re_encoded_by_the_next_compaction(tmp_path: Path) -> None:
    # It still reads as JSON, so it is no damage; but copying its lines verbatim would write
    # fragments of it as messages.
    with Journal(tmp_path) as journal:
        journal.append_many(SID, [msg(f"m{n}") for n in range(3)])
        journal.compact(SID)
    snapshot = tmp_path / SID / "messages.json"
    lines = snapshot.read_text().split("\n")
    lines[3] = json.dumps(json.loads(lines[3].rstrip(",")), indent=2).replace("\n", "\n      ") + ","
    snapshot.write_text("\n".join(lines))
    # An edited view (FORMAT.md, "Edited views"): kept aside with a warning, rebuilt from the log.
    with pytest.warns(RecoveryWarning), Journal(tmp_path) as journal:
        journal.append(SID, msg("m3"))
        assert journal.compact(SID).compacted
        assert journal.verify(SID).ok
    with Journal(tmp_path) as journal:
        assert [m.data["content"] for m in journal.state(SID).messages] == ["m0", "m1", "m2", "m3"]  # type: ignore[union-attr]
    assert len(snapshot.read_text().splitlines()) == 2 + 4 + 5  # head, one line a message, trailer


BAD_STAMPS = {
    "a bad batch count, object form": rb'"_journal":{"seq":1,"ts":\1,"more":"x"}',
    "a bad batch count, stamp form": rb'"_journal":"1,\1,x"',
    "a ts with a leading zero": rb'"_journal":"1,0\1"',
}


@pytest.mark.parametrize("damage", BAD_STAMPS)
@pytest.mark.parametrize("reader", ["state", "get_chat_history"])
def test_a_snapshot_line_with_a_bad_stamp_is_damage_not_a_crash(
    tmp_path: Path, damage: str, reader: str
) -> None:
    with Journal(tmp_path) as journal:
        journal.append(SID, msg("m0"))
        journal.append(SID, msg("m1"))
        journal.compact(SID)
    snapshot = tmp_path / SID / "messages.json"
    damaged = re.sub(rb'"_journal":"1,([0-9.]+)"', BAD_STAMPS[damage], snapshot.read_bytes())
    assert damaged != snapshot.read_bytes()
    snapshot.write_bytes(damaged)
    with (
        DefaultSessionStore(tmp_path) as store,
        pytest.warns(RecoveryWarning, match="rebuilt from the archives"),
    ):
        if reader == "state":
            state = store.journal.state(SID)
            assert state is not None and [m.data["content"] for m in state.messages] == ["m0", "m1"]
        else:
            assert [m["content"] for m in store.get_chat_history(SID)] == ["m0", "m1"]


def test_one_unreadable_session_does_not_hide_the_others_from_list_sessions(tmp_path: Path) -> None:
    with DefaultSessionStore(tmp_path) as store:
        store.add_message("a", "user", "hello")
        store.add_message("b", "user", "hello")
    with Journal(tmp_path) as journal:  # live records after the views: the listing reads them
        journal.append("a", {"role": "user", "content": "one"})
        journal.append("a", {"role": "user", "content": "two"})
    segment = next((tmp_path / "a" / "log").glob("*.jsonl"))
    data = segment.read_bytes()
    segment.write_bytes(data.replace(b'"one"', b'"0ne"'))  # a bad checksum, a valid record after
    store = DefaultSessionStore(tmp_path, view_lag=None)
    with pytest.warns(UserWarning, match="'a' left out"):
        assert [row["session_id"] for row in store.list_sessions()] == ["b"]
    with pytest.raises(ValueError):
        store.list_sessions(limit=-1)
    store.journal.close()


def test_a_missing_first_segment_is_reported_and_repaired_as_lost(tmp_path: Path) -> None:
    with Journal(tmp_path, segment_bytes=600) as journal:
        for n in range(20):
            journal.append(SID, msg(f"m{n}"))
    (tmp_path / SID / "log" / "00000000000000000001.jsonl").unlink()
    with Journal(tmp_path) as journal:
        assert next(p.reason for p in journal.verify(SID).problems).startswith("segment starts at")
        with pytest.raises(CorruptionError):
            journal.state(SID)
        report = journal.repair(SID)
        assert report.lost and report.lost[0] == 1
        assert journal.verify(SID).ok
        assert [r.seq for r in journal.read(SID)][:3] == [1, 2, 3]


@pytest.mark.parametrize(
    "content", ["garbage", '{"format": 3, "session_id": "s"}', '{"format": 1, "session_id": "t"}']
)
def test_verify_checks_the_identity_file(tmp_path: Path, content: str) -> None:
    with Journal(tmp_path) as journal:
        journal.append(SID, msg("x"))
    (tmp_path / SID / "identity.json").write_text(content)
    with Journal(tmp_path) as journal:
        problems = journal.verify(SID).problems
    assert [p.path for p in problems] == [str(tmp_path / SID / "identity.json")]


def test_a_store_never_closed_leaves_messages_json_current_at_exit(tmp_path: Path) -> None:
    script = (
        "from journal import DefaultSessionStore\n"
        f"store = DefaultSessionStore({str(tmp_path)!r})\n"
        "store.add_message('chat', 'user', 'hello')\n"
        "store.add_message('chat', 'assistant', 'hi')\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    data = json.loads((tmp_path / "chat" / "messages.json").read_text())
    assert [m["content"] for m in data["messages"]] == ["hello", "hi"]


@pytest.mark.parametrize("damage", BAD_STAMPS)
def test_a_compaction_does_not_carry_a_bad_stamp_into_the_next_snapshot(tmp_path: Path, damage: str) -> None:
    with Journal(tmp_path) as journal:
        journal.append(SID, msg("m0"))
        journal.append(SID, msg("m1"))
        journal.compact(SID)
    snapshot = tmp_path / SID / "messages.json"
    snapshot.write_bytes(re.sub(rb'"_journal":"1,([0-9.]+)"', BAD_STAMPS[damage], snapshot.read_bytes()))
    with Journal(tmp_path) as journal, pytest.warns(RecoveryWarning, match="rebuilt from the archives"):
        journal.append(SID, msg("m2"))
        assert journal.compact(SID).compacted
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new snapshot reads as journal wrote it
        with DefaultSessionStore(tmp_path) as store:
            assert [m["content"] for m in store.get_chat_history(SID)] == ["m0", "m1", "m2"]
            state = store.journal.state(SID)
            assert state is not None and [m.data["content"] for m in state.messages] == ["m0", "m1", "m2"]
