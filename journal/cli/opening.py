"""Opening the store the way a command needs it.

Strategy: commands that only read open the store read-only, so they never create, cut or
finish anything and work on a store this process cannot write; commands that change sessions
need an existing store; only the commands that bring data in (append, import, demo) create
one, and the directories they created are removed again while still empty (they failed, or
wrote nothing: a `--dry-run`, an import that found nothing), so a mistyped `--dir`, a bad
archive or a dry run leaves no empty store behind.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from ..native import Journal
from .output import Failure

READ, WRITE, CREATE = "read", "write", "create"
# A command visits each session once: keeping the states it read buys nothing, and the default
# cache (250,000 messages) is a few hundred MiB on a big store (`tools/export_rss.py`).
CACHED_MESSAGES = 2_000


@contextmanager
def open_store(root: str, mode: str) -> Iterator[Journal]:
    """The store at `root`, read-only for READ; a missing one is a `Failure` unless CREATE."""
    if mode != CREATE and not os.path.lexists(root):
        raise Failure(f"no store at {root}")
    created = _missing_dirs(root) if mode == CREATE else []
    try:
        with Journal(root, read_only=mode == READ, max_cached_messages=CACHED_MESSAGES) as journal:
            yield journal
    finally:
        _remove_if_empty(created)  # only what this command created, and only while empty


def _missing_dirs(root: str) -> list[str]:
    """The directories a create of `root` would make, deepest first."""
    missing, path = [], os.path.abspath(root)
    while not os.path.lexists(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return missing


def _remove_if_empty(created: list[str]) -> None:
    for path in created:  # deepest first; rmdir refuses a directory that is not empty
        try:
            os.rmdir(path)
        except OSError:
            return
