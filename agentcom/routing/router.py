"""``route``: one task, one registry snapshot, one instant -> a routing decision or "wait until T".

Pure: no clock, no I/O, no state. The hub calls it whenever a queued task could move
(submitted, requeued, an endpoint changed, an agent became idle, a ``Wait`` expired)
and keeps ``waiting_since`` on the task between calls.

Order of business:

1. The task's effective tier picks a target from ``tier_targets`` (``unknown`` routes
   with its own entry, by default the same as standard).
2. A ``sidecar`` target runs shell commands only; a task without ``shell_command`` goes
   on to the standard tier's target (fallback_reason ``no_shell_command``) instead of
   failing on the sidecar as in the original.
3. An ``ollama``/``openai`` target needs a healthy endpoint serving a usable model. If
   there is none, the task waits until ``waiting_since + fallback_wait_ms``, then
   escalates along ``tier_fallbacks`` (fallback_reason ``no_healthy_endpoint``). With no
   escalation left it keeps waiting, re-checked every ``fallback_wait_ms``.
4. A cloud target (``claude``) passes the budget guard, or goes to the first routable
   of ``policy.local_targets`` (fallback_reason ``budget_exhausted``), or with
   ``budget_action="hold"`` waits until the exhausted period resets.

Endpoint choice: among healthy endpoints of the target's kind that serve the model
(the configured one, else a loaded one, else the first listed that is not an
embedding model), those not in ``avoid_endpoints`` when any remain, the highest
score wins; ties go to the smaller endpoint id. Score = cpu headroom x memory headroom
x free slots x warm bonus (model already loaded) / (1 + tasks in flight there). The
resource report (a sidecar's ``resource_report``) gives cpu, memory, free slots, its own
in-flight count and the loaded models; in flight is the larger of the report's count and
the hub's own (tasks it assigned there that are still open). Missing or stale reports
count as average, not as idle; an endpoint with no free slot is chosen only when every
other one is as bad.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Collection, Mapping

from agentcom.errors import AgentComError
from agentcom.protocol.messages import Complexity, RoutingDecision
from agentcom.routing.budget import EstimateUsd, Spend, check_budget, estimate_tokens
from agentcom.routing.classifier import explain
from agentcom.routing.endpoints import EndpointView, RegistrySnapshot, ResourceReport
from agentcom.routing.policy import RoutingPolicy
from agentcom.routing.targets import Target

__all__ = ["Routed", "TaskView", "Wait", "loaded_models", "route", "score_endpoint"]

WARM_BONUS = 1.5
DEFAULT_LOAD = 0.5
DEFAULT_MEMORY = 0.75
DEFAULT_SLOTS = 0.75  # free slots unknown: as if two were free
NO_FREE_SLOT = 0.05
MIN_RECHECK_MS = 1_000


@dataclass(frozen=True)
class TaskView:
    """What routing needs to know about a task.

    ``has_shell_command``: ``metadata.shell_command`` is set, so the sidecar target can run it.
    ``estimated_tokens``: (in, out) to price a cloud run; default from ``budget.estimate_tokens``.
    ``reason``: ``explain(complexity)``, given by a caller that keeps the view for the task's next
    routing (a task is routed again on each attempt and while it waits); derived when left out.
    """

    complexity: Complexity
    has_shell_command: bool = False
    estimated_tokens: tuple[int, int] | None = None
    reason: str = ""


@dataclass(frozen=True)
class Routed:
    """Go: ``decision`` is the task's ``routing_decision``; ``near_host`` feeds ``choose_agent``."""

    decision: RoutingDecision
    target: Target
    endpoint: EndpointView | None = None
    detail: str = ""

    @property
    def near_host(self) -> str | None:
        return self.endpoint.host if self.endpoint is not None else None


@dataclass(frozen=True)
class Wait:
    """Not yet: route again at ``until`` (ms) or when endpoints change; keep ``since`` on the task.

    ``reason`` is ``no_healthy_endpoint`` or ``budget_exhausted`` (a hold).
    """

    until: int
    since: int
    reason: str
    detail: str = ""


