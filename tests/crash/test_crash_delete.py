"""Delete under power loss: cut the power at every file system call of a delete (and of the
next open that finishes one), for several ways the disk may come back, and check what must
follow (CRASH-SAFETY.md, "Delete").

After any such crash the session is either whole (every acknowledged record, verify ok) or
gone: no state, not listed once opened, no `.trash-*` left after the next open of the store,
and an append to its id starts a fresh session at seq 1. Never half of it. A delete that
returned is never undone by a power loss.
"""

from __future__ import annotations

import contextlib
import random

import pytest
from simdisk import PowerCut, SimDisk

from journal import Journal

ROOT = "/store"
SESSION = "chat"
MESSAGES = [{"role": "user", "content": f"m{i}"} for i in range(5)]


def session_disk() -> SimDisk:
    """A disk holding one durable session of `MESSAGES`, over two segments."""
    disk = SimDisk()
    with Journal(ROOT, fs=disk, durability="always", segment_bytes=300) as journal:
        for message in MESSAGES:
            journal.append(SESSION, message)
    disk.sync_all()
    return disk


def delete_calls() -> int:
    """How many file system calls a whole delete makes."""
    disk = session_disk()
    journal = Journal(ROOT, fs=disk)
    disk.cut_power_after(10**9)
    assert journal.delete(SESSION) is True
    assert disk._ops_left is not None
    return 10**9 - disk._ops_left


def check_whole_or_gone(disk: SimDisk, deleted: bool) -> None:
    """After the crash: the session is whole or (and if the delete returned, surely) gone."""
    with Journal(ROOT, fs=disk, durability="always") as journal:
        assert not [n for n in disk.listdir(ROOT) if n.startswith(".trash-")]
        state = journal.state(SESSION)
        if state is None:
            assert SESSION not in list(journal.sessions())
            assert journal.verify(SESSION).ok
            assert journal.append(SESSION, {"content": "fresh"}) == 1
            assert [m.data["content"] for m in journal.state(SESSION).messages] == ["fresh"]
        else:
            assert not deleted, "a delete that returned came back after a power loss"
            assert [m.data for m in state.messages] == MESSAGES
            assert journal.verify(SESSION).ok
            assert journal.append(SESSION, {"content": "more"}) == len(MESSAGES) + 2  # + a seal
    assert not disk.locks


def test_a_power_cut_at_any_call_of_a_delete_leaves_the_session_whole_or_gone() -> None:
    total = delete_calls()
    assert total > 10
    for calls in range(total + 1):
        for seed in range(4):
            disk = session_disk()
            journal = Journal(ROOT, fs=disk)
            disk.cut_power_after(calls)
            deleted = False
            with contextlib.suppress(PowerCut):
                deleted = journal.delete(SESSION)
            disk.crash(random.Random(seed))
            check_whole_or_gone(disk, deleted)


@pytest.mark.parametrize("second", ["state", "append", "delete"])
def test_a_delete_cut_then_a_finish_cut_still_ends_whole_or_gone(second: str) -> None:
    """The power goes off in a delete, then again in the open that finishes it."""
    total = delete_calls()
    rng = random.Random(11)
    for _ in range(40):
        disk = session_disk()
        journal = Journal(ROOT, fs=disk)
        disk.cut_power_after(rng.randrange(total))
        with contextlib.suppress(PowerCut):
            journal.delete(SESSION)
        disk.crash(rng)
        with contextlib.suppress(PowerCut):
            journal = Journal(ROOT, fs=disk)
            disk.cut_power_after(rng.randrange(25))
            if second == "state":
                journal.state(SESSION)
            elif second == "append":
                journal.append(SESSION, {"content": "x"})
            else:
                journal.delete(SESSION)
        disk.crash(rng)
        with Journal(ROOT, fs=disk) as journal:
            state = journal.state(SESSION)
            contents = [] if state is None else [m.data.get("content") for m in state.messages]
            # whole, gone, or (after an append that may have landed) fresh with one "x"
            assert contents in (
                [m["content"] for m in MESSAGES],
                [],
                ["x"],
                [*(m["content"] for m in MESSAGES), "x"],
            )
            assert journal.verify(SESSION).ok
