"""Fixtures shared by the journal core tests."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# The helper module sits beside the tests; make it importable however pytest imports them
# (and in spawned worker processes, which inherit sys.path).
sys.path.insert(0, os.path.dirname(__file__))

from hypothesis import settings

from journal import Journal

# Property tests run real I/O and codecs on a shared 2-core machine: a per-example deadline
# would turn a slow moment into a failure. Keep whatever profile is active (hypothesis picks
# "ci" on CI) and drop only the deadline; --hypothesis-profile still overrides this.
settings.register_profile(
    "journal", parent=settings.get_profile(settings.get_current_profile_name()), deadline=None
)
settings.load_profile("journal")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A store root that does not exist yet."""
    return tmp_path / "store"


@pytest.fixture
def journal(root: Path) -> Iterator[Journal]:
    with Journal(root, durability="none") as j:
        yield j


@pytest.fixture
def ram_path(tmp_path: Path) -> Iterator[Path]:
    """A scratch directory in RAM (tmpfs) when the host has one, else `tmp_path`: for tests
    that create and cut files thousands of times, where a busy disk's journal would make
    every metadata change wait."""
    if not os.access("/dev/shm", os.W_OK):
        yield tmp_path
        return
    path = Path(tempfile.mkdtemp(prefix="journal-test-", dir="/dev/shm"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
