"""``choose_agent``: which idle sidecar gets a routed task. Pure, one pass, O(agents).

Rules, in order:

1. ``assign_to`` pins the task: only that agent, and only if it is offered and capable.
2. The agent must have every one of ``needed_capabilities`` (exact strings).
3. Agents in ``avoid_agents`` (the one that just failed the task) are skipped when any
   other candidate remains.
4. Prefer an agent on the endpoint's host (its ``ollama_host`` equals ``near_host``),
   so the model runs next to the sidecar; then the least recently assigned (never
   assigned first), so work spreads; then the smaller agent id, so choice is stable.

The original took the first capable idle agent, so one sidecar got everything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Collection, Iterable, TypeVar

__all__ = ["AgentView", "choose_agent"]

A = TypeVar("A")


@dataclass(frozen=True)
class AgentView:
    """An idle sidecar as the scheduler offers it.

    ``ollama_host``: host of the sidecar's ``ollama_url``, normalized with
    ``agentcom.routing.addresses.host_of`` so it compares equal to ``EndpointView.host``.
    ``last_assigned_at``: ms of its last assignment; None or 0 = never.
    """

    agent_id: str
    capabilities: frozenset[str] = frozenset()
    ollama_host: str | None = None
    last_assigned_at: int | None = None


def _own_host(agent: Any) -> str | None:
    return agent.ollama_host  # type: ignore[no-any-return]


def choose_agent(
    agents: Iterable[A],
    *,
    needed_capabilities: Collection[str] = (),
    near_host: str | None = None,
    assign_to: str | None = None,
    avoid_agents: Collection[str] = (),
    host_of: Callable[[A], str | None] = _own_host,
) -> A | None:
    """The agent to assign to, or None if no offered agent may take the task.

    Agents are ``AgentView``s, or any objects with ``agent_id``, ``capabilities`` (a set)
    and ``last_assigned_at`` when ``host_of`` gives their host: the hub offers every idle
    agent for every task, so it passes its own agents rather than building a view of each.
    """
    needed = frozenset(needed_capabilities)
    pool = [a for a in agents
            if (assign_to is None or a.agent_id == assign_to) and (not needed or needed <= a.capabilities)]
    if assign_to is None and avoid_agents:
        pool = [a for a in pool if a.agent_id not in avoid_agents] or pool
    if near_host is not None:
        pool = [a for a in pool if host_of(a) == near_host] or pool
    return min(pool, key=_spread) if pool else None  # rules 3 and 4 as filters, then the spreading order


def _spread(agent: Any) -> tuple[int, str]:
    return agent.last_assigned_at or 0, agent.agent_id
