"""`Operations`: the whole-store operations as methods of `Journal` (a mixin).

Strategy: each method is a thin door to its module, imported when first called so that
`import journal` stays cheap; the work and its documentation live in the module.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from .protocol import Progress, Store

if TYPE_CHECKING:
    from .gc import GcReport
    from .search import SearchHit
    from .stats import Stats
    from .transfer import ExportReport, TransferReport


class Operations:
    """Export, import, search, stats and gc over every session of the store."""

    def export_archive(
        self: Store,
        path: str | os.PathLike[str],
        sessions: Iterable[str] | None = None,
        *,
        format: str = "archive",
        progress: Progress | None = None,
    ) -> ExportReport:
        """Write the sessions (all if None) to one file; see `ops.transfer.export_archive`."""
        from .transfer import export_archive

        return export_archive(self, path, sessions, format=format, progress=progress)

    def import_archive(
        self: Store,
        path: str | os.PathLike[str],
        *,
        on_conflict: str = "skip",
        progress: Progress | None = None,
    ) -> TransferReport:
        """Read an export into this store; see `ops.transfer.import_archive`."""
        from .transfer import import_archive

        return import_archive(self, path, on_conflict=on_conflict, progress=progress)

    def search(
        self: Store,
        query: str,
        *,
        regex: bool = False,
        role: str | None = None,
        since: datetime | float | str | None = None,
        until: datetime | float | str | None = None,
        sessions: Iterable[str] | None = None,
        limit: int | None = None,
    ) -> Iterator[SearchHit]:
        """Messages matching `query`, session by session; see `ops.search.search`."""
        from .search import search

        return search(
            self, query, regex=regex, role=role, since=since, until=until, sessions=sessions, limit=limit
        )

    def stats(
        self: Store, *, sessions: Iterable[str] | None = None, progress: Progress | None = None
    ) -> Stats:
        """The docs' conversation analytics in one pass; see `ops.stats.stats`."""
        from .stats import stats

        return stats(self, sessions=sessions, progress=progress)

    def gc(
        self: Store,
        *,
        older_than: timedelta | float | None = None,
        empty: bool = False,
        dry_run: bool = True,
        progress: Progress | None = None,
    ) -> GcReport:
        """Retention: the sessions to delete, deleted only without `dry_run`; see `ops.gc.gc`."""
        from .gc import gc

        return gc(self, older_than=older_than, empty=empty, dry_run=dry_run, progress=progress)
