"""A crowded group-commit round, and a power cut inside its fsync, for the crash state machines.

Strategy: `run_crowded_round` has the calling thread append one batch in `batch` mode and, as
that round's leader, hold its fsync (in a `SimDisk.sync_hook`) while it lets the worker threads
queue behind it one at a time; so the next round serves all the workers at once, whatever the
thread timing, in a fixed order (hypothesis replays a run: what it draws later depends on the
bytes on disk, so their order must not depend on the scheduler).
With `cut`, the hook cuts the power inside the leader's fsync of the first round serving more
than one appender. Before it cuts, it lets the round's appenders return for a moment, as they
would if they had been acknowledged before that fsync. Every call's outcome is kept: the seq it
returned or what it raised. A worker makes no file system call after its round's fsync (the
facade marks a handle for the listing index once, and the caller's earlier append did that),
so a call that raised was never acknowledged by a completed fsync.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from simdisk import SimDisk

from journal import Journal

HOLD = 1.0  # seconds: a liveness bound for a worker to queue, not a timing
LINGER = 0.001  # seconds the round's appenders get to return before the power goes off
JOIN_TIMEOUT = 30.0  # seconds: a worker still running after this hung


@dataclass
class Outcome:
    """One `append_many` call: the seq of its first record, or what it raised."""

    msgs: list[dict[str, Any]]
    first: int | None = None
    error: BaseException | None = None


class CrowdedRound:
    """The `sync_hook`: hold the first group-commit fsync until `crowd` appenders queued; with
    `cut`, cut the power inside the fsync of the first round that serves more than one."""

    def __init__(self, disk: SimDisk, journal: Journal, session: str, crowd: int, cut: bool) -> None:
        self.disk, self.journal, self.session = disk, journal, session
        self.crowd, self.cut = crowd, cut
        self.turns = [threading.Event() for _ in range(crowd)]  # worker i may append
        self.returned = threading.Condition()
        self.done = 0  # workers whose call returned or raised
        self.cut_served = 0  # appenders of the round the power was cut in (0: not cut)
        self.crowded = 0  # appenders of the first round that served more than one (0: none)

    def __call__(self, fd: int) -> None:
        log = self.journal._pool.open.get(self.session)
        if log is None or fd != log.seg_fd or not log.syncing:
            return  # not a group-commit leader's fsync (a roll, a recovery, a new session)
        if self.turns and not self.turns[0].is_set():  # the first round: it took its queue
            for queued, turn in enumerate(self.turns, 1):
                turn.set()
                deadline = time.monotonic() + HOLD
                while len(log.queue) < queued and time.monotonic() < deadline:
                    time.sleep(0)  # lets the worker run: it needs no more than the GIL
            return
        if log.last_served > 1 and not self.crowded:
            self.crowded = log.last_served
            if self.cut:
                self.cut_served = log.last_served
                with self.returned:  # correct code keeps them waiting on their gates
                    self.returned.wait_for(lambda: self.done >= self.cut_served - 1, LINGER)
                self.disk.cut_power_now()

    def work(self, journal: Journal, turn: threading.Event, outcome: Outcome) -> None:
        if turn.wait(JOIN_TIMEOUT):
            call(journal, self.session, outcome)
        with self.returned:
            self.done += 1
            self.returned.notify_all()


def call(journal: Journal, session: str, outcome: Outcome) -> None:
    try:
        outcome.first = journal.append_many(session, outcome.msgs, durability="batch")[0]
    except BaseException as exc:  # PowerCut and DurabilityError are expected; the caller checks
        outcome.error = exc


def run_crowded_round(
    disk: SimDisk,
    journal: Journal,
    session: str,
    lead: list[dict[str, Any]],
    batches: list[list[dict[str, Any]]],
    cut: bool,
) -> tuple[list[Outcome], CrowdedRound, bool]:
    """Append `lead` from this thread and each of `batches` from a thread of its own, as
    described above; return every outcome (`lead`'s first), the hook, and whether every
    worker finished."""
    hook = CrowdedRound(disk, journal, session, len(batches), cut)
    outcomes = [Outcome(msgs) for msgs in [lead, *batches]]
    workers = [
        threading.Thread(target=hook.work, args=(journal, turn, o), daemon=True)
        for turn, o in zip(hook.turns, outcomes[1:], strict=True)
    ]
    disk.sync_hook = hook
    try:
        for worker in workers:
            worker.start()
        call(journal, session, outcomes[0])
    finally:
        for turn in hook.turns:  # the lead failed before its fsync: let the workers append anyway
            turn.set()
        for worker in workers:
            worker.join(JOIN_TIMEOUT)
        disk.sync_hook = None
    return outcomes, hook, not any(worker.is_alive() for worker in workers)
