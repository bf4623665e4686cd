"""Plotly figures of the rollups: executions frame in, ``plotly.graph_objects.Figure`` out.

Every figure is built from the matching rollup in :mod:`agentcom.analysis` (so a figure and
a table never disagree) and styled by :func:`style` and :func:`palette`: one template, one
colour-blind-safe palette, titles and axis titles with units. This is the only module of the
package that imports plotly.

Large frames are fine: box plots are drawn from precomputed quartiles, violins from a seeded
sample, and long cumulative series are bucketed, so a figure stays small whatever the rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from agentcom.analysis import _rollups as rollups
from agentcom.analysis._frame import TIERS
from agentcom.analysis._reprice import Repricing

__all__ = [
    "TEMPLATE",
    "cost_over_time",
    "cost_per_success",
    "cumulative_savings",
    "latency_by_model",
    "palette",
    "reprice_comparison",
    "routing_mix",
    "style",
    "tokens_by_model",
]

TEMPLATE = "plotly_white"
_COLOURS: tuple[str, ...] = tuple(qualitative.Safe[:10])  # the 11th, grey, is kept for "(none)"
_GREY = qualitative.Safe[10]
_MAX_POINTS = 2_000  # cumulative series longer than this are bucketed


def palette(names: Iterable[str]) -> dict[str, str]:
    """A colour per label, stable for a given set: tiers in routing order, other labels sorted,
    ``"(none)"`` grey. Colours repeat after ten labels."""
    unique = {str(n) for n in names}
    ordered = [t for t in TIERS if t in unique] + sorted(unique - set(TIERS) - {rollups.NONE_LABEL})
    colours = {name: _COLOURS[i % len(_COLOURS)] for i, name in enumerate(ordered)}
    if rollups.NONE_LABEL in unique:
        colours[rollups.NONE_LABEL] = _GREY
    return colours


def style(fig: go.Figure, *, title: str, x_title: str, y_title: str, legend_title: str | None = None) -> go.Figure:
    """Apply the shared look: template, font, left-aligned title, axis titles, legend title."""
    fig.update_layout(
        template=TEMPLATE,
        title={"text": title, "x": 0.01, "xanchor": "left"},
        xaxis_title=x_title,
        yaxis_title=y_title,
        legend_title_text=legend_title,
        font={"family": "Inter, Helvetica, Arial, sans-serif", "size": 13},
        margin={"l": 70, "r": 20, "t": 60, "b": 60},
        hoverlabel={"namelength": -1},
    )
    return fig


def cost_over_time(df: pd.DataFrame, *, freq: str = "D") -> go.Figure:
    """Stacked bars: cost per day (or ``freq`` bucket) by model, from :func:`cost_by_day`."""
    table = rollups.cost_by_day(df, by="model_used", freq=freq).reset_index()
    colours = palette(table["model_used"].astype(str))
    fig = go.Figure()
    groups = dict(list(table.groupby(table["model_used"].astype(str), sort=False)))
    for model in colours:  # palette order: "(none)" last
        rows = groups[model]
        fig.add_trace(
            go.Bar(
                name=model,
                x=rows["day"],
                y=_floats(rows["cost_usd"]),
                marker_color=colours[model],
                customdata=np.column_stack([rows["runs"], rows["unpriced_runs"]]),
                hovertemplate="%{x}<br>$%{y:.4f}<br>%{customdata[0]} runs, %{customdata[1]} unpriced"
                              "<extra>%{fullData.name}</extra>",
            )
        )
    fig.update_layout(barmode="stack")
    when = "day" if freq == "D" else f"{freq} bucket"
    _note_unpriced(fig, int(table["unpriced_runs"].sum()))
    return style(fig, title=f"Cost per {when} by model", x_title="Day (UTC)" if freq == "D" else "Time (UTC)",
                 y_title="Cost (USD)", legend_title="Model")


def cumulative_savings(df: pd.DataFrame, *, freq: str | None = None) -> go.Figure:
    """Lines: running totals of savings, actual cost and equivalent Claude cost, from
    :func:`savings_over_time`. Without ``freq``, long frames are bucketed to at most ~2,000 points."""
    table = rollups.savings_over_time(df, freq=freq or _auto_freq(df["completed_at"]))
    series = {
        "Savings": "cumulative_savings_usd",
        "Actual cost": "cumulative_cost_usd",
        "Equivalent Claude cost": "cumulative_equivalent_claude_cost_usd",
    }
    colours = palette(series)
    fig = go.Figure(
        [
            go.Scatter(name=name, x=table.index, y=_floats(table[column]), mode="lines", line={"color": colours[name]},
                       hovertemplate="%{x}<br>$%{y:.4f}<extra>%{fullData.name}</extra>")
            for name, column in series.items()
        ]
    )
    _note_unpriced(fig, int(table["unpriced_runs"].sum()))
    return style(fig, title="Cumulative savings against Claude", x_title="Completed at (UTC)",
                 y_title="Cumulative amount (USD)", legend_title="")


def tokens_by_model(df: pd.DataFrame) -> go.Figure:
    """Stacked bars: input, output, cache-read and cache-write tokens per model, from :func:`cost_by_model`."""
    table = rollups.cost_by_model(df)
    kinds = {
        "Input": "tokens_in", "Output": "tokens_out", "Cache read": "cache_read_tokens", "Cache write": "cache_write_tokens",
    }
    colours = palette(kinds)
    models = table.index.astype(str)
    fig = go.Figure(
        [go.Bar(name=name, x=models, y=_floats(table[column]), marker_color=colours[name],
                hovertemplate="%{x}<br>%{y:,} tokens<extra>%{fullData.name}</extra>")
         for name, column in kinds.items()]
    )
    fig.update_layout(barmode="stack")
    return style(fig, title="Tokens by model", x_title="Model", y_title="Tokens", legend_title="Token kind")


def latency_by_model(
    df: pd.DataFrame, *, kind: Literal["box", "violin"] = "box", max_points: int = 5_000, seed: int = 0
) -> go.Figure:
    """Execution time per model: boxes from exact quartiles (whiskers at the furthest run within
    1.5 IQR) with p90/p99 markers from :func:`latency_percentiles`, or violins of a seeded sample
    of at most ``max_points`` runs per model."""
    ms = df["execution_ms"].astype("Float64")
    model = rollups._labels(df, ["model_used"])[0].astype(str)
    known = ms.notna().to_numpy()
    ms, model = ms[known].astype("float64"), model[known]
    colours = palette(model.unique())
    fig = go.Figure()
    if kind == "violin":
        rng = np.random.default_rng(seed)
        groups = dict(list(ms.groupby(model, sort=False)))
        for name in colours:  # palette order: "(none)" last
            sample = groups[name].to_numpy()
            if len(sample) > max_points:
                sample = rng.choice(sample, size=max_points, replace=False)
            fig.add_trace(go.Violin(name=name, y=sample, marker_color=colours[name], box_visible=True,
                                    meanline_visible=True, points=False))
    elif kind == "box":
        stats = _box_stats(ms, model).reindex(list(colours))  # palette order: "(none)" last
        for name, row in stats.iterrows():
            fig.add_trace(go.Box(name=name, x=[name], q1=[row["q1"]], median=[row["median"]], q3=[row["q3"]],
                                 lowerfence=[row["low"]], upperfence=[row["high"]], mean=[row["mean"]],
                                 marker_color=colours[name], boxpoints=False))
        marks = rollups.latency_percentiles(df, by="model_used")
        for column, symbol in (("p90_ms", "triangle-up"), ("p99_ms", "diamond")):
            fig.add_trace(go.Scatter(name=column.removesuffix("_ms"), x=marks.index.astype(str),
                                     y=_floats(marks[column]),
                                     mode="markers", marker={"symbol": symbol, "color": "black", "size": 8},
                                     hovertemplate="%{x}<br>%{y:,.0f} ms<extra>%{fullData.name}</extra>"))
    else:
        raise ValueError(f"kind must be 'box' or 'violin', got {kind!r}")
    return style(fig, title="Execution time by model", x_title="Model", y_title="Latency (ms)", legend_title="")


def routing_mix(df: pd.DataFrame, *, normalize: bool = True) -> go.Figure:
    """Stacked bars: where each tier's work went (target type), as a share of the tier's runs
    (``normalize``) or as run counts, from :func:`routing_mix`; hover shows the fallback rate."""
    table = rollups.routing_mix(df, by=("tier", "target_type")).reset_index()
    colours = palette(table["target_type"].astype(str))
    fig = go.Figure()
    for target, rows in table.groupby(table["target_type"].astype(str), sort=True):
        y = _floats(rows["group_share"]) * 100 if normalize else rows["runs"].to_numpy()
        fig.add_trace(
            go.Bar(name=target, x=rows["tier"].astype(str), y=y, marker_color=colours[target],
                   customdata=np.column_stack([rows["runs"], _floats(rows["fallback_rate"]) * 100]),
                   hovertemplate="%{x}: %{y:.1f}<br>%{customdata[0]} runs, fallback %{customdata[1]:.1f}%"
                                 "<extra>%{fullData.name}</extra>")
        )
    fig.update_layout(barmode="stack")
    fig.update_xaxes(categoryorder="array", categoryarray=[t for t in TIERS if t in set(table["tier"].astype(str))]
                     + sorted(set(table["tier"].astype(str)) - set(TIERS)))
    y_title = "Share of the tier's executions (%)" if normalize else "Executions (runs)"
    return style(fig, title="Routing mix by tier", x_title="Tier", y_title=y_title, legend_title="Target")


def cost_per_success(df: pd.DataFrame, *, by: str = "tier") -> go.Figure:
    """Grouped bars: cost per success with failed attempts counted, beside the cost of a
    successful run alone, from :func:`cost_per_success`."""
    table = rollups.cost_per_success(df, by=by)
    labels = table.index.astype(str)
    series = {"With failed attempts": "cost_per_success_usd", "Successful run only": "success_run_cost_usd"}
    colours = palette(series)
    fig = go.Figure(
        [go.Bar(name=name, x=labels, y=_floats(table[column]), marker_color=colours[name],
                hovertemplate="%{x}<br>$%{y:.5f}<extra>%{fullData.name}</extra>")
         for name, column in series.items()]
    )
    fig.update_layout(barmode="group")
    label = by.replace("_", " ")
    return style(fig, title=f"Cost per successful task by {label}", x_title=label.capitalize(),
                 y_title="Cost per success (USD)", legend_title="")


def reprice_comparison(result: Repricing) -> go.Figure:
    """Grouped bars per tier: actual cost against the what-if cost of :func:`reprice`."""
    table = result.by_tier
    tiers = table.index.astype(str)
    series = {"Actual": "cost_usd", f"What-if ({result.totals.get('price_table', '?')})": "whatif_cost_usd"}
    colours = palette(series)
    fig = go.Figure(
        [go.Bar(name=name, x=tiers, y=_floats(table[column]), marker_color=colours[name],
                hovertemplate="%{x}<br>$%{y:.4f}<extra>%{fullData.name}</extra>")
         for name, column in series.items()]
    )
    fig.update_layout(barmode="group")
    return style(fig, title="What-if cost by tier", x_title="Tier", y_title="Cost (USD)", legend_title="")


# ---------------------------------------------------------------------------- helpers


def _floats(column: pd.Series) -> np.ndarray:
    return np.asarray(column.to_numpy("float64", na_value=np.nan), dtype="float64")


def _note_unpriced(fig: go.Figure, unpriced: int) -> None:
    if unpriced:
        fig.add_annotation(text=f"{unpriced} run(s) with unknown price not included", xref="paper", yref="paper",
                           x=1, y=1.06, xanchor="right", showarrow=False, font={"size": 11, "color": _GREY})


def _auto_freq(stamps: pd.Series) -> str | None:
    """None (one point per run) for short frames, else the finest of min/h/D/7D giving <= ~2,000 points."""
    if len(stamps) <= _MAX_POINTS or stamps.isna().all():
        return None
    span = stamps.max() - stamps.min()
    for freq in ("min", "h", "D"):
        if span / pd.Timedelta(1, unit=freq) <= _MAX_POINTS:
            return freq
    return "7D"


def _box_stats(ms: pd.Series, model: pd.Series) -> pd.DataFrame:
    groups = ms.groupby(model, sort=True)
    stats = pd.DataFrame({"q1": groups.quantile(0.25), "median": groups.median(), "q3": groups.quantile(0.75),
                          "mean": groups.mean()})
    iqr = stats["q3"] - stats["q1"]
    low_limit = (stats["q1"] - 1.5 * iqr).reindex(model).to_numpy()
    high_limit = (stats["q3"] + 1.5 * iqr).reindex(model).to_numpy()
    values = ms.to_numpy()
    stats["low"] = ms.where(values >= low_limit).groupby(model, sort=True).min()
    stats["high"] = ms.where(values <= high_limit).groupby(model, sort=True).max()
    return stats
