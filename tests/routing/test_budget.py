"""The budget guard's detail text shows money to the micro-dollar, like analysis and the CLI."""

from __future__ import annotations

from agentcom.routing.budget import Spend, check_budget

NOW = 1_735_689_600_000  # 2025-01-01T00:00:00Z


def test_a_small_daily_budget_is_shown_as_it_is() -> None:
    verdict = check_budget(daily_usd=0.005, monthly_usd=None, spend=Spend(0.004125, 0.004125),
                           estimate_usd=0.0015, now=NOW)
    assert verdict.exhausted and verdict.period == "daily"
    assert verdict.detail == "daily budget 0.005000 USD: spent 0.004125 + estimate 0.001500"


def test_monthly_budget_and_an_unknown_estimate() -> None:
    verdict = check_budget(daily_usd=None, monthly_usd=0.25, spend=Spend(0.0, 0.250001), estimate_usd=None, now=NOW)
    assert verdict.exhausted and verdict.period == "monthly"
    assert verdict.detail == "monthly budget 0.250000 USD: spent 0.250001 + estimate unknown"


def test_within_budget_has_no_detail() -> None:
    verdict = check_budget(daily_usd=0.005, monthly_usd=None, spend=Spend(0.001, 0.001), estimate_usd=0.002, now=NOW)
    assert not verdict.exhausted and verdict.detail == ""
