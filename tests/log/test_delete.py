"""Delete is a resumable step (CRASH-SAFETY.md, "Delete"): a delete killed or failed at any
step leaves a session that the next open finishes deleting, so it can be used, deleted and
recreated; errors are `DeleteError`s with the path and the reason, never a raw `OSError`.
Orphan temps a crash left in `quarantine/` are removed by the next open or repair, and nothing
else there. Real files; kills are real SIGKILLs of a child process."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _core_helpers import active_segment

from journal import Journal, RecoveryWarning
from journal.errors import DeleteError
from journal.log import naming
from journal.log.fs import OsFileSystem
from journal.log.naming import DELETED_MARK

SID = "chat"
REPO = Path(__file__).resolve().parents[2]


def trash_in(root: Path) -> list[str]:
    return [name for name in os.listdir(root) if name.startswith(".trash-")]


def make_session(root: Path, count: int = 3) -> Path:
    with Journal(root, durability="none") as journal:
        for i in range(count):
            journal.append(SID, {"content": f"m{i}"})
        return Path(journal.session_path(SID))


def run_killed(root: Path, prelude: str, action: str) -> None:
    """Run `action` on a `Journal` over `root` in a child whose file system runs `prelude`'s
    kill; assert the child really died of SIGKILL."""
    script = (
        textwrap.dedent(
            """
        import os, signal, sys
        from journal import Journal
        from journal.log.fs import OsFileSystem

        def die():
            os.kill(os.getpid(), signal.SIGKILL)

        class Fs(OsFileSystem):
            pass
        """
        )
        + textwrap.dedent(prelude)
        + f"\njournal = Journal(sys.argv[1], fs=Fs(), durability='always')\n{action}\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(root)], cwd=REPO, capture_output=True, check=False
    )
    assert done.returncode == -9, done.stderr.decode()


KILLS = {
    "after the mark, before the rename": """
        class Fs(OsFileSystem):
            def rename(self, src, dst):
                if ".trash-" in dst:
                    die()
                super().rename(src, dst)
    """,
    "after the rename, before the root's fsync": """
        class Fs(OsFileSystem):
            armed = False
            def rename(self, src, dst):
                super().rename(src, dst)
                Fs.armed = ".trash-" in dst
            def sync_dir(self, path):
                if Fs.armed:
                    die()
                super().sync_dir(path)
    """,
    "half way through removing the tree": """
        real_unlink = os.unlink
        count = [0]
        def unlink(name, *args, **kwargs):
            count[0] += 1
            if count[0] == 3:
                die()
            real_unlink(name, *args, **kwargs)
        os.unlink = unlink
    """,
}


def next_state(root: Path) -> None:
    with Journal(root) as journal:
        assert journal.state(SID) is None


def next_append(root: Path) -> None:
    with Journal(root) as journal:
        assert journal.append(SID, {"content": "new"}) == 1
        assert [m.data["content"] for m in journal.state(SID).messages] == ["new"]
        assert journal.verify(SID).ok


def next_delete(root: Path) -> None:
    with Journal(root) as journal:
        assert journal.delete(SID) is False  # it was deleted already: the next open finished it
        assert journal.append(SID, {"content": "new"}) == 1


def next_repair(root: Path) -> None:
    with Journal(root) as journal:
        assert journal.repair(SID).ok
        assert journal.state(SID) is None


NEXT: dict[str, Callable[[Path], None]] = {
    "state": next_state,
    "append": next_append,
    "delete": next_delete,
    "repair": next_repair,
}


@pytest.mark.parametrize("kill", sorted(KILLS))
@pytest.mark.parametrize("then", sorted(NEXT))
def test_a_delete_killed_at_any_step_is_finished_by_the_next_use(
    tmp_path: Path, kill: str, then: str
) -> None:
    root = tmp_path / "store"
    make_session(root)
    run_killed(root, KILLS[kill], f"journal.delete({SID!r})")
    NEXT[then](root)
    with Journal(root) as journal:
        assert journal.verify(SID).ok
        assert trash_in(root) == []  # nothing half-deleted left behind


class FailOnce(OsFileSystem):
    """The real OS; the first call of `method` whose path argument contains `marker` fails
    with EIO (after doing its work, with `after`: a rename done but reported failed)."""

    def __init__(self, method: str, marker: str, after: bool = False) -> None:
        super().__init__()
        self.method, self.marker, self.after, self.fired = method, marker, after, False

    def _maybe_fail(self, method: str, *paths: str) -> None:
        if not self.fired and method == self.method and any(self.marker in p for p in paths):
            self.fired = True
            raise OSError(errno.EIO, os.strerror(errno.EIO), paths[0])

    def rename(self, src: str, dst: str) -> None:
        if not self.after:
            self._maybe_fail("rename", src, dst)
        super().rename(src, dst)
        if self.after:
            self._maybe_fail("rename", src, dst)

    def sync_dir(self, path: str) -> None:
        self._maybe_fail("sync_dir", path)
        super().sync_dir(path)

    def append(self, fd: int, data: bytes) -> None:
        if data == DELETED_MARK:  # the delete's mark on the lock file
            self._maybe_fail("append", "mark")
        super().append(fd, data)


@pytest.mark.parametrize(
    "fault",
    [("rename", ".trash-", False), ("rename", ".trash-", True), ("sync_dir", "store", False)],
    ids=["rename fails", "rename done, reported failed", "root fsync fails"],
)
def test_a_delete_failing_after_its_mark_raises_delete_error_and_the_next_use_finishes_it(
    tmp_path: Path, fault: tuple[str, str, bool]
) -> None:
    root = tmp_path / "store"
    session = make_session(root)
    fs = FailOnce(*fault)
    with Journal(root, fs=fs) as journal:
        fs.marker = fault[1] if fault[0] != "sync_dir" else str(root)
        with pytest.raises(DeleteError) as caught:
            journal.delete(SID)
        assert fs.fired
        assert caught.value.path == str(session)
        assert "Input/output error" in caught.value.reason
        assert not isinstance(caught.value, OSError)
        assert journal.state(SID) is None
        assert journal.append(SID, {"content": "new"}) == 1
    with Journal(root) as journal:
        assert [m.data["content"] for m in journal.state(SID).messages] == ["new"]
        assert trash_in(root) == []


def test_a_delete_whose_mark_cannot_be_written_changes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "store"
    make_session(root)
    fs = FailOnce("append", "mark")
    with Journal(root, fs=fs) as journal:
        with pytest.raises(DeleteError, match="could not mark"):
            journal.delete(SID)
        assert [m.data["content"] for m in journal.state(SID).messages] == ["m0", "m1", "m2"]
        assert journal.delete(SID) is True
        assert journal.state(SID) is None


def removal_calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    """How many unlink/rmdir calls removing a deleted session's tree makes."""
    root = tmp_path / "count"
    make_session(root)
    calls = [0]
    monkeypatch.setattr(os, "unlink", counted(os.unlink, calls, None))
    monkeypatch.setattr(os, "rmdir", counted(os.rmdir, calls, None))
    with Journal(root, durability="none") as journal:
        journal.delete(SID)
    monkeypatch.undo()
    return calls[0]


