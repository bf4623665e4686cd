"""The hub as a service: store, core, router, tokens and timers, with no web server.

``agentcom.Hub`` wraps it in its own Tornado server (standalone, tests, demo); the
Jupyter server extension mounts the same routes on the Jupyter server instead.
"""

from __future__ import annotations

import logging
import os
import secrets
import sqlite3
import stat
from pathlib import Path
from typing import Any, Callable

import msgspec
from tornado.ioloop import IOLoop, PeriodicCallback

from agentcom import __version__
from agentcom.config import AgentCom
from agentcom.errors import InvalidState, StoreError
from agentcom.hub.basic_router import BasicRouter
from agentcom.hub.core import HubCore, Router
from agentcom.hub.guard import AddressGuard
from agentcom.hub.session import SidecarSession
from agentcom.protocol.api import TaskSubmission
from agentcom.protocol.messages import ErrorFrame
from agentcom.store import tokens
from agentcom.store.db import open_db
from agentcom.store.tasks import Task, TaskStore

log = logging.getLogger(__name__)


def admin_token_path(db_path: str | os.PathLike[str]) -> Path:
    return Path(db_path).expanduser().with_suffix(".admin_token")


def load_or_create_admin_token(db_path: str | os.PathLike[str]) -> str:
    """The admin token kept next to the DB (mode 0600), created at first start."""
    path = admin_token_path(db_path)
    if path.exists():
        token = path.read_text(encoding="utf-8").strip()
        if token:
            return token
    token = "aca_" + secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
    os.chmod(path, 0o600)
    return token


TOKEN_CHECK_MS = 5_000  # how often connected sidecars' tokens are checked against the store


