"""Rollups of the executions frame: cost, tokens, savings, routing and latency.

Each function takes the frame from :func:`executions_frame` and returns a new DataFrame; none
reads files or the network, so notebooks, plots and tests call the same code.

Rules shared by all of them:

- An unknown price (NA) is left out of every USD sum and counted in ``unpriced_runs``; a group
  with no priced run has NA cost, not 0, so nobody mistakes it for free.
- A missing label (a shell run has no model) is grouped under ``"(none)"``.
- Cost counts every attempt: a failed generation's tokens were paid for too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "NONE_LABEL",
    "cost_by_agent",
    "cost_by_day",
    "cost_by_model",
    "cost_by_tier",
    "cost_per_success",
    "latency_percentiles",
    "routing_mix",
    "savings_over_time",
    "savings_per_task",
    "summary",
]

NONE_LABEL = "(none)"
"""The group label of rows whose key (model, agent, ...) is missing."""

Keys = str | Sequence[str]

_TOKENS = ("tokens_in", "tokens_out", "cache_read_tokens", "cache_write_tokens")
_MONEY = {  # frame column -> rollup column
    "estimated_cost_usd": "cost_usd",
    "equivalent_claude_cost_usd": "equivalent_claude_cost_usd",
    "savings_usd": "savings_usd",
}
_COST_COLUMNS = ["runs", "failed_runs", "unpriced_runs", *_TOKENS, *_MONEY.values()]


def cost_by_model(df: pd.DataFrame) -> pd.DataFrame:
    """Cost and tokens per ``model_used``; columns as :func:`cost_by_tier`."""
    return _cost_by(df, ["model_used"])


def cost_by_tier(df: pd.DataFrame) -> pd.DataFrame:
    """Cost and tokens per tier, in routing order.

    Columns: runs, failed_runs, unpriced_runs, tokens_in, tokens_out, cache_read_tokens,
    cache_write_tokens, cost_usd, equivalent_claude_cost_usd, savings_usd.
    """
    return _cost_by(df, ["tier"])


def cost_by_agent(df: pd.DataFrame) -> pd.DataFrame:
    """Cost and tokens per ``agent_id``; columns as :func:`cost_by_tier`."""
    return _cost_by(df, ["agent_id"])


def cost_by_day(df: pd.DataFrame, *, by: Keys | None = None, freq: str = "D") -> pd.DataFrame:
    """Cost and tokens per UTC day (or per ``freq`` bucket, e.g. ``"h"``), optionally split ``by``
    a label such as ``"model_used"``. Index: ``day`` (bucket start, UTC) [, by...]; only buckets
    with runs appear. Columns as :func:`cost_by_tier`."""
    day = df["completed_at"].dt.floor(freq).rename("day")
    return _cost_by(df, [day, *_as_list(by)])


def savings_per_task(df: pd.DataFrame, tasks: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per task, summed over all its generations, ordered by when it finished.

    Index ``task_id``. Columns: runs, unpriced_runs, cost_usd, equivalent_claude_cost_usd,
    savings_usd, then tier, model_used, status and completed_at of the last generation.
    With ``tasks`` (e.g. :func:`load_tasks`), its other columns (description, priority, ...)
    are joined in front.
    """
    if len(df) == 0:
        out = _empty_per_task(df)
    else:  # numpy over task codes: a groupby over ~1M distinct string keys is several times slower
        codes, task_ids = pd.factorize(df["task_id"], use_na_sentinel=False)
        n = len(task_ids)
        generation = df["generation"].to_numpy("int64", na_value=-1)
        newest = np.full(n, np.iinfo(np.int64).min)
        np.maximum.at(newest, codes, generation)
        is_last = generation == newest[codes]
        last = np.empty(n, dtype=np.intp)
        last[codes[is_last]] = np.flatnonzero(is_last)
        unpriced = df["estimated_cost_usd"].isna().to_numpy()
        columns: dict[str, Any] = {
            "runs": np.bincount(codes, minlength=n),
            "unpriced_runs": np.bincount(codes, weights=unpriced, minlength=n).astype("int64"),
            **{to: _sum_by_code(df[frm], codes, n) for frm, to in _MONEY.items()},
            **{c: df[c].array.take(last) for c in ("tier", "model_used", "status", "completed_at")},
        }
        out = pd.DataFrame(columns, index=pd.Index(task_ids, name="task_id"))
        out = out.iloc[np.argsort(columns["completed_at"].to_numpy("datetime64[ms]"), kind="stable")]
    if tasks is not None:
        extra = tasks.set_index("task_id").drop(columns=[c for c in out.columns if c in tasks.columns])
        out = extra.reindex(out.index).join(out)
    return out


