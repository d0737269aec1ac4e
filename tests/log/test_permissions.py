"""Permissions of what `journal` creates: private by default, configurable."""

from __future__ import annotations

import os
import stat
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from _core_helpers import active_segment, message

from journal import Journal, RecoveryWarning

SID = "chat"


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    """A umask that masks nothing we ask for, so the modes seen are the modes requested."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def session_files(root: Path, **options: int) -> dict[str, Path]:
    """Create a session, with a quarantined torn tail, and name everything it made."""
    with Journal(root, durability="none", **options) as journal:
        journal.append(SID, message("hello"))
        session = Path(journal.session_path(SID))
    with active_segment(session).open("ab") as segment:
        segment.write(b"torn")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RecoveryWarning)
        with Journal(root, **options) as journal:
            list(journal.read(SID))
    quarantine = session / "quarantine"
    return {
        "root": root,
        "session dir": session,
        "log dir": session / "log",
        "quarantine dir": quarantine,
        "segment": active_segment(session),
        "lock": session / "lock",
        "identity": session / "identity.json",
        "quarantined bytes": next(quarantine.iterdir()),
    }


DIRS = {"root", "session dir", "log dir", "quarantine dir"}


def test_new_files_are_0600_and_directories_0700_by_default(root: Path) -> None:
    found = {name: oct(mode(path)) for name, path in session_files(root).items()}
    assert found == {name: oct(0o700 if name in DIRS else 0o600) for name in found}


def test_file_and_directory_modes_are_configurable(root: Path) -> None:
    made = session_files(root, file_mode=0o640, dir_mode=0o750)
    found = {name: oct(mode(path)) for name, path in made.items()}
    assert found == {name: oct(0o750 if name in DIRS else 0o640) for name in found}
