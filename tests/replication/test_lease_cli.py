"""`journal replicate`, `restore`, `status` and `handoff` through real subprocesses, against a
bucket on moto's S3 server (credentials and endpoint from `AWS_*`) and a file:// replica."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from lease_helpers import REPO, ReplicaFactory

from journal import Journal

JOURNAL = [sys.executable, "-m", "journal"]


def env_of(replica: ReplicaFactory, **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("JOURNAL_", "AWS_"))}
    return {**base, **replica.env, "PYTHONPATH": str(REPO), **extra}


def journal(replica: ReplicaFactory, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*JOURNAL, *args], capture_output=True, text=True, timeout=60, env=env_of(replica, **extra)
    )


def write(root: Path, session_id: str, texts: list[str], **options: Any) -> None:
    with Journal(root, **options) as j:
        for text in texts:
            j.append(session_id, {"role": "user", "content": text})


def contents(root: Path, session_id: str) -> list[Any]:
    with Journal(root, read_only=True) as j:
        return [r.data["content"] for r in j.read(session_id) if r.kind == "message"]


def replicated(replica: ReplicaFactory, root: Path, texts: dict[str, list[str]]) -> None:
    """Sessions written to `root` and synced to the replica."""
    with Journal(root, replica=replica.url, replica_options=replica.options or None) as j:
        for session_id, items in texts.items():
            for text in items:
                j.append(session_id, {"role": "user", "content": text})
        j.sync_replica()


def test_replicate_runs_until_stopped_then_syncs_once_more_and_exits_0(
    replica: ReplicaFactory, tmp_path: Path
) -> None:
    stop = signal.SIGINT if replica.kind == "file" else signal.SIGTERM  # Ctrl-C, and a service stop
    a = tmp_path / "a"
    write(a, "s1", ["one", "two"])
    server = subprocess.Popen(
        [*JOURNAL, "--dir", str(a), "replicate", replica.url, "--interval", "3600"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env_of(replica),
    )
    assert server.stdout is not None
    assert server.stdout.readline().startswith(f"replicating {a} to {replica.url}")
    write(a, "s1", ["three"])  # while it runs: its passes are an hour apart, the last one is not
    write(a, "s2", ["other"])
    server.send_signal(stop)
    out, err = server.communicate(timeout=60)
    assert server.returncode == 0, err
    assert "stopped" in out
    assert journal(replica, "--dir", str(tmp_path / "b"), "restore", replica.url).returncode == 0
    assert contents(tmp_path / "b", "s1") == ["one", "two", "three"]
    assert contents(tmp_path / "b", "s2") == ["other"]


def test_replicate_refuses_a_missing_store(replica: ReplicaFactory, tmp_path: Path) -> None:
    done = journal(replica, "--dir", str(tmp_path / "none"), "replicate", replica.url)
    assert done.returncode == 1 and "no store at" in done.stderr
    assert not (tmp_path / "none").exists()


def test_restore_dry_run_writes_nothing_then_restore_rebuilds_and_refuses_twice(
    replica: ReplicaFactory, tmp_path: Path
) -> None:
    replicated(replica, tmp_path / "a", {"s1": ["one", "two"], "s2": ["x"]})
    b = str(tmp_path / "b")
    dry = journal(replica, "--dir", b, "restore", replica.url, "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    report = json.loads(dry.stdout)
    assert report["dry_run"] is True
    assert {(s["session_id"], s["last_seq"], s["records"]) for s in report["sessions"]} == {
        ("s1", 2, 2),
        ("s2", 1, 1),
    }
    assert not Path(b).exists()
    done = journal(replica, "--dir", b, "restore", replica.url, "s1", "--to-seq", "1")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "restored s1 through seq 1 (1 records)\n"
    assert contents(Path(b), "s1") == ["one"]
    again = journal(replica, "--dir", b, "restore", replica.url, "s1")
    assert again.returncode == 1 and "exists in this store" in again.stderr
    assert contents(Path(b), "s1") == ["one"]


def test_restoring_everything_from_an_empty_replica_fails_in_one_line_and_creates_nothing(
    replica: ReplicaFactory, tmp_path: Path
) -> None:
    for extra in ([], ["--dry-run"], ["--json"]):
        done = journal(replica, "--dir", str(tmp_path / "b"), "restore", replica.url, *extra)
        assert done.returncode == 1, (extra, done.stdout)
        assert done.stderr.strip() == f"journal: error: no sessions in {replica.url}"
        assert not (tmp_path / "b").exists(), extra  # not even the store directory


def test_restore_to_a_time_keeps_what_was_written_by_then(replica: ReplicaFactory, tmp_path: Path) -> None:
    may_1 = 1714564800.0  # 2024-05-01T12:00:00Z
    with Journal(tmp_path / "a", replica=replica.url, replica_options=replica.options or None) as j:
        j.append_batch("s", [("message", {"role": "user", "content": "noon"}, may_1)])
        j.append_batch("s", [("message", {"role": "user", "content": "one pm"}, may_1 + 3600)])
        j.sync_replica()
    b = tmp_path / "b"
    done = journal(replica, "--dir", str(b), "restore", replica.url, "--to-time", "2024-05-01T12:30")
    assert done.returncode == 0, done.stderr
    assert contents(b, "s") == ["noon"]


def test_status_reports_how_far_the_replica_is_behind(replica: ReplicaFactory, tmp_path: Path) -> None:
    a = tmp_path / "a"
    replicated(replica, a, {"s1": ["one", "two"], "s2": ["x"]})
    write(a, "s1", ["three", "four"])  # not replicated
    done = journal(replica, "--dir", str(a), "status", "--json", JOURNAL_REPLICA=replica.url)
    assert done.returncode == 0, done.stderr
    rows = {row["session_id"]: row for row in map(json.loads, done.stdout.splitlines())}
    assert {sid: (r["local_seq"], r["replicated_seq"], r["behind_seqs"]) for sid, r in rows.items()} == {
        "s1": (4, 2, 2),
        "s2": (1, 1, 0),
    }
    assert rows["s1"]["behind_seconds"] > 0 and rows["s2"]["behind_seconds"] == 0
    assert rows["s1"]["lease_holder"] is None and rows["s1"]["error"] is None
    text = journal(replica, "--dir", str(a), "status", replica.url)
    assert text.returncode == 0 and text.stdout.splitlines()[0].split() == [
        "ID",
        "LOCAL",
        "REPLICA",
        "BEHIND",
        "SECONDS",
        "LEASE",
    ]
    missing = journal(replica, "--dir", str(a), "status")
    assert missing.returncode == 2 and "JOURNAL_REPLICA" in missing.stderr


def test_handoff_syncs_and_releases_and_is_refused_while_another_holds_the_lease(
    replica: ReplicaFactory, tmp_path: Path
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    options = {"replica": replica.url, "replica_options": replica.options or None, "replica_interval": 3600.0}
    with Journal(a, lease=True, **options) as holder:
        holder.append("s", {"role": "user", "content": "one"})
        refused = journal(replica, "--dir", str(a), "handoff", "s", replica.url)
        assert refused.returncode == 1 and "leased by" in refused.stderr
        holder.handoff("s")
    write(a, "s", ["two"])  # written here without a lease, never replicated yet
    done = journal(replica, "--dir", str(a), "handoff", "s", replica.url, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"session_id": "s", "synced_seq": 2}
    assert journal(replica, "--dir", str(b), "restore", replica.url, "s").returncode == 0
    assert contents(b, "s") == ["one", "two"]
    with Journal(b, lease=True, **options) as taker:
        assert taker.append("s", {"role": "user", "content": "three on b"}) == 3
