"""The executions frame: the one place that knows the columns and dtypes of an execution row.

Everything that turns execution rows into pandas (the loaders here, ``HubClient.executions()``)
goes through :func:`executions_frame`, so a notebook, a test and the dashboard see the same
schema. Choices worth knowing:

- USD columns are nullable ``Float64``: an unknown price stays ``<NA>``, never 0, so a sum
  can skip it and a rollup can count it instead of calling it free.
- Token and millisecond counts are nullable ``Int64``; ``completed_at`` is ``datetime64[ms, UTC]``
  (the hub sends milliseconds since the epoch).
- Low-cardinality labels are categoricals; ``tier`` lists the known tiers first, in routing order,
  so rollups and plots sort trivial < standard < complex < unknown.
- Columns outside the schema are dropped. Optional columns are filled in when missing:
  cache token counts with 0 (the store's default), ``savings_usd`` as equivalent minus cost,
  ``endpoint``, ``fallback_used`` and ``error`` with NA.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["EXECUTION_COLUMNS", "EXECUTION_DTYPES", "TIERS", "empty_executions_frame", "executions_frame"]

TIERS: tuple[str, ...] = ("trivial", "standard", "complex", "unknown")

_STR = pd.StringDtype(na_value=np.nan)
_CATEGORY = "category"
_INT = pd.Int64Dtype()
_FLOAT = pd.Float64Dtype()
_BOOL = pd.BooleanDtype()
_TIME = pd.DatetimeTZDtype(unit="ms", tz="UTC")

EXECUTION_DTYPES: Mapping[str, Any] = {
    "task_id": _STR,
    "generation": _INT,
    "agent_id": _CATEGORY,
    "tier": _CATEGORY,
    "target_type": _CATEGORY,
    "model_used": _CATEGORY,
    "tokens_in": _INT,
    "tokens_out": _INT,
    "cache_read_tokens": _INT,
    "cache_write_tokens": _INT,
    "estimated_cost_usd": _FLOAT,
    "equivalent_claude_cost_usd": _FLOAT,
    "savings_usd": _FLOAT,
    "execution_ms": _INT,
    "status": _CATEGORY,
    "completed_at": _TIME,
    "price_table": _CATEGORY,
    "endpoint": _STR,
    "fallback_used": _BOOL,
    "error": _STR,
}
"""Column -> dtype of the executions frame (``"category"`` columns have string categories)."""

EXECUTION_COLUMNS: tuple[str, ...] = tuple(EXECUTION_DTYPES)
"""The columns of the executions frame, in order: those of ``/api/executions`` first."""

_OPTIONAL_ZERO = ("cache_read_tokens", "cache_write_tokens")  # the store's default is 0
_OPTIONAL_NA = ("endpoint", "fallback_used", "error")
_DERIVED = ("savings_usd",)
_REQUIRED = tuple(c for c in EXECUTION_COLUMNS if c not in _OPTIONAL_ZERO + _OPTIONAL_NA + _DERIVED)


def empty_executions_frame() -> pd.DataFrame:
    """A frame with no rows and exactly the schema's columns and dtypes."""
    columns = {name: _empty(name, dtype) for name, dtype in EXECUTION_DTYPES.items()}
    return pd.DataFrame(columns, index=pd.RangeIndex(0))


def executions_frame(records: Iterable[Mapping[str, Any]] | pd.DataFrame) -> pd.DataFrame:
    """Type execution rows (dicts with the ``/api/executions`` columns, or a raw frame).

    Raises ``ValueError`` naming the missing columns when a required one is absent.
    """
    raw = records if isinstance(records, pd.DataFrame) else pd.DataFrame.from_records(list(records))
    if len(raw) == 0 and not set(_REQUIRED) <= set(raw.columns):
        return empty_executions_frame()
    missing = [c for c in _REQUIRED if c not in raw.columns]
    if missing:
        raise ValueError(
            f"execution rows lack column(s) {', '.join(missing)}; expected the /api/executions columns "
            f"({', '.join(_REQUIRED)})"
        )
    index = pd.RangeIndex(len(raw))
    out: dict[str, pd.Series] = {}
    for name, dtype in EXECUTION_DTYPES.items():
        if name in raw.columns:
            column = raw[name].set_axis(index)
        elif name in _OPTIONAL_ZERO:
            column = pd.Series(0, index=index, dtype=_INT)
        elif name == "savings_usd":
            column = _float(raw["equivalent_claude_cost_usd"].set_axis(index)) - _float(
                raw["estimated_cost_usd"].set_axis(index)
            )
        else:
            column = pd.Series(pd.NA, index=index, dtype=object)
        try:
            out[name] = _coerce(name, dtype, column)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"column {name!r} cannot be read as {dtype}: {exc}") from None
        if name in _OPTIONAL_ZERO:
            out[name] = out[name].fillna(0)
    return pd.DataFrame(out, index=index)