def savings_over_time(df: pd.DataFrame, *, freq: str | None = None) -> pd.DataFrame:
    """Savings, cost and equivalent Claude cost, each with its running total, over time.

    Without ``freq`` one row per execution in completion order (index ``completed_at``); with
    ``freq`` (``"h"``, ``"D"``, ...) one row per bucket that had runs, indexed by its start.
    Columns: runs, unpriced_runs, cost_usd, equivalent_claude_cost_usd, savings_usd and
    cumulative_<each USD column>. Unknown amounts add nothing to the running totals.
    """
    measures = _measures(df).drop(columns=["failed_runs", *_TOKENS])
    stamps = df["completed_at"]
    if freq is None:
        order = np.argsort(stamps.to_numpy("datetime64[ms]"), kind="stable")
        out = measures.iloc[order].set_axis(pd.Index(stamps.iloc[order], name="completed_at"))
    else:
        out = measures.groupby(stamps.dt.floor(freq).rename("completed_at"), sort=True).sum(min_count=1)
        out[["runs", "unpriced_runs"]] = out[["runs", "unpriced_runs"]].fillna(0).astype("int64")
    for column in _MONEY.values():
        out[f"cumulative_{column}"] = out[column].fillna(0).cumsum()
    return out


def routing_mix(df: pd.DataFrame, *, by: Keys = ("tier", "target_type")) -> pd.DataFrame:
    """Where work went: runs per ``by`` group with shares and fallback rate.

    Columns: runs, share (of all runs), group_share (of the runs of the same first key, e.g.
    the same tier), fallback_runs, fallback_rate (fallback_runs over runs whose
    ``fallback_used`` is known; NA when none is).
    """
    keys = _as_list(by)
    fallback = df["fallback_used"]
    work = pd.DataFrame(
        {
            "runs": np.ones(len(df), dtype="int64"),
            "fallback_runs": fallback.fillna(False).astype("int64"),
            "_known": fallback.notna().astype("int64"),
        },
        index=df.index,
    )
    out = work.groupby(_labels(df, keys), observed=True, sort=True, dropna=False).sum()
    total = out["runs"].sum()
    out["share"] = (out["runs"] / total).astype("Float64")
    first = out.index.get_level_values(0)
    out["group_share"] = (out["runs"] / out.groupby(first, observed=True)["runs"].transform("sum")).astype("Float64")
    known = out.pop("_known")
    out["fallback_rate"] = (out["fallback_runs"].astype("Float64") / known.where(known > 0).astype("Float64"))
    return out[["runs", "share", "group_share", "fallback_runs", "fallback_rate"]]


def latency_percentiles(df: pd.DataFrame, *, by: Keys = ("model_used", "tier")) -> pd.DataFrame:
    """Execution time per ``by`` group. Columns: runs, p50_ms, p90_ms, p99_ms, mean_ms, max_ms
    (linear interpolation between runs; runs without a time are left out). Filter ``df`` first
    to look at successes only."""
    ms = df["execution_ms"].astype("Float64")
    groups = ms.groupby(_labels(df, _as_list(by)), observed=True, sort=True, dropna=False)
    quantiles = groups.quantile([0.5, 0.9, 0.99]).unstack(level=-1).reindex(columns=[0.5, 0.9, 0.99])
    out = pd.DataFrame(
        {
            "runs": groups.count().astype("int64"),
            "p50_ms": quantiles[0.5],
            "p90_ms": quantiles[0.9],
            "p99_ms": quantiles[0.99],
            "mean_ms": groups.mean(),
            "max_ms": groups.max(),
        }
    )
    return out.astype({c: "Float64" for c in out.columns if c != "runs"})


def cost_per_success(df: pd.DataFrame, *, by: Keys | None = "tier") -> pd.DataFrame:
    """What a success really costs once the failed attempts are paid for.

    Per ``by`` group (``None``: one row, ``"(all)"``). Columns: runs, successes, failed_runs,
    unpriced_runs, cost_usd (every priced run), failed_cost_usd, cost_per_success_usd
    (cost_usd / successes), success_run_cost_usd (mean cost of a successful run alone, the
    figure you get when failures are forgotten). A task succeeds at most once, so successes
    count successful tasks.
    """
    success = (df["status"] == "success").fillna(False).to_numpy(bool)
    cost = df["estimated_cost_usd"]
    work = pd.DataFrame(
        {
            "runs": np.ones(len(df), dtype="int64"),
            "successes": success.astype("int64"),
            "failed_runs": (~success).astype("int64"),
            "unpriced_runs": cost.isna().astype("int64"),
            "cost_usd": cost,
            "failed_cost_usd": cost.where(~success),
            "_success_cost": cost.where(success),
            "_priced_successes": (cost.notna() & success).astype("int64"),
        },
        index=df.index,
    )
    keys = _labels(df, _as_list(by)) if by is not None else [pd.Series("(all)", index=df.index, name="scope")]
    out = work.groupby(keys, observed=True, sort=True, dropna=False).sum(min_count=1)
    counts = ["runs", "successes", "failed_runs", "unpriced_runs", "_priced_successes"]
    out[counts] = out[counts].fillna(0).astype("int64")
    out["cost_per_success_usd"] = out["cost_usd"] / out["successes"].where(out["successes"] > 0).astype("Float64")
    priced = out.pop("_priced_successes")
    out["success_run_cost_usd"] = out.pop("_success_cost") / priced.where(priced > 0).astype("Float64")
    return out


