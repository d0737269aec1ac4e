"""The command line: 0 when all is well, 1 when something is wrong, 2 on bad usage; no
traceback reaches the user, and read-only commands create nothing."""

from __future__ import annotations

import json
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


def test_import_praisonai_reports_what_it_copied_and_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    source = tmp_path / "praisonai"
    source.mkdir()
    for sid in ("a", "b"):
        body = {"session_id": sid, "messages": [{"role": "user", "content": f"hi {sid}", "timestamp": 1.0}]}
        (source / f"{sid}.json").write_text(json.dumps(body))
    dry = journal_cli("--root", "st", "import-praisonai", str(source), "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0 and "would import 2 session(s), 2 message(s)" in dry.stdout
    assert not (tmp_path / "st" / "a").exists()
    done = journal_cli("--root", "st", "import-praisonai", str(source), cwd=tmp_path)
    assert done.returncode == 0 and "imported 2 session(s)" in done.stdout
    assert journal_cli("--root", "st", "ls", cwd=tmp_path).stdout.split() == ["a", "b"]
    (source / "c.json").write_text("{broken")
    again = journal_cli("--root", "st", "import-praisonai", str(source), cwd=tmp_path)
    assert again.returncode == 1 and "imported 0 session(s)" in again.stdout
    assert "skipped a.json" in again.stdout and "not imported c.json" in again.stderr
    assert "Traceback" not in again.stderr
    missing = journal_cli("--root", "st", "import-praisonai", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert missing.returncode == 1 and "no directory" in missing.stderr
