"""Adoption under power loss: cut the power at every file system call of taking a foreign
session in (and of the compaction that writes its views), for several ways the disk may come
back, and check what must follow.

After any such crash: every foreign file's bytes are still on disk, unchanged, under its own
name or its `.adopted` name; with no `identity.json` the foreign files are all still where they
were (no journal session, nothing moved); and the next open shows the complete session, its
messages exactly once, however many times adoption was begun.
"""

from __future__ import annotations

import contextlib
import json
import random

import hypothesis.strategies as st
import orjson
import pytest
from conftest_crash import crash_settings
from hypothesis import settings
from hypothesis.stateful import rule
from simdisk import PowerCut, SimDisk
from test_crash_stateful import ROOT, STATS, JournalCrashMachine, check

from journal import Journal

SESSION = "chat-7"
MESSAGES = [
    {"role": "user", "content": "hi", "timestamp": "2024-01-15T10:30:15.000Z", "metadata": {}},
    {"role": "assistant", "content": "hello", "timestamp": "2024-01-15T10:30:18.000Z", "metadata": {}},
]
DOCS = {
    f"{ROOT}/{SESSION}/messages.json": json.dumps({"messages": MESSAGES}).encode(),
    f"{ROOT}/{SESSION}/session_id.json": json.dumps(
        {"session_id": SESSION, "agent_id": "bot", "created_at": "2024-01-15T10:30:00Z"}
    ).encode(),
    f"{ROOT}/{SESSION}/metadata.json": b'{"topic": "tests"}',
}
FLAT = {
    f"{ROOT}/{SESSION}.json": json.dumps(
        {"session_id": SESSION, "messages": MESSAGES[1:], "archived_messages": MESSAGES[:1], "metadata": {}}
    ).encode()
}
LAYOUTS = {"docs": DOCS, "praisonai": FLAT}


def foreign_disk(files: dict[str, bytes]) -> SimDisk:
    disk = SimDisk()
    disk.mkdir(ROOT, 0o700)
    write_files(disk, files)
    return disk


def adoption_calls(files: dict[str, bytes]) -> int:
    """How many file system calls a whole adoption (and its compaction) makes."""
    disk = foreign_disk(files)
    journal = Journal(ROOT, fs=disk, durability="always")
    disk.cut_power_after(10**9)
    journal.state(SESSION)
    assert disk._ops_left is not None
    return 10**9 - disk._ops_left


def check_after_crash(disk: SimDisk, files: dict[str, bytes]) -> None:
    adopted = disk.stat(f"{ROOT}/{SESSION}/identity.json") is not None
    for path, raw in files.items():
        here = disk.stat(path) is not None
        aside = disk.stat(path + ".adopted") is not None
        assert here or aside, f"{path} is gone"
        assert disk.read_bytes(path if here and not (adopted and aside) else path + ".adopted") == raw
        if not adopted:
            assert here and not aside, f"{path} moved though nothing was adopted"


def check_reopened(disk: SimDisk, files: dict[str, bytes]) -> None:
    with Journal(ROOT, fs=disk, durability="always") as journal:
        state = journal.state(SESSION)
        assert state is not None
        assert [m.data["content"] for m in state.messages] == ["hi", "hello"]
        assert list(journal.sessions()) == [SESSION]
        assert journal.verify(SESSION).ok
    for path, raw in files.items():
        assert disk.read_bytes(path + ".adopted") == raw


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_a_power_cut_at_any_call_of_an_adoption_leaves_the_old_files_or_the_whole_session(
    layout: str,
) -> None:
    files = LAYOUTS[layout]
    total = adoption_calls(files)
    assert total > 10
    for calls in range(total + 1):
        for seed in range(3):
            disk = foreign_disk(files)
            journal = Journal(ROOT, fs=disk, durability="always")
            disk.cut_power_after(calls)
            with contextlib.suppress(PowerCut):
                journal.state(SESSION)
            disk.crash(random.Random(seed))
            check_after_crash(disk, files)
            check_reopened(disk, files)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_an_adoption_cut_twice_is_still_taken_in_once(layout: str) -> None:
    files = LAYOUTS[layout]
    total = adoption_calls(files)
    rng = random.Random(7)
    for _ in range(40):
        disk = foreign_disk(files)
        for _attempt in range(2):
            journal = Journal(ROOT, fs=disk, durability="always")
            disk.cut_power_after(rng.randrange(total))
            with contextlib.suppress(PowerCut):
                journal.state(SESSION)
            disk.crash(rng)
            check_after_crash(disk, files)
        check_reopened(disk, files)


