"""Appending records of any kind, as one all-or-nothing batch, for the store's mixins.

`Journal` offers public calls for messages, metadata and clears only; an edit record
(FORMAT.md, "Edit records") and a "clear plus metadata" batch go through its internal
`_append`, which checks, numbers and writes a batch exactly as the public calls do.
"""

from __future__ import annotations

from typing import Any

from ..log.record import Item, encode_payload
from ..native import Journal


def append_records(journal: Journal, session_id: str, items: list[tuple[str, Any]]) -> list[int]:
    """Append `(kind, data)` items as one batch; return their sequence numbers once durable.

    Raises:
        InvalidRecordError: a data that is not JSON exactly (nothing is written).
    """
    limit = journal.options.max_record_bytes
    payloads: list[Item] = [(kind, encode_payload(data, limit), None) for kind, data in items]
    first = journal._append(session_id, payloads, None)
    return list(range(first, first + len(payloads)))
