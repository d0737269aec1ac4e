"""Fixtures of the replication tests: moto's S3 server on loopback, and a replica per test
(a directory through `file://`, or a new bucket on that server), so every behaviour test runs
against both backends with the real client library (obstore).

`s3_endpoint` (session-scoped) starts `python -m moto.server` on a free 127.0.0.1 port, waits
until it answers, and terminates it at the end. `replica` gives each test its own empty
replica: `.url`, `.options` (what `Journal(replica_options=...)` takes), `.env` (the standard
AWS_* variables a subprocess reads instead), `.store()`.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from journal.replication.objects import ObjectStore
from journal.replication.stores import open_store

_START_SECONDS = 30.0


@dataclass
class Replica:
    """One test's replica: its URL, the options that reach it, the environment a process
    needs to reach it without options."""

    url: str
    options: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    kind: str = "file"

    def store(self) -> ObjectStore:
        return open_store(self.url, self.options or None)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on loopback, for the whole session: its endpoint URL."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + _START_SECONDS
    try:
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto's server did not start") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def new_bucket(endpoint: str, prefix: str = "bucket") -> str:
    import boto3

    name = f"{prefix}-{secrets.token_hex(6)}"
    client = boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1"
    )
    client.create_bucket(Bucket=name)
    return name


def s3_replica(endpoint: str) -> Replica:
    """A new, empty bucket on the server at `endpoint`, under a prefix."""
    bucket = new_bucket(endpoint)
    options = {"endpoint": endpoint, "access_key_id": "x", "secret_access_key": "x", "region": "us-east-1"}
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_REGION": "us-east-1",
    }
    return Replica(f"s3://{bucket}/replica", options, env, "s3")


def file_replica(tmp_path: Path) -> Replica:
    return Replica(f"file://{tmp_path / 'bucket'}")


@pytest.fixture(params=["file", "s3"])
def replica(request: pytest.FixtureRequest, tmp_path: Path) -> Replica:
    """An empty replica of each kind in turn."""
    if request.param == "file":
        return file_replica(tmp_path)
    return s3_replica(request.getfixturevalue("s3_endpoint"))


def subprocess_env(replica: Replica) -> dict[str, str]:
    """The environment of a child process that opens `replica` without options."""
    repo = str(Path(__file__).resolve().parents[2])
    return {**os.environ, **replica.env, "PYTHONPATH": repo}
