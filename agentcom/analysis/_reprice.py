"""What-if re-pricing: the same executions under another price table or another tier -> model map.

Tokens stay as they were; only prices change. The price table is anything with
``price(model, tokens_in, tokens_out, cache_read=0, cache_write=0) -> Decimal | None`` and a
``version`` (``agentcom.pricing.PriceTable`` has both).

Prices come from ``_pricer`` (per model a verified linear shortcut, else one question per
distinct token counts) and stay ``Decimal``; totals are exact sums (originals are exact too:
the store keeps nano-USD) and become floats only at the end.

Every run is priced by the hub's rules (``PriceTable.cost_of_run``), so a what-if under the
hub's own table reproduces what the hub recorded and what-if savings compare with the recorded
``savings_usd``:

- a run on a free target (the sidecar's shell) costs 0 and has no Claude equivalent; a run on
  a local target (``ollama``, ``local``) costs 0 and is compared with ``reference_model``;
  both unless ``tier_models`` moves their tier to a model, which is then priced;
- any other run is priced by its model; a model the table does not know leaves the cost
  unknown (never free) unless the run used no tokens; a run without a model keeps its cost;
- the "equivalent Claude cost": a Claude model prices itself, and a stand-in's
  ``simulated-claude-*`` prices as the model it stands for (``agentcom.pricing.real_model``,
  the hub's own mapping); an unpriced Claude model on the ``claude`` target has none; anything
  else is priced on ``reference_model``; a run without tokens has none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

import numpy as np
import pandas as pd

from agentcom.analysis._frame import TIERS
from agentcom.analysis._pricer import Ask, Priced
from agentcom.analysis._rollups import _labels
from agentcom.pricing import FREE_TARGETS, LOCAL_TARGETS, real_model

__all__ = ["DEFAULT_REFERENCE_MODEL", "PriceTableLike", "Repricing", "reprice"]

DEFAULT_REFERENCE_MODEL = "claude-sonnet-4-5"  # the hub's default reference_model setting
_NANO = Decimal(1_000_000_000)
_TOKENS = ("tokens_in", "tokens_out", "cache_read_tokens", "cache_write_tokens")  # the order price() takes


class PriceTableLike(Protocol):
    """What :func:`reprice` needs from a price table."""

    @property
    def version(self) -> str: ...

    def price(
        self, model: str, tokens_in: int, tokens_out: int, cache_read: int = 0, cache_write: int = 0
    ) -> Decimal | None: ...


@dataclass(frozen=True)
class Repricing:
    """The result of :func:`reprice`.

    ``rows``: one per execution (same index as the input): task_id, generation, tier,
    model_used, whatif_model, the four token counts, cost_usd, whatif_cost_usd, delta_usd
    (what-if minus original, NA unless both are known), equivalent_claude_cost_usd,
    savings_usd, whatif_equivalent_claude_cost_usd (under the new table, by the hub's rule in the
    module docstring), whatif_savings_usd.

    ``by_tier``: per tier: runs, unpriced_runs, whatif_unpriced_runs, comparable_runs (priced
    both ways), cost_usd, whatif_cost_usd (each over its own priced runs), delta_usd (over
    comparable runs only), whatif_equivalent_claude_cost_usd, whatif_savings_usd.

    ``totals``: the same figures over all rows, plus price_table, reference_model, tier_models.
    """

    rows: pd.DataFrame
    by_tier: pd.DataFrame
    totals: dict[str, Any] = field(default_factory=dict)


def reprice(
    df: pd.DataFrame,
    prices: PriceTableLike,
    tier_models: Mapping[str, str] | None = None,
    reference_model: str = DEFAULT_REFERENCE_MODEL,
) -> Repricing:
    """Price ``df``'s executions under ``prices``, optionally moving whole tiers to one model
    (``tier_models={"complex": "claude-haiku-4-5"}``: what if all complex work had gone there?)."""
    model, moved = _whatif_models(df, tier_models)
    target = df["target_type"]  # where the run happened; says nothing about a run the what-if moved
    counts = [df[c].to_numpy("int64", na_value=-1) for c in _TOKENS]
    tokens_known = np.logical_and.reduce([c >= 0 for c in counts])
    used_tokens = tokens_known & (sum(counts) > 0)
    original_nano, original_known = _nanos(df["estimated_cost_usd"])
    free = target.isin(FREE_TARGETS).to_numpy() & ~moved
    local = target.isin(LOCAL_TARGETS).to_numpy() & ~moved
    charged_nothing = free | local  # the hub charges these 0 whatever the model
    carried = ~charged_nothing & pd.isna(model)  # no model to price: the run keeps what it cost

    cache: dict[tuple[Any, ...], Decimal | None] = {}

    def ask(name: str, tin: int, tout: int, cr: int, cw: int) -> Decimal | None:
        key = (name, tin, tout, cr, cw)
        if key not in cache:
            cache[key] = prices.price(name, tin, tout, cache_read=cr, cache_write=cw)
        return cache[key]

    table_rows = ~charged_nothing & ~carried & tokens_known
    whatif = Priced.of(np.flatnonzero(table_rows), model, counts, ask)
    on_claude = (target == "claude").to_numpy(dtype=bool) & ~moved
    equivalent = _equivalent_models(model, on_claude, local, ask, reference_model)
    reference = Priced.of(np.flatnonzero(used_tokens & ~free & pd.notna(equivalent)), equivalent, counts, ask)

    original = df["estimated_cost_usd"]
    whatif_float = np.where(carried, original.to_numpy("float64", na_value=np.nan), whatif.floats)
    whatif_float[charged_nothing | (table_rows & ~used_tokens & np.isnan(whatif_float))] = 0.0  # nothing to pay
    whatif_known = ~np.isnan(whatif_float)
    index = df.index
    rows = pd.DataFrame(
        {
            "task_id": df["task_id"],
            "generation": df["generation"],
            "tier": df["tier"],
            "model_used": df["model_used"],
            "whatif_model": pd.Series(model, index=index, dtype="str").astype("category"),
            "tokens_in": df["tokens_in"],
            "tokens_out": df["tokens_out"],
            "cache_read_tokens": df["cache_read_tokens"],
            "cache_write_tokens": df["cache_write_tokens"],
            "cost_usd": original,
            "whatif_cost_usd": _float_column(whatif_float, index),
            "delta_usd": _float_column(whatif_float, index) - original,
            "equivalent_claude_cost_usd": df["equivalent_claude_cost_usd"],
            "savings_usd": df["savings_usd"],
            "whatif_equivalent_claude_cost_usd": _float_column(reference.floats, index),
            "whatif_savings_usd": _float_column(reference.floats - whatif_float, index),
        },
        index=index,
    )

    by_tier, totals = _tier_totals(
        _labels(df, ["tier"])[0], _Original(original_nano, original_known), whatif, whatif_known, carried, reference
    )
    totals.update(price_table=prices.version, reference_model=reference_model, tier_models=dict(tier_models or {}))
    return Repricing(rows=rows, by_tier=by_tier, totals=totals)


@dataclass(frozen=True)
class _Original:
    nanos: np.ndarray  # exact recorded cost per row in nano-USD, 0 where unknown
    known: np.ndarray


def _tier_totals(
    tier: pd.Series, original: _Original, whatif: Priced, whatif_known: np.ndarray, carried: np.ndarray,
    reference: Priced,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Exact per-tier and overall sums; each USD figure only over the rows where it is known."""
    codes, names = pd.factorize(tier, sort=True)
    n = len(names)
    comparable = whatif_known & original.known
    saved = whatif_known & reference.known

    def count(mask: np.ndarray) -> np.ndarray:
        return np.bincount(codes[mask], minlength=n)

    def recorded(mask: np.ndarray) -> list[Decimal]:
        return [Decimal(int(original.nanos[mask & (codes == g)].sum())) / _NANO for g in range(n)]

    def whatif_cost(mask: np.ndarray) -> list[Decimal]:  # carried rows keep their recorded cost
        return [a + b for a, b in zip(whatif.sums(codes, n, mask & ~carried), recorded(mask & carried))]

    money = {  # column -> (exact sums per tier, rows it is known for)
        "cost_usd": (recorded(original.known), original.known),
        "whatif_cost_usd": (whatif_cost(whatif_known), whatif_known),
        "delta_usd": (_minus(whatif_cost(comparable), recorded(comparable)), comparable),
        "whatif_equivalent_claude_cost_usd": (reference.sums(codes, n, reference.known), reference.known),
        "whatif_savings_usd": (_minus(reference.sums(codes, n, saved), whatif_cost(saved)), saved),
    }
    counts = {
        "runs": count(np.ones(len(codes), dtype=bool)),
        "unpriced_runs": count(~original.known),
        "whatif_unpriced_runs": count(~whatif_known),
        "comparable_runs": count(comparable),
    }
    by_tier = pd.DataFrame(
        {**counts, **{name: _money(sums, count(known)) for name, (sums, known) in money.items()}},
        index=pd.CategoricalIndex(names, name="tier"),
    )
    totals: dict[str, Any] = {name: int(values.sum()) for name, values in counts.items()}
    for name, (sums, known) in money.items():
        totals[name] = float(sum(sums, Decimal(0))) if known.any() else None
    return by_tier, totals


