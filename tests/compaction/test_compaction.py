"""The compactor: snapshot files, the crash-safe protocol, concurrent appends, the policy."""

from __future__ import annotations

import copy
import json
import logging
import os
import random
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from simdisk import SimDisk

from journal import Journal, Record
from journal.compaction.protocol import CompactionPolicy
from journal.log.fs import TEMP_MARK, OsFileSystem
from journal.log.record import MESSAGE, SEAL
from journal.log.snapshot import (
    MessagesReader,
    decode_message,
    encode_message,
    encode_messages,
    splice_message,
)
from journal.log.state import fold

SID = "chat"


def message(i: int, role: str = "user", **extra: Any) -> dict[str, Any]:
    return {"role": role, "content": f"message {i}", "metadata": {"i": i}, **extra}


def assert_same_history(after: list[Record], before: list[Record]) -> None:
    """`after` is `before` exactly, plus at most the seal a compaction appended."""
    assert after[: len(before)] == before
    extra = after[len(before) :]
    assert len(extra) <= 1
    if extra:
        assert extra[0].kind == SEAL
        assert extra[0].seq == (before[-1].seq + 1 if before else 1)


def assert_state_is_fold_of_log(j: Journal, session_id: str = SID) -> None:
    """The state served from the snapshot equals a full replay of every record."""
    records = list(j.read(session_id))
    assert j.state(session_id) == fold(records)


def temp_files(path: str) -> list[str]:
    return [os.path.join(d, f) for d, _, files in os.walk(path) for f in files if TEMP_MARK in f]


# -- round trip ------------------------------------------------------------------------------

_ops = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(0, 3)),
        st.tuples(st.just("append_many"), st.integers(0, 4)),
        st.tuples(st.just("meta"), st.sampled_from(["agent_name", "topic", "drop"])),
        st.tuples(st.just("clear"), st.just(0)),
        st.tuples(st.just("compact"), st.just(0)),
    ),
    max_size=30,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_ops, segment_bytes=st.sampled_from([300, 2000, 1 << 20]))
def test_any_history_compacted_at_any_points_reads_back_identically(
    tmp_path: Path, ops: list[tuple[str, Any]], segment_bytes: int
) -> None:
    root = tmp_path / f"store-{time.monotonic_ns()}"
    with Journal(root, durability="none", segment_bytes=segment_bytes) as j:
        n = 0
        for op, arg in ops:
            if op == "append":
                j.append(SID, message(n, tool_calls=[{"id": str(n)}] if arg == 3 else None))
                n += 1
            elif op == "append_many":
                j.append_many(SID, [message(n + i, "assistant") for i in range(arg)])
                n += arg
            elif op == "meta":
                j.update_metadata(SID, {"topic": None} if arg == "drop" else {arg: n})
            elif op == "clear":
                j.clear(SID)
            elif j.exists(SID):
                before, state = list(j.read(SID)), j.state(SID)
                j.compact(SID)
                assert_same_history(list(j.read(SID)), before)
                after = j.state(SID)
                assert after is not None and state is not None
                assert (after.messages, after.metadata) == (state.messages, state.metadata)
        if not j.exists(SID):
            return
        final = list(j.read(SID))
    with Journal(root, durability="none") as fresh:
        assert list(fresh.read(SID)) == final
        assert_state_is_fold_of_log(fresh)
        assert fresh.verify(SID).ok
        user_records = [r for r in final if r.kind != SEAL]
        assert sum(r.kind == MESSAGE for r in user_records) == n


def test_reading_after_two_compactions_equals_before(journal: Journal) -> None:
    journal.append_many(SID, [message(i) for i in range(5)])
    journal.update_metadata(SID, {"agent_name": "Bot"})
    before = list(journal.read(SID))
    journal.compact(SID)
    assert_same_history(list(journal.read(SID)), before)
    journal.append(SID, message(5))
    middle = list(journal.read(SID))
    journal.compact(SID)
    assert_same_history(list(journal.read(SID)), middle)
    assert_state_is_fold_of_log(journal)
    with Journal(journal.root) as fresh:
        assert list(fresh.read(SID)) == list(journal.read(SID))