class HubService:
    version = __version__

    def __init__(self, settings: AgentCom | None = None, router: Router | None = None, **overrides: Any) -> None:
        self.registry: Any = None
        self.dashboard_fanout: Any = None
        self.metrics: Any = None
        self.settings = settings or AgentCom.load(overrides=overrides)
        if settings is not None:
            for name, value in overrides.items():
                setattr(self.settings, name, value)
        self.conn = open_db(self.settings.db_path)
        self.store = TaskStore(self.conn)
        self.admin_token = self.settings.admin_token or load_or_create_admin_token(self.settings.db_path)
        self._token_digests: dict[str, bytes] = {}  # agent_id -> digest of the token it identified with
        self.router = router or self._default_router()
        self.core = HubCore(self.settings, self.store, self.router, call_later=self._call_later)
        task_changed = getattr(self.router, "task_changed", None)
        if task_changed is not None:  # model routing counts the open tasks of each endpoint
            for task in self.core.tasks.values():
                task_changed(task)
            self.core.transitions.append(task_changed)
        self.guard = AddressGuard(self.settings, self.core.clock)  # per-address cool-downs of sidecar sockets
        self._timers: list[PeriodicCallback] = []
        self._loop: IOLoop | None = None
        self.dashboards = 0

    def _default_router(self) -> Router:
        """The router the ``routing`` setting names; 'model' routes over the persisted endpoint registry."""
        if self.settings.routing == "explicit":
            return BasicRouter(self.settings)
        from agentcom.pricing import PriceTable
        from agentcom.routing.budget import ExecutionSpend
        from agentcom.routing.hub_router import ROUTING_SETTINGS, ModelRouter
        from agentcom.routing.registry import EndpointRegistry

        prices = PriceTable.load(self.settings.price_table or None)

        def estimate_usd(model: str, tokens_in: int, tokens_out: int) -> float | None:
            cost = prices.price(model, tokens_in, tokens_out)
            return None if cost is None else float(cost)

        self.registry = EndpointRegistry.from_settings(self.settings, conn=self.conn, on_change=self._endpoint_changed)
        self.registry.load()
        router = ModelRouter(self.settings, self.registry, spend=ExecutionSpend(self.conn, settle=self.store.group.settle),
                             estimate_usd=estimate_usd)
        self.settings.observe(self._routing_settings_changed, names=list(ROUTING_SETTINGS))
        return router

    def _routing_settings_changed(self, change: Any) -> None:
        """A routing setting changed while the hub runs: tasks parked under the old one are routed again now."""
        core = getattr(self, "core", None)
        if core is not None:
            core.unpark_all()

    def _endpoint_changed(self, change: Any) -> None:
        core = getattr(self, "core", None)
        if core is not None:
            core.pubsub.publish("agents", change.to_dict())
            core.unpark_all()

    # ------------------------------------------------------------------ lifecycle

    def start_timers(self) -> None:
        self._loop = IOLoop.current()
        sweep = PeriodicCallback(self.core.sweep_leases, max(50, min(1000, self.settings.lease_ms // 4)))
        sweep.start()
        self._timers.append(sweep)
        token_check = PeriodicCallback(self._check_tokens, TOKEN_CHECK_MS)
        token_check.start()
        self._timers.append(token_check)
        if self.registry is not None:
            self.registry.start()
        self.core.schedule()

    def _call_later(self, delay_s: float, callback: Callable[[], None]) -> None:
        if self._loop is not None:
            self._loop.call_later(delay_s, callback)

    async def close(self) -> None:
        for timer in self._timers:
            timer.stop()
        self._timers.clear()
        if self.dashboard_fanout is not None:
            self.dashboard_fanout.close_all()
        if self.registry is not None:
            await self.registry.stop()
        for agent in list(self.core.agents.values()):
            if agent.online:
                agent.close(1001, "hub shutting down")
        try:
            self.store.group.commit()
            self.conn.close()
        except Exception as exc:  # noqa: BLE001 - closing must not mask the shutdown reason
            raise StoreError(f"closing the database failed: {exc}") from exc

    # ------------------------------------------------------------------ operations

    def submit(self, submission: TaskSubmission) -> Task:
        task = self.core.submit(submission)
        self.core.schedule()
        return task

    def submit_dict(self, body: dict[str, Any]) -> Task:
        from agentcom.protocol import codec

        return self.submit(codec.convert(body, TaskSubmission))

    def create_agent_token(self, agent_id: str) -> str:
        return tokens.create_token(self.conn, agent_id)

    def verify_agent_token(self, agent_id: str, token: str) -> bool:
        ok = tokens.verify_token(self.conn, agent_id, token)
        if ok:  # remembered so that revoking or re-minting the token later ends this connection too
            self._token_digests[agent_id] = tokens.live_digests(self.conn, agent_id).get(agent_id, b"")
        return ok

    def close_revoked_sidecars(self) -> list[str]:
        """Close connected sidecars whose token was revoked or replaced since they identified.

        ``agentcom token revoke`` (or ``token create`` again) changes only the database, possibly
        from another process; this check, run every ``TOKEN_CHECK_MS``, makes it end live sessions
        too. Each is told ``unauthorized`` and closed with 1008; its tasks wait out the lease as
        for any lost sidecar, and only a valid token can resume them."""
        live = tokens.live_digests(self.conn)
        closed = []
        for agent in list(self.core.agents.values()):
            seen = self._token_digests.get(agent.agent_id)
            if not agent.online or seen is None or live.get(agent.agent_id) == seen:
                continue
            agent.send(ErrorFrame(error="unauthorized",
                                  message="this sidecar's token was revoked or replaced; identify with a valid token"))
            agent.close(1008, "token revoked")
            closed.append(agent.agent_id)
        return closed

    def _check_tokens(self) -> None:
        try:
            self.close_revoked_sidecars()
        except sqlite3.Error as exc:  # a busy or failing store: try again at the next check
            log.warning("could not check sidecar tokens: %s", exc)

    def new_sidecar_session(self, send: Callable[[msgspec.Struct], None], close: Callable[[int, str], None],
                            address: str = "") -> SidecarSession:
        """A session for one sidecar socket; ``address`` (the peer's IP) is what cool-downs are kept by."""
        return SidecarSession(self.core, send, close, self.verify_agent_token, address=address, guard=self.guard)

    # ------------------------------------------------------------------ endpoints (model-aware routing)

    def endpoints_view(self) -> list[dict[str, Any]]:
        view = getattr(self.router, "endpoints_view", None)
        return view() if view is not None else []

    async def register_endpoint(self, registration: Any) -> dict[str, Any]:
        register = getattr(self.router, "register_endpoint", None)
        if register is None:
            raise InvalidState("this hub's router has no endpoint registry")
        result: dict[str, Any] = await register(registration)
        self.core.unpark_all()
        return result

    def remove_endpoint(self, endpoint_id: str) -> bool:
        remove = getattr(self.router, "remove_endpoint", None)
        return bool(remove(endpoint_id)) if remove is not None else False
