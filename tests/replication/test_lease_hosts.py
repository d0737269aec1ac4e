"""One writer per session across hosts: `Journal(root, replica=URL, lease=True)` in processes
of their own, on roots of their own, over a bucket on moto's S3 server and a file:// replica."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from lease_helpers import Host, ReplicaFactory

from journal import Journal
from journal.log import naming
from journal.replication.lease import LeaseHeldError, LeaseLostError, read_lease
from journal.replication.leasing import LeaseBehindError
from journal.replication.runs import encode_run, line_checksum, run_key
from journal.replication.source import LocalLog


def restored(replica: ReplicaFactory, root: Path, session_id: str) -> list[Any]:
    """The session's messages as a restore on a fresh root gives them."""
    with Journal(root) as j:
        j.restore(replica.url, [session_id], replica_options=replica.options or None)
        return [r.data["content"] for r in j.read(session_id) if r.kind == "message"]


def records(root: Path, session_id: str) -> list[tuple[int, float, str, Any]]:
    with Journal(root, read_only=True) as j:
        return [(r.seq, r.ts, r.kind, r.data) for r in j.read(session_id)]


def test_two_hosts_racing_for_a_session_one_wins_and_nothing_is_lost(
    replica: ReplicaFactory, tmp_path: Path
) -> None:
    a, b = Host(tmp_path / "a", replica, lease=True), Host(tmp_path / "b", replica, lease=True)
    try:
        a.post("append", session="raced", text="a1")  # both at once: one create-only put wins
        b.post("append", session="raced", text="b1")
        replies = {"a": a.call_raw(), "b": b.call_raw()}
        winners = [name for name, reply in replies.items() if "ok" in reply]
        assert len(winners) == 1, replies
        (loser_name,) = set(replies) - set(winners)
        winner, loser = (a, b) if winners == ["a"] else (b, a)
        refused = replies[loser_name]
        assert refused["error"] == "LeaseHeldError" and "leased by" in refused["message"]
        assert winner.call("append", session="raced", text=f"{winners[0]}2") == 2
        loser.post("take", session="raced", wait=60)  # waits for the winner's release
        winner.call("handoff", session="raced")
        assert loser.call_raw()["ok"] == 2  # the second epoch
        assert loser.call("append", session="raced", text=f"{loser_name}3") == 3
        assert winner.send("append", session="raced", text="late")["error"] == "LeaseHeldError"
        loser.stop()
        assert restored(replica, tmp_path / "c", "raced") == [
            f"{winners[0]}1",
            f"{winners[0]}2",
            f"{loser_name}3",
        ]
    finally:
        a.kill(), b.kill()


def test_an_expired_lease_is_taken_over_and_the_stalled_holder_is_refused(
    replica: ReplicaFactory, tmp_path: Path
) -> None:
    a = Host(tmp_path / "a", replica, lease=True, lease_ttl=1.0, replica_interval=3600)
    try:
        for i in range(3):
            a.call("append", session="s", text=f"a{i + 1}")
        a.call("sync")
        os.kill(a.process.pid, signal.SIGSTOP)  # a stalled host: no renewals, no uploads
        with Journal(
            tmp_path / "b", replica=replica.url, replica_options=replica.options or None, lease=True
        ) as b:
            with pytest.raises(LeaseHeldError):
                b.append("s", {"role": "user", "content": "too early"})
            assert b.take("s", wait=30) == 2  # once it expired
            assert b.append("s", {"role": "user", "content": "b4"}) == 4
            os.kill(a.process.pid, signal.SIGCONT)
            refused = a.send("append", session="s", text="a4")
            assert refused["error"] == "LeaseLostError"
        a.stop()
        assert restored(replica, tmp_path / "c", "s") == ["a1", "a2", "a3", "b4"]
        assert [r[3]["content"] for r in records(tmp_path / "a", "s")] == ["a1", "a2", "a3"]  # never written
    finally:
        os.kill(a.process.pid, signal.SIGCONT) if a.process.poll() is None else None
        a.kill()


