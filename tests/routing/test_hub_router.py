"""``ModelRouter`` behind the hub's Router interface, with hub-shaped tasks and agents."""

from __future__ import annotations

import sqlite3
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest

from agentcom.config import AgentCom
from agentcom.protocol.api import EndpointRegistration, TaskSubmission
from agentcom.protocol.messages import Complexity, RoutingDecision
from agentcom.routing import EndpointRegistry, ModelRouter, Spend, spend_from_executions
from agentcom.routing.endpoints import after_success

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("anyio_backend")]  # one backend (see conftest)

NOW = 1_767_268_800_000  # 2026-01-01T12:00Z


def settings(**kwargs: Any) -> AgentCom:
    return AgentCom(db_path=":memory:", **kwargs)


def waits(until: int, reason: str) -> tuple[str, int, str]:
    return ("wait", until, reason)


def healthy(registry: EndpointRegistry, address: str, models: tuple[str, ...] = ("llama3.2:latest",)) -> str:
    view = registry.register(address)
    registry._endpoints[view.endpoint_id] = after_success(view, models, (), NOW)  # as if a check had answered
    return view.endpoint_id


def hub_task(router: ModelRouter, description: str, **fields: Any) -> SimpleNamespace:
    sub = TaskSubmission(description=description, **{k: v for k, v in fields.items() if k in TaskSubmission.__struct_fields__})
    return SimpleNamespace(task_id=fields.get("task_id", "task-1"), description=description,
                           complexity=router.classify(sub), metadata=dict(sub.metadata),
                           file_hints=[msgspec.to_builtins(h) for h in sub.file_hints],
                           verification_steps=[msgspec.to_builtins(s) for s in sub.verification_steps],
                           needed_capabilities=list(sub.needed_capabilities), assign_to=sub.assign_to,
                           routing_decision=None)


def hub_agent(agent_id: str, ollama_url: str | None = None, caps: tuple[str, ...] = (), last: int = 0) -> SimpleNamespace:
    return SimpleNamespace(agent_id=agent_id, capabilities=frozenset(caps), ollama_url=ollama_url, last_assigned_at=last)


def test_classify_returns_the_protocol_complexity() -> None:
    router = ModelRouter(settings(), EndpointRegistry())
    complexity = router.classify(TaskSubmission(description="Refactor the scheduler", complexity_tier="trivial"))
    assert msgspec.convert(complexity, Complexity).effective_tier == "trivial"
    assert complexity["inferred"]["tier"] == "complex" and complexity["source"] == "explicit"


def test_routes_to_the_endpoint_and_prefers_the_agent_next_to_it() -> None:
    registry = EndpointRegistry()
    healthy(registry, "gpu-box:11434")
    router = ModelRouter(settings(), registry, wait_factory=waits)
    task = hub_task(router, "Add pagination to the task list endpoint of the HTTP API",
                    file_hints=[{"path": "agentcom/hub/handlers.py"}])
    near, far = hub_agent("near", "http://GPU-box:11434", last=500), hub_agent("far", last=100)
    decision, agent = router.route(task, [far, near], NOW)
    assert agent is near
    assert msgspec.convert(decision, RoutingDecision).selected_endpoint == "gpu-box:11434"
    router.record(decision)
    assert router.stats() == {"by_tier": {"standard": 1}, "by_target": {"ollama": 1}, "fallback_count": 0,
                              "total_routed": 1}


def test_a_remote_sidecar_is_near_its_loopback_endpoint_registered_at_its_address() -> None:
    """Its ``ollama_url`` says localhost, but its endpoint is registered at its address: that is where it is."""
    registry = EndpointRegistry()
    router = ModelRouter(settings(), registry, wait_factory=waits)
    owner, far = hub_agent("owner", "http://localhost:11434", last=500), hub_agent("far", last=100)
    assert router.agent_joined(owner, peer_host="10.1.2.3") is not None
    endpoint_id = healthy(registry, "10.1.2.3:11434")
    decision, agent = router.route(hub_task(router, "Add pagination to the task list endpoint of the HTTP API"),
                                   [far, owner], NOW)
    assert decision["selected_endpoint"] == endpoint_id and agent is owner


def test_without_an_endpoint_to_choose_the_candidates_are_the_agents() -> None:
    router = ModelRouter(settings(), EndpointRegistry(), wait_factory=waits)
    task = hub_task(router, "fix typo", complexity_tier="trivial", metadata={"shell_command": "true"})
    decision, _ = router.route(task, [hub_agent("a"), hub_agent("b"), hub_agent("c")], NOW)
    assert (decision["target_type"], decision["selected_endpoint"], decision["candidate_count"]) == ("sidecar", None, 3)