def test_read_from_a_start_inside_the_archives_yields_exactly_the_suffix(root: Path) -> None:
    with Journal(root, durability="none", segment_bytes=400) as j:
        j.append_many(SID, [message(i) for i in range(10)])
        for i in range(10, 30):
            j.append(SID, message(i))
        everything = list(j.read(SID))
        j.compact(SID)
        j.append(SID, message(30))
        for start in (0, 1, 7, 12, len(everything), len(everything) + 2):
            assert list(j.read(SID, start)) == [r for r in j.read(SID) if r.seq >= start]
        assert list(j.read(SID))[: len(everything)] == everything


def test_compaction_with_nothing_new_changes_nothing(journal: Journal) -> None:
    journal.append(SID, message(0))
    first = journal.compact(SID)
    listing = sorted(os.listdir(journal.session_path(SID)))
    again = journal.compact(SID)
    assert first.compacted and not again.compacted and again.reason == "nothing new"
    assert sorted(os.listdir(journal.session_path(SID))) == listing


def test_compacting_a_missing_session_reports_it_and_creates_nothing(journal: Journal) -> None:
    result = journal.compact("nobody")
    assert not result.compacted and result.reason == "no such session"
    assert not journal.exists("nobody")


def test_a_session_can_still_be_created_and_identified_after_compaction(journal: Journal) -> None:
    journal.append(SID, message(0))
    journal.compact(SID)
    assert journal.exists(SID) and list(journal.sessions()) == [SID]
    journal.append("other", message(1))
    assert sorted(journal.sessions()) == [SID, "other"]


# -- snapshot files --------------------------------------------------------------------------


def check_shape(value: Any, shape: Any, where: str = "$") -> None:
    """A tiny JSON-schema: a type, a tuple of types, {"key": shape} (required keys), or [shape]."""
    if isinstance(shape, dict):
        assert isinstance(value, dict), where
        for key, sub in shape.items():
            assert key in value, f"{where}.{key} missing"
            check_shape(value[key], sub, f"{where}.{key}")
    elif isinstance(shape, list):
        assert isinstance(value, list), where
        for index, item in enumerate(value):
            check_shape(item, shape[0], f"{where}[{index}]")
    elif shape == "iso":
        assert isinstance(value, str) and value.endswith("Z"), where
        time.strptime(value[:-5], "%Y-%m-%dT%H:%M:%S")
        assert value[-5] == "." and value[-4:-1].isdigit(), where
    else:
        assert isinstance(value, shape), f"{where}: {value!r} is not {shape}"


MESSAGES_SHAPE = {
    "messages": [{"role": str, "content": (str, list), "timestamp": "iso", "metadata": dict}],
    "total_messages": int,
    "last_updated": "iso",
    "journal_seq": int,
}
SESSION_SHAPE = {
    "session_id": str,
    "agent_id": (str, type(None)),
    "created_at": "iso",
    "updated_at": "iso",
    "metadata": dict,
    "settings": dict,
}


def test_snapshot_files_have_the_documented_shapes(journal: Journal) -> None:
    journal.update_metadata(
        SID, {"agent_name": "FileBot", "user_id": "user123", "settings": {"auto_save": True}}
    )
    journal.append(SID, message(0, metadata={"source": "web_interface"}))
    calls = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    journal.append(SID, message(1, "assistant", tool_calls=calls))
    journal.append(SID, message(2, "tool", tool_call_id="c1"))
    journal.compact(SID)
    path = Path(journal.session_path(SID))
    messages = json.loads((path / "messages.json").read_text())
    check_shape(messages, MESSAGES_SHAPE)
    assert messages["total_messages"] == 3 and messages["journal_seq"] == 5
    assert messages["messages"][1]["tool_calls"] == calls and messages["messages"][2]["tool_call_id"] == "c1"
    info = json.loads((path / "session_id.json").read_text())
    check_shape(info, SESSION_SHAPE)
    assert (info["session_id"], info["agent_id"], info["settings"]) == (SID, "FileBot", {"auto_save": True})
    assert json.loads((path / "metadata.json").read_text())["user_id"] == "user123"


