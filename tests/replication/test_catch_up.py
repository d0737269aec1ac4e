"""Catch-up: a local copy behind the replica is brought up to it in place (`Journal.restore(...,
catch_up=True)`, `journal restore --catch-up`, `Journal.take`), byte for byte; a forked copy is
refused and left untouched; one ahead is left alone; a copy killed half way through is valid
and a rerun finishes it. Every test runs against a file:// replica and a bucket on moto."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

import pytest
from conftest import Replica, subprocess_env

from journal import Journal
from journal.errors import RecoveryWarning
from journal.log.raw_append import RawAppendError, append_lines
from journal.log.record import encode
from journal.log.session import SessionLog
from journal.replication.restore import CatchUpForkError
from journal.replication.source import LocalLog

QUIET = 3600.0  # the replicator never fires on its own: passes run on sync_replica
SID = "user/7 chat"


def source(root: Path, replica: Replica, **kw: Any) -> Journal:
    opts = replica.options or None
    return Journal(root, replica=replica.url, replica_options=opts, replica_interval=QUIET, **kw)


def grow(j: Journal, start: int, count: int) -> None:
    """`count` more records in a few shapes: singles, a batch, metadata; synced as one run each."""
    for i in range(start, start + count):
        if i % 3 == 0:
            j.append_many(
                SID, [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]
            )
        elif i % 3 == 1:
            j.update_metadata(SID, {"turn": i})
        else:
            j.append(SID, {"role": "tool", "content": "x" * 90, "tool_call_id": str(i)})
        j.sync_replica(timeout=30)


def lines(root: Path) -> bytes:
    """Every record line of the session, byte for byte, from seq 1 (archives included)."""
    with Journal(root, read_only=True) as j:
        return LocalLog(j.fs, j.session_path(SID), j.options.max_record_bytes).read_from(1, 1 << 26, False)


def session_dir(root: Path) -> Path:
    return root / "user%2F7%20chat"


def files(root: Path) -> dict[str, bytes]:
    """Every file under `root` and its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def restore(root: Path, replica: Replica, **kw: Any) -> list[Any]:
    with Journal(root) as j:
        report = j.restore(replica.url, [SID], replica_options=replica.options or None, **kw)
        return [vars(done) for done in report.sessions]


def test_a_copy_behind_is_caught_up_in_place_byte_for_byte(tmp_path: Path, replica: Replica) -> None:
    with source(tmp_path / "a", replica, segment_bytes=700) as a:
        grow(a, 0, 4)
        restore(tmp_path / "b", replica)
        inode = session_dir(tmp_path / "b").stat().st_ino
        grow(a, 4, 9)  # segment rolls (seals) on the way
        a.compact(SID)  # the source folds its log: the replica still holds every record line
        grow(a, 13, 2)
    with Journal(tmp_path / "b") as b:
        before = b.state(SID)
        assert before is not None
        report = b.restore(replica.url, [SID], replica_options=replica.options or None, catch_up=True)
        (done,) = report.sessions
        assert done.action == "caught-up" and done.records > 0
        after = b.state(SID)  # the handle cached before the catch-up follows it
        assert after is not None and after.last_seq == done.last_seq > before.last_seq
        assert b.verify(SID).ok
        assert b.append(SID, {"role": "user", "content": "b goes on"}) == done.last_seq + 1
    assert session_dir(tmp_path / "b").stat().st_ino == inode  # appended to, not replaced
    assert lines(tmp_path / "b").startswith(lines(tmp_path / "a"))
    assert len(lines(tmp_path / "b").splitlines()) == len(lines(tmp_path / "a").splitlines()) + 1
    assert restore(tmp_path / "b", replica, catch_up=True)[0]["action"] == "ahead"