# -- adoption as a rule of the crash state machine -------------------------------------------------


class JournalAdoptionMachine(JournalCrashMachine):
    """Everything `JournalCrashMachine` does to its session, while sessions in the docs' layout
    appear beside it and are adopted, with power cuts inside the adoption; after every crash
    each foreign session's files are intact and it is either not adopted (its files in place)
    or adopted whole, exactly once."""

    def __init__(self) -> None:
        super().__init__()
        self.foreign: dict[str, dict[str, bytes]] = {}  # session id -> its files' paths and bytes

    @rule(count=st.integers(0, 4), calls=st.none() | st.integers(0, 60), seed=st.integers(0, 2**32 - 1))
    def adopt_foreign(self, count: int, calls: int | None, seed: int) -> None:
        """Another tool leaves a session in the docs' layout; the journal opens it (the power
        going off `calls` file system calls in)."""
        self.step("adopt_foreign")
        session_id = f"docs-{len(self.foreign)}"
        messages = [
            {"role": "user", "content": f"{session_id} {i}", "timestamp": 1700000000 + i}
            for i in range(count)
        ]
        files = {
            f"{ROOT}/{session_id}/messages.json": json.dumps({"messages": messages}).encode(),
            f"{ROOT}/{session_id}/session_id.json": json.dumps({"session_id": session_id}).encode(),
        }
        write_files(self.disk, files)
        self.foreign[session_id] = files
        if calls is None:
            self.check_adopted(session_id)
            return
        self.disk.cut_power_after(calls)
        try:
            self.check_adopted(session_id)
        except PowerCut:
            STATS["adoptions cut"] += 1
        self.disk.crash(random.Random(seed))
        STATS["crashes simulated"] += 1
        self.recover("power")

    def check_adopted(self, session_id: str) -> None:
        state = self.j.state(session_id)
        files = self.foreign[session_id]
        expected = orjson.loads(files[f"{ROOT}/{session_id}/messages.json"])["messages"]
        check(state is not None, f"{session_id} was not adopted")
        assert state is not None
        found = [m.data["content"] for m in state.messages]
        check(found == [m["content"] for m in expected], f"{session_id} adopted as {found}")

    def recover(self, crash: str) -> None:
        super().recover(crash)
        for session_id, files in self.foreign.items():
            adopted = self.disk.stat(f"{ROOT}/{session_id}/identity.json") is not None
            for path, raw in files.items():
                here = self.disk.stat(path) is not None
                aside = self.disk.stat(path + ".adopted") is not None
                check(here or aside, f"{path} is gone after a {crash} crash")
                kept = path + ".adopted" if aside else path
                check(self.disk.read_bytes(kept) == raw, f"{kept} changed")
                check(adopted or not aside, f"{path} moved though {session_id} was not adopted")
            self.check_adopted(session_id)


def write_files(disk: SimDisk, files: dict[str, bytes]) -> None:
    """Files another tool wrote and the OS has long since written back."""
    for directory in sorted({p.rsplit("/", 1)[0] for p in files}):
        disk.mkdir(directory, 0o700)
    for path, raw in files.items():
        fd = disk.open(path, create=True, mode=0o600)
        disk.append(fd, raw)
        disk.close(fd)
    disk.sync_all()


JournalAdoptionMachine.TestCase.settings = settings(
    crash_settings(), max_examples=crash_settings().max_examples // 3
)
TestJournalAdoptionCrash = JournalAdoptionMachine.TestCase
MACHINE = JournalAdoptionMachine  # what `tools/crashcheck.py --machine adoption` could run
