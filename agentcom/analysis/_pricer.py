"""Prices for many executions from a price table that prices one run at a time.

A price table answers ``price(model, tokens_in, tokens_out, cache_read, cache_write)`` for one
run. Asking it a million times takes seconds, so per model this module first tries the
linear shortcut: it asks the price of one token of each kind and of no tokens, then checks
the linear prediction *exactly* (Decimal equality) against real answers for a sample of
rows that includes the largest ones (where tiered "above 200k tokens" prices would show).
If every check holds, the model's rows are priced with numpy and their exact totals are
``rate x summed tokens``; otherwise each distinct (model, tokens) is asked once.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import numpy as np

__all__ = ["Ask", "Priced"]

Ask = Callable[[str, int, int, int, int], "Decimal | None"]

_SAMPLE = 32


class _NoPrice:
    """The table has no price for the model at any token count."""


_NO_PRICE = _NoPrice()


class Priced:
    """Prices of some rows (``rows``) of a frame of ``n`` rows, each under its own model."""

    def __init__(self, n: int) -> None:
        self.floats = np.full(n, np.nan)  # per row, NaN where not priced or unknown
        self._linear: list[tuple[np.ndarray, tuple[Decimal, ...]]] = []  # (rows, rate per token kind)
        self._keyed: list[tuple[np.ndarray, np.ndarray, list[Decimal | None]]] = []  # (rows, key per row, prices)
        self._counts: list[np.ndarray] = []

    @property
    def known(self) -> np.ndarray:
        return np.asarray(~np.isnan(self.floats), dtype=bool)

    @classmethod
    def of(cls, rows: np.ndarray, models: np.ndarray, counts: list[np.ndarray], ask: Ask) -> Priced:
        """Price ``rows`` (positions) with ``models[row]`` and the four token ``counts[kind][row]``."""
        priced = cls(len(models))
        priced._counts = counts
        if len(rows) == 0:
            return priced
        row_models = models[rows]
        for model in dict.fromkeys(row_models.tolist()):
            chosen = rows[row_models == model]
            units = _linear_units(model, chosen, counts, ask)
            if isinstance(units, _NoPrice):
                continue
            if units is not None:
                priced._linear.append((chosen, units))
                priced.floats[chosen] = _linear_floats(units, [c[chosen] for c in counts])
            else:
                priced._ask_each(model, chosen, ask)
        return priced

    def _ask_each(self, model: str, rows: np.ndarray, ask: Ask) -> None:
        tokens = np.stack([c[rows] for c in self._counts], axis=1)
        distinct, keys = np.unique(tokens, axis=0, return_inverse=True)
        prices = [ask(model, *(int(t) for t in row)) for row in distinct]
        unit = np.array([np.nan if p is None else float(p) for p in prices], dtype="float64")
        self.floats[rows] = unit[keys.ravel()]
        self._keyed.append((rows, keys.ravel(), prices))

    def sums(self, groups: np.ndarray, n_groups: int, mask: np.ndarray) -> list[Decimal]:
        """Exact sum of the known prices per group (``groups[row]`` in 0..n_groups-1) over ``mask``."""
        out = [Decimal(0)] * n_groups
        for rows, units in self._linear:
            take = rows[mask[rows]]
            for group in range(n_groups):
                inside = take[groups[take] == group]
                if len(inside):
                    out[group] += sum((units[k] * int(self._counts[k][inside].sum()) for k in range(4)), Decimal(0))
        for rows, keys, prices in self._keyed:
            take = mask[rows]
            pairs, times = np.unique(groups[rows][take] * len(prices) + keys[take], return_counts=True)
            for pair, count in zip(pairs.tolist(), times.tolist()):
                group, key = divmod(pair, len(prices))
                price = prices[key]
                if price is not None:
                    out[group] += price * count
        return out


def _linear_floats(units: tuple[Decimal, ...], counts: list[np.ndarray]) -> np.ndarray:
    """Per-row prices as the float nearest the exact Decimal (as ``float(price(...))`` gives):
    integer arithmetic in units of 10**-digits, then one correctly rounded division."""
    digits = max(0, *(-int(u.as_tuple().exponent) for u in units))
    scaled = [int(u.scaleb(digits)) for u in units]
    bound = sum(int(c.max(initial=0)) * r for c, r in zip(counts, scaled))
    if digits > 22 or bound >= 2**53:  # beyond exact float range: a close float will do
        return sum((c * float(u) for c, u in zip(counts, units)), np.zeros(len(counts[0])))
    exact = sum((c.astype("int64") * r for c, r in zip(counts, scaled)), np.zeros(len(counts[0]), dtype="int64"))
    return exact / 10.0**digits


def _linear_units(
    model: str, rows: np.ndarray, counts: list[np.ndarray], ask: Ask
) -> tuple[Decimal, ...] | _NoPrice | None:
    """Per-token rates if ``model`` verifiably prices linearly, ``_NO_PRICE`` if it verifiably
    has no price, else None (ask row by row)."""
    base = ask(model, 0, 0, 0, 0)
    units = [ask(model, *(1 if k == i else 0 for k in range(4))) for i in range(4)]
    predicted: tuple[Decimal, ...] | _NoPrice
    if base is None and all(u is None for u in units):
        predicted = _NO_PRICE
    elif base != 0 or any(u is None for u in units):
        return None
    else:
        predicted = tuple(u for u in units if u is not None)
    for row in _sample(rows, counts):
        tokens = [int(c[row]) for c in counts]
        answer = ask(model, *tokens)
        expected = None
        if not isinstance(predicted, _NoPrice):
            expected = sum((n * u for n, u in zip(tokens, predicted)), Decimal(0))
        if answer != expected:
            return None
    return predicted


def _sample(rows: np.ndarray, counts: list[np.ndarray]) -> list[int]:
    """The largest row of each token kind and in total, plus an even spread of the others."""
    total = sum(c[rows] for c in counts)
    picks = {int(rows[np.argmax(c[rows])]) for c in counts} | {int(rows[np.argmax(total)])}
    spread = np.linspace(0, len(rows) - 1, num=min(_SAMPLE, len(rows))).astype(int)
    return sorted(picks | {int(r) for r in rows[spread]})
