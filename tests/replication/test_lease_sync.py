"""The synchronous mode (`Journal(root, replica=URL, replica_sync=True)`): an append is
acknowledged only once the bucket holds it, and concurrent appends share uploads."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from lease_helpers import REPO, ReplicaFactory

from journal import Journal
from journal.log import naming
from journal.replication import chain
from journal.replication.lease import lease_fence
from journal.replication.synchronous import SyncGate

WRITER = r"""
import json, sys, threading
from journal import Journal
url, options = sys.argv[1], json.loads(sys.argv[2])
journal = Journal(sys.argv[3], replica=url, replica_options=options or None, replica_sync=True,
                  replica_interval=3600, durability="none")
printing = threading.Lock()

def write(name):
    for i in range(10_000):
        seq = journal.append("s", {"role": "user", "content": f"{name}-{i}"})
        with printing:
            print(seq, flush=True)

for name in "abc":
    threading.Thread(target=write, args=(name,), daemon=True).start()
threading.Event().wait()
"""


def test_a_killed_host_loses_no_acknowledged_append(replica: ReplicaFactory, tmp_path: Path) -> None:
    """Three threads append with the replicator's own passes an hour apart; the process is
    killed right after an acknowledgement; a restore elsewhere holds every acknowledged seq."""
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, replica.url, json.dumps(replica.options), str(tmp_path / "a")],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert writer.stdout is not None
    acknowledged = []
    try:
        while len(acknowledged) < 30:
            acknowledged.append(int(writer.stdout.readline()))
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
    with Journal(tmp_path / "b") as j:
        j.restore(replica.url, ["s"], replica_options=replica.options or None)
        restored = {r.seq for r in j.read("s")}
    assert set(acknowledged) <= restored


def test_each_acknowledged_append_is_in_the_bucket_when_append_returns(
    replica: ReplicaFactory, tmp_path: Path
) -> None:
    options = {"replica_options": replica.options or None, "replica_interval": 3600.0}
    store = replica.store()
    with Journal(tmp_path / "a", replica=replica.url, replica_sync=True, **options) as j:
        for i in range(5):
            seq = j.append("s", {"role": "user", "content": f"m{i}"})
            assert chain.head(store, naming.encode_id("s"), "s", lease_fence(store))[0] == seq
        [seq] = j.append_many("s", [{"role": "user", "content": "batch"}])
        assert chain.head(store, "s", "s")[0] == seq == 6


def test_synchronous_mode_with_a_lease_uploads_under_its_epoch(
    replica: ReplicaFactory, tmp_path: Path
) -> None:
    options = {"replica_options": replica.options or None, "replica_interval": 3600.0}
    store = replica.store()
    with Journal(tmp_path / "a", replica=replica.url, replica_sync=True, lease=True, **options) as j:
        assert j.append("s", {"role": "user", "content": "one"}) == 1
        assert [key.rsplit("/", 1)[1] for key in (i.key for i in store.list("sessions/"))] == [
            "00000000000000000001.e0000000001.jsonl.zst"
        ]


def test_appends_waiting_for_an_upload_share_the_next_one() -> None:
    """While one upload is in flight, seven more appends arrive: one more upload covers all of
    them, whatever the order in which their threads run."""
    written, calls, release = [1], [], threading.Event()

    def upload(session_id: str) -> int:
        ships = written[0]  # everything written when the upload starts
        calls.append(ships)
        if len(calls) == 1:
            release.wait()
        return ships

    gate = SyncGate(upload, "test://")
    first = threading.Thread(target=gate.wait, args=("s", 1))
    first.start()
    while not calls:
        threading.Event().wait(0.001)
    waiters = []
    for seq in range(2, 9):
        written[0] = seq
        waiters.append(threading.Thread(target=gate.wait, args=("s", seq)))
        waiters[-1].start()
    release.set()
    for thread in [first, *waiters]:
        thread.join()
    assert calls == [1, 8]


def test_a_failed_upload_is_not_acknowledged_and_the_next_append_tries_again() -> None:
    outcomes = iter([OSError("bucket down"), 2])

    def upload(session_id: str) -> int:
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    gate = SyncGate(upload, "test://")
    with pytest.raises(OSError, match="bucket down"):
        gate.wait("s", 1)
    gate.wait("s", 2)
