"""``choose_agent``: capabilities, pinning, locality, spreading, retries."""

from __future__ import annotations

from agentcom.routing import AgentView, choose_agent, host_of


def agent(agent_id: str, caps: tuple[str, ...] = (), host: str | None = None, last: int | None = None) -> AgentView:
    return AgentView(agent_id=agent_id, capabilities=frozenset(caps), ollama_host=host, last_assigned_at=last)


def test_capabilities_must_cover_the_task() -> None:
    agents = [agent("a", ("python",)), agent("b", ("python", "gpu"))]
    assert choose_agent(agents, needed_capabilities=["gpu", "python"]).agent_id == "b"
    assert choose_agent(agents, needed_capabilities=["rust"]) is None
    assert choose_agent([], needed_capabilities=[]) is None


def test_least_recently_assigned_first_so_work_spreads() -> None:
    agents = [agent("a", last=300), agent("b", last=100), agent("c", last=200)]
    assert choose_agent(agents).agent_id == "b"
    assert choose_agent([*agents, agent("new")]).agent_id == "new"  # never assigned beats everyone


def test_spreading_over_many_rounds() -> None:
    agents = {name: agent(name) for name in ("a", "b", "c")}
    picks = []
    for now in range(1, 10):
        chosen = choose_agent(agents.values())
        picks.append(chosen.agent_id)
        agents[chosen.agent_id] = agent(chosen.agent_id, last=now)
    assert picks == ["a", "b", "c"] * 3


def test_prefers_the_endpoint_host() -> None:
    agents = [agent("a", host="10.0.0.1"), agent("b", host=host_of("http://GPU-box:11434"), last=999)]
    assert choose_agent(agents, near_host="gpu-box").agent_id == "b"
    assert choose_agent(agents, near_host=None).agent_id == "a"
    assert choose_agent(agents, near_host="elsewhere").agent_id == "a"


def test_assign_to_pins_the_task() -> None:
    agents = [agent("a"), agent("b", ("python",), last=10)]
    assert choose_agent(agents, assign_to="b").agent_id == "b"
    assert choose_agent(agents, assign_to="b", avoid_agents=["b"]).agent_id == "b"  # a pin beats avoidance
    assert choose_agent(agents, assign_to="c") is None  # not idle / not connected: wait for it
    assert choose_agent(agents, assign_to="a", needed_capabilities=["python"]) is None


def test_retry_avoids_the_agent_that_failed_when_another_is_available() -> None:
    agents = [agent("a", host="box"), agent("b", last=50)]
    assert choose_agent(agents, near_host="box", avoid_agents={"a"}).agent_id == "b"
    assert choose_agent(agents[:1], avoid_agents={"a"}).agent_id == "a"


def test_hundreds_of_agents() -> None:
    agents = [agent(f"agent-{i:04d}", ("python",), host=f"10.0.{i // 250}.{i % 250}", last=1_000 - i % 500)
              for i in range(1_000)]
    chosen = choose_agent(agents, needed_capabilities=["python"], near_host="10.0.3.7")
    assert chosen.agent_id == "agent-0757"
    chosen = choose_agent(agents, needed_capabilities=["python"])
    assert chosen.last_assigned_at == 501 and chosen.agent_id == "agent-0499"
