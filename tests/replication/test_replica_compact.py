"""Retention in the bucket (`replication.compact`, FORMAT.md "Replicas" > "Retention"): small
runs merged, superseded objects deleted only after the grace, late uploads that resurrect
nothing, an interrupted pass, readers that listed before the deletes. Each test runs against
a directory replica and a bucket on moto's S3 server (the `replica` fixture)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import Replica, subprocess_env

from journal import Journal
from journal.errors import UnsupportedFormatError
from journal.log.record import encode
from journal.replication.chain import pieces
from journal.replication.compact import compact_replica
from journal.replication.lease import LeaseRecord, lease_fence, lease_key
from journal.replication.lease import encode as encode_lease
from journal.replication.objects import ObjectStore, ReplicaCorruptionError
from journal.replication.runs import RunRef, decode_run, encode_run, list_runs, merged_key, run_key

QUIET = 3600.0  # a replica interval that never fires: runs are shipped on sync_replica
LATER = 8 * 86400.0  # past the default grace of 7 days


def records(j: Journal, session_id: str) -> list[tuple[Any, ...]]:
    return [(r.seq, r.ts, r.kind, r.data, r.more) for r in j.read(session_id)]


def writer(root: Path, replica: Replica, **kw: Any) -> Journal:
    return Journal(
        root, replica=replica.url, replica_options=replica.options or None, replica_interval=QUIET, **kw
    )


def ship_small_runs(j: Journal, session_id: str, runs: int, start: int = 0) -> None:
    """`runs` runs of the session in the replica, one per sync (a batch in some of them)."""
    for i in range(start, start + runs):
        if i % 3:
            j.append(session_id, {"role": "user", "content": f"message {i} " + "x" * 40})
        else:
            j.append_many(
                session_id, [{"role": "user", "content": f"a {i}"}, {"role": "assistant", "content": "b"}]
            )
        j.sync_replica(timeout=30)


def restored(tmp_path: Path, replica: Replica, name: str, session_id: str) -> list[tuple[Any, ...]]:
    with Journal(tmp_path / name) as target:
        target.restore(replica.url, [session_id], replica_options=replica.options or None)
        assert target.verify(session_id).ok
        return records(target, session_id)


def keys(store: ObjectStore, dir_name: str = "s") -> list[str]:
    return [ref.key.rpartition("/")[2] for ref in list_runs(store, dir_name)]


def history(store: ObjectStore, session_id: str = "s") -> bytes:
    """The session's lines as a restore reads them: the chain, through the lease fence."""
    return b"".join(p.lines() for p in pieces(store, session_id, session_id, lease_fence(store)))


def test_small_runs_merge_into_one_and_restore_the_same_history(tmp_path: Path, replica: Replica) -> None:
    with writer(tmp_path / "a", replica) as source:
        ship_small_runs(source, "s", 10)
        expected = records(source, "s")
    store = replica.store()
    assert len(list_runs(store, "s")) == 10
    report = compact_replica(store, keep_days=0)
    [done] = report.sessions
    last = expected[-1][0]
    assert done.merged == [merged_key("s", 1, 0, last)]
    assert (done.objects_before, done.objects_after, len(done.deleted)) == (10, 1, 10)
    assert keys(store) == [f"{1:020d}.e{0:010d}.m{last:020d}.jsonl.zst"]
    assert restored(tmp_path, replica, "b", "s") == expected


def test_merged_runs_stay_under_the_target_size(tmp_path: Path, replica: Replica) -> None:
    with writer(tmp_path / "a", replica) as source:
        ship_small_runs(source, "s", 9)
        expected = records(source, "s")
    store = replica.store()
    sizes = [len(decode_run(r.key, store.get(r.key)[0]).raw) for r in list_runs(store, "s")]
    target = sum(sizes[:3])  # room for about three runs a merged run
    groups: list[int] = []  # consecutive runs packed up to the target, in order
    for size in sizes:
        if groups and groups[-1] + size <= target:
            groups[-1] += size
        else:
            groups.append(size)
    compact_replica(store, keep_days=0, target_bytes=target)
    after = list_runs(store, "s")
    assert 1 < len(after) == len(groups) < len(sizes)
    assert [len(decode_run(r.key, store.get(r.key)[0], r).raw) for r in after] == groups
    assert restored(tmp_path, replica, "b", "s") == expected


