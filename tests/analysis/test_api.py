"""The public surface of agentcom.analysis is listed, sorted, and nothing else leaks out."""

from __future__ import annotations

import types

from agentcom import analysis


def test_all_is_sorted_and_complete() -> None:
    assert analysis.__all__ == sorted(analysis.__all__)
    for name in analysis.__all__:
        assert getattr(analysis, name) is not None
    public = {
        name for name, value in vars(analysis).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType) and name not in {"annotations", "TYPE_CHECKING", "Any"}
    }
    assert public <= set(analysis.__all__)


def test_plots_all_is_sorted() -> None:
    from agentcom.analysis import plots

    assert plots.__all__ == sorted(plots.__all__)
    assert all(callable(getattr(plots, name)) or isinstance(getattr(plots, name), str) for name in plots.__all__)


def test_column_list_matches_the_dtypes() -> None:
    assert analysis.EXECUTION_COLUMNS == tuple(analysis.EXECUTION_DTYPES)
    assert analysis.EXECUTION_COLUMNS[:3] == ("task_id", "generation", "agent_id")
    assert {"estimated_cost_usd", "cache_read_tokens", "completed_at", "price_table", "fallback_used"} <= set(analysis.EXECUTION_COLUMNS)
