"""Append latency in the synchronous replication mode, side by side with the asynchronous one,
against moto's S3 server on loopback (and a file:// replica), in one run.

    .venv/bin/python tools/bench_replication_sync.py [--appends 300] [--threads 1,8]

For each replica and thread count it appends small messages to one session with
`Journal(root, replica=URL)` (asynchronous: acknowledged once in the local log, shipped every
second) and with `replica_sync=True` (acknowledged once the bucket holds it; concurrent appends
share uploads), and prints the median and p99 latency of an append in ms, appends per second,
and the objects uploaded (fewer than appends: uploads were shared).
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from journal import Journal

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for the moto start it shares
from bench_replication import start_moto


def s3_replica(endpoint: str) -> tuple[str, dict[str, Any]]:
    import boto3

    bucket = f"bench-{secrets.token_hex(6)}"
    boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1"
    ).create_bucket(Bucket=bucket)
    options = {"endpoint": endpoint, "access_key_id": "x", "secret_access_key": "x", "region": "us-east-1"}
    return f"s3://{bucket}/bench", options


def run(url: str, options: dict[str, Any] | None, sync: bool, threads: int, appends: int) -> dict[str, Any]:
    """Latencies (s) of `appends` appends split over `threads` threads, and the objects made."""
    latencies: list[float] = []
    lock = threading.Lock()
    with tempfile.TemporaryDirectory() as root:
        journal = Journal(root, replica=url, replica_options=options, replica_sync=sync)
        store = journal.replicator.store  # type: ignore[union-attr]
        before = len(store.list("sessions/"))
        start = threading.Barrier(threads + 1)

        def worker(n: int) -> None:
            mine = []
            start.wait()
            for i in range(appends // threads):
                t0 = time.perf_counter()
                journal.append("bench", {"role": "user", "content": f"message {n}-{i} " + "x" * 200})
                mine.append(time.perf_counter() - t0)
            with lock:
                latencies.extend(mine)

        pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
        for thread in pool:
            thread.start()
        t0 = time.perf_counter()
        start.wait()
        for thread in pool:
            thread.join()
        elapsed = time.perf_counter() - t0
        journal.close()  # the asynchronous mode's last pass ships what is left
        objects = len(store.list("sessions/")) - before
    latencies.sort()
    return {
        "median_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "per_s": len(latencies) / elapsed,
        "objects": objects,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appends", type=int, default=300)
    parser.add_argument("--threads", default="1,8")
    args = parser.parse_args()
    server, endpoint = start_moto()
    try:
        with tempfile.TemporaryDirectory() as directory:
            replicas = {"s3 (moto)": s3_replica(endpoint), "file://": (f"file://{Path(directory)}", None)}
            print(
                f"{'replica':<10} {'threads':>7} {'mode':<6} {'median ms':>10} {'p99 ms':>8} "
                f"{'appends/s':>10} {'objects':>8}"
            )
            for name, (url, options) in replicas.items():
                for threads in map(int, args.threads.split(",")):
                    for sync in (False, True):
                        url_here = f"{url}/{secrets.token_hex(4)}"  # a new, empty replica
                        r = run(url_here, options, sync, threads, args.appends)
                        mode = "sync" if sync else "async"
                        print(
                            f"{name:<10} {threads:>7} {mode:<6} {r['median_ms']:>10.2f} {r['p99_ms']:>8.2f} "
                            f"{r['per_s']:>10.0f} {r['objects']:>8}",
                            flush=True,
                        )
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
