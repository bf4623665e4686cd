"""How fast agentcom.analysis loads and rolls up a million executions.

Run: ``python benchmarks/analysis.py [--rows 1000000] [--naive-rows 50000] [--seed 7]``

Generates seeded synthetic executions shaped like ``/api/executions`` (tasks with retries,
three tiers, local and Claude models, cache tokens, ~2% unknown prices), writes them to
Parquet, then times: typing an in-memory frame, loading the Parquet file, every rollup, and a
what-if repricing. Beside it, the same rollups written as a plain Python loop over dicts, run
on a subset and extrapolated linearly (an estimate, and labelled as one). Prints figures only.
"""

from __future__ import annotations

import argparse
import bisect
import math
import os
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow

from agentcom import analysis

# per-million-token rates (in, out, cache read, cache write) used to make the synthetic costs
_RATES = {
    "claude-sonnet-4-5": (3.0, 15.0, 0.30, 3.75),
    "claude-haiku-4-5": (1.0, 5.0, 0.10, 1.25),
    "claude-opus-4-5": (5.0, 25.0, 0.50, 6.25),
}
_LOCAL = ("qwen2.5-coder:7b", "llama3.1:8b")


def synthetic(rows: int, seed: int) -> pd.DataFrame:
    """Raw rows as the hub exports them: ms timestamps, text labels, float USD (NaN = unknown)."""
    rng = np.random.default_rng(seed)
    attempts = rng.choice([1, 2, 3], size=rows, p=[0.8, 0.15, 0.05])
    task = np.repeat(np.arange(rows), attempts)[:rows]
    start = np.r_[0, np.flatnonzero(task[1:] != task[:-1]) + 1]
    generation = np.arange(rows) - np.repeat(start, np.diff(np.r_[start, rows]))
    last = np.r_[task[1:] != task[:-1], True]
    status = np.where(last & (rng.random(rows) < 0.92), "success", "failed")

    tier = rng.choice(np.array(["trivial", "standard", "complex", "unknown"]), size=rows, p=[0.25, 0.45, 0.25, 0.05])
    tier = np.take(tier, task % rows)  # every generation of a task keeps its tier
    fallback = (np.isin(tier, ["standard", "unknown"])) & (rng.random(rows) < 0.04)
    claude_models = rng.choice(np.array(list(_RATES)), size=rows, p=[0.7, 0.2, 0.1])
    local_models = rng.choice(np.array(_LOCAL), size=rows)
    model = np.where(tier == "trivial", None,
                     np.where((tier == "complex") | fallback, claude_models, local_models)).astype(object)
    mystery = (tier == "complex") & (rng.random(rows) < 0.08)
    model[mystery] = "claude-mystery-1"  # a model the price table does not know
    target = np.where(tier == "trivial", "sidecar", np.where((tier == "complex") | fallback, "claude", "ollama"))

    shell = tier == "trivial"
    tokens_in = np.where(shell, 0, rng.integers(200, 30_000, rows))
    tokens_out = np.where(shell, 0, rng.integers(50, 6_000, rows))
    cache_read = np.where(target == "claude", rng.integers(0, 20_000, rows), 0)
    cache_write = np.where(target == "claude", rng.integers(0, 4_000, rows), 0)

    def usd(rates: tuple[float, float, float, float]) -> np.ndarray:
        return (tokens_in * rates[0] + tokens_out * rates[1] + cache_read * rates[2] + cache_write * rates[3]) / 1e6

    sonnet = usd(_RATES["claude-sonnet-4-5"])
    claude_cost = np.select([model == m for m in _RATES], [usd(r) for r in _RATES.values()], default=np.nan)
    cost = np.where(target == "claude", claude_cost, 0.0)
    equivalent = np.where(shell, np.nan, np.where(target == "claude", claude_cost, sonnet))
    completed = 1_767_225_600_000 + np.sort(rng.integers(0, 90 * 86_400_000, rows))  # 90 days of 2026
    return pd.DataFrame(
        {
            "task_id": pd.array([f"task-{i:07d}" for i in task], dtype="str"),
            "generation": generation,
            "agent_id": rng.choice(np.array([f"sidecar-{i:02d}" for i in range(24)]), size=rows),
            "tier": tier,
            "target_type": target,
            "model_used": pd.array(model, dtype="str"),
            "tokens_in": tokens_in,
            "tokens_out": tokens_out,
            "cache_read_tokens": cache_read,
            "cache_write_tokens": cache_write,
            "estimated_cost_usd": np.round(cost, 9),
            "equivalent_claude_cost_usd": np.round(equivalent, 9),
            "savings_usd": np.round(equivalent, 9) - np.round(cost, 9),
            "execution_ms": np.where(shell, rng.integers(5, 2_000, rows), rng.lognormal(8.5, 0.8, rows).astype("int64")),
            "status": status,
            "completed_at": completed,
            "price_table": "agentcom-2026-11",
            "fallback_used": fallback,
        }
    )