def test_current_and_ahead_copies_are_left_alone(tmp_path: Path, replica: Replica) -> None:
    with source(tmp_path / "a", replica) as a:
        grow(a, 0, 3)
    restore(tmp_path / "b", replica)
    untouched = files(tmp_path / "b")
    assert restore(tmp_path / "b", replica, catch_up=True)[0]["action"] == "current"
    with Journal(tmp_path / "b") as b:
        b.append(SID, {"role": "user", "content": "only here"})
    untouched = files(tmp_path / "b")
    assert restore(tmp_path / "b", replica, catch_up=True)[0]["action"] == "ahead"
    assert files(tmp_path / "b") == untouched


@pytest.mark.parametrize("shape", ["same-length", "longer", "shorter", "compacted"])
def test_a_forked_copy_is_refused_and_left_untouched(tmp_path: Path, replica: Replica, shape: str) -> None:
    with source(tmp_path / "a", replica) as a:
        grow(a, 0, 3)
        restore(tmp_path / "b", replica)
        with Journal(tmp_path / "b") as b:  # the copy writes on its own: a fork
            if shape == "compacted":  # compaction seals the active segment: a record of its own
                b.compact(SID)
            for i in range({"same-length": 1, "longer": 3, "shorter": 1, "compacted": 0}[shape]):
                b.append(SID, {"role": "user", "content": f"fork {i}"})
        a.append_many(SID, [{"role": "user", "content": "main"}] * (4 if shape == "shorter" else 1))
        a.sync_replica(timeout=30)
    untouched = files(tmp_path / "b")
    with pytest.raises(CatchUpForkError) as caught:
        restore(tmp_path / "b", replica, catch_up=True)
    assert caught.value.path == str(session_dir(tmp_path / "b"))
    assert files(tmp_path / "b") == untouched


def test_without_catch_up_restore_still_refuses_an_existing_session(tmp_path: Path, replica: Replica) -> None:
    with source(tmp_path / "a", replica) as a:
        grow(a, 0, 2)
    restore(tmp_path / "b", replica)
    with pytest.raises(CatchUpForkError.__mro__[1]):  # RestoreConflictError, not its fork subclass
        restore(tmp_path / "b", replica)


def test_raw_lines_that_do_not_continue_the_log_are_refused_before_writing(tmp_path: Path) -> None:
    with Journal(tmp_path) as j:
        j.append_many("s", [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])
        log = SessionLog(j.fs, j.session_path("s"), "s", j.options)
        assert log.open(create=False)
        try:
            good = encode(3, 1.0, "message", b'{"role":"user","content":"c"}')
            damaged = good.replace(b'"c"', b'"d"')  # checksum no longer matches
            cases = {
                "gap": encode(4, 1.0, "message", b"{}"),
                "replay": encode(2, 1.0, "message", b"{}"),
                "checksum": damaged,
                "half batch": encode(3, 1.0, "message", b"{}", more=1),
                "after a seal": encode(3, 1.0, "seal", b"{}") + good.replace(b'"seq":3', b'"seq":4'),
            }
            for name, raw in cases.items():
                with pytest.raises(RawAppendError):
                    append_lines(log, raw)
                assert [r.seq for r in j.read("s")] == [1, 2], name
            assert append_lines(log, good) == 3
        finally:
            log.close()
        assert [r.data["content"] for r in j.read("s")] == ["a", "b", "c"]


def test_take_catches_the_copy_up_in_place(tmp_path: Path, replica: Replica) -> None:
    opts: dict[str, Any] = {"replica_options": replica.options or None}
    with Journal(tmp_path / "a", replica=replica.url, lease=True, **opts) as a:
        for i in range(3):
            a.append(SID, {"role": "user", "content": f"m{i}"})
        a.handoff(SID)
        restore(tmp_path / "b", replica)  # b's older copy
        inode = session_dir(tmp_path / "b").stat().st_ino
        a.take(SID)
        for i in range(3, 6):
            a.append(SID, {"role": "user", "content": f"m{i}"})
        a.handoff(SID)
    with Journal(tmp_path / "b", replica=replica.url, lease=True, **opts) as b:
        b.take(SID)
        assert [r.data["content"] for r in b.read(SID) if r.kind == "message"] == [f"m{i}" for i in range(6)]
        assert session_dir(tmp_path / "b").stat().st_ino == inode  # not deleted and restored
    assert lines(tmp_path / "b") == lines(tmp_path / "a")


