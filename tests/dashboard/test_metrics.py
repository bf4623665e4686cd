"""Prometheus metrics of one hub: a private registry, live histograms, exact money counters."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from agentcom.hub.metrics import HubMetrics
from agentcom.protocol import messages as m
from agentcom.store.db import transaction

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


_MONEY = ("agentcom_executions_total", "agentcom_tokens_total", "agentcom_cost_usd_total",
          "agentcom_equivalent_claude_cost_usd_total")
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def money(metrics: HubMetrics) -> Samples:
    return {key: value for key, value in samples(metrics).items() if key[0] in _MONEY}


def summed_by_sql(conn: sqlite3.Connection) -> Samples:
    """The money counters as sums over the whole executions table, computed here independently."""
    out: Samples = {}

    def add(name: str, labels: dict[str, str], value: float) -> None:
        key = (name, tuple(sorted(labels.items())))
        out[key] = out.get(key, 0) + value

    for model, tier, status, runs, t_in, t_out, nusd, eq in conn.execute(
            "SELECT ifnull(model_used, 'unknown'), ifnull(tier, 'unknown'), status, count(*), total(tokens_in), "
            "total(tokens_out), total(cost_nusd), total(equivalent_claude_cost_nusd) FROM executions GROUP BY 1, 2, 3"):
        add("agentcom_executions_total", {"status": status, "tier": tier}, runs)
        add("agentcom_tokens_total", {"model": model, "tier": tier, "direction": "in"}, t_in)
        add("agentcom_tokens_total", {"model": model, "tier": tier, "direction": "out"}, t_out)
        add("agentcom_cost_usd_total", {"model": model, "tier": tier}, nusd / 1e9)
        add("agentcom_equivalent_claude_cost_usd_total", {"model": model, "tier": tier}, eq / 1e9)
    return out


def run_executions(rig: Rig, agent: Any, count: int) -> None:
    """``count`` finished executions of several models and tiers: successes, failures (with and without a
    result), and a duplicate report of one completion, which the store ignores."""
    models = ("llama3.2", "qwen2.5-coder:7b", "claude-sonnet-4")
    tiers = ("trivial", "standard", "complex")
    for i in range(count):
        assign = rig.start_task(agent, complexity_tier=tiers[i % 3])
        if i % 4 == 3:
            failed = m.ExecutionResult(status="failed", output="", model_used=models[i % 3], tokens_in=7 * i,
                                       tokens_out=i, estimated_cost_usd=0.0001 * i, equivalent_claude_cost_usd=None,
                                       execution_ms=5, price_table="test-1") if i % 8 == 3 else None
            rig.core.failed(agent, m.TaskFailed(task_id=assign.task_id, generation=assign.generation, error="boom",
                                                retryable=False, result=failed))
            continue
        result = {"model_used": models[(i // 3) % 3], "tokens_in": 100 + i, "tokens_out": 10 * i,
                  "estimated_cost_usd": None if i % 5 == 0 else 0.00123 * i, "equivalent_claude_cost_usd": 0.002 * i}
        rig.complete(agent, assign, **result)
        if i == 1:
            rig.complete(agent, assign, **result)   # the same generation again: no second row


def test_money_counters_follow_recorded_executions_and_restarts(tmp_path: Path) -> None:
    """Tokens, USD and executions by model and tier equal the SQL sums after N executions and after a
    restart on the same database, though a scrape never reads the executions table."""
    rig = Rig(tmp_path)
    try:
        metrics = HubMetrics(rig.hub, rig.fanout)
        assert money(metrics) == {}
        agent = rig.agent()
        run_executions(rig, agent, 24)
        conn = rig.hub.conn
        expected = summed_by_sql(conn)
        assert len(expected) > 20 and expected[("agentcom_executions_total", (("status", "failed"), ("tier", "complex")))]
        statements: list[str] = []
        conn.set_trace_callback(statements.append)
        got = money(metrics)
        conn.set_trace_callback(None)
        assert got == pytest.approx(expected)
        assert statements and not [s for s in statements if re.search(r"\bexecutions\b", s)]   # no table scan

        row = {"task_id": "task-gone", "generation": 1, "agent_id": "agent-1", "tier": "complex", "target_type": None,
               "endpoint": None, "model_used": "llama3.2", "tokens_in": 10**6, "tokens_out": 10**6,
               "cache_read_tokens": 0, "cache_write_tokens": 0, "cost_nusd": 10**9, "equivalent_claude_cost_nusd": None,
               "execution_ms": 1, "status": "success", "error": None, "fallback_used": 0, "completed_at": 1,
               "price_table": "test-1"}
        with pytest.raises(RuntimeError), transaction(conn):   # a write the store rolls back counts for nothing
            assert rig.core.store.record_execution(row)
            raise RuntimeError("the rest of the transaction failed")
        assert money(metrics) == pytest.approx(expected) and summed_by_sql(conn) == expected
        metrics.close()
    finally:
        rig.close()

    again = Rig(tmp_path)   # a restart on the same database: the counters start from the full sums
    try:
        metrics = HubMetrics(again.hub, again.fanout)
        assert money(metrics) == pytest.approx(expected)
        run_executions(again, again.agent(), 9)
        after = summed_by_sql(again.hub.conn)
        assert after != expected and money(metrics) == pytest.approx(after)
        metrics.close()
    finally:
        again.close()
