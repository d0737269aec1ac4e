"""PraisonAI's portable export format, ``{"version": 1, "sessions": [<session dict>, ...]}``.

Strategy: export is `SessionData.to_dict` of each session (the shape of PraisonAI's file);
import writes each session as one all-or-nothing batch (a "clear", its metadata, its
messages), so an import interrupted by a crash leaves each session whole or as it was. Each
message keeps its role, content, metadata and tool fields; its timestamp becomes the time of
the import (a record's ts is when it was written), as `set_chat_history` does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import JournalError
from ..log.record import CLEAR, MESSAGE, META
from ..native import Journal
from .messages import message_from_dict
from .records import append_records
from .session_data import CHECKPOINT_KEY, GATEWAY_KEY, RUNTIME_KEY, SessionData

PORTABLE_VERSION = 1
LIVE_FIELDS = (GATEWAY_KEY, "agent_id")


@dataclass
class ImportReport:
    """What `import_sessions` did: how many sessions it imported, which it skipped and why."""

    imported: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)
    version: int = PORTABLE_VERSION

    @property
    def skipped_count(self) -> int:
        return len(self.skipped)

    def as_dict(self) -> dict[str, Any]:
        return {
            "imported": self.imported,
            "skipped": self.skipped,
            "skipped_count": self.skipped_count,
            "version": self.version,
        }


class PortableMixin:
    """`export_session`, `export_all` and `import_sessions`."""

    _journal: Journal
    PORTABLE_VERSION = PORTABLE_VERSION

    if TYPE_CHECKING:

        def get_session(self, session_id: str) -> SessionData: ...

        def session_exists(self, session_id: str) -> bool: ...

    def export_session(self, session_id: str, *, include_lineage: bool = True) -> dict[str, Any]:
        """The session (and, with `include_lineage`, the other sessions of its lineage) in the
        portable format; no sessions for an unknown id."""
        if not self.session_exists(session_id):
            return {"version": PORTABLE_VERSION, "sessions": []}
        first = self.get_session(session_id).to_dict()
        sessions = [first]
        lineage = _lineage(first)
        if include_lineage and lineage is not None:
            for other in self._journal.sessions():
                if other != session_id:
                    data = self.get_session(other).to_dict()
                    if _lineage(data) == lineage:
                        sessions.append(data)
        return {"version": PORTABLE_VERSION, "sessions": sessions}

    def export_all(self) -> dict[str, Any]:
        """Every session in the portable format. A session that does not read raises (a
        `JournalError`): an incomplete backup is never returned as a complete one."""
        return {
            "version": PORTABLE_VERSION,
            "sessions": [self.get_session(s).to_dict() for s in self._journal.sessions()],
        }

    def import_sessions(
        self,
        payload: dict[str, Any],
        *,
        max_sessions: int = 10_000,
        reset_live_fields: bool = True,
        overwrite: bool = False,
    ) -> ImportReport:
        """Import the sessions of a portable payload; see PraisonAI's rules: a newer version is
        refused, malformed / id-less / duplicate / existing (without `overwrite`) records are
        skipped with a reason, at most `max_sessions` are imported."""
        report = ImportReport()
        if not isinstance(payload, dict):
            return report
        version = payload.get("version")
        if isinstance(version, int) and version > PORTABLE_VERSION:
            reason = f"unsupported payload version {version} (supported <= {PORTABLE_VERSION})"
            report.skipped.append({"session_id": "", "reason": reason})
            return report
        sessions = payload.get("sessions")
        if not isinstance(sessions, list):
            return report
        seen: set[str] = set()
        for index, raw in enumerate(sessions):
            if report.imported >= max_sessions:
                report.skipped.append(
                    {"session_id": "", "reason": f"max_sessions={max_sessions} cap reached"}
                )
                break
            skipped = self._import_one(index, raw, seen, reset_live_fields, overwrite)
            if skipped is None:
                report.imported += 1
            else:
                report.skipped.append(skipped)
        return report

    def _import_one(
        self, index: int, raw: Any, seen: set[str], reset_live_fields: bool, overwrite: bool
    ) -> dict[str, str] | None:
        """Import one record; None, or {"session_id", "reason"} when it was skipped."""
        if not isinstance(raw, dict):
            return {"session_id": "", "reason": f"malformed record at index {index}"}
        session_id = str(raw.get("session_id") or "").strip()
        if not session_id:
            return {"session_id": "", "reason": f"missing session_id at index {index}"}
        if session_id in seen:
            return {"session_id": session_id, "reason": "duplicate in payload"}
        seen.add(session_id)
        if not overwrite and self.session_exists(session_id):
            return {"session_id": session_id, "reason": "already exists (use overwrite)"}
        try:
            state = self._journal.state(session_id) if overwrite else None
            items = _session_records(raw, reset_live_fields, state.metadata if state is not None else {})
            append_records(self._journal, session_id, items)
        except (JournalError, ValueError, TypeError) as exc:
            return {"session_id": session_id, "reason": f"import error: {exc}"}
        return None


def _session_records(
    raw: dict[str, Any], reset_live_fields: bool, old_metadata: dict[str, Any]
) -> list[tuple[str, Any]]:
    """The batch that makes a session what `raw` describes: clear, metadata, messages (the
    keys of `old_metadata`, an overwritten session's, that `raw` lacks are removed)."""
    session = SessionData.from_dict(raw)
    metadata: dict[str, Any] = {key: None for key in old_metadata}
    metadata.update(session.metadata)
    fields = {
        "agent_name": session.agent_name,
        "user_id": session.user_id,
        "agent_id": session.agent_id,
        GATEWAY_KEY: session.gateway_session_id,
        RUNTIME_KEY: session.runtime_state or None,
        CHECKPOINT_KEY: session.last_compaction.to_dict() if session.last_compaction else None,
    }
    if reset_live_fields:
        for key in LIVE_FIELDS:
            fields[key] = None
            metadata.pop(key, None)
    metadata.update(fields)  # None removes what an overwritten session had
    messages = [m.to_dict() for m in session.archived_messages + session.messages]
    records: list[tuple[str, Any]] = [(CLEAR, {}), (META, metadata)]
    records += [(MESSAGE, message_from_dict(i, _without_timestamp(m))) for i, m in enumerate(messages)]
    return records


def _without_timestamp(message: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in message.items() if k != "timestamp"}


def _lineage(data: dict[str, Any]) -> str | None:
    meta = data.get("metadata") or {}
    for key in ("lineage_id", "root_session_id", "thread_id"):
        value = data.get(key) or meta.get(key)
        if value:
            return str(value)
    return None
