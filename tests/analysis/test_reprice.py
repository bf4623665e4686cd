"""What-if repricing against price arithmetic done by hand (rates per million tokens in conftest.py)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pandas as pd
import pytest

from agentcom.analysis import executions_frame, reprice
from agentcom.pricing import PriceTable

approx = pytest.approx


def _row(result: Any, task_id: str, generation: int) -> pd.Series:
    rows = result.rows
    return rows[(rows["task_id"] == task_id) & (rows["generation"] == generation)].iloc[0]


def test_same_models_under_another_table(frame: pd.DataFrame, prices: Any) -> None:
    result = reprice(frame, prices)
    # t1/0 on sonnet: (1000*3 + 200*15 + 500*0.30 + 100*3.75) / 1e6
    t1 = _row(result, "t1", 0)
    assert t1["whatif_model"] == "claude-sonnet-4-5"
    assert t1["whatif_cost_usd"] == approx(0.006525)
    assert t1["delta_usd"] == approx(0.006525 - 0.5)
    assert t1["whatif_equivalent_claude_cost_usd"] == approx(0.006525)  # a Claude run is its own equivalent
    assert _row(result, "t6", 1)["whatif_cost_usd"] == approx((500 * 1 + 50 * 5 + 100 * 0.10) / 1e6)
    assert _row(result, "t2", 0)["whatif_cost_usd"] == 0.0
    assert _row(result, "t2", 0)["whatif_equivalent_claude_cost_usd"] == approx((3000 * 3 + 600 * 15) / 1e6)
    assert _row(result, "t3", 0)["whatif_cost_usd"] == 0.0  # unknown model on ollama: the hub charges nothing
    shell = _row(result, "t5", 0)
    assert shell["whatif_cost_usd"] == 0.0  # the sidecar's shell is free
    assert shell["whatif_equivalent_claude_cost_usd"] is pd.NA  # no tokens, nothing to compare
    totals = result.totals
    assert totals["whatif_cost_usd"] == approx(0.006525 + 0.012 + 0 + 0.0045 + 0 + 0.00225 + 0.00076)
    assert totals["price_table"] == "toy-1" and totals["tier_models"] == {}
    # tokens stay
    pd.testing.assert_series_equal(result.rows["tokens_in"], frame["tokens_in"])
    pd.testing.assert_series_equal(result.rows["cache_read_tokens"], frame["cache_read_tokens"])


def test_moving_a_tier_to_another_model(frame: pd.DataFrame, prices: Any) -> None:
    result = reprice(frame, prices, tier_models={"complex": "claude-haiku-4-5"})
    complex_rows = result.rows[result.rows["tier"] == "complex"]
    assert set(complex_rows["whatif_model"]) == {"claude-haiku-4-5"}
    assert _row(result, "t4", 0)["whatif_model"] == "claude-sonnet-4-5"  # other tiers keep their model
    # haiku: t1/0 (1000*1 + 200*5 + 500*0.10 + 100*1.25), t1/1 (2000 + 400*5), t6/0 (500 + 50*5), t6/1 (+100*0.10)
    haiku = [0.002175, 0.004, 0.00075, 0.00076]
    assert sorted(complex_rows["whatif_cost_usd"].tolist()) == approx(sorted(haiku))

    by_tier = result.by_tier
    assert list(by_tier.index) == ["trivial", "standard", "complex"]
    complex_ = by_tier.loc["complex"]
    assert (complex_["runs"], complex_["comparable_runs"]) == (4, 4)
    assert complex_["cost_usd"] == approx(1.6875)
    assert complex_["whatif_cost_usd"] == approx(0.007685)
    assert complex_["delta_usd"] == approx(0.007685 - 1.6875)
    assert complex_["whatif_savings_usd"] == approx(0.0)
    standard = by_tier.loc["standard"]  # t2 qwen and t3 mystery on ollama (free, t3 unpriced as recorded), t4 sonnet
    assert (standard["unpriced_runs"], standard["whatif_unpriced_runs"], standard["comparable_runs"]) == (1, 0, 2)
    assert standard["whatif_cost_usd"] == approx(0.0045)
    assert standard["delta_usd"] == approx(0.0045 - 0.25)  # over the runs priced both ways only
    assert standard["whatif_equivalent_claude_cost_usd"] == approx(0.018 + 0.0027 + 0.0045)
    assert standard["whatif_savings_usd"] == approx(0.018 + 0.0027)  # t2 and t3 against Sonnet, t4 is Sonnet
    trivial = by_tier.loc["trivial"]
    assert trivial["whatif_cost_usd"] == 0.0 and trivial["whatif_savings_usd"] is pd.NA

    totals = result.totals
    assert (totals["runs"], totals["unpriced_runs"], totals["whatif_unpriced_runs"], totals["comparable_runs"]) == (8, 1, 0, 7)
    assert totals["cost_usd"] == approx(1.9375)
    assert totals["whatif_cost_usd"] == approx(0.012185)
    assert totals["delta_usd"] == approx(0.012185 - 1.9375)
    assert totals["whatif_equivalent_claude_cost_usd"] == approx(0.032885)
    assert totals["whatif_savings_usd"] == approx(0.0207)
    assert totals["tier_models"] == {"complex": "claude-haiku-4-5"}
    assert totals["reference_model"] == "claude-sonnet-4-5"


def test_totals_are_exact_decimal_sums(frame: pd.DataFrame) -> None:
    class Tenth:
        version = "tenth"

        def price(self, model: str, tokens_in: int, tokens_out: int, cache_read: int = 0, cache_write: int = 0) -> Decimal:
            return Decimal("0.1")

    three = executions_frame(frame[frame["target_type"] == "claude"].iloc[:3])  # priced by the table
    assert sum([0.1, 0.1, 0.1]) != 0.3  # what float addition would give
    result = reprice(three, Tenth())
    assert result.totals["whatif_cost_usd"] == 0.3
    assert result.by_tier["whatif_cost_usd"].sum() == approx(0.3)


def test_each_distinct_price_is_asked_once(frame: pd.DataFrame, prices: Any) -> None:
    reprice(frame, prices)
    once = prices.calls
    prices.calls = 0
    reprice(executions_frame(pd.concat([frame] * 50)), prices)
    assert prices.calls == once


def test_unknown_tier_is_an_error(frame: pd.DataFrame, prices: Any) -> None:
    with pytest.raises(ValueError, match="complx"):
        reprice(frame, prices, tier_models={"complx": "claude-haiku-4-5"})


def test_input_is_left_alone(frame: pd.DataFrame, prices: Any) -> None:
    before = frame.copy()
    reprice(frame, prices, tier_models={"standard": "claude-haiku-4-5"})
    pd.testing.assert_frame_equal(frame, before)


def test_a_tier_moved_to_an_unknown_model_is_unpriced_not_free(frame: pd.DataFrame, prices: Any) -> None:
    result = reprice(frame, prices, tier_models={"standard": "mystery-model"})
    standard = result.by_tier.loc["standard"]
    assert (standard["runs"], standard["whatif_unpriced_runs"]) == (3, 3)
    assert standard["whatif_cost_usd"] is pd.NA
    assert result.totals["whatif_unpriced_runs"] == 3


def test_shell_runs_are_free_unless_their_tier_moves(records: list[dict[str, Any]], prices: Any) -> None:
    shell = executions_frame(records)
    shell = shell[shell["task_id"] == "t5"].copy()
    shell["model_used"] = pd.Categorical(["shell"])  # what the shell executor records
    result = reprice(shell, prices)
    row = result.rows.iloc[0]
    assert row["whatif_cost_usd"] == 0.0 and row["whatif_equivalent_claude_cost_usd"] is pd.NA
    assert (result.totals["whatif_unpriced_runs"], result.totals["whatif_cost_usd"]) == (0, 0.0)

    moved = reprice(shell, prices, tier_models={"trivial": "mystery-model"})
    assert moved.rows.iloc[0]["whatif_model"] == "mystery-model"
    assert moved.rows.iloc[0]["whatif_cost_usd"] == 0.0  # no tokens used: nothing to pay on any model


def _hub_rows() -> pd.DataFrame:
    """One execution of each kind the hub prices differently, priced the way the hub records them."""
    table = PriceTable.load()
    kinds = [  # target, model, tokens in, out, cache read, cache write
        ("sidecar", "shell", 0, 0, 0, 0),
        ("ollama", "simulated-llama3.2", 300, 80, 0, 0),
        ("ollama", "a-model-nobody-priced", 300, 80, 0, 0),
        ("local", "smollm2-135m-instruct", 120, 32, 0, 0),
        ("openai", "a-model-nobody-priced", 300, 80, 0, 0),
        ("openai", "gpt-4o-mini", 0, 0, 0, 0),
        ("claude", "claude-sonnet-4-5", 1000, 200, 500, 100),
        ("claude", "claude-haiku-4-5-20251001", 700, 90, 0, 0),
        ("claude", "simulated-claude-sonnet-4-5", 512, 140, 0, 0),
        ("claude", "simulated-claude-haiku-4-5", 512, 140, 0, 0),
        ("claude", "claude-from-the-future", 512, 140, 0, 0),
        ("openai", "claude-from-the-future", 512, 140, 0, 0),
    ]
    records = []
    for i, (target, model, *tokens) in enumerate(kinds):
        run = table.cost_of_run(target, model, *tokens)
        records.append({
            "task_id": f"k{i}", "generation": 0, "agent_id": "a", "tier": "complex", "target_type": target,
            "model_used": model, "tokens_in": tokens[0], "tokens_out": tokens[1], "cache_read_tokens": tokens[2],
            "cache_write_tokens": tokens[3], "status": "success", "execution_ms": 1, "price_table": table.version,
            "completed_at": 1_735_689_600_000 + i,
            "estimated_cost_usd": None if run.cost_usd is None else float(run.cost_usd),
            "equivalent_claude_cost_usd": (None if run.equivalent_claude_cost_usd is None
                                           else float(run.equivalent_claude_cost_usd)),
        })
    return executions_frame(records)


def test_what_if_under_the_hubs_table_reproduces_what_the_hub_recorded() -> None:
    df = _hub_rows()
    result = reprice(df, PriceTable.load())
    for column, recorded in (("whatif_cost_usd", "cost_usd"),
                             ("whatif_equivalent_claude_cost_usd", "equivalent_claude_cost_usd"),
                             ("whatif_savings_usd", "savings_usd")):
        pd.testing.assert_series_equal(result.rows[column], result.rows[recorded], check_names=False)
    assert result.rows["delta_usd"].fillna(0.0).eq(0.0).all()
    assert result.totals["unpriced_runs"] == result.totals["whatif_unpriced_runs"] == 3  # unknown cloud models


def test_a_simulated_claude_run_is_compared_as_the_model_it_stands_for() -> None:
    df = _hub_rows()
    table = PriceTable.load()
    result = reprice(df, table)
    simulated = result.rows[result.rows["model_used"] == "simulated-claude-haiku-4-5"].iloc[0]
    assert simulated["whatif_cost_usd"] == 0.0  # the stand-in charges nothing
    assert simulated["whatif_equivalent_claude_cost_usd"] == float(table.price("claude-haiku-4-5", 512, 140))
    assert simulated["whatif_equivalent_claude_cost_usd"] > 0


def test_real_price_table_when_tiers_move(frame: pd.DataFrame) -> None:
    table = PriceTable.load()
    result = reprice(frame, table, tier_models={"complex": "claude-haiku-4-5"})
    assert result.totals["price_table"] == table.version
    for _, row in result.rows[result.rows["tier"] == "complex"].iterrows():
        expected = table.price(row["whatif_model"], int(row["tokens_in"]), int(row["tokens_out"]),
                               int(row["cache_read_tokens"]), int(row["cache_write_tokens"]))
        assert row["whatif_cost_usd"] == float(expected)
        assert row["whatif_equivalent_claude_cost_usd"] == float(expected)  # Haiku is its own equivalent