def test_waits_then_escalates_and_remembers_when_waiting_began() -> None:
    router = ModelRouter(settings(fallback_wait_ms=1_000), EndpointRegistry(), wait_factory=waits)
    task = hub_task(router, "Add pagination to the task list endpoint of the HTTP API")
    agent = hub_agent("a")
    assert router.route(task, [agent], NOW) == ("wait", NOW + 1_000, "no_healthy_endpoint")
    assert router.route(task, [agent], NOW + 500) == ("wait", NOW + 1_000, "no_healthy_endpoint")
    decision, chosen = router.route(task, [agent], NOW + 1_000)
    assert (decision["target_type"], decision["fallback_from_tier"], decision["fallback_reason"]) == (
        "claude", "standard", "no_healthy_endpoint")


def test_a_retry_avoids_the_last_agent_and_endpoint() -> None:
    registry = EndpointRegistry()
    healthy(registry, "a:11434")
    healthy(registry, "b:11434")
    router = ModelRouter(settings(), registry, wait_factory=waits)
    task = hub_task(router, "Add pagination to the task list endpoint of the HTTP API")
    agents = [hub_agent("x"), hub_agent("y")]
    first, agent1 = router.route(task, agents, NOW)
    second, agent2 = router.route(task, agents, NOW + 10)  # the hub requeued it after a failure
    assert first["selected_endpoint"] != second["selected_endpoint"]
    assert agent1 is not agent2
    router.forget(task.task_id)


def test_a_restarted_hub_avoids_the_stored_endpoint() -> None:
    registry = EndpointRegistry()
    healthy(registry, "a:11434")
    healthy(registry, "b:11434")
    router = ModelRouter(settings(), registry, wait_factory=waits)
    task = hub_task(router, "Add pagination to the task list endpoint of the HTTP API")
    task.routing_decision = {"selected_endpoint": "a:11434"}
    decision, _ = router.route(task, [hub_agent("x")], NOW)
    assert decision["selected_endpoint"] == "b:11434"


def test_no_fitting_agent_is_none() -> None:
    router = ModelRouter(settings(), EndpointRegistry(), wait_factory=waits)
    task = hub_task(router, "Refactor everything", needed_capabilities=["gpu"])
    assert router.route(task, [hub_agent("a")], NOW) is None


def test_trivial_shell_task_goes_to_the_sidecar() -> None:
    router = ModelRouter(settings(), EndpointRegistry(), wait_factory=waits)
    task = hub_task(router, "Fix typo in README", metadata={"shell_command": "sed -i s/teh/the/ README.md"})
    decision, _ = router.route(task, [hub_agent("a")], NOW)
    assert (decision["target_type"], decision["estimated_cost_tier"]) == ("sidecar", "free")


def test_budget_from_the_executions_table(db: sqlite3.Connection) -> None:
    def row(task_id: str, cost_usd: float, completed_at: int) -> None:
        db.execute("INSERT INTO executions (task_id, generation, tokens_in, tokens_out, cost_nusd, execution_ms, status, "
                   "completed_at, price_table) VALUES (?, 1, 0, 0, ?, 1, 'success', ?, 't')",
                   (task_id, int(cost_usd * 1e9), completed_at))

    mid_january = 1_767_225_600_000 + 14 * 86_400_000 + 12 * 3_600_000  # 2026-01-15T12:00Z
    row("december", 50.0, mid_january - 20 * 86_400_000)
    row("january", 3.0, mid_january - 5 * 86_400_000)
    row("today", 1.5, mid_january - 60_000)
    db.execute("INSERT INTO executions (task_id, generation, tokens_in, tokens_out, cost_nusd, execution_ms, status, "
               "completed_at, price_table) VALUES ('unpriced', 1, 5, 5, NULL, 1, 'success', ?, 't')", (mid_january,))
    assert spend_from_executions(db, mid_january) == Spend(today_usd=1.5, month_usd=4.5)
    router = ModelRouter(settings(budget_monthly_usd=4.5), EndpointRegistry(), wait_factory=waits,
                         spend=lambda now: spend_from_executions(db, now), estimate_usd=lambda m, i, o: 0.01)
    decision, _ = router.route(hub_task(router, "Refactor the store"), [hub_agent("a")], mid_january)
    assert (decision["target_type"], decision["fallback_reason"]) == ("local", "budget_exhausted")


def test_the_default_wait_is_the_hubs_own_type() -> None:
    from agentcom.hub.core import Wait as HubWait

    router = ModelRouter(settings(), EndpointRegistry())
    result = router.route(hub_task(router, "Add pagination to the task list endpoint"), [hub_agent("a")], NOW)
    assert isinstance(result, HubWait) and result.until == NOW + 5_000


async def test_endpoint_api_helpers(llm_server) -> None:
    server = llm_server("healthy")
    router = ModelRouter(settings(), EndpointRegistry(timeout_ms=500))
    answer = await router.register_endpoint(EndpointRegistration(host=server.url, name="box"))
    assert answer["status"] == "healthy" and answer["endpoint_id"] == server.address and answer["name"] == "box"
    assert [e["endpoint_id"] for e in router.endpoints_view()] == [server.address]
    assert router.remove_endpoint(server.address) and not router.remove_endpoint(server.address)