def test_messages_json_holds_one_message_per_line(journal: Journal) -> None:
    journal.append_many(SID, [message(i) for i in range(4)])
    journal.compact(SID)
    lines = (Path(journal.session_path(SID)) / "messages.json").read_text().splitlines()
    assert lines[:2] == ["{", '  "messages": [']
    assert all(
        json.loads(line.strip().rstrip(","))["content"] == f"message {i}" for i, line in enumerate(lines[2:6])
    )
    assert lines[6] == "  ],"


def test_the_docs_analytics_and_search_reads_see_every_message_after_compaction(root: Path) -> None:
    with Journal(root, durability="none", compact_on_close=True) as j:
        for sid in ("a", "b"):
            j.append_many(sid, [message(i, "user" if i % 2 else "assistant") for i in range(7)])
        j.append("a", {"role": "user", "content": "tell me about machine learning", "metadata": {}})
    roles: Counter[str] = Counter()
    found = []
    for sid in os.listdir(root):
        with open(os.path.join(root, sid, "messages.json")) as handle:
            data = json.load(handle)
        for m in data.get("messages", []):
            roles[m.get("role", "unknown")] += 1
            if "machine learning" in m.get("content", "").lower():
                found.append((sid, m["timestamp"][:10]))
    assert sum(roles.values()) == 15 and roles["assistant"] == 8
    assert [sid for sid, _ in found] == ["a"]


def test_message_lines_round_trip_whatever_keys_the_data_has() -> None:
    cases = [
        {"role": "user", "content": "x"},
        {"role": "user", "content": "x", "timestamp": "mine"},
        {"role": "user", "content": "x", "_journal": {"seq": -1}},
        {"content": ["part"], "tool_calls": [{"id": 1}], "extra": None},
    ]
    for index, data in enumerate(cases):
        record = Record(seq=index + 1, ts=1705314615.123456, kind=MESSAGE, data=data, more=index % 2)
        assert decode_message(encode_message(record)) == record
        payload = orjson.dumps(data)
        spliced = splice_message(payload, record.seq, record.ts, record.more)
        clashing = "timestamp" in data or "_journal" in data
        assert (spliced is None) == clashing
        if spliced is not None:
            assert spliced == encode_message(record) and decode_message(spliced) == record
    assert decode_message(splice_message(b"{}", 3, 2.5, 0) or b"") == Record(3, 2.5, MESSAGE, {})
    assert splice_message(b'{"content":"\\u0074imestamp"}', 1, 1.0, 0) is None  # escaped: parse instead
    records = [Record(i + 1, 1.5 + i, MESSAGE, cases[i % 2]) for i in range(5)]
    for messages in ([], records[:1], records):
        whole = encode_messages(messages, 1.5, 9)
        assert json.loads(whole)["total_messages"] == len(messages)
        for size in (1, 7, 64, len(whole)):
            chunks = [whole[i : i + size] for i in range(0, len(whole), size)]
            reader = MessagesReader(chunks)
            assert list(reader.records()) == messages and reader.trailer["journal_seq"] == 9
            assert [decode_message(line) for line in MessagesReader(chunks).lines()] == messages


# -- crash safety ----------------------------------------------------------------------------


class Crash(Exception):
    """The injected failure: the process 'dies' at this file system call."""


_CALLS = ["open", "append", "pread", "size", "truncate", "sync", "close", "lock", "unlock", "stat",
          "same_file", "listdir", "mkdir", "rename", "unlink", "rmdir", "sync_dir"]  # fmt: skip


class CrashingFs:
    """`OsFileSystem` that raises `Crash` at call number `crash_at` after `arm()`, then at
    every call (a dead process does nothing more). `die()` drops its descriptors and locks."""

    def __init__(self, inner: Any = None) -> None:
        self.inner = inner if inner is not None else OsFileSystem()
        self.count = 0
        self.crash_at: int | None = None
        self.dead = False
        self.fds: set[int] = set()

    def arm(self, crash_at: int | None) -> None:
        self.count, self.crash_at = 0, crash_at

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if self.dead:
            raise Crash(name)
        if self.crash_at is not None:
            if self.count == self.crash_at:
                self.dead = True
                raise Crash(name)
            self.count += 1
        result = getattr(self.inner, name)(*args, **kwargs)
        if name == "open":
            self.fds.add(result)
        elif name == "close":
            self.fds.discard(args[0])
        return result

    def die(self) -> None:
        if isinstance(self.inner, OsFileSystem):
            for fd in self.fds:
                os.close(fd)  # the kernel drops a dead process's locks with its descriptors
        self.fds.clear()


