"""`journal tail -f` prints what other processes append, and Ctrl-C (or SIGTERM) ends it with 0."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
from pathlib import Path
from typing import IO

from cli_helpers import JOURNAL, environment, make_store, run


class Lines:
    """The lines a process prints on a pipe, read as they come."""

    def __init__(self, stream: IO[bytes] | None) -> None:
        assert stream is not None
        self.fd, self.buffer = stream.fileno(), b""

    def next(self, seconds: float = 30.0) -> str:
        """The next line; '' if none comes within `seconds` (a bound, not a timing assertion:
        it only stops a broken tail from hanging the suite)."""
        with selectors.DefaultSelector() as selector:
            selector.register(self.fd, selectors.EVENT_READ)
            while b"\n" not in self.buffer and selector.select(seconds):
                chunk = os.read(self.fd, 65536)
                if not chunk:
                    break
                self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode()


def test_tail_follows_appends_of_other_processes_until_interrupted(tmp_path: Path) -> None:
    make_store(tmp_path / "sessions", {"s": 3})
    followers = {
        stop: subprocess.Popen(
            [*JOURNAL, "tail", "-f", "-n", "2", "s", *extra],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=environment(),
        )
        for stop, extra in ((signal.SIGINT, ["--json"]), (signal.SIGTERM, []))
    }
    json_tail, text_tail = Lines(followers[signal.SIGINT].stdout), Lines(followers[signal.SIGTERM].stdout)
    first = [json.loads(json_tail.next()) for _ in range(2)]
    assert [(r["seq"], r["data"]["content"]) for r in first] == [(2, "s message 1"), (3, "s message 2")]
    assert text_tail.next().rstrip().endswith("assistant: s message 1")
    assert text_tail.next().rstrip().endswith("user: s message 2")

    assert run("append", "s", "assistant", "from another process", cwd=tmp_path).stdout == "4\n"
    new = json.loads(json_tail.next())
    assert (new["seq"], new["kind"], new["data"]) == (
        4,
        "message",
        {"role": "assistant", "content": "from another process"},
    )
    assert text_tail.next().rstrip().endswith("assistant: from another process")

    for stop, follower in followers.items():
        follower.send_signal(stop)
        out, err = follower.communicate(timeout=30)
        assert follower.returncode == 0 and out == b"" and err == b"", (stop, err)


def test_tail_without_follow_prints_the_last_records_and_exits(tmp_path: Path) -> None:
    make_store(tmp_path / "sessions", {"s": 5})
    done = run("tail", "s", "-n", "3", "--json", cwd=tmp_path)
    assert done.returncode == 0
    assert [json.loads(line)["seq"] for line in done.stdout.splitlines()] == [3, 4, 5]
