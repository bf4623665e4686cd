"""Versioned price table: USD per million tokens, local models free, Decimal throughout.

``PriceTable.load()`` gives the shipped table (``prices.toml``); ``PriceTable.load(path)``
merges a user file over it, in AgentCom's format or LiteLLM's
``model_prices_and_context_window.json``.
"""

from agentcom.pricing._load import ModelPrice
from agentcom.pricing._names import real_model
from agentcom.pricing._table import (
    DEFAULT_REFERENCE_MODEL,
    FREE_TARGETS,
    LOCAL_TARGETS,
    SHIPPED_TABLE,
    PriceTable,
    RunCost,
    free_without_usage,
)

__all__ = [
    "DEFAULT_REFERENCE_MODEL",
    "FREE_TARGETS",
    "LOCAL_TARGETS",
    "ModelPrice",
    "PriceTable",
    "RunCost",
    "real_model",
    "SHIPPED_TABLE",
    "free_without_usage",
]
