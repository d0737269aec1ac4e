"""LangGraph: `JournalSaver`, a checkpointer that keeps each thread in a journal session.

    from journal.integrations.langgraph import JournalSaver

    with JournalSaver("./sessions") as saver:
        graph = builder.compile(checkpointer=saver)
        graph.invoke(inputs, {"configurable": {"thread_id": "t1"}})

Strategy: one session per thread, named by the thread id; each checkpoint and each
`put_writes` call is one record, the serialized state opaque (base64 of the serde's bytes)
beside readable JSON: ids, metadata, and the conversation messages the checkpoint added
(`langgraph_records`). `langgraph_threads` keeps each thread's records folded into an index,
brought up to date with the session before every read, so several processes can share a
thread; this module maps LangGraph's configs, checkpoints and serde onto it with
SqliteSaver's semantics. The async twins run these methods in the loop's executor, in call
order per thread (`langgraph_async`).

Requires ``langgraph`` 1.2 and ``langgraph-checkpoint`` 4.3: ``pip install 'journal[langgraph]'``.
"""

from __future__ import annotations

import builtins
import os
import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import orjson
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from ..compaction.protocol import CompactionPolicy
from ..errors import InvalidRecordError, RecordTooLargeError
from ..native import Journal
from . import langgraph_records as records
from .langgraph_async import ThreadedAsyncSaver
from .langgraph_records import Entry, ThreadIndex, WriteRow
from .langgraph_threads import Survivors, ThreadStore

__all__ = ["JournalSaver"]

# Aliases: inside the class, `list` is the saver's method.
Rows = list[tuple[WriteRow, int]]  # a checkpoint's writes and their idx
Picked = list[tuple[Any, Entry, Rows]]  # what list() yields: (thread id, checkpoint, its writes)
Keep = Callable[[str, str], bool]  # (namespace, checkpoint id) -> kept?
VIEW_LAG = 10.0  # seconds a thread's messages.json may trail its log


