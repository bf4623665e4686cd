from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from agentcom.analysis import EXECUTION_COLUMNS, EXECUTION_DTYPES, TIERS, empty_executions_frame, executions_frame


def _kinds(df: pd.DataFrame) -> list[str]:
    """Dtype names without the category lists (which depend on the data)."""
    return [str(dtype) for dtype in df.dtypes]


def _schema_kinds() -> list[str]:
    return [str(pd.api.types.pandas_dtype(d)) if d != "category" else "category" for d in EXECUTION_DTYPES.values()]


def test_columns_and_dtypes(frame: pd.DataFrame) -> None:
    assert tuple(frame.columns) == EXECUTION_COLUMNS
    assert _kinds(frame) == _schema_kinds()
    assert str(frame["completed_at"].dtype) == "datetime64[ms, UTC]"
    for column in ("agent_id", "tier", "target_type", "model_used", "status", "price_table"):
        assert frame[column].cat.categories.dtype == "str"
    assert isinstance(frame.index, pd.RangeIndex)


def test_empty_input_gives_the_same_schema() -> None:
    for empty in (executions_frame([]), executions_frame(pd.DataFrame()), empty_executions_frame()):
        assert len(empty) == 0
        assert tuple(empty.columns) == EXECUTION_COLUMNS
        assert _kinds(empty) == _schema_kinds()


def test_unknown_price_stays_na_not_zero(frame: pd.DataFrame) -> None:
    mystery = frame[frame["model_used"] == "mystery-model"].iloc[0]
    assert mystery["estimated_cost_usd"] is pd.NA
    assert mystery["savings_usd"] is pd.NA
    shell = frame[frame["task_id"] == "t5"].iloc[0]
    assert shell["estimated_cost_usd"] == 0.0
    assert shell["equivalent_claude_cost_usd"] is pd.NA
    assert pd.isna(shell["model_used"])


def test_completed_at_is_utc_from_ms(frame: pd.DataFrame) -> None:
    first = frame[(frame["task_id"] == "t1") & (frame["generation"] == 0)].iloc[0]
    assert first["completed_at"] == pd.Timestamp("2025-01-01T10:00:00Z")
    assert str(first["completed_at"].tz) == "UTC"


def test_tier_categories_keep_routing_order(frame: pd.DataFrame, records: list[dict[str, Any]]) -> None:
    assert list(frame["tier"].cat.categories) == list(TIERS)
    records[0]["tier"] = "experimental"
    assert list(executions_frame(records)["tier"].cat.categories) == [*TIERS, "experimental"]


def test_missing_required_column_is_named(records: list[dict[str, Any]]) -> None:
    for record in records:
        del record["price_table"]
    with pytest.raises(ValueError, match="price_table"):
        executions_frame(records)


def test_optional_columns_are_filled_and_extras_dropped() -> None:
    record = {
        "task_id": "x", "generation": 0, "agent_id": "a", "tier": "standard", "target_type": "ollama",
        "model_used": "m", "tokens_in": 10, "tokens_out": 5, "estimated_cost_usd": 0.25,
        "equivalent_claude_cost_usd": 1.0, "execution_ms": 9, "status": "success",
        "completed_at": 0, "price_table": "v", "something_else": 1,
    }
    row = executions_frame([record]).iloc[0]
    assert row["cache_read_tokens"] == 0 and row["cache_write_tokens"] == 0
    assert row["savings_usd"] == 0.75  # derived: equivalent - cost
    assert pd.isna(row["endpoint"]) and row["fallback_used"] is pd.NA and pd.isna(row["error"])
    assert "something_else" not in executions_frame([record]).columns


def test_loose_json_values_are_typed() -> None:
    """Money as decimal strings, booleans as 0/1, times as ISO text in another zone."""
    raw = pd.DataFrame(
        {
            "task_id": [7, 8], "generation": ["0", "1"], "agent_id": ["a", None], "tier": ["complex", None],
            "target_type": ["claude", "claude"], "model_used": ["m", "m"], "tokens_in": [1, 2], "tokens_out": [3, 4],
            "estimated_cost_usd": ["0.000001", None], "equivalent_claude_cost_usd": [np.nan, 2.5],
            "execution_ms": [1.0, np.nan], "status": ["success", "failed"],
            "completed_at": ["2025-01-01T01:00:00+01:00", "2025-01-01T00:00:01Z"],
            "price_table": ["v", "v"], "fallback_used": [1, 0],
        }
    )
    df = executions_frame(raw)
    assert df["task_id"].tolist() == ["7", "8"]
    assert df["estimated_cost_usd"].tolist() == [0.000001, pd.NA]
    assert df["equivalent_claude_cost_usd"].tolist() == [pd.NA, 2.5]
    assert df["execution_ms"].tolist() == [1, pd.NA]
    assert df["fallback_used"].tolist() == [True, False]
    assert df["completed_at"].tolist() == [pd.Timestamp("2025-01-01T00:00:00Z"), pd.Timestamp("2025-01-01T00:00:01Z")]
    assert _kinds(df) == _schema_kinds()


def test_fallback_text_and_bad_values() -> None:
    base = {"task_id": "x", "generation": 0, "agent_id": "a", "tier": "trivial", "target_type": "sidecar",
            "model_used": None, "tokens_in": 0, "tokens_out": 0, "estimated_cost_usd": 0, "equivalent_claude_cost_usd": None,
            "execution_ms": 1, "status": "success", "completed_at": 0, "price_table": "v"}
    flags = executions_frame([{**base, "fallback_used": v} for v in ("True", "false", "", None)])["fallback_used"]
    assert flags.tolist() == [True, False, pd.NA, pd.NA]
    with pytest.raises(ValueError, match="fallback_used"):
        executions_frame([{**base, "fallback_used": "maybe"}])
    with pytest.raises(ValueError, match="tokens_in"):
        executions_frame([{**base, "tokens_in": "lots"}])


def test_already_typed_frame_passes_through(frame: pd.DataFrame) -> None:
    again = executions_frame(frame)
    pd.testing.assert_frame_equal(again, frame)
    shuffled = executions_frame(frame.iloc[::-1])  # any index in, RangeIndex out
    assert isinstance(shuffled.index, pd.RangeIndex)
    assert shuffled["task_id"].tolist() == frame["task_id"].tolist()[::-1]
