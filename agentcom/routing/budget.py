"""The budget guard: would this cloud task push spend past the daily or monthly limit?

Inputs only, no I/O: the hub sums its executions table into a ``Spend`` and passes a
price function (``estimate_usd(model, tokens_in, tokens_out) -> float | None``, e.g.
from ``agentcom.pricing``). Periods are UTC calendar days and months.

A budget is exhausted when spend so far already reaches the limit, or spend plus the
task's estimate exceeds it. The estimate is deliberately rough (``estimate_tokens``):
it keeps one task from overshooting by a lot, it is not an invoice. A model without a
price (``None``) adds nothing, so only spend so far can exhaust the budget for it.
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from agentcom.protocol.messages import ComplexitySignals

__all__ = ["BudgetVerdict", "EstimateUsd", "Spend", "ExecutionSpend", "check_budget", "estimate_tokens",
           "spend_from_executions"]

EstimateUsd = Callable[[str, int, int], "float | None"]


@dataclass(frozen=True)
class Spend:
    """Cloud spend recorded so far in USD: today (UTC) and this month (UTC)."""

    today_usd: float = 0.0
    month_usd: float = 0.0


@dataclass(frozen=True)
class BudgetVerdict:
    exhausted: bool
    period: str | None = None  # "daily" | "monthly" when exhausted
    estimate_usd: float | None = None
    resets_at: int | None = None  # ms: when the exhausted period starts over
    detail: str = ""


def estimate_tokens(signals: ComplexitySignals) -> tuple[int, int]:
    """(tokens_in, tokens_out) guessed from the task's size.

    ~1.4 tokens per word of description plus a fixed prompt overhead, ~2000 tokens read
    per hinted file; output ~1000 tokens plus ~800 per hinted file and 200 per check.
    """
    tokens_in = 500 + math.ceil(1.4 * signals.word_count) + 2000 * signals.file_count
    tokens_out = 1000 + 800 * signals.file_count + 200 * signals.verification_count
    return tokens_in, tokens_out


def _day_start(now_ms: int) -> int:
    day = datetime.fromtimestamp(now_ms / 1000, tz=timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    return int(day.timestamp() * 1000)


def _month_start(now_ms: int) -> int:
    now = datetime.fromtimestamp(now_ms / 1000, tz=timezone.utc)
    return int(datetime(now.year, now.month, 1, tzinfo=timezone.utc).timestamp() * 1000)


def _next_day(now_ms: int) -> int:
    return _day_start(now_ms) + 86_400_000


def _next_month(now_ms: int) -> int:
    now = datetime.fromtimestamp(now_ms / 1000, tz=timezone.utc)
    year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
    return int(datetime(year, month, 1, tzinfo=timezone.utc).timestamp() * 1000)


def spend_from_executions(conn: sqlite3.Connection, now: int) -> Spend:
    """Spend so far from the ``executions`` table: priced runs completed today / this month (UTC).

    Local runs cost 0 and unpriced ones are NULL, so the sum is what cloud models cost.
    """
    row = conn.execute(
        "SELECT coalesce(sum(CASE WHEN completed_at >= ? THEN cost_nusd END), 0), coalesce(sum(cost_nusd), 0) "
        "FROM executions WHERE completed_at >= ?",
        (_day_start(now), _month_start(now)),
    ).fetchone()
    return Spend(today_usd=int(row[0]) / 1e9, month_usd=int(row[1]) / 1e9)


class ExecutionSpend:
    """``spend_from_executions`` kept current by reading only the rows added since the last call.

    The hub asks before every cloud task; summing the month's runs each time cost ~1 ms per
    thousand runs (13 ms with 10,000 runs today). Executions rows are only ever inserted, so
    the sums move by the rows above the last id seen. Everything is summed again when the UTC
    day or month changes, and at least every ``resum_ms`` (a rolled-back insert can leave
    a counted row behind).

    ``settle``: called before each read, to write what the hub's store holds for its commit
    (``GroupCommit.settle``), so runs recorded in this event-loop turn are counted.
    """

    def __init__(self, conn: sqlite3.Connection, *, resum_ms: int = 60_000,
                 settle: Callable[[], None] | None = None) -> None:
        self._conn = conn
        self._settle = settle
        self._resum_ms = resum_ms
        self._period: tuple[int, int] | None = None  # (day start, month start) the sums are for
        self._summed_at = 0
        self._last_id = 0
        self._today_nano = 0
        self._month_nano = 0

    def __call__(self, now: int) -> Spend:
        if self._settle is not None:
            self._settle()
        period = (_day_start(now), _month_start(now))
        if period != self._period or abs(now - self._summed_at) >= self._resum_ms:
            self._resum(period, now)
        else:
            day, month = period
            rows = self._conn.execute(
                "SELECT id, completed_at, cost_nusd FROM executions WHERE id > ? ORDER BY id", (self._last_id,)
            ).fetchall()
            for row_id, completed_at, cost in rows:
                self._last_id = row_id
                if cost is not None and completed_at >= month:
                    self._month_nano += cost
                    if completed_at >= day:
                        self._today_nano += cost
        return Spend(today_usd=self._today_nano / 1e9, month_usd=self._month_nano / 1e9)

    def forget(self) -> None:
        """A write failed and was rolled back: rows read since may be gone (and, with AUTOINCREMENT,
        their ids handed to later rows), so the next call sums everything again."""
        self._period = None

    def _resum(self, period: tuple[int, int], now: int) -> None:
        day, month = period
        last = int(self._conn.execute("SELECT coalesce(max(id), 0) FROM executions").fetchone()[0])
        row = self._conn.execute(
            "SELECT coalesce(sum(CASE WHEN completed_at >= ? THEN cost_nusd END), 0), coalesce(sum(cost_nusd), 0) "
            "FROM executions WHERE completed_at >= ? AND id <= ?",
            (day, month, last),
        ).fetchone()
        self._period, self._summed_at, self._last_id = period, now, last
        self._today_nano, self._month_nano = int(row[0]), int(row[1])


def check_budget(
    *,
    daily_usd: float | None,
    monthly_usd: float | None,
    spend: Spend,
    estimate_usd: float | None,
    now: int,
) -> BudgetVerdict:
    """Whether a task costing ``estimate_usd`` still fits both limits (None = no limit)."""
    extra = estimate_usd or 0.0
    for period, limit, spent, resets in (
        ("daily", daily_usd, spend.today_usd, _next_day),
        ("monthly", monthly_usd, spend.month_usd, _next_month),
    ):
        if limit is None:
            continue
        if spent >= limit or spent + extra > limit:
            shown = "unknown" if estimate_usd is None else _usd(extra)
            return BudgetVerdict(
                exhausted=True, period=period, estimate_usd=estimate_usd, resets_at=resets(now),
                detail=f"{period} budget {_usd(limit)} USD: spent {_usd(spent)} + estimate {shown}",
            )
    return BudgetVerdict(exhausted=False, estimate_usd=estimate_usd)


def _usd(value: float) -> str:
    """Money to the micro-dollar, as the analysis notebooks and the CLI show it: a small budget
    such as 0.005 must not read as 0.00, and single runs cost fractions of a cent."""
    return f"{value:.6f}"
