"""Task rows, history and executions: what the hub writes is what a restart reads back."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from agentcom.store.db import open_db
from agentcom.store.tasks import Task, TaskStore, nano_to_usd, usd_to_nano


@pytest.fixture
def store(tmp_path: Path) -> Any:
    conn = open_db(tmp_path / "tasks.db")
    yield TaskStore(conn)
    conn.close()


def _task(task_id: str, priority: int = 2, status: str = "queued", **kw: Any) -> Task:
    return Task(task_id=task_id, description=f"do {task_id}", priority=priority, status=status, max_attempts=3,
                created_at=1, updated_at=1, complexity={"effective_tier": kw.pop("tier", "standard")}, **kw)


def _execution(task_id: str, generation: int, **kw: Any) -> dict[str, Any]:
    row = {"task_id": task_id, "generation": generation, "agent_id": "a", "tier": "standard", "target_type": "ollama",
           "endpoint": None, "model_used": "m", "tokens_in": 10, "tokens_out": 20, "cache_read_tokens": 0,
           "cache_write_tokens": 0, "cost_nusd": usd_to_nano(0.1), "equivalent_claude_cost_nusd": usd_to_nano(0.3),
           "execution_ms": 5, "status": "success", "error": None, "fallback_used": 0, "completed_at": 100,
           "price_table": "t"}
    return row | kw


def test_insert_get_save_round_trip(store: TaskStore) -> None:
    task = _task("t1", metadata={"shell_command": "ls"}, file_hints=[{"path": "a.py"}], depends_on=["t0"],
                 needed_capabilities=["gpu"], success_criteria=["ok"])
    store.insert(task, ("submitted", None, {"priority": "normal"}))
    assert task.seq > 0
    assert store.get("t1") == task
    task.status, task.generation, task.attempts, task.assigned_to = "assigned", 1, 1, "agent-a"
    task.routing_decision = {"target_type": "ollama"}
    task.updated_at = 2
    store.save(task, "assigned", "agent-a", {"model": None})
    assert store.get("t1") == task
    assert [(h["event"], h["generation"], h["agent_id"], h["details"]) for h in store.history("t1")] == [
        ("submitted", 0, None, {"priority": "normal"}), ("assigned", 1, "agent-a", {"model": None})]
    assert store.get("missing") is None


def test_load_open_keeps_submission_order_and_skips_finished(store: TaskStore) -> None:
    for i, status in enumerate(["queued", "completed", "assigned", "queued", "cancelled", "working", "dead_letter"]):
        store.insert(_task(f"t{i}", status=status))
    assert [t.task_id for t in store.load_open()] == ["t0", "t2", "t3", "t5"]
    assert store.counts() == {"queued": 2, "assigned": 1, "working": 1, "completed": 1, "failed": 0,
                              "dead_letter": 1, "cancelled": 1}
    assert store.statuses(["t1", "t4", "nope"]) == {"t1": "completed", "t4": "cancelled"}


def test_query_filters_and_pages_newest_first(store: TaskStore) -> None:
    for i in range(7):
        t = _task(f"t{i}", status="completed" if i % 2 else "queued", tier="complex" if i < 3 else "trivial",
                  assigned_to="agent-a" if i == 5 else None)
        store.insert(t)
    tasks, count = store.query(limit=3)
    assert count == 7 and [t.task_id for t in tasks] == ["t6", "t5", "t4"]
    tasks, count = store.query(limit=3, offset=6)
    assert count == 7 and [t.task_id for t in tasks] == ["t0"]
    assert [t.task_id for t in store.query(status="completed")[0]] == ["t5", "t3", "t1"]
    assert [t.task_id for t in store.query(tier="complex")[0]] == ["t2", "t1", "t0"]
    assert [t.task_id for t in store.query(agent_id="agent-a")[0]] == ["t5"]
    assert store.query(status="failed") == ([], 0)


def test_one_execution_row_per_task_generation(store: TaskStore) -> None:
    store.insert(_task("t1"))
    assert store.record_execution(_execution("t1", 1))
    assert not store.record_execution(_execution("t1", 1, tokens_in=999))  # duplicate: ignored
    assert store.record_execution(_execution("t1", 2, status="failed", error="boom", cost_nusd=None))
    rows = list(store.executions())
    assert [(r["generation"], r["tokens_in"], r["status"]) for r in rows] == [(1, 10, "success"), (2, 10, "failed")]
    assert rows[0]["savings_usd"] == pytest.approx(0.2) and rows[1]["savings_usd"] is None
    totals = store.totals()
    assert totals["tokens_in"] == 20 and totals["executions"] == 2 and totals["unpriced_executions"] == 1
    assert totals["cost_usd"] == 0.1 and totals["savings_usd"] == 0.2
    assert list(store.executions(since=101)) == []


@pytest.mark.parametrize(("usd", "nano"), [(0.1, 100_000_000), (0.0, 0), (1e-9, 1), (123.456789012, 123_456_789_012),
                                           (Decimal("0.000000001"), 1), (None, None)])
def test_money_is_exact_integer_nano_usd(usd: Any, nano: int | None) -> None:
    assert usd_to_nano(usd) == nano
    if nano is not None:
        assert nano_to_usd(nano) == float(usd)


def test_sums_of_many_small_costs_are_exact(store: TaskStore) -> None:
    for i in range(10):
        store.insert(_task(f"t{i}"))
        store.record_execution(_execution(f"t{i}", 1, cost_nusd=usd_to_nano(0.1), equivalent_claude_cost_nusd=None))
    assert store.totals()["cost_usd"] == 1.0  # 0.1 * 10 in floats would not be


def test_narrow_saves_write_exactly_their_columns(store: TaskStore) -> None:
    """``status`` and ``final`` saves set only what those transitions change, and history as always."""
    task = _task("t1")
    store.insert(task)
    task.status, task.generation, task.attempts, task.assigned_to, task.assigned_at = "assigned", 1, 1, "a", 2
    task.routing_decision, task.updated_at = {"target_type": "sidecar"}, 2
    store.save(task, "assigned", "a")
    task.status, task.updated_at = "working", 3
    store.save(task, "accepted", "a", scope="status")
    assert store.get("t1") == task
    task.status, task.updated_at, task.completed_at = "completed", 4, 4
    task.result, task.last_error = {"status": "success", "output": "done"}, "earlier"
    store.save(task, "completed", "a", {"model": None}, scope="final")
    assert store.get("t1") == task
    assert [h["event"] for h in store.history("t1")] == ["assigned", "accepted", "completed"]
    task.attempts, task.updated_at = 9, 5  # a status save does not carry a change of another column
    store.save(task, None, None, scope="status")
    stored = store.get("t1")
    assert stored is not None and (stored.attempts, stored.updated_at) == (1, 5)


def test_an_unknown_save_scope_is_refused_and_writes_nothing(store: TaskStore) -> None:
    task = _task("t1")
    store.insert(task)
    task.status = "working"
    with pytest.raises(ValueError, match="unknown save scope 'statuses'"):
        store.save(task, "accepted", "a", scope="statuses")
    stored = store.get("t1")
    assert stored is not None and stored.status == "queued"
    assert store.history("t1") == []


def test_listing_an_agents_tasks_uses_the_agent_index(store: TaskStore) -> None:
    for i, (agent, status) in enumerate([("a", "completed"), ("b", "working"), ("a", "working"), ("a", "queued")]):
        store.insert(_task(f"t{i}", status=status, assigned_to=agent))
    tasks, total = store.query(agent_id="a", status="working")
    assert ([t.task_id for t in tasks], total) == (["t2"], 1)
    plan = " ".join(r[3] for r in store.conn.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM tasks WHERE assigned_to=? AND status=? ORDER BY seq DESC", ("a", "working")))
    assert "tasks_agent" in plan


@pytest.mark.anyio
async def test_in_a_group_commit_the_execution_row_waits_for_the_commit_and_reads_see_it(
        tmp_path: Path, anyio_backend: str) -> None:
    """Deferred to the turn's commit (one executemany with the turn's other runs), yet a read of
    executions in the same turn sees it, and a duplicate still leaves one row."""
    import sqlite3

    from agentcom.store.db import transaction

    path = tmp_path / "tasks.db"
    store = TaskStore(open_db(path))
    store.insert(_task("t1"))
    store.insert(_task("t2"))
    other = sqlite3.connect(path)
    store.group.begin()
    with transaction(store.conn, single=True):
        assert store.record_execution(_execution("t1", 1))
        assert store.record_execution(_execution("t2", 1, tokens_in=7))
    store.group.defer(*store.group._deferred[0])  # the same row again: ignored at the commit
    assert store.conn.execute("SELECT count(*) FROM executions").fetchone()[0] == 0  # not written yet
    assert [r["task_id"] for r in store.executions()] == ["t1", "t2"]  # a read settles first
    assert store.totals()["tokens_in"] == 17
    assert await store.group.committed() is True
    assert other.execute("SELECT task_id, tokens_in FROM executions ORDER BY id").fetchall() == [("t1", 10), ("t2", 7)]
    other.close()
    store.conn.close()
