"""Leases in a real bucket (moto's S3 server) and a file:// replica: one holder at a time,
expiry and takeover, renewal, release (FORMAT.md, "Replicas" > "Leases")."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from lease_helpers import ReplicaFactory

from journal.replication.lease import (
    LeaseHeldError,
    LeaseLostError,
    LeaseRecord,
    Leases,
    encode,
    lease_key,
    read_lease,
)


def first_seq(seq: int = 1):  # type: ignore[no-untyped-def]
    return lambda old: seq


def test_a_second_holder_is_refused_naming_the_holder_and_expiry(replica: ReplicaFactory) -> None:
    store = replica.store()
    a, b = Leases(store), Leases(store)
    try:
        taken = a.acquire("s1", first_seq())
        assert (taken.holder, taken.epoch, taken.epochs) == (a.holder, 1, ((1, 1),))
        with pytest.raises(LeaseHeldError) as refused:
            b.acquire("s1", first_seq())
        assert refused.value.holder == a.holder
        assert refused.value.expires_at == taken.expires_at
        assert a.holder in str(refused.value) and "leases/s1.json" in str(refused.value)
        assert a.check("s1") and not b.check("s1")
    finally:
        a.close(), b.close()


def test_a_released_lease_is_taken_with_the_next_epoch(replica: ReplicaFactory) -> None:
    store = replica.store()
    a, b = Leases(store), Leases(store)
    try:
        a.acquire("s1", first_seq())
        assert a.release("s1", synced_seq=7)
        record, _ = read_lease(store, "s1") or pytest.fail("no lease object")
        assert (record.holder, record.synced_seq, record.epoch) == (None, 7, 1)
        taken = b.acquire("s1", first_seq(8))
        assert (taken.holder, taken.epoch, taken.epochs, taken.synced_seq) == (
            b.holder,
            2,
            ((1, 1), (2, 8)),
            7,
        )
        assert b.epoch("s1") == 2 and a.epoch("s1") == 0
    finally:
        a.close(), b.close()


def test_a_waiting_acquire_gets_the_lease_when_the_holder_releases_it(replica: ReplicaFactory) -> None:
    store = replica.store()
    a, b = Leases(store), Leases(store, wait=30.0)
    got: list[LeaseRecord] = []
    try:
        a.acquire("s1", first_seq())
        waiter = threading.Thread(target=lambda: got.append(b.acquire("s1", first_seq())))
        waiter.start()
        time.sleep(0.3)  # the waiter is polling a live lease
        assert got == []
        a.release("s1")
        waiter.join()
        assert [r.epoch for r in got] == [2] and b.check("s1")
    finally:
        a.close(), b.close()


def test_an_expired_lease_is_taken_over_and_the_old_holder_is_refused(replica: ReplicaFactory) -> None:
    store = replica.store()
    a, b = Leases(store, ttl=0.5), Leases(store)
    try:
        a.acquire("s1", first_seq())
        a.close(release=False)  # a stalled host: no more renewals
        with pytest.raises(LeaseHeldError):
            b.acquire("s1", first_seq())
        time.sleep(0.6)
        taken = b.acquire("s1", first_seq(40))
        assert (taken.epoch, taken.epochs) == (2, ((1, 1), (2, 40)))
        with pytest.raises(LeaseLostError, match="expired before it could be renewed"):
            a.check("s1")
        assert not a.renew("s1") and not a.release("s1")
        assert read_lease(store, "s1")[0].holder == b.holder  # type: ignore[index]
    finally:
        a.close(), b.close()


def test_a_renewal_refused_by_the_bucket_loses_the_lease(replica: ReplicaFactory) -> None:
    store = replica.store()
    a = Leases(store)
    try:
        a.acquire("s1", first_seq())
        # Another host takes the lease (its clock ran ahead of this one's): a new ETag.
        _, etag = read_lease(store, "s1") or pytest.fail("no lease object")
        thief = LeaseRecord("s1", "other:1:00000000", 2, time.time() + 30, 0, ((1, 1), (2, 5)))
        store.put_if(lease_key("s1"), encode(thief), etag)
        assert a.check("s1")  # its trust lasts until the next renewal: no bucket call per append
        assert not a.renew("s1")
        with pytest.raises(LeaseLostError, match="another host took it"):
            a.check("s1")
        assert not a.release("s1")
        assert read_lease(store, "s1")[0] == thief  # type: ignore[index]
    finally:
        a.close()


def test_the_renewal_thread_keeps_a_lease_past_its_ttl(replica: ReplicaFactory) -> None:
    store = replica.store()
    a, b = Leases(store, ttl=0.9), Leases(store)
    try:
        first = a.acquire("s1", first_seq())
        time.sleep(1.2)  # past the TTL: renewed at 0.3, 0.6, 0.9 s
        assert a.check("s1")
        with pytest.raises(LeaseHeldError):
            b.acquire("s1", first_seq())
        renewed = read_lease(store, "s1")[0]  # type: ignore[index]
        assert renewed.epoch == 1 and renewed.expires_at > first.expires_at
    finally:
        a.close(), b.close()


RACER = """
import json, os, sys, time
from journal.replication.lease import LeaseHeldError, Leases
from journal.replication.stores import open_store
url, options, go = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
leases = Leases(open_store(url, options or None))
while not os.path.exists(go):
    time.sleep(0.001)
try:
    record = leases.acquire("raced", lambda old: 1)
    print(json.dumps({"won": record.epoch, "holder": leases.holder}))
except LeaseHeldError as exc:
    print(json.dumps({"held_by": exc.holder}))
leases.close(release=False)
"""


def test_processes_racing_for_one_lease_exactly_one_wins(replica: ReplicaFactory, tmp_path: Path) -> None:
    go = tmp_path / "go"
    args = [replica.url, json.dumps(replica.options), str(go)]
    racers = [
        subprocess.Popen([sys.executable, "-c", RACER, *args], stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    time.sleep(0.5)  # let them import and start polling
    go.touch()
    results = [json.loads(p.communicate(timeout=60)[0]) for p in racers]
    winners = [r for r in results if "won" in r]
    assert len(winners) == 1 and winners[0]["won"] == 1
    assert all(r["held_by"] == winners[0]["holder"] for r in results if r is not winners[0])
    record = read_lease(replica.store(), "raced")[0]  # type: ignore[index]
    assert record.holder == winners[0]["holder"]