for _name in _CALLS:
    setattr(CrashingFs, _name, lambda self, *a, _n=_name, **k: self._call(_n, *a, **k))


def _template(root: Path | str, fs: Any = None) -> list[Record]:
    """A session with a previous compaction, closed segments, metadata and a clear."""
    with Journal(root, durability="none", segment_bytes=500, fs=fs) as j:
        j.append_many(SID, [message(i) for i in range(4)])
        j.update_metadata(SID, {"agent_name": "Bot"})
        j.compact(SID)
        j.append(SID, message(4))
        j.clear(SID)
        for i in range(5, 12):
            j.append(SID, message(i))
        j.update_metadata(SID, {"topic": "crash"})
        return list(j.read(SID))


def test_a_crash_at_any_step_of_compaction_leaves_the_old_or_the_new_state(tmp_path: Path) -> None:
    template = tmp_path / "template"
    before = _template(template)
    probe_root = tmp_path / "probe"
    shutil.copytree(template, probe_root)
    probe = CrashingFs()
    with Journal(probe_root, fs=probe) as j:  # count the file system calls of one compaction
        probe.arm(10**9)
        j.compact(SID)
        total = probe.count
    outcomes: Counter[str] = Counter()
    for k in range(total):
        root = tmp_path / f"crash-{k}"
        shutil.copytree(template, root)
        fs = CrashingFs()
        j = Journal(root, fs=fs)
        fs.arm(k)
        with pytest.raises(Crash):
            j.compact(SID)
        fs.die()
        with Journal(root) as fresh:
            after = list(fresh.read(SID))
            assert_same_history(after, before)
            assert_state_is_fold_of_log(fresh)
            snapshot = json.loads((root / SID / "compaction.json").read_text())["snapshot_seq"]
            outcomes["new" if snapshot == len(before) + 1 else "old"] += 1
            assert fresh.compact(SID).compacted or snapshot == len(before) + 1
            assert_same_history(list(fresh.read(SID)), after)
            assert fresh.verify(SID).ok
            assert temp_files(str(root)) == []
    assert outcomes["old"] and outcomes["new"]  # both sides of the commit point were hit


def test_a_power_loss_at_any_step_of_compaction_leaves_the_old_or_the_new_state() -> None:
    """On the simulated disk, whatever was not fsynced (file bytes, directory entries) may
    be lost: the commit point and every step around it must be ordered by fsyncs."""
    template = SimDisk()
    before = _template("/store", template)
    template.sync_all()
    probe = CrashingFs(copy.deepcopy(template))
    with Journal("/store", fs=probe) as j:
        probe.arm(10**9)
        j.compact(SID)
        total = probe.count
    outcomes: Counter[str] = Counter()
    for k in range(total):
        for seed in range(3):
            disk = copy.deepcopy(template)
            fs = CrashingFs(disk)
            j = Journal("/store", fs=fs)
            fs.arm(k)
            with pytest.raises(Crash):
                j.compact(SID)
            disk.crash(random.Random(seed))
            with Journal("/store", fs=disk) as fresh:
                after = list(fresh.read(SID))
                assert_same_history(after, before)
                assert_state_is_fold_of_log(fresh)
                snapshot = json.loads(disk.read_bytes(f"/store/{SID}/compaction.json"))["snapshot_seq"]
                outcomes["new" if snapshot == len(before) + 1 else "old"] += 1
                fresh.compact(SID)
                assert_same_history(list(fresh.read(SID)), after)
                assert fresh.verify(SID).ok
    assert outcomes["old"] and outcomes["new"]


def test_orphan_temps_of_an_interrupted_compaction_are_removed_by_the_next_open(root: Path) -> None:
    with Journal(root, durability="none") as j:
        j.append(SID, message(0))
        path = Path(j.session_path(SID))
    orphan = path / f"messages.json{TEMP_MARK}999-deadbeef"
    orphan.write_text("half")
    with Journal(root) as j:
        assert j.state(SID) is not None
    assert not orphan.exists()


# -- concurrency -----------------------------------------------------------------------------