def test_the_cli_catches_up_and_reports_json(tmp_path: Path, replica: Replica) -> None:
    with source(tmp_path / "a", replica) as a:
        grow(a, 0, 2)
        restore(tmp_path / "b", replica)
        grow(a, 2, 3)
    cmd = [sys.executable, "-m", "journal", "--dir", str(tmp_path / "b"), "restore", replica.url, SID]
    refused = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=subprocess_env(replica))
    assert refused.returncode != 0
    untouched = files(tmp_path / "b")
    dry = subprocess.run(
        [*cmd, "--catch-up", "--dry-run"],
        capture_output=True,
        text=True,
        timeout=60,
        env=subprocess_env(replica),
    )
    assert dry.returncode == 0 and "would catch up" in dry.stdout, dry.stderr
    assert files(tmp_path / "b") == untouched
    done = subprocess.run(
        [*cmd, "--catch-up", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=subprocess_env(replica),
    )
    assert done.returncode == 0, done.stderr
    (session,) = json.loads(done.stdout)["sessions"]
    assert session["action"] == "caught-up" and session["session_id"] == SID
    assert lines(tmp_path / "b") == lines(tmp_path / "a")


_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from journal import Journal
    from journal.replication import catchup

    root, url, sid = sys.argv[1:4]
    kill_at, torn = int(sys.argv[4]), sys.argv[5] == "torn"
    real, calls = catchup.append_lines, [0]

    def dying(log, raw):
        calls[0] += 1
        if calls[0] < kill_at:
            return real(log, raw)
        if not torn:  # killed between two pieces: the one before is whole and fsynced
            os.kill(os.getpid(), signal.SIGKILL)
        append, pwrite = log.fs.append, log.fs.pwrite

        def half(fd, data):  # killed in the middle of writing this piece's lines
            append(fd, data[: len(data) // 2])
            os.kill(os.getpid(), signal.SIGKILL)

        def half_at(fd, data, offset):  # the same, into a preallocated segment
            pwrite(fd, data[: len(data) // 2], offset)
            os.kill(os.getpid(), signal.SIGKILL)

        log.fs.append, log.fs.pwrite = half, half_at
        return real(log, raw)

    catchup.append_lines = dying
    with Journal(root) as j:
        j.restore(url, [sid], catch_up=True)
    sys.exit(3)  # never reached: the kill comes first
    """
)


@pytest.mark.parametrize("how", ["torn", "between"])
def test_a_catch_up_killed_half_way_leaves_a_valid_prefix_and_a_rerun_finishes(
    tmp_path: Path, replica: Replica, how: str
) -> None:
    with source(tmp_path / "a", replica, segment_bytes=900) as a:
        grow(a, 0, 2)
        restore(tmp_path / "b", replica)
        grow(a, 2, 8)  # one run per sync: the catch-up appends them piece by piece
    start = lines(tmp_path / "b")
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, str(tmp_path / "b"), replica.url, SID, "3", how],
        capture_output=True,
        text=True,
        timeout=60,
        env=subprocess_env(replica),
    )
    assert child.returncode == -9, child.stderr
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with Journal(tmp_path / "b") as b:
            assert b.state(SID) is not None  # opening it cuts a torn tail (quarantined)
            assert b.verify(SID).ok
    torn_cut = [w for w in seen if issubclass(w.category, RecoveryWarning) and "torn tail" in str(w.message)]
    assert len(torn_cut) == (1 if how == "torn" else 0)
    partial, full = lines(tmp_path / "b"), lines(tmp_path / "a")
    assert full.startswith(partial) and len(start) < len(partial) < len(full)  # two whole pieces in
    assert restore(tmp_path / "b", replica, catch_up=True)[0]["action"] == "caught-up"
    assert lines(tmp_path / "b") == full
