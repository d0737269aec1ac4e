"""Links in the store (CRASH-SAFETY.md, "Links"): journal never follows a symbolic link out of
the store root. Removing a tree unlinks each link itself and leaves its target alone; a link
where journal keeps its own file or directory is an `UnsafePathError` naming it, nothing is
written through it, and the rest of the store stays usable. Real files and real links."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest
from _core_helpers import active_segment

from journal import Journal, RecoveryWarning
from journal.errors import UnsafePathError
from journal.log import naming
from journal.log.fs import FileSystem, OsFileSystem, remove_tree

SID = "chat"


def outside_dir(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    """A directory outside the store holding a file and a subdirectory: what must survive."""
    target = tmp_path / "outside"
    (target / "sub").mkdir(parents=True)
    files = {"precious.txt": b"keep me\n", "sub/nested.txt": b"me too\n"}
    for name, raw in files.items():
        (target / name).write_bytes(raw)
    return target, files


def assert_untouched(target: Path, files: dict[str, bytes]) -> None:
    found = {str(p.relative_to(target)): p.read_bytes() for p in target.rglob("*") if p.is_file()}
    assert found == files


def make_session(root: Path, count: int = 3) -> Path:
    with Journal(root, durability="none") as journal:
        for i in range(count):
            journal.append(SID, {"content": f"m{i}"})
        return Path(journal.session_path(SID))


def test_a_trash_link_in_the_root_is_unlinked_and_its_target_left_alone(tmp_path: Path) -> None:
    root = tmp_path / "store"
    make_session(root)
    target, files = outside_dir(tmp_path)
    (root / ".trash-0123456789abcdef").symlink_to(target, target_is_directory=True)
    for _ in range(2):  # the store stays usable: every later open works
        with Journal(root, durability="none") as journal:
            assert [m.data["content"] for m in journal.state(SID).messages[:3]] == ["m0", "m1", "m2"]
            journal.append(SID, {"content": "more"})
    assert_untouched(target, files)
    assert not (root / ".trash-0123456789abcdef").is_symlink()


def test_a_file_named_like_trash_is_not_journals_and_is_left_alone(tmp_path: Path) -> None:
    root = tmp_path / "store"
    root.mkdir()
    (root / ".trash-0123456789abcdef").write_bytes(b"someone's file")
    Journal(root).close()
    assert (root / ".trash-0123456789abcdef").read_bytes() == b"someone's file"


def test_delete_unlinks_a_quarantine_link_and_leaves_its_target_alone(tmp_path: Path) -> None:
    root = tmp_path / "store"
    session = make_session(root)
    target, files = outside_dir(tmp_path)
    (session / naming.QUARANTINE_DIR).symlink_to(target, target_is_directory=True)
    with Journal(root, durability="none") as journal:
        assert journal.delete(SID) is True
        assert journal.state(SID) is None
    assert_untouched(target, files)
    assert not [n for n in os.listdir(root) if n == SID or n.startswith(".trash-")]


def test_delete_unlinks_links_to_files_and_leaves_their_targets_alone(tmp_path: Path) -> None:
    root = tmp_path / "store"
    session = make_session(root)
    target, files = outside_dir(tmp_path)
    (session / "notes.txt").symlink_to(target / "precious.txt")
    (session / "dangling").symlink_to(tmp_path / "nowhere")
    with Journal(root, durability="none") as journal:
        assert journal.delete(SID) is True
    assert_untouched(target, files)
    assert not [n for n in os.listdir(root) if n == SID or n.startswith(".trash-")]


def test_a_linked_segment_is_refused_and_its_target_gets_no_append(tmp_path: Path) -> None:
    root = tmp_path / "store"
    session = make_session(root)
    segment = active_segment(session)
    target = tmp_path / "outside.jsonl"
    target.write_bytes(segment.read_bytes())
    before = target.read_bytes()
    segment.unlink()
    segment.symlink_to(target)
    with Journal(root, durability="none") as journal:
        with pytest.raises(UnsafePathError) as caught:
            journal.append(SID, {"content": "through the link?"})
        assert caught.value.path == str(segment)
        journal.append("other", {"content": "the rest of the store works"})
        assert [m.data["content"] for m in journal.state("other").messages] == ["the rest of the store works"]
        report = journal.verify(SID)
        assert not report.ok and report.problems[0].path == str(segment)
    assert target.read_bytes() == before


def test_a_linked_quarantine_gets_no_torn_tail_and_the_tail_stays(tmp_path: Path) -> None:
    root = tmp_path / "store"
    session = make_session(root)
    segment = active_segment(session)
    with segment.open("ab") as file:
        file.write(b'{"seq": 4, "torn')  # a writer died mid-record
    torn = segment.read_bytes()
    target, files = outside_dir(tmp_path)
    (session / naming.QUARANTINE_DIR).symlink_to(target, target_is_directory=True)
    with Journal(root, durability="none") as journal, warnings.catch_warnings():
        warnings.simplefilter("ignore", RecoveryWarning)
        with pytest.raises(UnsafePathError) as caught:
            journal.state(SID)
        assert caught.value.path == str(session / naming.QUARANTINE_DIR)
        with pytest.raises(UnsafePathError):
            journal.repair(SID)
    assert_untouched(target, files)
    assert segment.read_bytes() == torn  # not cut: its bytes could not be kept first


@pytest.mark.parametrize("name", [naming.LOCK_FILE, naming.LOG_DIR])
def test_a_link_for_the_lock_file_or_log_dir_is_refused(tmp_path: Path, name: str) -> None:
    root = tmp_path / "store"
    session = make_session(root)
    target = tmp_path / "outside"
    if name == naming.LOG_DIR:
        os.rename(session / name, target)
    else:
        target.write_bytes(b"")
    before = sorted(p.name for p in target.iterdir()) if target.is_dir() else target.read_bytes()
    if name == naming.LOCK_FILE:
        (session / name).unlink()
    (session / name).symlink_to(target)
    with Journal(root, durability="none") as journal:
        with pytest.raises(UnsafePathError) as caught:
            journal.append(SID, {"content": "x"})
        assert caught.value.path == str(session / name)
    after = sorted(p.name for p in target.iterdir()) if target.is_dir() else target.read_bytes()
    assert after == before


def test_a_linked_session_directory_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "store"
    root.mkdir()
    target, files = outside_dir(tmp_path)
    (root / SID).symlink_to(target, target_is_directory=True)
    with Journal(root, durability="none") as journal:
        with pytest.raises(UnsafePathError) as caught:
            journal.append(SID, {"content": "x"})
        assert caught.value.path == str(root / SID)
        assert not journal.verify(SID).ok
    assert_untouched(target, files)


def test_a_store_root_that_is_a_link_is_the_users_choice_and_works(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "store").symlink_to(real, target_is_directory=True)
    with Journal(tmp_path / "store", durability="none") as journal:
        journal.append(SID, {"content": "x"})
        assert journal.delete(SID) is True
    assert not [n for n in os.listdir(real) if n == SID or n.startswith(".trash-")]


class PathOnlyFileSystem:
    """The real OS through the `FileSystem` interface alone (no `remove_tree` of its own):
    the walk the simulated disk and wrappers get."""

    def __init__(self) -> None:
        self.inner = OsFileSystem()

    def __getattr__(self, name: str) -> object:
        if name == "remove_tree":
            raise AttributeError(name)
        return getattr(self.inner, name)


@pytest.mark.parametrize("walk", ["dir_fd", "interface"])
def test_remove_tree_unlinks_links_and_never_their_targets(tmp_path: Path, walk: str) -> None:
    target, files = outside_dir(tmp_path)
    tree = tmp_path / "tree"
    (tree / "a" / "b").mkdir(parents=True)
    (tree / "a" / "b" / "file").write_bytes(b"x")
    (tree / "dirlink").symlink_to(target, target_is_directory=True)
    (tree / "a" / "filelink").symlink_to(target / "precious.txt")
    (tree / "a" / "b" / "deep").symlink_to(target / "sub", target_is_directory=True)
    fs: FileSystem = OsFileSystem() if walk == "dir_fd" else PathOnlyFileSystem()  # type: ignore[assignment]
    remove_tree(fs, str(tree))
    assert not tree.exists()
    assert_untouched(target, files)
    remove_tree(fs, str(tree))  # gone already: a removal being redone is fine
    link = tmp_path / "toplink"
    link.symlink_to(target, target_is_directory=True)
    remove_tree(fs, str(link))  # the tree itself is a link: the link goes, the target stays
    assert not link.is_symlink()
    assert_untouched(target, files)


@pytest.mark.parametrize("name", ["segment", naming.IDENTITY_FILE])
def test_a_read_only_store_reads_nothing_through_a_link(tmp_path: Path, name: str) -> None:
    root = tmp_path / "store"
    session = make_session(root)
    own = active_segment(session) if name == "segment" else session / name
    target = tmp_path / "outside"
    target.write_bytes(own.read_bytes())  # what the link leads to reads as a valid session
    own.unlink()
    own.symlink_to(target)
    with Journal(root, read_only=True) as journal:
        with pytest.raises(UnsafePathError) as caught:
            journal.state(SID)
        assert caught.value.path == str(own)
        report = journal.verify(SID)
        assert not report.ok
    assert target.read_bytes() == own.read_bytes()  # read through the test's own open only
