"""``ExecutionSpend`` agrees with the full sum of the executions table after every insert."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

from agentcom.routing import ExecutionSpend, spend_from_executions
from agentcom.store.db import open_db

JAN_15 = 1_767_225_600_000 + 14 * 86_400_000 + 12 * 3_600_000  # 2026-01-15T12:00Z
DAY = 86_400_000


def _insert(conn: sqlite3.Connection, task_id: str, cost_nusd: int | None, completed_at: int) -> None:
    conn.execute("INSERT INTO executions (task_id, generation, tokens_in, tokens_out, cost_nusd, execution_ms, status, "
                 "completed_at, price_table) VALUES (?, 1, 0, 0, ?, 1, 'success', ?, 't')",
                 (task_id, cost_nusd, completed_at))


def test_follows_inserts_and_period_changes(tmp_path: Path) -> None:
    conn = open_db(tmp_path / "hub.db")
    rng = random.Random(3)
    spend = ExecutionSpend(conn)
    now = JAN_15
    days_with_spend = set()
    for i in range(240):
        if i % 3 == 0:
            _insert(conn, f"t{i}", rng.choice([None, 0, rng.randrange(1, 10**9)]), now - rng.randrange(rng.choice([DAY // 4, 40 * DAY])))
        if i % 20 == 19:
            now += rng.choice([1_000, DAY // 2, 20 * DAY])  # same day, next day, next month
        assert spend(now) == spend_from_executions(conn, now), (i, now)
        if spend(now).today_usd > 0:
            days_with_spend.add(now // DAY)
    assert len(days_with_spend) >= 3  # the sums were checked across several days
    conn.close()


def test_reads_only_new_rows_between_sums(tmp_path: Path) -> None:
    """A row changed behind its back is not seen until the next full sum (resum_ms): proof it adds, not sums."""
    conn = open_db(tmp_path / "hub.db")
    _insert(conn, "a", 1_000_000_000, JAN_15 - 1_000)
    spend = ExecutionSpend(conn, resum_ms=60_000)
    assert spend(JAN_15).today_usd == 1.0
    conn.execute("UPDATE executions SET cost_nusd = 5000000000 WHERE task_id = 'a'")
    _insert(conn, "b", 2_000_000_000, JAN_15)
    assert spend(JAN_15 + 1).today_usd == 3.0
    assert spend(JAN_15 + 60_000).today_usd == 7.0
    conn.close()


def test_a_rolled_back_row_is_forgotten_and_the_row_reusing_its_id_is_counted(tmp_path: Path) -> None:
    """Read inside a transaction that then rolls back: the row is gone and, with AUTOINCREMENT, the next
    insert takes its id; after ``forget`` (the hub calls it on any store failure) the sums are the file's."""
    conn = open_db(tmp_path / "hub.db")
    spend = ExecutionSpend(conn)
    assert spend(JAN_15).today_usd == 0.0
    conn.execute("BEGIN IMMEDIATE")
    _insert(conn, "lost", 1_000_000_000, JAN_15)
    assert spend(JAN_15 + 1).today_usd == 1.0  # seen while uncommitted
    conn.execute("ROLLBACK")
    spend.forget()
    _insert(conn, "real", 2_000_000_000, JAN_15 + 2)
    assert spend(JAN_15 + 3) == spend_from_executions(conn, JAN_15 + 3) and spend(JAN_15 + 3).today_usd == 2.0
    conn.close()


def test_the_routers_spend_is_asked_again_after_a_run_ends_or_the_store_fails(tmp_path: Path) -> None:
    """``ModelRouter`` asks for spend once per instant, but a run that ends at that instant, or a store
    failure, makes it ask again: a completion recorded at the same ``now`` is not missed."""
    from types import SimpleNamespace

    from agentcom.config import AgentCom
    from agentcom.routing import EndpointRegistry, ModelRouter

    conn = open_db(tmp_path / "hub.db")
    router = ModelRouter(AgentCom(db_path=":memory:", budget_daily_usd=10.0), EndpointRegistry(),
                         spend=ExecutionSpend(conn))
    assert router._spend_at(JAN_15).today_usd == 0.0
    _insert(conn, "done", 1_000_000_000, JAN_15)
    router.task_changed(SimpleNamespace(task_id="done", status="assigned", routing_decision=None))
    assert router._spend_at(JAN_15).today_usd == 0.0  # an assignment records no run: still cached
    router.task_changed(SimpleNamespace(task_id="done", status="completed", routing_decision=None))
    assert router._spend_at(JAN_15).today_usd == 1.0
    conn.execute("BEGIN IMMEDIATE")
    _insert(conn, "lost", 4_000_000_000, JAN_15)
    router.task_changed(SimpleNamespace(task_id="lost", status="completed", routing_decision=None))
    assert router._spend_at(JAN_15).today_usd == 5.0
    conn.execute("ROLLBACK")
    router.store_failed()
    _insert(conn, "real", 2_000_000_000, JAN_15)  # takes the rolled-back row's id
    router.task_changed(SimpleNamespace(task_id="real", status="completed", routing_decision=None))
    assert router._spend_at(JAN_15).today_usd == 3.0
    conn.close()


def test_a_run_recorded_in_this_turn_is_counted(tmp_path: Path) -> None:
    """The hub defers execution rows to its group commit; ``settle`` writes them before the read."""
    conn = open_db(tmp_path / "hub.db")
    held: list[tuple[str, int | None, int]] = []

    def settle() -> None:
        for row in held:
            _insert(conn, *row)
        held.clear()

    spend = ExecutionSpend(conn, settle=settle)
    assert spend(JAN_15).today_usd == 0.0
    held.append(("cloud", 2_000_000_000, JAN_15))
    assert spend(JAN_15 + 1).today_usd == 2.0 and not held
    assert ExecutionSpend(conn)(JAN_15 + 2).today_usd == 2.0
    conn.close()
