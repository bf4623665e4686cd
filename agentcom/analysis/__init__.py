"""Cost and routing analysis of AgentCom executions, as pure functions over pandas.

Rows in, DataFrame out (:func:`executions_frame`, :func:`load_executions`); DataFrame in,
DataFrame out (the rollups, :func:`reprice`); DataFrame in, plotly Figure out
(:mod:`agentcom.analysis.plots`, imported on first use so that plotly loads only for plots).

    >>> df = load_executions("~/.agentcom/hub.db")       # or a CSV / Parquet export
    >>> cost_by_model(df)
    >>> plots.cost_over_time(df).show()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentcom.analysis._frame import (
    EXECUTION_COLUMNS,
    EXECUTION_DTYPES,
    TIERS,
    empty_executions_frame,
    executions_frame,
)
from agentcom.analysis._load import load_executions, load_tasks
from agentcom.analysis._reprice import PriceTableLike, Repricing, reprice
from agentcom.analysis._rollups import (
    NONE_LABEL,
    cost_by_agent,
    cost_by_day,
    cost_by_model,
    cost_by_tier,
    cost_per_success,
    latency_percentiles,
    routing_mix,
    savings_over_time,
    savings_per_task,
    summary,
)

if TYPE_CHECKING:
    from agentcom.analysis import plots

__all__ = [
    "EXECUTION_COLUMNS",
    "EXECUTION_DTYPES",
    "NONE_LABEL",
    "PriceTableLike",
    "Repricing",
    "TIERS",
    "cost_by_agent",
    "cost_by_day",
    "cost_by_model",
    "cost_by_tier",
    "cost_per_success",
    "empty_executions_frame",
    "executions_frame",
    "latency_percentiles",
    "load_executions",
    "load_tasks",
    "plots",
    "reprice",
    "routing_mix",
    "savings_over_time",
    "savings_per_task",
    "summary",
]


def __getattr__(name: str) -> Any:
    if name == "plots":
        import importlib

        return importlib.import_module("agentcom.analysis.plots")
    raise AttributeError(f"module 'agentcom.analysis' has no attribute {name!r}")
