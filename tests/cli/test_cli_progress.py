"""Long commands draw a progress bar on stderr when it is a terminal, and print nothing of it
when stderr is piped (cron, scripts); stdout carries only the data either way."""

from __future__ import annotations

import os
import pty
import subprocess
from pathlib import Path

from cli_helpers import JOURNAL, environment, make_store, run

BAR = "━"  # what rich draws a bar with


def under_a_terminal(*args: str, cwd: Path, **env_extra: str) -> tuple[int, str, str]:
    """Run `journal ARGS` with stderr on a pseudo-terminal and stdout on a pipe: (exit code,
    what the terminal showed, stdout)."""
    master, slave = pty.openpty()
    env = environment(TERM="xterm-256color", COLUMNS="120", LINES="40", **env_extra)
    proc = subprocess.Popen([*JOURNAL, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=slave, env=env)
    os.close(slave)
    shown = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the command ended and closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    assert proc.stdout is not None
    stdout = proc.stdout.read().decode()
    return proc.wait(timeout=60), shown.decode(errors="replace"), stdout


def test_long_commands_print_no_progress_when_stderr_is_piped(tmp_path: Path) -> None:
    make_store(tmp_path / "sessions", {"a": 3, "b": 2, "c": 1})
    for args in (
        ["verify", "--all"],
        ["compact", "--all"],
        ["export", "out.json"],
        ["--dir", "copy", "import", "out.json"],
        ["gc", "--empty"],
    ):
        done = run(*args, cwd=tmp_path)
        assert done.returncode == 0 and done.stderr == "", (args, done.stderr)
        assert BAR not in done.stdout and "%" not in done.stdout


def test_long_commands_show_a_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    make_store(tmp_path / "sessions", {"a": 3, "b": 2, "c": 1})
    code, shown, stdout = under_a_terminal("verify", "--all", cwd=tmp_path)
    assert code == 0 and stdout == "3 session(s) verified, 0 with problems\n"
    assert BAR in shown and "100%" in shown and "3/3" in shown and "verifying" in shown
    code, shown, stdout = under_a_terminal("export", "out.json", cwd=tmp_path)
    assert code == 0 and stdout.startswith("exported 3 session(s)")
    assert BAR in shown and "100%" in shown and "exporting" in shown


def test_without_rich_long_commands_work_and_draw_no_bar(tmp_path: Path) -> None:
    make_store(tmp_path / "sessions", {"a": 3, "b": 2})
    blocker = tmp_path / "no-rich" / "rich"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('rich is not installed here')\n")
    code, shown, stdout = under_a_terminal("verify", "--all", cwd=tmp_path, PYTHONPATH=str(blocker.parent))
    assert code == 0 and stdout == "2 session(s) verified, 0 with problems\n"
    assert shown == ""