ROLLUPS: dict[str, Callable[[pd.DataFrame], Any]] = {
    "cost_by_model": analysis.cost_by_model,
    "cost_by_tier": analysis.cost_by_tier,
    "cost_by_agent": analysis.cost_by_agent,
    "cost_by_day": analysis.cost_by_day,
    "cost_by_day(by=model)": lambda df: analysis.cost_by_day(df, by="model_used"),
    "savings_per_task": analysis.savings_per_task,
    "savings_over_time": analysis.savings_over_time,
    "savings_over_time(D)": lambda df: analysis.savings_over_time(df, freq="D"),
    "routing_mix": analysis.routing_mix,
    "latency_percentiles": analysis.latency_percentiles,
    "cost_per_success": analysis.cost_per_success,
    "summary": analysis.summary,
}


# ---------------------------------------------------------------------------- the naive version


def naive_rollups(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The same rollups as a plain loop over dicts: what one writes without pandas."""
    out: dict[str, Any] = {}
    for key in ("model_used", "tier", "agent_id"):
        groups: dict[Any, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        for r in records:
            _add(groups[r[key]], r)
        out[f"cost_by_{key}"] = groups
    by_day: dict[Any, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for r in records:
        _add(by_day[r["completed_at"] // 86_400_000], r)
    out["cost_by_day"] = by_day
    tasks: dict[str, dict[str, Any]] = {}
    for r in records:
        t = tasks.setdefault(r["task_id"], {"runs": 0, "cost": 0.0, "savings": 0.0, "last": -1})
        t["runs"] += 1
        t["cost"] += r["estimated_cost_usd"] if not _nan(r["estimated_cost_usd"]) else 0.0
        t["savings"] += r["savings_usd"] if not _nan(r["savings_usd"]) else 0.0
        if r["generation"] > t["last"]:
            t["last"], t["status"], t["at"] = r["generation"], r["status"], r["completed_at"]
    out["savings_per_task"] = sorted(tasks.items(), key=lambda item: item[1]["at"])
    running, series = 0.0, []
    for r in sorted(records, key=lambda r: r["completed_at"]):
        running += r["savings_usd"] if not _nan(r["savings_usd"]) else 0.0
        series.append((r["completed_at"], running))
    out["savings_over_time"] = series
    mix: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for r in records:
        cell = mix[(r["tier"], r["target_type"])]
        cell[0] += 1
        cell[1] += bool(r["fallback_used"])
    out["routing_mix"] = {k: (v[0], v[1] / v[0]) for k, v in mix.items()}
    latencies: dict[tuple[Any, Any], list[int]] = defaultdict(list)
    for r in records:
        bisect.insort(latencies[(r["model_used"], r["tier"])], r["execution_ms"])
    out["latency_percentiles"] = {k: [_percentile(v, q) for q in (0.5, 0.9, 0.99)] for k, v in latencies.items()}
    per_tier: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for r in records:
        cell = per_tier[r["tier"]]
        cell[0] += r["estimated_cost_usd"] if not _nan(r["estimated_cost_usd"]) else 0.0
        cell[1] += r["status"] == "success"
    out["cost_per_success"] = {k: v[0] / v[1] if v[1] else None for k, v in per_tier.items()}
    out["summary"] = {
        "runs": len(records),
        "tasks": len({r["task_id"] for r in records}),
        "cost_usd": sum(r["estimated_cost_usd"] for r in records if not _nan(r["estimated_cost_usd"])),
        "p50_ms": statistics.median(r["execution_ms"] for r in records),
    }
    return out


def _nan(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _add(cell: dict[str, float], r: dict[str, Any]) -> None:
    cell["runs"] += 1
    cell["failed_runs"] += r["status"] != "success"
    for column in ("tokens_in", "tokens_out", "cache_read_tokens", "cache_write_tokens"):
        cell[column] += r[column]
    if _nan(r["estimated_cost_usd"]):
        cell["unpriced_runs"] += 1
    else:
        cell["cost_usd"] += r["estimated_cost_usd"]
    for column in ("equivalent_claude_cost_usd", "savings_usd"):
        if not _nan(r[column]):
            cell[column] += r[column]


def _percentile(ordered: list[int], q: float) -> float:
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# ---------------------------------------------------------------------------- timing


class _Prices:
    """A stand-in price table (Decimal per million tokens) when agentcom.pricing is absent."""

    version = "benchmark"

    def price(self, model: str, tokens_in: int, tokens_out: int, cache_read: int = 0, cache_write: int = 0) -> Decimal | None:
        rates = _RATES.get(model)
        if rates is None:
            return Decimal(0) if model in _LOCAL else None
        counts = (tokens_in, tokens_out, cache_read, cache_write)
        return sum((Decimal(n) * Decimal(str(r)) for n, r in zip(counts, rates)), Decimal(0)) / 1_000_000


def _best(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _line(label: str, seconds: float, note: str = "") -> None:
    print(f"  {label:<38} {seconds * 1000:>9.0f} ms  {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--naive-rows", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="best of N for each step")
    args = parser.parse_args()

    print(f"agentcom.analysis benchmark: {args.rows:,} executions, seed {args.seed}")
    print(f"  pandas {pd.__version__}, numpy {np.__version__}, pyarrow {pyarrow.__version__}, {os.cpu_count()} CPU(s)")
    start = time.perf_counter()
    raw = synthetic(args.rows, args.seed)
    print(f"  generated in {time.perf_counter() - start:.1f} s (not counted below)\n")

    with tempfile.TemporaryDirectory() as tmp:
        parquet = Path(tmp) / "executions.parquet"
        start = time.perf_counter()
        analysis.executions_frame(raw).to_parquet(parquet)
        print(f"  Parquet export written in {time.perf_counter() - start:.2f} s ({parquet.stat().st_size / 1e6:.0f} MB)\n")

        print(f"pandas, best of {args.repeat}:")
        from_memory = _best(lambda: analysis.executions_frame(raw), args.repeat)
        _line("executions_frame(in-memory raw frame)", from_memory)
        from_parquet = _best(lambda: analysis.load_executions(parquet), args.repeat)
        _line("load_executions(parquet)", from_parquet)
        df = analysis.load_executions(parquet)
        rollup_times = {name: _best(lambda fn=fn: fn(df), args.repeat) for name, fn in ROLLUPS.items()}
        for name, seconds in rollup_times.items():
            _line(name, seconds)
        all_rollups = sum(rollup_times.values())
        _line("all rollups", all_rollups)
        print()
        _line("TOTAL parquet load + all rollups", from_parquet + all_rollups, "(target < 2000 ms)")
        _line("TOTAL in-memory frame + all rollups", from_memory + all_rollups, "(target < 2000 ms)")
        start = time.perf_counter()
        analysis.load_executions(parquet)
        for fn in ROLLUPS.values():
            fn(df)
        _line("one cold pass, parquet + rollups", time.perf_counter() - start, "(single run, not best-of)")

    records_n = min(100_000, args.rows)
    records = raw.iloc[:records_n].to_dict("records")
    seconds = _best(lambda: analysis.executions_frame(records), 1)
    _line(f"executions_frame({records_n:,} dicts)", seconds, f"(JSON-like records; x{args.rows / records_n:.0f} ~ "
          f"{seconds * args.rows / records_n:.1f} s for all rows)")

    try:
        from agentcom.pricing import PriceTable

        table: Any = PriceTable.load()
    except ImportError:
        table = _Prices()
    start = time.perf_counter()
    what_if = analysis.reprice(df, table, tier_models={"complex": "claude-haiku-4-5"})
    _line(f"reprice(complex -> haiku, {what_if.totals['price_table']})", time.perf_counter() - start,
          f"(cost {what_if.totals['cost_usd']:,.2f} -> {what_if.totals['whatif_cost_usd']:,.2f} USD)")

    subset = raw.iloc[: args.naive_rows].to_dict("records")
    naive = _best(lambda: naive_rollups(subset), 1)
    scale = args.rows / args.naive_rows
    print(f"\nnaive Python loop over dicts (same rollups), MEASURED on {args.naive_rows:,} rows, "
          f"EXTRAPOLATED x{scale:.0f} linearly:")
    _line(f"measured, {args.naive_rows:,} rows", naive)
    _line(f"estimate for {args.rows:,} rows", naive * scale, "(extrapolated, not measured; sorts grow faster)")
    pandas_subset = _best(lambda: [fn(analysis.executions_frame(raw.iloc[: args.naive_rows])) for fn in ROLLUPS.values()], 1)
    _line(f"pandas on the same {args.naive_rows:,} rows", pandas_subset, "(frame + all rollups, measured)")
    totals = naive_rollups(subset)["summary"]
    check = analysis.summary(analysis.executions_frame(raw.iloc[: args.naive_rows]))
    print(f"  cross-check on the subset: total cost naive {totals['cost_usd']:.6f} vs pandas {check['cost_usd']:.6f} USD, "
          f"tasks {totals['tasks']} vs {check['tasks']}")


if __name__ == "__main__":
    main()
