"""AgentCom: coordinate AI coding agents across model tiers, and watch them from Jupyter."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["Hub", "HubClient", "__version__", "connect"]


def __getattr__(name: str) -> Any:
    if name == "Hub":
        from agentcom.hub import Hub

        return Hub
    if name in ("HubClient", "connect"):
        from agentcom import client

        return getattr(client, name)
    raise AttributeError(f"module 'agentcom' has no attribute {name!r}")


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    """Jupyter server extension point: the hub runs inside ``jupyter lab`` / ``jupyter server``."""
    from agentcom.jupyter.app import AgentComExtension

    return [{"module": "agentcom.jupyter.app", "app": AgentComExtension}]