def _minus(a: list[Decimal], b: list[Decimal]) -> list[Decimal]:
    return [x - y for x, y in zip(a, b)]


def _whatif_models(df: pd.DataFrame, tier_models: Mapping[str, str] | None) -> tuple[np.ndarray, np.ndarray]:
    """Each row's model in the what-if (None where there is none) and whether its tier was moved."""
    model = df["model_used"].astype(object).to_numpy()
    if not tier_models:
        return np.asarray(np.where(pd.isna(model), None, model), dtype=object), np.zeros(len(df), dtype=bool)
    present = set(df["tier"].dropna().unique().tolist())
    unknown = [t for t in tier_models if t not in TIERS and t not in present]
    if unknown:
        raise ValueError(f"tier_models: unknown tier {unknown[0]!r}; expected one of {', '.join(TIERS)}")
    mapped = df["tier"].astype(object).map(dict(tier_models)).to_numpy()
    moved = np.asarray(pd.notna(mapped), dtype=bool)
    chosen = np.where(moved, mapped, model)
    return np.asarray(np.where(pd.isna(chosen), None, chosen), dtype=object), moved


def _equivalent_models(
    model: np.ndarray, on_claude: np.ndarray, local: np.ndarray, ask: Ask, reference_model: str
) -> np.ndarray:
    """Per row, the model that prices its "equivalent Claude cost" by the hub's rule (module
    docstring), or None for no equivalent. Decided once per distinct model, then spread by code."""
    codes, names = pd.factorize(model)  # code -1: no model
    own: list[str | None] = []
    for name in names.tolist():
        real = real_model(name)
        own.append(real if "claude" in real and _cloud_priced(real, ask) else None)
    own_model = np.array([*own, None], dtype=object)[codes]
    has_own = np.array([m is not None for m in own] + [False], dtype=bool)[codes]
    chosen = np.where(has_own, own_model, np.where(on_claude, None, reference_model))
    chosen[local] = reference_model
    return np.asarray(chosen, dtype=object)


def _cloud_priced(model: str, ask: Ask) -> bool:
    """Whether the table charges for ``model`` (the hub's "known and not local")."""
    one_of_each = ask(model, 1, 1, 1, 1)
    return one_of_each is not None and one_of_each > 0


def _nanos(usd: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """USD floats back to the store's exact integer nano-USD (0 where unknown), and a known mask."""
    values = usd.to_numpy("float64", na_value=np.nan)
    known = ~np.isnan(values)
    return np.where(known, np.rint(values * 1e9), 0).astype("int64"), known


def _money(values: list[Decimal], known_runs: np.ndarray) -> pd.api.extensions.ExtensionArray:
    return pd.array([float(v) if k else None for v, k in zip(values, known_runs)], dtype="Float64")


def _float_column(values: np.ndarray, index: pd.Index) -> pd.Series:
    return pd.Series(values, index=index, dtype="float64").astype("Float64")
