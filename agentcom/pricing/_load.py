"""Reading price files: AgentCom's own format (TOML or JSON) and LiteLLM's JSON.

Every number is read as an exact ``Decimal`` (``parse_float=Decimal``), never through a
binary float, so ``3e-06`` USD per token becomes exactly 3 USD per million. Every
problem raises ``PricingError`` naming the file and the entry, because a wrong price
silently propagates into every cost report.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Mapping

from agentcom.errors import PricingError

__all__ = ["ModelPrice", "ParsedTable", "read_table"]

_MILLION = Decimal(1_000_000)
_LITELLM_KEYS = {
    "input": "input_cost_per_token",
    "output": "output_cost_per_token",
    "cache_write": "cache_creation_input_token_cost",
    "cache_read": "cache_read_input_token_cost",
}
_OWN_FIELDS = {"input", "output", "cache_write", "cache_read", "aliases", "note"}


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """USD per million tokens of one model. ``local`` marks our own hardware (always 0)."""

    input: Decimal
    output: Decimal
    cache_write: Decimal
    cache_read: Decimal
    local: bool = False

    @classmethod
    def free(cls) -> ModelPrice:
        zero = Decimal(0)
        return cls(zero, zero, zero, zero, local=True)


@dataclass(frozen=True, slots=True)
class ParsedTable:
    """What one file contributes: a version, model prices and local-name patterns."""

    version: str
    models: dict[str, ModelPrice]
    local_patterns: tuple[str, ...]
    source: str


def _decimal(value: Any, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal, float)):
        raise PricingError(f"{where}: expected a number, got {value!r}")
    try:
        number = Decimal(str(value)) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise PricingError(f"{where}: expected a number, got {value!r}") from None
    if not number.is_finite() or number < 0:
        raise PricingError(f"{where}: expected a non-negative finite number, got {value!r}")
    return number


def _parse_text(path: Path, text: str) -> Any:
    try:
        if path.suffix.lower() == ".toml":
            return tomllib.loads(text, parse_float=Decimal)
        return json.loads(text, parse_float=Decimal)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise PricingError(f"{path}: not valid {path.suffix.lstrip('.').upper() or 'JSON'}: {exc}") from None


def read_table(path: Path) -> ParsedTable:
    """Read one price file, detecting its format."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PricingError(f"{path}: cannot read price table: {exc.strerror or exc}") from None
    data = _parse_text(path, text)
    if not isinstance(data, dict):
        raise PricingError(f"{path}: expected a table/object at the top level, got {type(data).__name__}")
    if "models" in data or "version" in data:
        return _read_own(path, data)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]
    return _read_litellm(path, data, digest)


def _read_own(path: Path, data: Mapping[str, Any]) -> ParsedTable:
    version = data.get("version")
    if not isinstance(version, str) or not version.strip():
        raise PricingError(f"{path}: `version` must be a non-empty string, got {version!r}")
    unit = data.get("unit", "per_million_tokens")
    if unit != "per_million_tokens":
        raise PricingError(f"{path}: `unit` must be 'per_million_tokens', got {unit!r}")
    currency = data.get("currency", "USD")
    if currency != "USD":
        raise PricingError(f"{path}: `currency` must be 'USD', got {currency!r}")
    models_raw = data.get("models", {})
    if not isinstance(models_raw, dict):
        raise PricingError(f"{path}: `models` must be a table of model entries")
    models: dict[str, ModelPrice] = {}
    for name, entry in models_raw.items():
        where = f"{path}: models.{name!r}"
        if not isinstance(entry, dict):
            raise PricingError(f"{where}: expected a table with input/output prices, got {entry!r}")
        unknown = set(entry) - _OWN_FIELDS
        if unknown:
            raise PricingError(f"{where}: unknown field(s) {sorted(unknown)}; expected {sorted(_OWN_FIELDS)}")
        for required in ("input", "output"):
            if required not in entry:
                raise PricingError(f"{where}: missing `{required}` (USD per million tokens)")
        inp = _decimal(entry["input"], f"{where}.input")
        price = ModelPrice(
            input=inp,
            output=_decimal(entry["output"], f"{where}.output"),
            cache_write=_decimal(entry.get("cache_write", inp), f"{where}.cache_write"),
            cache_read=_decimal(entry.get("cache_read", inp), f"{where}.cache_read"),
        )
        aliases = entry.get("aliases", [])
        if not isinstance(aliases, list) or not all(isinstance(a, str) and a.strip() for a in aliases):
            raise PricingError(f"{where}.aliases: expected a list of model ids, got {aliases!r}")
        for key in (name, *aliases):
            models[key.strip().lower()] = price
    local = data.get("local", {})
    patterns = local.get("patterns", []) if isinstance(local, dict) else None
    if not isinstance(patterns, list) or not all(isinstance(p, str) and p.strip() for p in patterns):
        raise PricingError(f"{path}: local.patterns must be a list of name patterns, got {patterns!r}")
    return ParsedTable(version.strip(), models, tuple(p.strip().lower() for p in patterns), str(path))


def _read_litellm(path: Path, data: Mapping[str, Any], digest: str) -> ParsedTable:
    """LiteLLM's file: ``{model: {input_cost_per_token, output_cost_per_token, ...}}``, USD per token.

    Entries without token prices (image, audio, embedding-only models) and
    ``sample_spec`` are skipped; a token price that is not a number is an error.
    """
    models: dict[str, ModelPrice] = {}
    for name, entry in data.items():
        if name == "sample_spec" or not isinstance(entry, dict):
            continue
        if entry.get("input_cost_per_token") is None or entry.get("output_cost_per_token") is None:
            continue
        where = f"{path}: entry {name!r}"
        per_token = {
            field: _decimal(entry[key], f"{where}.{key}")
            for field, key in _LITELLM_KEYS.items()
            if entry.get(key) is not None
        }
        inp = per_token["input"]
        models[name.strip().lower()] = ModelPrice(
            input=inp * _MILLION,
            output=per_token["output"] * _MILLION,
            cache_write=per_token.get("cache_write", inp) * _MILLION,
            cache_read=per_token.get("cache_read", inp) * _MILLION,
        )
    if not models:
        raise PricingError(
            f"{path}: neither an AgentCom price table (no `version`/`models`) nor a LiteLLM price "
            "file (no entry has input_cost_per_token and output_cost_per_token)"
        )
    return ParsedTable(f"litellm-{digest}", models, (), str(path))
