"""A small hand-checked set of executions and a toy price table for the analysis tests.

The eight rows (shuffled on purpose) cover: a retried task (t1), a task that failed twice on
two models (t6), an unknown price (t3, "mystery-model"), a shell run without a model (t5), a
fallback to Claude (t4), cache tokens and two UTC days. Expected figures in the tests are worked
out by hand from this table.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pandas as pd
import pytest

from agentcom.analysis import executions_frame

DAY1 = 1_735_689_600_000  # 2025-01-01T00:00:00Z in ms
DAY2 = DAY1 + 86_400_000
HOUR = 3_600_000

_COLUMNS = ("task_id", "generation", "agent_id", "tier", "target_type", "model_used", "tokens_in", "tokens_out",
            "cache_read_tokens", "cache_write_tokens", "estimated_cost_usd", "equivalent_claude_cost_usd",
            "savings_usd", "execution_ms", "status", "completed_at", "fallback_used")
_ROWS = [  # row numbers in comments are the ones the tests' arithmetic refers to
    ("t6", 1, "a3", "complex", "claude", "claude-haiku-4-5", 500, 50, 100, 0, 0.0625, 0.125, 0.0625, 7000, "failed", DAY2 + 13 * HOUR, False),  # 8
    ("t1", 0, "a1", "complex", "claude", "claude-sonnet-4-5", 1000, 200, 500, 100, 0.5, 0.5, 0.0, 2000, "failed", DAY1 + 10 * HOUR, False),  # 1
    ("t3", 0, "a2", "standard", "ollama", "mystery-model", 400, 100, 0, 0, None, 0.25, None, 3000, "success", DAY2 + 9 * HOUR, False),  # 4
    ("t1", 1, "a1", "complex", "claude", "claude-sonnet-4-5", 2000, 400, 0, 0, 1.0, 1.0, 0.0, 4000, "success", DAY1 + 11 * HOUR, False),  # 2
    ("t5", 0, "a3", "trivial", "sidecar", None, 0, 0, 0, 0, 0.0, None, None, 100, "success", DAY2 + 11 * HOUR, None),  # 6
    ("t2", 0, "a2", "standard", "ollama", "qwen2.5-coder", 3000, 600, 0, 0, 0.0, 0.75, 0.75, 1000, "success", DAY1 + 12 * HOUR, False),  # 3
    ("t6", 0, "a3", "complex", "claude", "claude-sonnet-4-5", 500, 50, 0, 0, 0.125, 0.125, 0.0, 6000, "failed", DAY2 + 12 * HOUR, False),  # 7
    ("t4", 0, "a1", "standard", "claude", "claude-sonnet-4-5", 1000, 100, 0, 0, 0.25, 0.25, 0.0, 5000, "success", DAY2 + 10 * HOUR, True),  # 5
]


def make_records() -> list[dict[str, Any]]:
    return [dict(zip(_COLUMNS, row), price_table="2025-01") for row in _ROWS]


@pytest.fixture
def records() -> list[dict[str, Any]]:
    return make_records()


@pytest.fixture
def frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    return executions_frame(records)


class ToyPrices:
    """Per-million-token rates (in, out, cache read, cache write); unknown models have no price."""

    RATES = {
        "claude-sonnet-4-5": (Decimal(3), Decimal(15), Decimal("0.30"), Decimal("3.75")),
        "claude-haiku-4-5": (Decimal(1), Decimal(5), Decimal("0.10"), Decimal("1.25")),
        "qwen2.5-coder": (Decimal(0), Decimal(0), Decimal(0), Decimal(0)),
    }

    def __init__(self, version: str = "toy-1") -> None:
        self.version = version
        self.calls = 0

    def price(self, model: str, tokens_in: int, tokens_out: int, cache_read: int = 0, cache_write: int = 0) -> Decimal | None:
        self.calls += 1
        rates = self.RATES.get(model)
        if rates is None:
            return None
        counts = (tokens_in, tokens_out, cache_read, cache_write)
        return sum((Decimal(n) * r for n, r in zip(counts, rates)), Decimal(0)) / Decimal(1_000_000)


@pytest.fixture
def prices() -> ToyPrices:
    return ToyPrices()
