"""The export/import round trip as properties, through real stores on real files: whatever a
store holds comes back exactly (both formats, plain and .zst), and importing a file a second
time changes nothing, in every conflict mode and over a store that already holds sessions."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import orjson
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from journal import Journal
from journal.log.record import MAX_TS, MIN_TS
from journal.ops.conversation import MIRRORED_KEYS, RESERVED_KEYS, RUNTIME_KEY

TEXT = st.text(max_size=8)
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
)
# Mostly times of today, some at the ends of what the log holds (years 1 and 9999).
TIMES = st.one_of(
    st.floats(1.6e9, 1.9e9),
    st.sampled_from([MIN_TS, MAX_TS, 0.0, -1.5, 1e-6]),
    st.floats(MIN_TS, MAX_TS),
)
MESSAGE = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["user", "assistant", "system", "tool"]),
        "content": st.one_of(TEXT, st.none(), st.lists(st.dictionaries(TEXT, TEXT, max_size=2), max_size=2)),
    },
    optional={
        "metadata": st.dictionaries(TEXT, JSON, max_size=2),
        "tool_calls": st.lists(st.fixed_dictionaries({"id": TEXT, "type": st.just("function")}), max_size=2),
        "tool_call_id": TEXT,
        "timestamp": JSON,  # data of its own under the exported key: kept whole
        "_journal": JSON,
    },
)
METADATA = st.dictionaries(
    st.sampled_from([*RESERVED_KEYS, *MIRRORED_KEYS, "title", "topic"]) | st.text(min_size=1, max_size=6),
    JSON,
    max_size=4,
).filter(lambda meta: meta.get(RUNTIME_KEY) != {})  # PraisonAI's "no runtime state": FORMAT.md
SESSION = st.fixed_dictionaries(
    {
        "metadata": METADATA,
        "created": TIMES,
        "messages": st.lists(st.tuples(MESSAGE, TIMES), max_size=4),
        "cleared": st.lists(st.tuples(MESSAGE, TIMES), max_size=2),  # history before a clear
        "updated": st.none() | TIMES,
        "starts_with_message": st.booleans(),  # no metadata record: created_at is a message's
    }
)
IDS = st.sampled_from(["s1", "chat 2", "user/42", ".hidden", "CON", "é"]) | st.text(min_size=1, max_size=8)
STORE = st.dictionaries(IDS, SESSION, max_size=3)


def build(root: Path, sessions: dict[str, dict[str, Any]]) -> None:
    with Journal(root, durability="none") as j:
        for session_id, spec in sessions.items():
            entries: list[tuple[str, dict[str, Any], float | None]] = []
            if not spec["starts_with_message"] or not (spec["messages"] or spec["cleared"]):
                entries.append(("meta", spec["metadata"], spec["created"]))
            entries += [("message", data, ts) for data, ts in spec["cleared"]]
            if spec["cleared"]:
                entries.append(("clear", {}, spec["created"]))
            entries += [("message", data, ts) for data, ts in spec["messages"]]
            if spec["starts_with_message"] and (spec["messages"] or spec["cleared"]):
                entries.append(("meta", spec["metadata"], spec["created"]))
            if spec["updated"] is not None:
                entries.append(("meta", {}, spec["updated"]))
            j.append_batch(session_id, entries)


def documents(root: Path) -> dict[str, dict[str, Any]]:
    """What the store holds, straight from its states (not through the export's own mapping),
    as canonical JSON so that True, 1 and 1.0 differ."""
    found = {}
    with Journal(root, durability="none") as j:
        for session_id in j.sessions():
            state = j.state(session_id)
            assert state is not None
            found[session_id] = {
                "metadata": canonical(state.metadata),
                "created_at": state.created_at,
                "updated_at": state.updated_at,
                "messages": canonical([[record.data, record.ts] for record in state.messages]),
            }
    return found


def canonical(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def exported(path: Path) -> Any:
    """The file's sessions as JSON (its export time left out: it is the time of the export)."""
    raw = path.read_bytes()
    if path.suffix == ".zst":
        raw = zstandard.ZstdDecompressor().stream_reader(raw).read()
    body = json.loads(raw)
    body.pop("export_timestamp", None)
    return body


@settings(max_examples=30, deadline=None)
@given(
    source=STORE,
    present=STORE,
    format=st.sampled_from(["archive", "portable"]),
    suffix=st.sampled_from([".json", ".json.zst"]),
    mode=st.sampled_from(["skip", "append", "replace"]),
)
def test_an_export_imports_exactly_and_a_second_import_changes_nothing(
    source: dict[str, Any], present: dict[str, Any], format: str, suffix: str, mode: str
) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch)
        build(tmp / "source", source)
        build(tmp / "target", present)
        before = documents(tmp / "target")
        with Journal(tmp / "source", durability="none") as j:
            j.export_archive(tmp / f"out{suffix}", format=format)
        with Journal(tmp / "target", durability="none") as j:
            j.import_archive(tmp / f"out{suffix}", on_conflict=mode)
        once = documents(tmp / "target")
        with Journal(tmp / "target", durability="none") as j:
            j.import_archive(tmp / f"out{suffix}", on_conflict=mode)
        assert documents(tmp / "target") == once

        wanted = documents(tmp / "source")
        for session_id, document in wanted.items():
            if session_id not in before:  # new to the target: exactly as exported
                assert once[session_id] == document
            elif mode == "skip":
                assert once[session_id] == before[session_id]
            elif mode == "replace":  # all but created_at, the log's first record
                assert {**once[session_id], "created_at": None} == {**document, "created_at": None}
        for session_id in before.keys() - wanted.keys():
            assert once[session_id] == before[session_id]

        if not before:  # into an empty store: the export of the import is the export
            with Journal(tmp / "target", durability="none") as j:
                j.export_archive(tmp / f"again{suffix}", format=format)
            assert exported(tmp / f"again{suffix}") == exported(tmp / f"out{suffix}")
