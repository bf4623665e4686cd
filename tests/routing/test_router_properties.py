"""Properties of ``route`` over generated tasks, registries, policies and budgets."""

from __future__ import annotations

import json
import math
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from agentcom.protocol.messages import RoutingDecision
from agentcom.routing import (
    EndpointView,
    RegistrySnapshot,
    ResourceReport,
    Routed,
    RoutingPolicy,
    Spend,
    TaskView,
    Wait,
    classify,
    route,
)
from agentcom.routing.addresses import parse_address
from agentcom.routing.targets import TARGET_TYPES

NOW = 1_767_225_600_000
FIELDS = {"effective_tier", "target_type", "selected_endpoint", "selected_model", "fallback_used", "fallback_from_tier",
          "fallback_reason", "candidate_count", "classification_reason", "estimated_cost_tier", "decided_at"}
COST_TIERS = {"sidecar": "free", "ollama": "local", "openai": "local", "local": "local", "claude": "api"}
MODELS = ["llama3.2:latest", "qwen2.5-coder:7b", "nomic-embed-text:latest", "smollm2", "llama3.2"]
TARGETS = ["sidecar", "ollama", "ollama:llama3.2", "ollama:qwen2.5-coder:7b", "openai", "openai:smollm2", "local",
           "local:smollm2", "claude:claude-sonnet-4-5", "claude:claude-haiku-4-5"]
TIERS = ["trivial", "standard", "complex", "unknown"]

maybe_float = st.none() | st.floats(allow_nan=True, allow_infinity=True, width=32)

tasks = st.builds(
    lambda words, files, steps, explicit, shell, tokens: TaskView(
        classify(" ".join(words), file_hints=[{"path": "x"}] * files, verification_steps=[{}] * steps,
                 explicit_tier=explicit),
        has_shell_command=shell, estimated_tokens=tokens),
    st.lists(st.sampled_from(["refactor", "fix typo", "add", "the", "api", "format", "information", "migrate", "x"]),
             max_size=70),
    st.integers(0, 8), st.integers(0, 8), st.none() | st.sampled_from(TIERS), st.booleans(),
    st.none() | st.tuples(st.integers(0, 10**7), st.integers(0, 10**7)),
)


@st.composite
def snapshots(draw: Any) -> RegistrySnapshot:
    addresses = draw(st.lists(st.tuples(st.sampled_from(["a", "b", "gpu-box", "10.0.0.7", "::1"]), st.integers(1, 3)),
                              unique=True, max_size=6))
    endpoints = []
    for host, port in addresses:
        kind = draw(st.sampled_from(["ollama", "openai"]))
        models = tuple(draw(st.lists(st.sampled_from(MODELS), unique=True, max_size=4)))
        loaded = tuple(draw(st.lists(st.sampled_from(MODELS), unique=True, max_size=2)))
        address = parse_address(f"[{host}]:{port}" if ":" in host else f"{host}:{port}", kind=kind)
        endpoints.append(EndpointView.new(address, kind=kind, now=0).replace(
            status=draw(st.sampled_from(["unknown", "healthy", "unhealthy"])), models=models, loaded_models=loaded))
    resources = {}
    for view in endpoints:
        if draw(st.booleans()):
            resources[view.endpoint_id] = ResourceReport(
                reported_at=NOW - draw(st.integers(-1000, 200_000)), cpu_percent=draw(maybe_float),
                ram_total_mb=draw(maybe_float), ram_free_mb=draw(maybe_float),
                vram_total_mb=draw(maybe_float), vram_free_mb=draw(maybe_float))
    return RegistrySnapshot(endpoints=tuple(endpoints), resources=resources)