@dataclass(frozen=True)
class _Resolved:
    target: Target
    endpoint: EndpointView | None
    candidates: int


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _headroom(free: float | None, total: float | None) -> float | None:
    free, total = _finite(free), _finite(total)
    if free is None or total is None or total <= 0:
        return None
    return 0.5 + 0.5 * min(max(free / total, 0.0), 1.0)


def loaded_models(endpoint: EndpointView, report: ResourceReport | None) -> tuple[str, ...]:
    """Models in memory: the report's list when it is newer than the last health check."""
    if report is not None and report.loaded_models is not None and report.reported_at >= (endpoint.last_checked_at or 0):
        return report.loaded_models
    return endpoint.loaded_models


def score_endpoint(
    endpoint: EndpointView, model: str | None, report: ResourceReport | None, in_flight: int = 0
) -> float:
    """Higher is better (see the module docstring); pass ``report=None`` when it is stale."""
    load, memory, slots = DEFAULT_LOAD, DEFAULT_MEMORY, DEFAULT_SLOTS
    if report is not None:
        cpu = _finite(report.cpu_percent)
        if cpu is not None:
            load = min(max(1 - cpu / 100, 0.05), 1.0)
        memory = (_headroom(report.vram_free_mb, report.vram_total_mb)
                  or _headroom(report.ram_free_mb, report.ram_total_mb) or DEFAULT_MEMORY)
        if report.free_slots is not None:
            slots = NO_FREE_SLOT if report.free_slots <= 0 else min(1.0, 0.5 + 0.125 * report.free_slots)
        in_flight = max(in_flight, report.in_flight or 0)
    warm = WARM_BONUS if model is not None and any(_same_model(model, m) for m in loaded_models(endpoint, report)) else 1.0
    return load * memory * slots * warm / (1 + max(in_flight, 0))


def _same_model(wanted: str, available: str) -> bool:
    def norm(name: str) -> str:
        return name if ":" in name else name + ":latest"

    return wanted == available or norm(wanted) == norm(available)


def _pick_model(wanted: str | None, endpoint: EndpointView, loaded: tuple[str, ...]) -> str | None:
    if wanted is not None:
        return next((m for m in endpoint.models if _same_model(wanted, m)), None)
    usable = [m for m in endpoint.models if "embed" not in m.lower()]
    return next((m for m in loaded if m in usable), usable[0] if usable else None)


def _resolve(
    target: Target,
    snapshot: RegistrySnapshot,
    policy: RoutingPolicy,
    now: int,
    avoid: Collection[str],
    in_flight: Mapping[str, int],
) -> _Resolved | None:
    if not target.needs_endpoint:
        return _Resolved(target, None, 0)

    def fresh(endpoint: EndpointView) -> ResourceReport | None:
        report = snapshot.resources.get(endpoint.endpoint_id)
        return None if report is None or now - report.reported_at > policy.resource_ttl_ms else report

    eligible = [(e, m, r) for e in snapshot.healthy(target.type)
                if (m := _pick_model(target.model, e, loaded_models(e, r := fresh(e)))) is not None]
    if not eligible:
        return None
    pool = [item for item in eligible if item[0].endpoint_id not in avoid] or eligible

    def rank(item: tuple[EndpointView, str, ResourceReport | None]) -> tuple[float, str]:
        endpoint, model, report = item
        return (-score_endpoint(endpoint, model, report, in_flight.get(endpoint.endpoint_id, 0)), endpoint.endpoint_id)

    endpoint, model, _ = min(pool, key=rank)
    return _Resolved(Target(target.type, model), endpoint, len(eligible))


def _decision(
    tier: str, resolved: _Resolved, reason: str, now: int, fallback_from: str | None, fallback_reason: str | None
) -> RoutingDecision:
    return RoutingDecision(
        effective_tier=tier,  # type: ignore[arg-type]
        target_type=resolved.target.type,
        selected_endpoint=resolved.endpoint.endpoint_id if resolved.endpoint else None,
        selected_model=resolved.target.model,
        fallback_used=fallback_reason is not None,
        fallback_from_tier=fallback_from,
        fallback_reason=fallback_reason,
        candidate_count=resolved.candidates,
        classification_reason=reason,
        estimated_cost_tier=resolved.target.cost_tier,
        decided_at=now,
    )


