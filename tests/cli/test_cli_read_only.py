"""The read commands work on a store nobody may write (a backup, a read-only mount), and change
nothing in it, not even where they could: a torn tail stays, no lock or index file appears."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from _unprivileged import unprivileged
from cli_helpers import JOURNAL, environment, run_all, tree

from journal import Journal


@pytest.fixture
def frozen(tmp_path: Path) -> Iterator[Path]:
    """A store with a compacted session (snapshot, archive, live log), a plain one, and one
    with a torn tail; then every file and directory of it made read-only."""
    root = tmp_path / "st"
    with Journal(root, durability="none") as journal:
        for n in range(4):
            journal.append("a", {"role": "user", "content": f"refund question {n}"})
        journal.compact("a")
        journal.append("a", {"role": "assistant", "content": "refund done"})
        journal.append("b", {"role": "user", "content": "hello"})
        journal.append("t", {"role": "user", "content": "torn after me"})
    with (root / "t" / "log" / "00000000000000000001.jsonl").open("ab") as segment:
        segment.write(b'{"seq":2,"kind":"mess')  # a writer died mid-record: a writable open cuts it
    subprocess.run(["chmod", "-R", "a-w", str(root)], check=True)
    try:
        yield root
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(root)], check=True)


READS = {
    "ls": ["ls"],
    "ls --json": ["ls", "--json"],
    "show": ["show", "a"],
    "show --json": ["show", "a", "--json"],
    "show torn": ["show", "t", "--tail", "1"],
    "cat": ["cat", "t"],
    "tail": ["tail", "a", "-n", "2"],
    "verify": ["verify", "--all"],
    "search": ["search", "refund", "--json"],
    "stats": ["stats", "--json"],
    "export": ["export", "out.json"],
    "gc": ["gc", "--older-than", "1s", "--empty", "--dry-run"],
}


def test_read_commands_change_nothing_even_where_they_could(frozen: Path) -> None:
    before = tree(frozen)
    done = dict(
        zip(READS, run_all([["--dir", "st", *args] for args in READS.values()], frozen.parent), strict=True)
    )
    assert tree(frozen) == before  # as root the modes stopped nothing: the commands wrote nothing
    for name, result in done.items():
        assert result.returncode == (1 if name == "verify" else 0), (name, result.stderr)
        assert "Traceback" not in result.stderr
    assert [json.loads(line)["messages"] for line in done["ls --json"].stdout.splitlines()] == [5, 1, 1]
    assert done["show torn"].stdout.rstrip().endswith("user: torn after me")
    assert "skipped, not cut (read-only)" in done["show torn"].stderr
    assert (
        "t: torn-tail at " in done["verify"].stdout
        and "3 session(s) verified, 1 with problems" in done["verify"].stdout
    )
    assert [json.loads(line)["seq"] for line in done["search"].stdout.splitlines()] == [1, 2, 3, 4, 6]
    assert json.loads(done["show --json"].stdout)["message_count"] == 5
    assert json.loads((frozen.parent / "out.json").read_text())["total_sessions"] == 3


def test_ls_show_and_verify_work_where_permissions_apply(frozen: Path) -> None:
    calls = {"ls": ["ls"], "show": ["show", "a"], "verify": ["verify", "a", "b"], "cat": ["cat", "b"]}
    procs = {
        name: subprocess.run(
            unprivileged([*JOURNAL, "--dir", str(frozen), *args]),
            capture_output=True,
            text=True,
            timeout=60,
            env=environment(),
        )
        for name, args in calls.items()
    }
    for name, done in procs.items():
        assert done.returncode == 0 and done.stderr == "", (name, done.stderr)
    assert [line.split()[:2] for line in procs["ls"].stdout.splitlines()[1:]] == [
        ["a", "5"],
        ["b", "1"],
        ["t", "1"],
    ]
    assert procs["show"].stdout.rstrip().endswith("assistant: refund done")
    assert "2 session(s) verified, 0 with problems" in procs["verify"].stdout
    assert json.loads(procs["cat"].stdout)["data"] == {"role": "user", "content": "hello"}
