"""The command line: 0 when all is well, 1 when something is wrong, 2 on bad usage; no
traceback reaches the user, and read-only commands create nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from journal import Journal


def journal_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "journal", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def make_store(root: Path) -> None:
    with Journal(root) as journal:
        for n in range(5):
            journal.append("s", {"role": "user", "content": f"m{n}"})


def test_read_only_commands_on_a_missing_store_fail_and_create_nothing(tmp_path: Path) -> None:
    for command in (["ls"], ["verify"], ["cat", "s"], ["compact"]):
        done = journal_cli("--root", "nowhere", *command, cwd=tmp_path)
        assert done.returncode == 1 and "no store" in done.stderr
    assert not (tmp_path / "nowhere").exists()


def test_cat_prints_one_json_line_per_record(tmp_path: Path) -> None:
    make_store(tmp_path / "st")
    done = journal_cli("--root", "st", "cat", "s", cwd=tmp_path)
    assert done.returncode == 0
    assert len(done.stdout.splitlines()) == 5


def test_an_unknown_session_is_an_error_and_a_bad_id_is_a_usage_error(tmp_path: Path) -> None:
    make_store(tmp_path / "st")
    assert journal_cli("--root", "st", "cat", "nosuch", cwd=tmp_path).returncode == 1
    assert journal_cli("--root", "st", "verify", "nosuch", cwd=tmp_path).returncode == 1
    assert journal_cli("--root", "st", "cat", "", cwd=tmp_path).returncode == 2
    assert journal_cli("demo", "--agents", "-2", cwd=tmp_path).returncode == 2


def test_verify_and_repair_report_damage_with_exit_code_1_then_0(tmp_path: Path) -> None:
    make_store(tmp_path / "st")
    segment = tmp_path / "st" / "s" / "log" / "00000000000000000001.jsonl"
    data = bytearray(segment.read_bytes())
    data[len(data) // 2] ^= 0x01  # a bit flip in the middle: corruption
    segment.write_bytes(bytes(data))

    verify = journal_cli("--root", "st", "verify", cwd=tmp_path)
    assert verify.returncode == 1 and "corruption" in verify.stdout
    assert journal_cli("--root", "st", "repair", "s", cwd=tmp_path).returncode == 1
    after = journal_cli("--root", "st", "verify", cwd=tmp_path)
    assert after.returncode == 0
    assert "Traceback" not in verify.stderr + after.stderr
