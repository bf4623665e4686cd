"""Prometheus metrics of one hub, served at ``/agentcom/metrics`` (authenticated like the API).

Each hub has its own ``CollectorRegistry``: two hubs in one process (tests, notebooks) never
share or clash over series, and nothing lands in prometheus_client's global registry.

Gauges are read at scrape time from the hub's state. The money counters (executions, tokens
and USD by model and tier) are exact sums over the executions table that survive restarts, but
a scrape never reads that table: they are summed once when the metrics start, and then kept by
SQLite itself (``_MoneySums``: a TEMP trigger on the hub's connection adds each recorded row to a
small TEMP table, inside the same transaction, so a write the store rolls back is rolled back
there too). Latency histograms are fed live with each task transition (``HubCore.transitions``:
the task itself, no summary built), the execution event counter from the hub's pubsub.

| metric | type | labels |
|---|---|---|
| agentcom_tasks | gauge | state |
| agentcom_queue_depth | gauge | |
| agentcom_ready_tasks | gauge | |
| agentcom_assignment_latency_seconds | histogram (queued until assigned) | |
| agentcom_completion_latency_seconds | histogram (submitted until completed) | |
| agentcom_execution_events_total | counter | event_type |
| agentcom_connected_sidecars | gauge | |
| agentcom_connected_dashboards | gauge | |
| agentcom_dashboard_dropped_events_total | counter | |
| agentcom_executions_total | counter | status, tier |
| agentcom_tokens_total | counter | model, tier, direction (in/out) |
| agentcom_cost_usd_total | counter | model, tier |
| agentcom_equivalent_claude_cost_usd_total | counter | model, tier |
"""

from __future__ import annotations

import itertools
import sqlite3
from typing import Any, Iterator

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from tornado import web

from agentcom.store.tasks import ALL_STATES, Task

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
_FINAL = frozenset({"completed", "failed", "dead_letter", "cancelled"})


class HubMetrics:
    def __init__(self, hub: Any, fanout: Any = None) -> None:
        self.hub = hub
        self.fanout = fanout
        self.registry = CollectorRegistry(auto_describe=False)
        self.assignment_latency = Histogram(
            "agentcom_assignment_latency_seconds", "Time a task waited in the queue before it was assigned.",
            buckets=LATENCY_BUCKETS, registry=self.registry)
        self.completion_latency = Histogram(
            "agentcom_completion_latency_seconds", "Time from submission to completion of a task.",
            buckets=LATENCY_BUCKETS, registry=self.registry)
        self.execution_events: dict[str, int] = {}   # event_type -> count: a dict add per event, no lock
        self.money = _MoneySums(hub.core.store.conn)
        self.registry.register(_StateCollector(hub, fanout, self))
        self._queued_at: dict[str, int] = {}
        self._transitions: list[Any] = hub.core.transitions
        self._transitions.append(self._on_transition)
        self._unsubscribe = hub.core.pubsub.subscribe(self._on_event, ("execution",))

    def close(self) -> None:
        self._unsubscribe()
        if self._on_transition in self._transitions:
            self._transitions.remove(self._on_transition)
        self.money.close()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def _on_event(self, topic: str, message: dict[str, Any]) -> None:
        kind = message.get("event_type") or "unknown"
        events = self.execution_events
        events[kind] = events.get(kind, 0) + 1

    def _on_transition(self, task: Task) -> None:
        status = task.status
        if status == "queued":
            self._queued_at[task.task_id] = task.updated_at
        elif status == "assigned":
            since = self._queued_at.pop(task.task_id, task.created_at)
            self.assignment_latency.observe(max(0, task.updated_at - since) / 1000)
        elif status in _FINAL:
            self._queued_at.pop(task.task_id, None)
            if status == "completed" and task.completed_at:
                self.completion_latency.observe(max(0, task.completed_at - task.created_at) / 1000)


_SUM_COLUMNS = "runs, tokens_in, tokens_out, cost_nusd, equivalent_nusd"
Row = tuple[str, str, str, int, int, int, int, int]
_names = itertools.count()


