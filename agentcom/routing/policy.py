"""The routing policy: settings turned into plain frozen values, read by ``route``.

Built once from ``agentcom.config.AgentCom`` (``RoutingPolicy.from_settings``) and
rebuilt only when settings change, so routing never touches traitlets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from agentcom.config import DEFAULT_TIER_TARGETS
from agentcom.errors import ConfigError
from agentcom.routing.targets import Target, parse_target

__all__ = ["RoutingPolicy"]

TIER_ORDER = ("trivial", "standard", "complex", "unknown")


def _targets(raw: Mapping[str, str]) -> dict[str, Target]:
    merged = {**DEFAULT_TIER_TARGETS, **dict(raw)}
    unknown = sorted(set(merged) - set(TIER_ORDER))
    if unknown:
        raise ConfigError(f"tier_targets: unknown tier(s) {', '.join(unknown)}; expected {', '.join(TIER_ORDER)}")
    return {tier: parse_target(spec) for tier, spec in merged.items()}


def _default_local_targets(targets: Mapping[str, Target]) -> tuple[Target, ...]:
    """Where budget-guarded work goes: the standard tier's own local target first."""
    order = [targets["standard"], targets["unknown"], Target("ollama"), Target("openai"), Target("local")]
    seen: list[Target] = []
    for target in order:
        if target.type not in ("claude", "sidecar") and target not in seen:
            seen.append(target)
    return tuple(seen)


@dataclass(frozen=True)
class RoutingPolicy:
    """Tier -> target map, escalation, waiting and the budget guard.

    ``local_targets`` is the order in which a budget-blocked cloud task tries local
    targets; the last default, ``local`` (an in-process model on a sidecar), needs no
    endpoint and so always resolves.
    """

    tier_targets: Mapping[str, Target] = field(default_factory=lambda: _targets({}))
    tier_fallbacks: Mapping[str, str] = field(default_factory=lambda: {"standard": "complex"})
    fallback_wait_ms: int = 5_000
    budget_daily_usd: float | None = None
    budget_monthly_usd: float | None = None
    budget_action: str = "local"  # "local" | "hold"
    local_targets: tuple[Target, ...] = ()
    resource_ttl_ms: int = 90_000

    def __post_init__(self) -> None:
        if not self.local_targets:
            object.__setattr__(self, "local_targets", _default_local_targets(self.tier_targets))
        if self.budget_action not in ("local", "hold"):
            raise ConfigError(f"budget_action must be 'local' or 'hold', got {self.budget_action!r}")
        if self.fallback_wait_ms < 0:
            raise ConfigError(f"fallback_wait_ms must not be negative, got {self.fallback_wait_ms}")

    @classmethod
    def build(cls, tier_targets: Mapping[str, str] | None = None, **kwargs: Any) -> "RoutingPolicy":
        """From target strings, e.g. ``build({"standard": "openai"}, fallback_wait_ms=0)``."""
        return cls(tier_targets=_targets(tier_targets or {}), **kwargs)

    @classmethod
    def from_settings(cls, settings: Any) -> "RoutingPolicy":
        """From an ``agentcom.config.AgentCom``."""
        return cls.build(
            settings.tier_targets,
            tier_fallbacks=dict(settings.tier_fallbacks),
            fallback_wait_ms=settings.fallback_wait_ms,
            budget_daily_usd=settings.budget_daily_usd,
            budget_monthly_usd=settings.budget_monthly_usd,
            budget_action=settings.budget_action,
        )

    @property
    def has_budget(self) -> bool:
        return self.budget_daily_usd is not None or self.budget_monthly_usd is not None

    def target_for(self, tier: str) -> Target:
        return self.tier_targets.get(tier) or self.tier_targets["standard"]

    def fallback_for(self, tier: str) -> str | None:
        """The tier a tier escalates to; ``unknown`` escalates like ``standard`` unless configured."""
        if tier in self.tier_fallbacks:
            return self.tier_fallbacks[tier]
        return self.tier_fallbacks.get("standard") if tier == "unknown" else None
