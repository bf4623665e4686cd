"""The linear shortcut of repricing is taken only when it is exactly right."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pandas as pd
import pytest

from agentcom.analysis import executions_frame, reprice


def _many(records: list[dict[str, Any]], n: int = 400) -> pd.DataFrame:
    """n distinct token counts on sonnet, plus one very large run."""
    base = records[1]  # t1/0 on sonnet
    rows = [dict(base, task_id=f"x{i}", tokens_in=1000 + i, tokens_out=10 + 3 * i, cache_read_tokens=i % 7) for i in range(n)]
    rows.append(dict(base, task_id="huge", tokens_in=300_000, tokens_out=1000))
    return executions_frame(rows)


class Counting:
    version = "counting"

    def __init__(self) -> None:
        self.calls = 0

    def rate(self, tokens_in: int) -> Decimal:
        return Decimal(3)

    def fee(self) -> Decimal:
        return Decimal(0)

    def price(self, model: str, tokens_in: int, tokens_out: int, cache_read: int = 0, cache_write: int = 0) -> Decimal | None:
        self.calls += 1
        if model != "claude-sonnet-4-5":
            return None
        total = self.rate(tokens_in) * tokens_in + Decimal(15) * tokens_out + Decimal("0.3") * cache_read + Decimal("3.75") * cache_write
        return self.fee() + total / Decimal(1_000_000)


class Tiered(Counting):
    """Input above 200k tokens costs double: not linear."""

    def rate(self, tokens_in: int) -> Decimal:
        return Decimal(6) if tokens_in > 200_000 else Decimal(3)


class Fee(Counting):
    def fee(self) -> Decimal:
        return Decimal("0.001")


@pytest.mark.parametrize("table_class", [Counting, Tiered, Fee])
def test_every_row_matches_the_table(records: list[dict[str, Any]], table_class: type[Counting]) -> None:
    frame = _many(records)
    table = table_class()
    result = reprice(frame, table)
    check = table_class()
    expected = [check.price("claude-sonnet-4-5", int(r.tokens_in), int(r.tokens_out), int(r.cache_read_tokens), int(r.cache_write_tokens))
                for r in frame.itertuples()]
    assert result.rows["whatif_cost_usd"].tolist() == [float(e) for e in expected if e is not None]  # float(Decimal) exactly
    assert result.totals["whatif_cost_usd"] == float(sum(e for e in expected if e is not None))


def test_linear_tables_are_asked_only_a_few_times(records: list[dict[str, Any]]) -> None:
    linear, tiered = Counting(), Tiered()
    reprice(_many(records), linear)
    reprice(_many(records), tiered)
    assert linear.calls < 80  # 5 probes + ~35 checks per model (cost and equivalent share them)
    assert tiered.calls > 400  # fell back to one question per distinct row


def test_unknown_model_is_unknown_everywhere(records: list[dict[str, Any]]) -> None:
    frame = _many(records).assign(model_used="nobody-knows")
    result = reprice(executions_frame(frame), Counting())
    assert result.rows["whatif_cost_usd"].isna().all()
    assert result.totals["whatif_cost_usd"] is None
    assert result.totals["whatif_unpriced_runs"] == len(frame)


def test_a_price_that_vanishes_for_large_runs_is_not_extrapolated(records: list[dict[str, Any]]) -> None:
    class ContextLimit(Counting):
        def price(self, model: str, tokens_in: int, tokens_out: int, cache_read: int = 0, cache_write: int = 0) -> Decimal | None:
            return None if tokens_in > 200_000 else super().price(model, tokens_in, tokens_out, cache_read, cache_write)

    result = reprice(_many(records), ContextLimit())
    costs = result.rows.set_index("task_id")["whatif_cost_usd"]
    assert costs["huge"] is pd.NA
    assert costs.drop("huge").notna().all()
    assert costs["x0"] == (1000 * 3 + 10 * 15 + 100 * 3.75) / 1e6  # t1/0 writes 100 cache tokens
