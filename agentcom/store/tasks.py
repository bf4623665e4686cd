"""Task rows, their history, and execution rows in SQLite.

The hub keeps every open task in memory and writes each change through here, so the
file is always the truth after a crash: ``load_open`` rebuilds the queue exactly
(order by ``seq`` inside each priority). Finished tasks are read back on demand.
"""

from __future__ import annotations

import operator
import sqlite3
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Iterable, Iterator

import msgspec

from agentcom.store.db import GroupCommit, transaction

OPEN_STATES = ("queued", "assigned", "working")
FINAL_STATES = ("completed", "failed", "dead_letter", "cancelled")
ALL_STATES = OPEN_STATES + FINAL_STATES
NANO = Decimal("1e-9")

_encode = msgspec.json.Encoder().encode  # JSON columns: several per write, msgspec is ~5x json.dumps
_decode = msgspec.json.decode


def _dumps(value: Any) -> str:
    return _encode(value).decode()


def _json_or_empty(value: Any, empty: str) -> str:
    """A JSON column that is most often empty: the empty literal without encoding."""
    return _encode(value).decode() if value else empty


@dataclass
class Task:
    """One task as the hub holds it. JSON-ish fields are plain Python values."""

    task_id: str
    description: str
    priority: int
    status: str
    max_attempts: int
    created_at: int
    updated_at: int
    complexity: dict[str, Any]
    seq: int = 0
    generation: int = 0
    attempts: int = 0
    assigned_to: str | None = None
    assigned_at: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    file_hints: list[dict[str, Any]] = field(default_factory=list)
    success_criteria: list[str] = field(default_factory=list)
    verification_steps: list[dict[str, Any]] = field(default_factory=list)
    needed_capabilities: list[str] = field(default_factory=list)
    depends_on: list[str] = field(default_factory=list)
    assign_to: str | None = None
    routing_decision: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    last_error: str | None = None
    completed_at: int | None = None

    @property
    def tier(self) -> str:
        return str(self.complexity.get("effective_tier", "unknown"))


_JSON_FIELDS = ("metadata", "file_hints", "success_criteria", "verification_steps", "needed_capabilities",
                "depends_on", "complexity", "routing_decision", "result")
_MUTABLE = ("status", "generation", "attempts", "assigned_to", "assigned_at", "routing_decision", "result",
            "last_error", "updated_at", "completed_at")
_UPDATE_SQL = f"UPDATE tasks SET {', '.join(f'{c}=?' for c in _MUTABLE)} WHERE task_id=?"
# Narrower writes for the transitions that change fewer columns: no JSON re-encoded for what did not
# change, and no index touched whose columns are not set (``tasks_agent`` is on assigned_to alone).
_STATUS_SQL = "UPDATE tasks SET status=?, updated_at=? WHERE task_id=?"
_FINAL_SQL = "UPDATE tasks SET status=?, result=?, last_error=?, updated_at=?, completed_at=? WHERE task_id=?"
_EXECUTION_COLUMNS = (
    "task_id", "generation", "agent_id", "tier", "target_type", "endpoint", "model_used", "tokens_in", "tokens_out",
    "cache_read_tokens", "cache_write_tokens", "cost_nusd", "equivalent_claude_cost_nusd", "execution_ms", "status",
    "error", "fallback_used", "completed_at", "price_table",
)
_EXECUTION_SQL = (f"INSERT OR IGNORE INTO executions({', '.join(_EXECUTION_COLUMNS)}) "
                  f"VALUES ({','.join('?' * len(_EXECUTION_COLUMNS))})")
