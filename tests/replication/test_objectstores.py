"""The `ObjectStore` contract, the same for a directory (`file://`) and a bucket (moto's S3
server through obstore): create-only puts, compare-and-swap puts, get, list, delete."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Replica, new_bucket

from journal.replication.filestore import FileStore
from journal.replication.objects import ObjectExists, ObjectMissing, PreconditionFailed, ReplicaError
from journal.replication.stores import open_store


def test_a_create_only_put_never_replaces_an_object(replica: Replica) -> None:
    store = replica.store()
    store.put_new("a/b.bin", b"first")
    with pytest.raises(ObjectExists):
        store.put_new("a/b.bin", b"second")
    assert store.get("a/b.bin")[0] == b"first"


def test_a_compare_and_swap_put_needs_the_current_etag(replica: Replica) -> None:
    store = replica.store()
    etag = store.put_if("lease.json", b"v1", None)
    with pytest.raises(PreconditionFailed):
        store.put_if("lease.json", b"v2", None)  # exists already
    with pytest.raises(PreconditionFailed):
        store.put_if("lease.json", b"v2", "not-the-etag")
    assert store.get("lease.json") == (b"v1", etag)
    newer = store.put_if("lease.json", b"v2", etag)
    assert store.get("lease.json") == (b"v2", newer)
    with pytest.raises(PreconditionFailed):
        store.put_if("lease.json", b"v3", etag)  # the old etag no longer holds
    with pytest.raises(PreconditionFailed):
        store.put_if("missing.json", b"v1", etag)


def test_get_list_head_and_delete(replica: Replica) -> None:
    store = replica.store()
    for key in ("s/x/log/2", "s/x/log/1", "s/xy/log/1", "t/1"):
        store.put_new(key, key.encode())
    assert [i.key for i in store.list("s/x/")] == ["s/x/log/1", "s/x/log/2"]
    assert [i.key for i in store.list("s/x")] == ["s/x/log/1", "s/x/log/2", "s/xy/log/1"]
    assert [i.key for i in store.list("")] == ["s/x/log/1", "s/x/log/2", "s/xy/log/1", "t/1"]
    info = store.head("t/1")
    assert info is not None and info.size == 3 and info.etag == store.get("t/1")[1]
    assert store.head("t/2") is None
    with pytest.raises(ObjectMissing):
        store.get("t/2")
    store.delete("t/1")
    store.delete("t/1")  # gone already: fine
    assert store.head("t/1") is None


def test_a_file_store_never_shows_an_interrupted_put(tmp_path: Path) -> None:
    store = FileStore(str(tmp_path / "bucket"))
    store.put_new("s/log/1", b"whole object")
    # What a put killed before its link leaves: a temp with part of the bytes.
    (tmp_path / "bucket" / "s" / "log" / "2.tmp-4242-0a0b0c0d").write_bytes(b"half")
    assert [i.key for i in store.list("s/")] == ["s/log/1"]
    with pytest.raises(ObjectMissing):
        store.get("s/log/2")
    store.put_new("s/log/2", b"now whole")  # the name is free
    assert store.get("s/log/2")[0] == b"now whole"


def test_a_file_store_refuses_keys_outside_its_directory(tmp_path: Path) -> None:
    store = FileStore(str(tmp_path / "bucket"))
    for key in ("../escape", "a/../../b", ".hidden", "a//b", "x.tmp-1-2"):
        with pytest.raises(ReplicaError, match="not a valid object key"):
            store.put_new(key, b"x")
    assert not (tmp_path / "escape").exists()


def test_open_store_refuses_unknown_urls(tmp_path: Path) -> None:
    for url in ("ftp://host/x", "file://host/dir", "bucket/prefix"):
        with pytest.raises(ReplicaError):
            open_store(url)
    with pytest.raises(ReplicaError, match="takes no options"):
        open_store(f"file://{tmp_path}", {"region": "x"})


def test_s3_credentials_and_endpoint_come_from_the_aws_environment(
    s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = new_bucket(s3_endpoint)
    for name, value in {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    store = open_store(f"s3://{bucket}/p")
    store.put_new("k", b"v")
    assert store.get("k")[0] == b"v"
    with pytest.raises(ObjectExists):
        store.put_new("k", b"w")


def test_importing_journal_loads_no_object_store_client() -> None:
    code = (
        "import json, sys, journal, journal.replication.stores, journal.replication.facade\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('obstore', 'moto', 'boto3'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []


def test_the_file_store_etag_is_the_xxh3_of_the_bytes(tmp_path: Path) -> None:
    import xxhash

    store = FileStore(str(tmp_path / "b"))
    assert store.put_new("k", b"abc") == xxhash.xxh3_64_hexdigest(b"abc")
    assert os.listdir(tmp_path / "b") == ["k"]  # no temp left behind
