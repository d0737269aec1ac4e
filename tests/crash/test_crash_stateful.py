"""Model-based crash tests: a hypothesis state machine drives a `Journal` on a simulated disk.

Strategy: the model is the list of batches the journal was asked to write, each marked with
what its outcome promises: level 2, acknowledged durably (`always`/`batch`): must survive power
loss; level 1, acknowledged in `none` mode or written and then failed at fsync: must survive a
process crash; level 0, uncertain (the append raised after a failed fsync, and may or may not
have written it). After every crash and reopen the records on disk must be the model's batches
in order, whole, each at most once, with uncertain ones optionally missing, gapless sequence
numbers, and reaching at least the last batch the crash kind promises. Whatever survived is
then the model: what recovery cut is gone for good.

Besides appends and crashes (also of 2-6 threads in one group-commit round, the power cut
inside its fsync: `threaded_batch`) the machine injects non-fatal faults (EIO/ENOSPC on a
directory fsync, a rename or an unlink), runs compaction, retention and repair (with and without such
faults), damages closed segments by flipped bits, deleted or duplicated lines and zeroed
sectors, and checks after every recovery that each quarantined file it saw before is still
there, byte for byte. Retention removes a prefix of the history on purpose: the records read
just before it are remembered (`history_seen`), and a read may then start after any point a
retention pruned through (`prune_points`), the pruned records standing in for the missing start.
"""

from __future__ import annotations

import errno
import gc
import itertools
import random
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import hypothesis.strategies as st
import orjson
from conftest_crash import crash_settings, seeded
from group_rounds import Outcome, run_crowded_round
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from simdisk import PowerCut, SimDisk

from journal import CompactionPolicy, CorruptionError, DurabilityError, Journal, JournalError, RecoveryWarning
from journal.log.chat import llm_message
from journal.log.fs import TEMP_MARK
from journal.log.record import LOST, SEAL

PREALLOC = 64 * 1024  # preallocation is opt-in (README "Durability modes"): these tests turn it on

ROOT = "/store"
SESSION = "chat"
DURABLE, WRITTEN, UNCERTAIN = 2, 1, 0
# Module-level counters, read by tools/crashcheck.py for its summary.
STATS: Counter[str] = Counter()


class Violation(AssertionError):
    """An invariant of CRASH-SAFETY.md does not hold."""


def check(condition: bool, message: str) -> None:
    if not condition:
        STATS["violations"] += 1
        raise Violation(message)


@dataclass
class Batch:
    records: list[tuple[str, Any]]  # (kind, data) of each record, as read back
    level: int


def match(log: list[Batch], found: list[tuple[str, Any]], required: int) -> list[Batch] | None:
    """The batches of `log` that `found` consists of, in order and whole, or None.

    Every batch of level >= `required` up to the last such batch must be there; a level 0
    batch may be missing anywhere (it was never written); after the last required batch the
    log may stop at any batch boundary (the crash lost the rest).
    """
    last_needed = max((i for i, b in enumerate(log) if b.level >= required), default=-1)

    def walk(i: int, j: int) -> list[Batch] | None:
        if j == len(found) and i > last_needed:
            return []
        if i == len(log):
            return None
        batch = log[i]
        end = j + len(batch.records)
        if found[j:end] == batch.records:
            rest = walk(i + 1, end)
            if rest is not None:
                return [batch, *rest]
        return walk(i + 1, j) if batch.level == UNCERTAIN else None

    return walk(0, 0)


def place(batches: list[Batch], found: list[tuple[str, Any]]) -> list[Batch]:
    """`batches` (uncertain, of one group-commit round: their order was not known) in the
    order `found` holds their first records, the missing ones last."""
    where = {id(b): found.index(b.records[0]) if b.records[0] in found else len(found) for b in batches}
    return sorted(batches, key=lambda b: where[id(b)])