_execution_values = operator.itemgetter(*_EXECUTION_COLUMNS)  # a row dict's values in column order, in C
_HISTORY_SQL = "INSERT INTO task_history(task_id, at, event, generation, agent_id, details) VALUES (?,?,?,?,?,?)"
_INSERT_COLUMNS = (
    "task_id", "description", "priority", "status", "generation", "attempts", "max_attempts", "assigned_to",
    "assigned_at", *(_JSON_FIELDS[:6]), "assign_to", "complexity", "routing_decision", "result", "last_error",
    "created_at", "updated_at", "completed_at",
)
_INSERT_SQL = f"INSERT INTO tasks({','.join(_INSERT_COLUMNS)}) VALUES ({','.join('?' * len(_INSERT_COLUMNS))})"


def usd_to_nano(value: float | Decimal | None) -> int | None:
    """USD (as sent on the wire) to integer nano-USD, exactly for any decimal the float prints as."""
    if value is None:
        return None
    if value == 0:  # every free run (sidecar, local model): no Decimal needed
        return 0
    amount = value if isinstance(value, Decimal) else Decimal(repr(float(value)))
    return int((amount / NANO).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def nano_to_usd(value: int | None) -> float | None:
    return None if value is None else float(Decimal(value) * NANO)


TOTALS_KEYS = ("cost", "equivalent", "savings", "tokens_in", "tokens_out", "executions", "unpriced")


def totals_view(t: dict[str, int]) -> dict[str, Any]:
    """Execution totals as the snapshot carries them: USD as numbers, unpriced runs counted apart."""
    return {
        "cost_usd": nano_to_usd(t["cost"]), "equivalent_claude_cost_usd": nano_to_usd(t["equivalent"]),
        "savings_usd": nano_to_usd(t["savings"]), "tokens_in": t["tokens_in"], "tokens_out": t["tokens_out"],
        "executions": t["executions"], "unpriced_executions": t["unpriced"],
    }


class TaskStore:
    """Persistence of tasks, history and executions on one SQLite connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.group = GroupCommit(conn)
        # What the current outermost transaction (a group commit's turn) writes: if SQLite refuses
        # or rolls it back, these are the tasks whose memory the hub reloads (HubCore.resync).
        self.touched: set[str] = set()
        self.touched_executions = False

    def _touch(self, task_id: str) -> None:
        if not self.conn.in_transaction:  # a new transaction: what earlier ones wrote is settled
            self.touched.clear()
            self.touched_executions = False
        self.touched.add(task_id)

    # ------------------------------------------------------------------ writes

    def insert(self, task: Task, history: tuple[str, str | None, dict[str, Any] | None] | None = None) -> None:
        t = task  # the columns of _INSERT_COLUMNS, spelled out: this runs once per task submitted
        values = (t.task_id, t.description, t.priority, t.status, t.generation, t.attempts, t.max_attempts,
                  t.assigned_to, t.assigned_at, _json_or_empty(t.metadata, "{}"), _json_or_empty(t.file_hints, "[]"),
                  _json_or_empty(t.success_criteria, "[]"), _json_or_empty(t.verification_steps, "[]"),
                  _json_or_empty(t.needed_capabilities, "[]"), _json_or_empty(t.depends_on, "[]"), t.assign_to,
                  _dumps(t.complexity), None if t.routing_decision is None else _dumps(t.routing_decision),
                  None if t.result is None else _dumps(t.result), t.last_error, t.created_at, t.updated_at,
                  t.completed_at)
        line = self._history_line(task, *history) if history else None  # built first: nothing may fail after the INSERT
        self._touch(t.task_id)
        with transaction(self.conn, single=True):  # one INSERT; the history line is deferred
            cur = self.conn.execute(_INSERT_SQL, values)
            task.seq = int(cur.lastrowid or 0)
            if line is not None:
                self.group.defer(_HISTORY_SQL, line)

    def save(self, task: Task, event: str | None = None, agent_id: str | None = None,
             details: dict[str, Any] | None = None, *, scope: str = "all") -> None:
        """Write the mutable columns of ``task`` (and a history line) in one transaction.

        ``scope`` names what changed since the task's last write, so the UPDATE sets only that:
        "status" (status, updated_at), "final" (those, result, last_error and completed_at: a
        task finishing), or "all" (every mutable column; anything else, e.g. an assignment).
        """
        t = task  # the columns, spelled out: this runs several times per task
        if scope == "status":
            sql, values = _STATUS_SQL, (t.status, t.updated_at, t.task_id)
        elif scope == "final":
            sql, values = _FINAL_SQL, (t.status, None if t.result is None else _dumps(t.result), t.last_error,
                                       t.updated_at, t.completed_at, t.task_id)
        elif scope == "all":
            sql, values = _UPDATE_SQL, (
                t.status, t.generation, t.attempts, t.assigned_to, t.assigned_at,
                None if t.routing_decision is None else _dumps(t.routing_decision),
                None if t.result is None else _dumps(t.result), t.last_error, t.updated_at, t.completed_at, t.task_id)
        else:
            raise ValueError(f"unknown save scope {scope!r}; expected all, status or final")
        line = self._history_line(task, event, agent_id, details) if event else None  # built first (see insert)
        self._touch(t.task_id)
        with transaction(self.conn, single=True):  # one UPDATE; the history line is deferred
            self.conn.execute(sql, values)
            if line is not None:
                self.group.defer(_HISTORY_SQL, line)

    @staticmethod
    def _history_line(task: Task, event: str, agent_id: str | None,
                      details: dict[str, Any] | None) -> tuple[Any, ...]:
        """A history line's parameters; it is written at the turn's group commit (``GroupCommit.defer``),
        or at once outside one."""
        return (task.task_id, task.updated_at, event, task.generation, agent_id, _dumps(details) if details else None)

    def record_execution(self, row: dict[str, Any]) -> bool:
        """Insert one executions row; False if that task generation already has one (idempotent).

        Inside a group commit the row is deferred to the turn's commit (``GroupCommit.defer``) and
        this answers True: whether it was a duplicate is known only then, where SQLite ignores it.
        The hub records a generation only while it holds that generation open and moves it on (or
        finishes the task) in the same write, so it never sends one twice."""
        self._touch(row["task_id"])
        self.touched_executions = True
        written = self.group.defer(_EXECUTION_SQL, _execution_values(row))
        return written is None or written == 1

    # ------------------------------------------------------------------ reads

    def load_open(self) -> list[Task]:
        rows = self.conn.execute(
            f"SELECT * FROM tasks WHERE status IN ({','.join('?' * len(OPEN_STATES))}) ORDER BY seq", OPEN_STATES
        ).fetchall()
        return [self._task(r) for r in rows]

    def get(self, task_id: str) -> Task | None:
        row = self.conn.execute("SELECT * FROM tasks WHERE task_id=?", (task_id,)).fetchone()
        return self._task(row) if row else None

    def statuses(self, task_ids: Iterable[str]) -> dict[str, str]:
        ids = list(task_ids)
        if not ids:
            return {}
        rows = self.conn.execute(
            f"SELECT task_id, status FROM tasks WHERE task_id IN ({','.join('?' * len(ids))})", ids
        ).fetchall()
        return {r["task_id"]: r["status"] for r in rows}

    def history(self, task_id: str) -> list[dict[str, Any]]:
        self.group.settle()  # lines of this turn not written yet: the read must see them
        rows = self.conn.execute(
            "SELECT at, event, generation, agent_id, details FROM task_history WHERE task_id=? ORDER BY id", (task_id,)
        ).fetchall()
        return [
            {"at": r["at"], "event": r["event"], "generation": r["generation"], "agent_id": r["agent_id"],
             "details": _decode(r["details"]) if r["details"] else None}
            for r in rows
        ]

    def query(self, *, status: str | None = None, agent_id: str | None = None, tier: str | None = None,
              limit: int = 100, offset: int = 0) -> tuple[list[Task], int]:
        where, args = [], []
        if status:
            where.append("status=?")
            args.append(status)
        if agent_id:
            where.append("assigned_to=?")
            args.append(agent_id)
        if tier:
            where.append("json_extract(complexity, '$.effective_tier')=?")
            args.append(tier)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        total = self.conn.execute(f"SELECT count(*) FROM tasks {clause}", args).fetchone()[0]
        rows = self.conn.execute(
            f"SELECT * FROM tasks {clause} ORDER BY seq DESC LIMIT ? OFFSET ?", [*args, limit, offset]
        ).fetchall()
        return [self._task(r) for r in rows], int(total)

    def counts(self) -> dict[str, int]:
        counts = {s: 0 for s in ALL_STATES}
        for row in self.conn.execute("SELECT status, count(*) AS n FROM tasks GROUP BY status"):
            counts[row["status"]] = row["n"]
        return counts

    def executions(self, since: int | None = None, limit: int | None = None) -> Iterator[dict[str, Any]]:
        """Execution rows in the ``/api/executions`` shape (USD as floats, savings derived)."""
        self.group.settle()
        sql = "SELECT * FROM executions"
        args: list[Any] = []
        if since is not None:
            sql += " WHERE completed_at >= ?"
            args.append(since)
        sql += " ORDER BY id"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        for r in self.conn.execute(sql, args):
            yield execution_row(r)

    def totals_nano(self) -> dict[str, int]:
        """Sums over every execution in integer nano-USD (see ``totals_view``); runs without a price
        are counted apart (``unpriced``), never summed as 0."""
        self.group.settle()
        row = self.conn.execute(
            "SELECT coalesce(sum(cost_nusd),0), coalesce(sum(equivalent_claude_cost_nusd),0), "
            "coalesce(sum(CASE WHEN equivalent_claude_cost_nusd IS NOT NULL AND cost_nusd IS NOT NULL "
            "THEN equivalent_claude_cost_nusd - cost_nusd ELSE 0 END),0), coalesce(sum(tokens_in),0), "
            "coalesce(sum(tokens_out),0), count(*), coalesce(sum(cost_nusd IS NULL),0) FROM executions"
        ).fetchone()
        return dict(zip(TOTALS_KEYS, map(int, row)))

    def totals(self) -> dict[str, Any]:
        return totals_view(self.totals_nano())

    def cloud_spend_since(self, since_ms: int) -> Decimal:
        self.group.settle()
        row = self.conn.execute(
            "SELECT coalesce(sum(cost_nusd),0) FROM executions WHERE target_type='claude' AND completed_at >= ?",
            (since_ms,),
        ).fetchone()
        return Decimal(row[0]) * NANO

    # ------------------------------------------------------------------ mapping

    @staticmethod
    def _task(row: sqlite3.Row) -> Task:
        data = dict(row)
        for name in _JSON_FIELDS:
            if data.get(name) is not None:
                data[name] = _decode(data[name])
        return Task(**data)


def execution_row(r: sqlite3.Row) -> dict[str, Any]:
    cost, eq = r["cost_nusd"], r["equivalent_claude_cost_nusd"]
    return {
        "task_id": r["task_id"], "generation": r["generation"], "agent_id": r["agent_id"], "tier": r["tier"],
        "target_type": r["target_type"], "endpoint": r["endpoint"], "model_used": r["model_used"],
        "tokens_in": r["tokens_in"], "tokens_out": r["tokens_out"], "cache_read_tokens": r["cache_read_tokens"],
        "cache_write_tokens": r["cache_write_tokens"], "estimated_cost_usd": nano_to_usd(cost),
        "equivalent_claude_cost_usd": nano_to_usd(eq),
        "savings_usd": nano_to_usd(eq - cost) if cost is not None and eq is not None else None,
        "execution_ms": r["execution_ms"], "status": r["status"], "error": r["error"],
        "fallback_used": bool(r["fallback_used"]), "completed_at": r["completed_at"], "price_table": r["price_table"],
    }
