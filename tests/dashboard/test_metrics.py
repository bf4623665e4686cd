"""Prometheus metrics of one hub: a private registry, live histograms, exact money counters."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from agentcom.hub.metrics import HubMetrics

from .fakes import Rig


def samples(metrics: HubMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.exposition().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_follow_the_hub(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    try:
        metrics = HubMetrics(rig.hub, rig.fanout)
        agent = rig.agent()
        assign = rig.start_task(agent)
        rig.event(agent, assign, 0, "a", "stdout")
        rig.event(agent, assign, 1, "b", "stderr")
        rig.event(agent, assign, 2, "c", "stderr")
        rig.complete(agent, assign, model_used="llama3.2", tokens_in=100, tokens_out=40,
                     estimated_cost_usd=0.0, equivalent_claude_cost_usd=0.0015)
        rig.submit("still queued")   # the agent is free again, so this one is assigned at once
        rig.submit("really queued")
        session, _ = rig.dashboard()
        s = samples(metrics)
        assert s[("agentcom_tasks", (("state", "completed"),))] == 1
        assert s[("agentcom_tasks", (("state", "assigned"),))] == 1
        assert s[("agentcom_queue_depth", ())] == 1
        assert s[("agentcom_connected_sidecars", ())] == 1
        assert s[("agentcom_connected_dashboards", ())] == 1
        assert s[("agentcom_execution_events_total", (("event_type", "stderr"),))] == 2
        assert s[("agentcom_execution_events_total", (("event_type", "stdout"),))] == 1
        assert s[("agentcom_assignment_latency_seconds_count", ())] == 2
        assert s[("agentcom_completion_latency_seconds_count", ())] == 1
        tier = assign.complexity.effective_tier
        assert s[("agentcom_tokens_total", (("direction", "in"), ("model", "llama3.2"), ("tier", tier)))] == 100
        assert s[("agentcom_tokens_total", (("direction", "out"), ("model", "llama3.2"), ("tier", tier)))] == 40
        assert s[("agentcom_cost_usd_total", (("model", "llama3.2"), ("tier", tier)))] == 0
        assert s[("agentcom_equivalent_claude_cost_usd_total", (("model", "llama3.2"), ("tier", tier)))] == 0.0015
        assert s[("agentcom_executions_total", (("status", "success"), ("tier", tier)))] == 1
        assert s[("agentcom_dashboard_dropped_events_total", ())] == 0
        session.on_close()
        metrics.close()
    finally:
        rig.close()


def test_each_hub_has_its_own_registry(tmp_path: Path) -> None:
    first, second = Rig(tmp_path / "one"), Rig(tmp_path / "two")
    try:
        a, b = HubMetrics(first.hub), HubMetrics(second.hub)
        first.submit()
        assert samples(a)[("agentcom_tasks", (("state", "queued"),))] == 1
        assert samples(b)[("agentcom_tasks", (("state", "queued"),))] == 0
        assert "agentcom_tasks" not in {m.name for m in REGISTRY.collect()}
        a.close()
        b.close()
    finally:
        first.close()
        second.close()


def test_latencies_are_fed_without_a_tasks_subscriber(tmp_path: Path) -> None:
    """Metrics hear task transitions directly, so the hub builds no task summaries for them."""
    rig = Rig(tmp_path)
    try:
        metrics = HubMetrics(rig.hub, rig.fanout)
        assert not rig.hub.core.pubsub.has_listeners("tasks")
        agent = rig.agent()
        rig.complete(agent, rig.start_task(agent))
        s = samples(metrics)
        assert s[("agentcom_assignment_latency_seconds_count", ())] == 1
        assert s[("agentcom_completion_latency_seconds_count", ())] == 1
        metrics.close()
        rig.complete(agent, rig.start_task(agent))
        assert samples(metrics)[("agentcom_completion_latency_seconds_count", ())] == 1  # closed: no longer fed
    finally:
        rig.close()
