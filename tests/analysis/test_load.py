"""Loaders: CSV and Parquet round trips, and a real store file built from the schema's migrations."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from agentcom.analysis import load_executions, load_tasks, savings_per_task
from agentcom.store.schema import MIGRATIONS

from .conftest import DAY1, HOUR


def test_csv_round_trip(frame: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "executions.csv"
    frame.to_csv(path, index=False)
    pd.testing.assert_frame_equal(load_executions(path), frame)


def test_csv_in_the_api_export_shape(records: list[dict[str, Any]], frame: pd.DataFrame, tmp_path: Path) -> None:
    """completed_at as ms since the epoch, booleans as 1/0, no optional columns."""
    raw = pd.DataFrame(records).drop(columns=["cache_read_tokens", "cache_write_tokens"])
    raw["fallback_used"] = raw["fallback_used"].map({True: 1, False: 0})
    path = tmp_path / "api.csv"
    raw.to_csv(path, index=False)
    loaded = load_executions(path)
    assert loaded["completed_at"].tolist() == frame["completed_at"].tolist()
    assert loaded["fallback_used"].tolist() == frame["fallback_used"].tolist()
    assert (loaded["cache_read_tokens"] == 0).all()
    assert loaded["estimated_cost_usd"].isna().sum() == 1


def test_csv_keeps_numeric_looking_ids_as_text(frame: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "ids.csv"
    frame.assign(task_id="007", agent_id="42").to_csv(path, index=False)
    loaded = load_executions(path)
    assert set(loaded["task_id"]) == {"007"} and set(loaded["agent_id"]) == {"42"}


def test_parquet_round_trip(frame: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "executions.parquet"
    frame.to_parquet(path)
    pd.testing.assert_frame_equal(load_executions(path), frame)
    pd.testing.assert_frame_equal(load_executions(path.read_bytes()), frame)  # e.g. an HTTP body


def test_format_is_sniffed_not_taken_from_the_name(frame: pd.DataFrame, tmp_path: Path) -> None:
    parquet, csv = tmp_path / "a.data", tmp_path / "b.data"
    frame.to_parquet(parquet)
    frame.to_csv(csv, index=False)
    pd.testing.assert_frame_equal(load_executions(parquet), load_executions(csv))
    with pytest.raises(ValueError, match="format"):
        load_executions(csv, format="xlsx")  # type: ignore[arg-type]


def test_since_filters_rows(frame: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "executions.parquet"
    frame.to_parquet(path)
    cutoff = DAY1 + 86_400_000
    assert len(load_executions(path, since=cutoff)) == 5
    assert len(load_executions(path, since=pd.Timestamp("2025-01-02").to_pydatetime())) == 5


# ---------------------------------------------------------------------------- the store


def _nano(usd: float | None) -> int | None:
    return None if usd is None else round(usd * 1_000_000_000)


def _store(path: Path, records: list[dict[str, Any]]) -> Path:
    connection = sqlite3.connect(path)
    connection.executescript(MIGRATIONS[0])
    for r in records:
        connection.execute(
            """INSERT INTO executions (task_id, generation, agent_id, tier, target_type, endpoint, model_used,
                   tokens_in, tokens_out, cache_read_tokens, cache_write_tokens, cost_nusd,
                   equivalent_claude_cost_nusd, execution_ms, status, error, fallback_used, completed_at, price_table)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (r["task_id"], r["generation"], r["agent_id"], r["tier"], r["target_type"], "127.0.0.1:11434",
             r["model_used"], r["tokens_in"], r["tokens_out"], r["cache_read_tokens"], r["cache_write_tokens"],
             _nano(r["estimated_cost_usd"]), _nano(r["equivalent_claude_cost_usd"]), r["execution_ms"], r["status"],
             "boom" if r["status"] == "failed" else None, int(bool(r["fallback_used"])), r["completed_at"],
             r["price_table"]),
        )
    for seq, task_id in enumerate(sorted({r["task_id"] for r in records})):
        connection.execute(
            """INSERT INTO tasks (task_id, description, priority, status, max_attempts, complexity, created_at, updated_at)
               VALUES (?, ?, ?, 'completed', 3, ?, ?, ?)""",
            (task_id, f"task {task_id}", seq % 4, json.dumps({"effective_tier": "standard"}), DAY1, DAY1),
        )
    connection.commit()
    connection.close()
    return path