def test_agent_joined_registers_its_ollama_url_and_tolerates_garbage() -> None:
    router = ModelRouter(settings(), EndpointRegistry())
    view = router.agent_joined(hub_agent("a", "http://localhost:11434"), peer_host="10.1.2.3")
    assert view is not None and view.endpoint_id == "10.1.2.3:11434" and view.agent_id == "a"
    assert router.agent_joined(hub_agent("b", "ftp://nope")) is None
    assert router.agent_joined(hub_agent("c")) is None


def test_a_sidecar_serving_the_target_itself_is_used_before_any_wait_and_a_registered_endpoint_before_it() -> None:
    registry = EndpointRegistry()
    router = ModelRouter(settings(), registry, wait_factory=waits)
    task = hub_task(router, "Explain a binary search", complexity_tier="standard")
    plain, embedded = hub_agent("plain", last=0), hub_agent("embedded", caps=("serves:local",), last=900)
    assert router.route(task, [plain], NOW) == waits(NOW + 5_000, "no_healthy_endpoint")
    decision, agent = router.route(task, [plain, embedded], NOW + 10)
    assert agent is embedded  # not `plain`, though it was assigned less recently
    assert (decision["target_type"], decision["fallback_used"], decision["candidate_count"]) == ("local", True, 1)
    healthy(registry, "gpu-box:11434")
    decision, _ = router.route(hub_task(router, "Explain a heap", task_id="task-2", complexity_tier="standard"),
                               [plain, embedded], NOW + 20)
    assert (decision["target_type"], decision["selected_endpoint"]) == ("ollama", "gpu-box:11434")


def test_a_task_waits_for_a_busy_sidecar_that_serves_it_instead_of_escalating() -> None:
    """The only sidecar with an embedded model is busy: the standard task waits for it however long,
    never falls back to the cloud tier; once that sidecar is gone, the usual wait and escalation apply."""
    router = ModelRouter(settings(), EndpointRegistry(), wait_factory=waits)
    task = hub_task(router, "Explain a binary search", complexity_tier="standard")
    plain = hub_agent("plain")
    embedded = SimpleNamespace(**vars(hub_agent("embedded", caps=("serves:local",))), online=True)
    router.agent_joined(embedded)
    for later in (0, 6_000, 60_000):  # far past fallback_wait_ms
        assert router.route(task, [plain], NOW + later) == waits(NOW + later + 250, "sidecar_busy")
    decision, agent = router.route(task, [plain, embedded], NOW + 61_000)
    assert agent is embedded and (decision["target_type"], decision["fallback_from_tier"]) == ("local", "standard")
    embedded.online = False
    other = hub_task(router, "Explain a heap", task_id="task-2", complexity_tier="standard")
    assert router.route(other, [plain], NOW + 70_000) == waits(NOW + 75_000, "no_healthy_endpoint")
    decision, agent = router.route(other, [plain], NOW + 75_000)
    assert agent is plain and decision["target_type"] == "claude" and decision["fallback_used"]


def test_a_local_target_goes_to_a_sidecar_that_serves_it_when_one_is_offered() -> None:
    router = ModelRouter(settings(tier_targets={"standard": "local"}), EndpointRegistry(), wait_factory=waits)
    task = hub_task(router, "Explain a binary search", complexity_tier="standard")
    plain, embedded = hub_agent("plain", last=0), hub_agent("embedded", caps=("serves:local",), last=900)
    assert router.route(task, [plain, embedded], NOW)[1] is embedded
    assert router.route(hub_task(router, "Explain a heap", task_id="task-2", complexity_tier="standard"),
                        [plain], NOW)[1] is plain  # a sidecar that does not say (an older one) still may


def test_routing_settings_changed_on_a_running_router_apply_to_the_next_decision() -> None:
    config = settings()
    router = ModelRouter(config, EndpointRegistry(), wait_factory=waits)
    task = hub_task(router, "Explain a binary search", complexity_tier="standard")
    assert router.route(task, [hub_agent("a")], NOW)[0] == "wait"
    config.tier_targets = {"standard": "claude:claude-haiku-4-5"}
    config.complex_keywords = ["binary"]
    decision, _ = router.route(task, [hub_agent("a")], NOW + 1)
    assert (decision["target_type"], decision["selected_model"]) == ("claude", "claude-haiku-4-5")
    assert router.classify(TaskSubmission(description="a binary search"))["inferred"]["tier"] == "complex"


def test_a_task_view_is_built_once_per_task_and_again_when_the_task_is_reloaded() -> None:
    router = ModelRouter(settings(), EndpointRegistry())
    agents = [hub_agent("a1")]
    task = hub_task(router, "ls the repo", complexity_tier="trivial", metadata={"shell_command": "ls"})
    first = router._task_view(task)
    decision, _ = router.route(task, agents, NOW)
    assert router._task_view(task) is first and decision["classification_reason"] == first.reason
    assert first.reason.startswith("explicit:trivial")
    reloaded = hub_task(router, "Refactor the scheduler", complexity_tier="complex")  # same id, a new complexity
    assert router._task_view(reloaded).complexity.effective_tier == "complex"
    router.forget("task-1")
    assert router._views == {}
