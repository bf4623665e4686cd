"""``routing_stats`` of the snapshot: counts per tier, per target type, and fallbacks."""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable, Mapping

from agentcom.protocol.messages import RoutingDecision

__all__ = ["RoutingStats"]


class RoutingStats:
    """Accumulates routing decisions; the hub calls ``record`` once per decision it applies.

    Accepts the Struct or its dict form (as stored in the tasks table), so the hub can
    rebuild the counts from the store at start with ``RoutingStats.from_decisions``.
    """

    def __init__(self) -> None:
        self.by_tier: Counter[str] = Counter()
        self.by_target: Counter[str] = Counter()
        self.fallback_count = 0
        self.total_routed = 0

    @classmethod
    def from_decisions(cls, decisions: Iterable[RoutingDecision | Mapping[str, Any] | None]) -> "RoutingStats":
        stats = cls()
        for decision in decisions:
            if decision is not None:
                stats.record(decision)
        return stats

    def record(self, decision: RoutingDecision | Mapping[str, Any]) -> None:
        tier: str
        if isinstance(decision, RoutingDecision):
            tier, target, fallback = decision.effective_tier, decision.target_type, decision.fallback_used
        else:
            tier, target = str(decision.get("effective_tier")), str(decision.get("target_type"))
            fallback = bool(decision.get("fallback_used"))
        self.by_tier[tier] += 1
        self.by_target[target] += 1
        self.fallback_count += int(fallback)
        self.total_routed += 1

    def to_dict(self) -> dict[str, Any]:
        """``{by_tier, by_target, fallback_count, total_routed}``, keys sorted, JSON-ready."""
        return {
            "by_tier": dict(sorted(self.by_tier.items())),
            "by_target": dict(sorted(self.by_target.items())),
            "fallback_count": self.fallback_count,
            "total_routed": self.total_routed,
        }