def test_a_stalled_writers_late_upload_is_fenced_out_of_a_restore(
    replica: ReplicaFactory, tmp_path: Path
) -> None:
    """The old holder wrote records 3..4 and its upload of them lands after the takeover: a
    restore ignores them (the new epoch starts at 3), in the chain or beyond it."""
    options = {"replica_options": replica.options or None}
    with Journal(tmp_path / "a", replica=replica.url, lease=True, lease_ttl=0.5, **options) as a:
        a.append_many("s", [{"role": "user", "content": "a1"}, {"role": "user", "content": "a2"}])
        a.sync_replica()
        a._gate.leases.close(release=False)  # type: ignore[attr-defined]  # stalled: no renewal
        a.replicator.stop(final_pass=False)  # type: ignore[union-attr]
        a.append("s", {"role": "user", "content": "a3"})
        a.append("s", {"role": "user", "content": "a4"})
        time.sleep(0.6)
        # What its upload in flight would put: records 3..4 under its epoch (1), chained on 2.
        log = LocalLog(a.fs, a.session_path("s"), a.options.max_record_bytes)
        late = run_key(naming.encode_id("s"), 3, 1)
        raw, prev = log.read_from(3, 1 << 20, False), line_checksum(log.line_at(2) or b"")
        with Journal(tmp_path / "b", replica=replica.url, lease=True, **options) as b:
            assert b.take("s") == 2
            replica.store().put_new(late, encode_run("s", 3, 1, prev, raw))
            assert restored(replica, tmp_path / "c", "s") == ["a1", "a2"]
            assert b.append("s", {"role": "user", "content": "b3"}) == 3
            b.sync_replica()
        assert restored(replica, tmp_path / "d", "s") == ["a1", "a2", "b3"]
        lease = read_lease(replica.store(), "s")
        assert lease is not None and lease[0].epochs == ((1, 1), (2, 3))


def test_handoff_moves_a_session_with_every_record(replica: ReplicaFactory, tmp_path: Path) -> None:
    a = Host(tmp_path / "a", replica, lease=True, replica_interval=3600)
    try:
        for i in range(5):
            a.call("append", session="moved", text=f"m{i}")
        assert a.call("handoff", session="moved") == 5
        options = {"replica_options": replica.options or None}
        with Journal(tmp_path / "b", replica=replica.url, lease=True, **options) as b:
            assert b.take("moved") == 2
            assert records(tmp_path / "b", "moved") == records(tmp_path / "a", "moved")
            assert b.append("moved", {"role": "user", "content": "on b"}) == 6
            assert a.send("append", session="moved", text="x")["error"] == "LeaseHeldError"
            b.handoff("moved")
        assert a.call("take", session="moved") == 3  # and back: a catches up first
        assert a.call("append", session="moved", text="back on a") == 7
        a.stop()
        contents = [r[3]["content"] for r in records(tmp_path / "a", "moved") if r[2] == "message"]
        assert contents == ["m0", "m1", "m2", "m3", "m4", "on b", "back on a"]
    finally:
        a.kill()


def test_a_host_behind_the_replica_must_take_before_writing(replica: ReplicaFactory, tmp_path: Path) -> None:
    options = {"replica_options": replica.options or None}
    with Journal(tmp_path / "a", replica=replica.url, lease=True, **options) as a:
        a.append("s", {"role": "user", "content": "one"})
        a.handoff("s")
        with Journal(tmp_path / "b", replica=replica.url, lease=True, **options) as b:
            with pytest.raises(LeaseBehindError, match="through seq 0, the replica through 1"):
                b.append("s", {"role": "user", "content": "forked"})
            assert not b.exists("s")
            b.take("s")
            assert b.append("s", {"role": "user", "content": "two"}) == 2


def test_lease_lost_is_raised_before_acknowledging(replica: ReplicaFactory, tmp_path: Path) -> None:
    options = {"replica_options": replica.options or None}
    with Journal(tmp_path / "a", replica=replica.url, lease=True, lease_ttl=0.5, **options) as a:
        assert a.append("s", {"role": "user", "content": "one"}) == 1
        a._gate.leases.close(release=False)  # type: ignore[attr-defined]  # no more renewals
        time.sleep(0.5)
        with pytest.raises(LeaseLostError, match="expired before it could be renewed"):
            a.append("s", {"role": "user", "content": "two"})
        with pytest.raises(LeaseLostError):
            a.append("s", {"role": "user", "content": "three"})
