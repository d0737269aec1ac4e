"""The async twins of a checkpointer's methods, for `JournalSaver`.

Strategy: the sync methods do file I/O and fsyncs, which must not block the event loop, so
each async method runs its sync twin in the loop's executor. Calls for one thread run one at
a time, in the order they were made (`CallOrder`): a task that puts a checkpoint and then its
writes, or two tasks sharing a thread, see the log in call order, as SqliteSaver's one
connection gives them.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, TypeVar

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

__all__ = ["CallOrder", "ThreadedAsyncSaver"]

T = TypeVar("T")


class ThreadedAsyncSaver(BaseCheckpointSaver[str]):
    """A `BaseCheckpointSaver` whose async methods run its sync ones in the executor, in
    call order per thread id."""

    def __init__(self, *, serde: SerializerProtocol | None = None) -> None:
        super().__init__(serde=serde)
        self._order = CallOrder()

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await self._order.run(_key(config), lambda: self.get_tuple(config))

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        found = await self._order.run(
            _key(config), lambda: list(self.list(config, filter=filter, before=before, limit=limit))
        )
        for item in found:
            yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return await self._order.run(
            _key(config), lambda: self.put(config, checkpoint, metadata, new_versions)
        )

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        await self._order.run(_key(config), lambda: self.put_writes(config, writes, task_id, task_path))

    async def adelete_thread(self, thread_id: str) -> None:
        await self._order.run(str(thread_id), lambda: self.delete_thread(thread_id))

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await self._order.run(None, lambda: self.delete_for_runs(run_ids))

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await self._order.run(
            str(target_thread_id), lambda: self.copy_thread(source_thread_id, target_thread_id)
        )

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        await self._order.run(None, lambda: self.prune(thread_ids, strategy=strategy))


def _key(config: RunnableConfig | None) -> str | None:
    return None if config is None else str(config["configurable"]["thread_id"])


class CallOrder:
    """Runs calls in the event loop's executor one at a time per key (a thread id), in the
    order they were made: each waits for the one before it, also when that one's caller was
    cancelled (the call itself runs to its end in its thread). Calls without a key just run."""

    def __init__(self) -> None:
        self._tails: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Future[None]]] = (
            weakref.WeakKeyDictionary()
        )

    async def run(self, key: str | None, call: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        if key is None:
            return await loop.run_in_executor(None, call)
        tails = self._tails.setdefault(loop, {})
        previous = tails.get(key)
        mine: asyncio.Future[None] = loop.create_future()
        tails[key] = mine
        work: asyncio.Future[T] | None = None
        try:
            if previous is not None:
                await asyncio.shield(previous)
            work = loop.run_in_executor(None, call)
            return await asyncio.shield(work)
        finally:
            _settle_after([f for f in (previous, work) if f is not None], mine, tails, key)


def _settle_after(
    waits: list[Any], mine: asyncio.Future[None], tails: dict[str, asyncio.Future[None]], key: str
) -> None:
    """Resolve `mine` (the next call of `key` may start) once every future in `waits` is done."""
    pending = [f for f in waits if not f.done()]
    if pending:
        pending[0].add_done_callback(lambda _: _settle_after(pending[1:], mine, tails, key))
        return
    if not mine.done():
        mine.set_result(None)
    if tails.get(key) is mine:
        del tails[key]
