"""One session that cannot be read never stops the others: each command and bulk call reports
it and goes on, and the exit code says something was wrong. The bad session is `chmod 000`;
the checks run where permissions apply (see tests/store/test_read_only.py, `unprivileged`)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from _unprivileged import cli_unprivileged, run_unprivileged

from journal import Journal


def make_store(root: Path) -> None:
    with Journal(root, durability="none") as journal:
        for sid in ("a", "b", "c"):
            journal.append(sid, {"role": "user", "content": sid})
    (root / "b").chmod(0)


BULK = """
    import json, sys, warnings
    from journal import Journal
    from journal.store.session_store import DefaultSessionStore
    root = sys.argv[1]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Journal(root) as journal:
            listed = sorted(journal.sessions())
            report = journal.compact_all()
        store = DefaultSessionStore(root, view_lag=None)
        store.add_user_message("c", "more")
        rows = sorted(row["session_id"] for row in store.list_sessions())
        store.close()
    print(json.dumps({"listed": listed, "compacted": sorted(r.session_id for r in report.results),
                      "rows": rows,
                      "errors": sorted(report.errors), "warned": [str(w.message) for w in caught]}))
"""


def test_an_unreadable_session_is_reported_and_every_command_goes_on(tmp_path: Path) -> None:
    root = tmp_path / "s"
    make_store(root)
    try:
        ls = cli_unprivileged(root, "ls")
        verify = cli_unprivileged(root, "verify")
        cat = cli_unprivileged(root, "cat", "c")
        out = run_unprivileged(BULK, str(root))
    finally:
        subprocess.run(["chmod", "-R", "u+rwX", str(root)], check=True)
    listed = [line.split()[0] for line in ls.stdout.splitlines()[1:]]
    assert ls.returncode == 1 and listed == ["a", "c"] and "/b" in ls.stderr
    assert verify.returncode == 1 and "2 session(s) verified, 0 with problems" in verify.stdout
    assert cat.returncode == 0 and len(cat.stdout.splitlines()) == 1
    assert out["listed"] == ["a", "c"] and out["compacted"] == ["a", "c"] and out["rows"] == ["a", "c"]
    assert any("/b" in w and "cannot be read" in w for w in out["warned"])  # type: ignore[attr-defined]
    assert "more" in (root / "c" / "messages.json").read_text()  # close brought c's views current