policies = st.builds(
    lambda targets, fallbacks, wait, daily, monthly, action: RoutingPolicy.build(
        targets, tier_fallbacks=fallbacks, fallback_wait_ms=wait, budget_daily_usd=daily, budget_monthly_usd=monthly,
        budget_action=action),
    st.dictionaries(st.sampled_from(TIERS), st.sampled_from(TARGETS)),
    st.dictionaries(st.sampled_from(TIERS), st.sampled_from(TIERS)),
    st.integers(0, 10_000),
    st.none() | st.floats(0, 10), st.none() | st.floats(0, 100),
    st.sampled_from(["local", "hold"]),
)


def _price_function(kind: str) -> Any:
    if kind == "none":
        return None
    if kind == "raises":
        def broken(model: str, tokens_in: int, tokens_out: int) -> float:
            raise ValueError("no price")
        return broken
    if kind == "nan":
        return lambda model, tokens_in, tokens_out: math.nan
    return lambda model, tokens_in, tokens_out: tokens_in * 3e-6 + tokens_out * 15e-6


@settings(max_examples=150, deadline=None)
@given(
    task=tasks,
    snapshot=snapshots(),
    policy=policies,
    now_offset=st.integers(0, 40 * 86_400_000),
    waited=st.none() | st.integers(0, 20_000),
    avoid_pick=st.lists(st.integers(0, 5), max_size=3),
    spend=st.builds(Spend, st.floats(0, 20), st.floats(0, 200)),
    price=st.sampled_from(["none", "raises", "nan", "linear"]),
    in_flight=st.dictionaries(st.sampled_from(["a:1", "b:2", "gpu-box:3"]), st.integers(-1, 5)),
)
def test_route_always_yields_a_complete_json_decision_or_a_future_wait(
    task: TaskView, snapshot: RegistrySnapshot, policy: RoutingPolicy, now_offset: int, waited: int | None,
    avoid_pick: list[int], spend: Spend, price: str, in_flight: dict[str, int],
) -> None:
    now = NOW + now_offset
    ids = [e.endpoint_id for e in snapshot.endpoints]
    avoid = {ids[i] for i in avoid_pick if i < len(ids)}
    result = route(task, snapshot, policy, now=now, waiting_since=None if waited is None else now - waited,
                   avoid_endpoints=avoid, spend=spend, estimate_usd=_price_function(price), in_flight=in_flight)
    if isinstance(result, Wait):
        assert result.until > now and result.since <= now
        assert result.reason in ("no_healthy_endpoint", "budget_exhausted")
        return
    assert isinstance(result, Routed)
    decision = result.decision
    encoded = msgspec.json.encode(decision)
    assert msgspec.json.decode(encoded, type=RoutingDecision) == decision
    plain = json.loads(encoded)
    assert set(plain) == FIELDS
    assert all(value is None or isinstance(value, (str, int, float, bool)) for value in plain.values())
    assert decision.target_type in TARGET_TYPES
    assert decision.estimated_cost_tier == COST_TIERS[decision.target_type]
    assert decision.effective_tier in TIERS and decision.decided_at == now and decision.classification_reason
    assert decision.fallback_used == (decision.fallback_reason is not None) == (decision.fallback_from_tier is not None)
    assert decision.candidate_count >= 0
    if decision.target_type in ("ollama", "openai"):
        chosen = next(e for e in snapshot.endpoints if e.endpoint_id == decision.selected_endpoint)
        assert chosen.healthy and chosen.kind == decision.target_type
        assert decision.selected_model in chosen.models
        assert 1 <= decision.candidate_count <= len(snapshot.endpoints)
    else:
        assert decision.selected_endpoint is None and decision.candidate_count == 0
    if decision.target_type == "claude":
        assert decision.selected_model


@settings(max_examples=60, deadline=None)
@given(task=tasks, snapshot=snapshots(), waited=st.integers(5_000, 10**6))
def test_with_default_settings_a_task_that_waited_long_enough_is_always_routed(
    task: TaskView, snapshot: RegistrySnapshot, waited: int
) -> None:
    result = route(task, snapshot, RoutingPolicy(), now=NOW, waiting_since=NOW - waited)
    assert isinstance(result, Routed)
