"""Strategy: the pieces of `tools/bench.py`, the side-by-side benchmark of journal and the stores
users would pick instead (issue #16), split so no file passes ~500 lines.

corpus: the deterministic chat corpus; contenders: one small adapter per store; child: each
measurement in a fresh process (peak RSS per contender); runner: the sections, interleaved over
repetitions; report: tables, targets, JSON, chart; legacy: the earlier sections (history
against the docs' JSON file, langgraph).
"""