def summary(df: pd.DataFrame) -> dict[str, Any]:
    """Totals of the whole frame as plain Python values (None where unknown).

    Keys: runs, tasks, successes, failed_runs, unpriced_runs, tokens_in, tokens_out,
    cache_read_tokens, cache_write_tokens, cost_usd, equivalent_claude_cost_usd, savings_usd,
    cost_per_success_usd, fallback_runs, fallback_rate, p50_ms, p90_ms, p99_ms,
    first_completed_at, last_completed_at, price_tables.
    """
    successes = int((df["status"] == "success").fillna(False).sum())
    cost = _total(df["estimated_cost_usd"])
    fallback = df["fallback_used"]
    known = int(fallback.notna().sum())
    fallback_runs = int(fallback.fillna(False).sum())
    ms = df["execution_ms"].dropna()
    percentiles = ms.astype("float64").quantile([0.5, 0.9, 0.99]).tolist() if len(ms) else [None] * 3
    stamps = df["completed_at"].dropna()
    return {
        "runs": len(df),
        "tasks": int(df["task_id"].nunique()),
        "successes": successes,
        "failed_runs": len(df) - successes,
        "unpriced_runs": int(df["estimated_cost_usd"].isna().sum()),
        **{column: int(df[column].sum()) for column in _TOKENS},
        "cost_usd": cost,
        "equivalent_claude_cost_usd": _total(df["equivalent_claude_cost_usd"]),
        "savings_usd": _total(df["savings_usd"]),
        "cost_per_success_usd": cost / successes if cost is not None and successes else None,
        "fallback_runs": fallback_runs,
        "fallback_rate": fallback_runs / known if known else None,
        "p50_ms": percentiles[0],
        "p90_ms": percentiles[1],
        "p99_ms": percentiles[2],
        "first_completed_at": stamps.min() if len(stamps) else None,
        "last_completed_at": stamps.max() if len(stamps) else None,
        "price_tables": sorted(df["price_table"].dropna().unique().tolist()),
    }


# ---------------------------------------------------------------------------- helpers


def _as_list(keys: Keys | None) -> list[str]:
    if keys is None:
        return []
    return [keys] if isinstance(keys, str) else list(keys)


def _labels(df: pd.DataFrame, keys: Sequence[str | pd.Series]) -> list[pd.Series]:
    """Group keys with missing labels replaced by NONE_LABEL, so no run falls out of a group."""
    out = []
    for key in keys:
        column = df[key] if isinstance(key, str) else key
        if isinstance(column.dtype, pd.CategoricalDtype) and column.isna().any():
            if NONE_LABEL not in column.cat.categories:
                column = column.cat.add_categories(NONE_LABEL)
            column = column.fillna(NONE_LABEL)
        elif column.dtype == object or pd.api.types.is_string_dtype(column.dtype):
            column = column.fillna(NONE_LABEL)
        out.append(column)
    return out


def _measures(df: pd.DataFrame) -> pd.DataFrame:
    """Per-row counters and amounts that rollups sum."""
    failed = (df["status"] != "success").fillna(True)
    return pd.DataFrame(
        {
            "runs": np.ones(len(df), dtype="int64"),
            "failed_runs": failed.to_numpy("int64"),
            "unpriced_runs": df["estimated_cost_usd"].isna().to_numpy("int64"),
            **{column: df[column] for column in _TOKENS},
            **{to: df[frm] for frm, to in _MONEY.items()},
        },
        index=df.index,
    )


def _cost_by(df: pd.DataFrame, keys: Sequence[str | pd.Series]) -> pd.DataFrame:
    grouped = _measures(df).groupby(_labels(df, keys), observed=True, sort=True, dropna=False)
    out = grouped.sum(min_count=1)
    counts = ["runs", "failed_runs", "unpriced_runs"]
    out[counts] = out[counts].fillna(0).astype("int64")
    out[list(_TOKENS)] = out[list(_TOKENS)].fillna(0)
    return out[_COST_COLUMNS]


def _empty_per_task(df: pd.DataFrame) -> pd.DataFrame:
    columns: dict[str, Any] = {
        "runs": pd.Series([], dtype="int64"),
        "unpriced_runs": pd.Series([], dtype="int64"),
        **{c: pd.Series([], dtype="Float64") for c in _MONEY.values()},
        **{c: df[c].iloc[:0].reset_index(drop=True) for c in ("tier", "model_used", "status", "completed_at")},
    }
    return pd.DataFrame(columns, index=pd.Index([], dtype="str", name="task_id"))


def _sum_by_code(column: pd.Series, codes: np.ndarray, n: int) -> pd.Series:
    """Per-code sums of the known values; NA for codes with none known."""
    known = np.bincount(codes, weights=column.notna().to_numpy(), minlength=n)
    sums = np.bincount(codes, weights=column.to_numpy("float64", na_value=0.0), minlength=n)
    return pd.array(np.where(known > 0, sums, np.nan), dtype="Float64")


def _total(column: pd.Series) -> float | None:
    known = column.dropna()
    return float(known.sum()) if len(known) else None
