"""A writer process that appends, compacts and replicates is SIGKILLed at random moments
(mid-append, mid-upload, mid-compaction, mid-sync), then started again on the same store, a
few times; then the replica is restored on a fresh directory. Every record that was
acknowledged and covered by a completed `sync_replica` must be there, byte for byte as the
source has it, and nothing else: the restored log is a prefix of the source's."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from conftest import Replica, subprocess_env

from journal import Journal

WRITER = r"""
import json, random, sys
from journal import Journal

root, url, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = random.Random(seed)
names = ["s0", "s1", "s2", "user/3"]
acked = {}
with Journal(root, replica=url, replica_interval=0.02, segment_bytes=3000) as j:
    for n in range(1_000_000):
        sid = rng.choice(names)
        if rng.random() < 0.25:
            batch = [{"role": "user", "content": f"{seed}.{n}.{k}"} for k in range(rng.randint(2, 4))]
            last = j.append_many(sid, batch)[-1]
        else:
            last = j.append(sid, {"role": "assistant", "content": f"{seed}.{n}" + "x" * rng.randint(0, 300)})
        acked[sid] = last
        print("A", flush=True)
        if n % 9 == 8:
            covered = dict(acked)
            j.sync_replica()
            print("S " + json.dumps(covered), flush=True)
        if n % 40 == 39:
            j.compact(sid)
"""


def run_and_kill(root: Path, replica: Replica, seed: int, rng: random.Random) -> dict[str, int]:
    """One writer life: killed after a random number of acknowledgements; the seqs its last
    completed sync covered."""
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(root), replica.url, str(seed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=subprocess_env(replica),
    )
    assert proc.stdout is not None
    acks, kill_after = 0, rng.randint(5, 120)
    while acks < kill_after:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"the writer died: {proc.stderr.read().decode() if proc.stderr else ''}")
        acks += line.startswith(b"A")
    time.sleep(rng.random() * 0.05)  # land anywhere: in an append, an upload, a compaction
    os.kill(proc.pid, signal.SIGKILL)
    rest, _ = proc.communicate()
    covered: dict[str, int] = {}
    for line in rest.splitlines():
        if line.startswith(b"S "):
            covered = json.loads(line[2:])
    return covered


def records(j: Journal, session_id: str) -> list[tuple[Any, ...]]:
    return [(r.seq, r.ts, r.kind, r.data, r.more) for r in j.read(session_id)]


def test_a_writer_killed_at_random_moments_loses_nothing_it_synced(tmp_path: Path, replica: Replica) -> None:
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    root = tmp_path / "host"
    synced: dict[str, int] = {}
    for seed in range(4):
        for sid, seq in run_and_kill(root, replica, seed, rng).items():
            synced[sid] = max(synced.get(sid, 0), seq)
    assert synced, "no sync completed before the kills"
    with Journal(tmp_path / "restored") as restored, Journal(root) as source:
        restored.restore(replica.url, replica_options=replica.options or None)
        for sid in source.sessions():
            have, truth = records(restored, sid), records(source, sid)
            assert have == truth[: len(have)]  # nothing invented, nothing changed
            assert len(have) >= synced.get(sid, 0)  # everything a completed sync covered
    # The store recovered from the kills replicates on, without a conflict, to the last record.
    with Journal(root, replica=replica.url, replica_options=replica.options or None) as source:
        source.sync_replica(timeout=30)
        with Journal(tmp_path / "again") as again:
            again.restore(replica.url, replica_options=replica.options or None)
            for sid in source.sessions():
                assert records(again, sid) == records(source, sid)