def test_store_file(records: list[dict[str, Any]], frame: pd.DataFrame, tmp_path: Path) -> None:
    path = _store(tmp_path / "hub.db", records)
    loaded = load_executions(path)
    assert len(loaded) == 8
    assert loaded["completed_at"].is_monotonic_increasing
    by_key = loaded.set_index(["task_id", "generation"])
    expected = frame.set_index(["task_id", "generation"]).loc[by_key.index]
    for column in ("estimated_cost_usd", "equivalent_claude_cost_usd", "savings_usd"):
        pd.testing.assert_series_equal(by_key[column], expected[column])  # nano-USD -> USD, NA kept
    assert by_key.loc[("t3", 0), "estimated_cost_usd"] is pd.NA  # NULL price, never 0
    assert by_key.loc[("t3", 0), "savings_usd"] is pd.NA
    assert by_key.loc[("t6", 1), "savings_usd"] == 0.0625
    assert by_key.loc[("t6", 1), "cache_read_tokens"] == 100
    assert by_key.loc[("t4", 0), "fallback_used"] == True  # noqa: E712 (numpy bool)
    assert by_key.loc[("t1", 0), "error"] == "boom"
    assert set(loaded["endpoint"]) == {"127.0.0.1:11434"}
    assert [str(d) for d in loaded.dtypes] == [str(d) for d in frame.dtypes]


def test_store_savings_are_exact_in_nano_usd(records: list[dict[str, Any]], tmp_path: Path) -> None:
    record = dict(records[0], estimated_cost_usd=0.1, equivalent_claude_cost_usd=0.3)
    loaded = load_executions(_store(tmp_path / "hub.db", [record]))
    assert loaded["savings_usd"].iloc[0] == 0.2  # (300000000 - 100000000) nano-USD, not 0.3 - 0.1


def test_store_since_and_sniffing(records: list[dict[str, Any]], tmp_path: Path) -> None:
    path = _store(tmp_path / "hub.sqlite", records)
    assert len(load_executions(path, since=DAY1 + 12 * HOUR)) == 6
    assert len(load_executions(str(path), format="sqlite")) == 8


def test_store_is_opened_read_only(records: list[dict[str, Any]], tmp_path: Path) -> None:
    path = _store(tmp_path / "hub.db", records)
    before = path.read_bytes()
    load_executions(path)
    load_tasks(path)
    assert path.read_bytes() == before
    missing = tmp_path / "nothing.db"
    with pytest.raises(FileNotFoundError):
        load_executions(missing, format="sqlite")
    assert not missing.exists()  # a read-only open never creates the file


def test_not_a_store(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    sqlite3.connect(path).execute("CREATE TABLE x (a)").connection.close()
    with pytest.raises(ValueError, match="not an AgentCom store"):
        load_executions(path)


def test_load_tasks_joins_descriptions(records: list[dict[str, Any]], tmp_path: Path) -> None:
    path = _store(tmp_path / "hub.db", records)
    tasks = load_tasks(path)
    assert list(tasks.columns) == ["task_id", "description", "priority", "status", "attempts", "created_at", "completed_at"]
    assert tasks["priority"].cat.ordered and list(tasks["priority"].cat.categories) == ["urgent", "high", "normal", "low"]
    assert tasks.set_index("task_id").loc["t2", "priority"] == "high"
    table = savings_per_task(load_executions(path), tasks)
    assert table.loc["t6", "description"] == "task t6"
    assert table.loc["t6", "priority"] == "high"  # t6 is the sixth task: priority 5 % 4 = 1


def test_home_is_expanded(frame: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    frame.to_parquet(tmp_path / "exported.parquet")
    assert len(load_executions("~/exported.parquet")) == len(frame)


def test_the_hubs_export_shapes(records: list[dict[str, Any]], frame: pd.DataFrame) -> None:
    """CSV from csv.DictWriter (True/False, empty cells), Parquet from pyarrow rows, and the
    all-string zero-row Parquet the hub sends when there is nothing yet."""
    import csv
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(records[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    pd.testing.assert_frame_equal(load_executions(text.getvalue().encode()), frame)

    def parquet(table: pa.Table) -> bytes:
        sink = io.BytesIO()
        pq.write_table(table, sink)
        return sink.getvalue()

    pd.testing.assert_frame_equal(load_executions(parquet(pa.Table.from_pylist(records))), frame)
    empty = load_executions(parquet(pa.table({c: pa.array([], pa.string()) for c in records[0]})))
    assert len(empty) == 0 and [str(d) for d in empty.dtypes] == [str(d) for d in frame.dtypes]
