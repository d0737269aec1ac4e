"""Strategy: a deterministic, realistic chat corpus small enough to keep in memory.

A pool of distinct messages (system prompt, user/assistant turns, assistant tool calls with
JSON arguments, tool results in JSON), each 300-700 bytes as JSON; message i of a session is
pool[i % len(pool)], so every contender writes the same bytes and the corpus does not weigh on
the peak RSS being measured.
"""

from __future__ import annotations

import json
import random
from typing import Any

from bench_compaction import _WORDS as WORDS

# The words of tools/bench_compaction.py's corpus, so both benchmarks write the same vocabulary.
_WORDS = WORDS
_TOOLS = ("search_web", "read_file", "run_sql", "get_weather", "send_email", "list_directory")
POOL_SIZE = 2_000


def _text(rng: random.Random, low: int, high: int) -> str:
    """Sentences of corpus words, between `low` and `high` characters long."""
    target = rng.randint(low, high)
    words: list[str] = []
    size = 0
    while size < target:
        word = rng.choice(_WORDS)
        if not words or words[-1].endswith("."):
            word = word.capitalize()
        if rng.random() < 0.08:
            word += "."
        words.append(word)
        size += len(word) + 1
    return " ".join(words).rstrip(".") + "."


def _message(rng: random.Random, index: int, state: dict[str, Any]) -> dict[str, Any]:
    if index % 400 == 0:
        return {"role": "system", "content": _text(rng, 260, 560), "metadata": {"agent": "bench"}}
    pending = state.pop("call", None)
    if pending is not None:
        rows = [
            {"id": rng.randint(1, 10**6), "title": _text(rng, 30, 70), "score": round(rng.random(), 4)}
            for _ in range(rng.randint(2, 4))
        ]
        result = json.dumps({"ok": True, "count": len(rows), "results": rows})
        return {"role": "tool", "content": result, "tool_call_id": pending, "metadata": {}}
    if index % 2 == 1:
        return {"role": "user", "content": _text(rng, 250, 560), "metadata": {"source": "web"}}
    if rng.random() < 0.3:
        call_id = f"call_{index}_{rng.getrandbits(40):010x}"
        arguments = json.dumps(
            {
                "query": _text(rng, 60, 160),
                "limit": rng.randint(1, 50),
                "path": f"/srv/data/{rng.randint(0, 9999)}.json",
            }
        )
        state["call"] = call_id
        call = {
            "id": call_id,
            "type": "function",
            "function": {"name": rng.choice(_TOOLS), "arguments": arguments},
        }
        return {"role": "assistant", "content": _text(rng, 40, 200), "tool_calls": [call], "metadata": {}}
    meta = {"model": "gpt-4o", "token_count": rng.randint(20, 900)}
    return {"role": "assistant", "content": _text(rng, 230, 540), "metadata": meta}


def pool(seed: int = 16, size: int = POOL_SIZE) -> list[dict[str, Any]]:
    """`size` distinct messages of one long conversation (the same for a given seed)."""
    rng = random.Random(seed)
    state: dict[str, Any] = {}
    return [_message(rng, index, state) for index in range(size)]


def sizes(messages: list[dict[str, Any]]) -> tuple[int, int, float]:
    """Smallest, largest and mean JSON size in bytes."""
    lengths = [len(json.dumps(m)) for m in messages]
    return min(lengths), max(lengths), sum(lengths) / len(lengths)
