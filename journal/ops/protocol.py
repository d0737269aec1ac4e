"""What the whole-store operations use of a store (the `Journal` facade offers it).

Strategy: a Protocol, so this floor never imports the facade above it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from ..log.fs import FileSystem
from ..log.record import Record
from ..log.recovery import Report
from ..log.session import Options
from ..log.state import SessionState

# Called after each session a long operation has handled: (sessions done, sessions in all, or
# None while the total is not known yet).
Progress = Callable[[int, "int | None"], None]

# One entry of `Store.append_batch`: (kind, data, ts). kind is "message", "meta" or "clear";
# ts None stamps the write time, a float (seconds since the epoch) keeps a given one.
Entry = tuple[str, dict[str, Any], "float | None"]


class Readable(Protocol):
    """What the reading operations (`search`, `export_archive`, `session_document`) use of a
    store: a `Journal`, or a replica read in place (`replication.remote.RemoteReplica`, which
    also reads its own messages: `history.ReadsOwnMessages`)."""

    root: str

    def sessions(self) -> Iterator[str]: ...

    def exists(self, session_id: str) -> bool: ...

    def state(self, session_id: str) -> SessionState | None: ...

    def session_path(self, session_id: str) -> str: ...


class Store(Protocol):
    """The `Journal` methods the operations read and write through."""

    root: str
    fs: FileSystem
    read_only: bool
    options: Options  # its limits (max_record_bytes): an import checks every record first

    def sessions(self) -> Iterator[str]: ...

    def exists(self, session_id: str) -> bool: ...

    def read(self, session_id: str, start: int = 0) -> Iterator[Record]: ...

    def state(self, session_id: str) -> SessionState | None: ...

    def session_path(self, session_id: str) -> str: ...

    def append_batch(
        self, session_id: str, entries: Iterable[Entry], *, durability: str | None = None
    ) -> list[int]: ...

    def delete(self, session_id: str) -> bool: ...

    def verify(self, session_id: str) -> Report: ...

    def compact(self, session_id: str) -> Any: ...
