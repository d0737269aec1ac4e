"""Running the real `journal` command line in subprocesses, and the stores the tests use."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from journal import Journal

JOURNAL = [sys.executable, "-m", "journal"]


def environment(**extra: str) -> dict[str, str]:
    """The test process's environment without $JOURNAL_DIR (unless given) and with `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in ("JOURNAL_DIR", "JOURNAL_DEBUG")}
    env.update(extra)
    return env


def run(
    *args: str,
    cwd: Path,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    command: Sequence[str] = JOURNAL,
) -> subprocess.CompletedProcess[str]:
    """`journal ARGS` in `cwd`, its output captured."""
    return subprocess.run(
        [*command, *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=env if env is not None else environment(),
    )


def run_all(calls: Sequence[Sequence[str]], cwd: Path) -> list[subprocess.CompletedProcess[str]]:
    """Several independent `journal` calls at once (they only read, or touch nothing)."""
    procs = [
        subprocess.Popen(
            [*JOURNAL, *args],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment(),
        )
        for args in calls
    ]
    done = []
    for args, proc in zip(calls, procs, strict=True):
        out, err = proc.communicate(timeout=60)
        done.append(subprocess.CompletedProcess([*JOURNAL, *args], proc.returncode, out, err))
    return done


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    """The one line a failed command printed on stderr (it must be exactly one, no traceback)."""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("journal: error: "), done.stderr
    return lines[0]


def make_store(root: Path, sessions: dict[str, int]) -> None:
    """A store with `sessions[id]` messages in each session, alternating user/assistant."""
    with Journal(root, durability="none") as journal:
        for session_id, count in sessions.items():
            for n in range(count):
                role = "user" if n % 2 == 0 else "assistant"
                journal.append(session_id, {"role": role, "content": f"{session_id} message {n}"})


def tree(root: Path) -> dict[str, tuple[bool, int, int, int]]:
    """Every file and directory under `root`: (is dir, size, mtime ns, mode), by relative path."""
    found = {}
    for path in sorted([root, *root.rglob("*")]):
        st = path.lstat()
        size = 0 if path.is_dir() else st.st_size
        found[str(path.relative_to(root))] = (path.is_dir(), size, st.st_mtime_ns, st.st_mode)
    return found
