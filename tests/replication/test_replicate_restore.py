"""Replicate a store, restore it on a fresh directory, compare every record: for a directory
replica and for a bucket on moto's S3 server alike (the `replica` fixture runs both)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import zstandard
from conftest import Replica

from journal import Journal
from journal.errors import UnsupportedFormatError
from journal.log.record import decode, encode
from journal.replication.objects import (
    ObjectStore,
    ReplicaConflictError,
    ReplicaCorruptionError,
    ReplicaError,
    RestoreConflictError,
)
from journal.replication.runs import list_runs

QUIET = 3600.0  # a replica interval that never fires during a test: passes run on sync_replica


def records(j: Journal, session_id: str) -> list[tuple[Any, ...]]:
    return [(r.seq, r.ts, r.kind, r.data, r.more) for r in j.read(session_id)]


def writer(root: Path, replica: Replica, **kw: Any) -> Journal:
    return Journal(
        root, replica=replica.url, replica_options=replica.options or None, replica_interval=QUIET, **kw
    )


def fill(j: Journal) -> None:
    """A bit of every record kind, batches, segment rolls and a compaction in the middle."""
    for i in range(40):
        j.append("chat", {"role": "user" if i % 2 else "assistant", "content": f"message {i} " + "x" * 60})
    j.append_many("chat", [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}])
    j.update_metadata("chat", {"agent_name": "Bot", "title": "t"})
    j.compact("chat")
    j.append_batch("chat", [("message", {"role": "assistant", "content": "It is", "metadata": {}}, 5.0)])
    j.replace_messages("chat", [{"role": "user", "content": "fresh start"}])
    seq = j.append("chat", {"role": "assistant", "content": "wrong"})
    j.append_batch("chat", [("pop", {"of": seq}, None)])
    j.append_many("user/42 chat", [{"role": "user", "content": "ünïcode"}] * 5)
    j.clear("user/42 chat")
    j.append("third", {"role": "user", "content": None, "tool_calls": [{"id": "1"}]})
    j.append("third", {"kind": "seal", "role": "user", "content": "a payload that looks like a seal"})


def test_a_restored_store_is_record_for_record_the_source(tmp_path: Path, replica: Replica) -> None:
    with writer(tmp_path / "a", replica, segment_bytes=1500) as source:
        fill(source)
        source.sync_replica(timeout=30)
        expected = {sid: records(source, sid) for sid in source.sessions()}
        states = {sid: source.state(sid) for sid in source.sessions()}
    with Journal(tmp_path / "b") as restored:
        report = restored.restore(replica.url, replica_options=replica.options or None)
        assert sorted(s.session_id for s in report.sessions) == sorted(expected)
        for sid, recs in expected.items():
            assert records(restored, sid) == recs
            state = restored.state(sid)
            assert state is not None and state.messages == states[sid].messages  # type: ignore[union-attr]
            assert state.metadata == states[sid].metadata  # type: ignore[union-attr]
            assert restored.verify(sid).ok


def test_views_after_compaction_are_the_sources(tmp_path: Path, replica: Replica) -> None:
    with writer(tmp_path / "a", replica, segment_bytes=1500) as source:
        fill(source)
        source.compact("chat")
        source.sync_replica(timeout=30)
    with Journal(tmp_path / "b") as restored:
        restored.restore(replica.url, ["chat"], replica_options=replica.options or None)
        restored.compact("chat")
    for name in ("messages.json", "metadata.json", "session_id.json"):
        assert (tmp_path / "b" / "chat" / name).read_bytes() == (tmp_path / "a" / "chat" / name).read_bytes()


def test_records_a_compaction_folded_before_shipping_are_shipped_from_the_archives(
    tmp_path: Path, replica: Replica
) -> None:
    with writer(tmp_path / "a", replica, segment_bytes=1000) as source:
        for i in range(30):
            source.append("s", {"role": "user", "content": f"{i}" * 50})
        source.sync_replica(timeout=30)  # half shipped from the live log
        for i in range(30):
            source.append("s", {"role": "user", "content": f"later {i}" * 20})
        source.compact("s")  # the rest folded into archives before it was shipped
        assert len(list((tmp_path / "a" / "s" / "log").iterdir())) == 1
        source.append("s", {"role": "user", "content": "after the compaction"})
        source.sync_replica(timeout=30)
        expected = records(source, "s")
    with Journal(tmp_path / "b") as restored:
        restored.restore(replica.url, replica_options=replica.options or None)
        assert records(restored, "s") == expected


def test_restore_never_writes_over_a_session_the_store_has(tmp_path: Path, replica: Replica) -> None:
    with writer(tmp_path / "a", replica) as source:
        source.append("s1", {"role": "user", "content": "from the source"})
        source.append("s2", {"role": "user", "content": "from the source"})
        source.sync_replica(timeout=30)
    with Journal(tmp_path / "b") as target:
        target.append("s2", {"role": "user", "content": "local"})
        with pytest.raises(RestoreConflictError, match="exists"):
            target.restore(replica.url, replica_options=replica.options or None)
        assert [r.data["content"] for r in target.read("s2")] == ["local"]
        assert not target.exists("s1")  # checked for every session before anything is written


def test_point_in_time_restore_cuts_at_a_whole_batch(tmp_path: Path, replica: Replica) -> None:
    with writer(tmp_path / "a", replica) as source:
        for i in range(10):  # ts 1000..1009, seq 1..10
            source.append_batch("s", [("message", {"role": "user", "content": str(i)}, 1000.0 + i)])
        source.append_batch(
            "s", [("message", {"role": "user", "content": f"b{i}"}, 1010.0 + i) for i in range(3)]
        )
        source.append_batch("s", [("meta", {"k": 1}, 1020.0)])  # seq 14
        source.sync_replica(timeout=30)
        everything = records(source, "s")
    cases: list[tuple[dict[str, Any], int]] = [
        ({"to_time": 1004.5}, 5),  # the last record with ts <= 1004.5 is seq 5
        ({"to_time": 1011.0}, 10),  # the batch 11-13 reaches 1012: it is left out whole
        ({"to_seq": 12}, 10),  # seq 12 is inside the batch: cut back before it
        ({"to_seq": 13}, 13),
        ({"to_seq": 14, "to_time": 2000.0}, 14),
    ]
    for n, (point, last) in enumerate(cases):
        with Journal(tmp_path / f"b{n}") as restored:
            report = restored.restore(replica.url, replica_options=replica.options or None, **point)
            assert report.sessions[0].last_seq == last
            assert records(restored, "s") == everything[:last]
            restored.append("s", {"role": "user", "content": "goes on"})  # a normal session
            assert [r.seq for r in restored.read("s")][-1] == last + 1


def test_a_dry_run_checks_everything_and_writes_nothing(tmp_path: Path, replica: Replica) -> None:
    with writer(tmp_path / "a", replica) as source:
        source.append_many("s", [{"role": "user", "content": "x"}] * 4)
        source.sync_replica(timeout=30)
    with Journal(tmp_path / "b") as target:
        report = target.restore(replica.url, dry_run=True, replica_options=replica.options or None)
        assert report.dry_run and [(s.session_id, s.last_seq, s.records) for s in report.sessions] == [
            ("s", 4, 4)
        ]
        assert list(target.sessions()) == []


def _rewrite(store: ObjectStore, key: str, blob: bytes) -> None:
    store.delete(key)
    store.put_new(key, blob)


def test_a_checksum_mismatch_on_download_is_refused(tmp_path: Path, replica: Replica) -> None:
    with writer(tmp_path / "a", replica) as source:
        source.append_many("s", [{"role": "user", "content": "the true text"}] * 3)
        source.sync_replica(timeout=30)
    store = replica.store()
    key = list_runs(store, "s")[0].key
    good = store.get(key)[0]
    content = zstandard.ZstdDecompressor().decompress(good)
    header, lines = content.split(b"\n", 1)
    # A line changed into another valid record of the same length (its own checksum right):
    # only the object's checksum of its lines tells it is not what was uploaded.
    other = decode(lines.split(b"\n")[1])
    forged = encode(
        other.seq, other.ts, other.kind, orjson.dumps({**other.data, "content": "the TRUE text"}), 1
    )
    original = lines.split(b"\n")[1] + b"\n"
    assert len(forged) == len(original)
    bad = zstandard.ZstdCompressor().compress(header + b"\n" + lines.replace(original, forged))
    _rewrite(store, key, bad)
    with Journal(tmp_path / "b") as target:
        with pytest.raises(ReplicaCorruptionError, match="checksum mismatch"):
            target.restore(replica.url, replica_options=replica.options or None)
        assert not target.exists("s")
    # One byte of a line changed: its own checksum no longer matches either.
    _rewrite(store, key, zstandard.ZstdCompressor().compress(content.replace(b"true", b"TRUE", 1)))
    with Journal(tmp_path / "b") as target, pytest.raises(ReplicaCorruptionError):
        target.restore(replica.url, replica_options=replica.options or None)
    _rewrite(store, key, good[:-9] + bytes(9))  # the compressed bytes damaged
    with Journal(tmp_path / "c") as target:
        with pytest.raises(ReplicaCorruptionError):
            target.restore(replica.url, replica_options=replica.options or None)
        assert list((tmp_path / "c").iterdir()) == []  # not even a temp directory is left


def test_an_object_of_an_unknown_format_is_refused(tmp_path: Path, replica: Replica) -> None:
    with writer(tmp_path / "a", replica) as source:
        source.append("s", {"role": "user", "content": "x"})
        source.sync_replica(timeout=30)
    store = replica.store()
    key = list_runs(store, "s")[0].key
    content = zstandard.ZstdDecompressor().decompress(store.get(key)[0])
    _rewrite(
        store, key, zstandard.ZstdCompressor().compress(content.replace(b'"format":1', b'"format":3', 1))
    )
    with Journal(tmp_path / "b") as target, pytest.raises(UnsupportedFormatError):
        target.restore(replica.url, replica_options=replica.options or None)


def test_an_upload_cut_short_is_never_accepted(tmp_path: Path, replica: Replica) -> None:
    with writer(tmp_path / "a", replica) as source:
        source.append_many("s", [{"role": "user", "content": "whole"}] * 3)
        source.sync_replica(timeout=30)
    store = replica.store()
    key = list_runs(store, "s")[0].key
    blob = store.get(key)[0]
    # An interrupted upload as a restore could meet it: a partial object under the next name
    # (a file:// temp and an unfinished multipart upload are not even listed: see
    # test_objectstores and test_an_unfinished_multipart_upload_is_invisible).
    store.put_new(key.replace("00000000000000000001.e", "00000000000000000004.e"), blob[: len(blob) // 2])
    with Journal(tmp_path / "b") as target, pytest.raises(ReplicaCorruptionError):
        target.restore(replica.url, replica_options=replica.options or None)


def test_an_unfinished_multipart_upload_is_invisible(tmp_path: Path, s3_endpoint: str) -> None:
    import boto3
    from conftest import s3_replica

    replica = s3_replica(s3_endpoint)
    bucket = replica.url.split("/")[2]
    with writer(tmp_path / "a", replica) as source:
        source.append_many("s", [{"role": "user", "content": "whole"}] * 3)
        source.sync_replica(timeout=30)
        source.append("s", {"role": "user", "content": "the fourth"})
        client = boto3.client(
            "s3",
            endpoint_url=s3_endpoint,
            aws_access_key_id="x",
            aws_secret_access_key="x",
            region_name="us-east-1",
        )
        key = "replica/sessions/s/log/00000000000000000004.e0000000000.jsonl.zst"
        upload = client.create_multipart_upload(Bucket=bucket, Key=key)
        client.upload_part(
            Bucket=bucket, Key=key, PartNumber=1, UploadId=upload["UploadId"], Body=b"\x28\xb5" * 100
        )
        with Journal(tmp_path / "b") as target:  # the put never completed: no such object
            assert target.restore(replica.url, replica_options=replica.options).sessions[0].last_seq == 3
        source.sync_replica(timeout=30)  # and the name is free for the real upload
    with Journal(tmp_path / "c") as target:
        assert target.restore(replica.url, replica_options=replica.options).sessions[0].last_seq == 4


def test_a_torn_tail_on_disk_is_never_shipped(tmp_path: Path, replica: Replica) -> None:
    with writer(tmp_path / "a", replica) as source:
        source.append_many("s", [{"role": "user", "content": "whole"}] * 3)
        segment = tmp_path / "a" / "s" / "log" / "00000000000000000001.jsonl"
        # What a writer killed mid-batch leaves (in the page cache, before anyone cut it): the
        # first record of a batch of two, then half a line.
        first = encode(4, 1.0, "message", b'{"role":"user","content":"half"}', more=1)
        with open(segment, "r+b") as f:  # where the data ends, over the preallocated zeros
            f.seek(len(segment.read_bytes().rstrip(b"\0")))
            f.write(first + first[:20])
        source.sync_replica(timeout=30)
        assert source.replica_status()["s"].replicated_seq == 3
    with Journal(tmp_path / "b") as target:
        target.restore(replica.url, replica_options=replica.options or None)
        assert [r.seq for r in target.read("s")] == [1, 2, 3]


# The writers that lost warn, when closed, that their session was not replicated.
@pytest.mark.filterwarnings("ignore::journal.errors.RecoveryWarning")
def test_two_writers_of_one_session_get_a_conflict_not_an_overwrite(tmp_path: Path, replica: Replica) -> None:
    with writer(tmp_path / "a", replica) as a, writer(tmp_path / "b", replica) as b:
        a.append_many("s", [{"role": "user", "content": "from a"}] * 3)
        b.append_many("s", [{"role": "user", "content": "from b"}] * 2)
        assert b.replica_status()["s"].replicated_seq == 0  # b has read the empty bucket
        a.sync_replica(timeout=30)
        store = replica.store()
        before = {i.key: store.get(i.key)[0] for i in store.list("")}
        with pytest.raises(ReplicaConflictError, match="another writer"):
            b.sync_replica(timeout=30)  # its put collides with a's object
        with writer(tmp_path / "c", replica) as c:  # a third, starting late: the history differs
            c.append_many("s", [{"role": "user", "content": "from c"}] * 5)
            with pytest.raises(ReplicaConflictError):
                c.sync_replica(timeout=30)
            assert "ReplicaConflictError" in (c.replica_status()["s"].error or "")
        assert {i.key: store.get(i.key)[0] for i in store.list("")} == before
    with Journal(tmp_path / "d") as restored:
        restored.restore(replica.url, replica_options=replica.options or None)
        assert [r.data["content"] for r in restored.read("s")] == ["from a"] * 3


class LostResponses:
    """A store whose puts succeed but whose first answers never arrive (a timeout after the
    object was written): the replicator must retry without a false conflict."""

    def __init__(self, store: ObjectStore, lose: int) -> None:
        self.inner, self.lose, self.url = store, lose, store.url

    def put_new(self, key: str, data: bytes) -> str:
        etag = self.inner.put_new(key, data)
        if self.lose:
            self.lose -= 1
            raise ReplicaError(self.url, "connection reset before the answer")
        return etag

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_retried_upload_of_the_same_lines_is_harmless(tmp_path: Path, replica: Replica) -> None:
    from journal.replication.replicator import Replicator

    with Journal(tmp_path / "a") as source:
        source.append_many("s", [{"role": "user", "content": "x"}] * 3)
        replicator = Replicator(source, LostResponses(replica.store(), lose=1))
        replicator.sync(timeout=30)  # the lost answer, then ObjectExists with the same lines
        source.append("s", {"role": "user", "content": "y"})
        replicator.sync(timeout=30)
        assert replicator.remote_head("s") == 4
        expected = records(source, "s")
    with Journal(tmp_path / "b") as restored:
        restored.restore(replica.url, replica_options=replica.options or None)
        assert records(restored, "s") == expected


def test_status_reports_how_far_the_replica_is_behind(tmp_path: Path, replica: Replica) -> None:
    with writer(tmp_path / "a", replica) as source:
        source.append("s", {"role": "user", "content": "x"})
        source.sync_replica(timeout=30)
        source.append_batch("s", [("message", {"role": "user", "content": "y"}, 1.0)])
        status = source.replica_status()["s"]
        assert (status.local_seq, status.replicated_seq, status.error) == (2, 1, None)
        assert status.behind_seconds > 0
        source.sync_replica(timeout=30)
        status = source.replica_status()["s"]
        assert (status.local_seq, status.replicated_seq, status.behind_seconds) == (2, 2, 0.0)
        assert status.to_dict()["replicated_seq"] == 2


def test_a_journal_without_a_replica_says_so(tmp_path: Path) -> None:
    with Journal(tmp_path / "a") as j:
        with pytest.raises(ReplicaError, match="no replica"):
            j.sync_replica()
        with pytest.raises(ValueError):
            Journal(tmp_path / "b", replica_options={"region": "x"})


def test_the_background_thread_ships_without_a_sync(tmp_path: Path, replica: Replica) -> None:
    import time

    with Journal(
        tmp_path / "a", replica=replica.url, replica_options=replica.options or None, replica_interval=0.05
    ) as source:
        source.append("s", {"role": "user", "content": "x"})
        deadline = time.monotonic() + 30
        while not list_runs(replica.store(), "s") and time.monotonic() < deadline:
            time.sleep(0.05)
    assert list_runs(replica.store(), "s")


def test_close_ships_what_is_left(tmp_path: Path, replica: Replica) -> None:
    with writer(tmp_path / "a", replica) as source:
        source.append_many("s", [{"role": "user", "content": "x"}] * 2)
    with Journal(tmp_path / "b") as target:
        assert target.restore(replica.url, replica_options=replica.options or None).sessions[0].last_seq == 2


def test_a_restarted_writer_continues_the_replica(tmp_path: Path, replica: Replica) -> None:
    for round_ in range(3):
        with writer(tmp_path / "a", replica) as source:
            source.append("s", {"role": "user", "content": f"round {round_}"})
            source.sync_replica(timeout=30)
            expected = records(source, "s")
    with Journal(tmp_path / "b") as target:
        target.restore(replica.url, replica_options=replica.options or None)
        assert records(target, "s") == expected


def test_a_session_deleted_and_created_again_is_another_history(tmp_path: Path, replica: Replica) -> None:
    with writer(tmp_path / "a", replica) as source:
        source.append_many("s", [{"role": "user", "content": "old"}] * 3)
        source.sync_replica(timeout=30)
        source.delete("s")
        source.append_many("s", [{"role": "user", "content": "new"}] * 5)
        with pytest.raises(ReplicaConflictError):
            source.sync_replica(timeout=30)
        source.delete("s")  # (so that closing has nothing to warn about)
    with Journal(tmp_path / "b") as target:
        target.restore(replica.url, replica_options=replica.options or None)
        assert [r.data["content"] for r in target.read("s")] == ["old"] * 3
