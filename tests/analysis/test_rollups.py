"""Rollups against figures worked out by hand from the eight rows in conftest.py."""

from __future__ import annotations

import pandas as pd
import pytest

from agentcom import analysis
from agentcom.analysis import NONE_LABEL, empty_executions_frame

approx = pytest.approx


def test_cost_by_model(frame: pd.DataFrame) -> None:
    table = analysis.cost_by_model(frame)
    assert list(table.index) == ["claude-haiku-4-5", "claude-sonnet-4-5", "mystery-model", "qwen2.5-coder", NONE_LABEL]
    sonnet = table.loc["claude-sonnet-4-5"]  # rows 1, 2, 5, 7
    assert (sonnet["runs"], sonnet["failed_runs"], sonnet["unpriced_runs"]) == (4, 2, 0)
    assert (sonnet["tokens_in"], sonnet["tokens_out"], sonnet["cache_read_tokens"], sonnet["cache_write_tokens"]) == (4500, 750, 500, 100)
    assert sonnet["cost_usd"] == approx(1.875)
    assert sonnet["savings_usd"] == approx(0.0)
    haiku = table.loc["claude-haiku-4-5"]
    assert (haiku["cache_read_tokens"], haiku["cost_usd"], haiku["savings_usd"]) == (100, 0.0625, 0.0625)
    mystery = table.loc["mystery-model"]  # unknown price: counted, not free
    assert (mystery["runs"], mystery["unpriced_runs"]) == (1, 1)
    assert mystery["cost_usd"] is pd.NA and mystery["savings_usd"] is pd.NA
    assert mystery["equivalent_claude_cost_usd"] == approx(0.25)
    shell = table.loc[NONE_LABEL]
    assert shell["cost_usd"] == 0.0 and shell["equivalent_claude_cost_usd"] is pd.NA
    assert table["runs"].sum() == len(frame)


def test_cost_by_tier(frame: pd.DataFrame) -> None:
    table = analysis.cost_by_tier(frame)
    assert list(table.index) == ["trivial", "standard", "complex"]
    standard = table.loc["standard"]  # rows 3, 4 (unpriced), 5
    assert (standard["runs"], standard["failed_runs"], standard["unpriced_runs"], standard["tokens_in"]) == (3, 0, 1, 4400)
    assert standard["cost_usd"] == approx(0.25)
    assert standard["equivalent_claude_cost_usd"] == approx(1.25)
    assert standard["savings_usd"] == approx(0.75)
    complex_ = table.loc["complex"]  # rows 1, 2, 7, 8
    assert (complex_["runs"], complex_["failed_runs"]) == (4, 3)
    assert (complex_["tokens_in"], complex_["tokens_out"], complex_["cache_read_tokens"], complex_["cache_write_tokens"]) == (4000, 700, 600, 100)
    assert complex_["cost_usd"] == approx(1.6875)
    assert complex_["equivalent_claude_cost_usd"] == approx(1.75)
    assert complex_["savings_usd"] == approx(0.0625)
    assert str(table["cost_usd"].dtype) == "Float64" and str(table["tokens_in"].dtype) == "Int64"


def test_cost_by_agent(frame: pd.DataFrame) -> None:
    table = analysis.cost_by_agent(frame)
    assert table["runs"].to_dict() == {"a1": 3, "a2": 2, "a3": 3}
    assert table.loc["a1", "cost_usd"] == approx(1.75)
    assert table.loc["a2", "cost_usd"] == approx(0.0)
    assert table.loc["a2", "unpriced_runs"] == 1
    assert table.loc["a3", "cost_usd"] == approx(0.1875)


def test_cost_by_day(frame: pd.DataFrame) -> None:
    table = analysis.cost_by_day(frame)
    day1, day2 = pd.Timestamp("2025-01-01", tz="UTC"), pd.Timestamp("2025-01-02", tz="UTC")
    assert list(table.index) == [day1, day2]
    assert table.loc[day1, "runs"] == 3 and table.loc[day1, "cost_usd"] == approx(1.5)
    assert table.loc[day2, "runs"] == 5 and table.loc[day2, "unpriced_runs"] == 1
    assert table.loc[day2, "cost_usd"] == approx(0.4375)
    assert table.loc[day2, "equivalent_claude_cost_usd"] == approx(0.75)
    split = analysis.cost_by_day(frame, by="model_used")
    assert split.index.names == ["day", "model_used"]
    assert split.loc[(day2, "claude-sonnet-4-5"), "cost_usd"] == approx(0.375)
    assert split.loc[(day2, "mystery-model"), "cost_usd"] is pd.NA
    hourly = analysis.cost_by_day(frame, freq="h")
    assert len(hourly) == 8 and hourly["runs"].sum() == 8


