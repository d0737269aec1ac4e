"""Running a check where file permissions apply, even when the tests run as root.

Root ignores permissions, so as root the command runs through `setpriv` with CAP_DAC_OVERRIDE
and CAP_DAC_READ_SEARCH dropped from its bounding set: root then obeys file modes like any
user. Otherwise it runs as the user itself.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

_DROP = "-dac_override,-dac_read_search"


def unprivileged(command: list[str]) -> list[str]:
    """`command`, run so that file permissions apply to it."""
    if os.geteuid() != 0:
        return command
    setpriv = shutil.which("setpriv")
    assert setpriv is not None, "running as root: setpriv is needed to drop CAP_DAC_OVERRIDE"
    return [setpriv, f"--inh-caps={_DROP}", f"--bounding-set={_DROP}", *command]


def run_unprivileged(code: str, *args: str) -> dict[str, object]:
    """Run `code` (it prints one JSON line last) without the power to ignore permissions."""
    script = [sys.executable, "-c", textwrap.dedent(code), *args]
    done = subprocess.run(unprivileged(script), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    result["stderr"] = done.stderr
    return result


def cli_unprivileged(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "journal", "--root", str(root), *args]
    return subprocess.run(unprivileged(command), capture_output=True, text=True, timeout=120)