def records(msgs: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    return [("message", m) for m in msgs]


def message(n: int, size: int) -> dict[str, Any]:
    return {"role": "user" if n % 2 else "assistant", "content": f"m{n}:" + "x" * size}


class Replayable:
    """What makes a run replay exactly from its seed (soaks once found failures that the same
    seed did not reproduce): a wall clock that starts at a fixed time and advances 1 ms per
    call, so record times, and with them file sizes and the compactor's choices, are the same
    in every replay; and no cyclic garbage collection during the run, so a generator left in
    a reference cycle is never finalized at a moment that depends on memory use (its `close`
    of a file is a simulated-disk call, and so counts towards a power cut)."""

    START = 1_790_000_000.0

    def __init__(self) -> None:
        ticks = itertools.count(1)
        self.real_time = time.time
        time.time = lambda: self.START + next(ticks) / 1000
        self.collecting = gc.isenabled()
        gc.disable()

    def end(self) -> None:
        time.time = self.real_time
        if self.collecting:
            gc.enable()
        gc.collect()


class JournalCrashMachine(RuleBasedStateMachine):
    """Appends, crashes, faults and reopens on one session of a `Journal` on a `SimDisk`."""

    def __init__(self) -> None:
        super().__init__()
        self.replayable = Replayable()
        self.disk = SimDisk()
        self.log: list[Batch] = []
        self.poisoned = False
        self.counter = 0
        self.mode = "batch"
        self.segment_bytes = 600
        self.journal: Journal | None = None
        self.forget_session()
        STATS["runs"] += 1

    def forget_session(self) -> None:
        """The session is gone (deleted) or new: nothing written, pruned or quarantined yet."""
        self.log = []
        self.history_seen: dict[int, tuple[str, Any]] = {}  # seq -> record, read before a retention
        self.prune_points = {0}  # a read may start just after any of these seqs
        self.quarantined: dict[str, bytes] = {}  # every quarantined file seen after a recovery
        self.allow_lost = False  # a repair may have marked lost sequence numbers
        self.unordered: list[Batch] = []  # uncertain batches whose order only the disk tells

    # -- helpers -----------------------------------------------------------------------------

    def open_journal(self) -> Journal:
        return Journal(
            ROOT, preallocate=PREALLOC, durability=self.mode, segment_bytes=self.segment_bytes, fs=self.disk
        )

    @property
    def j(self) -> Journal:
        assert self.journal is not None
        return self.journal

    def append_faulted(self, append: Callable[[], object]) -> bool | None:
        """Run `append` with the injected fault, then clear it; whether it raised
        `DurabilityError`, or None once checked that a poisoned writer refused it."""
        try:
            append()
            raised = False
        except DurabilityError:
            raised = True
        finally:
            self.disk.clear_faults()
        if self.poisoned:
            check(raised, "an append was acknowledged after a failed fsync, before recovery")
            return None
        return raised

    def step(self, name: str) -> None:
        STATS["steps"] += 1
        STATS[f"rule {name}"] += 1

    def next_messages(self, sizes: list[int]) -> list[dict[str, Any]]:
        out = []
        for size in sizes:
            self.counter += 1
            out.append(message(self.counter, size))
        return out

    def attempt(self, call: Callable[[], object], records: list[tuple[str, Any]], mode: str | None) -> None:
        """Run an append-like call with no fault armed and record what it promises."""
        if self.poisoned and records:
            self.expect_refused(call)
            return
        call()  # an empty batch writes nothing and acknowledges nothing, poisoned or not
        if records:
            self.log.append(Batch(records, self.level(mode)))

    def level(self, mode: str | None) -> int:
        """What an acknowledgement in `mode` promises."""
        return WRITTEN if (mode or self.mode) == "none" else DURABLE

    def expect_refused(self, call: Callable[[], object]) -> None:
        """After a failed fsync nothing is acknowledged (or written) until recovery."""
        try:
            call()
        except DurabilityError:
            return
        check(False, "an append was acknowledged after a failed fsync, before recovery")

    def read_all(self, journal: Journal) -> list[Any]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RecoveryWarning)
            return list(journal.read(SESSION))

    def recover(self, crash: str) -> None:
        """Open a fresh `Journal` after `crash` ("power", "process" or "none") and check it."""
        self.journal = self.open_journal()
        self.poisoned = False
        self.check_disk(crash)
        again = self.open_journal()  # recovery is idempotent: a second open sees the same
        first = [(r.seq, r.kind, r.data) for r in self.read_all(self.j)]
        second = [(r.seq, r.kind, r.data) for r in self.read_all(again)]
        check(first == second, "reopening after recovery changed the records")
        again.close()
        STATS["states checked"] += 1

    def check_disk(self, crash: str) -> None:
        records = self.read_all(self.j)
        seqs = [r.seq for r in records]
        start = seqs[0] if seqs else 1
        check(start - 1 in self.prune_points, f"the history starts at {start}, not after a retention")
        check(seqs == list(range(start, start + len(seqs))), f"sequence numbers are not gapless: {seqs}")
        check(self.allow_lost or all(r.kind != LOST for r in records), "records were lost without damage")
        check(all(q in self.history_seen for q in range(1, start)), "records pruned that were never read")
        pruned = [self.history_seen[q] for q in range(1, start)]
        found = [(kind, data) for kind, data in pruned + [(r.kind, r.data) for r in records] if kind != SEAL]
        required = DURABLE if crash == "power" else WRITTEN
        self.log += place(self.unordered, found)
        self.unordered = []
        kept = match(self.log, found, required)
        check(kept is not None, f"after a {crash} crash the log {found} is not what was written {self.log}")
        assert kept is not None
        promoted = DURABLE if crash == "power" else WRITTEN
        self.log = [Batch(b.records, max(b.level, promoted)) for b in kept]
        self.check_state(found)
        report = self.j.verify(SESSION)
        check(report.ok, f"verify after recovery found {report.problems}")
        self.check_quarantine()

    def check_quarantine(self) -> None:
        """Bytes recovery or repair took out of the log are kept: every quarantined file seen
        after an earlier recovery is still there, unchanged, whatever crashed since."""
        directory = f"{self.j.session_path(SESSION)}/quarantine"
        names = {n for n in self.disk.listdir(directory) if TEMP_MARK not in n}
        for name, data in self.quarantined.items():
            check(name in names, f"quarantined {name} is gone")
            check(self.disk.read_bytes(f"{directory}/{name}") == data, f"quarantined {name} changed")
        for name in names - self.quarantined.keys():
            self.quarantined[name] = self.disk.read_bytes(f"{directory}/{name}")
        STATS["quarantined files checked"] += len(self.quarantined)

    def check_state(self, found: list[tuple[str, Any]]) -> None:
        messages: list[Any] = []
        metadata: dict[str, Any] = {}
        for kind, data in found:
            if kind == "message":
                messages.append(data)
            elif kind == "clear":
                messages = []
            elif kind == "meta":
                metadata.update(data)
                metadata = {k: v for k, v in metadata.items() if v is not None}
        state = self.j.state(SESSION)
        if state is None:
            check(not found, "records were read from a session that does not exist")
            return
        check([m.data for m in state.messages] == messages, "state() messages differ from read()")
        check(state.metadata == metadata, "state() metadata differs from read()")
        fresh = self.open_journal()  # the cold read of get_chat_history: lines, not records
        try:
            cold = fresh._chat_state(SESSION)
            assert cold is not None
            chat = cold.chat if cold.chat is not None else [llm_message(v) for v in cold.views()]
            check(chat == [llm_message(m) for m in messages], "a cold chat read differs from read()")
        finally:
            fresh.close()

    # -- rules: writing ----------------------------------------------------------------------

    @initialize(
        mode=st.sampled_from(["always", "batch", "none"]),
        segment_bytes=st.integers(300, 2000),
    )
    def setup(self, mode: str, segment_bytes: int) -> None:
        self.mode, self.segment_bytes = mode, segment_bytes
        self.journal = self.open_journal()
        STATS[f"mode {mode}"] += 1

    @rule(size=st.integers(0, 120), mode=st.sampled_from([None, None, "always", "batch", "none"]))
    def append(self, size: int, mode: str | None) -> None:
        self.step("append")
        (msg,) = self.next_messages([size])
        self.attempt(lambda: self.j.append(SESSION, msg, durability=mode), [("message", msg)], mode)

    @rule(sizes=st.lists(st.integers(0, 120), max_size=5))
    def append_many(self, sizes: list[int]) -> None:
        self.step("append_many")
        msgs = self.next_messages(sizes)
        self.attempt(lambda: self.j.append_many(SESSION, msgs), [("message", m) for m in msgs], None)

    @rule(key=st.sampled_from(["title", "model", "tokens"]), value=st.none() | st.integers(0, 9) | st.text())
    def update_metadata(self, key: str, value: Any) -> None:
        self.step("update_metadata")
        fields = {key: value}
        self.attempt(lambda: self.j.update_metadata(SESSION, fields), [("meta", fields)], None)

    @rule()
    def clear(self) -> None:
        self.step("clear")
        self.attempt(lambda: self.j.clear(SESSION), [("clear", {})], None)

    @rule(sizes=st.lists(st.integers(0, 60), max_size=3))
    def replace_messages(self, sizes: list[int]) -> None:
        self.step("replace_messages")
        msgs = self.next_messages(sizes)
        records = [("clear", {}), *(("message", m) for m in msgs)]
        self.attempt(lambda: self.j.replace_messages(SESSION, msgs), records, None)

    # -- rules: crashes and recovery ---------------------------------------------------------

    @rule(
        seed=st.integers(0, 2**32 - 1),
        fault=st.sampled_from([None, "fsync", "enospc", "dir_fsync"]),
        after=st.integers(0, 2),
    )
    def power_loss(self, seed: int, fault: str | None, after: int = 0) -> None:
        """Power loss; with `fault`, the `after`-th sync, write or directory fsync of the
        recovery fails."""
        self.step("power_loss")
        self.disk.crash(random.Random(seed))
        STATS["crashes simulated"] += 1
        if fault is not None:
            self.tear_active_segment(seed)
            self.fail_first_recovery(fault, after)
        self.recover("power")

    def tear_active_segment(self, seed: int) -> None:
        """Leave a torn write at the end of the active segment, so recovery has a cut to make."""
        log_dir = f"{self.j.session_path(SESSION)}/log"
        names = self.disk.listdir(log_dir)
        if names:
            path = f"{log_dir}/{names[-1]}"
            torn = b'{"seq":' + random.Random(seed).randbytes(20).replace(b"\n", b" ")
            self.disk.write_bytes(path, self.disk.read_bytes(path) + torn)

    @rule(
        sizes=st.lists(st.integers(0, 120), min_size=1, max_size=3),
        calls=st.integers(0, 40),
        seed=st.integers(0, 2**32 - 1),
    )
    def power_cut_mid_append(self, sizes: list[int], calls: int, seed: int) -> None:
        """The power goes off `calls` file system calls into an append (a roll, a new
        segment, a recovery): the batch may or may not be there, whole, afterwards."""
        self.step("power_cut_mid_append")
        msgs = self.next_messages(sizes)
        records = [("message", m) for m in msgs]
        self.disk.cut_power_after(calls)
        try:
            self.j.append_many(SESSION, msgs)
            if not self.poisoned:
                self.log.append(Batch(records, self.level(None)))
        except PowerCut:
            if not self.poisoned:
                self.log.append(Batch(records, UNCERTAIN))
        except DurabilityError:
            check(self.poisoned, "an append failed though no fault was injected")
        self.disk.crash(random.Random(seed))
        STATS["crashes simulated"] += 1
        self.recover("power")

    @rule(
        lead=st.integers(0, 60),  # small: this rule appends 4-14 records, a crash checks them all
        sizes=st.lists(st.lists(st.integers(0, 60), min_size=1, max_size=2), min_size=2, max_size=6),
        cut=st.booleans(),
        unsynced_lost=st.booleans(),
        seed=st.integers(0, 2**32 - 1),
    )
    def threaded_batch(
        self, lead: int, sizes: list[list[int]], cut: bool, unsynced_lost: bool, seed: int
    ) -> None:
        """2-6 threads append a batch each in `batch` mode, queued behind one round so that
        the next serves them all (`group_rounds`). With `cut`, the power goes off inside that
        crowded round's fsync (if no round served more than one appender, after every call
        returned), and the crash keeps a random state or only what was synced. Every batch
        acknowledged is there, at the seqs its call returned; each other one may be there,
        whole and once, but only after all of them: a round is acknowledged only once its
        fsync returned, the next round writes only after that, and none writes after the cut."""
        self.step("threaded_batch")
        first = self.next_messages([lead])  # creates the session and marks it for the listing
        self.attempt(lambda: self.j.append_many(SESSION, first, durability="batch"), records(first), "batch")
        if self.poisoned:
            return
        holder, batches = self.next_messages([0]), [self.next_messages(s) for s in sizes]
        outcomes, hook, finished = run_crowded_round(self.disk, self.j, SESSION, holder, batches, cut)
        if cut:  # first: a failed check must not leave the power off for `teardown`
            if unsynced_lost:
                self.disk.crash_losing_unsynced()
            else:
                self.disk.crash(random.Random(seed))
            STATS["crashes simulated"] += 1
        check(finished, "a thread appending in a group commit hung")
        for o in outcomes:
            check(
                o.error is None or hook.cut_served > 0,
                f"a group commit failed with no power cut: {o.error!r}",
            )
        acked = sorted((o for o in outcomes if o.first is not None), key=lambda o: o.first or 0)
        check(len(outcomes) - len(acked) >= hook.cut_served, "an appender of the round cut was acknowledged")
        check(
            all((a.first or 0) + len(a.msgs) <= (b.first or 0) for a, b in itertools.pairwise(acked)),
            "seqs overlap",
        )
        self.log += [Batch(records(o.msgs), self.level("batch")) for o in acked]
        STATS["threaded rounds crowded" if hook.crowded else "threaded rounds never crowded"] += 1
        STATS["crowded rounds cut"] += hook.cut_served > 0
        if cut:
            self.unordered = [Batch(records(o.msgs), UNCERTAIN) for o in outcomes if o.first is None]
            self.recover("power")
        self.check_seqs(acked)

    def check_seqs(self, acked: list[Outcome]) -> None:
        """Each acknowledged batch is at the sequence numbers its call returned."""
        start = min((o.first or 0 for o in acked), default=0)
        by_seq = {r.seq: (r.kind, r.data) for r in self.j.read(SESSION, start)}
        for o in acked:
            at = [by_seq.get((o.first or 0) + i) for i in range(len(o.msgs))]
            check(at == records(o.msgs), f"a batch acknowledged as seq {o.first} is not there")

    def faults_fired(self) -> tuple[int, int, int]:
        return self.disk.syncs_failed, self.disk.appends_failed, self.disk.calls_failed

    def fail_first_recovery(self, fault: str, after: int = 0) -> None:
        """A failed fsync, ENOSPC or failed directory fsync while recovery cuts a torn tail:
        if the fault fired, the read raises `DurabilityError` (a cut that may not be durable
        is never taken for granted); if it did not, the read succeeds. Either way the next
        open recovers as if nothing had happened."""
        fired_before = self.faults_fired()
        if fault == "fsync":
            self.disk.fail_sync(after)
        elif fault == "enospc":
            self.disk.fail_append(after, 0)
        else:
            self.disk.fail_call("sync_dir", after)
        journal = None
        try:
            journal = self.open_journal()
            self.read_all(journal)
            raised = False
        except DurabilityError:
            raised = True
        finally:
            self.disk.clear_faults()
            if journal is not None:
                journal.close()
        fired = self.faults_fired() != fired_before
        check(raised == fired, f"recovery with a {fault} fault that fired={fired} raised={raised}")
        STATS["recovery faults"] += int(fired)

    @rule()
    def process_crash(self) -> None:
        self.step("process_crash")
        self.disk.crash_process()
        STATS["crashes simulated"] += 1
        self.recover("process")

    @rule(new_journal=st.booleans())
    def reopen(self, new_journal: bool) -> None:
        self.step("reopen")
        if new_journal:
            self.j.close()
            self.recover("none")
        else:
            self.j.reopen(SESSION)
            self.poisoned = False
            self.check_disk("none")
            STATS["states checked"] += 1

    # The first few calls of a delete mark the lock and move the directory aside (its commit);
    # the rest remove files. Cuts there are drawn more often: the narrow window matters most.
    @rule(calls=st.none() | st.integers(0, 8) | st.integers(0, 40), seed=st.integers(0, 2**32 - 1))
    def delete(self, calls: int | None, seed: int) -> None:
        """Delete the session; with `calls`, the power goes off that many calls in. The session
        is then whole (as after any power loss) or gone, never half, and no trash outlives the
        next open of the store; a delete that returned is never undone."""
        self.step("delete")
        if calls is not None:
            self.disk.cut_power_after(calls)
        deleted = False
        try:
            self.j.delete(SESSION)
            deleted = True
        except PowerCut:
            check(calls is not None, "a delete raised PowerCut with the power on")
        if calls is None:
            self.forget_session()
            self.poisoned = False
            check(self.j.state(SESSION) is None, "a deleted session still has a state")
            return
        self.disk.crash(random.Random(seed))
        STATS["crashes simulated"] += 1
        self.journal = self.open_journal()
        self.poisoned = False
        check(not [n for n in self.disk.listdir(ROOT) if n.startswith(".trash-")], "trash outlived an open")
        if self.j.state(SESSION) is None:
            check(SESSION not in list(self.j.sessions()), "a deleted session is still listed")
            self.forget_session()
            STATS["deletes finished"] += 1
        else:
            check(not deleted, "a delete that returned was undone by a power loss")
        self.recover("power")

    # -- rules: faults -----------------------------------------------------------------------

    @rule(size=st.integers(0, 120), after=st.integers(0, 2))
    def fsync_fails(self, size: int, after: int) -> None:
        """A failed fsync fails the append and poisons the session until it is reopened."""
        self.step("fsync_fails")
        if not self.poisoned and self.j.state(SESSION) is None:
            self.append(0, None)  # create the session: creation fsyncs are `recover_fails`' job
        (msg,) = self.next_messages([size])
        failed = self.disk.syncs_failed
        self.disk.fail_sync(after)
        raised = self.append_faulted(lambda: self.j.append(SESSION, msg))
        if raised is None:
            return
        if self.disk.syncs_failed == failed:  # no fsync happened (`none` mode): no fault either
            check(not raised, "an append failed though no fault was injected")
            self.log.append(Batch([("message", msg)], self.level(None)))
            return
        check(raised, "an append was acknowledged although an fsync under it failed")
        STATS["fsync failures"] += 1
        self.log.append(Batch([("message", msg)], UNCERTAIN))
        self.poisoned = True

    @rule(
        size=st.integers(0, 120),
        after=st.integers(0, 3),
        new_journal=st.booleans(),
        code=st.sampled_from([errno.EIO, errno.ENOSPC]),
    )
    def dir_fsync_fails(self, size: int, after: int, new_journal: bool, code: int) -> None:
        """A directory fsync fails under an append (from a new `Journal`: the session's
        creation or its handle's first write): the append raises and the next one fsyncs that
        directory again before it is acknowledged, or refuses until the session is reopened."""
        self.step("dir_fsync_fails")
        if self.poisoned:
            return
        if new_journal:
            self.j.close()
            self.journal = self.open_journal()
        (msg,) = self.next_messages([size])
        fired_before = self.disk.calls_failed
        self.disk.fail_call("sync_dir", after, code)
        try:
            self.j.append(SESSION, msg)
            raised = False
        except DurabilityError:
            raised = True
        finally:
            self.disk.clear_faults()
        fired = self.disk.calls_failed != fired_before
        check(raised == fired, f"a failed directory fsync (fired={fired}) and the append raised={raised}")
        if not raised:
            self.log.append(Batch([("message", msg)], self.level(None)))
            return
        STATS["directory fsync failures"] += 1
        self.log.append(Batch([("message", msg)], UNCERTAIN))
        (again,) = self.next_messages([size])
        try:
            self.j.append(SESSION, again)
            self.log.append(Batch([("message", again)], self.level(None)))
        except DurabilityError:  # a failed roll poisoned the handle: refused, never written
            self.j.reopen(SESSION)
            self.check_disk("none")

    # -- rules: compaction, retention and repair, with non-fatal faults ----------------------

    @rule(
        op=st.sampled_from(["compact", "retention", "repair"]),
        fault=st.none()
        | st.tuples(
            st.sampled_from(["sync_dir", "rename", "unlink"]),
            st.sampled_from([errno.EIO, errno.ENOSPC]),
            st.integers(0, 8),
        ),
    )
    def maintain(self, op: str, fault: tuple[str, int, int] | None) -> None:
        """Compaction, retention (keep the newest archive) or repair of an undamaged session,
        with an EIO/ENOSPC on one directory fsync, rename or unlink: it may fail, but the next
        open finishes or rolls back what it did and nothing acknowledged is lost."""
        self.step(f"maintain {op}")
        if self.poisoned:
            return
        self.remember_history()
        if fault is not None:
            call, code, after = fault
            self.disk.fail_call(call, after, code)
        try:
            self.run_maintenance(op)
        except (JournalError, OSError):
            STATS[f"{op} failed by a fault"] += 1
            check(fault is not None, f"{op} failed with no fault injected")
        finally:
            self.disk.clear_faults()
        self.prune_points.add(self.pruned_through())
        self.j.close()
        self.recover("none")

    def run_maintenance(self, op: str) -> None:
        if op == "compact":
            self.j.compact(SESSION)
        elif op == "repair":
            report = self.j.repair(SESSION)
            check(not report.lost, f"repair of an undamaged session lost {report.lost}")
        else:
            policy = CompactionPolicy(keep_archives=1)
            with Journal(
                ROOT, preallocate=PREALLOC, segment_bytes=self.segment_bytes, fs=self.disk, compaction=policy
            ) as keeper:
                keeper.compact(SESSION)

    def remember_history(self) -> None:
        for r in self.read_all(self.j):
            self.history_seen[r.seq] = (r.kind, r.data)

    def pruned_through(self) -> int:
        try:
            raw = self.disk.read_bytes(f"{self.j.session_path(SESSION)}/compaction.json")
        except OSError:
            return 0
        return int(orjson.loads(raw).get("pruned_through", 0))

    @rule(sizes=st.lists(st.integers(0, 120), min_size=1, max_size=4), written=st.integers(0, 400))
    def disk_full(self, sizes: list[int], written: int) -> None:
        """ENOSPC part-way through a batch: the append raises and writes nothing."""
        self.step("disk_full")
        msgs = self.next_messages(sizes)
        failed = self.disk.appends_failed
        self.disk.fail_append(0, written)
        raised = self.append_faulted(lambda: self.j.append_many(SESSION, msgs))
        if raised is None:
            return
        if self.disk.appends_failed == failed:  # every write fitted (`written` >= its size)
            check(not raised, "an append failed though no fault was injected")
            self.log.append(Batch([("message", m) for m in msgs], self.level(None)))
            return
        check(raised, "an append was acknowledged although its write failed")
        STATS["disk full"] += 1

    @rule(data=st.data())
    def bit_rot(self, data: st.DataObject) -> None:
        """Damage anywhere but the last record of the active segment is reported, not skipped."""
        self.step("bit_rot")
        self.disk.sync_all()
        self.log = [Batch(b.records, DURABLE if b.level >= WRITTEN else UNCERTAIN) for b in self.log]
        targets = self.damage_targets()
        if not targets:
            return
        path, end = data.draw(st.sampled_from(targets))
        offset = data.draw(st.integers(0, end - 1))
        mask = data.draw(st.integers(1, 255))
        original = self.disk.read_bytes(path)
        damaged = bytearray(original)
        damaged[offset] ^= mask
        self.detected(path, bytes(damaged), f"a flipped byte at {path}:{offset}").close()
        STATS["damage detected"] += 1
        self.disk.write_bytes(path, original)
        self.disk.crash_process()
        self.recover("process")

    def detected(self, path: str, damaged: bytes, what: str) -> Journal:
        """Put `damaged` in place of `path`'s bytes and check a fresh `Journal` reports it: a
        read raises `CorruptionError` and `verify` lists a corruption. Returns that journal."""
        self.disk.write_bytes(path, damaged)
        self.disk.crash_process()
        journal = self.open_journal()
        try:
            self.read_all(journal)
            check(False, f"{what} was read without CorruptionError")
        except CorruptionError:
            pass
        report = journal.verify(SESSION)
        check(
            any(p.kind == "corruption" for p in report.problems), f"verify missed {what}: {report.problems}"
        )
        return journal

    def damage_targets(self) -> list[tuple[str, int]]:
        """(segment path, bytes that may be damaged): closed segments whole, and the active
        one up to the start of its last record (damage there is a torn tail by design)."""
        log_dir = f"{self.j.session_path(SESSION)}/log"
        names = self.disk.listdir(log_dir)
        targets = []
        for index, name in enumerate(names):
            data = self.disk.read_bytes(f"{log_dir}/{name}").rstrip(b"\0")  # the preallocated tail
            end = len(data) if index < len(names) - 1 else data.rfind(b"\n", 0, len(data) - 1) + 1
            if end > 0:
                targets.append((f"{log_dir}/{name}", end))
        return targets

    @rule(
        data=st.data(),
        kind=st.sampled_from(["delete_line", "duplicate_line", "zero_sector"]),
        then=st.sampled_from(["restore", "repair"]),
        seed=st.integers(0, 2**32 - 1),
    )
    def line_damage(self, data: st.DataObject, kind: str, then: str, seed: int) -> None:
        """A whole line deleted or duplicated, or a 512-byte sector zeroed, anywhere but the
        last record of the active segment: `CorruptionError` on read and a `verify` problem,
        never records silently missing or repeated. Then the damage is undone, or `repair`
        salvages the session: every record kept or marked lost, durably (a power loss after
        the repair changes nothing)."""
        self.step("line_damage")
        self.disk.sync_all()
        self.log = [Batch(b.records, DURABLE if b.level >= WRITTEN else UNCERTAIN) for b in self.log]
        targets = self.damage_targets()
        if not targets:
            return
        path, end = data.draw(st.sampled_from(targets))
        before = {r.seq: (r.kind, r.data) for r in self.read_all(self.j)}
        original = self.disk.read_bytes(path)
        journal = self.detected(path, damage_lines(original, end, kind, data), f"{kind} in {path}")
        STATS[f"damage detected {kind}"] += 1
        if then == "restore":
            journal.close()
            self.disk.write_bytes(path, original)
            self.disk.crash_process()
            self.recover("process")
            return
        self.repair_and_lose_power(journal, before, seed)

    def repair_and_lose_power(self, journal: Journal, before: dict[int, tuple[str, Any]], seed: int) -> None:
        journal.repair(SESSION)
        repaired = [(r.seq, r.kind, r.data) for r in self.read_all(journal)]
        journal.close()
        seqs = [seq for seq, _, _ in repaired]
        check(seqs == list(range(seqs[0] if seqs else 1, max(before) + 1)), f"repair renumbered: {seqs}")
        for seq, kind, value in repaired:
            check(kind == LOST or before.get(seq) == (kind, value), f"repair changed record {seq}")
        self.disk.crash(random.Random(seed))
        STATS["crashes simulated"] += 1
        STATS["repairs"] += 1
        again = self.open_journal()
        after = [(r.seq, r.kind, r.data) for r in self.read_all(again)]
        again.close()
        check(after == repaired, "a power loss after repair changed what repair left")
        # The records a retention pruned come first, as `check_disk` puts them.
        pruned = [self.history_seen[q] for q in range(1, seqs[0] if seqs else 1)]
        kept = pruned + [(kind, value) for _, kind, value in repaired]
        self.log = [Batch([(kind, value)], DURABLE) for kind, value in kept if kind != SEAL]
        self.allow_lost = True
        self.recover("power")

    @invariant()
    def no_lock_held_between_operations(self) -> None:
        check(not self.disk.locks, "a session lock is still held between operations")

    def teardown(self) -> None:
        try:
            if self.journal is not None:
                self.journal.close()
        finally:
            self.replayable.end()


