"""Loaders: executions (and tasks) from a CSV or Parquet export, or straight from the store.

The SQLite store is opened read-only (``file:...?mode=ro``), so a notebook can read the file
of a running hub without taking a write lock or creating it by mistake. The store keeps money
as integer nano-USD; it is turned into USD here, and savings are subtracted in nano-USD first
so they are exact before the one conversion to float.
"""

from __future__ import annotations

import io
from contextlib import closing
import os
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Literal

import pandas as pd

from agentcom.analysis._frame import EXECUTION_COLUMNS, executions_frame

__all__ = ["load_executions", "load_tasks"]

Source = str | os.PathLike[str] | bytes
Format = Literal["csv", "parquet", "sqlite"]

_NANO = 1_000_000_000
_PRIORITIES = ("urgent", "high", "normal", "low")  # tasks.priority 0..3
_CSV_DTYPES = {  # read as text what could look like a number, and counts as nullable ints
    "task_id": "str", "agent_id": "str", "tier": "str", "target_type": "str", "model_used": "str",
    "status": "str", "price_table": "str", "endpoint": "str", "error": "str", "fallback_used": "str",
    "generation": "Int64", "tokens_in": "Int64", "tokens_out": "Int64", "cache_read_tokens": "Int64",
    "cache_write_tokens": "Int64", "execution_ms": "Int64",
}
_EXECUTIONS_SQL = """
    SELECT task_id, generation, agent_id, tier, target_type, model_used, tokens_in, tokens_out,
           cache_read_tokens, cache_write_tokens, cost_nusd, equivalent_claude_cost_nusd,
           execution_ms, status, completed_at, price_table, endpoint, fallback_used, error
    FROM executions {where} ORDER BY completed_at, id
"""


def load_executions(
    source: Source, *, format: Format | None = None, since: datetime | int | None = None
) -> pd.DataFrame:
    """The executions frame from an export of ``/api/executions`` or from the store's file.

    ``format`` is sniffed from the file's first bytes when not given (SQLite header, Parquet
    magic, otherwise CSV). ``since`` keeps rows completed at or after it (a datetime, naive
    meaning UTC, or ms since the epoch), like the endpoint's ``?since=``.
    """
    if not isinstance(source, bytes):
        source = Path(source).expanduser()
    kind = format or _sniff(source)
    if kind == "sqlite":
        if isinstance(source, bytes):
            raise ValueError("a SQLite store must be given as a file path, not bytes")
        return executions_frame(_read_store(Path(source), _since_ms(since)))
    if kind == "parquet":
        raw = pd.read_parquet(_readable(source))
    elif kind == "csv":
        raw = pd.read_csv(_readable(source), dtype=_CSV_DTYPES, keep_default_na=False, na_values=[""])
    else:
        raise ValueError(f"format must be one of csv, parquet, sqlite; got {format!r}")
    frame = executions_frame(raw)
    cutoff = _since_ms(since)
    if cutoff is not None:
        frame = frame[frame["completed_at"] >= pd.Timestamp(cutoff, unit="ms", tz="UTC")].reset_index(drop=True)
    return frame


def load_tasks(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Tasks from the store's file: task_id, description, priority (urgent < ... < low), status,
    attempts, created_at, completed_at. Join it to rollups to read what a task was about."""
    with closing(_connect(Path(path).expanduser())) as connection:  # sqlite3's own `with` does not close
        raw = pd.read_sql_query(
            "SELECT task_id, description, priority, status, attempts, created_at, completed_at FROM tasks ORDER BY seq",
            connection,
        )
    codes = raw["priority"].to_numpy()
    return pd.DataFrame(
        {
            "task_id": raw["task_id"].astype("str"),
            "description": raw["description"].astype("str"),
            "priority": pd.Categorical.from_codes(codes, categories=list(_PRIORITIES), ordered=True),
            "status": raw["status"].astype("category"),
            "attempts": raw["attempts"].astype("Int64"),
            "created_at": pd.to_datetime(raw["created_at"], unit="ms", utc=True).astype("datetime64[ms, UTC]"),
            "completed_at": pd.to_datetime(raw["completed_at"], unit="ms", utc=True).astype("datetime64[ms, UTC]"),
        }
    )


def _read_store(path: Path, since_ms: int | None) -> pd.DataFrame:
    where, params = ("WHERE completed_at >= ?", (since_ms,)) if since_ms is not None else ("", ())
    with closing(_connect(path)) as connection:
        raw = pd.read_sql_query(
            _EXECUTIONS_SQL.format(where=where), connection, params=params, dtype_backend="numpy_nullable"
        )
    cost = raw.pop("cost_nusd").astype("Int64")
    equivalent = raw.pop("equivalent_claude_cost_nusd").astype("Int64")
    raw["estimated_cost_usd"] = _usd(cost)
    raw["equivalent_claude_cost_usd"] = _usd(equivalent)
    raw["savings_usd"] = _usd(equivalent - cost)  # NA unless both are known
    return raw[[c for c in EXECUTION_COLUMNS if c in raw.columns]]


def _usd(nano: pd.Series) -> pd.Series:
    return (nano.astype("Float64") / _NANO).astype("Float64")


def _connect(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise FileNotFoundError(f"no AgentCom store at {path}")
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        connection.execute("SELECT 1 FROM executions LIMIT 0")
    except sqlite3.DatabaseError as exc:
        connection.close()
        raise ValueError(f"{path} is not an AgentCom store ({exc})") from None
    return connection


def _since_ms(since: datetime | int | None) -> int | None:
    if since is None or isinstance(since, int):
        return since
    stamp = pd.Timestamp(since)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return int(stamp.value // 1_000_000)


def _sniff(source: Source) -> Format:
    if isinstance(source, bytes):
        head = source[:16]
    else:
        with open(source, "rb") as handle:
            head = handle.read(16)
    if head.startswith(b"SQLite format 3\x00"):
        return "sqlite"
    if head.startswith(b"PAR1"):
        return "parquet"
    return "csv"


def _readable(source: Source) -> str | os.PathLike[str] | io.BytesIO:
    return io.BytesIO(source) if isinstance(source, bytes) else source
