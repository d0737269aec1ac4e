"""`JournalSaver` against langgraph-checkpoint-conformance, the checkpointer suite LangGraph
ships: every one of its eight capabilities, each on a fresh saver over a fresh store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import Capability, DetectedCapabilities

from journal.integrations.langgraph import JournalSaver

CAPABILITIES = [c.value for c in Capability]


def test_the_suite_has_the_eight_capabilities_and_detects_all_of_them(tmp_path: Path) -> None:
    assert sorted(CAPABILITIES) == sorted(
        ["put", "put_writes", "get_tuple", "list", "delete_thread", "delete_for_runs", "copy_thread", "prune"]
    )
    with JournalSaver(tmp_path) as saver:
        assert DetectedCapabilities.from_instance(saver).missing == frozenset()


@pytest.mark.parametrize("capability", CAPABILITIES)
def test_journal_saver_passes_the_conformance_suite(tmp_path: Path, capability: str) -> None:
    stores = iter(range(1000))

    @checkpointer_test(name=f"JournalSaver-{capability}")
    async def journal_saver() -> AsyncIterator[JournalSaver]:
        saver = JournalSaver(
            tmp_path / f"store-{next(stores)}", durability="none"
        )  # no fsyncs: semantics only
        try:
            yield saver
        finally:
            saver.close()

    report = asyncio.run(validate(journal_saver, capabilities={capability}))

    result = report.results[capability]
    assert result.detected, f"{capability} not detected"
    assert result.failures == [], "\n".join(result.failures)
    assert result.passed is True and result.tests_failed == 0 and result.tests_passed > 0
