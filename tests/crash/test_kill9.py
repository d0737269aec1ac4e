"""kill -9 at random moments: every acknowledged record survives, in order, exactly once.

A child process appends in `always` mode and prints each acknowledged seq; the parent kills
it with SIGKILL mid-stream, then checks the store against what was acknowledged. The same
store is reused for every round, so each child also recovers what the previous one left; small
segments make kills land during segment rolls too.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

from _core_helpers import segment_paths

from journal import Journal, RecoveryWarning

ROUNDS = 50
SESSIONS = ["alpha", "beta", "gamma/with a slash"]

CHILD = """
import itertools, sys
from journal import Journal

root, round_ = sys.argv[1], sys.argv[2]
sessions = sys.argv[3:]
journal = Journal(root, durability="always", segment_bytes=16384)  # rolls happen too
print("ready", flush=True)
for n in itertools.count():
    sid = sessions[n % len(sessions)]
    if n % 5 == 4:
        seqs = journal.append_many(sid, [{"content": f"{round_}:{n}:{k}"} for k in range(3)])
    else:
        seqs = [journal.append(sid, {"role": "user", "content": f"{round_}:{n}:0"})]
    for k, seq in enumerate(seqs):
        print(sessions.index(sid), seq, f"{round_}:{n}:{k}", flush=True)
"""


def run_and_kill(root: Path, round_: int, rng: random.Random) -> list[tuple[int, int, str]]:
    """One child, killed at a random moment; the (session, seq, content) it acknowledged."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(root), str(round_), *SESSIONS],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline() == "ready\n"
    time.sleep(rng.uniform(0.02, 0.2))
    child.send_signal(signal.SIGKILL)
    out, _ = child.communicate()
    assert child.returncode == -signal.SIGKILL
    acked = []
    for line in out.splitlines(keepends=True):
        if line.endswith("\n"):  # a line cut short was never fully acknowledged
            index, seq, content = line.split()
            acked.append((int(index), int(seq), content))
    return acked


def test_acknowledged_records_survive_kill_9_in_order_exactly_once(tmp_path: Path) -> None:
    root = tmp_path / "store"
    rng = random.Random(9)
    acked: dict[int, list[tuple[int, str]]] = {i: [] for i in range(len(SESSIONS))}
    for round_ in range(ROUNDS):
        for index, seq, content in run_and_kill(root, round_, rng):
            acked[index].append((seq, content))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RecoveryWarning)  # torn tails are expected here
            with Journal(root) as journal:
                for index, sid in enumerate(SESSIONS):
                    records = list(journal.read(sid))
                    assert [r.seq for r in records] == list(range(1, len(records) + 1))
                    assert {r.kind for r in records} <= {"message", "seal"}
                    on_disk = {r.seq: r.data["content"] for r in records if r.kind == "message"}
                    seqs = [seq for seq, _ in acked[index]]
                    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), round_
                    for seq, content in acked[index]:
                        assert on_disk.get(seq) == content, (round_, sid, seq)
                    found = list(on_disk.values())
                    assert len(found) == len(set(found)), round_  # nothing written twice
                    assert journal.verify(sid).ok
    assert all(acked.values())
    assert any(len(segment_paths(journal.session_path(sid))) > 1 for sid in SESSIONS)  # rolls happened
