"""Figures: traces, titles and axis titles with units, built from the same rollups as the tables."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
import pytest

from agentcom import analysis
from agentcom.analysis import NONE_LABEL, empty_executions_frame, executions_frame, plots


def _titles(fig: go.Figure) -> tuple[str, str, str]:
    return fig.layout.title.text, fig.layout.xaxis.title.text, fig.layout.yaxis.title.text


def _styled(fig: go.Figure) -> None:
    assert fig.layout.template == pio.templates[plots.TEMPLATE]
    assert fig.layout.title.x == 0.01 and fig.layout.font.size == 13


def test_cost_over_time(frame: pd.DataFrame) -> None:
    fig = plots.cost_over_time(frame)
    assert _titles(fig) == ("Cost per day by model", "Day (UTC)", "Cost (USD)")
    assert fig.layout.barmode == "stack"
    assert {t.type for t in fig.data} == {"bar"}
    assert [t.name for t in fig.data] == ["claude-haiku-4-5", "claude-sonnet-4-5", "mystery-model", "qwen2.5-coder", NONE_LABEL]
    sonnet = next(t for t in fig.data if t.name == "claude-sonnet-4-5")
    assert list(sonnet.y) == pytest.approx([1.5, 0.375])  # the same numbers as cost_by_day
    assert "1 run(s) with unknown price not included" in fig.layout.annotations[0].text
    _styled(fig)


def test_cumulative_savings(frame: pd.DataFrame) -> None:
    fig = plots.cumulative_savings(frame)
    assert _titles(fig) == ("Cumulative savings against Claude", "Completed at (UTC)", "Cumulative amount (USD)")
    assert [t.name for t in fig.data] == ["Savings", "Actual cost", "Equivalent Claude cost"]
    assert list(fig.data[0].y) == pytest.approx(analysis.savings_over_time(frame)["cumulative_savings_usd"].tolist())
    assert fig.data[0].y[-1] == pytest.approx(0.8125)
    _styled(fig)


def test_cumulative_savings_buckets_long_frames(frame: pd.DataFrame) -> None:
    many = executions_frame(pd.concat([frame] * 300, ignore_index=True))  # 2,400 rows over ~27 hours
    fig = plots.cumulative_savings(many)
    assert len(fig.data[0].x) <= 2_000
    assert fig.data[0].y[-1] == pytest.approx(0.8125 * 300)
    assert len(plots.cumulative_savings(many, freq="D").data[0].x) == 2


def test_tokens_by_model(frame: pd.DataFrame) -> None:
    fig = plots.tokens_by_model(frame)
    assert _titles(fig) == ("Tokens by model", "Model", "Tokens")
    assert [t.name for t in fig.data] == ["Input", "Output", "Cache read", "Cache write"]
    cache_read = dict(zip(fig.data[2].x, fig.data[2].y))
    assert cache_read["claude-sonnet-4-5"] == 500 and cache_read["claude-haiku-4-5"] == 100


def test_latency_box(frame: pd.DataFrame) -> None:
    fig = plots.latency_by_model(frame)
    assert _titles(fig) == ("Execution time by model", "Model", "Latency (ms)")
    boxes = [t for t in fig.data if t.type == "box"]
    assert [b.name for b in boxes] == ["claude-haiku-4-5", "claude-sonnet-4-5", "mystery-model", "qwen2.5-coder", NONE_LABEL]
    sonnet = next(b for b in boxes if b.name == "claude-sonnet-4-5")  # 2000, 4000, 5000, 6000 ms
    assert (sonnet.q1[0], sonnet.median[0], sonnet.q3[0]) == pytest.approx((3500, 4500, 5250))
    assert (sonnet.lowerfence[0], sonnet.upperfence[0]) == (2000, 6000)
    markers = {t.name: dict(zip(t.x, t.y)) for t in fig.data if t.type == "scatter"}
    assert markers["p99"]["claude-sonnet-4-5"] == pytest.approx(5970)
    assert boxes[-1].marker.color == plots.palette([NONE_LABEL])[NONE_LABEL]


def test_latency_box_whiskers_stop_at_the_last_run_inside_1_5_iqr() -> None:
    ms = pd.Series([10.0, 11, 12, 13, 14, 100])
    stats = plots._box_stats(ms, pd.Series(["m"] * 6))
    assert stats.loc["m", "high"] == 14 and stats.loc["m", "low"] == 10


def test_latency_violin_samples_large_groups(frame: pd.DataFrame) -> None:
    many = executions_frame(pd.concat([frame] * 100, ignore_index=True))
    fig = plots.latency_by_model(many, kind="violin", max_points=50, seed=1)
    assert {t.type for t in fig.data} == {"violin"}
    assert max(len(t.y) for t in fig.data) == 50
    again = plots.latency_by_model(many, kind="violin", max_points=50, seed=1)
    assert np.array_equal(fig.data[0].y, again.data[0].y)  # seeded
    with pytest.raises(ValueError, match="kind"):
        plots.latency_by_model(frame, kind="pie")  # type: ignore[arg-type]


def test_routing_mix(frame: pd.DataFrame) -> None:
    fig = plots.routing_mix(frame)
    assert _titles(fig) == ("Routing mix by tier", "Tier", "Share of the tier's executions (%)")
    assert [t.name for t in fig.data] == ["claude", "ollama", "sidecar"]
    claude = fig.data[0]
    assert dict(zip(claude.x, claude.y)) == pytest.approx({"standard": 100 / 3, "complex": 100.0})
    assert list(fig.layout.xaxis.categoryarray) == ["trivial", "standard", "complex"]
    counts = plots.routing_mix(frame, normalize=False)
    assert counts.layout.yaxis.title.text == "Executions (runs)"
    assert dict(zip(counts.data[1].x, counts.data[1].y)) == {"standard": 2}


def test_cost_per_success(frame: pd.DataFrame) -> None:
    fig = plots.cost_per_success(frame)
    assert _titles(fig) == ("Cost per successful task by tier", "Tier", "Cost per success (USD)")
    assert fig.layout.barmode == "group"
    with_failures = dict(zip(fig.data[0].x, fig.data[0].y))
    assert with_failures["complex"] == pytest.approx(1.6875)


def test_reprice_comparison(frame: pd.DataFrame, prices: Any) -> None:
    fig = plots.reprice_comparison(analysis.reprice(frame, prices, tier_models={"complex": "claude-haiku-4-5"}))
    assert _titles(fig) == ("What-if cost by tier", "Tier", "Cost (USD)")
    assert [t.name for t in fig.data] == ["Actual", "What-if (toy-1)"]
    assert dict(zip(fig.data[1].x, fig.data[1].y))["complex"] == pytest.approx(0.007685)


@pytest.mark.parametrize(
    "figure",
    [plots.cost_over_time, plots.cumulative_savings, plots.tokens_by_model, plots.latency_by_model,
     plots.routing_mix, plots.cost_per_success],
)
def test_empty_frame_still_draws(figure: Any) -> None:
    fig = figure(empty_executions_frame())
    assert fig.layout.title.text and fig.layout.yaxis.title.text
    fig.to_json()


def test_palette_is_stable_and_consistent() -> None:
    colours = plots.palette(["qwen", "claude-sonnet-4-5", NONE_LABEL])
    assert list(colours) == ["claude-sonnet-4-5", "qwen", NONE_LABEL]
    assert colours == plots.palette([NONE_LABEL, "qwen", "claude-sonnet-4-5"])
    tiers = plots.palette(["complex", "trivial", "standard"])
    assert list(tiers) == ["trivial", "standard", "complex"]
    assert len(set(plots.palette([f"m{i}" for i in range(10)]).values())) == 10


def test_importing_analysis_does_not_import_plotly() -> None:
    code = "import sys, agentcom.analysis; assert 'plotly' not in sys.modules; agentcom.analysis.plots; assert 'plotly' in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
