"""``RoutingStats`` and the budget helpers."""

from __future__ import annotations

import json

from agentcom.protocol.messages import ComplexitySignals, KeywordSignals, RoutingDecision
from agentcom.routing import RoutingStats, Spend, estimate_tokens
from agentcom.routing.budget import check_budget


def decision(tier: str, target: str, fallback: bool = False) -> RoutingDecision:
    return RoutingDecision(effective_tier=tier, target_type=target, selected_endpoint=None, selected_model=None,
                           fallback_used=fallback, fallback_from_tier="standard" if fallback else None,
                           fallback_reason="no_healthy_endpoint" if fallback else None, candidate_count=0,
                           classification_reason="inferred:standard", estimated_cost_tier="api", decided_at=1)


def test_counts_by_tier_target_and_fallbacks() -> None:
    stats = RoutingStats()
    assert stats.to_dict() == {"by_tier": {}, "by_target": {}, "fallback_count": 0, "total_routed": 0}
    for d in (decision("standard", "ollama"), decision("complex", "claude", fallback=True), decision("standard", "ollama")):
        stats.record(d)
    assert stats.to_dict() == {"by_tier": {"complex": 1, "standard": 2}, "by_target": {"claude": 1, "ollama": 2},
                               "fallback_count": 1, "total_routed": 3}
    json.dumps(stats.to_dict())


def test_rebuilt_from_stored_dicts() -> None:
    stored = [{"effective_tier": "trivial", "target_type": "sidecar", "fallback_used": False}, None,
              {"effective_tier": "complex", "target_type": "local", "fallback_used": True}]
    stats = RoutingStats.from_decisions(stored)
    assert stats.to_dict()["by_target"] == {"local": 1, "sidecar": 1} and stats.fallback_count == 1


def signals(words: int, files: int = 0, steps: int = 0) -> ComplexitySignals:
    return ComplexitySignals(word_count=words, file_count=files, verification_count=steps,
                             keywords=KeywordSignals(complex=False, trivial=False))


def test_token_estimate_grows_with_the_task() -> None:
    small, large = estimate_tokens(signals(5)), estimate_tokens(signals(200, files=5, steps=3))
    assert small[0] < large[0] and small[1] < large[1] and min(small) > 0


def test_budget_limits() -> None:
    now = 1_767_225_600_000
    ok = check_budget(daily_usd=1.0, monthly_usd=None, spend=Spend(today_usd=0.5), estimate_usd=0.4, now=now)
    assert not ok.exhausted
    over = check_budget(daily_usd=1.0, monthly_usd=None, spend=Spend(today_usd=0.5), estimate_usd=0.6, now=now)
    assert over.exhausted and over.period == "daily" and over.resets_at == now + 86_400_000
    zero = check_budget(daily_usd=0.0, monthly_usd=None, spend=Spend(), estimate_usd=None, now=now)
    assert zero.exhausted  # a zero budget allows no cloud work at all
    monthly = check_budget(daily_usd=None, monthly_usd=10.0, spend=Spend(today_usd=0, month_usd=9.99), estimate_usd=0.02,
                           now=now)
    assert monthly.exhausted and monthly.period == "monthly"
    december = 1_764_547_200_000 + 86_400_000 * 30  # 2025-12-31
    assert check_budget(daily_usd=None, monthly_usd=0.0, spend=Spend(), estimate_usd=None,
                        now=december).resets_at == 1_767_225_600_000  # 2026-01-01