_APPENDER = """
import sys
from journal import Journal
with Journal(sys.argv[1], segment_bytes=4000) as j:
    for i in range(int(sys.argv[2])):
        j.append("chat", {"role": "user", "content": f"child {i}", "metadata": {}})
"""


def test_a_concurrent_appender_process_loses_nothing_while_compaction_runs(root: Path) -> None:
    count = 400
    with Journal(root, segment_bytes=4000) as j:
        j.append(SID, message(-1))
        child = subprocess.Popen([sys.executable, "-c", _APPENDER, str(root), str(count)])
        compactions = 0
        while child.poll() is None or compactions < 3:
            compactions += j.compact(SID).compacted
            j.append(SID, message(compactions))
        assert child.wait() == 0
        j.compact(SID)
        contents = [r.data["content"] for r in j.read(SID) if r.kind == MESSAGE]
        from_child = [c for c in contents if c.startswith("child ")]
        assert from_child == [f"child {i}" for i in range(count)]
        state = j.state(SID)
        assert state is not None and [m.data["content"] for m in state.messages] == contents
        assert_state_is_fold_of_log(j)
        assert j.verify(SID).ok


# -- policy ----------------------------------------------------------------------------------


def test_maybe_compact_waits_until_the_live_log_outgrows_the_threshold(root: Path) -> None:
    policy = CompactionPolicy(min_live_bytes=2000, snapshot_ratio=0.5)
    with Journal(root, durability="none", compaction=policy) as j:
        j.append(SID, message(0))
        assert j.maybe_compact(SID) is None
        while j.maybe_compact(SID) is None:
            j.append(SID, message(1))
        snapshot = os.path.getsize(Path(j.session_path(SID)) / "messages.json")
        j.append(SID, message(2))
        assert j.maybe_compact(SID) is None  # live log now far below max(2000, snapshot / 2)
        assert snapshot > 0


def test_live_record_and_age_triggers(root: Path) -> None:
    with Journal(root, durability="none", compaction=CompactionPolicy(min_live_records=3)) as j:
        j.append_many(SID, [message(0), message(1)])
        assert j.maybe_compact(SID) is None
        j.append(SID, message(2))
        assert j.maybe_compact(SID) is not None
    with Journal(root, durability="none", compaction=CompactionPolicy(max_age=0.0)) as j:
        j.append(SID, message(3))
        assert j.maybe_compact(SID) is not None


def test_compact_all_compacts_each_session_with_new_records(journal: Journal) -> None:
    for sid in ("a", "b", "c"):
        journal.append(sid, message(0))
    journal.compact("c")
    report = journal.compact_all()
    assert sorted(r.session_id for r in report.results) == ["a", "b"] and report.compacted == 2
    assert report.errors == {}


def test_background_compactor_compacts_due_sessions_and_stops_on_close(root: Path) -> None:
    policy = CompactionPolicy(min_live_bytes=1, interval=0.01)
    j = Journal(root, durability="none", compaction=policy, background_compaction=True)
    j.append(SID, message(0))
    messages_json = Path(j.session_path(SID)) / "messages.json"
    deadline = time.monotonic() + 30
    while not messages_json.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    j.close()
    assert messages_json.exists()
    assert not any(t.name == "journal-compactor" for t in __import__("threading").enumerate())


def test_retention_prunes_the_oldest_archives_and_reports_them(root: Path, caplog: Any) -> None:
    policy = CompactionPolicy(keep_archives=1, merge_archive_bytes=0)  # one archive per compaction
    with Journal(root, durability="none", compaction=policy) as j:
        pruned: list[str] = []
        for i in range(3):
            j.append(SID, message(i))
            with caplog.at_level(logging.WARNING, logger="journal.compaction"):
                pruned += j.compact(SID).pruned_archives
        archives = os.listdir(Path(j.session_path(SID)) / "archive")
        assert len(archives) == 1 and len(pruned) == 2
        assert "retention removed" in caplog.text
        first = min(r.seq for r in j.read(SID))
        assert first == 5  # seqs 1-4 (two messages, two seals) were in the pruned archives
        assert j.verify(SID).ok
        state = j.state(SID)
        assert state is not None and len(state.messages) == 3