class JournalSaver(ThreadedAsyncSaver):
    """A LangGraph checkpointer storing each thread as a crash-safe journal session.

    The session's id is the thread id (`str(thread_id)`); `journal show <thread id>` and
    the session's messages.json show its checkpoints with the conversation in readable form
    (messages.json at most 10 s behind while the saver writes, and current after `close()`).

    Args:
        session_dir: the store directory, created if missing (ignored when `journal` is given).
        durability: when a write returns (also with `journal` given): "always" (fsynced),
            "batch" (fsynced, concurrent writes share the fsync) or "none" (written to the
            OS: survives a process crash, not a power loss).
        serde: the serializer of checkpoints and writes (LangGraph's default if None).
        journal: an open `Journal` to use instead of opening `session_dir`; `close()` does
            not close it.

    Raises:
        StoreRootError: `session_dir` is a file or cannot be written.
    """

    def __init__(
        self,
        session_dir: str | os.PathLike[str] = "./sessions",
        *,
        durability: str = "batch",
        serde: SerializerProtocol | None = None,
        journal: Journal | None = None,
    ) -> None:
        super().__init__(serde=serde)
        self._owns_journal = journal is None
        if journal is None:  # views at most VIEW_LAG s behind, as DefaultSessionStore keeps them
            journal = Journal(
                session_dir, durability=durability, compaction=CompactionPolicy(max_view_lag=VIEW_LAG)
            )
        self.journal = journal
        self._threads = ThreadStore(self.journal, durability)

    # -- reading ---------------------------------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint `config` names (its namespace's latest without a checkpoint_id),
        with its pending writes; None if there is none."""
        thread_id, ns, checkpoint_id = _target(config)
        with self._threads.current(thread_id) as index:
            entry = index.get(ns, checkpoint_id)
            if entry is None:
                return None
            rows = index.write_rows(ns, entry.data["checkpoint_id"])
        shown = config if checkpoint_id else None
        return self._tuple(config["configurable"]["thread_id"], entry, rows, shown)

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """Checkpoints newest first (by checkpoint id), as SqliteSaver lists them: of the
        thread (and namespace, and checkpoint id) in `config`, or of every thread if None;
        whose metadata has the `filter` values; with ids below `before`'s; at most `limit`."""
        if limit is not None and limit <= 0:
            return
        before_id = get_checkpoint_id(before) if before else None
        picked: Picked = []
        if config is None:
            for thread_id in self._threads.thread_ids():
                picked += self._pick(thread_id, thread_id, None, None, filter, before_id, limit)
            picked.sort(key=lambda p: str(p[1].data["checkpoint_id"]), reverse=True)
        else:
            conf = config["configurable"]
            shown, ns, checkpoint_id = conf["thread_id"], conf.get("checkpoint_ns"), get_checkpoint_id(config)
            picked = self._pick(shown, str(shown), ns, checkpoint_id, filter, before_id, limit)
        for thread_id, entry, rows in picked[:limit]:
            yield self._tuple(thread_id, entry, rows, None)

    def _pick(
        self,
        shown_id: Any,
        thread_id: str,
        ns: str | None,
        checkpoint_id: str | None,
        wanted: dict[str, Any] | None,
        before_id: str | None,
        limit: int | None,
    ) -> Picked:
        out: Picked = []
        with self._threads.current(thread_id) as index:
            for entry in index.newest_first(ns):
                ident = entry.data["checkpoint_id"]
                if (checkpoint_id and ident != checkpoint_id) or (before_id and ident >= before_id):
                    continue
                if wanted and not records.matches(dict(self._metadata(entry)), wanted):
                    continue
                out.append((shown_id, entry, index.write_rows(entry.data["ns"], ident)))
                if limit is not None and len(out) >= limit:
                    break
        return out

    def _tuple(
        self, thread_id: Any, entry: Entry, rows: Rows, config: RunnableConfig | None
    ) -> CheckpointTuple:
        data = entry.data
        ns, parent = data["ns"], data["parent_checkpoint_id"]
        writes = [
            (task, channel, self.serde.loads_typed((kind, records.decode_blob(value))))
            for (task, channel, kind, value, _), _ in rows
        ]
        return CheckpointTuple(
            config=config or _config(thread_id, ns, data["checkpoint_id"]),
            checkpoint=self._checkpoint(data),
            metadata=self._metadata(entry, copy=True),
            parent_config=_config(thread_id, ns, parent) if parent else None,
            pending_writes=writes,
        )

    def _checkpoint(self, data: dict[str, Any]) -> Checkpoint:
        return self.serde.loads_typed((data["type"], records.decode_blob(data["checkpoint"])))  # type: ignore[no-any-return]

    def _metadata(self, entry: Entry, copy: bool = False) -> CheckpointMetadata:
        data = entry.data
        if "checkpoint_metadata" in data:
            found = data["checkpoint_metadata"]
            return orjson.loads(orjson.dumps(found)) if copy else found  # type: ignore[no-any-return]
        kind, blob = data["checkpoint_metadata_typed"]
        return self.serde.loads_typed((kind, records.decode_blob(blob)))  # type: ignore[no-any-return]

    # -- writing ---------------------------------------------------------------------------

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store a checkpoint (put again under its id, it replaces the old one); return its
        config. Metadata is kept as JSON; metadata JSON cannot hold exactly (NaN, objects)
        goes through the serde instead (SqliteSaver refuses it)."""
        thread_id, ns, parent = _target(config)
        typed = self.serde.dumps_typed(checkpoint)
        found = dict(get_checkpoint_metadata(config, metadata))
        (content, keys), mark = self._threads.prepare(
            thread_id, lambda index: self._added_messages(index, ns, parent, checkpoint)
        )
        data = records.checkpoint_data(ns, checkpoint["id"], parent, found, typed, content)
        try:
            seq = self._threads.append(thread_id, data, mark)
            data = {**data, "checkpoint_metadata": orjson.loads(orjson.dumps(found))}  # as read back
        except RecordTooLargeError:
            raise
        except InvalidRecordError:
            data = records.typed_metadata(data, self.serde.dumps_typed(found))
            seq = self._threads.append(thread_id, data, mark)

        def note(index: ThreadIndex) -> None:
            if keys is not None:
                index.last_messages[ns] = (checkpoint["id"], keys)

        self._threads.absorb(thread_id, seq, data, mark, note)
        return _config(config["configurable"]["thread_id"], ns, checkpoint["id"])

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store a task's writes for a checkpoint, as SqliteSaver does: a write whose
        (task_id, idx) is stored already stays, unless every write of this call goes to a
        special channel (ERROR, INTERRUPT, ...: a negative idx), which then replaces it."""
        if not writes:
            return
        thread_id, ns, checkpoint_id = _target(config)
        rows = [
            [WRITES_IDX_MAP.get(channel, idx), channel, *_encoded(self.serde.dumps_typed(value))]
            for idx, (channel, value) in enumerate(writes)
        ]
        replace = all(channel in WRITES_IDX_MAP for channel, _ in writes)
        data = records.writes_data(ns, str(checkpoint_id), task_id, task_path, rows, replace)
        _, mark = self._threads.prepare(thread_id, lambda index: None)
        seq = self._threads.append(thread_id, data, mark)
        self._threads.absorb(thread_id, seq, data, mark)

    def _added_messages(
        self, index: ThreadIndex, ns: str, parent: str | None, checkpoint: Checkpoint
    ) -> tuple[str | None, set[Any] | None]:
        """The text of the conversation messages this checkpoint adds to its parent's, and
        the keys of all its messages (to compare the next checkpoint with)."""
        messages = checkpoint["channel_values"].get("messages")
        if not isinstance(messages, builtins.list):
            return None, None
        keys = [records.message_key(m) for m in messages]
        last = index.last_messages.get(ns)
        seen: set[Any] = set()
        if last is not None and last[0] == parent:
            seen = last[1]
        elif parent and (entry := index.get(ns, parent)) is not None:  # once per thread and process
            before = self._checkpoint(entry.data).get("channel_values", {}).get("messages")
            seen = {records.message_key(m) for m in before} if isinstance(before, builtins.list) else set()
        added = [m for m, key in zip(messages, keys, strict=True) if key not in seen]
        return records.render_messages(added), set(keys)

    # -- deleting and copying ---------------------------------------------------------------

    def delete_thread(self, thread_id: str) -> None:
        """Delete the thread's session and every file of it (nothing if it is no thread)."""
        self._threads.delete(str(thread_id))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints whose metadata `run_id` is one of `run_ids`, and their
        writes, in every thread of the store."""
        runs = set(run_ids)
        if not runs:
            return

        def keeper(index: ThreadIndex) -> Keep:
            def keep(ns: str, checkpoint_id: str) -> bool:
                entry = index.checkpoints.get(ns, {}).get(checkpoint_id)
                return entry is None or self._metadata(entry).get("run_id") not in runs

            return keep

        for thread_id in self._threads.thread_ids():
            self._threads.rewrite(
                thread_id, lambda index: self._survivors(index, keeper(index)), "deleted runs"
            )

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Prune threads: with "keep_latest", keep each namespace's latest checkpoint (and
        the ancestors its DeltaChannel values are rebuilt from) and their writes; with
        "delete", delete the threads.

        Raises:
            ValueError: an unknown strategy.
        """
        if strategy not in ("keep_latest", "delete"):
            raise ValueError(f"strategy must be 'keep_latest' or 'delete', not {strategy!r}")

        def latest(index: ThreadIndex) -> Survivors | None:
            kept = records.latest_with_delta_ancestors(index, self._metadata)
            return self._survivors(index, lambda ns, checkpoint_id: (ns, checkpoint_id) in kept)

        for thread_id in thread_ids:
            if strategy == "delete":
                self.delete_thread(thread_id)
            else:
                self._threads.rewrite(str(thread_id), latest, "pruned to the latest checkpoints")

    def _survivors(self, index: ThreadIndex, keep: Keep) -> Survivors | None:
        """The records that rebuild what `keep` keeps, or None if it keeps everything. A
        kept checkpoint whose parent goes shows its whole conversation as content."""
        every = [(ns, i) for ns, known in index.checkpoints.items() for i in known]
        if all(keep(ns, i) for ns, i in every + builtins.list(index.writes)):
            return None
        out: Survivors = []
        for data, ts in index.survivors(keep):
            parent = data.get("parent_checkpoint_id")
            if data["role"] == records.CHECKPOINT and not (parent and keep(data["ns"], parent)):
                messages = self._checkpoint(data).get("channel_values", {}).get("messages")
                if isinstance(messages, builtins.list):
                    data = {**data, "content": records.render_messages(messages)}
            out.append((data, ts))
        return out

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Append every checkpoint and write of the source thread to the target thread."""
        self._threads.copy(str(source_thread_id), str(target_thread_id))

    # -- the rest ----------------------------------------------------------------------------

    def get_next_version(self, current: str | None, channel: None) -> str:
        """The next channel version, as SqliteSaver makes it: "<32-digit counter>.<random>"."""
        number = 0 if current is None else current if isinstance(current, int) else int(current.split(".")[0])
        return f"{number + 1:032}.{random.random():016}"

    def close(self) -> None:
        """Write the views (messages.json, ...) of the threads written here and close the
        journal, if this saver opened it."""
        if self._owns_journal:
            self.journal.compact_written()
            self.journal.close()

    def __enter__(self) -> JournalSaver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _target(config: RunnableConfig) -> tuple[str, str, str | None]:
    conf = config["configurable"]
    return str(conf["thread_id"]), str(conf.get("checkpoint_ns", "")), get_checkpoint_id(config)


def _config(thread_id: Any, ns: str, checkpoint_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": checkpoint_id}}


def _encoded(typed: tuple[str, bytes]) -> list[str]:
    return [typed[0], records.encode_blob(typed[1])]
