"""Benchmark of replication to object storage (issue #15), against moto's S3 server on
loopback (and a `file://` replica, side by side).

Usage: python tools/bench_replication.py [--seconds 20] [--rate 1000] [--sessions 100]
                                         [--restore-mb 100] [--dir DIR]

1. Lag: `--rate` appends/s in total, paced, spread at random over `--sessions` sessions by 4
   writer threads (durability "batch"), for `--seconds`, on a `Journal(replica=...)` with the
   default interval (1 s) and with 0.25 s. For every acknowledged record, lag = the time its
   run object's create-only put returned (the replicator's `on_shipped`) - the time its append
   returned. p50/p99/max in seconds, with the number of objects and PUTs/s.
2. Restore: a store of about `--restore-mb` MB of messages (20 sessions, ~1 KB each) is
   replicated, then restored into an empty directory; MB/s = bytes of record lines restored /
   seconds (download, checks, fsynced writes, included). Medians of 3 runs.

Prints one table; the figures of one run on this machine are in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from journal import Journal

CREDENTIALS = {"access_key_id": "x", "secret_access_key": "x", "region": "us-east-1"}


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(600):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return server, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    server.terminate()
    raise RuntimeError("moto's server did not start")


def new_bucket(endpoint: str, name: str) -> tuple[str, dict[str, Any]]:
    import boto3

    boto3.client("s3", endpoint_url=endpoint, **_boto(CREDENTIALS)).create_bucket(Bucket=name)
    return f"s3://{name}/bench", {"endpoint": endpoint, **CREDENTIALS}


def _boto(creds: dict[str, str]) -> dict[str, str]:
    return {
        "aws_access_key_id": creds["access_key_id"],
        "aws_secret_access_key": creds["secret_access_key"],
        "region_name": creds["region"],
    }


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure_lag(
    root: str, url: str, options: dict[str, Any] | None, args: argparse.Namespace, interval: float
) -> dict[str, float]:
    acked: dict[tuple[str, int], float] = {}
    shipped: list[tuple[str, int, int, float]] = []
    names = [f"session-{i:03d}" for i in range(args.sessions)]
    with Journal(root, replica=url, replica_options=options, replica_interval=interval) as j:
        assert j.replicator is not None
        j.replicator.on_shipped = lambda sid, first, last: shipped.append((sid, first, last, time.time()))
        start = time.monotonic() + 0.2
        threads = 4
        per_thread = args.rate / threads
        lock = threading.Lock()

        def write(k: int) -> None:
            rng = random.Random(k)
            n = 0
            while True:
                due = start + n / per_thread
                if due > start + args.seconds:
                    return
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                sid = rng.choice(names)
                seq = j.append(sid, {"role": "user", "content": "m" * rng.randint(100, 400)})
                now = time.time()
                with lock:
                    acked[(sid, seq)] = now
                n += 1

        workers = [threading.Thread(target=write, args=(k,)) for k in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        elapsed = time.monotonic() - start
        j.sync_replica(timeout=120)
    when: dict[tuple[str, int], float] = {}
    for sid, first, last, at in shipped:
        for seq in range(first, last + 1):
            when.setdefault((sid, seq), at)
    lags = [when[key] - t for key, t in acked.items()]
    return {
        "rate": len(acked) / elapsed,
        "p50": pct(lags, 0.50),
        "p99": pct(lags, 0.99),
        "max": max(lags),
        "objects": len(shipped),
        "puts_per_s": len(shipped) / elapsed,
    }


def build_restore_store(root: str, url: str, options: dict[str, Any] | None, mb: int) -> int:
    text = " ".join(
        random.Random(1).choice(["agent", "tool", "data", "reply", "the", "query"]) for _ in range(170)
    )
    per_session = mb * 1024 * 1024 // (20 * 1100)
    with Journal(root, replica=url, replica_options=options, replica_interval=3600, durability="none") as j:
        for s in range(20):
            for start in range(0, per_session, 500):
                j.append_many(
                    f"big-{s:02d}",
                    [
                        {"role": "user", "content": f"{start + i} {text}"}
                        for i in range(min(500, per_session - start))
                    ],
                )
        j.sync_replica(timeout=600)
    return sum(
        os.path.getsize(os.path.join(dp, f))
        for dp, _, fs in os.walk(root)
        for f in fs
        if f.endswith(".jsonl")
    )


def measure_restore(base: str, url: str, options: dict[str, Any] | None, reps: int = 3) -> float:
    rates = []
    for rep in range(reps):
        target = os.path.join(base, f"restored-{rep}")
        with Journal(target) as j:
            begin = time.perf_counter()
            report = j.restore(url, replica_options=options)
            seconds = time.perf_counter() - begin
        rates.append(sum(s.bytes for s in report.sessions) / seconds / 1e6)
        shutil.rmtree(target)
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--restore-mb", type=int, default=100)
    parser.add_argument("--dir", default=None)
    args = parser.parse_args()
    base = tempfile.mkdtemp(prefix="bench-replication-", dir=args.dir)
    server, endpoint = start_moto()
    try:
        print(
            f"moto S3 server at {endpoint}; {args.rate:.0f} appends/s over {args.sessions} sessions, "
            f"{args.seconds:.0f} s each"
        )
        print(
            f"{'replica':8} {'interval':>8} {'appends/s':>9} {'p50 s':>7} {'p99 s':>7} {'max s':>7}"
            f" {'objects':>8} {'PUT/s':>6}"
        )
        for interval in (1.0, 0.25):
            for kind in ("s3", "file"):
                if kind == "s3":
                    url, options = new_bucket(endpoint, f"lag-{int(interval * 100)}")
                else:
                    url, options = f"file://{base}/bucket-lag-{int(interval * 100)}", None
                r = measure_lag(os.path.join(base, f"lag-{kind}-{interval}"), url, options, args, interval)
                print(
                    f"{kind:8} {interval:8.2f} {r['rate']:9.0f} {r['p50']:7.3f} {r['p99']:7.3f}"
                    f" {r['max']:7.3f} {r['objects']:8d} {r['puts_per_s']:6.0f}"
                )
        print(f"\nrestore of about {args.restore_mb} MB (20 sessions), median of 3:")
        for kind in ("s3", "file"):
            if kind == "s3":
                url, options = new_bucket(endpoint, "restore")
            else:
                url, options = f"file://{base}/bucket-restore", None
            size = build_restore_store(
                os.path.join(base, f"restore-src-{kind}"), url, options, args.restore_mb
            )
            rate = measure_restore(base, url, options)
            print(f"{kind:8} {size / 1e6:7.1f} MB of log  restore {rate:7.1f} MB/s")
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