class _MoneySums:
    """Executions, tokens and USD per (model, tier, status), kept current by SQLite as rows are recorded.

    A TEMP table and a TEMP trigger on the hub's own connection: they live as long as it does,
    never touch the database file, and see exactly the rows the store inserts (an ``INSERT OR
    IGNORE`` of a duplicate fires nothing). The trigger's upsert is part of the store's
    transaction, so a rolled-back write leaves the sums as they were. At start-up the table is
    filled with one GROUP BY over the executions table (the full re-sum, e.g. after a restart);
    a scrape then reads only the few rows of the TEMP table."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.closed: list[Row] | None = None   # the sums when closed
        self.table = f"agentcom_metrics_money_{next(_names)}"   # two hubs (or metrics) on one connection never clash
        t = self.table
        conn.execute(f"CREATE TEMP TABLE {t} (model TEXT NOT NULL, tier TEXT NOT NULL, status TEXT NOT NULL, "
                     "runs INTEGER NOT NULL, tokens_in INTEGER NOT NULL, tokens_out INTEGER NOT NULL, "
                     "cost_nusd INTEGER NOT NULL, equivalent_nusd INTEGER NOT NULL, "
                     "PRIMARY KEY (model, tier, status)) WITHOUT ROWID")
        conn.execute(
            f"INSERT INTO temp.{t} (model, tier, status, {_SUM_COLUMNS}) "
            "SELECT coalesce(model_used, 'unknown'), coalesce(tier, 'unknown'), status, count(*), "
            "coalesce(sum(tokens_in), 0), coalesce(sum(tokens_out), 0), coalesce(sum(cost_nusd), 0), "
            "coalesce(sum(equivalent_claude_cost_nusd), 0) FROM main.executions GROUP BY 1, 2, 3")
        conn.execute(
            f"CREATE TEMP TRIGGER {t}_feed AFTER INSERT ON main.executions BEGIN "
            f"INSERT INTO {t} (model, tier, status, {_SUM_COLUMNS}) VALUES (coalesce(NEW.model_used, 'unknown'), "
            "coalesce(NEW.tier, 'unknown'), NEW.status, 1, NEW.tokens_in, NEW.tokens_out, coalesce(NEW.cost_nusd, 0), "
            "coalesce(NEW.equivalent_claude_cost_nusd, 0)) ON CONFLICT (model, tier, status) DO UPDATE SET "
            "runs = runs + 1, tokens_in = tokens_in + excluded.tokens_in, tokens_out = tokens_out + excluded.tokens_out, "
            "cost_nusd = cost_nusd + excluded.cost_nusd, equivalent_nusd = equivalent_nusd + excluded.equivalent_nusd; "
            "END")

    def rows(self) -> list[Row]:
        """(model, tier, status, runs, tokens_in, tokens_out, cost_nusd, equivalent_nusd), one per group."""
        if self.closed is not None:
            return self.closed
        return [tuple(r) for r in self.conn.execute(f"SELECT model, tier, status, {_SUM_COLUMNS} FROM temp.{self.table}")]

    def close(self) -> None:
        """Stop counting: the sums stay as they are now; the trigger and table are dropped."""
        if self.closed is not None:
            return
        try:
            self.closed = self.rows()
            self.conn.execute(f"DROP TRIGGER IF EXISTS temp.{self.table}_feed")
            self.conn.execute(f"DROP TABLE IF EXISTS temp.{self.table}")
        except sqlite3.Error:   # the connection is closed already: TEMP objects went with it
            self.closed = self.closed or []


class _StateCollector:
    """Values read from the hub when scraped."""

    def __init__(self, hub: Any, fanout: Any, metrics: HubMetrics) -> None:
        self.hub = hub
        self.fanout = fanout
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        core = self.hub.core
        tasks = GaugeMetricFamily("agentcom_tasks", "Tasks by state.", labels=["state"])
        for state in ALL_STATES:
            tasks.add_metric([state], core.counts.get(state, 0))
        yield tasks
        yield GaugeMetricFamily("agentcom_queue_depth", "Tasks queued (waiting for an agent, a dependency or an endpoint).",
                                value=core.counts.get("queued", 0))
        yield GaugeMetricFamily("agentcom_ready_tasks", "Queued tasks that could be assigned now.", value=len(core.ready))
        yield GaugeMetricFamily("agentcom_connected_sidecars", "Sidecars connected now.",
                                value=sum(1 for a in core.agents.values() if a.online))
        yield GaugeMetricFamily("agentcom_connected_dashboards", "Dashboards connected now.",
                                value=len(self.fanout) if self.fanout is not None else getattr(self.hub, "dashboards", 0))
        yield CounterMetricFamily("agentcom_dashboard_dropped_events",
                                  "Execution events dropped for slow dashboards (oldest first).",
                                  value=self.fanout.dropped_total if self.fanout is not None else 0)
        events = CounterMetricFamily("agentcom_execution_events", "Execution events streamed by sidecars.",
                                     labels=["event_type"])
        for kind, count in sorted(self.metrics.execution_events.items()):
            events.add_metric([kind], count)
        yield events
        yield from self._money(self.metrics.money.rows())

    @staticmethod
    def _money(rows: list[Row]) -> Iterator[Metric]:
        executions = CounterMetricFamily("agentcom_executions", "Finished executions.", labels=["status", "tier"])
        tokens = CounterMetricFamily("agentcom_tokens", "Tokens used.", labels=["model", "tier", "direction"])
        cost = CounterMetricFamily("agentcom_cost_usd", "Estimated spend in USD.", labels=["model", "tier"])
        claude = CounterMetricFamily("agentcom_equivalent_claude_cost_usd",
                                     "What the same work would have cost on the reference Claude model, USD.",
                                     labels=["model", "tier"])
        by_status: dict[tuple[str, str], int] = {}
        by_model: dict[tuple[str, str], list[int]] = {}
        for model, tier, status, count, t_in, t_out, nusd, eq in rows:
            by_status[(status, tier)] = by_status.get((status, tier), 0) + count
            sums = by_model.setdefault((model, tier), [0, 0, 0, 0])
            for i, value in enumerate((t_in, t_out, nusd, eq)):
                sums[i] += int(value)
        for (status, tier), count in sorted(by_status.items()):
            executions.add_metric([status, tier], count)
        for (model, tier), (t_in, t_out, nusd, eq) in sorted(by_model.items()):
            tokens.add_metric([model, tier, "in"], t_in)
            tokens.add_metric([model, tier, "out"], t_out)
            cost.add_metric([model, tier], nusd / 1e9)
            claude.add_metric([model, tier], eq / 1e9)
        yield from (executions, tokens, cost, claude)


class MetricsLogic:
    """``GET /agentcom/metrics``: Prometheus text format."""

    def initialize(self, hub: Any, metrics: HubMetrics, **_: Any) -> None:
        self.hub = hub
        self.metrics = metrics

    @web.authenticated
    def get(self) -> None:
        handler: web.RequestHandler = self  # type: ignore[assignment]
        handler.set_header("Content-Type", CONTENT_TYPE_LATEST)
        handler.finish(self.metrics.exposition())