def damage_lines(original: bytes, end: int, kind: str, data: st.DataObject) -> bytes:
    """`original` with one line (wholly before `end`) deleted or duplicated, or the part before
    `end` of one 512-byte sector zeroed."""
    if kind == "zero_sector":
        sector = data.draw(st.integers(0, (end - 1) // 512))
        stop = min(end, (sector + 1) * 512)
        return original[: sector * 512] + bytes(stop - sector * 512) + original[stop:]
    starts = [0, *(i + 1 for i, byte in enumerate(original[:end]) if byte == ord("\n"))]
    lines = list(itertools.pairwise(starts))
    at, stop = data.draw(st.sampled_from(lines))
    if kind == "delete_line":
        return original[:at] + original[stop:]
    return original[:stop] + original[at:stop] + original[stop:]


seeded(JournalCrashMachine)  # the compaction machine inherits the seed
JournalCrashMachine.TestCase.settings = crash_settings()
TestJournalCrash = JournalCrashMachine.TestCase
MACHINE = JournalCrashMachine  # what tools/crashcheck.py runs


# -- regressions: failures hypothesis found, kept as the exact steps it printed --------------


def test_seal_whose_fsync_failed_is_made_durable_before_the_next_segment() -> None:
    """The roll's fsync of a seal failed; the next opener found the (unsynced) seal and made
    the next segment durable without syncing it, so a power loss left a closed segment with
    a torn or missing seal: CorruptionError. Fixed in `SessionLog._catch_up`."""
    state = JournalCrashMachine()
    try:
        state.setup(mode="always", segment_bytes=300)
        for _ in range(8):
            state.clear()
        state.fsync_fails(after=0, size=0)
        state.process_crash()
        state.power_loss(fault=None, seed=1)
    finally:
        state.teardown()  # it also gives back the real clock


def test_enospc_while_creating_a_session_raises_durability_error() -> None:
    """ENOSPC or EIO writing a new session's identity file escaped as a bare OSError."""
    for fault in ("enospc", "eio"):
        disk = SimDisk()
        journal = Journal(ROOT, preallocate=PREALLOC, fs=disk)
        if fault == "enospc":
            disk.fail_append(0, 0)
        else:
            disk.fail_sync(0)
        try:
            journal.append(SESSION, message(1, 0))
            check(False, "an append on a failing disk was acknowledged")
        except DurabilityError:
            pass
        disk.clear_faults()
        check(journal.append(SESSION, message(2, 0)) == 1, "the session did not work once space was freed")
        check([r.data for r in journal.read(SESSION)] == [message(2, 0)], "records differ")


def test_cut_of_a_failed_write_is_durable_before_the_next_write() -> None:
    """ENOSPC part-way through a batch; the cut back was not synced, the next (shorter) write
    went over the same offset, and a power loss that kept the write but not the cut showed
    the rest of the failed batch after it: garbage, then valid records: CorruptionError."""
    for seed in range(100):
        state = JournalCrashMachine()
        try:
            state.setup(mode="none", segment_bytes=2000)
            state.append(size=0, mode=None)
            state.disk.sync_all()
            state.disk_full(sizes=[50, 0, 0], written=350)
            state.append(size=0, mode=None)
            state.power_loss(seed=seed, fault=None)
        finally:
            state.teardown()
