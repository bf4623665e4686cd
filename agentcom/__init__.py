"""AgentCom: coordinate AI coding agents across model tiers, and watch them from Jupyter."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["Hub", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "Hub":
        from agentcom.hub import Hub

        return Hub
    raise AttributeError(f"module 'agentcom' has no attribute {name!r}")