def counted(real: Callable[..., None], calls: list[int], fail_at: int | None) -> Callable[..., None]:
    def call(path: Any, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("dir_fd") is not None:  # the tree walk's calls
            calls[0] += 1
            if calls[0] == fail_at:
                raise OSError(errno.EIO, os.strerror(errno.EIO), path)
        real(path, *args, **kwargs)

    return call


def test_eio_at_any_unlink_or_rmdir_of_a_delete_only_warns_and_the_next_open_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    total = removal_calls(tmp_path, monkeypatch)
    assert total >= 5  # identity, lock, segment; then log/ and the session directory
    for fail_at in range(1, total + 1):
        root = tmp_path / f"store{fail_at}"
        make_session(root)
        calls = [0]
        monkeypatch.setattr(os, "unlink", counted(os.unlink, calls, fail_at))
        monkeypatch.setattr(os, "rmdir", counted(os.rmdir, calls, fail_at))
        with Journal(root, durability="none") as journal, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert journal.delete(SID) is True  # deleted: the rename aside is durable
            assert journal.state(SID) is None
        monkeypatch.undo()
        assert any(".trash-" in str(w.message) and "Input/output error" in str(w.message) for w in caught)
        assert trash_in(root) != []
        Journal(root).close()  # the next open of the store removes what is left
        assert trash_in(root) == [] and not (root / SID).exists()


def test_eio_removing_trash_when_the_store_opens_only_warns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "store"
    make_session(root)
    trash = root / ".trash-00112233aabbccdd"
    os.rename(root / SID, trash)  # what a delete killed after its commit leaves
    calls = [0]
    monkeypatch.setattr(os, "unlink", counted(os.unlink, calls, 1))
    with pytest.warns(RecoveryWarning, match="Input/output error"):
        journal = Journal(root, durability="none")
    monkeypatch.undo()
    journal.append("other", {"content": "the store works"})
    journal.close()
    Journal(root).close()
    assert trash_in(root) == []


def damaged_session(root: Path) -> Path:
    """A session whose active segment has a flipped byte before valid records: corruption,
    which `repair` copies into quarantine."""
    session = make_session(root, count=6)
    segment = active_segment(session)
    data = bytearray(segment.read_bytes())
    data[5] ^= 0x20
    segment.write_bytes(bytes(data))
    return session


@pytest.mark.parametrize("then", ["open", "repair"])
def test_orphan_quarantine_temps_of_a_killed_repair_are_removed_and_nothing_else(
    tmp_path: Path, then: str
) -> None:
    root = tmp_path / "store"
    session = damaged_session(root)
    run_killed(
        root,
        """
        class Fs(OsFileSystem):
            def rename(self, src, dst):
                if "/quarantine/" in dst:
                    die()
                super().rename(src, dst)
        """,
        f"journal.repair({SID!r})",
    )
    quarantine = session / naming.QUARANTINE_DIR
    orphans = [n for n in os.listdir(quarantine) if ".tmp-" in n]
    assert len(orphans) == 1  # what the kill left: a temp never renamed
    kept = {"123.000001.jsonl.0.torn": b"ours, kept", "notes.tmp-mine": b"not our temp shape"}
    for name, raw in kept.items():
        (quarantine / name).write_bytes(raw)
    with Journal(root) as journal:
        if then == "repair":
            journal.repair(SID)
        else:
            with pytest.raises(Exception, match="at byte"):  # still damaged: only opened
                journal.state(SID)
    names = set(os.listdir(quarantine))
    assert not names & set(orphans)
    assert {n: (quarantine / n).read_bytes() for n in kept} == kept


@pytest.mark.parametrize("garbage", [b"X", b"\x00", b">", b"d>"])
def test_a_torn_generation_byte_never_reads_as_a_delete(tmp_path: Path, garbage: bytes) -> None:
    """Found by a compaction soak: a power loss tore the one-byte generation bump of a lock
    file into a garbage byte that happened to be the old one-byte delete mark, and the next
    open deleted the live session. The mark is several bytes now: no torn bump can forge it."""
    from journal import Journal

    with Journal(tmp_path, durability="always") as j:
        j.append("s", {"role": "user", "content": "kept"})
        lock = Path(j.session_path("s")) / "lock"
    with lock.open("ab") as f:
        f.write(garbage)
    with Journal(tmp_path) as j:
        assert [r.data["content"] for r in j.read("s")] == ["kept"]
        assert list(j.sessions()) == ["s"]