def _empty(name: str, dtype: Any) -> pd.Series:
    if dtype == _CATEGORY:
        categories = list(TIERS) if name == "tier" else []
        return pd.Series(pd.Categorical([], categories=pd.Index(categories, dtype=_STR)))
    return pd.Series([], dtype=dtype)


def _coerce(name: str, dtype: Any, column: pd.Series) -> pd.Series:
    if dtype == _CATEGORY:
        return _category(column, first=TIERS if name == "tier" else ())
    if dtype is _INT:
        return _int(column)
    if dtype is _FLOAT:
        return _float(column)
    if dtype is _BOOL:
        return _bool(column)
    if dtype is _TIME:
        return _time(column)
    return _str(column)


def _str(column: pd.Series) -> pd.Series:
    if column.dtype == _STR:
        return column
    if column.dtype == object:
        column = column.where(column.notna(), None)
    return column.astype(_STR)


def _category(column: pd.Series, first: tuple[str, ...]) -> pd.Series:
    if not isinstance(column.dtype, pd.CategoricalDtype):
        column = _str(column).astype(_CATEGORY)
    categories = column.cat.categories
    if categories.dtype != _STR:
        column = column.cat.rename_categories(categories.astype(_STR))
        categories = column.cat.categories
    if first:
        extra = sorted(c for c in categories if c not in first)
        wanted = [*first, *extra]
        if list(categories) != wanted:
            column = column.cat.set_categories(pd.Index(wanted, dtype=_STR))
    return column


def _numeric(column: pd.Series) -> pd.Series:
    if pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column.dtype):
        return column
    if column.dtype == object:
        column = column.where(column.notna(), np.nan)
    return pd.to_numeric(column)


def _int(column: pd.Series) -> pd.Series:
    return _numeric(column).astype(_INT)


def _float(column: pd.Series) -> pd.Series:
    return _numeric(column).astype(_FLOAT)


_TRUTHY = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _bool(column: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(column.dtype):
        return column.astype(_BOOL)
    if pd.api.types.is_numeric_dtype(column.dtype):
        return (column.astype(_FLOAT) != 0).astype(_BOOL)
    text = _str(column).str.strip().str.lower()
    parsed = text.map(_TRUTHY)
    numbers = pd.to_numeric(text.where(parsed.isna()), errors="coerce")  # "1.0" from a CSV with gaps
    parsed = parsed.where(parsed.notna(), numbers.where(numbers.isna(), numbers != 0))
    bad = parsed.isna() & text.notna() & (text != "")
    if bad.any():
        raise ValueError(f"expected true/false or 1/0, got {column[bad].iloc[0]!r}")
    return parsed.astype(_BOOL)


def _time(column: pd.Series) -> pd.Series:
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        return column.dt.tz_convert("UTC").astype(_TIME)
    if pd.api.types.is_datetime64_dtype(column.dtype):
        return column.dt.tz_localize("UTC").astype(_TIME)
    if not pd.api.types.is_numeric_dtype(column.dtype):
        numbers = pd.to_numeric(column.where(column.notna(), np.nan), errors="coerce")
        if numbers.isna().sum() > column.isna().sum():  # text that is not a number: ISO 8601
            return pd.to_datetime(column, utc=True, format="ISO8601").astype(_TIME)
        column = numbers
    if isinstance(column.dtype, pd.api.extensions.ExtensionDtype):
        column = pd.Series(column.to_numpy("float64", na_value=np.nan), index=column.index)
    return pd.to_datetime(column, unit="ms", utc=True).astype(_TIME)
