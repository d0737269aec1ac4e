"""Helpers of the lease, handoff and synchronous-mode tests: a replica to use (file:// or a
bucket on the moto server), and `Journal` processes on separate roots ("hosts")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Protocol

from journal.replication.objects import ObjectStore

REPO = Path(__file__).resolve().parents[2]


class ReplicaFactory(Protocol):
    """The `replica` fixture's value (conftest.py): one test's replica."""

    url: str
    options: dict[str, Any]
    env: dict[str, str]
    kind: str

    def store(self) -> ObjectStore: ...


# -- "hosts": Journal processes on roots of their own -------------------------------------------

# A host that runs commands one by one: one JSON line in, one JSON line out, so a test can
# stop (SIGSTOP), resume and kill it between any two.
DRIVER = r"""
import json, sys
from journal import Journal
spec = json.loads(sys.argv[1])
journal = Journal(spec["root"], **spec["options"])
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    command = json.loads(line)
    try:
        op = command["op"]
        if op == "append":
            result = journal.append(command["session"], {"role": "user", "content": command["text"]})
        elif op == "sync":
            result = journal.sync_replica()
        elif op == "handoff":
            result = journal.handoff(command["session"])
        elif op == "take":
            result = journal.take(command["session"], wait=command.get("wait"))
        elif op == "close":
            journal.close()
            result = None
        else:
            raise ValueError(op)
        print(json.dumps({"ok": result}), flush=True)
    except Exception as exc:
        print(json.dumps({"error": type(exc).__name__, "message": str(exc)}), flush=True)
"""


class Host:
    """A `Journal` in a process of its own, on a root of its own: one "host"."""

    def __init__(self, root: Path, replica: ReplicaFactory, **options: Any) -> None:
        spec = {"root": str(root), "options": {"replica": replica.url, **options}}
        if replica.options:
            spec["options"]["replica_options"] = replica.options
        self.process = subprocess.Popen(
            [sys.executable, "-c", DRIVER, json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        assert self.call_raw() == {"ready": True}

    def call_raw(self) -> Any:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise AssertionError(f"host exited with {self.process.wait()}")
        return json.loads(line)

    def post(self, op: str, **fields: Any) -> None:
        """Start one command; `call_raw()` reads its reply."""
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"op": op, **fields}) + "\n")
        self.process.stdin.flush()

    def send(self, op: str, **fields: Any) -> Any:
        """Run one command; its result, or {"error": class name, "message": ...}."""
        self.post(op, **fields)
        return self.call_raw()

    def call(self, op: str, **fields: Any) -> Any:
        """Run one command that must succeed; its result."""
        reply = self.send(op, **fields)
        assert "ok" in reply, reply
        return reply["ok"]

    def stop(self) -> None:
        """Close the Journal (sync, release) and end the process."""
        if self.process.poll() is None:
            self.send("close")
            assert self.process.stdin is not None
            self.process.stdin.close()
            self.process.wait(timeout=60)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()