def test_savings_per_task(frame: pd.DataFrame) -> None:
    table = analysis.savings_per_task(frame)
    assert list(table.index) == ["t1", "t2", "t3", "t4", "t5", "t6"]  # by when the last generation finished
    t1 = table.loc["t1"]
    assert (t1["runs"], t1["status"], t1["cost_usd"]) == (2, "success", approx(1.5))
    t6 = table.loc["t6"]  # failed twice, the last time on haiku
    assert (t6["runs"], t6["status"], t6["model_used"]) == (2, "failed", "claude-haiku-4-5")
    assert t6["cost_usd"] == approx(0.1875) and t6["savings_usd"] == approx(0.0625)
    assert t6["completed_at"] == pd.Timestamp("2025-01-02T13:00Z")
    assert table.loc["t2", "savings_usd"] == approx(0.75)
    assert table.loc["t3", "cost_usd"] is pd.NA and table.loc["t3", "unpriced_runs"] == 1
    assert table.loc["t5", "equivalent_claude_cost_usd"] is pd.NA
    assert str(table["tier"].dtype) == "category"


def test_savings_per_task_joins_task_descriptions(frame: pd.DataFrame) -> None:
    tasks = pd.DataFrame({"task_id": ["t1", "t6", "zz"], "description": ["fix typo", "big refactor", "never ran"],
                          "status": ["completed", "dead_letter", "queued"]})
    table = analysis.savings_per_task(frame, tasks)
    assert list(table.columns[:1]) == ["description"]
    assert table.loc["t6", "description"] == "big refactor"
    assert pd.isna(table.loc["t2", "description"])
    assert table.loc["t6", "status"] == "failed"  # the execution's status wins over the task table's
    assert "zz" not in table.index


def test_savings_over_time(frame: pd.DataFrame) -> None:
    table = analysis.savings_over_time(frame)
    assert table.index.is_monotonic_increasing and table.index.name == "completed_at"
    assert table["cumulative_savings_usd"].tolist() == approx([0, 0, 0.75, 0.75, 0.75, 0.75, 0.75, 0.8125])
    assert table["cumulative_cost_usd"].tolist() == approx([0.5, 1.5, 1.5, 1.5, 1.75, 1.75, 1.875, 1.9375])
    assert table["savings_usd"].isna().sum() == 2  # the unknown ones stay unknown row by row
    daily = analysis.savings_over_time(frame, freq="D")
    assert daily["runs"].tolist() == [3, 5]
    assert daily["savings_usd"].tolist() == approx([0.75, 0.0625])
    assert daily["cumulative_savings_usd"].tolist() == approx([0.75, 0.8125])
    assert daily["unpriced_runs"].tolist() == [0, 1]


def test_routing_mix(frame: pd.DataFrame) -> None:
    table = analysis.routing_mix(frame)
    assert list(table.index) == [("trivial", "sidecar"), ("standard", "claude"), ("standard", "ollama"), ("complex", "claude")]
    assert table["runs"].tolist() == [1, 1, 2, 4]
    assert table["share"].tolist() == approx([1 / 8, 1 / 8, 2 / 8, 4 / 8])
    assert table["group_share"].tolist() == approx([1, 1 / 3, 2 / 3, 1])
    assert table["fallback_runs"].tolist() == [0, 1, 0, 0]
    assert table.loc[("trivial", "sidecar"), "fallback_rate"] is pd.NA  # fallback unknown for the one run
    assert table.loc[("standard", "claude"), "fallback_rate"] == 1.0
    assert table.loc[("standard", "ollama"), "fallback_rate"] == 0.0
    by_model = analysis.routing_mix(frame, by=["tier", "model_used"])
    assert by_model.loc[("trivial", NONE_LABEL), "runs"] == 1


