"""The LLM endpoint registry: registration, concurrent health checks on a timer, persistence.

Lifecycle (inside the hub's running asyncio/Tornado loop)::

    registry = EndpointRegistry.from_settings(settings, conn=db, on_change=publish)
    registry.load()            # endpoints from the SQLite table, health reset to unknown
    registry.start()           # first round of checks at once, then every health_interval_ms
    ...
    registry.register("gpu-box:11434", name="gpu")        # HTTP API / CLI
    registry.register_sidecar("agent-1", "http://localhost:11434", peer_host="10.0.0.7")
    snapshot = registry.snapshot()                        # what ``route`` reads
    ...
    await registry.stop()      # cancels the timer and any probe in flight

All methods but ``check``/``check_all``/``stop`` are synchronous and cheap; they are
meant to be called from the loop's thread only (like the store connection). A check
never raises: a refused connection, an error status, a body that is not the expected
JSON or no answer within ``timeout_ms`` each count as one failure (see
``agentcom.routing.endpoints`` for the health rules). ``on_change`` receives an
``EndpointChange`` whenever an endpoint is registered, removed, or its status or model
lists change; an exception in it is logged, never propagated into the health loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from typing import Any, Callable, Mapping

from agentcom.errors import StoreError, ValidationFailed
from agentcom.routing import endpoint_store
from agentcom.routing.addresses import normalize_host, parse_address
from agentcom.routing.endpoints import (
    UNHEALTHY_AFTER,
    EndpointChange,
    EndpointView,
    RegistrySnapshot,
    ResourceReport,
    after_failure,
    after_success,
)
from agentcom.routing.probes import PROBES, Probe, ProbeFailed, probe_openai

__all__ = ["EndpointRegistry"]

log = logging.getLogger("agentcom.routing")

_LOOPBACK = {"127.0.0.1", "::1"}


def _now_ms() -> int:
    return int(time.time() * 1000)


class EndpointRegistry:
    """Known Ollama / OpenAI-compatible endpoints and their health."""

    def __init__(
        self,
        *,
        interval_ms: int = 30_000,
        timeout_ms: int = 5_000,
        unhealthy_after: int = UNHEALTHY_AFTER,
        on_change: Callable[[EndpointChange], None] | None = None,
        conn: sqlite3.Connection | None = None,
        clock: Callable[[], int] = _now_ms,
        probes: Mapping[str, Probe] | None = None,
        openai_api_key: str | None = None,
        resource_ttl_ms: int = 90_000,
    ) -> None:
        if interval_ms <= 0 or timeout_ms <= 0:
            raise ValueError("interval_ms and timeout_ms must be positive")
        self.interval_ms = interval_ms
        self.timeout_ms = timeout_ms
        self.unhealthy_after = unhealthy_after
        self.resource_ttl_ms = resource_ttl_ms
        self._on_change = on_change
        self._conn = conn
        self._clock = clock
        self._probes: dict[str, Probe] = dict(PROBES)
        if openai_api_key:
            self._probes["openai"] = lambda url, timeout: probe_openai(url, timeout, openai_api_key)
        self._probes.update(probes or {})
        self._endpoints: dict[str, EndpointView] = {}
        self._resources: dict[str, ResourceReport] = {}
        self._checking: set[str] = set()
        self._background: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(cls, settings: Any, **kwargs: Any) -> "EndpointRegistry":
        """Interval from ``settings.health_interval_ms``; other arguments as for the constructor."""
        kwargs.setdefault("interval_ms", settings.health_interval_ms)
        return cls(**kwargs)

    # ------------------------------------------------------------------ reading

    def get(self, endpoint_id: str) -> EndpointView | None:
        return self._endpoints.get(endpoint_id)

    def endpoints(self) -> list[EndpointView]:
        return list(self._endpoints.values())

    def snapshot(self) -> RegistrySnapshot:
        """Every endpoint and the resource reports younger than ``resource_ttl_ms``."""
        now = self._clock()
        for endpoint_id in [e for e, r in self._resources.items() if now - r.reported_at > self.resource_ttl_ms]:
            del self._resources[endpoint_id]
        return RegistrySnapshot(endpoints=tuple(self._endpoints.values()), resources=dict(self._resources))

    @property
    def running(self) -> bool:
        return self._timer is not None and not self._timer.done()

    # ------------------------------------------------------------------ registration

    def load(self) -> int:
        """Read the endpoints table (if a connection was given). Health restarts at unknown."""
        if self._conn is None:
            return 0
        for view in endpoint_store.load_endpoints(self._conn):
            self._endpoints[view.endpoint_id] = view.replace(status="unknown", consecutive_failures=0, loaded_models=())
        return len(self._endpoints)

    def register(
        self,
        host: str,
        *,
        port: int | None = None,
        name: str | None = None,
        kind: str = "ollama",
        source: str = "manual",
        agent_id: str | None = None,
        field: str = "host",
    ) -> EndpointView:
        """Add an endpoint, or update the name/kind/owner of a known one (its health is kept
        unless the kind changes, since health was measured with the other kind's probe).

        Raises ValidationFailed (``errors=[{field, error}]``) for an unusable address.
        A manual registration is never downgraded to ``auto`` by a sidecar reconnecting.
        """
        if name is not None and len(name) > 256:
            raise ValidationFailed("invalid endpoint name", errors=[{"field": "name", "error": "must be at most 256 characters"}])
        address = parse_address(host, port, kind=kind, field=field)
        old = self._endpoints.get(address.endpoint_id)
        if old is None:
            view = EndpointView.new(address, kind=kind, now=self._clock(), name=name, source=source, agent_id=agent_id)
        else:
            view = old.replace(
                kind=kind,
                **({} if old.kind == kind else {"status": "unknown", "consecutive_failures": 0, "models": (),
                                                  "loaded_models": (), "last_error": None}),
                name=name if name is not None else old.name,
                source="manual" if "manual" in (old.source, source) else source,
                agent_id=agent_id if agent_id is not None else old.agent_id,
            )
            if view == old:
                return old
        self._endpoints[view.endpoint_id] = view
        try:
            self._persist(view)
        except StoreError:  # not stored: not registered either
            if old is None:
                del self._endpoints[view.endpoint_id]
            else:
                self._endpoints[view.endpoint_id] = old
            raise
        self._emit(EndpointChange("endpoint_registered", view, old.status if old else None))
        if old is None or old.kind != kind:
            self._probe_soon(view.endpoint_id)
        return view

    def register_sidecar(self, agent_id: str, ollama_url: str, *, peer_host: str | None = None) -> EndpointView:
        """Auto-registration from a sidecar's ``ollama_url``.

        A loopback URL means the sidecar's own machine: when the hub knows the sidecar's
        address (``peer_host``, e.g. the WebSocket's remote IP) and it is not loopback too,
        that address is registered instead, since the hub's own localhost is another machine.
        """
        address = parse_address(ollama_url, kind="ollama", field="ollama_url")
        host = ollama_url
        if address.host in _LOOPBACK and peer_host and normalize_host(peer_host) not in _LOOPBACK:
            peer = normalize_host(peer_host)
            host = f"{address.scheme}://{'[' + peer + ']' if ':' in peer else peer}:{address.port}"
        return self.register(host, kind="ollama", source="auto", agent_id=agent_id, field="ollama_url")

    def unregister(self, endpoint_id: str) -> bool:
        """Forget an endpoint (HTTP DELETE). False if it was not known."""
        view = self._endpoints.pop(endpoint_id, None)
        self._resources.pop(endpoint_id, None)
        if view is None:
            return False
        if self._conn is not None:
            endpoint_store.delete_endpoint(self._conn, endpoint_id)
        self._emit(EndpointChange("endpoint_removed", view, view.status))
        return True

    def report_resources(self, endpoint_id: str, report: ResourceReport) -> None:
        """Free capacity of the machine behind an endpoint; reports for unknown ids are ignored."""
        if endpoint_id in self._endpoints:
            self._resources[endpoint_id] = report

    def report_agent_resources(self, agent_id: str, report: ResourceReport) -> None:
        """A sidecar's machine report, filed under the endpoints that sidecar registered."""
        for view in self._endpoints.values():
            if view.agent_id == agent_id:
                self._resources[view.endpoint_id] = report

    # ------------------------------------------------------------------ health

    def start(self) -> None:
        """Start the health timer on the running loop (first round at once). Idempotent."""
        if self.running:
            return
        self._timer = asyncio.get_running_loop().create_task(self._run(), name="agentcom-endpoint-health")

    async def stop(self) -> None:
        """Stop the timer and any probe in flight; safe to call twice or without ``start``."""
        tasks = [t for t in (self._timer, *self._background) if t is not None]
        self._timer = None
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._background.clear()

    async def check_all(self) -> None:
        """One round: every endpoint probed concurrently, each bounded by ``timeout_ms``."""
        await asyncio.gather(*(self.check(endpoint_id) for endpoint_id in list(self._endpoints)))

    async def check(self, endpoint_id: str) -> EndpointView | None:
        """Probe one endpoint now and apply the result; None if it is unknown or already being checked."""
        view = self._endpoints.get(endpoint_id)
        if view is None or endpoint_id in self._checking:
            return None
        self._checking.add(endpoint_id)
        try:
            probe = self._probes[view.kind]
            timeout_s = self.timeout_ms / 1000
            try:
                result = await asyncio.wait_for(probe(view.base_url, timeout_s), timeout_s)
                outcome: tuple[str, Any] = ("ok", result)
            except ProbeFailed as exc:
                outcome = ("failed", str(exc))
            except TimeoutError:
                outcome = ("failed", f"no answer within {self.timeout_ms} ms")
            except Exception as exc:  # a client error we did not foresee is still just a failed check
                log.warning("endpoint %s probe raised unexpectedly", endpoint_id, exc_info=True)
                outcome = ("failed", f"probe error ({type(exc).__name__})")
        finally:
            self._checking.discard(endpoint_id)
        return self._apply(endpoint_id, outcome)

    def _apply(self, endpoint_id: str, outcome: tuple[str, Any]) -> EndpointView | None:
        old = self._endpoints.get(endpoint_id)
        if old is None:  # removed while the probe ran
            return None
        now = self._clock()
        if outcome[0] == "ok":
            new = after_success(old, outcome[1].models, outcome[1].loaded_models, now)
        else:
            new = after_failure(old, outcome[1], now, self.unhealthy_after)
            log.info("endpoint %s check failed (%d in a row): %s", endpoint_id, new.consecutive_failures, outcome[1])
        self._endpoints[endpoint_id] = new
        self._persist(new, quiet=True)
        if (new.status, new.models, new.loaded_models) != (old.status, old.models, old.loaded_models):
            self._emit(EndpointChange("endpoint_changed", new, old.status))
        return new

    async def _run(self) -> None:
        while True:
            try:
                await self.check_all()
            except Exception:  # the timer must outlive any bug in one round
                log.exception("endpoint health round failed")
            await asyncio.sleep(self.interval_ms / 1000)

    def _probe_soon(self, endpoint_id: str) -> None:
        """A new endpoint is probed at once when the timer runs, not after a full interval."""
        if not self.running:
            return
        task = asyncio.get_running_loop().create_task(self.check(endpoint_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ------------------------------------------------------------------ side effects

    def _persist(self, view: EndpointView, *, quiet: bool = False) -> None:
        if self._conn is None:
            return
        try:
            endpoint_store.save_endpoint(self._conn, view)
        except StoreError:
            if not quiet:
                raise
            log.warning("could not persist endpoint %s", view.endpoint_id, exc_info=True)

    def _emit(self, change: EndpointChange) -> None:
        if self._on_change is None:
            return
        try:
            self._on_change(change)
        except Exception:  # a subscriber's bug must not break registration or the timer
            log.exception("endpoint change callback failed for %s", change.endpoint.endpoint_id)

