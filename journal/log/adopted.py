"""The files of another store that a session was adopted from (FORMAT.md, "Adopted sessions").

Strategy: adoption commits by writing `identity.json` (format 2) with the list of the foreign
files it took in (`"adopted_from"`, relative to the session directory). Only then is each file
renamed aside, verbatim, in its own directory: `messages.json` becomes `messages.json.adopted`
(one rename in one directory, so a power loss leaves one name or the other, never none). Never a
copy, a rewrite or a delete. Every open of an adopted session finishes a rename a crash
interrupted, before compaction can write its own `messages.json` there, so journal never writes
over a file it did not create. A session never adopted has identity format 1: none of this runs.
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import CorruptionError
from .fs import FileSystem

ADOPTED_SUFFIX = ".adopted"
ADOPTED_IDENTITY_FORMAT = 2


def adopted_from(identity: dict[str, Any], path: str) -> list[str]:
    """The foreign files an identity lists (checked: plain names, or `../name` for a file that
    stood beside the session directory)."""
    names = identity.get("adopted_from", [])
    if not isinstance(names, list) or not all(isinstance(n, str) and _plain(n) for n in names):
        raise CorruptionError(path, 0, '"adopted_from" is not a list of file names')
    return names


def _plain(name: str) -> bool:
    base = name[3:] if name.startswith("../") else name
    return bool(base) and "/" not in base and base not in (".", "..")


def aside_path(session_path: str, name: str) -> str:
    """Where the adopted file `name` is kept: beside where it was, with `ADOPTED_SUFFIX`."""
    return os.path.normpath(os.path.join(session_path, name)) + ADOPTED_SUFFIX


def finish_moves(fs: FileSystem, session_path: str, names: list[str], compacted: bool = False) -> None:
    """Rename each adopted file still in its old place aside (session lock held). Once the
    session was compacted, names inside it are journal's own views: only `../` names remain."""
    for name in names:
        if compacted and not name.startswith("../"):
            continue
        source = os.path.normpath(os.path.join(session_path, name))
        target = aside_path(session_path, name)
        if fs.stat(source) is not None and fs.stat(target) is None:
            fs.rename(source, target)
            fs.sync_dir(os.path.dirname(source))