def _price(estimate_usd: EstimateUsd | None, model: str, tokens: tuple[int, int]) -> float | None:
    if estimate_usd is None:
        return None
    try:
        value = estimate_usd(model, *tokens)
    except (AgentComError, ValueError, LookupError, ArithmeticError):
        return None  # an unpriceable model: only spend so far can exhaust the budget
    return value if isinstance(value, (int, float)) and math.isfinite(value) and value >= 0 else None


def route(
    task: TaskView,
    snapshot: RegistrySnapshot,
    policy: RoutingPolicy,
    *,
    now: int,
    waiting_since: int | None = None,
    avoid_endpoints: Collection[str] = (),
    spend: Spend = Spend(),
    estimate_usd: EstimateUsd | None = None,
    in_flight: Mapping[str, int] | None = None,
) -> Routed | Wait:
    """Decide where ``task`` runs now, or until when it waits (see the module docstring).

    ``waiting_since``: when this task first got a ``Wait`` (None on a first attempt).
    ``avoid_endpoints``: endpoints that just failed this task; used only if nothing else serves.
    ``in_flight``: tasks currently running per endpoint id, to spread load.
    """
    complexity = task.complexity
    reason = task.reason or explain(complexity)
    since = now if waiting_since is None else waiting_since
    waited_enough = now - since >= policy.fallback_wait_ms
    loads = in_flight or {}
    tier: str = complexity.effective_tier
    fallback_from: str | None = None
    fallback_reason: str | None = None
    visited: list[str] = []
    while True:
        visited.append(tier)
        target = policy.target_for(tier)
        if target.type == "sidecar" and not task.has_shell_command and "standard" not in visited:
            fallback_from, fallback_reason = fallback_from or tier, "no_shell_command"
            tier = "standard"
            continue
        resolved = _resolve(target, snapshot, policy, now, avoid_endpoints, loads)
        if resolved is not None:
            break
        detail = f"no healthy {target.type} endpoint" + (f" serving {target.model}" if target.model else "")
        if not waited_enough:
            return Wait(until=since + policy.fallback_wait_ms, since=since, reason="no_healthy_endpoint", detail=detail)
        next_tier = policy.fallback_for(tier)
        if next_tier is None or next_tier in visited:
            recheck = now + max(policy.fallback_wait_ms, MIN_RECHECK_MS)
            return Wait(until=recheck, since=since, reason="no_healthy_endpoint", detail=detail + "; no fallback left")
        fallback_from, fallback_reason = fallback_from or tier, "no_healthy_endpoint"
        tier = next_tier

    if resolved.target.is_cloud and policy.has_budget:
        model = resolved.target.model or ""
        tokens = task.estimated_tokens or estimate_tokens(complexity.inferred.signals)
        verdict = check_budget(daily_usd=policy.budget_daily_usd, monthly_usd=policy.budget_monthly_usd,
                               spend=spend, estimate_usd=_price(estimate_usd, model, tokens), now=now)
        if verdict.exhausted:
            if policy.budget_action == "local":
                for local in policy.local_targets:
                    alternative = _resolve(local, snapshot, policy, now, avoid_endpoints, loads)
                    if alternative is not None:
                        decision = _decision("standard", alternative, reason, now,
                                             fallback_from or complexity.effective_tier, "budget_exhausted")
                        return Routed(decision, alternative.target, alternative.endpoint, verdict.detail)
            until = verdict.resets_at if policy.budget_action == "hold" and verdict.resets_at else \
                now + max(policy.fallback_wait_ms, MIN_RECHECK_MS)
            return Wait(until=until, since=since, reason="budget_exhausted", detail=verdict.detail)

    decision = _decision(tier, resolved, reason, now, fallback_from, fallback_reason)
    return Routed(decision, resolved.target, resolved.endpoint)