def test_nothing_is_deleted_before_keep_days_and_a_dry_run_writes_nothing(
    tmp_path: Path, replica: Replica
) -> None:
    with writer(tmp_path / "a", replica) as source:
        ship_small_runs(source, "s", 4)
    store = replica.store()
    before = keys(store)
    dry = compact_replica(store, keep_days=0, dry_run=True).sessions[0]
    assert keys(store) == before and len(dry.merged) == 1 and len(dry.deleted) == 4
    young = compact_replica(store).sessions[0]  # keep_days=7: merged now, nothing old enough
    assert (len(young.merged), young.deleted, young.waiting) == (1, [], 4)
    assert len(keys(store)) == 5
    old = compact_replica(store, now=time.time() + LATER).sessions[0]
    assert (old.merged, len(old.deleted), old.waiting, old.objects_after) == ([], 4, 0, 1)
    assert len(keys(store)) == 1


def test_the_writer_goes_on_after_its_runs_were_merged(tmp_path: Path, replica: Replica) -> None:
    with writer(tmp_path / "a", replica) as source:
        ship_small_runs(source, "s", 5)
        compact_replica(replica.store(), keep_days=0)
        ship_small_runs(source, "s", 2, start=5)  # the running replicator builds on the merged run
    with writer(tmp_path / "a", replica) as again:  # a new replicator learns the head again
        ship_small_runs(again, "s", 2, start=7)
        expected = records(again, "s")
    compact_replica(replica.store(), keep_days=0)
    assert restored(tmp_path, replica, "b", "s") == expected


def test_a_late_upload_of_the_same_epoch_resurrects_nothing(tmp_path: Path, replica: Replica) -> None:
    store = replica.store()
    with writer(tmp_path / "a", replica) as source:
        ship_small_runs(source, "s", 6)
        blobs = {ref.key: store.get(ref.key)[0] for ref in list_runs(store, "s")}
        compact_replica(store, keep_days=0)
        # A stalled replicator's retry of an upload whose answer it lost lands after the
        # merge deleted the object: the same bytes come back under the old name.
        late = sorted(blobs)[3]
        store.put_new(late, blobs[late])
    with writer(tmp_path / "a", replica) as again:  # its head is the merged run's end, not the late run's
        ship_small_runs(again, "s", 2, start=6)
        expected = records(again, "s")
    assert restored(tmp_path, replica, "b", "s") == expected
    done = compact_replica(replica.store(), keep_days=0).sessions[0]
    assert late in done.deleted  # superseded again
    assert restored(tmp_path, replica, "c", "s") == expected


def _lines(first: int, texts: list[str]) -> bytes:
    payloads = [orjson.dumps({"role": "user", "content": t}) for t in texts]
    return b"".join(encode(first + i, 1.7e9 + first + i, "message", p) for i, p in enumerate(payloads))


def _put_run(store: ObjectStore, first: int, epoch: int, prev: str, raw: bytes) -> None:
    store.put_new(run_key("s", first, epoch), encode_run("s", first, epoch, prev, raw))


def test_a_stalled_writer_of_an_old_epoch_is_fenced_before_and_after_compaction(
    tmp_path: Path, replica: Replica
) -> None:
    store = replica.store()
    with writer(tmp_path / "a", replica) as source:
        ship_small_runs(source, "s", 4)
        last = records(source, "s")[-1][0]
    # Another host took the session at seq last+1 under epoch 1 (lease history: epoch 0 up
    # to `last`), and shipped two runs; the old writer (epoch 0) uploads its own records late.
    lease = LeaseRecord("s", None, 1, 0.0, 0, ((1, last + 1),), "host-b:/srv")
    store.put_new(lease_key("s"), encode_lease(lease))
    tip = decode_run("k", store.get(list_runs(store, "s")[-1].key)[0]).last_checksum
    new = _lines(last + 1, ["b1", "b2"])
    _put_run(store, last + 1, 1, tip, new)
    more = _lines(last + 3, ["b3"])
    _put_run(store, last + 3, 1, decode_run("k", encode_run("s", last + 1, 1, tip, new)).last_checksum, more)
    _put_run(store, last + 1, 0, tip, _lines(last + 1, ["stale 1", "stale 2", "stale 3"]))
    expected = history(store)
    assert expected.endswith(new + more)
    done = compact_replica(store, keep_days=0).sessions[0]
    assert run_key("s", last + 1, 0) in done.deleted  # ruled out by the fence
    assert history(store) == expected
    _put_run(store, last + 4, 0, tip, _lines(last + 4, ["later still"]))  # after compaction
    assert history(store) == expected
    assert b'"stale' not in b"".join(_restored_lines(tmp_path, replica))