def test_latency_percentiles(frame: pd.DataFrame) -> None:
    table = analysis.latency_percentiles(frame)
    sonnet = table.loc[("claude-sonnet-4-5", "complex")]  # 2000, 4000, 6000 ms
    assert sonnet["runs"] == 3
    assert (sonnet["p50_ms"], sonnet["p90_ms"], sonnet["p99_ms"]) == approx((4000, 5600, 5960))
    assert (sonnet["mean_ms"], sonnet["max_ms"]) == approx((4000, 6000))
    assert table.loc[("claude-sonnet-4-5", "standard"), "p99_ms"] == 5000
    per_model = analysis.latency_percentiles(frame, by="model_used")
    assert per_model.loc["claude-sonnet-4-5", "runs"] == 4
    assert per_model.loc["claude-sonnet-4-5", "p50_ms"] == approx(4500)
    assert per_model.loc[NONE_LABEL, "max_ms"] == 100


def test_cost_per_success_counts_failed_attempts(frame: pd.DataFrame) -> None:
    table = analysis.cost_per_success(frame)
    complex_ = table.loc["complex"]  # one success bought with three failed attempts
    assert (complex_["runs"], complex_["successes"], complex_["failed_runs"]) == (4, 1, 3)
    assert complex_["cost_usd"] == approx(1.6875)
    assert complex_["failed_cost_usd"] == approx(0.6875)
    assert complex_["cost_per_success_usd"] == approx(1.6875)
    assert complex_["success_run_cost_usd"] == approx(1.0)
    standard = table.loc["standard"]  # row 4's unknown price is left out, and counted
    assert (standard["successes"], standard["unpriced_runs"]) == (3, 1)
    assert standard["cost_per_success_usd"] == approx(0.25 / 3)
    assert standard["success_run_cost_usd"] == approx(0.125)
    overall = analysis.cost_per_success(frame, by=None)
    assert list(overall.index) == ["(all)"]
    assert overall.loc["(all)", "cost_per_success_usd"] == approx(1.9375 / 5)
    failures_only = analysis.cost_per_success(frame[frame["task_id"] == "t6"])
    assert failures_only.loc["complex", "cost_per_success_usd"] is pd.NA


def test_summary(frame: pd.DataFrame) -> None:
    totals = analysis.summary(frame)
    assert totals["runs"] == 8 and totals["tasks"] == 6
    assert (totals["successes"], totals["failed_runs"], totals["unpriced_runs"]) == (5, 3, 1)
    assert (totals["tokens_in"], totals["tokens_out"], totals["cache_read_tokens"], totals["cache_write_tokens"]) == (8400, 1500, 600, 100)
    assert totals["cost_usd"] == approx(1.9375)
    assert totals["equivalent_claude_cost_usd"] == approx(3.0)
    assert totals["savings_usd"] == approx(0.8125)
    assert totals["cost_per_success_usd"] == approx(0.3875)
    assert (totals["fallback_runs"], totals["fallback_rate"]) == (1, approx(1 / 7))
    assert totals["p50_ms"] == approx(3500)
    assert totals["first_completed_at"] == pd.Timestamp("2025-01-01T10:00Z")
    assert totals["last_completed_at"] == pd.Timestamp("2025-01-02T13:00Z")
    assert totals["price_tables"] == ["2025-01"]
    assert isinstance(totals["cost_usd"], float) and isinstance(totals["tokens_in"], int)


def test_all_unpriced_is_unknown_not_zero(frame: pd.DataFrame) -> None:
    unpriced = frame[frame["estimated_cost_usd"].isna()]
    assert analysis.summary(unpriced)["cost_usd"] is None
    assert analysis.cost_by_tier(unpriced).loc["standard", "cost_usd"] is pd.NA


@pytest.mark.parametrize(
    "rollup",
    [analysis.cost_by_model, analysis.cost_by_tier, analysis.cost_by_agent, analysis.cost_by_day,
     analysis.savings_per_task, analysis.savings_over_time, analysis.routing_mix, analysis.latency_percentiles,
     analysis.cost_per_success],
)
def test_empty_frame_gives_empty_tables_with_columns(rollup, frame: pd.DataFrame) -> None:  # type: ignore[no-untyped-def]
    empty = rollup(empty_executions_frame())
    assert len(empty) == 0
    assert list(empty.columns) == list(rollup(frame).columns)


def test_empty_summary() -> None:
    totals = analysis.summary(empty_executions_frame())
    assert totals["runs"] == 0 and totals["cost_usd"] is None and totals["p50_ms"] is None


def test_rollups_do_not_modify_their_input(frame: pd.DataFrame) -> None:
    before = frame.copy()
    for rollup in (analysis.cost_by_model, analysis.savings_per_task, analysis.routing_mix, analysis.summary):
        rollup(frame)
    pd.testing.assert_frame_equal(frame, before)
