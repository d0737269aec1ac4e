"""`journal demo`: concurrent agents, a crash, recovery and compaction on a real store.

Strategy: several agent processes append to their own sessions and to one shared session at
once; one writer is killed with SIGKILL mid-stream while it reports every append that returned;
then the demo tears the tail of a log by hand (what a power loss leaves), reopens the store,
and checks that every acknowledged message is there exactly once. Finally it compacts, if the
journal has a compactor, and prints a summary.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import time
import warnings
from multiprocessing.connection import Connection
from typing import Any

from ..errors import RecoveryWarning
from ..native import Journal

SHARED = "shared-room"
VICTIM = "crash-victim"


def _agent(root: str, agent: int, count: int) -> None:
    with Journal(root, durability="batch") as journal:
        for turn in range(count):
            journal.append(f"agent-{agent}", {"role": "user", "content": f"question {turn}"})
            journal.append(SHARED, {"role": "assistant", "content": f"agent {agent} turn {turn}"})


def _doomed_writer(root: str, conn: Connection) -> None:
    with Journal(root, durability="always") as journal:
        for turn in range(1_000_000):
            seq = journal.append(VICTIM, {"role": "user", "content": f"message {turn}"})
            conn.send(seq)  # acknowledged: the append returned


def run_demo(root: str = "./sessions", agents: int = 4, messages: int = 200) -> dict[str, Any]:
    """Run the whole demo under `root`; return the figures it printed."""
    ctx = mp.get_context("spawn")
    print(f"journal demo in {os.path.abspath(root)}")
    with Journal(root) as journal:
        before = journal.state(SHARED)
        shared_before = len(before.messages) if before else 0

    started = time.perf_counter()
    procs = [ctx.Process(target=_agent, args=(root, a, messages)) for a in range(agents)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
    elapsed = time.perf_counter() - started
    appended = agents * messages * 2
    print(f"1. {agents} agent processes appended {appended} messages in {elapsed:.2f} s (batch mode)")

    acked = _crash_a_writer(root, ctx)
    print(f"2. a writer was killed with SIGKILL after {len(acked)} acknowledged appends")
    torn = _tear_tail(root, VICTIM)
    print(f"   and {torn} bytes of a half-written record were left at the end of its log")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RecoveryWarning)
        with Journal(root) as journal:
            records = [r.seq for r in journal.read(VICTIM)]
            shared = journal.state(SHARED)
            shared_count = (len(shared.messages) if shared else 0) - shared_before
            ours = [f"agent-{a}" for a in range(agents)] + [SHARED, VICTIM]
            problems = sum(len(journal.verify(s).problems) for s in ours)
            compacted = _compact(journal, ours)
    missing = sorted(set(acked) - set(records))
    print(f"3. recovery: {len(caught)} torn tail(s) cut and quarantined; {len(records)} records on disk,")
    print(
        f"   acknowledged but missing: {len(missing)}; gapless: {records == list(range(1, len(records) + 1))}"
    )
    print(f"   shared session gained {shared_count} of {agents * messages}; verify problems: {problems}")
    print(f"4. compaction: {compacted}")
    ok = not missing and shared_count == agents * messages and problems == 0
    print("OK: nothing acknowledged was lost" if ok else "FAILED: see above")
    return {"acked": len(acked), "missing": len(missing), "shared": shared_count, "ok": ok}


def _crash_a_writer(root: str, ctx: Any) -> list[int]:
    receiver, sender = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_doomed_writer, args=(root, sender))
    proc.start()
    sender.close()
    acked: list[int] = []
    deadline = time.monotonic() + random.uniform(0.3, 0.6)
    while time.monotonic() < deadline or not acked:
        if receiver.poll(0.05):
            acked.append(receiver.recv())
    proc.kill()
    proc.join()
    while receiver.poll():
        try:
            acked.append(receiver.recv())
        except EOFError:
            break
    return acked


def _tear_tail(root: str, session_id: str) -> int:
    """Append half a record to the active segment, as a crash mid-write would leave it."""
    with Journal(root) as journal:
        log_dir = os.path.join(journal.session_path(session_id), "log")
    active = os.path.join(log_dir, sorted(os.listdir(log_dir))[-1])
    torn = b'{"xxh3":"0000000000000000","v":1,"seq":'
    with open(active, "ab") as handle:
        handle.write(torn)
    return len(torn)


def _compact(journal: Journal, session_ids: list[str]) -> str:
    """Compact the demo's own sessions (others sharing the store are left alone)."""
    results = [journal.compact(s) for s in session_ids]
    folded = sum(r.folded_bytes for r in results)
    archived = sum(r.archive_bytes for r in results)
    ratio = folded / archived if archived else 0.0
    return (
        f"{sum(r.compacted for r in results)} session(s) folded {folded:,} log bytes into"
        f" messages.json, session_id.json, metadata.json and zstd archives ({ratio:.1f}x smaller)"
    )


def main(root: str = "./sessions") -> int:
    return 0 if run_demo(root)["ok"] else 1
