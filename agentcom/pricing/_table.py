"""The price table: what a run cost, and what it would have cost on Claude.

Two questions are answered here and nowhere else:

- ``price``: USD for a model and its token counts (``None`` when the model is
  unknown, so an unpriced cloud run is never reported as free);
- ``cost_of_run``: the same, but knowing *where* the run happened. Shell runs
  (target ``sidecar``) cost nothing and have no Claude equivalent; runs on our own
  hardware (``ollama``, ``local``) cost nothing and are compared with a reference
  Claude model; cloud targets are priced by the model that answered.

The ``[local]`` name patterns (``llama*``, ``qwen*``, ``mistral*``...) make a model free
only where the run was on our own hardware: the local targets, and an ``openai`` target
whose endpoint is local (``agentcom.pricing._locality``). A cloud provider serving a model
with such a name is priced by explicit entries alone, else null with a warning. Stand-in
models (``simulated-*``) are free everywhere: no money is ever spent on them.

All arithmetic is ``Decimal``; callers convert to float only at the wire.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Mapping

from agentcom.errors import PricingError
from agentcom.pricing._load import ModelPrice, ParsedTable, read_table
from agentcom.pricing._locality import endpoint_is_local
from agentcom.pricing._names import SIMULATED_PREFIX, candidates, clean, matches_any, real_model

__all__ = ["DEFAULT_REFERENCE_MODEL", "FREE_TARGETS", "LOCAL_TARGETS", "PriceTable", "RunCost", "SHIPPED_TABLE",
           "free_without_usage"]

SHIPPED_TABLE = Path(__file__).with_name("prices.toml")
DEFAULT_REFERENCE_MODEL = "claude-sonnet-4-5"
FREE_TARGETS = frozenset({"sidecar", "shell"})
"""Targets that run no model at all: free, and nothing to compare with Claude."""
LOCAL_TARGETS = frozenset({"ollama", "local"})
"""Targets that always run on our own hardware: free, compared with the reference model."""


def free_without_usage(target_type: str | None, endpoint: str | None = None) -> bool:
    """Whether a run that stopped without reporting its usage still cost nothing: it ran no
    model, a model on our own hardware, or an ``openai`` model on a local server (``None``: not
    said, as the routing counts ``openai`` targets local). Elsewhere it may have come after a
    paid request, so its cost is unknown, never 0."""
    if target_type in FREE_TARGETS or target_type in LOCAL_TARGETS:
        return True
    return target_type == "openai" and (endpoint is None or endpoint_is_local(endpoint))


_MILLION = Decimal(1_000_000)
_ZERO = Decimal(0)
_STANDIN_PATTERNS = (SIMULATED_PREFIX + "*",)  # agentcom.standin's models: free on any target


@dataclass(frozen=True, slots=True)
class RunCost:
    """Priced run. ``warning`` explains a ``None`` cost (an unpriced model)."""

    cost_usd: Decimal | None
    equivalent_claude_cost_usd: Decimal | None
    warning: str | None = None


def _check_tokens(**counts: int) -> int:
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    return sum(counts.values())


class PriceTable:
    """USD per million tokens per model, plus which model names are local (free)."""

    def __init__(self, version: str, models: Mapping[str, ModelPrice], local_patterns: tuple[str, ...] = (),
                 sources: tuple[str, ...] = ()) -> None:
        self._version = version
        self._models = {clean(k): v for k, v in models.items()}
        self._local_patterns = tuple(clean(p) for p in local_patterns)
        self._sources = sources

    # ------------------------------------------------------------------ loading

    @classmethod
    def load(cls, path: str | Path | None = None) -> PriceTable:
        """The shipped table, with the file at ``path`` (ours or LiteLLM's) merged over it."""
        table = _shipped()
        if path is None or str(path) == "":
            return table
        return table.merged(read_table(Path(path).expanduser()))

    def merged(self, other: ParsedTable) -> PriceTable:
        """This table with ``other``'s entries replacing or adding to ours."""
        return PriceTable(
            f"{self._version}+{other.version}",
            {**self._models, **other.models},
            self._local_patterns + tuple(p for p in other.local_patterns if p not in self._local_patterns),
            self._sources + (other.source,),
        )

    @property
    def version(self) -> str:
        """Recorded with every execution it prices (``price_table`` in RESULT)."""
        return self._version

    @property
    def sources(self) -> tuple[str, ...]:
        """Files this table was read from, shipped table first."""
        return self._sources

    def __repr__(self) -> str:
        return f"PriceTable(version={self._version!r}, models={len(self._models)})"

    # ------------------------------------------------------------------ lookups

    def lookup(self, model: str, *, local_names: bool = True) -> ModelPrice | None:
        """The price entry for a model id in any common spelling; ``None`` if unknown.

        Explicit entries win over local name patterns, so a file can price a cloud
        model whose name happens to look local. ``local_names=False`` (a run that was
        not on our own hardware) ignores the patterns, but for stand-in models.
        """
        for key in candidates(model):
            if key in self._models:
                return self._models[key]
        if matches_any(model, self._local_patterns if local_names else _STANDIN_PATTERNS):
            return ModelPrice.free()
        return None

    def is_local(self, model: str) -> bool:
        entry = self.lookup(model)
        return entry is not None and entry.local

    def price(self, model: str, tokens_in: int, tokens_out: int, cache_read: int = 0,
              cache_write: int = 0, *, local_names: bool = True) -> Decimal | None:
        """USD for these tokens on ``model``; ``None`` if the table does not know it.

        ``tokens_in`` excludes cache tokens (as Anthropic reports it); each kind is
        charged at its own rate. ``local_names``: as for ``lookup``.
        """
        _check_tokens(tokens_in=tokens_in, tokens_out=tokens_out, cache_read=cache_read, cache_write=cache_write)
        entry = self.lookup(model, local_names=local_names)
        if entry is None:
            return None
        if entry.local:
            return _ZERO
        total = (entry.input * tokens_in + entry.output * tokens_out
                 + entry.cache_read * cache_read + entry.cache_write * cache_write)
        return total / _MILLION

    def equivalent(self, tokens_in: int, tokens_out: int, cache_read: int = 0, cache_write: int = 0,
                   reference_model: str = DEFAULT_REFERENCE_MODEL) -> Decimal | None:
        """What these tokens would cost on ``reference_model``; ``None`` for a run without tokens."""
        total = _check_tokens(tokens_in=tokens_in, tokens_out=tokens_out, cache_read=cache_read,
                              cache_write=cache_write)
        self.check_reference(reference_model)
        if total == 0:
            return None
        return self.price(reference_model, tokens_in, tokens_out, cache_read, cache_write)

    def check_reference(self, reference_model: str) -> None:
        """Raise PricingError unless ``reference_model`` has a real (non-local) price."""
        entry = self.lookup(reference_model)
        if entry is None or entry.local:
            raise PricingError(
                f"reference model {reference_model!r} has no cloud price in price table {self._version} "
                f"(e.g. use {DEFAULT_REFERENCE_MODEL!r})"
            )

    # ------------------------------------------------------------------ runs

    def cost_of_run(self, target_type: str, model: str | None, tokens_in: int, tokens_out: int,
                    cache_read: int = 0, cache_write: int = 0, *,
                    reference_model: str = DEFAULT_REFERENCE_MODEL, endpoint: str | None = None,
                    usage_known: bool = True) -> RunCost:
        """Cost and Claude-equivalent cost of one execution on ``target_type``.

        ``endpoint``: the server an ``openai`` run reached (``host:port`` or URL). Local name
        patterns price its model at 0 only when that server is local; a cloud endpoint's
        unknown model is null with a warning. ``None`` (not said) leaves the name to decide,
        as the routing counts ``openai`` targets local; other non-local targets never use
        the patterns.

        ``usage_known=False``: the run stopped without reporting its usage (an executor crash,
        perhaps after a paid request). Where runs are not free its cost is unknown: null with
        a warning, counted as unpriced, never 0.
        """
        counts = (tokens_in, tokens_out, cache_read, cache_write)
        total = _check_tokens(tokens_in=tokens_in, tokens_out=tokens_out, cache_read=cache_read,
                              cache_write=cache_write)
        if target_type in FREE_TARGETS:
            return RunCost(_ZERO, None)
        if target_type in LOCAL_TARGETS:
            return RunCost(_ZERO, self.equivalent(*counts, reference_model=reference_model))
        local_names = free_without_usage(target_type, endpoint)  # here: an openai target on a local server
        if not usage_known and not local_names:
            return RunCost(None, None, f"the {target_type} run stopped without reporting its usage: its cost is unknown")
        cost = self.price(model, *counts, local_names=local_names) if model else None
        warning = None
        if cost is None:
            if total == 0:
                cost = _ZERO  # nothing was consumed, whatever the model
            else:
                where = f"target {target_type!r}" + (f", endpoint {endpoint!r}" if endpoint else "")
                warning = (f"no price for model {model!r} ({where}) in price table "
                           f"{self._version}: estimated cost left null")
        return RunCost(cost, self._claude_equivalent(target_type, model, counts, reference_model), warning)

    def _claude_equivalent(self, target_type: str, model: str | None, counts: tuple[int, int, int, int],
                           reference_model: str) -> Decimal | None:
        """A Claude model prices itself (a simulated one at the model it simulates);
        anything else is compared with the reference model."""
        if sum(counts) == 0:
            return None
        real = real_model(model or "")
        if "claude" in real:
            entry = self.lookup(real)
            if entry is not None and not entry.local:
                return self.price(real, *counts)
        if target_type == "claude":
            return None  # an unknown Claude model: no honest estimate
        return self.equivalent(*counts, reference_model=reference_model)


@lru_cache(maxsize=1)
def _shipped() -> PriceTable:
    parsed = read_table(SHIPPED_TABLE)
    return PriceTable(parsed.version, parsed.models, parsed.local_patterns, (parsed.source,))
