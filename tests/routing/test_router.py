"""``route``: targets, endpoint scoring, waiting and escalation, retries, the budget guard."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from agentcom.config import AgentCom
from agentcom.errors import ConfigError
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

NOW = 1_767_225_600_000 + 12 * 3_600_000  # 2026-01-01T12:00Z
F = [{"path": f"f{i}.py"} for i in range(10)]


def endpoint(address: str, *, kind: str = "ollama", status: str = "healthy", models: tuple[str, ...] = ("llama3.2:latest",),
             loaded: tuple[str, ...] = ()) -> EndpointView:
    return EndpointView.new(parse_address(address, kind=kind), kind=kind, now=0).replace(
        status=status, models=models, loaded_models=loaded)


def task(description: str = "Add retry logic with backoff to the HTTP client wrapper", *, files: int = 1,
         tier: str | None = None, shell: bool = False, tokens: tuple[int, int] | None = None) -> TaskView:
    return TaskView(classify(description, file_hints=F[:files], explicit_tier=tier), has_shell_command=shell,
                    estimated_tokens=tokens)


def snap(*endpoints: EndpointView, resources: dict[str, ResourceReport] | None = None) -> RegistrySnapshot:
    return RegistrySnapshot(endpoints=endpoints, resources=resources or {})


DEFAULT = RoutingPolicy()


def routed(result: Routed | Wait) -> Routed:
    assert isinstance(result, Routed), result
    return result


# ---------------------------------------------------------------------------- targets


def test_default_targets_per_tier() -> None:
    box = endpoint("box:11434")
    trivial = routed(route(task("Fix typo in README", files=0, shell=True), snap(box), DEFAULT, now=NOW)).decision
    assert (trivial.target_type, trivial.selected_endpoint, trivial.selected_model, trivial.estimated_cost_tier) == (
        "sidecar", None, None, "free")
    standard = routed(route(task(), snap(box), DEFAULT, now=NOW)).decision
    assert (standard.target_type, standard.selected_endpoint, standard.selected_model, standard.estimated_cost_tier) == (
        "ollama", "box:11434", "llama3.2:latest", "local")
    assert standard.candidate_count == 1 and standard.decided_at == NOW and not standard.fallback_used
    assert standard.classification_reason == "inferred:standard (confidence 0.67, words=10, files=1, steps=0)"
    complex_ = routed(route(task("Refactor the queue"), snap(box), DEFAULT, now=NOW)).decision
    assert (complex_.target_type, complex_.selected_model, complex_.estimated_cost_tier, complex_.effective_tier) == (
        "claude", "claude-sonnet-4-5", "api", "complex")


def test_unknown_routes_as_standard() -> None:
    result = routed(route(task("  ", files=0), snap(endpoint("box:1")), DEFAULT, now=NOW)).decision
    assert (result.effective_tier, result.target_type) == ("unknown", "ollama")


def test_trivial_without_a_shell_command_goes_to_the_standard_target() -> None:
    result = routed(route(task("Fix typo in README", files=0), snap(endpoint("box:1")), DEFAULT, now=NOW)).decision
    assert (result.target_type, result.effective_tier, result.fallback_used, result.fallback_from_tier,
            result.fallback_reason) == ("ollama", "standard", True, "trivial", "no_shell_command")


def test_targets_from_settings() -> None:
    settings = AgentCom(db_path=":memory:", tier_targets={"standard": "openai:smollm2", "complex": "claude:claude-opus-4-5",
                                                          "trivial": "local"})
    policy = RoutingPolicy.from_settings(settings)
    box = endpoint("llm:8000", kind="openai", models=("other", "smollm2"))
    standard = routed(route(task(), snap(box, endpoint("ollama-box:1")), policy, now=NOW)).decision
    assert (standard.target_type, standard.selected_endpoint, standard.selected_model) == ("openai", "llm:8000", "smollm2")
    trivial = routed(route(task("bump version", files=0), snap(), policy, now=NOW)).decision
    assert (trivial.target_type, trivial.selected_model, trivial.estimated_cost_tier) == ("local", None, "local")
    complex_ = routed(route(task("Rewrite it"), snap(), policy, now=NOW)).decision
    assert complex_.selected_model == "claude-opus-4-5"


def test_bad_targets_are_config_errors() -> None:
    for spec in ("gpt", "claude", "sidecar:x", ""):
        with pytest.raises(ConfigError):
            RoutingPolicy.build({"standard": spec})
    with pytest.raises(ConfigError):
        RoutingPolicy.build({"huge": "ollama"})
    with pytest.raises(ConfigError):
        RoutingPolicy(budget_action="panic")


# ---------------------------------------------------------------------------- endpoint choice


def test_configured_model_must_be_served_and_tags_are_normalized() -> None:
    policy = RoutingPolicy.build({"standard": "ollama:qwen2.5-coder"})
    without = endpoint("a:1", models=("llama3.2:latest",))
    with_it = endpoint("b:1", models=("qwen2.5-coder:latest",))
    decision = routed(route(task(), snap(without, with_it), policy, now=NOW)).decision
    assert (decision.selected_endpoint, decision.selected_model, decision.candidate_count) == (
        "b:1", "qwen2.5-coder:latest", 1)


def test_prefers_a_loaded_model_and_skips_embedding_models() -> None:
    cold = endpoint("a:1", models=("nomic-embed-text:latest", "llama3.2:latest"))
    warm = endpoint("b:1", models=("nomic-embed-text:latest", "qwen2.5-coder:7b"), loaded=("qwen2.5-coder:7b",))
    decision = routed(route(task(), snap(cold, warm), DEFAULT, now=NOW)).decision
    assert (decision.selected_endpoint, decision.selected_model, decision.candidate_count) == ("b:1", "qwen2.5-coder:7b", 2)
    only_cold = routed(route(task(), snap(cold), DEFAULT, now=NOW)).decision
    assert only_cold.selected_model == "llama3.2:latest"
    only_embed = endpoint("c:1", models=("nomic-embed-text:latest",))
    assert isinstance(route(task(), snap(only_embed), DEFAULT, now=NOW), Wait)


def test_free_capacity_from_resources_keyed_by_endpoint() -> None:
    a, b = endpoint("a:1"), endpoint("b:1")
    busy = ResourceReport(reported_at=NOW - 1_000, cpu_percent=95, vram_total_mb=8_000, vram_free_mb=500)
    idle = ResourceReport(reported_at=NOW - 1_000, cpu_percent=5, vram_total_mb=8_000, vram_free_mb=7_000)
    picked = routed(route(task(), snap(a, b, resources={"a:1": busy, "b:1": idle}), DEFAULT, now=NOW)).decision
    assert picked.selected_endpoint == "b:1"
    picked = routed(route(task(), snap(a, b, resources={"a:1": idle, "b:1": busy}), DEFAULT, now=NOW)).decision
    assert picked.selected_endpoint == "a:1"


def test_stale_resource_reports_count_as_average() -> None:
    a, b = endpoint("a:1"), endpoint("b:1")
    stale_idle = ResourceReport(reported_at=NOW - 91_000, cpu_percent=0, ram_total_mb=1, ram_free_mb=1)
    decision = routed(route(task(), snap(a, b, resources={"b:1": stale_idle}), DEFAULT, now=NOW)).decision
    assert decision.selected_endpoint == "a:1"  # a tie, broken by id


def test_in_flight_work_spreads_over_endpoints() -> None:
    a, b = endpoint("a:1"), endpoint("b:1")
    decision = routed(route(task(), snap(a, b), DEFAULT, now=NOW, in_flight={"a:1": 2})).decision
    assert decision.selected_endpoint == "b:1"


def test_only_healthy_endpoints_of_the_right_kind() -> None:
    endpoints = (endpoint("a:1", status="unhealthy"), endpoint("b:1", status="unknown"),
                 endpoint("c:8000", kind="openai"), endpoint("d:1"))
    decision = routed(route(task(), snap(*endpoints), DEFAULT, now=NOW)).decision
    assert (decision.selected_endpoint, decision.candidate_count) == ("d:1", 1)


def test_retry_avoids_the_endpoint_that_failed_when_another_exists() -> None:
    a, b = endpoint("a:1", loaded=("llama3.2:latest",)), endpoint("b:1")
    assert routed(route(task(), snap(a, b), DEFAULT, now=NOW)).decision.selected_endpoint == "a:1"
    retry = routed(route(task(), snap(a, b), DEFAULT, now=NOW, avoid_endpoints={"a:1"})).decision
    assert retry.selected_endpoint == "b:1"
    alone = routed(route(task(), snap(a), DEFAULT, now=NOW, avoid_endpoints={"a:1"})).decision
    assert alone.selected_endpoint == "a:1"


def test_near_host_is_the_endpoint_host() -> None:
    result = routed(route(task(), snap(endpoint("http://GPU-Box:11434")), DEFAULT, now=NOW))
    assert result.near_host == "gpu-box"
    assert routed(route(task("Refactor x"), snap(), DEFAULT, now=NOW)).near_host is None


# ---------------------------------------------------------------------------- waiting and escalation


def test_standard_waits_then_escalates_to_complex() -> None:
    first = route(task(), snap(), DEFAULT, now=NOW)
    assert first == Wait(until=NOW + 5_000, since=NOW, reason="no_healthy_endpoint", detail="no healthy ollama endpoint")
    still = route(task(), snap(endpoint("a:1", status="unhealthy")), DEFAULT, now=NOW + 4_999, waiting_since=NOW)
    assert isinstance(still, Wait) and still.until == NOW + 5_000 and still.since == NOW
    late = routed(route(task(), snap(), DEFAULT, now=NOW + 5_000, waiting_since=NOW)).decision
    assert (late.effective_tier, late.target_type, late.selected_model, late.fallback_used, late.fallback_from_tier,
            late.fallback_reason) == ("complex", "claude", "claude-sonnet-4-5", True, "standard", "no_healthy_endpoint")
    assert late.classification_reason.startswith("inferred:standard")


def test_an_endpoint_that_recovers_in_time_is_used() -> None:
    decision = routed(route(task(), snap(endpoint("a:1")), DEFAULT, now=NOW + 2_000, waiting_since=NOW)).decision
    assert (decision.target_type, decision.fallback_used) == ("ollama", False)


def test_without_an_escalation_the_task_keeps_waiting() -> None:
    policy = RoutingPolicy(tier_fallbacks={}, fallback_wait_ms=100)
    result = route(task(), snap(), policy, now=NOW + 10_000, waiting_since=NOW)
    assert isinstance(result, Wait) and result.until > NOW + 10_000 and result.since == NOW
    assert "no fallback left" in result.detail


def test_escalation_cycles_end_in_a_wait() -> None:
    policy = RoutingPolicy.build({"complex": "openai"}, tier_fallbacks={"standard": "complex", "complex": "standard"})
    result = route(task(), snap(), policy, now=NOW + 60_000, waiting_since=NOW)
    assert isinstance(result, Wait) and result.reason == "no_healthy_endpoint"


def test_unknown_escalates_like_standard() -> None:
    result = routed(route(task("", files=0), snap(), DEFAULT, now=NOW + 5_000, waiting_since=NOW)).decision
    assert (result.target_type, result.fallback_from_tier) == ("claude", "unknown")


# ---------------------------------------------------------------------------- budget guard


def priced(model: str, tokens_in: int, tokens_out: int) -> float | None:
    prices = {"claude-sonnet-4-5": (3.0, 15.0)}
    if model not in prices:
        return None
    p_in, p_out = prices[model]
    return tokens_in * p_in / 1e6 + tokens_out * p_out / 1e6


def budget(**kwargs: Any) -> RoutingPolicy:
    return RoutingPolicy(**{"budget_daily_usd": 1.0, **kwargs})


def test_within_budget_complex_goes_to_the_cloud() -> None:
    result = routed(route(task("Refactor the store"), snap(endpoint("a:1")), budget(), now=NOW,
                          spend=Spend(today_usd=0.5), estimate_usd=priced))
    assert result.decision.target_type == "claude" and not result.decision.fallback_used


def test_exhausted_budget_routes_complex_work_to_the_best_local_target() -> None:
    local = endpoint("a:1", loaded=("llama3.2:latest",))
    result = routed(route(task("Refactor the store", tokens=(100_000, 50_000)), snap(local, endpoint("b:1")), budget(),
                          now=NOW, spend=Spend(today_usd=0.5), estimate_usd=priced))  # 0.5 + 1.05 > 1.0
    decision = result.decision
    assert (decision.target_type, decision.selected_endpoint, decision.effective_tier, decision.estimated_cost_tier) == (
        "ollama", "a:1", "standard", "local")
    assert (decision.fallback_used, decision.fallback_from_tier, decision.fallback_reason) == (
        True, "complex", "budget_exhausted")
    assert "daily budget" in result.detail


def test_exhausted_budget_without_local_endpoints_uses_the_in_process_model() -> None:
    result = routed(route(task("Refactor the store"), snap(), budget(), now=NOW, spend=Spend(today_usd=1.0),
                          estimate_usd=priced)).decision
    assert (result.target_type, result.fallback_reason) == ("local", "budget_exhausted")


def test_hold_waits_until_the_period_resets() -> None:
    daily = route(task("Refactor the store"), snap(endpoint("a:1")), budget(budget_action="hold"), now=NOW,
                  spend=Spend(today_usd=1.0), estimate_usd=priced)
    assert isinstance(daily, Wait) and daily.reason == "budget_exhausted"
    assert datetime.fromtimestamp(daily.until / 1000, tz=timezone.utc) == datetime(2026, 1, 2, tzinfo=timezone.utc)
    monthly = route(task("Refactor the store"), snap(), RoutingPolicy(budget_monthly_usd=20.0, budget_action="hold"),
                    now=NOW, spend=Spend(today_usd=0.0, month_usd=20.0))
    assert isinstance(monthly, Wait)
    assert datetime.fromtimestamp(monthly.until / 1000, tz=timezone.utc) == datetime(2026, 2, 1, tzinfo=timezone.utc)


def test_unknown_price_counts_only_spend_so_far() -> None:
    policy = RoutingPolicy.build({"complex": "claude:claude-future-9"}, budget_daily_usd=1.0)
    fits = routed(route(task("Refactor it"), snap(), policy, now=NOW, spend=Spend(today_usd=0.99), estimate_usd=priced))
    assert fits.decision.target_type == "claude"
    spent = routed(route(task("Refactor it"), snap(), policy, now=NOW, spend=Spend(today_usd=1.0), estimate_usd=priced))
    assert spent.decision.fallback_reason == "budget_exhausted"


def test_a_broken_price_function_is_an_unknown_price() -> None:
    def broken(model: str, tokens_in: int, tokens_out: int) -> float:
        raise KeyError(model)

    result = routed(route(task("Refactor it"), snap(), budget(), now=NOW, estimate_usd=broken))
    assert result.decision.target_type == "claude"


def test_the_estimate_sees_the_model_and_a_token_guess() -> None:
    seen: list[tuple[str, int, int]] = []

    def spy(model: str, tokens_in: int, tokens_out: int) -> float:
        seen.append((model, tokens_in, tokens_out))
        return 0.01

    route(task("Refactor the store", files=2), snap(), budget(), now=NOW, estimate_usd=spy)
    ((model, tokens_in, tokens_out),) = seen
    assert model == "claude-sonnet-4-5" and tokens_in > 4_000 and tokens_out > 1_000


def test_standard_escalated_to_claude_is_budget_guarded_too() -> None:
    result = routed(route(task(), snap(), budget(), now=NOW + 5_000, waiting_since=NOW, spend=Spend(today_usd=5.0),
                          estimate_usd=priced)).decision
    assert (result.target_type, result.fallback_from_tier, result.fallback_reason) == (
        "local", "standard", "budget_exhausted")


def test_no_budget_means_no_guard() -> None:
    result = routed(route(task("Refactor it"), snap(), DEFAULT, now=NOW, spend=Spend(today_usd=1e9), estimate_usd=priced))
    assert result.decision.target_type == "claude"
