"""Model-aware routing: classify a task, know the LLM endpoints, decide where it runs.

- ``classify`` / ``Classifier``: the task's ``complexity`` at submit (classifier.py).
- ``EndpointRegistry``: Ollama / OpenAI-compatible endpoints, health timer, persistence
  (registry.py, probes.py, endpoint_store.py).
- ``route``: a pure function from (task, registry snapshot, policy, now, waiting_since)
  to ``Routed`` (a ``routing_decision``) or ``Wait`` (router.py, policy.py, budget.py).
- ``choose_agent``: which idle sidecar takes it (agents.py).
- ``RoutingStats``: the snapshot's ``routing_stats`` (stats.py).
- ``ModelRouter``: all of the above behind the hub's ``Router`` interface (hub_router.py).

Nothing here imports Tornado or the hub; the hub calls in.
"""

from agentcom.routing.addresses import EndpointAddress, host_of, parse_address
from agentcom.routing.agents import AgentView, choose_agent
from agentcom.routing.budget import ExecutionSpend, Spend, estimate_tokens, spend_from_executions
from agentcom.routing.classifier import Classifier, classify, explain
from agentcom.routing.endpoints import EndpointChange, EndpointView, RegistrySnapshot, ResourceReport
from agentcom.routing.policy import RoutingPolicy
from agentcom.routing.hub_router import ModelRouter
from agentcom.routing.registry import EndpointRegistry
from agentcom.routing.router import Routed, TaskView, Wait, route
from agentcom.routing.stats import RoutingStats
from agentcom.routing.targets import Target, parse_target

__all__ = [
    "AgentView",
    "Classifier",
    "EndpointAddress",
    "EndpointChange",
    "EndpointRegistry",
    "EndpointView",
    "ExecutionSpend",
    "ModelRouter",
    "RegistrySnapshot",
    "ResourceReport",
    "Routed",
    "RoutingPolicy",
    "RoutingStats",
    "Spend",
    "Target",
    "TaskView",
    "Wait",
    "choose_agent",
    "classify",
    "estimate_tokens",
    "explain",
    "host_of",
    "parse_address",
    "parse_target",
    "route",
    "spend_from_executions",
]
