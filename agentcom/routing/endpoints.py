"""Immutable views of LLM endpoints and the pure rules that move their health.

The registry (``agentcom.routing.registry``) owns the mutable state and the timer;
everything a routing decision reads is one of these frozen values, so ``route`` is
a pure function of a ``RegistrySnapshot``.

Health: ``unknown`` until the first check; ``healthy`` after one success;
``unhealthy`` after ``unhealthy_after`` (2) consecutive failures. A single failure of a
healthy endpoint keeps it healthy (one lost packet does not bench a GPU box), and
re-registering an endpoint keeps its health.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

from agentcom.routing.addresses import EndpointAddress

__all__ = [
    "EndpointChange",
    "EndpointView",
    "RegistrySnapshot",
    "ResourceReport",
    "after_failure",
    "after_success",
]

Status = Literal["unknown", "healthy", "unhealthy"]
UNHEALTHY_AFTER = 2


@dataclass(frozen=True)
class EndpointView:
    """One registered endpoint as routing and the API see it (a row of ``endpoints``)."""

    endpoint_id: str
    kind: str  # "ollama" | "openai"
    scheme: str
    host: str
    port: int
    name: str | None = None
    source: str = "manual"  # "manual" | "auto" (from a sidecar's ollama_url)
    agent_id: str | None = None
    status: Status = "unknown"
    models: tuple[str, ...] = ()
    loaded_models: tuple[str, ...] = ()
    consecutive_failures: int = 0
    last_error: str | None = None
    registered_at: int = 0
    last_checked_at: int | None = None

    @classmethod
    def new(cls, address: EndpointAddress, *, kind: str, now: int, name: str | None = None,
            source: str = "manual", agent_id: str | None = None) -> "EndpointView":
        return cls(endpoint_id=address.endpoint_id, kind=kind, scheme=address.scheme, host=address.host,
                   port=address.port, name=name, source=source, agent_id=agent_id, registered_at=now)

    @property
    def base_url(self) -> str:
        return EndpointAddress(self.scheme, self.host, self.port).base_url

    @property
    def healthy(self) -> bool:
        return self.status == "healthy"

    def replace(self, **changes: Any) -> "EndpointView":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (lists, not tuples) for the HTTP API and the ``agents`` topic."""
        data = dataclasses.asdict(self)
        data["models"] = list(self.models)
        data["loaded_models"] = list(self.loaded_models)
        data["base_url"] = self.base_url
        return data


def after_success(view: EndpointView, models: tuple[str, ...], loaded: tuple[str, ...], now: int) -> EndpointView:
    """A check answered: healthy at once, failures forgotten, model lists refreshed."""
    return view.replace(status="healthy", models=models, loaded_models=loaded, consecutive_failures=0,
                        last_error=None, last_checked_at=now)


def after_failure(view: EndpointView, error: str, now: int, unhealthy_after: int = UNHEALTHY_AFTER) -> EndpointView:
    """A check failed: unhealthy once failures reach ``unhealthy_after``; nothing is loaded any more."""
    failures = view.consecutive_failures + 1
    status: Status = "unhealthy" if failures >= unhealthy_after else view.status
    return view.replace(status=status, consecutive_failures=failures, last_error=error[:500],
                        loaded_models=(), last_checked_at=now)


@dataclass(frozen=True)
class ResourceReport:
    """Free capacity of one endpoint and the machine behind it (any field may be unknown).

    Kept per endpoint id (never per agent id: the original looked them up by endpoint but
    stored them by agent, so every score was the default). A sidecar's ``resource_report``
    frame fills it: ``free_slots`` (tasks it could still run there), ``in_flight`` (requests
    running there that it knows of), ``loaded_models`` (None = not reported).
    """

    reported_at: int
    cpu_percent: float | None = None
    ram_total_mb: float | None = None
    ram_free_mb: float | None = None
    vram_total_mb: float | None = None
    vram_free_mb: float | None = None
    free_slots: int | None = None
    in_flight: int | None = None
    loaded_models: tuple[str, ...] | None = None


@dataclass(frozen=True)
class RegistrySnapshot:
    """What routing reads: every endpoint, and fresh resource reports keyed by endpoint id."""

    endpoints: tuple[EndpointView, ...] = ()
    resources: Mapping[str, ResourceReport] = field(default_factory=dict)

    def healthy(self, kind: str) -> list[EndpointView]:
        return [e for e in self.endpoints if e.kind == kind and e.healthy]


ChangeEvent = Literal["endpoint_registered", "endpoint_changed", "endpoint_removed"]


@dataclass(frozen=True)
class EndpointChange:
    """Passed to the registry's ``on_change`` callback; the hub publishes ``to_dict()``."""

    event: ChangeEvent
    endpoint: EndpointView
    previous_status: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.event, "endpoint": self.endpoint.to_dict(), "previous_status": self.previous_status}
