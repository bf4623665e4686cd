"""Routing from the explicit tier alone: the hub's router with ``routing = "explicit"`` (model routing is the default)."""

from __future__ import annotations

from typing import Any

from agentcom.config import AgentCom
from agentcom.hub.agents import Agent
from agentcom.protocol.api import TaskSubmission
from agentcom.store.tasks import Task


class BasicRouter:
    def __init__(self, settings: AgentCom) -> None:
        self.settings = settings
        self._by_tier: dict[str, int] = {}
        self._by_target: dict[str, int] = {}

    def classify(self, sub: TaskSubmission) -> dict[str, Any]:
        tier = sub.complexity_tier or "unknown"
        signals = {"word_count": len(sub.description.split()), "file_count": len(sub.file_hints),
                   "verification_count": len(sub.verification_steps),
                   "keywords": {"complex": False, "trivial": False}}
        return {"effective_tier": tier, "source": "explicit" if sub.complexity_tier else "inferred",
                "explicit_tier": sub.complexity_tier,
                "inferred": {"tier": "unknown", "confidence": 0.0, "signals": signals}}

    def route(self, task: Task, agents: list[Agent], now: int) -> tuple[dict[str, Any], Agent] | None:
        tier = task.tier
        target = self.settings.tier_targets.get(tier if tier != "unknown" else "standard", "sidecar")
        kind, _, model = target.partition(":")
        agent = min(agents, key=lambda a: a.last_assigned_at)
        decision = {
            "effective_tier": tier, "target_type": kind, "selected_endpoint": None,
            "selected_model": model or None, "fallback_used": False, "fallback_from_tier": None,
            "fallback_reason": None, "candidate_count": len(agents),
            "classification_reason": f"{task.complexity.get('source')}:{tier}",
            "estimated_cost_tier": {"sidecar": "free", "claude": "api"}.get(kind, "local"), "decided_at": now,
        }
        return decision, agent

    def record(self, decision: dict[str, Any]) -> None:
        tier, target = decision["effective_tier"], decision["target_type"]
        self._by_tier[tier] = self._by_tier.get(tier, 0) + 1
        self._by_target[target] = self._by_target.get(target, 0) + 1

    def agent_joined(self, agent: Agent, peer_host: str | None = None) -> None:
        """No endpoint registry here."""

    def forget(self, task_id: str) -> None:
        """Nothing remembered per task."""

    def stats(self) -> dict[str, Any]:
        return {"by_tier": dict(self._by_tier), "by_target": dict(self._by_target), "fallback_count": 0}
