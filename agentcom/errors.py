"""Exceptions raised by AgentCom.

Every protocol-level error carries the wire ``code`` it is reported with, so one
place (``agentcom.protocol.codec.error_frame``) turns any of them into an error frame
and one place (``agentcom.hub.handlers``) into an HTTP answer.

- AgentComError
  - ConfigError            bad setting, at start (CLI, TOML, env, traitlets)
  - StoreError             the SQLite store cannot be opened or written
  - ProtocolError          has ``code``; answered on the socket, never crashes it
    - InvalidJson          ``invalid_json``
    - ValidationFailed     ``validation_failed`` (+ message_type, errors)
    - UnknownType          ``unknown_type``
    - NotIdentified        ``not_identified``
    - Unauthorized         ``unauthorized``
    - StaleGeneration      ``stale_generation``
    - InvalidState         ``invalid_state``
    - NotFound             ``not_found``
    - RateLimited          ``rate_limited`` (+ retry_after_ms)
    - StoreUnavailable     ``store_unavailable`` (HTTP 503): the store refused a write (disk full,
                           read-only); nothing changed, the same request can be sent again later
  - PricingError           a price table that cannot be loaded
  - ExecutorError          an executor failed; ``retryable`` says whether to try again
  - HubUnavailable         a client could not reach a hub
"""

from __future__ import annotations

from typing import Any


class AgentComError(Exception):
    """Root of every error AgentCom raises on purpose."""


class ConfigError(AgentComError):
    """A setting from outside (flag, env, TOML, traitlets) is unknown or invalid."""


class StoreError(AgentComError):
    """The task store cannot be opened, migrated or written."""


class ProtocolError(AgentComError):
    """An error that is answered to the peer as ``{"type": "error", ...}``."""

    code = "protocol_error"
    http_status = 400

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra


class InvalidJson(ProtocolError):
    code = "invalid_json"


class ValidationFailed(ProtocolError):
    code = "validation_failed"
    http_status = 422

    def __init__(self, message: str, errors: list[dict[str, str]], message_type: str | None = None) -> None:
        extra: dict[str, Any] = {"errors": errors}
        if message_type is not None:
            extra["message_type"] = message_type
        super().__init__(message, **extra)
        self.errors = errors


class UnknownType(ProtocolError):
    code = "unknown_type"


class NotIdentified(ProtocolError):
    code = "not_identified"
    http_status = 401


class Unauthorized(ProtocolError):
    code = "unauthorized"
    http_status = 401


class StaleGeneration(ProtocolError):
    code = "stale_generation"
    http_status = 409


class InvalidState(ProtocolError):
    code = "invalid_state"
    http_status = 409


class NotFound(ProtocolError):
    code = "not_found"
    http_status = 404


class RateLimited(ProtocolError):
    code = "rate_limited"
    http_status = 429

    def __init__(self, message: str, retry_after_ms: int) -> None:
        super().__init__(message, retry_after_ms=retry_after_ms)
        self.retry_after_ms = retry_after_ms


class StoreUnavailable(ProtocolError):
    """The store cannot take writes now (disk full, read-only file system); nothing was changed."""

    code = "store_unavailable"
    http_status = 503


class PricingError(AgentComError):
    """A price table file is missing, malformed or has an unusable entry."""


class ExecutorError(AgentComError):
    """An executor could not finish a task."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class HubUnavailable(AgentComError):
    """A client could not reach the hub, or the hub refused its credentials."""
