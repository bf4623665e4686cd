"""The hub: task state machine (``core``), sidecar sessions, HTTP/WebSocket handlers, and ``Hub``."""

from agentcom.hub.app import Hub
from agentcom.hub.service import HubService

__all__ = ["Hub", "HubService"]