def _restored_lines(tmp_path: Path, replica: Replica) -> list[bytes]:
    with Journal(tmp_path / "restored") as target:
        target.restore(replica.url, ["s"], replica_options=replica.options or None)
        return [orjson.dumps(r.data) for r in target.read("s")]


class DiesAfterDeletes:
    """The bucket, with the compacting process killed after `allowed` deletes."""

    def __init__(self, store: ObjectStore, allowed: int) -> None:
        self.store, self.allowed, self.url = store, allowed, store.url

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def delete(self, key: str) -> None:
        if self.allowed == 0:
            raise KeyboardInterrupt("killed")
        self.allowed -= 1
        self.store.delete(key)


@pytest.mark.parametrize("allowed", [0, 2])
def test_an_interrupted_pass_leaves_a_readable_replica_and_the_next_finishes(
    tmp_path: Path, replica: Replica, allowed: int
) -> None:
    with writer(tmp_path / "a", replica) as source:
        ship_small_runs(source, "s", 5)
        expected = records(source, "s")
    store = replica.store()
    with pytest.raises(KeyboardInterrupt):
        compact_replica(DiesAfterDeletes(store, allowed), keep_days=0)  # type: ignore[arg-type]
    assert len(keys(store)) == 1 + 5 - allowed
    [merged] = [ref for ref in list_runs(store, "s") if ref.last]
    # The reader chooses the merged run over the small runs it covers, whatever is left.
    assert [p.key for p in pieces(store, "s", "s")] == [merged.key]
    assert restored(tmp_path, replica, "b", "s") == expected
    done = compact_replica(store, keep_days=0).sessions[0]
    assert (done.merged, len(done.deleted), done.objects_after) == ([], 5 - allowed, 1)
    assert restored(tmp_path, replica, "c", "s") == expected


def test_a_reader_that_listed_before_the_deletes_reads_the_whole_history(
    tmp_path: Path, replica: Replica
) -> None:
    with writer(tmp_path / "a", replica) as source:
        ship_small_runs(source, "s", 5)
    store = replica.store()
    before = history(store)
    walk = pieces(store, "s", "s", ahead=1)  # one download at a time: the deletes land between
    first = next(walk)
    compact_replica(store, keep_days=0)
    assert first.lines() + b"".join(p.lines() for p in walk) == before


def test_the_command_compacts_and_reports_json(tmp_path: Path, replica: Replica) -> None:
    with writer(tmp_path / "a", replica) as source:
        ship_small_runs(source, "s", 3)
        expected = records(source, "s")
    command = [sys.executable, "-m", "journal", "replica-compact", replica.url, "--keep-days", "0", "--json"]
    done = subprocess.run(command, env=subprocess_env(replica), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    [session] = json.loads(done.stdout)["sessions"]
    assert (session["session_id"], session["objects_before"], session["objects_after"]) == ("s", 3, 1)
    assert restored(tmp_path, replica, "b", "s") == expected


# -- the format of merged runs (pure) --------------------------------------------------------------


def test_a_merged_run_is_format_2_and_its_name_must_match() -> None:
    raw = _lines(1, ["a", "b", "c"])
    blob = encode_run("s", 1, 0, "", raw, merged=True)
    assert b'"format":2' in __import__("zstandard").ZstdDecompressor().decompress(blob)
    assert decode_run("k", blob, RunRef("k", 1, 0, 3)).raw == raw
    with pytest.raises(ReplicaCorruptionError):
        decode_run("k", blob, RunRef("k", 1, 0))  # a merged run under a shipped run's name
    with pytest.raises(ReplicaCorruptionError):
        decode_run("k", blob, RunRef("k", 1, 0, 2))  # the name's last seq is not the header's
    with pytest.raises(ReplicaCorruptionError):
        decode_run("k", encode_run("s", 1, 0, "", raw), RunRef("k", 1, 0, 3))
    shipped = encode_run("s", 1, 0, "", raw)  # format 1: what a replica of the old version holds
    assert decode_run("k", shipped, RunRef("k", 1, 0)).raw == raw
    zstd = __import__("zstandard")
    content = zstd.ZstdDecompressor().decompress(blob).replace(b'"format":2', b'"format":3', 1)
    with pytest.raises(UnsupportedFormatError):
        decode_run("k", zstd.ZstdCompressor().compress(content))
