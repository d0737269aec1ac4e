"""Strategy: turn the runner's medians into the BENCHMARKS.md tables (markdown, printed and
optionally written with the command line), the issue's targets as met / missed with their
numbers, the JSON of every figure, and the append-latency chart (matplotlib, imported only
when asked for)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchkit.contenders import SESSIONS

Results = dict[str, dict[str, dict[str, Any]]]
DASH = "—"


def _get(results: Results, section: str, name: str, key: str) -> float | None:
    value = results.get(section, {}).get(name, {}).get(key)
    return value if isinstance(value, (int, float)) else None


def _fmt(value: float | None, spec: str = ",.0f", suffix: str = "") -> str:
    return DASH if value is None else f"{value:{spec}}{suffix}"


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def _table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def appends_table(results: Results, names: list[str]) -> str:
    r = results.get("appends", {})
    full, normal = (
        _get(results, "appends", "sqlite WAL FULL", "rate"),
        _get(results, "appends", "sqlite WAL NORMAL", "rate"),
    )
    sync, raw = (
        _get(results, "appends", "raw fdatasync", "rate"),
        _get(results, "appends", "raw write", "rate"),
    )
    rows = []
    for name in names:
        if name not in r:
            continue
        rate, first, last = (_get(results, "appends", name, k) for k in ("rate", "first_us", "last_us"))
        rows.append(
            [
                name,
                _fmt(_get(results, "appends", name, "count")),
                _fmt(rate),
                *(_fmt(_ratio(rate, base), ".2f", "x") for base in (full, normal, sync, raw)),
                _fmt(first, ".1f"),
                _fmt(last, ".1f"),
                _fmt(_ratio(last, first), ".2f", "x"),
                _fmt(_get(results, "appends", name, "rss_mb"), ".0f"),
            ]
        )
    head = [
        "contender",
        "messages",
        "appends/s",
        "x sqlite FULL",
        "x sqlite NORMAL",
        "x raw fdatasync",
        "x raw write",
        "first-100 µs",
        "last-100 µs",
        "last/first",
        "peak RSS MB",
    ]
    return _table(head, rows)


def concurrency_table(results: Results, names: list[str], workers: int) -> str:
    labels = {
        "threads_one": f"{workers} threads, 1 session",
        "threads_many": f"{workers} threads, {workers} sessions",
        "procs_one": f"{workers} processes, 1 session",
        "procs_many": f"{workers} processes, {workers} sessions",
    }
    rows = [
        [name, *(_fmt(_get(results, kind, name, "rate")) for kind in SESSIONS)]
        for name in names
        if any(name in results.get(kind, {}) for kind in SESSIONS)
    ]
    return _table(["contender (appends/s)", *(labels[k] for k in SESSIONS)], rows)


def reads_table(results: Results, names: list[str]) -> str:
    praison = _get(results, "reads", "praisonaiagents", "cold_ms")
    rows = []
    for name in names:
        if name in results.get("reads", {}):
            cold, warm, one = (
                _get(results, "reads", name, k) for k in ("cold_ms", "warm_ms", "after_one_ms")
            )
            rows.append(
                [
                    name,
                    _fmt(cold, ".2f"),
                    _fmt(warm, ".2f"),
                    _fmt(one, ".2f"),
                    _fmt(_ratio(one, cold), ".3f", "x"),
                    _fmt(_ratio(cold, praison), ".2f", "x"),
                    _fmt(_get(results, "reads", name, "rss_mb"), ".0f"),
                ]
            )
    head = [
        "contender",
        "cold ms",
        "warm ms",
        "after one new ms",
        "after one / cold",
        "cold x praisonaiagents",
        "peak RSS MB",
    ]
    return _table(head, rows)


def listing_table(results: Results, sessions: int) -> str:
    rows = [
        [
            name,
            _fmt(v.get("create_s"), ".1f"),
            _fmt(v.get("first_list_ms"), ".1f"),
            _fmt(v.get("list50_ms"), ".1f"),
            _fmt(v.get("list_all_ms"), ".1f"),
            _fmt(v.get("create_rss_mb"), ".0f"),
        ]
        for name, v in results.get("listing", {}).items()
    ]
    head = [
        f"contender ({sessions:,} sessions x 10)",
        "create s",
        "first listing ms",
        "list_sessions(limit=50) ms",
        "list all ms",
        "peak RSS MB (create)",
    ]
    return _table(head, rows)


def scan_table(results: Results) -> str:
    rows = []
    for section, label in (("verify", "verify / integrity scan"), ("compaction", "compaction")):
        for name, v in results.get(section, {}).items():
            rows.append(
                [
                    f"{label}: {name}",
                    _fmt(v.get("mb"), ".1f"),
                    _fmt(v.get("seconds"), ".2f"),
                    _fmt(v.get("mb_s"), ".1f"),
                    _fmt(v.get("rss_mb"), ".0f"),
                ]
            )
    return _table(["operation", "MB", "seconds", "MB/s", "peak RSS MB"], rows)


def _target(label: str, value: float | None, goal: float, higher: bool = True, unit: str = "x") -> list[str]:
    if value is None:
        return [label, DASH, f"{'>=' if higher else '<='} {goal}{unit}", "not measured"]
    met = value >= goal if higher else value <= goal
    return [
        label,
        f"{value:.2f}{unit}",
        f"{'>=' if higher else '<='} {goal}{unit}",
        "met" if met else "**missed**",
    ]


def targets(results: Results) -> list[list[str]]:
    """The issue's targets against this run's figures."""

    def rate(section: str, name: str) -> float | None:
        return _get(results, section, name, "rate")

    a: Callable[[str], float | None] = lambda name: rate("appends", name)  # noqa: E731
    rows = [
        _target("always appends x sqlite WAL FULL", _ratio(a("journal always"), a("sqlite WAL FULL")), 1.3),
        _target("always appends x raw fdatasync loop", _ratio(a("journal always"), a("raw fdatasync")), 0.9),
        _target(
            "always prealloc appends x sqlite WAL FULL",
            _ratio(a("journal always prealloc"), a("sqlite WAL FULL")),
            1.3,
        ),
        _target(
            "always prealloc appends x raw fdatasync loop",
            _ratio(a("journal always prealloc"), a("raw fdatasync")),
            0.9,
        ),
    ]
    rows += [
        _target(f"store.add_message x Journal.append ({m})", _ratio(a(f"store {m}"), a(f"journal {m}")), 0.9)
        for m in ("none", "batch", "always")
    ]
    rows += [
        _target("none appends x sqlite WAL NORMAL", _ratio(a("journal none"), a("sqlite WAL NORMAL")), 2.5),
        _target("none appends x raw write loop", _ratio(a("journal none"), a("raw write")), 0.5),
        _target(
            "batch, 8 processes 1 session x one always thread",
            _ratio(rate("procs_one", "journal batch"), a("journal always")),
            2.0,
        ),
        _target(
            "always, 8 threads 8 sessions x sqlite FULL 8 connections",
            _ratio(rate("threads_many", "journal always"), rate("threads_many", "sqlite WAL FULL")),
            4.0,
        ),
        _target(
            "batch, 8 threads 8 sessions x sqlite FULL 8 connections",
            _ratio(rate("threads_many", "journal batch"), rate("threads_many", "sqlite WAL FULL")),
            4.0,
        ),
        _target(
            "batch, 8 threads 1 session x raw group commit",
            _ratio(rate("threads_one", "journal batch"), rate("threads_one", "raw group commit")),
            0.9,
        ),
    ]
    for name in ("journal none", "store none"):
        ratio = _ratio(_get(results, "appends", name, "last_us"), _get(results, "appends", name, "first_us"))
        count = _get(results, "appends", name, "count")
        rows.append(
            _target(f"flat: last-100 / first-100, {name}, {count or 0:,.0f} messages", ratio, 1.3, False)
        )
    cold = _get(results, "reads", "store none", "cold_ms")
    rows += [
        _target(
            "read 10,000 (store cold) x praisonaiagents get_chat_history",
            _ratio(cold, _get(results, "reads", "praisonaiagents", "cold_ms")),
            0.5,
            False,
        ),
        _target(
            "read after one new message x cold read (store)",
            _ratio(_get(results, "reads", "store none", "after_one_ms"), cold),
            0.05,
            False,
        ),
        _target("compaction MB/s", _get(results, "compaction", "journal none", "mb_s"), 100, unit=" MB/s"),
        _target("verify scan MB/s", _get(results, "verify", "journal none", "mb_s"), 200, unit=" MB/s"),
    ]
    return rows


def markdown(
    results: Results, names: list[str], command: str, meta: dict[str, Any], workers: int, sessions: int
) -> str:
    """Every table, as BENCHMARKS.md shows them, with the command line that made them."""
    parts = [f"`{command}` ({meta.get('summary', '')})"]
    sections = [
        ("Appends to one session", "appends", lambda: appends_table(results, names)),
        ("Many writers", "threads_one", lambda: concurrency_table(results, names, workers)),
        ("Reading a history", "reads", lambda: reads_table(results, names)),
        ("Sessions: create and list", "listing", lambda: listing_table(results, sessions)),
        ("Verify and compaction", "verify", lambda: scan_table(results)),
    ]
    for title, key, make in sections:
        if key in results:
            parts.append(f"### {title}\n\n{make()}")
    parts.append(
        "### Targets (issue #16)\n\n" + _table(["target", "this run", "goal", "met"], targets(results))
    )
    return "\n\n".join(parts) + "\n"


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The repetition whose rate is the median (its latency curve is the one drawn)."""
    ordered = sorted(runs, key=lambda run: run.get("rate") or 0.0)
    return ordered[len(ordered) // 2]


def chart(results: Results, path: str) -> None:
    """Append latency against session length, every contender, log scale (needs matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 6.5))
    colors = plt.get_cmap("tab20").colors
    for index, (name, value) in enumerate(results.get("appends", {}).items()):
        curve = _median_run(value["runs"]).get("curve") or []
        if curve:
            ax.plot(
                [p[0] for p in curve],
                [p[1] for p in curve],
                marker=".",
                label=name,
                color=colors[index % len(colors)],
                linestyle=("-", "--", ":")[index % 3],
            )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("session length (messages)")
    ax.set_ylabel("append latency, median of 100 (µs)")
    ax.set_title("Append latency against session length")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
